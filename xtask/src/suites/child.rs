//! The one runner of the suites' child processes (cargo, the checkout's `suite` binary, its
//! benchmark binaries): each child is started without a shell, in a process group of its own,
//! and the whole group is killed when the harness stops waiting for it (an error, a timeout,
//! an interrupted run) before it finished. Its stdout and stderr go to a log file; a failure
//! becomes a [`SuiteError`] naming the log and ending with the last lines of stderr.
//!
//! Two ways to run one: [`run_tool`] to completion, or [`Interactive`] for the ready/go
//! handshake (`{"ready":true}` on stdout, `go` on stdin) of `suite scenario` and `suite load`,
//! whose callers decide what happens between the two.
//!
//! Must never: leave a child's process group running after the harness gave up on it, or lose
//! the log of a child that failed.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::SuiteError;

/// The line a child prints on stdout when its setup is done and it waits for `go`.
const READY: &str = r#"{"ready":true}"#;
/// What a scenario prints when its measured part is over and it waits to undo what it changed.
const MEASURED: &str = r#"{"measured":true}"#;

/// A child process in `dir`, with no stdin, in a process group of its own (so that it and its
/// children can be killed together).
pub fn command(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .process_group(0);
    command
}

/// [`command`] for a tool of a checkout: with the checkout's target directory, no colours, and
/// none of the variables cargo set for the harness's own package (see `cargo_env`).
pub fn tool_in(program: impl AsRef<std::ffi::OsStr>, dir: &Path, target_dir: &Path) -> Command {
    let mut command = command(program, dir);
    command
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_TERM_COLOR", "never");
    crate::cargo_env::remove_package_variables(command.as_std_mut());
    command
}

/// Kills a child's whole process group unless it finished.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn of(child: &Child) -> Self {
        Self {
            pgid: child.id().map(|id| id as i32),
        }
    }

    /// The child finished: nothing to kill.
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The program a command runs, for messages.
fn program_of(command: &Command) -> String {
    command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned()
}

fn spawn_error(program: &str, error: &std::io::Error) -> SuiteError {
    SuiteError::Spawn {
        program: program.to_owned(),
        detail: error.to_string(),
    }
}

/// Runs a child to completion, writing its stdout and stderr to `log`; returns its stdout.
/// A failure returns the log's last lines.
pub async fn run_tool(mut command: Command, what: &str, log: &Path) -> Result<String, SuiteError> {
    let program = program_of(&command);
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| spawn_error(&program, &e))?;
    let mut guard = GroupGuard::of(&child);
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| spawn_error(&program, &e))?;
    guard.disarm();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    finish(what, output.status, stdout, &stderr, log)
}

/// Runs a child to completion and returns its output; when the harness stops waiting (a
/// signal ended the run), its whole process group is killed.
pub async fn output(mut command: Command) -> std::io::Result<std::process::Output> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn()?;
    let mut guard = GroupGuard::of(&child);
    let output = child.wait_with_output().await?;
    guard.disarm();
    Ok(output)
}

/// Whether a child run with its output discarded exits successfully (false when it cannot be
/// started); killed with its process group when the harness stops waiting.
pub async fn succeeds(mut command: Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let Ok(mut child) = command.spawn() else {
        return false;
    };
    let mut guard = GroupGuard::of(&child);
    let status = child.wait().await;
    guard.disarm();
    status.is_ok_and(|status| status.success())
}

/// Writes a finished child's output to `log`; its stdout on success, else an error with the
/// last lines of its stderr.
fn finish(
    what: &str,
    status: ExitStatus,
    stdout: String,
    stderr: &str,
    log: &Path,
) -> Result<String, SuiteError> {
    let _ = std::fs::write(log, format!("{stdout}\n--- stderr ---\n{stderr}"));
    if status.success() {
        return Ok(stdout);
    }
    let lines: Vec<&str> = stderr.lines().collect();
    Err(SuiteError::Tool {
        what: what.to_owned(),
        status: status.to_string(),
        log: log.to_path_buf(),
        tail: lines[lines.len().saturating_sub(25)..].join("\n"),
    })
}

/// A running child that speaks the ready/go handshake: its stdout read line by line, `go`
/// written to its stdin, its stderr collected meanwhile. Dropped before [`Interactive::finish`],
/// it kills the child's process group.
pub struct Interactive {
    program: String,
    child: Child,
    guard: GroupGuard,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
}

impl Interactive {
    /// Starts `command` with its stdin, stdout and stderr piped.
    pub fn spawn(mut command: Command) -> Result<Self, SuiteError> {
        let program = program_of(&command);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| spawn_error(&program, &e))?;
        let guard = GroupGuard::of(&child);
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text).await;
            text
        });
        Ok(Self {
            program,
            child,
            guard,
            stdin,
            stdout,
            stderr,
        })
    }

    /// The next line of the child's stdout; `None` at its end.
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        self.stdout.next_line().await
    }

    /// Whether `line` is the child's `{"ready":true}`.
    pub fn is_ready(line: &str) -> bool {
        line.trim() == READY
    }

    /// Whether `line` is the child's `{"measured":true}`: its counted part is over, and it waits
    /// for a line before undoing what it changed.
    pub fn is_measured(line: &str) -> bool {
        line.trim() == MEASURED
    }

    /// Answers the handshake: `go` on the child's stdin.
    pub async fn answer_go(&mut self) -> std::io::Result<()> {
        self.stdin
            .write_all(b"go\n")
            .await
            .and(self.stdin.flush().await)
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> Result<ExitStatus, SuiteError> {
        self.child
            .wait()
            .await
            .map_err(|e| spawn_error(&self.program, &e))
    }

    /// After the child exited with `status`: writes `stdout` (what the caller kept of it) and
    /// the collected stderr to `log`; `stdout` on success, else the error with stderr's tail.
    pub async fn finish(
        mut self,
        what: &str,
        status: ExitStatus,
        stdout: String,
        log: &Path,
    ) -> Result<String, SuiteError> {
        self.guard.disarm();
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        finish(what, status, stdout, &stderr, log)
    }
}
