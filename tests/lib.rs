//! Helpers of the end-to-end tests: a real git repository made from this workspace's files
//! in a temp dir (so tests control its commits and its work tree is clean), a way to run the
//! real `cargo xtask` in it, checks that services were torn down, and real Postgres and Redis
//! (started through the harness's own provisioning) for the system tests.

pub mod services;
pub mod workflow;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The workspace the tests belong to.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// The cargo target directory shared with the fixture, so dependencies are built once.
pub fn shared_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The cargo that runs the tests (`CARGO`), else the one on `PATH`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// A command that starts cargo as a shell would: without the variables `cargo test` set for
/// this package, which would make it rebuild what a build from a shell (CI's setup, a
/// workflow's job) made, and that build rebuild it back ([`xtask::cargo_env`]).
pub fn cargo_command() -> Command {
    let mut command = Command::new(cargo());
    xtask::cargo_env::remove_package_variables(&mut command);
    command
}

/// Prepares this machine for the tests that need more than cargo, once per test binary:
/// `.ci/setup-machine.sh` (idempotent: check, then act) gives them a Docker engine with the
/// local images, Chromium, `gungraun-runner` on `PATH`, and what `cargo xtask setup --services
/// native` installs. So `cargo test --workspace` on a fresh machine needs no step before it,
/// and on a prepared one this costs a few seconds of checks. The script's lines go to the
/// terminal (a child's output is not captured by the test harness); a failure panics with them.
pub fn prepare_machine() {
    static PREPARED: OnceLock<()> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let started = Instant::now();
        let script = workspace_root().join(".ci").join("setup-machine.sh");
        let status = xtask::cargo_env::remove_package_variables(&mut Command::new("bash"))
            .arg(&script)
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
        assert!(
            status.success(),
            "preparing the machine for the tests failed ({status}): see the [setup] lines \
             above; `bash .ci/setup-machine.sh` runs the same steps on their own"
        );
        append_timing("prepare_machine", Duration::ZERO, started.elapsed());
    });
}

/// Runs that start services and benchmarks take the machine's two cores: one at a time.
pub fn heavy() -> Heavy {
    static LOCK: Mutex<()> = Mutex::new(());
    let asked = Instant::now();
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Heavy {
        _guard: guard,
        waited: asked.elapsed(),
        since: Instant::now(),
    }
}

/// A heavy test's hold on the machine. Released, it appends a line to
/// `target/perf-e2e/timings.tsv` (process id, test, seconds waited, seconds held): where a
/// test binary's time goes, for CI's time budget.
pub struct Heavy {
    _guard: MutexGuard<'static, ()>,
    waited: Duration,
    since: Instant,
}

impl Drop for Heavy {
    fn drop(&mut self) {
        let thread = std::thread::current();
        append_timing(
            thread.name().unwrap_or("unnamed"),
            self.waited,
            self.since.elapsed(),
        );
    }
}

/// Appends `pid\tname\twaited\theld` (seconds) to `target/perf-e2e/timings.tsv`, where CI's
/// time can be read after a run (a passing test's output is not shown).
pub fn append_timing(name: &str, waited: Duration, held: Duration) {
    let line = format!(
        "{}\t{name}\t{:.1}\t{:.1}\n",
        std::process::id(),
        waited.as_secs_f64(),
        held.as_secs_f64()
    );
    let dir = shared_target_dir().join("perf-e2e");
    let _ = std::fs::create_dir_all(&dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("timings.tsv"));
    if let Ok(mut file) = file {
        let _ = std::io::Write::write_all(&mut file, line.as_bytes());
    }
}

/// A git repository holding a copy of this workspace, with one commit.
pub struct Fixture {
    pub root: PathBuf,
}

/// The shared fixture (made once per test binary; tests that change it hold [`heavy`]).
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::create)
}

/// The shared fixture's temporary directory, removed when the test binary exits.
static FIXTURE_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Removes the fixture's directory. A static is never dropped, so without this every run of
/// the tests would leave a copy of the workspace in the temporary directory.
extern "C" fn remove_fixture_dir() {
    if let Some(dir) = FIXTURE_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Fixture {
    fn create() -> Self {
        prepare_machine();
        let dir = tempfile::Builder::new()
            .prefix("perf-e2e-")
            .tempdir()
            .expect("temp dir")
            .keep();
        FIXTURE_DIR
            .set(dir.clone())
            .expect("the fixture is made once");
        // SAFETY: registers a plain function with no captured state; it runs at process exit,
        // after the tests (the test harness ends with `exit`, on success and failure).
        let registered = unsafe { nix::libc::atexit(remove_fixture_dir) };
        assert_eq!(registered, 0, "atexit refused the fixture's clean-up");
        let root = dir.join("project");
        copy_workspace(&root);
        let fixture = Self { root };
        fixture.git(&["init", "--quiet", "--initial-branch=main"]);
        fixture.commit_all("fixture: the workspace under test");
        // Build the harness once, so the first test does not pay for it under a timeout.
        let build = cargo_command()
            .args(["build", "--quiet", "--package", "xtask"])
            .current_dir(&fixture.root)
            .env("CARGO_TARGET_DIR", shared_target_dir())
            .status()
            .expect("cargo build");
        assert!(build.success(), "building xtask in the fixture failed");
        // And what its runs build, once, through the harness's own listing (which builds the
        // `suite` binary and every benchmark as a run does): the first test to measure would
        // otherwise build them in release from nothing, and a test that measures another
        // revision first (`baseline record`) would build them for it without HEAD's compiled
        // dependencies to start from, then the next test a second time for HEAD.
        let started = Instant::now();
        checked(fixture.xtask(&["perf", "--list"]).stdout(Stdio::null()));
        eprintln!(
            "fixture: the harness and the suite's release build ready in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        fixture
    }

    /// Runs git in the fixture and returns its stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let output = checked(
            Command::new("git")
                .args(args)
                .current_dir(&self.root)
                .env("GIT_AUTHOR_NAME", "perf-tests")
                .env("GIT_AUTHOR_EMAIL", "perf-tests@localhost")
                .env("GIT_COMMITTER_NAME", "perf-tests")
                .env("GIT_COMMITTER_EMAIL", "perf-tests@localhost"),
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// `cargo xtask <args>` in the fixture, with a clean service environment and none of
    /// GitHub Actions' variables (were the tests run in a pull request's job, a run must not
    /// comment on it or write its summary).
    pub fn xtask(&self, args: &[&str]) -> Command {
        let mut command = self.cargo(&["xtask"]);
        command.args(args);
        for variable in [
            "DATABASE_URL",
            "REDIS_URL",
            "PERF_POSTGRES_IMAGE",
            "PERF_REDIS_IMAGE",
            "GITHUB_STEP_SUMMARY",
            "GITHUB_TOKEN",
            "GITHUB_EVENT_PATH",
            "GITHUB_API_URL",
            "GITHUB_REPOSITORY",
        ] {
            command.env_remove(variable);
        }
        command
    }

    /// `cargo <args>` in the fixture, building into the shared target directory.
    pub fn cargo(&self, args: &[&str]) -> Command {
        let mut command = cargo_command();
        command
            .args(args)
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", shared_target_dir())
            .stdin(Stdio::null());
        command
    }

    /// The harness binary itself, for runs with a PATH that has no cargo.
    pub fn xtask_binary(&self) -> PathBuf {
        shared_target_dir().join("debug").join("xtask")
    }
}

/// Copies this workspace's files (tracked and untracked, less what git ignores) to `root`.
pub fn copy_workspace(root: &Path) {
    let source = workspace_root();
    let listed = checked(
        Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(&source),
    );
    for relative in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let relative = Path::new(std::str::from_utf8(relative).expect("utf-8 path"));
        let from = source.join(relative);
        if !from.is_file() {
            continue; // deleted in the work tree but still in the index
        }
        let to = root.join(relative);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
}

fn checked(command: &mut Command) -> Output {
    let output = command.output().expect("run command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// What a finished run printed and how it exited.
#[derive(Debug)]
pub struct RunOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs a command to completion (an owned `Command` or a `&mut` one). Its duration, and the
/// harness's own `Time:` line when it printed one, go to `timings.tsv`: where a test's minutes
/// went, readable after a CI run whose output is not shown.
pub fn run(mut command: impl std::borrow::BorrowMut<Command>) -> RunOutput {
    let command = command.borrow_mut();
    let started = Instant::now();
    let output = command.output().expect("spawn cargo xtask");
    let result = RunOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    let arguments: Vec<String> = command
        .get_args()
        .map(|argument| argument.to_string_lossy().into_owned())
        .collect();
    let phases = result
        .stdout
        .lines()
        .chain(result.stderr.lines())
        .find_map(|line| line.strip_prefix("Time: "))
        .map(|phases| format!(" ({phases})"))
        .unwrap_or_default();
    append_timing(
        &format!(
            "  run: {} exit {:?}{phases}",
            arguments.join(" "),
            result.code
        ),
        Duration::ZERO,
        started.elapsed(),
    );
    result
}

/// A service the harness reported ready, parsed from its progress line
/// `services: postgres ready at HOST:PORT (MODE, pid=.., dir=..)` or `(docker, container=.., image=..)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyService {
    pub service: String,
    pub address: String,
    pub pid: Option<i32>,
    pub dir: Option<PathBuf>,
    pub container: Option<String>,
}

pub fn ready_services(stderr: &str) -> Vec<ReadyService> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find("services: ")? + "services: ".len()..];
            let (service, rest) = rest.split_once(" ready at ")?;
            let (address, details) = rest.split_once(" (")?;
            let details = details.trim_end_matches(')');
            let field = |key: &str| {
                details
                    .split(", ")
                    .find_map(|part| part.strip_prefix(key))
                    .map(str::to_owned)
            };
            Some(ReadyService {
                service: service.to_owned(),
                address: address.to_owned(),
                pid: field("pid=").and_then(|p| p.parse().ok()),
                dir: field("dir=").map(PathBuf::from),
                container: field("container="),
            })
        })
        .collect()
}

/// Asserts that nothing a run started is left: processes gone, temp dirs removed, containers
/// removed, ports closed.
pub fn assert_torn_down(services: &[ReadyService]) {
    assert!(!services.is_empty(), "the run reported no ready services");
    for service in services {
        if let Some(pid) = service.pid {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            assert!(!alive, "{} (pid {pid}) is still running", service.service);
        }
        if let Some(dir) = &service.dir {
            assert!(!dir.exists(), "{} left {}", service.service, dir.display());
        }
        if let Some(container) = &service.container {
            let output = Command::new("docker")
                .args(["ps", "--all", "--quiet", "--no-trunc", "--filter"])
                .arg(format!("id={container}"))
                .output()
                .expect("docker ps");
            assert!(
                String::from_utf8_lossy(&output.stdout).trim().is_empty(),
                "container {container} of {} is still there",
                service.service
            );
        }
        let address = std::net::ToSocketAddrs::to_socket_addrs(service.address.as_str())
            .expect("a socket address")
            .next()
            .expect("an address");
        let connect =
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_millis(500));
        assert!(
            connect.is_err(),
            "{} still answers at {}",
            service.service,
            service.address
        );
    }
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Panics unless `record` (read from `path`) is valid under the committed JSON Schema of the
/// record (`baselines/record.schema.json`), naming every violation.
pub fn assert_valid_record(record: &serde_json::Value, path: &Path) {
    let schema = read_json(&workspace_root().join(xtask::record::SCHEMA_FILE));
    let validator = jsonschema::validator_for(&schema).expect("the committed schema compiles");
    let violations: Vec<String> = validator
        .iter_errors(record)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        violations.is_empty(),
        "{} violates the record schema: {violations:#?}",
        path.display()
    );
}

/// The value of a metric in a record.
pub fn metric(record: &serde_json::Value, name: &str) -> Option<f64> {
    record["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_f64())
}

/// Runs `command`, sends it SIGINT once a stderr line contains `marker`, and waits (at most
/// 10 minutes) for it to end. Panics if the marker never appears.
pub fn interrupt_when(mut command: Command, marker: &str) -> RunOutput {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cargo xtask");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let stderr = child.stderr.take().expect("piped stderr");
    let wanted = marker.to_owned();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut signalled = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !signalled && line.contains(&wanted) {
                signalled = true;
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        (seen, signalled)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for cargo xtask") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end within 10 minutes");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let (stderr, signalled) = reader.join().expect("stderr reader");
    assert!(signalled, "the run never printed {marker:?}:\n{stderr}");
    RunOutput {
        code: status.code(),
        stdout: String::new(),
        stderr,
    }
}
