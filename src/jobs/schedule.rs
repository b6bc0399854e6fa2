//! Schedules: when a job's runs fire, in its time zone, and the data
//! intervals those runs process.
//!
//! A run processes one data interval `[start, end)` and fires at `end`, as in
//! Airflow: the daily run that fires at 2026-01-02 00:00 processes
//! 2026-01-01. A schedule is a cron expression (5 fields, or 6 with leading
//! seconds), a macro (`@daily`, ...) or a fixed period (`every 15m`).
//!
//! Cron fields are read on the wall clock of the job's time zone, so a daily
//! 03:00 job runs at 03:00 local time in winter and in summer. Where the
//! clock jumps (daylight saving time):
//! - a wall clock time that is skipped (spring forward) fires once, at the
//!   first real instant after the jump: a 02:30 job runs at 03:00 that day;
//! - a wall clock time that repeats (fall back) fires once, at its first
//!   occurrence, for a job with a fixed time of day (`30 2 * * *`);
//! - a job with a wildcard or stepped hour, minute or second (`@hourly`,
//!   `*/15 * * * *`) fires at every real instant that matches, so an hourly
//!   job fires each of the 25 real hours of the fall-back day once.
//!
//! `every` periods are exact elapsed time, independent of the time zone:
//! fires at `start + k * period` for every integer `k` (`every 1d` is always
//! 24 hours; use `@daily` for local midnights).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::core::diagnostic::did_you_mean;

/// The cron macros and the expressions they stand for.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// What every schedule error says is accepted.
const EXPECTED: &str = "expected a cron expression such as \"0 3 * * *\" (5 fields, or 6 with leading seconds), \
     a macro such as \"@daily\", or a period such as \"every 15m\"";

/// A job's schedule: when its runs fire, in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as written.
    expression: String,
    /// Cron fields or a fixed period.
    kind: Kind,
    /// The time zone cron fields are read in.
    tz: Tz,
}

/// The two ways a schedule fires.
#[derive(Debug, Clone)]
enum Kind {
    /// On the wall clock times a cron expression matches.
    Cron(Box<Cron>),
    /// Every `period`, on the grid anchored at the job's start.
    Every(TimeDelta),
}

/// One data interval [start, end): the period a run processes; the run fires
/// at `end` (Airflow's semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Interval {
    /// The first instant the run processes.
    pub start: DateTime<Utc>,
    /// The first instant after the period; the run fires here.
    pub end: DateTime<Utc>,
}

impl Interval {
    /// `ds` of the templates: the start's date in `tz`, as `YYYY-MM-DD`.
    pub fn ds(&self, tz: Tz) -> String {
        self.start.with_timezone(&tz).format("%Y-%m-%d").to_string()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {})",
            self.start.to_rfc3339(),
            self.end.to_rfc3339()
        )
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.tz)
    }
}

impl Schedule {
    /// Parses cron with 5 fields or 6 (leading seconds), the macros @yearly
    /// @annually @monthly @weekly @daily @midnight @hourly, and "every 15m" /
    /// "every 1h30m" (humantime durations, fires anchored at the job's
    /// `start`), in `timezone` (IANA name such as "Europe/Amsterdam"; None =
    /// UTC). The error is a one-line message that says what was expected.
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<Schedule, String> {
        let tz = match timezone {
            Some(name) => parse_timezone(name)?,
            None => Tz::UTC,
        };
        let text = expr.trim();
        let kind = if let Some(period) = text.strip_prefix("every") {
            Kind::Every(parse_period(period.trim())?)
        } else if text.starts_with('@') {
            Kind::Cron(Box::new(parse_cron(macro_expression(text)?)?))
        } else {
            Kind::Cron(Box::new(parse_cron(text)?))
        };
        Ok(Schedule {
            expression: text.to_string(),
            kind,
            tz,
        })
    }

    /// The time zone cron fields are read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The fixed period of an `every` schedule; None for cron.
    pub fn period(&self) -> Option<std::time::Duration> {
        match &self.kind {
            Kind::Every(period) => period.to_std().ok(),
            Kind::Cron(_) => None,
        }
    }

    /// The first fire time strictly after `after` (for `every`, anchored at
    /// `anchor`). None only past the year 5000 or for dates cron never meets.
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron(cron) => {
                let from = whole_second(after).with_timezone(&self.tz);
                let next = cron.find_next_occurrence(&from, false).ok()?;
                Some(next.with_timezone(&Utc))
            }
            Kind::Every(period) => {
                let steps = steps_since(anchor, after, *period)?.checked_add(1)?;
                grid_point(anchor, *period, steps)
            }
        }
    }

    /// The latest fire time at or before `at` (for `every`, anchored at
    /// `anchor`).
    pub fn last_at_or_before(
        &self,
        at: DateTime<Utc>,
        anchor: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron(cron) => {
                let from = whole_second(at).with_timezone(&self.tz);
                let last = cron.find_previous_occurrence(&from, true).ok()?;
                Some(last.with_timezone(&Utc))
            }
            Kind::Every(period) => grid_point(anchor, *period, steps_since(anchor, at, *period)?),
        }
    }

    /// The first fire time at or after `at` (for `every`, anchored at
    /// `anchor`).
    pub fn first_at_or_after(
        &self,
        at: DateTime<Utc>,
        anchor: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.next_after(at - TimeDelta::nanoseconds(1), anchor)
    }

    /// The intervals due at `now`: complete intervals (end <= now) starting
    /// at or after `start`, and ending after `last_end` (the end of the last
    /// interval already scheduled; None = none yet), oldest first. With
    /// catchup = false only the latest of them (Airflow's catchup=False).
    ///
    /// An interval never starts before `last_end`, so a schedule changed
    /// between runs does not process the same time twice.
    pub fn due_intervals(
        &self,
        start: DateTime<Utc>,
        last_end: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        catchup: bool,
    ) -> Vec<Interval> {
        let earliest = last_end.map_or(start, |end| end.max(start));
        if !catchup {
            return self
                .interval_before(now, start)
                .filter(|interval| interval.start >= earliest)
                .into_iter()
                .collect();
        }
        self.intervals_from(earliest, start)
            .take_while(|interval| interval.end <= now)
            .collect()
    }

    /// Backfill: every interval whose start lies in [from, to], oldest first.
    /// `start_anchor` anchors `every` periods; intervals may end after `to`
    /// (and after now: the caller decides whether to wait for them).
    pub fn intervals_between(
        &self,
        start_anchor: DateTime<Utc>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<Interval> {
        self.intervals_from(from, start_anchor)
            .take_while(|interval| interval.start <= to)
            .collect()
    }

    /// The interval of a run triggered by hand at `at`: the latest complete
    /// one (end <= at).
    pub fn interval_before(&self, at: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<Interval> {
        let end = self.last_at_or_before(at, anchor)?;
        let start = match &self.kind {
            Kind::Cron(cron) => {
                let from = end.with_timezone(&self.tz);
                cron.find_previous_occurrence(&from, false)
                    .ok()?
                    .with_timezone(&Utc)
            }
            Kind::Every(period) => end - *period,
        };
        Some(Interval { start, end })
    }

    /// The consecutive intervals whose start is at or after `from`, oldest
    /// first, without end.
    fn intervals_from(
        &self,
        from: DateTime<Utc>,
        anchor: DateTime<Utc>,
    ) -> impl Iterator<Item = Interval> + '_ {
        let first = self.first_at_or_after(from, anchor);
        let mut start = first;
        std::iter::from_fn(move || {
            let begin = start?;
            let end = self.next_after(begin, anchor)?;
            start = Some(end);
            Some(Interval { start: begin, end })
        })
    }
}

/// `start = 2026-01-01` (TOML date, local date-time or offset date-time, or
/// the same as a string) as an instant: a date is midnight in `tz`, a local
/// date-time is read in `tz`.
pub fn parse_start(value: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let text = value.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(Default::default()))
    });
    match local {
        Some(local) => local_instant(local, tz)
            .ok_or_else(|| format!("start \"{text}\" does not exist in time zone {tz}")),
        None => Err(format!(
            "expected a date such as 2026-01-01, a local date-time such as 2026-01-01T03:00:00, \
             or one with an offset such as 2026-01-01T03:00:00Z; found \"{text}\""
        )),
    }
}

/// A duration such as "10s", "10m", "6h", "1d" (humantime), with an error
/// that says what is expected.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "expected a duration such as \"10s\", \"10m\", \"6h\", \"1d\" or \"1h30m\"; found \"{}\" ({e})",
            text.trim()
        )
    })
}

/// An IANA time zone by name, with a close match named when there is one.
fn parse_timezone(name: &str) -> Result<Tz, String> {
    let name = name.trim();
    if let Ok(tz) = Tz::from_str(name) {
        return Ok(tz);
    }
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    let suggestion = close_timezone(name, &names)
        .map(|close| format!("; did you mean \"{close}\"?"))
        .unwrap_or_default();
    Err(format!(
        "unknown time zone \"{name}\": expected an IANA name such as \"Europe/Amsterdam\" or \"UTC\"{suggestion}"
    ))
}

/// The zone `name` most likely means: the same name in other letter case,
/// a zone whose city is `name`, or a near spelling.
fn close_timezone<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_lowercase().replace(' ', "_");
    let city = |zone: &str| zone.rsplit('/').next().unwrap_or(zone).to_lowercase();
    names
        .iter()
        .find(|zone| zone.to_lowercase() == lower)
        .or_else(|| {
            names
                .iter()
                .find(|zone| zone.contains('/') && city(zone) == lower)
        })
        .copied()
        .or_else(|| did_you_mean(name, names))
}

/// The cron expression a macro stands for.
fn macro_expression(text: &str) -> Result<&'static str, String> {
    let lower = text.to_lowercase();
    MACROS
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(_, cron)| *cron)
        .ok_or_else(|| {
            let names: Vec<&str> = MACROS.iter().map(|(name, _)| *name).collect();
            format!(
                "unknown schedule macro \"{text}\": expected one of {}",
                names.join(", ")
            )
        })
}

/// A cron expression of 5 fields, or 6 with leading seconds, naming the
/// field at fault when it does not parse.
fn parse_cron(text: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 && fields.len() != 6 {
        return Err(format!(
            "{EXPECTED}; found \"{text}\" with {} fields",
            fields.len()
        ));
    }
    let cron = cron_parser().parse(text).map_err(|e| {
        bad_field(&fields).unwrap_or_else(|| format!("invalid cron expression \"{text}\": {e}"))
    })?;
    if cron
        .find_next_occurrence(&Utc.timestamp_opt(0, 0).single().unwrap_or_default(), false)
        .is_err()
    {
        return Err(format!(
            "cron expression \"{text}\" never fires: no date has that day and month"
        ));
    }
    Ok(cron)
}

/// The cron parser: standard cron, seconds optional, no year field.
fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// What each cron field accepts, for 6 fields (seconds first).
const FIELDS: [(&str, &str); 6] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 or SUN-SAT"),
];

/// The message for the first field that does not parse on its own (every
/// other field a wildcard).
fn bad_field(fields: &[&str]) -> Option<String> {
    let names = &FIELDS[6 - fields.len()..];
    (0..fields.len()).find_map(|i| {
        let alone: Vec<&str> = (0..fields.len()).map(|j| if i == j { fields[i] } else { "*" }).collect();
        cron_parser().parse(&alone.join(" ")).err().map(|_| {
            let (name, range) = names[i];
            format!(
                "cron field {} ({name}) \"{}\" is invalid: expected {range}, a list, a range or a step such as */15",
                i + 1,
                fields[i]
            )
        })
    })
}

/// The period of `every <duration>`: at least one second.
fn parse_period(text: &str) -> Result<TimeDelta, String> {
    let period = humantime::parse_duration(text)
        .map_err(|_| format!("{EXPECTED}; found \"every {text}\", whose period is not a duration such as 15m or 1h30m"))?;
    if period < std::time::Duration::from_secs(1) {
        return Err(format!(
            "\"every {text}\": expected a period of at least 1s"
        ));
    }
    TimeDelta::from_std(period).map_err(|_| format!("\"every {text}\": the period is too long"))
}

/// How many whole periods lie between `anchor` and `at` (rounded down; negative before the anchor).
fn steps_since(anchor: DateTime<Utc>, at: DateTime<Utc>, period: TimeDelta) -> Option<i64> {
    let elapsed = i128::from((at - anchor).num_nanoseconds()?);
    let period = i128::from(period.num_nanoseconds()?);
    i64::try_from(elapsed.div_euclid(period)).ok()
}

/// The grid point `anchor + steps * period`.
fn grid_point(anchor: DateTime<Utc>, period: TimeDelta, steps: i64) -> Option<DateTime<Utc>> {
    let offset = TimeDelta::nanoseconds(period.num_nanoseconds()?.checked_mul(steps)?);
    anchor.checked_add_signed(offset)
}

/// `at` without its fraction of a second (cron works in whole seconds).
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(0).unwrap_or(at)
}

/// A wall clock time in `tz` as an instant: the earlier of a repeated time;
/// for a skipped one, the first minute after the jump.
fn local_instant(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    let resolve = |wall: NaiveDateTime| match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => None,
    };
    resolve(local).or_else(|| {
        let minute = local.with_second(0)?.with_nanosecond(0)?;
        (1..=24 * 60).find_map(|m| resolve(minute + TimeDelta::minutes(m)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instant written as RFC 3339.
    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a test instant")
            .with_timezone(&Utc)
    }

    fn schedule(expr: &str, tz: &str) -> Schedule {
        Schedule::parse(expr, Some(tz)).expect("a valid schedule")
    }

    /// The first `count` fire times after `from`, as RFC 3339 in UTC.
    fn fires(schedule: &Schedule, from: &str, count: usize) -> Vec<String> {
        let anchor = at(from);
        let mut times = Vec::new();
        let mut after = anchor;
        while times.len() < count {
            after = schedule.next_after(after, anchor).expect("a next fire");
            times.push(after.to_rfc3339());
        }
        times
    }

    /// Intervals as (start, end) pairs of RFC 3339 strings in UTC.
    fn spans(intervals: &[Interval]) -> Vec<(String, String)> {
        intervals
            .iter()
            .map(|i| (i.start.to_rfc3339(), i.end.to_rfc3339()))
            .collect()
    }

    fn span(start: &str, end: &str) -> (String, String) {
        (at(start).to_rfc3339(), at(end).to_rfc3339())
    }

    fn error(expr: &str, tz: Option<&str>) -> String {
        let message = Schedule::parse(expr, tz).expect_err("an invalid schedule");
        assert!(!message.contains('\n'), "one line: {message}");
        message
    }

    #[test]
    fn a_daily_0300_job_in_amsterdam_fires_at_0300_local_on_both_sides_of_spring_forward() {
        let daily = schedule("0 3 * * *", "Europe/Amsterdam");
        // 2026-03-29 02:00 CET jumps to 03:00 CEST.
        let times = fires(&daily, "2026-03-27T12:00:00Z", 3);
        assert_eq!(
            times,
            [
                "2026-03-28T02:00:00+00:00",
                "2026-03-29T01:00:00+00:00",
                "2026-03-30T01:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_daily_0300_job_in_amsterdam_fires_at_0300_local_on_both_sides_of_fall_back() {
        let daily = schedule("0 3 * * *", "Europe/Amsterdam");
        // 2026-10-25 03:00 CEST falls back to 02:00 CET.
        let times = fires(&daily, "2026-10-23T12:00:00Z", 3);
        assert_eq!(
            times,
            [
                "2026-10-24T01:00:00+00:00",
                "2026-10-25T02:00:00+00:00",
                "2026-10-26T02:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_0230_job_on_the_spring_forward_day_fires_once_at_the_first_instant_after_the_jump() {
        let daily = schedule("30 2 * * *", "Europe/Amsterdam");
        let times = fires(&daily, "2026-03-28T12:00:00Z", 2);
        // 02:30 does not exist on 2026-03-29: it fires at 03:00 CEST.
        assert_eq!(
            times,
            ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
        );
    }

    #[test]
    fn a_0230_job_on_the_fall_back_day_fires_once_at_the_first_0230() {
        let daily = schedule("30 2 * * *", "Europe/Amsterdam");
        let times = fires(&daily, "2026-10-24T12:00:00Z", 2);
        // 02:30 CEST is 00:30 UTC; 02:30 CET an hour later does not fire.
        assert_eq!(
            times,
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
        );
    }

    #[test]
    fn an_hourly_job_fires_each_real_hour_once_across_both_changes_in_amsterdam() {
        let hourly = schedule("@hourly", "Europe/Amsterdam");
        for from in ["2026-03-28T22:00:00Z", "2026-10-24T22:00:00Z"] {
            let start = at(from);
            let expected: Vec<String> = (1..=6)
                .map(|h| (start + TimeDelta::hours(h)).to_rfc3339())
                .collect();
            assert_eq!(fires(&hourly, from, 6), expected, "from {from}");
        }
    }

    #[test]
    fn new_york_daily_jobs_keep_local_time_across_both_changes() {
        let daily = schedule("0 3 * * *", "America/New_York");
        // 2026-03-08 02:00 EST jumps to 03:00 EDT.
        let spring = fires(&daily, "2026-03-06T12:00:00Z", 3);
        assert_eq!(
            spring,
            [
                "2026-03-07T08:00:00+00:00",
                "2026-03-08T07:00:00+00:00",
                "2026-03-09T07:00:00+00:00"
            ]
        );
        // 2026-11-01 02:00 EDT falls back to 01:00 EST.
        let fall = fires(&daily, "2026-10-30T12:00:00Z", 3);
        assert_eq!(
            fall,
            [
                "2026-10-31T07:00:00+00:00",
                "2026-11-01T08:00:00+00:00",
                "2026-11-02T08:00:00+00:00"
            ]
        );
    }

    #[test]
    fn new_york_jobs_in_the_skipped_and_repeated_hours_fire_once() {
        let skipped = schedule("30 2 * * *", "America/New_York");
        let times = fires(&skipped, "2026-03-07T12:00:00Z", 2);
        assert_eq!(
            times,
            ["2026-03-08T07:00:00+00:00", "2026-03-09T06:30:00+00:00"]
        );
        let repeated = schedule("30 1 * * *", "America/New_York");
        let times = fires(&repeated, "2026-10-31T12:00:00Z", 2);
        assert_eq!(
            times,
            ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"]
        );
    }

    #[test]
    fn new_york_hourly_job_fires_each_real_hour_once_across_fall_back() {
        let hourly = schedule("0 * * * *", "America/New_York");
        let start = at("2026-11-01T03:00:00Z");
        let expected: Vec<String> = (1..=5)
            .map(|h| (start + TimeDelta::hours(h)).to_rfc3339())
            .collect();
        assert_eq!(fires(&hourly, "2026-11-01T03:00:00Z", 5), expected);
    }

    #[test]
    fn daily_intervals_are_23_and_25_hours_long_on_the_change_days() {
        let daily = schedule("@daily", "Europe/Amsterdam");
        let start = at("2026-03-27T23:00:00Z");
        let spring = daily.intervals_between(start, start, at("2026-03-28T23:00:00Z"));
        let lengths: Vec<i64> = spring
            .iter()
            .map(|i| (i.end - i.start).num_hours())
            .collect();
        assert_eq!(lengths, [24, 23]);
        let start = at("2026-10-23T22:00:00Z");
        let fall = daily.intervals_between(start, start, at("2026-10-24T22:00:00Z"));
        let lengths: Vec<i64> = fall.iter().map(|i| (i.end - i.start).num_hours()).collect();
        assert_eq!(lengths, [24, 25]);
    }

    #[test]
    fn catchup_yields_one_interval_per_missed_day_oldest_first() {
        let daily = schedule("@daily", "UTC");
        let due = daily.due_intervals(
            at("2026-01-01T00:00:00Z"),
            None,
            at("2026-01-04T12:00:00Z"),
            true,
        );
        assert_eq!(
            spans(&due),
            [
                span("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
                span("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"),
                span("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
            ]
        );
    }

    #[test]
    fn catchup_goes_on_after_the_last_scheduled_interval() {
        let daily = schedule("@daily", "UTC");
        let start = at("2026-01-01T00:00:00Z");
        let due = daily.due_intervals(
            start,
            Some(at("2026-01-03T00:00:00Z")),
            at("2026-01-04T12:00:00Z"),
            true,
        );
        assert_eq!(
            spans(&due),
            [span("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z")]
        );
        let none = daily.due_intervals(
            start,
            Some(at("2026-01-04T00:00:00Z")),
            at("2026-01-04T12:00:00Z"),
            true,
        );
        assert!(none.is_empty());
    }

    #[test]
    fn without_catchup_only_the_latest_complete_interval_is_due() {
        let daily = schedule("@daily", "UTC");
        let start = at("2026-01-01T00:00:00Z");
        let now = at("2026-01-04T12:00:00Z");
        let due = daily.due_intervals(start, None, now, false);
        assert_eq!(
            spans(&due),
            [span("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z")]
        );
        let after_a_run = daily.due_intervals(start, Some(at("2026-01-04T00:00:00Z")), now, false);
        assert!(after_a_run.is_empty());
        let late = daily.due_intervals(start, Some(at("2026-01-02T00:00:00Z")), now, false);
        assert_eq!(
            spans(&late),
            [span("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z")]
        );
    }

    #[test]
    fn an_interval_is_due_only_once_it_is_complete() {
        let daily = schedule("@daily", "UTC");
        let start = at("2026-01-01T00:00:00Z");
        assert!(
            daily
                .due_intervals(start, None, at("2026-01-01T23:59:59Z"), true)
                .is_empty()
        );
        assert!(
            daily
                .due_intervals(start, None, at("2026-01-01T23:59:59Z"), false)
                .is_empty()
        );
        assert_eq!(
            daily
                .due_intervals(start, None, at("2026-01-02T00:00:00Z"), true)
                .len(),
            1
        );
    }

    #[test]
    fn a_start_between_fire_times_begins_at_the_next_fire_time() {
        let daily = schedule("@daily", "UTC");
        let due = daily.due_intervals(
            at("2026-01-01T10:00:00Z"),
            None,
            at("2026-01-03T12:00:00Z"),
            true,
        );
        assert_eq!(
            spans(&due),
            [span("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z")]
        );
    }

    #[test]
    fn backfill_includes_the_intervals_starting_on_both_ends_of_the_range() {
        let daily = schedule("0 0 * * *", "UTC");
        let from = at("2026-01-01T00:00:00Z");
        let range = daily.intervals_between(from, from, at("2026-01-03T00:00:00Z"));
        assert_eq!(
            spans(&range),
            [
                span("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
                span("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"),
                span("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
            ]
        );
        assert!(
            daily
                .intervals_between(from, at("2026-01-03T00:00:00Z"), from)
                .is_empty()
        );
    }

    #[test]
    fn backfill_of_a_single_day_in_a_time_zone_is_that_local_day() {
        let daily = schedule("@daily", "Europe/Amsterdam");
        let day = parse_start("2026-07-01", daily.timezone()).expect("a date");
        let range = daily.intervals_between(day, day, day);
        assert_eq!(
            spans(&range),
            [span("2026-06-30T22:00:00Z", "2026-07-01T22:00:00Z")]
        );
        assert_eq!(range[0].ds(daily.timezone()), "2026-07-01");
    }

    #[test]
    fn every_15m_fires_on_the_grid_anchored_at_the_start() {
        let every = schedule("every 15m", "Europe/Amsterdam");
        let start = at("2026-01-01T10:07:00Z");
        assert_eq!(
            every.next_after(at("2026-01-01T10:30:00Z"), start),
            Some(at("2026-01-01T10:37:00Z"))
        );
        assert_eq!(
            every.next_after(at("2026-01-01T10:37:00Z"), start),
            Some(at("2026-01-01T10:52:00Z"))
        );
        let due = every.due_intervals(start, None, at("2026-01-01T11:00:00Z"), true);
        assert_eq!(
            spans(&due),
            [
                span("2026-01-01T10:07:00Z", "2026-01-01T10:22:00Z"),
                span("2026-01-01T10:22:00Z", "2026-01-01T10:37:00Z"),
                span("2026-01-01T10:37:00Z", "2026-01-01T10:52:00Z"),
            ]
        );
        assert_eq!(
            every.interval_before(at("2026-01-01T11:00:00Z"), start),
            Some(Interval {
                start: at("2026-01-01T10:37:00Z"),
                end: at("2026-01-01T10:52:00Z")
            })
        );
    }

    #[test]
    fn every_accepts_compound_periods_and_counts_real_time_across_daylight_saving() {
        let every = schedule("every 1h30m", "Europe/Amsterdam");
        assert_eq!(every.period(), Some(std::time::Duration::from_secs(5400)));
        let times = fires(
            &schedule("every 1h", "Europe/Amsterdam"),
            "2026-10-25T00:00:00Z",
            3,
        );
        assert_eq!(
            times,
            [
                "2026-10-25T01:00:00+00:00",
                "2026-10-25T02:00:00+00:00",
                "2026-10-25T03:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_six_field_cron_reads_the_first_field_as_seconds() {
        let every_ten_seconds = schedule("*/10 * * * * *", "UTC");
        let times = fires(&every_ten_seconds, "2026-01-01T10:00:05Z", 2);
        assert_eq!(
            times,
            ["2026-01-01T10:00:10+00:00", "2026-01-01T10:00:20+00:00"]
        );
        let daily = schedule("30 0 3 * * *", "UTC");
        assert_eq!(
            fires(&daily, "2026-01-01T00:00:00Z", 1),
            ["2026-01-01T03:00:30+00:00"]
        );
    }

    #[test]
    fn macros_fire_as_their_cron_expressions() {
        let from = "2026-01-07T12:00:00Z"; // a Wednesday
        let cases = [
            ("@yearly", "2027-01-01T00:00:00+00:00"),
            ("@annually", "2027-01-01T00:00:00+00:00"),
            ("@monthly", "2026-02-01T00:00:00+00:00"),
            ("@weekly", "2026-01-11T00:00:00+00:00"),
            ("@daily", "2026-01-08T00:00:00+00:00"),
            ("@midnight", "2026-01-08T00:00:00+00:00"),
            ("@hourly", "2026-01-07T13:00:00+00:00"),
            ("@DAILY", "2026-01-08T00:00:00+00:00"),
        ];
        for (expr, next) in cases {
            assert_eq!(fires(&schedule(expr, "UTC"), from, 1), [next], "{expr}");
        }
    }

    #[test]
    fn no_time_zone_means_utc() {
        let daily = Schedule::parse("0 3 * * *", None).expect("valid");
        assert_eq!(daily.timezone(), Tz::UTC);
        assert_eq!(
            fires(&daily, "2026-07-01T00:00:00Z", 1),
            ["2026-07-01T03:00:00+00:00"]
        );
    }

    #[test]
    fn a_run_triggered_by_hand_processes_the_latest_complete_interval() {
        let daily = schedule("@daily", "UTC");
        let anchor = at("2026-01-01T00:00:00Z");
        let expected = Interval {
            start: at("2026-01-03T00:00:00Z"),
            end: at("2026-01-04T00:00:00Z"),
        };
        assert_eq!(
            daily.interval_before(at("2026-01-04T12:00:00.5Z"), anchor),
            Some(expected)
        );
        assert_eq!(
            daily.interval_before(at("2026-01-04T00:00:00Z"), anchor),
            Some(expected)
        );
    }

    #[test]
    fn the_interval_before_agrees_with_the_fire_times_across_daylight_saving() {
        for (expr, tz, from) in [
            ("30 2 * * *", "Europe/Amsterdam", "2026-03-27T00:00:00Z"),
            ("30 2 * * *", "Europe/Amsterdam", "2026-10-23T00:00:00Z"),
            ("0 * * * *", "Europe/Amsterdam", "2026-10-24T21:00:00Z"),
            ("*/20 * * * *", "America/New_York", "2026-11-01T04:00:00Z"),
            ("30 1 * * *", "America/New_York", "2026-10-30T00:00:00Z"),
        ] {
            let schedule = schedule(expr, tz);
            let anchor = at(from);
            let times: Vec<DateTime<Utc>> =
                fires(&schedule, from, 8).iter().map(|t| at(t)).collect();
            for pair in times.windows(3) {
                let (start, end, next) = (pair[0], pair[1], pair[2]);
                let expected = Some(Interval { start, end });
                for probe in [
                    end,
                    end + TimeDelta::seconds(1),
                    next - TimeDelta::seconds(1),
                ] {
                    assert_eq!(
                        schedule.interval_before(probe, anchor),
                        expected,
                        "{expr} in {tz} at {probe}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_cron_with_the_wrong_number_of_fields_says_what_is_expected() {
        let message = error("* * *", None);
        assert!(
            message.contains("5 fields, or 6 with leading seconds"),
            "{message}"
        );
        assert!(
            message.contains("found \"* * *\" with 3 fields"),
            "{message}"
        );
        assert!(error("0 0 1 1 * 2026", None).contains("day of week"));
    }

    #[test]
    fn a_bad_cron_field_is_named_with_its_range() {
        let message = error("61 * * * *", None);
        assert_eq!(
            message,
            "cron field 1 (minute) \"61\" is invalid: expected 0-59, a list, a range or a step such as */15"
        );
        assert!(error("0 25 * * *", None).contains("field 2 (hour) \"25\""));
        assert!(error("0 0 * 13 *", None).contains("(month) \"13\""));
        assert!(error("0 0 * * MONDAY", None).contains("(day of week)"));
        assert!(error("70 0 0 * * *", None).contains("field 1 (second) \"70\""));
    }

    #[test]
    fn a_cron_that_never_fires_is_refused() {
        assert!(error("0 0 30 2 *", None).contains("never fires"));
    }

    #[test]
    fn an_unknown_macro_lists_the_known_ones() {
        let message = error("@fortnightly", None);
        assert!(message.contains("\"@fortnightly\""), "{message}");
        assert!(
            message.contains("@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_every_period_says_what_is_expected() {
        assert!(error("every soon", None).contains("not a duration such as 15m or 1h30m"));
        assert!(error("every 0s", None).contains("at least 1s"));
        assert!(error("every", None).contains("every"));
    }

    #[test]
    fn an_unknown_time_zone_names_a_close_match() {
        let message = error("@daily", Some("Europe/Amsterdm"));
        assert_eq!(
            message,
            "unknown time zone \"Europe/Amsterdm\": expected an IANA name such as \"Europe/Amsterdam\" or \"UTC\"; \
             did you mean \"Europe/Amsterdam\"?"
        );
        assert!(error("@daily", Some("amsterdam")).ends_with("did you mean \"Europe/Amsterdam\"?"));
        assert!(
            error("@daily", Some("america/new_york"))
                .ends_with("did you mean \"America/New_York\"?")
        );
        assert!(!error("@daily", Some("Mars/Olympus_Mons")).contains("did you mean"));
    }

    #[test]
    fn a_start_date_is_midnight_in_the_jobs_time_zone() {
        let amsterdam: Tz = "Europe/Amsterdam".parse().expect("a zone");
        assert_eq!(
            parse_start("2026-01-01", amsterdam),
            Ok(at("2025-12-31T23:00:00Z"))
        );
        assert_eq!(
            parse_start("2026-07-01", amsterdam),
            Ok(at("2026-06-30T22:00:00Z"))
        );
        assert_eq!(
            parse_start("2026-01-01", Tz::UTC),
            Ok(at("2026-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn a_start_may_be_a_local_or_an_offset_date_time() {
        let amsterdam: Tz = "Europe/Amsterdam".parse().expect("a zone");
        assert_eq!(
            parse_start("2026-01-01T03:00:00", amsterdam),
            Ok(at("2026-01-01T02:00:00Z"))
        );
        assert_eq!(
            parse_start("2026-01-01 03:00:00", amsterdam),
            Ok(at("2026-01-01T02:00:00Z"))
        );
        assert_eq!(
            parse_start("2026-01-01T03:00:00Z", amsterdam),
            Ok(at("2026-01-01T03:00:00Z"))
        );
        assert_eq!(
            parse_start("2026-01-01T03:00:00-05:00", amsterdam),
            Ok(at("2026-01-01T08:00:00Z"))
        );
        // 02:30 is skipped on 2026-03-29: the first minute after the jump.
        assert_eq!(
            parse_start("2026-03-29T02:30:00", amsterdam),
            Ok(at("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn a_bad_start_says_what_is_expected() {
        let message = parse_start("next tuesday", Tz::UTC).expect_err("invalid");
        assert_eq!(
            message,
            "expected a date such as 2026-01-01, a local date-time such as 2026-01-01T03:00:00, \
             or one with an offset such as 2026-01-01T03:00:00Z; found \"next tuesday\""
        );
    }

    #[test]
    fn durations_are_humantime() {
        assert_eq!(
            parse_duration("10s"),
            Ok(std::time::Duration::from_secs(10))
        );
        assert_eq!(
            parse_duration("10m"),
            Ok(std::time::Duration::from_secs(600))
        );
        assert_eq!(
            parse_duration("6h"),
            Ok(std::time::Duration::from_secs(6 * 3600))
        );
        assert_eq!(
            parse_duration("1d"),
            Ok(std::time::Duration::from_secs(86400))
        );
        let message = parse_duration("ten").expect_err("invalid");
        assert!(
            message.starts_with("expected a duration such as \"10s\""),
            "{message}"
        );
        assert!(message.contains("found \"ten\""), "{message}");
    }
}
