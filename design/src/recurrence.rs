//! Timed and recurring starts: "every weekday at 09:00" as a cron expression, and "7 days
//! after treatment_date" as a signed ISO 8601 offset.
//!
//! A [`Recurrence`] is a standard 5-field cron expression (minute, hour, day of month, month,
//! day of week, with `*`, lists, ranges and steps; or `@hourly`, `@daily`, `@weekly`,
//! `@monthly`, `@yearly`) evaluated at a fixed UTC offset, like a
//! [`WorkingCalendar`](crate::calendar::WorkingCalendar): the clinic's `0 9 * * 1-5` means
//! 09:00 China time whatever the server's clock zone. Parsing and the next-occurrence search
//! are the `croner` crate's; this module fixes the dialect to 5 fields (no seconds, no years,
//! which croner would otherwise accept) and turns croner's errors into messages that name the
//! offending field.
//!
//! An [`Offset`] is a signed duration (`P7D`, `PT2H`, `-P1D`) added to a date or instant, for
//! rules such as "remind 7 days after the treatment" or "1 day before the appointment".
//!
//! This module must never read a clock: every instant is passed in, as epoch milliseconds.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{DesignError, Issue};
use crate::service_check::parse_iso_duration;

/// The fields of a 5-field expression, in order, with the values each takes: named in error
/// messages so an analyst knows which part to fix.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, 0 and 7 both Sunday"),
];

/// The nicknames accepted in place of 5 fields, and what they stand for.
const NICKNAMES: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// What an analyst is told a schedule looks like when theirs is not one.
const FORM: &str = "write 5 fields (minute hour day-of-month month day-of-week), e.g. \
                    '0 9 * * 1-5' for 09:00 on weekdays, or @hourly, @daily, @weekly, @monthly";

/// A recurring schedule: a 5-field cron expression at a fixed UTC offset.
///
/// Fields take `*`, numbers, lists (`1,15`), ranges (`1-5`) and steps (`*/15`, `8-18/2`);
/// months and weekdays also take names (`JAN`, `MON`). As in Vixie cron, when both day fields
/// are restricted (neither is a bare `*`) a day matches if either does. croner's extensions are
/// accepted too (`L` for the last day of the month, `5L` for the last Friday, `1#2` for the
/// second Monday, `W` for the nearest weekday, a `+` before the weekday field to require both
/// day fields), since clinics do ask for "the last Friday of every month".
#[derive(Debug, Clone)]
pub struct Recurrence {
    expression: String,
    utc_offset_minutes: i32,
    offset: FixedOffset,
    cron: Cron,
}

impl PartialEq for Recurrence {
    /// Two recurrences are equal when written alike at the same offset.
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.utc_offset_minutes == other.utc_offset_minutes
    }
}

impl Eq for Recurrence {}

impl Recurrence {
    /// Parses `expression`, to be evaluated `utc_offset_minutes` east of UTC (480 for China).
    ///
    /// Refuses, with a message naming the problem, anything but 5 fields or a known nickname,
    /// a field with a value out of range or a malformed list / range / step (the message names
    /// the field and its values), an offset that is not a real one, and an expression that
    /// never occurs (`0 0 30 2 *`). The error is one issue with an empty path: the caller
    /// knows where the expression sits in its document (`/steps/2/timer/cron`) and prefixes it.
    pub fn parse(expression: &str, utc_offset_minutes: i32) -> Result<Self, DesignError> {
        Self::compile(expression, utc_offset_minutes)
            .map_err(|message| DesignError::InvalidDefinition(vec![Issue::new("", message)]))
    }

    /// Whether `expression` is a schedule, with the analyst's message if not: the shape a
    /// definition checker wants when it reports the message at its own JSON pointer. Validity
    /// does not depend on the UTC offset.
    pub fn check(expression: &str) -> Result<(), String> {
        Self::compile(expression, 0).map(|_| ())
    }

    /// [`Recurrence::parse`] with the refusal as a bare message.
    fn compile(expression: &str, utc_offset_minutes: i32) -> Result<Self, String> {
        let offset = utc_offset_minutes
            .checked_mul(60)
            .and_then(FixedOffset::east_opt)
            .filter(|_| (-720..=840).contains(&utc_offset_minutes))
            .ok_or_else(|| {
                format!(
                    "{utc_offset_minutes} minutes is not a UTC offset: real offsets lie between \
                     -720 (UTC-12:00) and 840 (UTC+14:00); China is 480"
                )
            })?;
        let text = expression.trim();
        if text.is_empty() {
            return Err(format!("the schedule is empty: {FORM}"));
        }
        let fields = if text.starts_with('@') {
            NICKNAMES
                .iter()
                .find(|(nick, _)| nick.eq_ignore_ascii_case(text))
                .map(|(_, fields)| *fields)
                .ok_or_else(|| {
                    format!(
                        "'{text}' is not a known schedule nickname: use one of {}",
                        NICKNAMES.map(|(n, _)| n).join(", ")
                    )
                })?
        } else {
            text
        };
        let parts: Vec<&str> = fields.split_whitespace().collect();
        if parts.len() != FIELDS.len() {
            let hint = if parts.len() > FIELDS.len() {
                " (seconds and years are not used)"
            } else {
                ""
            };
            return Err(format!(
                "'{text}' has {} field(s), not 5{hint}: {FORM}",
                parts.len()
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        // Each field alone first, so that the message can say which one is wrong.
        for (i, part) in parts.iter().enumerate() {
            let mut alone = ["*"; 5];
            alone[i] = part;
            if let Err(e) = parser.parse(&alone.join(" ")) {
                let (name, values) = FIELDS[i];
                return Err(format!(
                    "in '{text}', the {name} field '{part}' is invalid ({name} values are \
                     {values}): {e}"
                ));
            }
        }
        let cron = parser
            .parse(&parts.join(" "))
            .map_err(|e| format!("'{text}' is not a valid schedule: {e}"))?;
        let recurrence = Self {
            expression: text.to_owned(),
            utc_offset_minutes,
            offset,
            cron,
        };
        // An impossible date (30 February) parses but never comes: refuse it now rather than
        // leave a timer that silently never fires (croner gives up on a date no year has).
        if recurrence.next_after(0).is_none() {
            return Err(format!(
                "'{text}' never occurs: no day matches both its day-of-month and month"
            ));
        }
        Ok(recurrence)
    }

    /// The first occurrence strictly after `t_ms` (epoch ms), what a timer is armed with after
    /// each firing. None if `t_ms` or the occurrence lies beyond the dates chrono can handle.
    /// Occurrences fall on whole minutes.
    pub fn next_after(&self, t_ms: i64) -> Option<i64> {
        // Whole seconds: croner's exclusive search steps one second past the start, so from
        // the second containing t the first candidate is already after t.
        let start = self
            .offset
            .timestamp_opt(t_ms.div_euclid(1_000), 0)
            .single()?;
        let next: DateTime<FixedOffset> = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(next.timestamp_millis()).filter(|n| *n > t_ms)
    }

    /// The expression as written (trimmed; nicknames kept), for storing and showing.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The offset from UTC the expression is read at, in minutes.
    pub fn utc_offset_minutes(&self) -> i32 {
        self.utc_offset_minutes
    }
}

/// A signed span of time written as an ISO 8601 duration (`P7D`, `PT2H`, `-P1D`), added to a
/// date or an instant: "7 days after treatment_date", "1 day before the appointment".
///
/// Built on [`parse_iso_duration`], so it takes the same units (weeks, days, hours, minutes,
/// seconds; never years or months, whose length varies) plus a leading `-` for "before".
/// Days are 24 hours: at a fixed UTC offset there is no daylight-saving day of 23 or 25.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset {
    seconds: i64,
}

impl Offset {
    /// An offset of `seconds` (negative: before).
    pub fn from_seconds(seconds: i64) -> Self {
        Self { seconds }
    }

    /// Parses `P7D`, `PT2H30M`, `-P1D`, …; the error names the text and the accepted form.
    /// Like [`Recurrence::parse`], the issue's path is empty for the caller to prefix.
    pub fn parse(text: &str) -> Result<Self, DesignError> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        parse_iso_duration(unsigned)
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| Self::from_seconds(if negative { -s } else { s }))
            .ok_or_else(|| {
                DesignError::InvalidDefinition(vec![Issue::new(
                    "",
                    format!(
                        "'{text}' is not a duration: write ISO 8601 such as P7D (7 days), PT2H \
                         (2 hours), P1DT12H, PT30M, with a leading - for 'before' (-P1D); \
                         years and months are not used"
                    ),
                )])
            })
    }

    /// The offset in seconds (negative: before).
    pub fn seconds(self) -> i64 {
        self.seconds
    }

    /// The offset in milliseconds, the kernel's unit for instants; None on overflow.
    pub fn ms(self) -> Option<i64> {
        self.seconds.checked_mul(1_000)
    }

    /// `t_ms` moved by the offset; None past the range of epoch milliseconds.
    pub fn apply(self, t_ms: i64) -> Option<i64> {
        t_ms.checked_add(self.ms()?)
    }
}

impl fmt::Display for Offset {
    /// The canonical ISO 8601 form: days, then hours, minutes and seconds (`P1DT2H`, `-PT30M`,
    /// `PT0S`); weeks are written as days.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.seconds < 0 { "-" } else { "" };
        let total = self.seconds.unsigned_abs();
        let (days, hours) = (total / 86_400, total % 86_400 / 3_600);
        let (minutes, seconds) = (total % 3_600 / 60, total % 60);
        write!(f, "{sign}P")?;
        if days > 0 {
            write!(f, "{days}D")?;
        }
        if !total.is_multiple_of(86_400) || total == 0 {
            write!(f, "T")?;
            for (n, unit) in [(hours, 'H'), (minutes, 'M'), (seconds, 'S')] {
                if n > 0 || (total == 0 && unit == 'S') {
                    write!(f, "{n}{unit}")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Offset {
    type Err = DesignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Offset {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use chrono::NaiveDate;

    const HOUR: i64 = 3_600_000;

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

    fn message(result: Result<impl fmt::Debug, DesignError>) -> String {
        match result {
            Err(DesignError::InvalidDefinition(issues)) => issues[0].message.clone(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn weekday_mornings_in_china_time() {
        let r = Recurrence::parse("0 9 * * 1-5", 480).unwrap();
        // Friday 2026-11-20 10:00 → Monday 09:00; exactly at 09:00 → the next day's.
        assert_eq!(
            r.next_after(china(2026, 11, 20, 10, 0)),
            Some(china(2026, 11, 23, 9, 0))
        );
        assert_eq!(
            r.next_after(china(2026, 11, 23, 9, 0)),
            Some(china(2026, 11, 24, 9, 0))
        );
        assert_eq!(
            r.next_after(china(2026, 11, 23, 9, 0) - 1),
            Some(china(2026, 11, 23, 9, 0))
        );
    }

    #[test]
    fn nicknames_expand() {
        let daily = Recurrence::parse("@daily", 480).unwrap();
        assert_eq!(
            daily.next_after(china(2026, 11, 20, 10, 0)),
            Some(china(2026, 11, 21, 0, 0))
        );
        let weekly = Recurrence::parse("@WEEKLY", 480).unwrap();
        assert_eq!(
            weekly.next_after(china(2026, 11, 20, 10, 0)),
            Some(china(2026, 11, 22, 0, 0))
        );
        let monthly = Recurrence::parse("@monthly", 480).unwrap();
        assert_eq!(
            monthly.next_after(china(2026, 11, 20, 10, 0)),
            Some(china(2026, 12, 1, 0, 0))
        );
        let hourly = Recurrence::parse("@hourly", 0).unwrap();
        assert_eq!(hourly.next_after(30 * 60_000), Some(HOUR));
    }

    #[test]
    fn errors_name_the_problem() {
        let m = message(Recurrence::parse("61 * * * *", 480));
        assert!(m.contains("minute field '61'") && m.contains("0-59"), "{m}");
        let m = message(Recurrence::parse("0 9 * 13 *", 480));
        assert!(m.contains("month field '13'"), "{m}");
        let m = message(Recurrence::parse("0 9 * * 1-5 2026", 480));
        assert!(m.contains("6 field(s)") && m.contains("years"), "{m}");
        let m = message(Recurrence::parse("0 0 30 2 *", 480));
        assert!(m.contains("never occurs"), "{m}");
        let m = message(Recurrence::parse("@reboot", 480));
        assert!(m.contains("@daily"), "{m}");
        let m = message(Recurrence::parse("  ", 480));
        assert!(m.contains("empty"), "{m}");
        let m = message(Recurrence::parse("*/0 * * * *", 480));
        assert!(m.contains("minute field '*/0'"), "{m}");
        let m = message(Recurrence::parse("0 9 * * *", 1_000));
        assert!(m.contains("UTC offset"), "{m}");
    }

    #[test]
    fn check_gives_the_bare_message() {
        assert_eq!(Recurrence::check("0 9 * * 1-5"), Ok(()));
        let m = Recurrence::check("0 25 * * *").unwrap_err();
        assert!(
            m.starts_with("in '0 25 * * *', the hour field '25' is invalid"),
            "{m}"
        );
    }

    #[test]
    fn leap_days_are_found() {
        let r = Recurrence::parse("0 0 29 2 *", 480).unwrap();
        assert_eq!(
            r.next_after(china(2026, 3, 1, 0, 0)),
            Some(china(2028, 2, 29, 0, 0))
        );
    }

    #[test]
    fn offsets_parse_with_a_sign_and_print_canonically() {
        assert_eq!(Offset::parse("P7D").unwrap().seconds(), 7 * 86_400);
        assert_eq!(Offset::parse("-P1D").unwrap().seconds(), -86_400);
        assert_eq!(Offset::parse("PT2H").unwrap().ms(), Some(2 * HOUR));
        assert_eq!(Offset::parse("P2W").unwrap().to_string(), "P14D");
        assert_eq!(Offset::parse("-PT90M").unwrap().to_string(), "-PT1H30M");
        assert_eq!(Offset::parse("P1DT2H").unwrap().to_string(), "P1DT2H");
        assert_eq!(Offset::parse("PT0S").unwrap().to_string(), "PT0S");
        assert_eq!(
            Offset::parse("-P1D")
                .unwrap()
                .apply(china(2026, 11, 20, 9, 0)),
            Some(china(2026, 11, 19, 9, 0))
        );
        for bad in ["", "7D", "P1M", "--P1D", "+P1D", "-", "P-1D"] {
            let m = message(Offset::parse(bad));
            assert!(m.contains("is not a duration"), "{bad}: {m}");
        }
        let json = serde_json::to_value(Offset::parse("-P1D").unwrap()).unwrap();
        assert_eq!(json, "-P1D");
        assert_eq!(
            serde_json::from_value::<Offset>(json).unwrap().seconds(),
            -86_400
        );
    }
}
