//! `http = { url = "..." }`: sends one request; fails on a non-2xx answer.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Outcome, StepAction, StepContext, StepKind, check_template};
use crate::jobs::ProjectRefs;

/// `http = { url = "...", method = "POST", headers = {...}, body = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    /// The URL, a template.
    pub url: String,
    /// `GET` (default), `POST`, `PUT`, `PATCH` or `DELETE`.
    #[serde(default = "get")]
    pub method: String,
    /// Request headers; values are templates (`"Bearer {{ env.TOKEN }}"`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body, a template.
    #[serde(default)]
    pub body: Option<String>,
    /// How long to wait for the answer (`"30s"`, the default).
    #[serde(default = "thirty_seconds")]
    pub timeout: String,
}

fn get() -> String {
    "GET".into()
}

fn thirty_seconds() -> String {
    "30s".into()
}

impl StepKind for HttpStep {
    const KEY: &'static str = "http";
    const SUMMARY: &'static str = "send an HTTP request; fails on a non-2xx answer";
}

/// Sends `method url` with `headers` and `body`, all rendered, and returns
/// the status and the start of the answer's body.
pub(super) async fn send(
    ctx: &StepContext,
    method: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&str>,
    timeout: std::time::Duration,
) -> Result<(reqwest::StatusCode, String), String> {
    let url = ctx.render(url)?;
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("http: unknown method {method}"))?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("http: {e}"))?;
    let mut request = client.request(method.clone(), &url);
    for (name, value) in headers {
        request = request.header(name, ctx.render(value)?);
    }
    if let Some(body) = body {
        request = request.body(ctx.render(body)?);
    }
    let shown = crate::core::secrets::redact(&url);
    let response = request
        .send()
        .await
        .map_err(|e| format!("{method} {shown}: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let head: String = text.chars().take(500).collect();
    Ok((status, head))
}

#[async_trait::async_trait]
impl StepAction for HttpStep {
    fn kind(&self) -> &'static str {
        Self::KEY
    }

    fn describe(&self) -> String {
        format!("http {} {}", self.method, self.url)
    }

    fn check(&self, _project: &ProjectRefs) -> Result<(), String> {
        crate::jobs::schedule::parse_duration(&self.timeout)
            .map_err(|e| format!("http timeout: {e}"))?;
        check_template(Self::KEY, &self.url)?;
        self.headers
            .values()
            .chain(self.body.as_ref())
            .try_for_each(|t| check_template(Self::KEY, t))
    }

    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String> {
        let timeout = crate::jobs::schedule::parse_duration(&self.timeout)?;
        let (status, body) = send(
            ctx,
            &self.method,
            &self.url,
            &self.headers,
            self.body.as_deref(),
            timeout,
        )
        .await?;
        ctx.log.flowline(format!("answered {status}"));
        if !body.is_empty() {
            ctx.log.line("stdout", body.clone());
        }
        if status.is_success() {
            Ok(Outcome::Done)
        } else {
            Err(format!("answered {status}: {body}"))
        }
    }
}
