//! `command = [...]`: runs any program, its output captured into the
//! step's log. It runs in its own process group from the project folder,
//! with the project's variables (the environment over `.env`) and the
//! run's (`FLOWLINE_RUN_ID`, `FLOWLINE_DS`, ...). A timeout, or a stop of
//! the worker, kills the whole group.

use std::process::Stdio;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{Outcome, StepAction, StepContext, StepKind, check_template};
use crate::jobs::ProjectRefs;
use crate::jobs::log::Log;

/// `command = ["program", "arg", ...]`, each a template, or one string run
/// by `sh -c`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CommandStep {
    /// A program and its arguments, not through a shell.
    Argv(Vec<String>),
    /// A shell command line.
    Shell(String),
}

impl StepKind for CommandStep {
    const KEY: &'static str = "command";
    const SUMMARY: &'static str = "run a program; fails on a non-zero exit";
}

impl CommandStep {
    fn argv(&self) -> Vec<String> {
        match self {
            CommandStep::Argv(argv) => argv.clone(),
            CommandStep::Shell(line) => vec!["sh".into(), "-c".into(), line.clone()],
        }
    }
}

/// Kills a process group when dropped, unless it has been disarmed: a
/// step that times out or is cancelled leaves nothing running.
struct GroupGuard {
    pgid: Option<i32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) with a negative pid signals the group; it
            // touches no memory of this process.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Copies `reader`'s lines into `log` as `stream`.
async fn capture(reader: impl AsyncRead + Unpin, log: Log, stream: &'static str) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.line(stream, line);
    }
}

#[async_trait::async_trait]
impl StepAction for CommandStep {
    fn kind(&self) -> &'static str {
        Self::KEY
    }

    fn describe(&self) -> String {
        format!("command {}", self.argv().join(" "))
    }

    fn check(&self, _project: &ProjectRefs) -> Result<(), String> {
        let argv = self.argv();
        if argv.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(
                "command: name the program to run, e.g. command = [\"python\", \"export.py\"]"
                    .into(),
            );
        }
        argv.iter()
            .try_for_each(|arg| check_template(Self::KEY, arg))
    }

    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String> {
        let argv = self
            .argv()
            .iter()
            .map(|arg| ctx.render(arg))
            .collect::<Result<Vec<_>, _>>()?;
        ctx.log.flowline(format!("running {}", argv.join(" ")));
        run_program(ctx, &argv).await
    }
}

/// Runs `argv` from the project folder with the run's variables, its
/// output captured into the step's log, in a process group that dies with
/// the worker; a non-zero exit is the step's failure.
pub(super) async fn run_program(ctx: &StepContext, argv: &[String]) -> Result<Outcome, String> {
    let (program, args) = argv.split_first().ok_or("command: nothing to run")?;
    let mut command = tokio::process::Command::new(program);
    // SAFETY: the closure runs in the child between fork and exec and
    // only calls prctl(2), which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            // If this worker dies (kill -9 included), so does the
            // program: the step runs again elsewhere, never twice at once.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command
        .args(args)
        .current_dir(&ctx.dir)
        .envs(&ctx.vars.env)
        .env("FLOWLINE_JOB", &ctx.vars.job)
        .env("FLOWLINE_RUN_ID", &ctx.vars.run_id)
        .env("FLOWLINE_STEP", &ctx.step)
        .env("FLOWLINE_DS", &ctx.vars.ds)
        .env(
            "FLOWLINE_DATA_INTERVAL_START",
            &ctx.vars.data_interval_start,
        )
        .env("FLOWLINE_DATA_INTERVAL_END", &ctx.vars.data_interval_end)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {program}: {e}"))?;
    let mut guard = GroupGuard {
        pgid: child.id().and_then(|id| i32::try_from(id).ok()),
    };
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(capture(s, ctx.log.clone(), "stdout")));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(capture(s, ctx.log.clone(), "stderr")));
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for {program}: {e}"))?;
    // The program is gone; what it started in the background may hold
    // its output open, so read what is there for a moment only.
    for reader in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), reader).await;
    }
    guard.pgid = None;
    match status.code() {
        Some(0) => Ok(Outcome::Done),
        Some(code) => Err(format!("{program} exited with code {code}")),
        None => Err(format!("{program} was killed by a signal")),
    }
}
