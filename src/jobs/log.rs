//! A step attempt's log: its program's output and flowline's own lines,
//! buffered here and written to the state store by the runner every
//! moment, so `flowline jobs logs --follow` and the API see them live.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One line of a step's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Position in the attempt's log, from 1.
    pub seq: i64,
    /// When it was written, Unix ms.
    pub at: i64,
    /// `stdout`, `stderr` or `flowline`.
    pub stream: String,
    /// The text, secrets redacted.
    pub text: String,
}

/// A shared buffer of lines not yet stored.
#[derive(Debug, Clone, Default)]
pub struct Log {
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Debug, Default)]
struct Buffer {
    next_seq: i64,
    pending: Vec<LogLine>,
}

impl Log {
    /// A line from `stream`.
    pub fn line(&self, stream: &str, text: impl Into<String>) {
        let text = crate::core::secrets::redact(&text.into());
        let mut buffer = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        buffer.next_seq += 1;
        let seq = buffer.next_seq;
        buffer.pending.push(LogLine {
            seq,
            at: chrono::Utc::now().timestamp_millis(),
            stream: stream.to_string(),
            text,
        });
    }

    /// A line of flowline's own about the step.
    pub fn flowline(&self, text: impl Into<String>) {
        self.line("flowline", text);
    }

    /// Takes the lines written since the last call.
    pub fn take(&self) -> Vec<LogLine> {
        let mut buffer = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut buffer.pending)
    }

    /// Continues numbering after `seq` (a sensor's later pokes append to
    /// the same attempt's log).
    pub fn continue_after(&self, seq: i64) {
        let mut buffer = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        buffer.next_seq = buffer.next_seq.max(seq);
    }
}
