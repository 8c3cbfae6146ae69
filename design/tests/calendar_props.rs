//! The time-service building blocks, checked the way the clinic will notice them, then as
//! properties on random calendars and schedules.
//!
//! Clinic cases: 8 working hours from a Friday afternoon land on Monday afternoon; a Monday
//! holiday pushes them to Tuesday; a make-up Saturday is counted. Calendar properties: adding
//! `d` working ms and measuring back gives `d`; the answer is the earliest such instant and
//! lies in working time (or at an interval's end); it grows with `d` and adds up; the working
//! time between two instants matches a day-by-day count written independently here.
//! Recurrence properties: `next_after` is strictly later, matches every field of the
//! expression, and no minute in between does (checked against a naive search written here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Days, NaiveDate, Timelike};
use erpos_design::{
    ClockTime, DesignError, Interval, Label, LocalDate, Recurrence, Weekly, WorkingCalendar,
};
use proptest::prelude::*;
use serde_json::json;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn config() -> ProptestConfig {
    ProptestConfig {
        // 256 cases unless PROPTEST_CASES says otherwise; no regression files.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
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

/// The clinic: Mon–Fri 09:00–12:00 and 13:00–18:00, China time, plus what a test adds.
fn clinic(extra: serde_json::Value) -> WorkingCalendar {
    let hours = json!([["09:00", "12:00"], ["13:00", "18:00"]]);
    let mut definition = json!({
        "name": "clinic", "label": {"zh": "门诊工作日历"}, "utc_offset_minutes": 480,
        "weekly": {"mon": hours, "tue": hours, "wed": hours, "thu": hours, "fri": hours,
                   "sat": [], "sun": []}
    });
    for (key, value) in extra.as_object().unwrap() {
        definition[key] = value.clone();
    }
    let calendar = WorkingCalendar::parse(&definition).unwrap();
    calendar.validate().unwrap();
    calendar
}

// 2026-11-20 is a Friday.

#[test]
fn eight_working_hours_from_friday_16_00_fall_due_monday_16_00() {
    // Friday 16:00–18:00 is 2h, Monday 09:00–12:00 3h, 13:00–16:00 the last 3h.
    let calendar = clinic(json!({}));
    let due = calendar.add_working(china(2026, 11, 20, 16, 0), 8 * HOUR);
    assert_eq!(due, Some(china(2026, 11, 23, 16, 0)));
}

#[test]
fn a_monday_holiday_pushes_the_deadline_to_tuesday() {
    let calendar = clinic(json!({"holidays": ["2026-11-23"]}));
    let due = calendar.add_working(china(2026, 11, 20, 16, 0), 8 * HOUR);
    assert_eq!(due, Some(china(2026, 11, 24, 16, 0)));
    assert!(!calendar.is_working(china(2026, 11, 23, 10, 0)));
}

#[test]
fn a_make_up_saturday_is_counted() {
    let calendar = clinic(json!({"exceptions": {"2026-11-21": [["09:00", "18:00"]]}}));
    // Friday 2h, then Saturday 09:00–15:00 for the other 6h.
    let due = calendar.add_working(china(2026, 11, 20, 16, 0), 8 * HOUR);
    assert_eq!(due, Some(china(2026, 11, 21, 15, 0)));
    assert_eq!(
        calendar.working_ms_between(china(2026, 11, 20, 0, 0), china(2026, 11, 23, 0, 0)),
        8 * HOUR + 9 * HOUR
    );
}

#[test]
fn a_short_day_ends_work_early() {
    let calendar = clinic(json!({"exceptions": {"2026-11-23": [["09:00", "12:00"]]}}));
    // Friday 2h, Monday morning only (3h), Tuesday 09:00–12:00 for the last 3h.
    let due = calendar.add_working(china(2026, 11, 20, 16, 0), 8 * HOUR);
    assert_eq!(due, Some(china(2026, 11, 24, 12, 0)));
}

#[test]
fn national_day_week_with_its_make_up_days() {
    // 2026: 1–7 October off, Sunday 27 September and Saturday 10 October worked.
    let holidays: Vec<String> = (1..=7).map(|d| format!("2026-10-{d:02}")).collect();
    let calendar = clinic(json!({
        "holidays": holidays,
        "exceptions": {"2026-09-27": [["09:00", "18:00"]], "2026-10-10": [["09:00", "18:00"]]}
    }));
    // 40 working hours from Wednesday 30 September 09:00: that day 8h, then nothing until
    // Thursday 8 and Friday 9 October (16h), the make-up Saturday 10 October (9h), and Monday
    // 12 October 09:00–12:00 (3h) and 13:00–17:00 (the last 4h).
    let due = calendar.add_working(china(2026, 9, 30, 9, 0), 40 * HOUR);
    assert_eq!(due, Some(china(2026, 10, 12, 17, 0)));
    // The make-up Sunday before counts too: 9h on 27 September.
    assert_eq!(
        calendar.working_ms_between(china(2026, 9, 26, 0, 0), china(2026, 9, 28, 0, 0)),
        9 * HOUR
    );
}

#[test]
fn a_calendar_without_a_label_or_hours_is_refused_at_its_pointers() {
    let calendar = WorkingCalendar {
        label: Label {
            zh: String::new(),
            en: None,
        },
        weekly: Weekly::default(),
        ..WorkingCalendar::always()
    };
    let Err(DesignError::InvalidDefinition(issues)) = calendar.validate() else {
        panic!("an empty calendar passed");
    };
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["/label/zh", "/weekly"]);
}

/// The working time between two instants counted day by day, the obvious way (chrono's
/// weekdays, each interval clipped), to check the calendar's week-skipping arithmetic.
fn naive_between(calendar: &WorkingCalendar, a: i64, b: i64) -> i64 {
    let offset = i64::from(calendar.utc_offset_minutes) * MINUTE;
    let (la, lb) = (a + offset, b + offset);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let mut total = 0;
    for day in la.div_euclid(DAY)..=lb.div_euclid(DAY) {
        let date = epoch
            .checked_add_days(Days::new(u64::try_from(day).unwrap()))
            .unwrap();
        let local = LocalDate::from_ymd(date.year(), date.month(), date.day()).unwrap();
        let hours: &[Interval] = match calendar.exceptions.get(&local) {
            Some(hours) => hours,
            None if calendar.holidays.contains(&local) => &[],
            None => {
                let index = date.weekday().num_days_from_monday();
                calendar.weekly.day(usize::try_from(index).unwrap())
            }
        };
        for interval in hours {
            let start = day * DAY + i64::from(interval.start.minutes()) * MINUTE;
            let end = day * DAY + i64::from(interval.end.minutes()) * MINUTE;
            total += (end.min(lb) - start.max(la)).max(0);
        }
    }
    total
}

/// A day's hours: an even number of distinct quarter-hour boundaries, paired in order, so
/// the intervals are sorted and do not overlap (as a valid calendar's are).
fn day_hours() -> impl Strategy<Value = Vec<Interval>> {
    prop_oneof![
        1 => Just(BTreeSet::new()),
        4 => proptest::collection::btree_set(0u16..=96, 0..=6),
    ]
    .prop_map(|points| {
        let points: Vec<u16> = points.into_iter().collect();
        points
            .chunks_exact(2)
            .map(|pair| {
                let at = |q: u16| ClockTime::new(q * 15 / 60, q * 15 % 60).unwrap();
                Interval::new(at(pair[0]), at(pair[1]))
            })
            .collect()
    })
}

/// Day 0 of the random calendars' special dates and instants: 2026-01-01.
fn base() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
}

fn date_at(offset: u64) -> LocalDate {
    let d = base().checked_add_days(Days::new(offset)).unwrap();
    LocalDate::from_ymd(d.year(), d.month(), d.day()).unwrap()
}

/// Random valid calendars: random weekly hours, holidays and exceptions in the first 120
/// days of 2026, at a random quarter-hour offset.
fn calendars() -> impl Strategy<Value = WorkingCalendar> {
    (
        proptest::collection::vec(day_hours(), 7),
        proptest::collection::btree_set(0u64..120, 0..12),
        proptest::collection::btree_map(0u64..120, day_hours(), 0..8),
        -48i32..=56,
    )
        .prop_map(|(days, holidays, exceptions, quarters)| {
            let mut days = days.into_iter();
            let mut next = || days.next().unwrap_or_default();
            let weekly = Weekly {
                mon: next(),
                tue: next(),
                wed: next(),
                thu: next(),
                fri: next(),
                sat: next(),
                sun: next(),
            };
            let exceptions: BTreeMap<LocalDate, Vec<Interval>> = exceptions
                .into_iter()
                .filter(|(d, _)| !holidays.contains(d))
                .map(|(d, hours)| (date_at(d), hours))
                .collect();
            WorkingCalendar {
                name: "random".to_owned(),
                label: Label::new("随机", "Random"),
                utc_offset_minutes: quarters * 15,
                weekly,
                holidays: holidays.into_iter().map(date_at).collect(),
                exceptions,
            }
        })
        .prop_filter("the calendar must work at some time", |c| {
            c.validate().is_ok()
        })
}

/// Instants from shortly before to well after the special dates, at any millisecond.
fn instants() -> impl Strategy<Value = i64> {
    let start = base()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    (start - 20 * DAY)..(start + 160 * DAY)
}

/// Working durations from nothing to about a hundred working days, at any millisecond.
fn durations() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), 1i64..=HOUR, 0i64..=800 * HOUR]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn adding_working_time_then_measuring_it_gives_it_back(
        calendar in calendars(), start in instants(), d in durations(),
    ) {
        let Some(due) = calendar.add_working(start, d) else {
            // Only a calendar whose work is all in exceptions runs out of working time.
            prop_assert!((0..7).all(|i| calendar.weekly.day(i).is_empty()));
            prop_assert!(calendar.working_ms_between(start, start + 400 * DAY) < d);
            return Ok(());
        };
        prop_assert!(due >= start);
        prop_assert_eq!(calendar.working_ms_between(start, due), d);
        prop_assert_eq!(naive_between(&calendar, start, due), d);
        if d > 0 {
            // The earliest such instant, reached while working (or at an interval's end).
            prop_assert_eq!(calendar.working_ms_between(start, due - 1), d - 1);
            prop_assert!(calendar.is_working(due - 1));
        } else {
            prop_assert_eq!(due, start);
        }
    }

    #[test]
    fn whole_weeks_of_work_from_midnight_end_in_the_last_week(
        calendar in calendars(), day in -20i64..200, weeks in 1i64..5,
    ) {
        // Durations that are exact multiples of a week's work, from a local midnight: where
        // skipping whole weeks at once could overshoot to the next week's first opening.
        let week: i64 = (0..7)
            .flat_map(|i| calendar.weekly.day(i).iter())
            .map(|i| i64::from(i.end.minutes() - i.start.minutes()) * MINUTE)
            .sum();
        prop_assume!(week > 0);
        let midnight = base().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis()
            + day * DAY
            - i64::from(calendar.utc_offset_minutes) * MINUTE;
        let due = calendar.add_working(midnight, weeks * week).unwrap();
        prop_assert_eq!(naive_between(&calendar, midnight, due), weeks * week);
        prop_assert_eq!(naive_between(&calendar, midnight, due - 1), weeks * week - 1);
    }

    #[test]
    fn more_working_time_is_never_due_earlier_and_durations_add_up(
        calendar in calendars(), start in instants(), d1 in durations(), d2 in durations(),
    ) {
        let (short, long) = (d1.min(d2), d1.max(d2));
        if let Some(later) = calendar.add_working(start, long) {
            prop_assert!(calendar.add_working(start, short).is_some_and(|t| t <= later));
        }
        let Some(first) = calendar.add_working(start, d1) else {
            return Ok(());
        };
        prop_assert_eq!(
            calendar.add_working(first, d2),
            calendar.add_working(start, d1 + d2)
        );
    }

    #[test]
    fn working_time_between_counts_day_by_day(
        calendar in calendars(), a in instants(), span in 0i64..(90 * DAY),
    ) {
        let b = a + span;
        let between = calendar.working_ms_between(a, b);
        prop_assert_eq!(between, naive_between(&calendar, a, b));
        prop_assert_eq!(calendar.working_ms_between(b, a), -between);
        prop_assert!(between <= span);
    }

    #[test]
    fn next_working_start_is_the_first_working_instant(
        calendar in calendars(), t in instants(),
    ) {
        prop_assert_eq!(calendar.is_working(t), naive_between(&calendar, t, t + 1) == 1);
        let Some(next) = calendar.next_working_start(t) else {
            // Only when no working time is left: all of it was in exceptions before t.
            prop_assert_eq!(calendar.working_ms_between(t, t + 400 * DAY), 0);
            return Ok(());
        };
        prop_assert!(next >= t);
        prop_assert!(calendar.is_working(next));
        prop_assert_eq!(calendar.working_ms_between(t, next), 0);
        // Starting at it, the first working ms is counted at once.
        prop_assert_eq!(calendar.add_working(next, 1), Some(next + 1));
    }

    #[test]
    fn calendars_round_trip_through_json(calendar in calendars()) {
        let json = serde_json::to_value(&calendar).unwrap();
        prop_assert_eq!(WorkingCalendar::parse(&json).unwrap(), calendar);
    }
}

/// One field of a cron expression as generated: its text and the values it allows.
#[derive(Debug, Clone)]
struct CronField {
    text: String,
    values: BTreeSet<u32>,
}

/// A random field over `min..=max`: `*`, or a list of values, ranges and steps.
fn cron_field(min: u32, max: u32) -> impl Strategy<Value = CronField> {
    let item = prop_oneof![
        (min..=max).prop_map(|v| (v.to_string(), vec![v])),
        (min..=max, min..=max).prop_map(|(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            (format!("{a}-{b}"), (a..=b).collect())
        }),
        (1..=max).prop_map(move |step| {
            (
                format!("*/{step}"),
                (min..=max).step_by(step as usize).collect(),
            )
        }),
        (min..=max, min..=max, 1..=max).prop_map(|(a, b, step)| {
            let (a, b) = (a.min(b), a.max(b));
            (
                format!("{a}-{b}/{step}"),
                (a..=b).step_by(step as usize).collect(),
            )
        }),
    ];
    prop_oneof![
        1 => Just(CronField { text: "*".to_owned(), values: (min..=max).collect() }),
        3 => proptest::collection::vec(item, 1..=3).prop_map(|items| {
            let text = items.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(",");
            let values = items.into_iter().flat_map(|(_, v)| v).collect();
            CronField { text, values }
        }),
    ]
}

/// A random 5-field expression with the fields it was made of.
fn schedules() -> impl Strategy<Value = [CronField; 5]> {
    (
        cron_field(0, 59),
        cron_field(0, 23),
        cron_field(1, 31),
        cron_field(1, 12),
        cron_field(0, 7),
    )
        .prop_map(|(minute, hour, dom, month, dow)| [minute, hour, dom, month, dow])
}

/// Whether a local date matches the day fields: both day fields restricted (neither a bare
/// `*`) means either may match, as in Vixie cron; 7 is Sunday as 0 is.
fn day_matches(fields: &[CronField; 5], date: NaiveDate) -> bool {
    let [_, _, dom, month, dow] = fields;
    let weekday = date.weekday().num_days_from_sunday();
    let dow_ok = dow.values.contains(&weekday) || (weekday == 0 && dow.values.contains(&7));
    let dom_ok = dom.values.contains(&date.day());
    let day_ok = match (dom.text == "*", dow.text == "*") {
        (true, _) => dow_ok,
        (false, true) => dom_ok,
        (false, false) => dom_ok || dow_ok,
    };
    month.values.contains(&date.month()) && day_ok
}

/// Whether a local date-time matches every field (at a whole minute).
fn matches(fields: &[CronField; 5], t: &DateTime<chrono::FixedOffset>) -> bool {
    t.second() == 0
        && t.timestamp_subsec_millis() == 0
        && fields[0].values.contains(&t.minute())
        && fields[1].values.contains(&t.hour())
        && day_matches(fields, t.date_naive())
}

/// The first matching minute strictly after `t_ms`, searched naively: day by day, then hour
/// by hour and minute by minute within a matching day; None within 3000 days.
fn naive_next(fields: &[CronField; 5], offset_minutes: i32, t_ms: i64) -> Option<i64> {
    let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
    let first_minute = (t_ms.div_euclid(MINUTE) + 1) * MINUTE;
    let start = DateTime::from_timestamp_millis(first_minute)?.with_timezone(&offset);
    let mut day = start.date_naive();
    for _ in 0..3000 {
        if !day_matches(fields, day) {
            day = day.succ_opt()?;
            continue;
        }
        for hour in &fields[1].values {
            for minute in &fields[0].values {
                let local = day.and_hms_opt(*hour, *minute, 0)?;
                let at = local.and_local_timezone(offset).single()?;
                if at.timestamp_millis() >= first_minute && matches(fields, &at) {
                    return Some(at.timestamp_millis());
                }
            }
        }
        day = day.succ_opt()?;
    }
    None
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn next_after_is_the_next_matching_minute(
        fields in schedules(), quarters in -48i32..=56, t in instants(),
    ) {
        let expression = fields.iter().map(|f| f.text.as_str()).collect::<Vec<_>>().join(" ");
        let offset_minutes = quarters * 15;
        match Recurrence::parse(&expression, offset_minutes) {
            Ok(recurrence) => {
                let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
                let mut previous = t;
                for _ in 0..4 {
                    let next = recurrence.next_after(previous);
                    prop_assert_eq!(next, naive_next(&fields, offset_minutes, previous), "{}", expression);
                    let next = next.unwrap();
                    prop_assert!(next > previous);
                    let local = DateTime::from_timestamp_millis(next).unwrap().with_timezone(&offset);
                    prop_assert!(matches(&fields, &local), "{} at {}", expression, local);
                    previous = next;
                }
            }
            Err(DesignError::InvalidDefinition(issues)) => {
                // Only a date no year has (31 April) may be refused.
                prop_assert!(issues[0].message.contains("never occurs"), "{}: {:?}", expression, issues);
                prop_assert_eq!(naive_next(&fields, offset_minutes, t), None, "{}", expression);
            }
            Err(other) => prop_assert!(false, "{}: {}", expression, other),
        }
    }
}

#[test]
fn month_and_weekday_names_are_understood() {
    let r = Recurrence::parse("30 8 * jan-mar MON-FRI", 480).unwrap();
    // From Friday 2026-03-27 09:00: Monday 30 March 08:30.
    assert_eq!(
        r.next_after(china(2026, 3, 27, 9, 0)),
        Some(china(2026, 3, 30, 8, 30))
    );
    // After the last weekday of March, the next is the first weekday of January 2027.
    assert_eq!(
        r.next_after(china(2026, 3, 31, 9, 0)),
        Some(china(2027, 1, 1, 8, 30))
    );
}
