//! Working calendars: when a clinic works, so that deadlines count working time, not wall time.
//!
//! A deadline of "8 working hours" started on a Friday afternoon falls due on Monday, not in the
//! middle of Saturday night. A [`WorkingCalendar`] says which hours of which days are worked:
//! weekly hours per weekday, holidays (no work that day) and exceptions (a date whose hours are
//! replaced: a make-up working Saturday, a short day before a festival). As an analyst posts it:
//!
//! ```json
//! {"name": "clinic", "label": {"zh": "门诊工作日历"}, "utc_offset_minutes": 480,
//!  "weekly": {"mon": [["09:00","12:00"],["13:00","18:00"]], "tue": [], "wed": [],
//!             "thu": [], "fri": [], "sat": [], "sun": []},
//!  "holidays": ["2026-10-01", "2026-10-02"],
//!  "exceptions": {"2026-09-27": [["09:00","18:00"]]}}
//! ```
//!
//! Hours are local times (`HH:MM`, `24:00` allowed as an end) at a fixed offset from UTC
//! (`utc_offset_minutes`, 480 for China). There is deliberately no time-zone database: China
//! has no daylight saving time, and a fixed offset makes every answer reproducible from the
//! definition alone. Instants are epoch milliseconds (UTC), as the kernel's timers use.
//!
//! Computations skip whole days and whole weeks (holidays and exceptions are the only places a
//! week differs from the weekly pattern), so adding 40 working hours costs microseconds, and no
//! input can make them loop: a calendar without any working time gives up (None) rather than
//! search forever.
//!
//! This module must never read a clock, a time-zone file or storage: every instant is passed in.

use std::collections::BTreeMap;
use std::collections::btree_map::Range;
use std::fmt;
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{DesignError, Issue};
use crate::label::Label;
use crate::naming::{MAX_IDENTIFIER_LEN, derive_identifier, is_identifier};

/// Milliseconds in a minute.
const MINUTE_MS: i128 = 60_000;
/// Milliseconds in a (local, fixed-offset) day: with a fixed offset every day has 24 hours.
const DAY_MS: i128 = 86_400_000;
/// Days since 0001-01-01 (chrono's day 1) of 1970-01-01, the epoch of instants.
const EPOCH_DAYS_FROM_CE: i64 = 719_163;
/// How many consecutive days without any working time a search crosses before concluding that
/// the calendar will never work again (ten years: more than any run of holidays).
pub const MAX_IDLE_DAYS: i64 = 3_660;
/// The most westerly real UTC offset (UTC−12:00), in minutes.
const MIN_OFFSET_MINUTES: i32 = -12 * 60;
/// The most easterly real UTC offset (UTC+14:00), in minutes.
const MAX_OFFSET_MINUTES: i32 = 14 * 60;

/// A time of day in minutes since local midnight, written `HH:MM` (`00:00` to `24:00`).
///
/// `24:00` exists so that an interval can run to the end of a day (`["00:00", "24:00"]` is a
/// whole day) without a second interval on the next one. Minutes are the resolution because
/// that is what a roster is written in; seconds would only invite confusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(u16);

impl ClockTime {
    /// Midnight at the start of the day.
    pub const MIDNIGHT: ClockTime = ClockTime(0);
    /// Midnight at the end of the day (`24:00`), only meaningful as an interval's end.
    pub const END_OF_DAY: ClockTime = ClockTime(24 * 60);

    /// The time `hour:minute`, or None unless it lies between `00:00` and `24:00`.
    pub fn new(hour: u16, minute: u16) -> Option<Self> {
        (minute < 60 && (hour < 24 || (hour == 24 && minute == 0)))
            .then_some(ClockTime(hour * 60 + minute))
    }

    /// Minutes since midnight (0 to 1440).
    pub fn minutes(self) -> u16 {
        self.0
    }

    /// Milliseconds since midnight, what the computations work in.
    fn ms(self) -> i128 {
        i128::from(self.0) * MINUTE_MS
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for ClockTime {
    type Err = String;

    /// Parses exactly `HH:MM` (two digits each): `9:00` and `09:00:00` are refused so that a
    /// stored calendar reads the same everywhere.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a time of day: write HH:MM, from 00:00 to 24:00");
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
            return Err(bad());
        }
        let digit = |i: usize| u16::from(b[i] - b'0');
        ClockTime::new(digit(0) * 10 + digit(1), digit(3) * 10 + digit(4)).ok_or_else(bad)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The OpenAPI schema of a time of day: the string it is written as.
impl utoipa::PartialSchema for ClockTime {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))
            .description(Some("A time of day, `HH:MM` from `00:00` to `24:00`."))
            .examples(["09:00"])
            .into()
    }
}

impl utoipa::ToSchema for ClockTime {}

/// A stretch of working time within one day, `[start, end)`, written `["09:00", "12:00"]`.
///
/// The end is excluded: a clinic open 09:00–12:00 is not working at 12:00 itself, so an
/// afternoon interval may start at 12:00 without overlapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(ClockTime, ClockTime)", into = "(ClockTime, ClockTime)")]
pub struct Interval {
    /// When work starts.
    pub start: ClockTime,
    /// When work stops (excluded).
    pub end: ClockTime,
}

impl Interval {
    /// The interval from `start` to `end`; [`WorkingCalendar::validate`] checks `start < end`.
    pub fn new(start: ClockTime, end: ClockTime) -> Self {
        Self { start, end }
    }

    /// Working milliseconds of the interval that fall within `[from, to)` (ms since midnight).
    fn overlap(self, from: i128, to: i128) -> i128 {
        (self.end.ms().min(to) - self.start.ms().max(from)).max(0)
    }
}

impl From<(ClockTime, ClockTime)> for Interval {
    fn from((start, end): (ClockTime, ClockTime)) -> Self {
        Self { start, end }
    }
}

impl From<Interval> for (ClockTime, ClockTime) {
    fn from(i: Interval) -> Self {
        (i.start, i.end)
    }
}

/// The OpenAPI schema of an interval: `["09:00", "12:00"]`, two times of day.
impl utoipa::PartialSchema for Interval {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(<ClockTime as utoipa::PartialSchema>::schema())
            .min_items(Some(2))
            .max_items(Some(2))
            .description(Some(
                "Working time `[start, end)` within one day, e.g. `[\"09:00\", \"12:00\"]`.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Interval {}

/// The OpenAPI schema of a date: the string it is written as (`2026-10-01`).
impl utoipa::PartialSchema for LocalDate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Date,
            )))
            .pattern(Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))
            .into()
    }
}

impl utoipa::ToSchema for LocalDate {}

/// A calendar date, written strictly `YYYY-MM-DD` (year 0000 to 9999).
///
/// A newtype rather than a bare `NaiveDate` because chrono's own parser is lenient (it accepts
/// `2026-1-5` and surrounding spaces), and a holiday list must read one way only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalDate(NaiveDate);

impl LocalDate {
    /// The date `year-month-day`, or None if it does not exist or its year has not 4 digits.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        if !(0..=9999).contains(&year) {
            return None;
        }
        NaiveDate::from_ymd_opt(year, month, day).map(LocalDate)
    }

    /// The date as chrono's type, for callers that compute with it.
    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// Days since 1970-01-01 (negative before), the computations' day number.
    fn day_number(self) -> i64 {
        i64::from(self.0.num_days_from_ce()) - EPOCH_DAYS_FROM_CE
    }
}

impl fmt::Display for LocalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }
}

impl FromStr for LocalDate {
    type Err = String;

    /// Parses exactly `YYYY-MM-DD` and refuses dates that do not exist (`2026-02-30`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a date: write YYYY-MM-DD, e.g. 2026-10-01");
        let b = s.as_bytes();
        let digits_at = [0, 1, 2, 3, 5, 6, 8, 9];
        if b.len() != 10
            || b[4] != b'-'
            || b[7] != b'-'
            || !digits_at.iter().all(|&i| b[i].is_ascii_digit())
        {
            return Err(bad());
        }
        let number = |from: usize, to: usize| {
            b[from..to]
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
        };
        let year = i32::try_from(number(0, 4)).map_err(|_| bad())?;
        LocalDate::from_ymd(year, number(5, 7), number(8, 10))
            .ok_or_else(|| format!("'{s}' is not a date: no such day in the calendar"))
    }
}

impl Serialize for LocalDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The hours worked on each weekday, Monday first; a weekday left out is not worked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Weekly {
    /// Monday's hours.
    #[serde(default)]
    pub mon: Vec<Interval>,
    /// Tuesday's hours.
    #[serde(default)]
    pub tue: Vec<Interval>,
    /// Wednesday's hours.
    #[serde(default)]
    pub wed: Vec<Interval>,
    /// Thursday's hours.
    #[serde(default)]
    pub thu: Vec<Interval>,
    /// Friday's hours.
    #[serde(default)]
    pub fri: Vec<Interval>,
    /// Saturday's hours.
    #[serde(default)]
    pub sat: Vec<Interval>,
    /// Sunday's hours.
    #[serde(default)]
    pub sun: Vec<Interval>,
}

/// The JSON keys of the weekdays, Monday first (index 0), as [`Weekly::day`] numbers them.
const WEEKDAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Weekly {
    /// The same hours every day of the week, e.g. for a 24×7 service.
    pub fn every_day(hours: Vec<Interval>) -> Self {
        Self {
            mon: hours.clone(),
            tue: hours.clone(),
            wed: hours.clone(),
            thu: hours.clone(),
            fri: hours.clone(),
            sat: hours.clone(),
            sun: hours,
        }
    }

    /// The hours of weekday `index` (0 = Monday … 6 = Sunday; taken modulo 7).
    pub fn day(&self, index: usize) -> &[Interval] {
        match index % 7 {
            0 => &self.mon,
            1 => &self.tue,
            2 => &self.wed,
            3 => &self.thu,
            4 => &self.fri,
            5 => &self.sat,
            _ => &self.sun,
        }
    }
}

/// When work happens: weekly hours, holidays and exceptional dates, at a fixed UTC offset.
///
/// Deadlines, reminders and SLAs count working time on a calendar; things with no calendar
/// use [`WorkingCalendar::always`]. See the module documentation for the JSON shape. The
/// computations trust a calendar that passed [`WorkingCalendar::validate`]; on one that did
/// not (overlapping intervals, say) they still terminate and never panic, but may count an
/// overlap twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingCalendar {
    /// The identifier rules and services refer to the calendar by; derived from `label.zh`
    /// by [`WorkingCalendar::prepare`] when absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What staff see.
    pub label: Label,
    /// Local time minus UTC, in minutes (480 for China): hours and dates are local.
    pub utc_offset_minutes: i32,
    /// The hours worked on each weekday.
    #[serde(default)]
    pub weekly: Weekly,
    /// Dates without any work (unless also an exception, which validation refuses).
    #[serde(default)]
    pub holidays: Vec<LocalDate>,
    /// Dates whose hours replace the weekday's: a make-up working Saturday, a short day. An
    /// empty list is a day off.
    #[serde(default)]
    pub exceptions: BTreeMap<LocalDate, Vec<Interval>>,
}

/// The most days [`WorkingCalendar::working_spans`] walks (a slot search looks a month
/// or two ahead, never years).
pub const MAX_SPAN_DAYS: i64 = 366;

impl Default for WorkingCalendar {
    fn default() -> Self {
        Self::always()
    }
}

impl WorkingCalendar {
    /// The calendar of things that have no calendar: every hour of every day, no holidays, so
    /// that working time equals wall time and a deadline of PT8H is eight hours away.
    pub fn always() -> Self {
        Self {
            name: "always".to_owned(),
            label: Label::new("全天候", "Always"),
            utc_offset_minutes: 0,
            weekly: Weekly::every_day(vec![Interval::new(
                ClockTime::MIDNIGHT,
                ClockTime::END_OF_DAY,
            )]),
            holidays: Vec::new(),
            exceptions: BTreeMap::new(),
        }
    }

    /// Parses a calendar from JSON, reporting a shape problem (unknown key, malformed time or
    /// date, wrong JSON type) at its JSON pointer (`/weekly/mon/1/0`). Does not check the
    /// meaning: call [`WorkingCalendar::prepare`] before storing it.
    pub fn parse(json: &serde_json::Value) -> Result<Self, DesignError> {
        Self::read(json).into_result(json)
    }

    /// Reads a calendar from JSON as far as it can be read (see [`crate::shape`]): a
    /// weekday, the holidays or the exceptions that do not read are set aside, every shape
    /// problem at its pointer, so that [`WorkingCalendar::prepare_reading`] can check the rest.
    pub fn read(json: &serde_json::Value) -> crate::shape::Reading<Self> {
        let mut shape = crate::shape::Shape::new();
        // "No working hours at all" is about the whole week and its exceptions: with a part
        // of them unreadable it would only repeat that part's problem.
        shape.depends("/weekly", "/weekly");
        shape.depends("/weekly", "/exceptions");
        let stand_ins = [
            ("label", crate::shape::stand_in_label()),
            ("utc_offset_minutes", serde_json::json!(0)),
        ];
        let value = shape.read(json, "", &stand_ins);
        crate::shape::Reading { value, shape }
    }

    /// [`prepare`](Self::prepare)s a calendar read from `body`: every shape problem and every
    /// problem of its validation over what could be read, in one answer.
    pub fn prepare_reading(
        reading: crate::shape::Reading<Self>,
        body: &serde_json::Value,
    ) -> Result<Self, DesignError> {
        reading.check(body, |calendar, _| calendar.prepare())
    }

    /// Derives the name from `label.zh` when absent, then [`validates`](Self::validate): the
    /// calendar as it will be stored, the way services and DataItems are prepared.
    pub fn prepare(mut self) -> Result<Self, DesignError> {
        if self.name.is_empty() && !self.label.zh.trim().is_empty() {
            self.name = derive_identifier(&self.label.zh);
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks what the shape cannot: every interval starts before it ends, a day's intervals
    /// are sorted and do not overlap, no holiday is listed twice or is also an exception, the
    /// offset is a real one, and the calendar works at some time at all (a deadline on a
    /// calendar that never works would never fall due). Every problem is listed at its JSON
    /// pointer (`/weekly/mon/1`, `/holidays/3`, `/exceptions/2026-09-27/0`).
    pub fn validate(&self) -> Result<(), DesignError> {
        let mut issues = Vec::new();
        if self.label.zh.trim().is_empty() {
            issues.push(Issue::new("/label/zh", "a Chinese label is required"));
        }
        if !is_identifier(&self.name) {
            issues.push(Issue::new(
                "/name",
                format!(
                    "'{}' is not a valid identifier: use lowercase letters, digits and single \
                     underscores, start with a letter, at most {MAX_IDENTIFIER_LEN} characters",
                    self.name
                ),
            ));
        }
        if !(MIN_OFFSET_MINUTES..=MAX_OFFSET_MINUTES).contains(&self.utc_offset_minutes) {
            issues.push(Issue::new(
                "/utc_offset_minutes",
                format!(
                    "{} minutes is not a UTC offset: real offsets lie between -720 (UTC-12:00) \
                     and 840 (UTC+14:00); China is 480",
                    self.utc_offset_minutes
                ),
            ));
        }
        for (i, key) in WEEKDAY_KEYS.iter().enumerate() {
            check_day(self.weekly.day(i), &format!("/weekly/{key}"), &mut issues);
        }
        for (i, holiday) in self.holidays.iter().enumerate() {
            if self.holidays[..i].contains(holiday) {
                issues.push(Issue::new(
                    format!("/holidays/{i}"),
                    format!("{holiday} is listed twice"),
                ));
            }
        }
        for (date, hours) in &self.exceptions {
            let path = format!("/exceptions/{date}");
            if self.holidays.contains(date) {
                issues.push(Issue::new(
                    path.clone(),
                    format!(
                        "{date} is also a holiday: list it as a holiday (no work) or as an \
                         exception (these hours), not both"
                    ),
                ));
            }
            check_day(hours, &path, &mut issues);
        }
        if self.week_ms() == 0 && self.exceptions.values().all(Vec::is_empty) {
            issues.push(Issue::new(
                "/weekly",
                "the calendar has no working hours at all: nothing counted on it would ever \
                 fall due",
            ));
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(DesignError::InvalidDefinition(issues))
        }
    }

    /// Whether `t_ms` (epoch ms) falls within working time. Interval ends are excluded: at
    /// 12:00 a clinic open 09:00–12:00 has stopped working.
    pub fn is_working(&self, t_ms: i64) -> bool {
        let (day, ms) = self.split(t_ms);
        self.hours_on(day)
            .iter()
            .any(|i| i.start.ms() <= ms && ms < i.end.ms())
    }

    /// The earliest instant at or after `t_ms` at which work is going on: `t_ms` itself when
    /// it is working time, else the start of the next working interval. What a scheduler asks
    /// before dispatching a task that must be done during working hours. None if the calendar
    /// never works again (no working time within [`MAX_IDLE_DAYS`] days).
    pub fn next_working_start(&self, t_ms: i64) -> Option<i64> {
        let (mut day, mut ms) = self.split(t_ms);
        let mut idle = 0;
        loop {
            let hours = self.hours_on(day);
            if let Some(i) = hours.iter().find(|i| i.start < i.end && ms < i.end.ms()) {
                return self.instant(day, i.start.ms().max(ms));
            }
            idle += 1;
            day = match self.next_day_with_hours(day + 1, &mut idle)? {
                d if d > day => d,
                _ => return None,
            };
            ms = 0;
        }
    }

    /// The instant at which `duration_ms` of working time has elapsed, counting from
    /// `start_ms`: the earliest `t ≥ start_ms` with `working_ms_between(start_ms, t) ==
    /// duration_ms`. Nights, days off and holidays are skipped, exceptions honoured. This is
    /// how a step's working-time deadline (PT8H on the clinic's calendar) becomes a timer.
    ///
    /// A zero duration is due at `start_ms` itself; a positive one always lands inside a
    /// working interval or at its end. None for a negative duration, for a calendar with no
    /// working time within [`MAX_IDLE_DAYS`] days, or past the range of epoch milliseconds.
    pub fn add_working(&self, start_ms: i64, duration_ms: i64) -> Option<i64> {
        if duration_ms <= 0 {
            return (duration_ms == 0).then_some(start_ms);
        }
        let week = self.week_ms();
        let mut remaining = i128::from(duration_ms);
        let (mut day, mut ms) = self.split(start_ms);
        let mut idle = 0;
        loop {
            if ms == 0 && week > 0 {
                // Whole weeks up to the next holiday or exception all work `week` ms: jump
                // them, keeping at least one ms to be found by walking the days after.
                let free_weeks = self
                    .next_special_day(day)
                    .map_or(i128::MAX, |d| i128::from(d - day) / 7);
                let weeks = free_weeks.min((remaining - 1) / week);
                if weeks > 0 {
                    day = day.checked_add(i64::try_from(weeks * 7).ok()?)?;
                    remaining -= weeks * week;
                }
            }
            let mut worked = false;
            for interval in self.hours_on(day) {
                let from = interval.start.ms().max(ms);
                let available = interval.end.ms() - from;
                if available <= 0 {
                    continue;
                }
                worked = true;
                if available >= remaining {
                    return self.instant(day, from + remaining);
                }
                remaining -= available;
            }
            idle = if worked { 0 } else { idle + 1 };
            day = match self.next_day_with_hours(day.checked_add(1)?, &mut idle)? {
                d if d > day => d,
                _ => return None,
            };
            ms = 0;
        }
    }

    /// The working spans `[from, to)` within `[from_ms, to_ms)`, in order, touching ones
    /// merged (a night shift over midnight is one span): what a slot search walks instead
    /// of asking instant by instant. At most [`MAX_SPAN_DAYS`] days are walked.
    pub fn working_spans(&self, from_ms: i64, to_ms: i64) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        if to_ms <= from_ms {
            return out;
        }
        let (first, _) = self.split(from_ms);
        let (last, _) = self.split(to_ms);
        for day in first..=last.min(first + MAX_SPAN_DAYS) {
            for interval in self.hours_on(day) {
                let (Some(a), Some(b)) = (
                    self.instant(day, interval.start.ms()),
                    self.instant(day, interval.end.ms()),
                ) else {
                    continue;
                };
                let (a, b) = (a.max(from_ms), b.min(to_ms));
                if a >= b {
                    continue;
                }
                match out.last_mut() {
                    Some(prev) if prev.1 >= a => prev.1 = prev.1.max(b),
                    _ => out.push((a, b)),
                }
            }
        }
        out
    }

    /// Working milliseconds between two instants: how much working time a task has had, or
    /// how overdue it is in working time. Negative when `b_ms` is before `a_ms` (the span
    /// counted backwards), so that `working_ms_between(a, b) == -working_ms_between(b, a)`.
    /// Costs one step per holiday and exception in the span, not one per day.
    pub fn working_ms_between(&self, a_ms: i64, b_ms: i64) -> i64 {
        if b_ms < a_ms {
            return self.working_ms_between(b_ms, a_ms).saturating_neg();
        }
        let (day_a, ms_a) = self.split(a_ms);
        let (day_b, ms_b) = self.split(b_ms);
        let total = if day_a == day_b {
            self.worked_on(day_a, ms_a, ms_b)
        } else {
            self.worked_on(day_a, ms_a, DAY_MS)
                + self.worked_days(day_a + 1, day_b)
                + self.worked_on(day_b, 0, ms_b)
        };
        i64::try_from(total).unwrap_or(i64::MAX)
    }

    /// The offset in milliseconds, for splitting instants into local days.
    fn offset_ms(&self) -> i128 {
        i128::from(self.utc_offset_minutes) * MINUTE_MS
    }

    /// An instant as (local day number, ms since local midnight).
    fn split(&self, t_ms: i64) -> (i64, i128) {
        let local = i128::from(t_ms) + self.offset_ms();
        // |local| < 2^64 ms, so the day number is far inside i64.
        let day = i64::try_from(local.div_euclid(DAY_MS)).unwrap_or_default();
        (day, local.rem_euclid(DAY_MS))
    }

    /// The instant of local day `day` at `ms` after midnight, if epoch ms can hold it.
    fn instant(&self, day: i64, ms: i128) -> Option<i64> {
        i64::try_from(i128::from(day) * DAY_MS + ms - self.offset_ms()).ok()
    }

    /// The hours worked on local day `day`: the exception's if any, none on a holiday, else
    /// the weekday's.
    fn hours_on(&self, day: i64) -> &[Interval] {
        if let Some(hours) = self.exception_on(day) {
            return hours;
        }
        if self.holidays.iter().any(|h| h.day_number() == day) {
            return &[];
        }
        self.weekly.day(weekday_index(day))
    }

    /// The exception's hours on `day`, if the day is an exception.
    fn exception_on(&self, day: i64) -> Option<&[Interval]> {
        let date = date_of(day)?;
        self.exceptions.get(&date).map(Vec::as_slice)
    }

    /// Working ms of `day` within `[from, to)` (ms since local midnight).
    fn worked_on(&self, day: i64, from: i128, to: i128) -> i128 {
        self.hours_on(day).iter().map(|i| i.overlap(from, to)).sum()
    }

    /// Working ms of the whole days `first..end`: whole weeks by the weekly pattern, then
    /// each holiday and exception in the span corrected individually.
    fn worked_days(&self, first: i64, end: i64) -> i128 {
        if end <= first {
            return 0;
        }
        let span = i128::from(end - first);
        // Any 7 consecutive days hold each weekday once: whole weeks from `first`, then the
        // remaining days at the end one by one.
        let mut total = (span / 7) * self.week_ms();
        for day in (end - (end - first) % 7)..end {
            total += self.weekday_ms(day);
        }
        let mut holidays: Vec<i64> = self
            .holidays
            .iter()
            .map(|h| h.day_number())
            .filter(|d| (first..end).contains(d) && self.exception_on(*d).is_none())
            .collect();
        holidays.sort_unstable();
        holidays.dedup();
        for day in holidays {
            total -= self.weekday_ms(day);
        }
        for (date, hours) in self.exceptions_between(first, end) {
            total += day_ms(hours) - self.weekday_ms(date.day_number());
        }
        total
    }

    /// The exceptions dated within the local days `first..end`.
    fn exceptions_between(
        &self,
        first: i64,
        end: i64,
    ) -> impl Iterator<Item = (&LocalDate, &Vec<Interval>)> {
        self.exceptions_from(first)
            .take_while(move |(date, _)| date.day_number() < end)
    }

    /// The exceptions dated on or after local day `day`, in date order. A day beyond the
    /// dates chrono can represent is before every exception or after every one.
    fn exceptions_from(&self, day: i64) -> Range<'_, LocalDate, Vec<Interval>> {
        match (date_of(day), self.exceptions.last_key_value()) {
            (Some(date), _) => self.exceptions.range((Included(date), Unbounded)),
            (None, Some((last, _))) if day > 0 => {
                self.exceptions.range((Excluded(*last), Unbounded))
            }
            (None, _) => self.exceptions.range(..),
        }
    }

    /// Working ms of a normal (not special) day with `day`'s weekday.
    fn weekday_ms(&self, day: i64) -> i128 {
        day_ms(self.weekly.day(weekday_index(day)))
    }

    /// Working ms of a normal week.
    fn week_ms(&self) -> i128 {
        (0..7).map(|i| day_ms(self.weekly.day(i))).sum()
    }

    /// The first holiday or exception on or after `day`, where a week may differ from the
    /// weekly pattern.
    fn next_special_day(&self, day: i64) -> Option<i64> {
        let holiday = self
            .holidays
            .iter()
            .map(|h| h.day_number())
            .filter(|d| *d >= day)
            .min();
        let exception = self
            .exceptions_from(day)
            .next()
            .map(|(d, _)| d.day_number());
        match (holiday, exception) {
            (Some(h), Some(e)) => Some(h.min(e)),
            (h, e) => h.or(e),
        }
    }

    /// The first day on or after `day` with any working hours, counting the idle days crossed
    /// into `idle`; None once `idle` passes [`MAX_IDLE_DAYS`] (the calendar never works).
    /// When no weekday is worked only exceptions can be, and those are found directly.
    fn next_day_with_hours(&self, mut day: i64, idle: &mut i64) -> Option<i64> {
        if self.week_ms() == 0 {
            let (next, _) = self
                .exceptions_from(day)
                .find(|(_, hours)| day_ms(hours) > 0)?;
            let next = next.day_number();
            *idle += next - day;
            return (*idle <= MAX_IDLE_DAYS).then_some(next);
        }
        while day_ms(self.hours_on(day)) == 0 {
            *idle += 1;
            if *idle > MAX_IDLE_DAYS {
                return None;
            }
            day = day.checked_add(1)?;
        }
        Some(day)
    }
}

/// Checks one day's intervals, each reported at `{path}/{index}`.
fn check_day(hours: &[Interval], path: &str, issues: &mut Vec<Issue>) {
    for (k, interval) in hours.iter().enumerate() {
        let at = format!("{path}/{k}");
        if interval.start >= interval.end {
            issues.push(Issue::new(
                at,
                format!(
                    "the interval {}–{} must start before it ends",
                    interval.start, interval.end
                ),
            ));
            continue;
        }
        let Some(previous) = k.checked_sub(1).and_then(|p| hours.get(p)) else {
            continue;
        };
        if interval.start < previous.start {
            issues.push(Issue::new(
                at,
                format!(
                    "the interval {}–{} starts before the previous one ({}–{}): list a day's \
                     intervals in order",
                    interval.start, interval.end, previous.start, previous.end
                ),
            ));
        } else if interval.start < previous.end {
            issues.push(Issue::new(
                at,
                format!(
                    "the interval {}–{} overlaps the previous one ({}–{})",
                    interval.start, interval.end, previous.start, previous.end
                ),
            ));
        }
    }
}

/// Working ms of a list of intervals (an ill-formed one counts nothing).
fn day_ms(hours: &[Interval]) -> i128 {
    hours.iter().map(|i| i.overlap(0, DAY_MS)).sum()
}

/// The weekday of local day number `day`, 0 = Monday (1970-01-01 was a Thursday).
fn weekday_index(day: i64) -> usize {
    usize::try_from((day + 3).rem_euclid(7)).unwrap_or_default()
}

/// The date of local day number `day`, if chrono can represent it.
fn date_of(day: i64) -> Option<LocalDate> {
    let from_ce = i32::try_from(day.checked_add(EPOCH_DAYS_FROM_CE)?).ok()?;
    NaiveDate::from_num_days_from_ce_opt(from_ce).map(LocalDate)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    const HOUR: i64 = 3_600_000;

    fn clinic() -> WorkingCalendar {
        let hours = json!([["09:00", "12:00"], ["13:00", "18:00"]]);
        WorkingCalendar::parse(&json!({
            "name": "clinic", "label": {"zh": "门诊工作日历"}, "utc_offset_minutes": 480,
            "weekly": {"mon": hours, "tue": hours, "wed": hours, "thu": hours, "fri": hours},
        }))
        .unwrap()
    }

    /// Epoch ms of a China (UTC+8) wall-clock time.
    fn china(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
            - 8 * HOUR
    }

    #[test]
    fn working_spans_are_the_hours_of_each_day_clipped_to_the_window() {
        let cal = clinic();
        // Thursday 2026-12-03 from 10:00 to Saturday: Thursday 10–12 and 13–18, Friday's
        // two spans, nothing on Saturday.
        let spans = cal.working_spans(china(2026, 12, 3, 10, 0), china(2026, 12, 5, 12, 0));
        assert_eq!(
            spans,
            [
                (china(2026, 12, 3, 10, 0), china(2026, 12, 3, 12, 0)),
                (china(2026, 12, 3, 13, 0), china(2026, 12, 3, 18, 0)),
                (china(2026, 12, 4, 9, 0), china(2026, 12, 4, 12, 0)),
                (china(2026, 12, 4, 13, 0), china(2026, 12, 4, 18, 0)),
            ]
        );
        // Every span is working time, and what lies between is not.
        for (a, b) in &spans {
            assert_eq!(cal.working_ms_between(*a, *b), b - a);
        }
        let always = WorkingCalendar::always();
        let (a, b) = (china(2026, 12, 3, 22, 0), china(2026, 12, 4, 2, 0));
        assert_eq!(always.working_spans(a, b), [(a, b)], "midnight merges");
    }

    #[test]
    fn times_and_dates_are_strict() {
        assert_eq!("09:30".parse::<ClockTime>().unwrap().minutes(), 570);
        assert_eq!("24:00".parse::<ClockTime>(), Ok(ClockTime::END_OF_DAY));
        for bad in [
            "9:30", "24:01", "12:60", "09:30:00", "0930", " 9:30", "ab:cd",
        ] {
            assert!(bad.parse::<ClockTime>().is_err(), "{bad}");
        }
        assert_eq!(
            "2026-10-01".parse::<LocalDate>().unwrap().to_string(),
            "2026-10-01"
        );
        for bad in [
            "2026-1-05",
            "2026-02-30",
            "26-10-01",
            "2026/10/01",
            " 2026-10-01",
        ] {
            assert!(bad.parse::<LocalDate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_json_shape_round_trips() {
        let text = json!({
            "name": "clinic", "label": {"zh": "门诊工作日历"}, "utc_offset_minutes": 480,
            "weekly": {"mon": [["09:00","12:00"],["13:00","18:00"]], "tue": [], "wed": [],
                       "thu": [], "fri": [], "sat": [], "sun": [["00:00", "24:00"]]},
            "holidays": ["2026-10-01", "2026-10-02"],
            "exceptions": {"2026-09-27": [["09:00","18:00"]]}
        });
        let calendar = WorkingCalendar::parse(&text).unwrap();
        assert_eq!(serde_json::to_value(&calendar).unwrap(), text);
        assert!(calendar.validate().is_ok());
    }

    #[test]
    fn shape_problems_are_located() {
        let Err(DesignError::InvalidDefinition(issues)) = WorkingCalendar::parse(&json!({
            "name": "c", "label": {"zh": "日历"}, "utc_offset_minutes": 480,
            "weekly": {"mon": [["09:00", "12:00"], ["13:00", "25:00"]]}
        })) else {
            panic!("a malformed time was accepted");
        };
        assert_eq!(issues[0].path, "/weekly/mon/1/1");
        assert!(issues[0].message.contains("'25:00'"), "{issues:?}");
        let Err(DesignError::InvalidDefinition(issues)) = WorkingCalendar::parse(&json!({
            "label": {"zh": "日历"}, "utc_offset_minutes": 480, "holidays": ["2026-02-30"]
        })) else {
            panic!("a date that does not exist was accepted");
        };
        assert_eq!(issues[0].path, "/holidays/0");
    }

    #[test]
    fn every_meaning_problem_is_listed_at_its_pointer() {
        let calendar = WorkingCalendar::parse(&json!({
            "name": "Bad Name", "label": {"zh": "日历"}, "utc_offset_minutes": 900,
            "weekly": {
                "mon": [["09:00", "12:00"], ["11:00", "13:00"]],
                "tue": [["13:00", "18:00"], ["09:00", "12:00"]],
                "wed": [["12:00", "12:00"]]
            },
            "holidays": ["2026-10-01", "2026-10-01"],
            "exceptions": {"2026-10-01": [["09:00", "12:00"]]}
        }))
        .unwrap();
        let Err(DesignError::InvalidDefinition(issues)) = calendar.validate() else {
            panic!("an invalid calendar passed");
        };
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/name",
                "/utc_offset_minutes",
                "/weekly/mon/1",
                "/weekly/tue/1",
                "/weekly/wed/0",
                "/holidays/1",
                "/exceptions/2026-10-01"
            ]
        );
        assert!(issues[2].message.contains("overlaps"), "{issues:?}");
        assert!(issues[3].message.contains("in order"), "{issues:?}");
    }

    #[test]
    fn a_calendar_that_never_works_is_refused_and_gives_up() {
        let calendar = WorkingCalendar {
            weekly: Weekly::default(),
            ..WorkingCalendar::always()
        };
        let Err(DesignError::InvalidDefinition(issues)) = calendar.validate() else {
            panic!("a calendar without working time passed");
        };
        assert_eq!(issues[0].path, "/weekly");
        assert_eq!(calendar.add_working(0, HOUR), None);
        assert_eq!(calendar.next_working_start(0), None);
        assert_eq!(calendar.working_ms_between(0, 1_000 * HOUR), 0);
    }

    #[test]
    fn prepare_derives_the_name() {
        let calendar = WorkingCalendar {
            name: String::new(),
            label: Label::new("门诊", "Clinic"),
            ..WorkingCalendar::always()
        };
        assert_eq!(calendar.prepare().unwrap().name, "menzhen");
    }

    #[test]
    fn always_is_wall_time() {
        let always = WorkingCalendar::always();
        assert!(always.validate().is_ok());
        let t = china(2026, 11, 21, 23, 30);
        assert_eq!(always.add_working(t, 8 * HOUR), Some(t + 8 * HOUR));
        assert_eq!(always.working_ms_between(t, t + 100 * HOUR), 100 * HOUR);
        assert!(always.is_working(t));
        assert_eq!(always.next_working_start(t), Some(t));
    }

    #[test]
    fn eight_working_hours_from_friday_afternoon_end_on_monday_afternoon() {
        // 2026-11-20 is a Friday: 16:00–18:00 (2h), Monday 09:00–12:00 (3h), 13:00–16:00 (3h).
        let calendar = clinic();
        let start = china(2026, 11, 20, 16, 0);
        assert_eq!(
            calendar.add_working(start, 8 * HOUR),
            Some(china(2026, 11, 23, 16, 0))
        );
        assert_eq!(
            calendar.working_ms_between(start, china(2026, 11, 23, 16, 0)),
            8 * HOUR
        );
    }

    #[test]
    fn lunch_and_nights_are_not_working_time() {
        let calendar = clinic();
        assert!(calendar.is_working(china(2026, 11, 20, 9, 0)));
        assert!(!calendar.is_working(china(2026, 11, 20, 12, 0)));
        assert!(!calendar.is_working(china(2026, 11, 21, 10, 0)));
        assert_eq!(
            calendar.next_working_start(china(2026, 11, 20, 12, 15)),
            Some(china(2026, 11, 20, 13, 0))
        );
        assert_eq!(
            calendar.next_working_start(china(2026, 11, 20, 18, 0)),
            Some(china(2026, 11, 23, 9, 0))
        );
        // An hour that ends exactly at lunch lands at 12:00, not at 13:00.
        assert_eq!(
            calendar.add_working(china(2026, 11, 20, 11, 0), HOUR),
            Some(china(2026, 11, 20, 12, 0))
        );
    }

    #[test]
    fn whole_weeks_of_work_end_on_the_last_working_day() {
        // From Monday 00:00, exactly two weeks of work end on the second Friday at 18:00,
        // not at the third Monday's opening.
        let calendar = clinic();
        assert_eq!(
            calendar.add_working(china(2026, 11, 23, 0, 0), 2 * 40 * HOUR),
            Some(china(2026, 12, 4, 18, 0))
        );
    }

    #[test]
    fn a_whole_year_of_working_time_is_counted_by_weeks() {
        let calendar = clinic();
        let start = china(2026, 1, 5, 9, 0); // a Monday
        let year = 52 * 40 * HOUR;
        let end = calendar.add_working(start, year).unwrap();
        // 52 weeks from Monday 2026-01-05 09:00 end on Friday 2027-01-01 at 18:00.
        assert_eq!(end, china(2027, 1, 1, 18, 0));
        assert_eq!(calendar.working_ms_between(start, end), year);
        assert_eq!(calendar.working_ms_between(end, start), -year);
    }
}
