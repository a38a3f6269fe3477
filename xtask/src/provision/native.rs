//! Native mode: `initdb` + `postgres` and `redis-server` from this machine, on free loopback
//! ports, in a fresh temp dir, each server in its own process group (a terminal Ctrl-C to the
//! harness does not reach them; the harness stops them in order). As root, Postgres runs as the
//! `postgres` user through `setpriv`.
//!
//! Both servers want the start's own password (Postgres: scram-sha-256 for every connection,
//! Unix socket included; Redis: `requirepass`), which only ever travels in files of mode 0600
//! and in the URLs handed to the harness's own processes. A port is free when chosen but not
//! held until the server binds it (neither server can inherit a socket): a server that finds
//! it taken exits, and the start tries fresh ports; readiness counts only an answer from *this*
//! start's server (the password, and for Postgres its data directory), never a stranger's.
//!
//! Must never: use a shell or `pg_ctl`; listen on anything but 127.0.0.1; accept a connection
//! without the password; touch a data directory or process it did not create; leave a server
//! process or the temp dir behind on any path it can control (teardown, error, drop, panic).

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
/// How many port pairs a start tries when another process takes a chosen port first.
const PORT_ATTEMPTS: u32 = 3;
/// What both servers log when their port is taken.
const PORT_IN_USE: &str = "Address already in use";

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

/// Whether an executable `program` is in a directory of PATH.
pub(crate) fn on_path(program: &str) -> bool {
    path_dirs()
        .iter()
        .any(|dir| is_executable(&dir.join(program)))
}

/// The native servers' programs not on PATH: `postgres` (with `initdb` beside it) and
/// `redis-server`.
pub(crate) fn missing_programs() -> Vec<&'static str> {
    let path = path_dirs();
    let mut missing = Vec::new();
    if !path
        .iter()
        .any(|d| is_executable(&d.join("postgres")) && is_executable(&d.join("initdb")))
    {
        missing.push("postgres");
    }
    if !on_path("redis-server") {
        missing.push("redis-server");
    }
    missing
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
    port: u16,
    child: Option<Child>,
    pid: u32,
    stop_signal: Signal,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl ServerProcess {
    fn spawn(
        service: &'static str,
        port: u16,
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
            port,
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

    /// [`Self::teardown`] through a mutable reference (tests), with any problem a panic.
    #[cfg(test)]
    async fn teardown_now(&mut self) {
        let servers = NativeServers {
            postgres: self.postgres.take(),
            redis: self.redis.take(),
            dir: self.dir.take(),
        };
        servers.teardown().await.expect("teardown");
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

/// Chooses the two ports of one attempt.
pub(crate) type PortChooser<'a> = dyn FnMut() -> std::io::Result<(u16, u16)> + Send + 'a;

/// Starts both servers and waits until they answer.
pub(crate) async fn start(
    bins: &NativeBinaries,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Started, ProvisionError> {
    start_on_ports(bins, timeout, progress, &mut free_loopback_ports).await
}

/// [`start`] with the ports of each attempt chosen by `ports`; when another process took a
/// chosen port before the server bound it, the next attempt asks `ports` again (at most
/// [`PORT_ATTEMPTS`] attempts).
pub(crate) async fn start_on_ports(
    bins: &NativeBinaries,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
    ports: &mut PortChooser<'_>,
) -> Result<Started, ProvisionError> {
    let password = probe::run_password()?;
    let mut attempt = 1;
    loop {
        let (pg_port, redis_port) = ports().map_err(|e| ProvisionError::Io {
            action: "finding free ports on 127.0.0.1".to_owned(),
            source: e,
            hint: "Check that the loopback interface is up".to_owned(),
        })?;
        match start_once(bins, &password, pg_port, redis_port, timeout, progress).await {
            Err(ProvisionError::PortTaken { service, port, .. }) if attempt < PORT_ATTEMPTS => {
                progress(&format!(
                    "services: another process took 127.0.0.1:{port} before {service} could \
                     bind it; trying fresh ports"
                ));
                attempt += 1;
            }
            Err(ProvisionError::PortTaken { service, port, .. }) => {
                return Err(ProvisionError::PortTaken {
                    service,
                    port,
                    attempts: attempt,
                });
            }
            other => return other,
        }
    }
}

/// One attempt on the given ports, in a temp dir of its own.
async fn start_once(
    bins: &NativeBinaries,
    password: &str,
    pg_port: u16,
    redis_port: u16,
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
        start_postgres(bins, &root, password, pg_port, timeout, progress),
        start_redis(bins, &root, password, redis_port, timeout),
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
        postgres_url: postgres_url(password, pg_port),
        redis_url: redis_url(password, redis_port),
        postgres_version,
        redis_version,
        postgres_image: None,
        redis_image: None,
    })
}

fn postgres_url(password: &str, port: u16) -> UrlParts {
    UrlParts {
        scheme: "postgres".to_owned(),
        userinfo: Some(format!("{POSTGRES_USER}:{password}")),
        host: "127.0.0.1".to_owned(),
        port: Some(port),
        path: "postgres".to_owned(),
        query: String::new(),
    }
}

fn redis_url(password: &str, port: u16) -> String {
    format!("redis://:{password}@127.0.0.1:{port}/")
}

/// Writes `contents` to a new file of mode 0600 (owned by `owner` when given): the password's
/// only place on disk.
fn write_private(path: &Path, contents: &str, owner: Option<&RunAs>) -> Result<(), ProvisionError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e| ProvisionError::Io {
        action: format!("writing {}", path.display()),
        source: e,
        hint: "Check the temp directory".to_owned(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.write_all(contents.as_bytes()).map_err(failed)?;
    if let Some(owner) = owner {
        std::os::unix::fs::fchown(&file, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
            .map_err(failed)?;
    }
    Ok(())
}

async fn start_postgres(
    bins: &NativeBinaries,
    root: &Path,
    password: &str,
    port: u16,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(ServerProcess, String), ProvisionError> {
    let data = root.join("pgdata");
    // initdb reads the superuser's password from a file (never from its command line, which
    // every local user can read) and the file goes as soon as initdb is done.
    let password_file = root.join("pgpassword");
    write_private(&password_file, password, bins.run_as.as_ref())?;
    let mut initdb = postgres_command(bins, &bins.initdb);
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", POSTGRES_USER, "-A", "scram-sha-256"])
        .arg(format!("--pwfile={}", password_file.display()))
        .args(["--no-sync", "-E", "UTF8"])
        .current_dir(root)
        .stdin(Stdio::null());
    let shown = format!("{initdb:?}");
    progress(&format!("services: initdb -D {}", data.display()));
    let output = tokio::process::Command::from(initdb)
        .kill_on_drop(true)
        .output()
        .await;
    let _ = std::fs::remove_file(&password_file);
    let output = output.map_err(|e| ProvisionError::Io {
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
    let mut proc = ServerProcess::spawn(
        "postgres",
        port,
        cmd,
        root.join("postgres.log"),
        Signal::SIGINT,
    )?;
    let url = postgres_url(password, port).with_path("postgres");
    let version = wait_ready(&mut proc, timeout, || postgres_of(&url, &data)).await?;
    Ok((proc, version))
}

/// One readiness attempt that counts only this start's server: the password must work (a
/// server with trust authentication would accept any), and the server's data directory must
/// be `data`.
async fn postgres_of(url: &str, data: &Path) -> Result<String, String> {
    let version = probe::postgres_once(url).await?;
    let served = probe::postgres_data_directory(url).await?;
    let same = Path::new(&served) == data
        || std::fs::canonicalize(&served).ok() == std::fs::canonicalize(data).ok();
    if same {
        Ok(version)
    } else {
        Err(format!(
            "the server on this port is another one (its data directory is {served})"
        ))
    }
}

async fn start_redis(
    bins: &NativeBinaries,
    root: &Path,
    password: &str,
    port: u16,
    timeout: Duration,
) -> Result<(ServerProcess, String), ProvisionError> {
    let redis_dir = root.join("redis");
    std::fs::create_dir(&redis_dir).map_err(|e| ProvisionError::Io {
        action: format!("creating {}", redis_dir.display()),
        source: e,
        hint: "Check the temp directory".to_owned(),
    })?;
    // The password goes in a config file of mode 0600, not on the command line.
    let config = redis_dir.join("redis.conf");
    write_private(
        &config,
        &format!(
            "port {port}\nbind 127.0.0.1\ndir \"{}\"\nsave \"\"\nappendonly no\nrequirepass {password}\n",
            redis_dir.display()
        ),
        None,
    )?;
    let mut cmd = Command::new(&bins.redis_server);
    cmd.arg(&config).current_dir(root);
    let mut proc =
        ServerProcess::spawn("redis", port, cmd, root.join("redis.log"), Signal::SIGTERM)?;
    // A server of someone else's on this port refuses the password (Redis answers AUTH with an
    // error when it has none), so an answer is from this start's server.
    let url = redis_url(password, port);
    let version = wait_ready(&mut proc, timeout, || probe::redis_once(&url)).await?;
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
            Some(_) if probe::file_tail(&self.log, 30).contains(PORT_IN_USE) => {
                Err(ProvisionError::PortTaken {
                    service: self.service,
                    port: self.port,
                    attempts: 1,
                })
            }
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
                address: format!("127.0.0.1:{}", proc.port),
                place: proc.place(),
                waited_secs: timeout.as_secs(),
                last_error,
                advice: advice("its log", &tail, &hint_for(proc.service, &tail)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    //! Real servers from this machine's PATH (`.ci/setup-machine.sh` installs them).

    use std::sync::Mutex;

    use sqlx::Connection;

    use super::*;

    fn ready_dirs(lines: &[String]) -> Vec<PathBuf> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("services: native servers in "))
            .map(|rest| PathBuf::from(rest.split(' ').next().unwrap_or(rest).trim_end_matches(':')))
            .collect()
    }

    async fn start_recording(
        ports: &mut PortChooser<'_>,
    ) -> (Result<Started, ProvisionError>, Vec<String>) {
        let bins = find().expect("initdb, postgres and redis-server on PATH");
        let lines = Mutex::new(Vec::new());
        let progress = |l: &str| lines.lock().unwrap().push(l.to_owned());
        let started = start_on_ports(&bins, Duration::from_secs(30), &progress, ports).await;
        (started, lines.into_inner().unwrap())
    }

    fn native(started: &mut Started) -> &mut NativeServers {
        match &mut started.backend {
            Backend::Native(servers) => servers,
            _ => panic!("native servers"),
        }
    }

    #[tokio::test]
    async fn the_servers_answer_only_with_the_runs_password_and_keep_it_off_command_lines() {
        let (started, lines) = start_recording(&mut free_loopback_ports).await;
        let mut started = started.expect("native start");
        let url = started.postgres_url.with_path("postgres");
        let password = started
            .postgres_url
            .userinfo
            .as_deref()
            .and_then(|u| u.strip_prefix("postgres:"))
            .expect("a password in the URL")
            .to_owned();
        assert_eq!(password.len(), 32);

        // With the password: both answer.
        probe::postgres_once(&url)
            .await
            .expect("postgres with the password");
        probe::redis_once(&started.redis_url)
            .await
            .expect("redis with the password");

        // Without it, or with another: both refuse.
        let address = &started.postgres_address;
        for wrong in [
            format!("postgres://postgres@{address}/postgres"),
            format!("postgres://postgres:{}@{address}/postgres", "0".repeat(32)),
        ] {
            let refused = sqlx::PgConnection::connect(&wrong).await.err();
            let refused = refused.map(|e| e.to_string()).unwrap_or_default();
            assert!(refused.contains("password"), "{refused:?}");
        }
        let bare = format!("redis://{}/", started.redis_address);
        let refused = probe::redis_once(&bare)
            .await
            .expect_err("redis without a password");
        assert!(refused.contains("NOAUTH"), "{refused}");

        // The password is in no process's command line, and on disk only in Redis's 0600 file.
        let dir = ready_dirs(&lines).pop().expect("the servers' directory");
        let (pg_pid, redis_pid) = native(&mut started).pids();
        for pid in [pg_pid.unwrap(), redis_pid.unwrap()] {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&password),
                "pid {pid}'s command line shows the password"
            );
        }
        assert!(
            !dir.join("pgpassword").exists(),
            "initdb's password file stays"
        );
        let config = dir.join("redis").join("redis.conf");
        let mode = std::fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", config.display());

        native(&mut started).teardown_now().await;
        assert!(!dir.exists(), "{} is left", dir.display());
    }

    #[tokio::test]
    async fn a_port_another_server_holds_is_never_taken_for_this_starts_server() {
        // The first start's servers hold their ports; the second start is told to use the same
        // ones first. Its probes reach the first start's servers, which refuse its password (and
        // a Postgres of someone else that let anyone in would have another data directory), its
        // own servers cannot bind and exit, and it tries fresh ports.
        let (first, _) = start_recording(&mut free_loopback_ports).await;
        let mut first = first.expect("first start");
        let held = (
            first.postgres_url.port.unwrap(),
            first
                .redis_address
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap(),
        );
        let mut calls = 0;
        let mut chooser = || {
            calls += 1;
            if calls == 1 {
                Ok(held)
            } else {
                free_loopback_ports()
            }
        };
        let (second, lines) = start_recording(&mut chooser).await;
        let mut second = second.expect("second start, on fresh ports");
        assert_ne!(second.postgres_url.port, Some(held.0));
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("took 127.0.0.1:{}", held.0))),
            "{lines:#?}"
        );
        // Both starts' servers answer, each on its own port with its own password.
        probe::postgres_once(&first.postgres_url.with_path("postgres"))
            .await
            .unwrap();
        probe::postgres_once(&second.postgres_url.with_path("postgres"))
            .await
            .unwrap();
        assert_ne!(first.postgres_url.userinfo, second.postgres_url.userinfo);
        // The data directory tells this start's Postgres from any other that answers.
        let elsewhere = postgres_of(
            &first.postgres_url.with_path("postgres"),
            Path::new("/elsewhere"),
        )
        .await
        .expect_err("another data directory");
        assert!(elsewhere.contains("another one"), "{elsewhere}");

        // Ports taken on every attempt: a clear error, and nothing left behind.
        let mut always_held = || Ok(held);
        let (third, lines) = start_recording(&mut always_held).await;
        let error = third.err().expect("no start on ports that stay taken");
        assert!(
            matches!(
                error,
                ProvisionError::PortTaken {
                    attempts: PORT_ATTEMPTS,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("ss -ltnp"), "{error}");
        let dirs = ready_dirs(&lines);
        assert_eq!(dirs.len(), PORT_ATTEMPTS as usize, "{lines:#?}");
        assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");

        native(&mut second).teardown_now().await;
        native(&mut first).teardown_now().await;
    }
}
