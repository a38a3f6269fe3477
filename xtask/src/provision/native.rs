//! Native mode: `initdb` + `postgres` and `redis-server` from this machine, on free loopback
//! ports, in a fresh temp dir, each server in its own process group (a terminal Ctrl-C to the
//! harness does not reach them; the harness stops them in order). As root, Postgres runs as the
//! `postgres` user through `setpriv`.
//!
//! Must never: use a shell or `pg_ctl`; listen on anything but 127.0.0.1; touch a data directory
//! or process it did not create; leave a server process or the temp dir behind on any path it
//! can control (teardown, error, drop, panic).

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::error::{ProvisionError, advice};
use super::probe::{self, UrlParts, Wait};
use super::{Backend, Started};

/// How long a server gets to stop after its stop signal before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The user Postgres runs as when the harness runs as root.
const POSTGRES_USER: &str = "postgres";

/// The binaries native mode uses.
#[derive(Debug, Clone)]
pub(crate) struct NativeBinaries {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
    pub redis_server: PathBuf,
    /// `setpriv` and the user's ids, when running as root.
    pub run_as: Option<RunAs>,
}

#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub setpriv: PathBuf,
    pub uid: nix::unistd::Uid,
    pub gid: nix::unistd::Gid,
}

impl NativeBinaries {
    /// e.g. "initdb/postgres in /usr/local/bin, redis-server in /usr/bin".
    pub(crate) fn describe(&self) -> String {
        let dir = |p: &Path| {
            p.parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        };
        format!(
            "initdb/postgres in {}, redis-server in {}",
            dir(&self.postgres),
            dir(&self.redis_server)
        )
    }
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds the binaries (and, as root, `setpriv` and the `postgres` user).
pub(crate) fn find() -> Result<NativeBinaries, ProvisionError> {
    let path = path_dirs();
    let pg_dirs = path.clone();
    let searched_pg = "PATH".to_owned();

    // initdb and postgres must come from the same directory (the same version).
    let pg_dir = pg_dirs
        .iter()
        .find(|d| is_executable(&d.join("postgres")) && is_executable(&d.join("initdb")));
    let Some(pg_dir) = pg_dir else {
        let binary = if pg_dirs.iter().any(|d| is_executable(&d.join("postgres"))) {
            "initdb"
        } else {
            "postgres"
        };
        return Err(ProvisionError::NativeBinaryMissing {
            binary,
            searched: searched_pg,
            package: "postgresql",
        });
    };
    let Some(redis_server) = path
        .iter()
        .map(|d| d.join("redis-server"))
        .find(|p| is_executable(p))
    else {
        return Err(ProvisionError::NativeBinaryMissing {
            binary: "redis-server",
            searched: "PATH".to_owned(),
            package: "redis-server",
        });
    };

    let run_as = if nix::unistd::geteuid().is_root() {
        let Some(setpriv) = path
            .iter()
            .map(|d| d.join("setpriv"))
            .find(|p| is_executable(p))
        else {
            return Err(ProvisionError::NativeSetup {
                problem: "running as root: Postgres refuses to run as root, and `setpriv` (to run \
                          it as the `postgres` user) is not on PATH"
                    .to_owned(),
                fix: "Install util-linux (it has `setpriv`), or run the harness as a non-root user"
                    .to_owned(),
            });
        };
        let user = nix::unistd::User::from_name(POSTGRES_USER).ok().flatten();
        let Some(user) = user else {
            return Err(ProvisionError::NativeSetup {
                problem: "running as root: Postgres refuses to run as root, and there is no \
                          `postgres` user to run it as"
                    .to_owned(),
                fix: "Create it (`useradd --system --user-group postgres`; Debian's postgresql \
                      package does this), or run the harness as a non-root user"
                    .to_owned(),
            });
        };
        Some(RunAs {
            setpriv,
            uid: user.uid,
            gid: user.gid,
        })
    } else {
        None
    };

    Ok(NativeBinaries {
        initdb: pg_dir.join("initdb"),
        postgres: pg_dir.join("postgres"),
        redis_server,
        run_as,
    })
}

/// One server child process, in its own process group.
struct ServerProcess {
    service: &'static str,
    child: Option<Child>,
    pid: u32,
    stop_signal: Signal,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl ServerProcess {
    fn spawn(
        service: &'static str,
        mut cmd: Command,
        log: PathBuf,
        stop_signal: Signal,
    ) -> Result<ServerProcess, ProvisionError> {
        let io_error = |action: String, source| ProvisionError::Io {
            action,
            source,
            hint: "Check the temp directory and the server binary".to_owned(),
        };
        let out =
            File::create(&log).map_err(|e| io_error(format!("creating {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| io_error(format!("opening {}", log.display()), e))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: a terminal Ctrl-C to the harness's group does not reach it.
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| io_error(format!("starting {service} ({:?})", cmd.get_program()), e))?;
        Ok(ServerProcess {
            service,
            pid: child.id(),
            child: Some(child),
            stop_signal,
            log,
            status: None,
        })
    }

    /// The exit status if the process has exited (reaps it).
    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.status = Some(status);
        }
        self.status
    }

    fn running(&self) -> bool {
        self.child.is_some() && self.status.is_none()
    }

    fn send_stop(&mut self) {
        if self.running() && self.exited().is_none() {
            let _ = kill(Pid::from_raw(self.pid as i32), self.stop_signal);
        }
    }

    /// SIGKILL to the whole process group (the server and any children it left), then reap.
    fn kill_group(&mut self) {
        let pgid = Pid::from_raw(self.pid as i32);
        let _ = killpg(pgid, Signal::SIGKILL);
        if let Some(child) = self.child.as_mut()
            && self.status.is_none()
            && let Ok(status) = child.wait()
        {
            self.status = Some(status);
        }
    }

    /// After the leader exited: any member of its group still alive (e.g. a Postgres backend)?
    fn group_alive(&self) -> bool {
        killpg(Pid::from_raw(self.pid as i32), None).is_ok()
    }

    /// Finishes a stop: SIGKILL if still running or if group members remain; then forget the child.
    fn finish(&mut self) -> Option<String> {
        self.child.as_ref()?;
        let mut problem = None;
        if self.exited().is_none() {
            problem = Some(format!(
                "{} (pid {}) did not stop within {} s of {}; killed",
                self.service,
                self.pid,
                STOP_GRACE.as_secs(),
                self.stop_signal
            ));
            self.kill_group();
        } else if self.group_alive() {
            self.kill_group();
        }
        if self.exited().is_none() {
            problem = Some(format!(
                "{} (pid {}) could not be stopped",
                self.service, self.pid
            ));
        } else {
            self.child = None;
        }
        problem
    }

    fn stopped(&mut self) -> bool {
        self.child.is_none() || self.exited().is_some()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.send_stop();
            let deadline = Instant::now() + STOP_GRACE;
            while !self.stopped() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Some(problem) = self.finish() {
                eprintln!("services: {problem}");
            }
        }
    }
}

/// The running native servers and their temp dir.
pub(crate) struct NativeServers {
    // Field order matters for the implicit drop: processes before the directory.
    postgres: Option<ServerProcess>,
    redis: Option<ServerProcess>,
    dir: Option<tempfile::TempDir>,
}

impl NativeServers {
    /// The pids of the postmaster and of redis-server (`None` once stopped).
    pub(crate) fn pids(&self) -> (Option<u32>, Option<u32>) {
        let pid = |p: &Option<ServerProcess>| p.as_ref().filter(|p| p.running()).map(|p| p.pid);
        (pid(&self.postgres), pid(&self.redis))
    }

    fn processes(&mut self) -> impl Iterator<Item = &mut ServerProcess> {
        self.postgres.iter_mut().chain(self.redis.iter_mut())
    }

    /// SIGINT to postgres (fast shutdown), SIGTERM to redis, up to 10 s, then SIGKILL; then the
    /// temp dir goes.
    pub(crate) async fn teardown(mut self) -> Result<(), String> {
        self.processes().for_each(ServerProcess::send_stop);
        let deadline = Instant::now() + STOP_GRACE;
        while !self.processes().all(|p| p.stopped()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.finish()
    }

    /// The same, synchronously (for `Drop`).
    pub(crate) fn cleanup_blocking(&mut self) {
        self.processes().for_each(ServerProcess::send_stop);
        let deadline = Instant::now() + STOP_GRACE;
        while !self.processes().all(|p| p.stopped()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = self.finish() {
            eprintln!("services: {e}");
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        let mut problems: Vec<String> = self.processes().filter_map(|p| p.finish()).collect();
        let all_stopped = self.processes().all(|p| p.child.is_none());
        self.postgres = None;
        self.redis = None;
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_owned();
            if all_stopped {
                if let Err(e) = dir.close() {
                    problems.push(format!("removing {}: {e}", path.display()));
                }
            } else {
                // Keep the directory of a process that could not be stopped.
                let _ = dir.keep();
                problems.push(format!("{} was kept", path.display()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

impl Drop for NativeServers {
    fn drop(&mut self) {
        if self.postgres.is_some() || self.redis.is_some() || self.dir.is_some() {
            self.cleanup_blocking();
        }
    }
}

/// The temp dir's parent: `$TMPDIR` (or /tmp), but /tmp when running as root and the other
/// would not be reachable by the `postgres` user.
fn temp_base(root: bool) -> PathBuf {
    let base = std::env::temp_dir();
    if !root {
        return base;
    }
    let reachable = base.ancestors().all(|a| {
        a.metadata()
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    });
    if reachable {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

fn free_loopback_ports() -> std::io::Result<(u16, u16)> {
    // Both listeners are held until both ports are known, so the two differ.
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// A command, through `setpriv` as the `postgres` user when running as root.
fn postgres_command(bins: &NativeBinaries, program: &Path) -> Command {
    match &bins.run_as {
        Some(run_as) => {
            let mut cmd = Command::new(&run_as.setpriv);
            cmd.args([
                "--reuid",
                POSTGRES_USER,
                "--regid",
                POSTGRES_USER,
                "--init-groups",
            ])
            .arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Starts both servers and waits until they answer.
pub(crate) async fn start(
    bins: &NativeBinaries,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Started, ProvisionError> {
    let base = temp_base(bins.run_as.is_some());
    let dir = tempfile::Builder::new()
        .prefix("perf-services-")
        .tempdir_in(&base)
        .map_err(|e| ProvisionError::Io {
            action: format!("creating a temp dir in {}", base.display()),
            source: e,
            hint: "Make the temp dir writable (or set TMPDIR to a writable directory)".to_owned(),
        })?;
    let root = dir.path().to_owned();
    if let Some(run_as) = &bins.run_as {
        std::os::unix::fs::chown(&root, Some(run_as.uid.as_raw()), Some(run_as.gid.as_raw()))
            .map_err(|e| ProvisionError::NativeSetup {
                problem: format!("cannot hand {} to the postgres user: {e}", root.display()),
                fix: "Run the harness as a non-root user, or use `--services docker`".to_owned(),
            })?;
    }
    let (pg_port, redis_port) = free_loopback_ports().map_err(|e| ProvisionError::Io {
        action: "finding free ports on 127.0.0.1".to_owned(),
        source: e,
        hint: "Check that the loopback interface is up".to_owned(),
    })?;
    let as_user = if bins.run_as.is_some() {
        " (postgres as user postgres via setpriv)"
    } else {
        ""
    };
    progress(&format!(
        "services: native servers in {}{as_user}: postgres on 127.0.0.1:{pg_port}, redis on 127.0.0.1:{redis_port}",
        root.display()
    ));

    let (pg, rd) = tokio::join!(
        start_postgres(bins, &root, pg_port, timeout, progress),
        start_redis(bins, &root, redis_port, timeout),
    );
    // On an error, the other server's process guard and the temp dir are dropped: stopped and
    // removed, processes first.
    let (pg_proc, postgres_version) = pg?;
    let (rd_proc, redis_version) = rd?;

    progress(&format!(
        "services: postgres ready at 127.0.0.1:{pg_port} (native, pid={}, dir={})",
        pg_proc.pid,
        root.display()
    ));
    progress(&format!(
        "services: redis ready at 127.0.0.1:{redis_port} (native, pid={}, dir={})",
        rd_proc.pid,
        root.display()
    ));

    Ok(Started {
        backend: Backend::Native(NativeServers {
            postgres: Some(pg_proc),
            redis: Some(rd_proc),
            dir: Some(dir),
        }),
        postgres_address: format!("127.0.0.1:{pg_port}"),
        redis_address: format!("127.0.0.1:{redis_port}"),
        postgres_url: UrlParts {
            scheme: "postgres".to_owned(),
            userinfo: Some("postgres".to_owned()),
            host: "127.0.0.1".to_owned(),
            port: Some(pg_port),
            path: "postgres".to_owned(),
            query: String::new(),
        },
        redis_url: format!("redis://127.0.0.1:{redis_port}/"),
        postgres_version,
        redis_version,
        postgres_image: None,
        redis_image: None,
    })
}

async fn start_postgres(
    bins: &NativeBinaries,
    root: &Path,
    port: u16,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(ServerProcess, String), ProvisionError> {
    let data = root.join("pgdata");
    let mut initdb = postgres_command(bins, &bins.initdb);
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        .current_dir(root)
        .stdin(Stdio::null());
    let shown = format!("{initdb:?}");
    progress(&format!("services: initdb -D {}", data.display()));
    let output = tokio::process::Command::from(initdb)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ProvisionError::Io {
            action: format!("running {shown}"),
            source: e,
            hint: "Check the PostgreSQL installation".to_owned(),
        })?;
    if !output.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        return Err(ProvisionError::Initdb {
            command: shown,
            status: output.status.to_string(),
            output: probe::text_tail(&text, 30),
        });
    }

    let mut cmd = postgres_command(bins, &bins.postgres);
    cmd.arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(root)
        .args(["-c", "listen_addresses=127.0.0.1"]);
    for setting in super::docker::POSTGRES_SETTINGS {
        cmd.arg("-c").arg(setting);
    }
    cmd.current_dir(root);
    let mut proc =
        ServerProcess::spawn("postgres", cmd, root.join("postgres.log"), Signal::SIGINT)?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let version = wait_ready(&mut proc, port, timeout, || probe::postgres_once(&url)).await?;
    Ok((proc, version))
}

async fn start_redis(
    bins: &NativeBinaries,
    root: &Path,
    port: u16,
    timeout: Duration,
) -> Result<(ServerProcess, String), ProvisionError> {
    let redis_dir = root.join("redis");
    std::fs::create_dir(&redis_dir).map_err(|e| ProvisionError::Io {
        action: format!("creating {}", redis_dir.display()),
        source: e,
        hint: "Check the temp directory".to_owned(),
    })?;
    let mut cmd = Command::new(&bins.redis_server);
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--dir"])
        .arg(&redis_dir)
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(root);
    let mut proc = ServerProcess::spawn("redis", cmd, root.join("redis.log"), Signal::SIGTERM)?;
    let url = format!("redis://127.0.0.1:{port}/");
    let version = wait_ready(&mut proc, port, timeout, || probe::redis_once(&url)).await?;
    Ok((proc, version))
}

fn hint_for(service: &str, log: &str) -> String {
    if service == "postgres" && log.contains("pg_stat_statements") {
        "The pg_stat_statements library is missing: install PostgreSQL's contrib modules for \
         this version (Debian: postgresql; elsewhere postgresql-contrib), or use `--services \
         docker`"
            .to_owned()
    } else {
        "Check the server log above, or use `--services docker` or `--services external`".to_owned()
    }
}

impl ServerProcess {
    fn place(&self) -> String {
        format!("native, pid={}, log={}", self.pid, self.log.display())
    }
}

impl probe::Liveness for ServerProcess {
    async fn check(&mut self, _n: u32) -> Result<(), ProvisionError> {
        match self.exited() {
            Some(status) => {
                let tail = probe::file_tail(&self.log, 30);
                Err(ProvisionError::ServerExited {
                    service: self.service,
                    place: self.place(),
                    status: status.to_string(),
                    advice: advice("its log", &tail, &hint_for(self.service, &tail)),
                })
            }
            None => Ok(()),
        }
    }
}

async fn wait_ready<F>(
    proc: &mut ServerProcess,
    port: u16,
    timeout: Duration,
    attempt: impl FnMut() -> F,
) -> Result<String, ProvisionError>
where
    F: Future<Output = Result<String, String>>,
{
    match probe::poll_ready(timeout, attempt, proc).await? {
        Wait::Ready(version) => Ok(version),
        Wait::TimedOut { last_error } => {
            let tail = probe::file_tail(&proc.log, 30);
            Err(ProvisionError::NotReady {
                service: proc.service,
                address: format!("127.0.0.1:{port}"),
                place: proc.place(),
                waited_secs: timeout.as_secs(),
                last_error,
                advice: advice("its log", &tail, &hint_for(proc.service, &tail)),
            })
        }
    }
}
