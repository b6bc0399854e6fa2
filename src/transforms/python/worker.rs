//! The Python worker process of a `python` step: one per pipeline run,
//! started from the embedded `worker.py`, fed each batch as an Arrow IPC
//! stream over its stdin and answering over its stdout (the framing is
//! described at the top of `worker.py`). Its stderr, where the user's
//! `print` goes, is logged line by line and its last lines are kept for the
//! error when it dies.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow::buffer::Buffer;
use arrow::compute::concat_batches;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use crate::core::error::{Error, Result};

/// The worker's source, run with `python -c`.
const WORKER_PY: &str = include_str!("worker.py");

/// How many of the worker's last stderr lines an error quotes.
const TAIL_LINES: usize = 40;

/// How long a dead worker's stderr and exit status are waited for.
const DEATH_GRACE: Duration = Duration::from_secs(2);

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The interpreters to try, in order; the first that exists runs.
    pub interpreters: Vec<PathBuf>,
    /// What to say when none of them exists.
    pub missing_interpreter: String,
    /// The user's script.
    pub script: PathBuf,
    /// `pandas`, `arrow` or `auto`.
    pub api: &'static str,
    /// The working folder (the project's).
    pub dir: PathBuf,
    /// The step in messages: `python step transforms/clean.py`.
    pub label: String,
}

/// A running worker. Dropping it kills the process.
pub struct Worker {
    label: String,
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    stderr: Arc<Tail>,
    /// The API the worker reported once its script loaded.
    api: Option<String>,
}

/// What came back for one request.
enum Frame {
    /// The script loaded; the API in use.
    Ready(String),
    /// A result, as an Arrow IPC stream.
    Batch(Vec<u8>),
    /// The worker's error message.
    Error(String),
}

impl Worker {
    /// Starts the worker. The process is started from a thread of its own,
    /// which lives as long as the process does: the kernel's parent-death
    /// signal (`PR_SET_PDEATHSIG`, set so that the worker dies with
    /// flowline) follows the thread that started it.
    pub fn start(launch: &Launch) -> Result<Worker> {
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = Arc::new(Tail::default());
        let tail = stderr.clone();
        let thread_launch = launch.clone();
        std::thread::Builder::new()
            .name("python-worker".into())
            .spawn(move || match spawn(&thread_launch) {
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
                Ok(started) => {
                    let child = Arc::new(Mutex::new(started.child));
                    if tx.send(Ok((child, started.stdin, started.stdout))).is_ok() {
                        tail.drain(started.stderr, &thread_launch.label);
                    }
                }
            })
            .map_err(|e| Error::Other(format!("{}: starting a thread: {e}", launch.label)))?;
        let (child, stdin, stdout) = rx
            .recv()
            .map_err(|_| Error::Other(format!("{}: the worker thread stopped", launch.label)))??;
        Ok(Worker {
            label: launch.label.clone(),
            child,
            stdin: Some(stdin),
            stdout,
            stderr,
            api: None,
        })
    }

    /// Waits until the worker has loaded the script (the first call), so
    /// that a missing module or a script without `transform` is reported.
    /// The API in use: `pandas` or `arrow`.
    pub fn ready(&mut self) -> Result<&str> {
        if self.api.is_none() {
            match self.receive()? {
                Frame::Ready(api) => self.api = Some(api),
                Frame::Error(message) => {
                    return Err(Error::Config(format!("{}: {message}", self.label)));
                }
                Frame::Batch(_) => return Err(self.confused("a result before it was ready")),
            }
        }
        Ok(self.api.as_deref().unwrap_or_default())
    }

    /// Runs the function on `batch`: its result, or `None` when it kept no row.
    pub fn transform(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        self.ready()?;
        self.send(batch)?;
        match self.receive()? {
            Frame::Batch(payload) => decode(payload)
                .map_err(|e| Error::arrow(format!("{}: reading the result", self.label), e)),
            Frame::Error(message) => Err(Error::Other(format!(
                "{}: transform failed:\n{message}",
                self.label
            ))),
            Frame::Ready(_) => Err(self.confused("a second ready message")),
        }
    }

    /// Writes `batch` as one length-prefixed IPC stream.
    fn send(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut frame = Vec::with_capacity(batch.get_array_memory_size() + 4096);
        frame.extend_from_slice(&[0; 8]);
        let mut writer = StreamWriter::try_new(&mut frame, &batch.schema())
            .map_err(|e| Error::arrow(format!("{}: encoding a batch", self.label), e))?;
        writer
            .write(batch)
            .and_then(|()| writer.finish())
            .map_err(|e| Error::arrow(format!("{}: encoding a batch", self.label), e))?;
        drop(writer);
        let length = (frame.len() - 8) as u64;
        frame[..8].copy_from_slice(&length.to_le_bytes());
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(&frame).and_then(|()| stdin.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        written.map_err(|_| self.died())
    }

    /// Reads the next frame.
    fn receive(&mut self) -> Result<Frame> {
        let mut header = [0u8; 9];
        if self.stdout.read_exact(&mut header).is_err() {
            return Err(self.died());
        }
        let mut length = [0u8; 8];
        length.copy_from_slice(&header[1..]);
        let length = u64::from_le_bytes(length);
        let mut payload = Vec::new();
        let read = (&mut self.stdout).take(length).read_to_end(&mut payload);
        if read.is_err() || payload.len() as u64 != length {
            return Err(self.died());
        }
        match header[0] {
            b'R' => Ok(Frame::Ready(String::from_utf8_lossy(&payload).into_owned())),
            b'B' => Ok(Frame::Batch(payload)),
            b'E' => Ok(Frame::Error(String::from_utf8_lossy(&payload).into_owned())),
            other => Err(self.confused(&format!("a frame tagged {other:#04x}"))),
        }
    }

    /// The error for a worker that stopped answering: how it ended and the
    /// end of its stderr.
    fn died(&mut self) -> Error {
        self.stdin = None;
        let deadline = Instant::now() + DEATH_GRACE;
        let mut status = None;
        while status.is_none() && Instant::now() < deadline {
            status = self
                .child
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_wait()
                .ok()
                .flatten();
            if status.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let tail = self.stderr.wait_closed(deadline);
        let how = match status {
            Some(status) => format!("exited ({status})"),
            None => "closed its output".to_string(),
        };
        let output = if tail.is_empty() {
            "it wrote nothing to stderr".to_string()
        } else {
            format!("its stderr ended with:\n{tail}")
        };
        Error::Other(format!("{}: the Python worker {how}; {output}", self.label))
    }

    /// The error for a worker that broke the protocol.
    fn confused(&self, what: &str) -> Error {
        Error::Other(format!("{}: the Python worker sent {what}", self.label))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stdin = None;
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A started worker process and its pipes.
struct Started {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

/// Starts the first interpreter of `launch` that exists on the worker.
fn spawn(launch: &Launch) -> Result<Started> {
    for interpreter in &launch.interpreters {
        let mut command = Command::new(interpreter);
        command
            .arg("-c")
            .arg(WORKER_PY)
            .arg(&launch.script)
            .arg(launch.api)
            .current_dir(&launch.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls prctl(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        match command.spawn() {
            Ok(mut child) => {
                let (Some(stdin), Some(stdout), Some(stderr)) =
                    (child.stdin.take(), child.stdout.take(), child.stderr.take())
                else {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Other(format!(
                        "{}: the worker's pipes were not opened",
                        launch.label
                    )));
                };
                widen_pipe(&stdin);
                widen_pipe(&stdout);
                return Ok(Started {
                    child,
                    stdin,
                    stdout,
                    stderr,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::Config(format!(
                    "{}: starting {}: {e}",
                    launch.label,
                    interpreter.display()
                )));
            }
        }
    }
    Err(Error::Config(format!(
        "{}: {}",
        launch.label, launch.missing_interpreter
    )))
}

/// Asks for a 1 MiB pipe buffer (Linux's default limit for a user), so that
/// a batch crosses in fewer wake-ups of each side than with the default
/// 64 KiB. A refusal leaves the default, which works too.
fn widen_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl(2) on a file descriptor this process owns.
    unsafe {
        libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// A result frame's IPC stream as one batch; `None` when it holds no row.
fn decode(payload: Vec<u8>) -> std::result::Result<Option<RecordBatch>, arrow::error::ArrowError> {
    let mut buffer = Buffer::from_vec(payload);
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        if let Some(batch) = decoder.decode(&mut buffer)? {
            batches.push(batch);
        }
    }
    decoder.finish()?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    match batches.as_slice() {
        _ if rows == 0 => Ok(None),
        [one] => Ok(Some(one.clone())),
        [first, ..] => concat_batches(&first.schema(), &batches).map(Some),
        [] => Ok(None),
    }
}

/// The last lines of the worker's stderr, and whether it has closed.
#[derive(Default)]
struct Tail {
    state: Mutex<(VecDeque<String>, bool)>,
    closed: Condvar,
}

impl Tail {
    /// Logs each line of `stderr` and keeps the last ones, until it closes.
    fn drain(&self, stderr: ChildStderr, label: &str) {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    tracing::info!("{label}: {text}");
                    let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                    if state.0.len() == TAIL_LINES {
                        state.0.pop_front();
                    }
                    state.0.push_back(text);
                }
            }
        }
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.closed.notify_all();
    }

    /// The kept lines, once stderr has closed or `deadline` passed.
    fn wait_closed(&self, deadline: Instant) -> String {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .closed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.0.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}
