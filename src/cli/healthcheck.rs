//! `flowline healthcheck`: asks a running `flowline serve` (or a worker's
//! `--health-listen`) whether it is up, for container health checks in
//! images that have no shell or curl. Exit 0 when `/healthz` answers 200.

use std::process::ExitCode;
use std::time::Duration;

use crate::core::error::{Error, Result};

/// Arguments of `flowline healthcheck`.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// The health endpoint to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Asks once; prints what was wrong when it is not healthy.
pub async fn execute(args: HealthcheckArgs) -> Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .build()
        .map_err(|e| Error::Other(format!("an HTTP client: {e}")))?;
    match client.get(&args.url).send().await {
        Ok(response) if response.status().is_success() => {
            println!("ok      {}", args.url);
            Ok(ExitCode::SUCCESS)
        }
        Ok(response) => {
            println!("FAILED  {}: HTTP {}", args.url, response.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            println!(
                "FAILED  {}: {}",
                args.url,
                crate::sources::http::client::transport_error(&e)
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
