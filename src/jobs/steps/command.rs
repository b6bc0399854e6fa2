//! `command = [...]`: runs any program, its output captured into the
//! step's log. It runs in its own process group from the project folder,
//! with the project's variables (the environment over `.env`) and the
//! run's (`FLOWLINE_RUN_ID`, `FLOWLINE_DS`, ...). A timeout, or a stop of
//! the worker, kills the whole group.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

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

/// `setpriv` (util-linux), when it is installed and knows `--pdeathsig`.
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let path = find_program("setpriv", Path::new("/"), None)?;
            let help = std::process::Command::new(&path)
                .arg("--help")
                .output()
                .ok()?;
            String::from_utf8_lossy(&help.stdout)
                .contains("--pdeathsig")
                .then_some(path)
        })
        .as_deref()
}

/// A command that starts `program` so that it dies with this process
/// (kill -9 included): the step then runs again elsewhere, never twice at
/// once. Through `setpriv --pdeathsig KILL` when there is one, which lets
/// the process be started without forking this one (a fork costs ~2 ms of
/// copied page tables per step here); else the child sets it itself
/// between fork and exec.
fn spawner(
    program: &str,
    dir: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<tokio::process::Command, String> {
    if let Some(setpriv) = setpriv() {
        // setpriv would report a missing program only as exit code 127.
        let path = find_program(program, dir, env.get("PATH").map(String::as_str))
            .ok_or_else(|| format!("starting {program}: no such program (looked in PATH)"))?;
        let mut command = tokio::process::Command::new(setpriv);
        command.args(["--pdeathsig", "KILL", "--"]).arg(path);
        return Ok(command);
    }
    let mut command = tokio::process::Command::new(program);
    // SAFETY: the closure runs in the child between fork and exec and
    // only calls prctl(2), which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Ok(command)
}

/// Where `program` is, as exec would find it: a path with a slash is taken
/// from `dir`; a bare name is looked up in `path` (this process's `PATH`
/// when `None`). Only executable files count.
pub(super) fn find_program(program: &str, dir: &Path, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |candidate: &Path| {
        std::fs::metadata(candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let candidate = dir.join(program);
        return executable(&candidate).then_some(candidate);
    }
    let search = match path {
        Some(path) => path.to_string(),
        None => std::env::var("PATH").unwrap_or_default(),
    };
    std::env::split_paths(&search)
        .map(|folder| dir.join(folder).join(program))
        .find(|candidate| executable(candidate))
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
    let mut command = spawner(program, &ctx.dir, &ctx.vars.env)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_as_exec_finds_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        assert_eq!(
            find_program("./run.sh", dir.path(), None),
            None,
            "not executable"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(
            find_program("./run.sh", dir.path(), None),
            Some(dir.path().join("./run.sh"))
        );
        let path = dir.path().display().to_string();
        assert_eq!(
            find_program("run.sh", Path::new("/"), Some(&path)),
            Some(dir.path().join("run.sh"))
        );
        assert!(find_program("sh", Path::new("/"), None).is_some());
        assert_eq!(
            find_program("no-such-program-here", Path::new("/"), None),
            None
        );
    }
}
