//! Log output on stderr, with secrets redacted from every line.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::core::secrets::redact;

/// Sets up logging: `FLOWLINE_LOG` when given, else by verbosity. On a
/// terminal with progress bars only warnings (and a stream's live numbers)
/// are logged by default.
pub fn init(verbose: u8, interactive: bool) {
    let default = match (verbose, interactive) {
        // Streams print their live numbers on a terminal too.
        (0, true) => "warn,flowline::engine::stream=info",
        // Broker clients log every connection at info: only their warnings.
        (0, false) => "info,rskafka=warn,async_nats=warn",
        (1, _) => "flowline=debug,info",
        _ => "flowline=trace,debug",
    };
    let filter =
        EnvFilter::try_from_env("FLOWLINE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_target(false)
        .with_ansi(interactive)
        .try_init();
}

/// Writes log lines to stderr after redacting secrets.
struct RedactingStderr;

struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = redact(&String::from_utf8_lossy(&self.0));
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line(Vec::new())
    }
}
