//! Step settings as templates (minijinja): `{{ ds }}`,
//! `{{ data_interval_start }}`, `{{ data_interval_end }}`, `{{ run_id }}`,
//! `{{ params.country }}`, `{{ env.HOME }}`, `{{ job }}`.
//!
//! A name that does not exist is an error naming it, never an empty string
//! that would make a command read the wrong files.

use chrono::{DateTime, Utc};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// What a step's templates can use.
#[derive(Debug, Clone, Serialize)]
pub struct Vars {
    /// The job's name.
    pub job: String,
    /// The run's id.
    pub run_id: String,
    /// The data interval's start date in the job's time zone (`2026-01-31`).
    pub ds: String,
    /// The same without dashes (`20260131`).
    pub ds_nodash: String,
    /// The data interval's start, RFC 3339 in the job's time zone.
    pub data_interval_start: String,
    /// The data interval's end, RFC 3339 in the job's time zone.
    pub data_interval_end: String,
    /// The job's `params`, with a trigger's overrides.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The environment: the process's, with the project's `.env` under it.
    pub env: std::collections::BTreeMap<String, String>,
}

impl Vars {
    /// The variables of a run of `job` over `[start, end)`, shown in `tz`.
    pub fn new(
        job: &str,
        run_id: &str,
        interval: (DateTime<Utc>, DateTime<Utc>),
        tz: chrono_tz::Tz,
        params: serde_json::Map<String, serde_json::Value>,
        env: std::collections::BTreeMap<String, String>,
    ) -> Vars {
        let start = interval.0.with_timezone(&tz);
        let end = interval.1.with_timezone(&tz);
        Vars {
            job: job.to_string(),
            run_id: run_id.to_string(),
            ds: start.format("%Y-%m-%d").to_string(),
            ds_nodash: start.format("%Y%m%d").to_string(),
            data_interval_start: start.to_rfc3339(),
            data_interval_end: end.to_rfc3339(),
            params,
            env,
        }
    }
}

/// Renders `text` with `vars`; the error says what is wrong and where in
/// the template.
pub fn render(text: &str, vars: &Vars) -> Result<String, String> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_string());
    }
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.render_str(text, minijinja::value::Serde(vars))
        .map_err(|e| format!("template \"{text}\": {}", describe(&e)))
}

/// Checks that `text` is a well-formed template, without rendering it.
pub fn check(text: &str) -> Result<(), String> {
    let env = Environment::new();
    env.template_from_str(text)
        .map(|_| ())
        .map_err(|e| format!("template \"{text}\": {}", describe(&e)))
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{} ({detail})", e.kind()),
        None => e.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn vars() -> Vars {
        let start = Utc.with_ymd_and_hms(2026, 3, 28, 23, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2026, 3, 29, 22, 0, 0).unwrap();
        let mut params = serde_json::Map::new();
        params.insert("country".into(), "NL".into());
        Vars::new(
            "daily",
            "r1",
            (start, end),
            chrono_tz::Europe::Amsterdam,
            params,
            Default::default(),
        )
    }

    #[test]
    fn dates_are_shown_in_the_jobs_time_zone() {
        let v = vars();
        assert_eq!(render("{{ ds }}", &v).unwrap(), "2026-03-29");
        assert_eq!(
            render("{{ data_interval_start }}", &v).unwrap(),
            "2026-03-29T00:00:00+01:00"
        );
        assert_eq!(
            render("{{ data_interval_end }}", &v).unwrap(),
            "2026-03-30T00:00:00+02:00"
        );
        assert_eq!(
            render("landing/{{ ds_nodash }}/{{ params.country }}", &v).unwrap(),
            "landing/20260329/NL"
        );
    }

    #[test]
    fn an_unknown_name_is_an_error_not_an_empty_string() {
        let e = render("{{ params.region }}", &vars()).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
        assert!(check("{{ ds").is_err());
    }
}
