//! Temporary: replaced by the schedule module being written alongside.
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A job's schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: chrono_tz::Tz,
}
/// One data interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Interval {
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
}
impl Schedule {
    /// Parses.
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<Schedule, String> {
        if expr.trim().is_empty() { return Err("empty schedule".into()); }
        Ok(Schedule { tz: timezone.and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::UTC) })
    }
    /// Tz.
    pub fn timezone(&self) -> chrono_tz::Tz { self.tz }
    /// Next.
    pub fn next_after(&self, after: DateTime<Utc>, _anchor: DateTime<Utc>) -> Option<DateTime<Utc>> { Some(after + chrono::Duration::hours(1)) }
    /// Due.
    pub fn due_intervals(&self, _start: DateTime<Utc>, _last_end: Option<DateTime<Utc>>, _now: DateTime<Utc>, _catchup: bool) -> Vec<Interval> { Vec::new() }
    /// Backfill.
    pub fn intervals_between(&self, _a: DateTime<Utc>, _from: DateTime<Utc>, _to: DateTime<Utc>) -> Vec<Interval> { Vec::new() }
    /// Manual.
    pub fn interval_before(&self, _at: DateTime<Utc>, _anchor: DateTime<Utc>) -> Option<Interval> { None }
}
/// Start.
pub fn parse_start(value: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, String> {
    use chrono::TimeZone;
    let date = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|e| e.to_string())?;
    tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default()).earliest().map(|d| d.with_timezone(&Utc)).ok_or_else(|| "bad".to_string())
}
/// Duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("\"{text}\" is not a duration such as \"10s\" or \"5m\": {e}"))
}
