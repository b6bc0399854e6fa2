use std::process::ExitCode;

use clap::Parser;
use flowline::cli::Cli;
use flowline::core::secrets::redact;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.execute() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", redact(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}
