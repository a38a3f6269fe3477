//! Setup: what this machine lacks for a run, and getting it, idempotently (check, then act).
//! The native servers and valgrind come from the system's packages (as root, with apt-get);
//! `gungraun-runner` at the version of the checkout's `Cargo.lock` comes from `cargo install`
//! into a directory the harness owns (`$PERF_TOOLS_DIR`, default `$XDG_CACHE_HOME/perf-harness`
//! or `~/.cache/perf-harness`, one subdirectory per version), so nothing global changes.
//!
//! The decisions are pure ([`plan_services`], [`plan_runner`]: what was found in, what to do or
//! what to tell out), so each is tested without touching the machine; [`ensure_services`] and
//! [`gungraun_runner`] gather the facts, say what they do and why, and act. `cargo xtask setup`
//! runs both up front; `cargo xtask perf` runs them where it needs them.
//!
//! Must never: install what the run does not need (Docker serving with its images needs no
//! native servers; a runner of the right version on PATH is used as it is); install a package
//! without being root (it prints the exact command instead); leave a half-installed runner
//! where a later run would take it for a whole one.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::progress::Progress;
use crate::provision::{ProvisionOptions, ServicesMode};

/// The variable that moves the directory of the harness's own tools.
pub const TOOLS_DIR_VARIABLE: &str = "PERF_TOOLS_DIR";

/// A system package a run may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Package {
    /// `initdb` and `postgres` (native servers).
    Postgres,
    /// `redis-server` (native servers).
    Redis,
    /// `valgrind` (the instructions suite).
    Valgrind,
}

impl Package {
    /// Debian's name for it.
    pub fn debian_name(self) -> &'static str {
        match self {
            Self::Postgres => "postgresql",
            Self::Redis => "redis-server",
            Self::Valgrind => "valgrind",
        }
    }

    fn programs(self) -> &'static str {
        match self {
            Self::Postgres => "`initdb` and `postgres`",
            Self::Redis => "`redis-server`",
            Self::Valgrind => "`valgrind`",
        }
    }
}

/// How this machine can install system packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installer {
    /// Running as root with `apt-get` on PATH: the harness installs.
    AptAsRoot,
    /// `apt-get` is there but the harness is not root: it prints the `sudo` command.
    AptNotRoot,
    /// No package manager the harness knows.
    Unknown,
}

/// What provisioning would find for the services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicesFacts {
    pub mode: ServicesMode,
    /// A Docker engine answers.
    pub docker_answers: bool,
    /// ... and has both images locally.
    pub docker_images_present: bool,
    /// Native servers' packages whose programs are not on PATH.
    pub native_missing: Vec<Package>,
    pub installer: Installer,
}

/// What to do about the services before they start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServicesStep {
    /// Nothing to install; why.
    Ready(String),
    /// Install these packages; why.
    Install { packages: Vec<Package>, why: String },
    /// Cannot go on: the problem and the exact fix.
    Blocked(String),
}

/// Decides what the services need. Docker stays the first choice in auto mode when an engine
/// answers and has the images; native servers are installed only when nothing else can serve.
pub fn plan_services(facts: &ServicesFacts) -> ServicesStep {
    match facts.mode {
        ServicesMode::External => {
            return ServicesStep::Ready("external servers: nothing to install".to_owned());
        }
        ServicesMode::Docker => {
            return ServicesStep::Ready("docker: nothing to install".to_owned());
        }
        ServicesMode::Auto if facts.docker_answers && facts.docker_images_present => {
            return ServicesStep::Ready(
                "a Docker engine answers and has both images: nothing to install".to_owned(),
            );
        }
        ServicesMode::Auto | ServicesMode::Native => {}
    }
    if facts.native_missing.is_empty() {
        return ServicesStep::Ready("the native servers are on PATH".to_owned());
    }
    let missing = describe_missing(&facts.native_missing);
    let docker = match (facts.mode, facts.docker_answers) {
        (ServicesMode::Native, _) => "--services native".to_owned(),
        (_, true) => "the Docker engine lacks the images".to_owned(),
        (_, false) => "no Docker engine answers".to_owned(),
    };
    let why = format!("{docker}, and {missing} not on PATH");
    if facts.native_missing.contains(&Package::Postgres) {
        // Debian's postgresql package puts initdb and postgres in a versioned directory off
        // PATH: installing it is not enough, so say what is.
        return ServicesStep::Blocked(format!(
            "{why}.\n  fix: install Postgres (15 or newer, with pg_stat_statements) so that `initdb` \
             and `postgres` are on PATH (Debian: `apt-get install postgresql`, then add the \
             directory `pg_config --bindir` names to PATH){}",
            if facts.native_missing.contains(&Package::Redis) {
                "; and `apt-get install redis-server`"
            } else {
                ""
            }
        ));
    }
    match facts.installer {
        Installer::AptAsRoot => ServicesStep::Install {
            packages: facts.native_missing.clone(),
            why,
        },
        Installer::AptNotRoot => ServicesStep::Blocked(format!(
            "{why}.\n  fix: {}",
            install_command(&facts.native_missing, true)
        )),
        Installer::Unknown => ServicesStep::Blocked(format!(
            "{why}.\n  fix: install {} with this system's package manager",
            missing_programs(&facts.native_missing)
        )),
    }
}

/// What the instructions suite would find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerFacts {
    /// The gungraun version the checkout's `Cargo.lock` names (None: it names none).
    pub wanted: Option<String>,
    /// `gungraun-runner --version` of the one on PATH, if any.
    pub on_path: Option<String>,
    /// The harness's own runner of the wanted version is installed.
    pub owned: bool,
    pub valgrind: bool,
    pub installer: Installer,
}

/// What to do about the instructions suite's tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerStep {
    /// Use `gungraun-runner` from PATH.
    UsePath,
    /// Use the harness's own runner of this version.
    UseOwned(String),
    /// First install these packages (valgrind), then go on with `then`.
    InstallPackages {
        packages: Vec<Package>,
        why: String,
        then: Box<RunnerStep>,
    },
    /// `cargo install` the runner of this version into the harness's directory; why.
    InstallRunner { version: String, why: String },
    /// Cannot go on: the problem and the exact fix.
    Blocked(String),
}

/// Decides what the instructions suite needs: valgrind, and a runner of exactly the version of
/// the gungraun library the benchmarks link (the runner refuses any other).
pub fn plan_runner(facts: &RunnerFacts) -> RunnerStep {
    let runner = match &facts.wanted {
        None => RunnerStep::UsePath,
        Some(wanted) if facts.on_path.as_deref() == Some(wanted.as_str()) => RunnerStep::UsePath,
        Some(wanted) if facts.owned => RunnerStep::UseOwned(wanted.clone()),
        Some(wanted) => RunnerStep::InstallRunner {
            version: wanted.clone(),
            why: match &facts.on_path {
                None => format!(
                    "the instructions suite needs gungraun-runner {wanted}, and none is on PATH"
                ),
                Some(other) => format!(
                    "the instructions suite needs gungraun-runner {wanted} (the gungraun version \
                     in Cargo.lock); PATH has {other}, which the benchmarks would refuse"
                ),
            },
        },
    };
    if facts.valgrind {
        return runner;
    }
    let why = "the instructions suite runs its benchmarks under valgrind, which is not on PATH"
        .to_owned();
    match facts.installer {
        Installer::AptAsRoot => RunnerStep::InstallPackages {
            packages: vec![Package::Valgrind],
            why,
            then: Box::new(runner),
        },
        Installer::AptNotRoot => RunnerStep::Blocked(format!(
            "{why}.\n  fix: {} (or leave the suite out with --filter)",
            install_command(&[Package::Valgrind], true)
        )),
        Installer::Unknown => RunnerStep::Blocked(format!(
            "{why}.\n  fix: install valgrind with this system's package manager (or leave the \
             suite out with --filter)"
        )),
    }
}

fn describe_missing(packages: &[Package]) -> String {
    let programs = missing_programs(packages);
    if packages.len() == 1 && packages[0] == Package::Redis {
        format!("{programs} is")
    } else {
        format!("{programs} are")
    }
}

fn missing_programs(packages: &[Package]) -> String {
    packages
        .iter()
        .map(|p| p.programs())
        .collect::<Vec<_>>()
        .join(" and ")
}

fn install_command(packages: &[Package], sudo: bool) -> String {
    let names: Vec<&str> = packages.iter().map(|p| p.debian_name()).collect();
    format!(
        "`{}apt-get install -y {}`",
        if sudo { "sudo " } else { "" },
        names.join(" ")
    )
}

/// `cargo xtask setup`: both checks and installs up front, then one line saying what is ready.
pub async fn run(
    config: &crate::config::Config,
    progress: &Progress,
) -> Result<crate::exit::Outcome> {
    let layout = &config.layout;
    let options = &config.provision;
    let logs = layout.target_dir.join("perf-setup");
    ensure_services(options, &logs, progress).await?;
    let runner = gungraun_runner(&layout.root, &layout.target_dir, progress).await?;
    progress.line(&format!(
        "setup: ready for --services {}; gungraun-runner {}",
        options.mode,
        match runner {
            Some(dir) => format!("in {}", dir.display()),
            None => "on PATH".to_owned(),
        }
    ));
    progress.finish();
    Ok(crate::exit::Outcome::Success)
}

/// Installs what the services need before they start, or fails naming the fix.
pub async fn ensure_services(
    options: &ProvisionOptions,
    logs: &Path,
    progress: &Progress,
) -> Result<()> {
    if matches!(options.mode, ServicesMode::External | ServicesMode::Docker) {
        return Ok(());
    }
    let found = crate::provision::readiness(options).await;
    // Readiness names each missing program once: `postgres` (with initdb) or `redis-server`.
    let native_missing = found
        .native_missing
        .iter()
        .map(|&program| match program {
            "redis-server" => Package::Redis,
            _ => Package::Postgres,
        })
        .collect();
    let facts = ServicesFacts {
        mode: options.mode,
        docker_answers: found.docker_answers,
        docker_images_present: found.docker_images_present,
        native_missing,
        installer: installer(),
    };
    match plan_services(&facts) {
        ServicesStep::Ready(_) => Ok(()),
        ServicesStep::Install { packages, why } => {
            install_packages(&packages, &why, logs, progress).await
        }
        ServicesStep::Blocked(message) => {
            let other_modes = if options.mode == ServicesMode::Native {
                "use `--services docker` or `--services external`".to_owned()
            } else {
                format!(
                    "start a Docker engine that has the images {} and {} (override them with \
                     {} / {}), or point DATABASE_URL and REDIS_URL at running servers and pass \
                     `--services external`",
                    options.postgres_image.reference,
                    options.redis_image.reference,
                    options.postgres_image.override_variable,
                    options.redis_image.override_variable
                )
            };
            bail!("setup: {message}\n  or: {other_modes}")
        }
    }
}

/// Where `gungraun-runner` for the checkout at `checkout` is, installing what it needs first.
/// `Some(dir)`: put `dir` first on the benchmarks' PATH; `None`: the one on PATH is right.
pub async fn gungraun_runner(
    checkout: &Path,
    target_dir: &Path,
    progress: &Progress,
) -> Result<Option<PathBuf>> {
    let wanted = gungraun_version_in_lock(checkout)?;
    let tools = tools_dir(target_dir);
    let owned_dir = wanted.as_deref().map(|v| owned_runner_dir(&tools, v));
    let facts = RunnerFacts {
        on_path: runner_version(Path::new("gungraun-runner")),
        owned: owned_dir
            .as_ref()
            .is_some_and(|dir| runner_version(&dir.join("gungraun-runner")) == wanted),
        wanted,
        valgrind: crate::provision::program_on_path("valgrind"),
        installer: installer(),
    };
    let logs = target_dir.join("perf-setup");
    let mut step = plan_runner(&facts);
    loop {
        step = match step {
            RunnerStep::UsePath => return Ok(None),
            RunnerStep::UseOwned(_) => return Ok(owned_dir),
            RunnerStep::InstallPackages {
                packages,
                why,
                then,
            } => {
                install_packages(&packages, &why, &logs, progress).await?;
                *then
            }
            RunnerStep::InstallRunner { version, why } => {
                let dir = owned_runner_dir(&tools, &version);
                install_runner(&version, &dir, &logs, &why, progress).await?;
                return Ok(Some(dir));
            }
            RunnerStep::Blocked(message) => bail!("setup: {message}"),
        }
    }
}

/// The `gungraun-runner` a run of the workspace at `root` uses (for the record's fingerprint):
/// PATH's when it is the wanted version, else the harness's own when installed, else PATH's.
pub fn runner_program(root: &Path, target_dir: &Path) -> PathBuf {
    let path = PathBuf::from("gungraun-runner");
    let Ok(Some(wanted)) = gungraun_version_in_lock(root) else {
        return path;
    };
    if runner_version(&path).as_deref() == Some(wanted.as_str()) {
        return path;
    }
    let owned = owned_runner_dir(&tools_dir(target_dir), &wanted).join("gungraun-runner");
    if runner_version(&owned).as_deref() == Some(wanted.as_str()) {
        owned
    } else {
        path
    }
}

/// The directory of the harness's own tools.
pub fn tools_dir(target_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os(TOOLS_DIR_VARIABLE).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(cache).join("perf-harness");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".cache").join("perf-harness");
    }
    target_dir.join("perf-tools")
}

fn owned_runner_dir(tools: &Path, version: &str) -> PathBuf {
    tools.join(format!("gungraun-runner-{version}")).join("bin")
}

/// The gungraun version in `<checkout>/Cargo.lock`, if it names one.
pub fn gungraun_version_in_lock(checkout: &Path) -> Result<Option<String>> {
    let lock = checkout.join("Cargo.lock");
    let text = match std::fs::read_to_string(&lock) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", lock.display())),
    };
    Ok(gungraun_version_in(&text))
}

fn gungraun_version_in(lock: &str) -> Option<String> {
    let parsed: toml::Table = toml::from_str(lock).ok()?;
    parsed
        .get("package")?
        .as_array()?
        .iter()
        .find(|package| package.get("name").and_then(|n| n.as_str()) == Some("gungraun"))?
        .get("version")?
        .as_str()
        .map(str::to_owned)
}

/// `gungraun-runner --version` says `gungraun-runner 0.20.0`: the version.
fn runner_version(program: &Path) -> Option<String> {
    let output = std::process::Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
}

fn installer() -> Installer {
    if !crate::provision::program_on_path("apt-get") {
        Installer::Unknown
    } else if nix::unistd::geteuid().is_root() {
        Installer::AptAsRoot
    } else {
        Installer::AptNotRoot
    }
}

async fn install_packages(
    packages: &[Package],
    why: &str,
    logs: &Path,
    progress: &Progress,
) -> Result<()> {
    let names: Vec<&str> = packages.iter().map(|p| p.debian_name()).collect();
    progress.line(&format!(
        "setup: installing {} with apt-get ({why})",
        names.join(" ")
    ));
    std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
    let log = logs.join("apt-get.log");
    for args in [
        vec!["update", "-q"],
        [
            vec!["install", "-y", "-q", "--no-install-recommends"],
            names.clone(),
        ]
        .concat(),
    ] {
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let status = tokio::process::Command::new("apt-get")
            .args(&args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .status()
            .await
            .context("starting apt-get")?;
        if !status.success() {
            bail!(
                "setup: `apt-get {}` failed ({status}); its output is in {}.\n  fix: install {} \
                 yourself, then run again",
                args.join(" "),
                log.display(),
                names.join(" ")
            );
        }
    }
    progress.line(&format!("setup: installed {}", names.join(" ")));
    Ok(())
}

/// `cargo install` into a fresh directory beside `dir`, then a rename: a stopped or failed
/// install leaves nothing a later run would take for a runner.
async fn install_runner(
    version: &str,
    dir: &Path,
    logs: &Path,
    why: &str,
    progress: &Progress,
) -> Result<()> {
    let root = dir.parent().expect("<tools>/gungraun-runner-<version>/bin");
    let tools = root.parent().expect("<tools>/gungraun-runner-<version>");
    progress.line(&format!(
        "setup: installing gungraun-runner {version} into {} ({why}); a few minutes, once",
        root.display()
    ));
    std::fs::create_dir_all(tools).with_context(|| format!("creating {}", tools.display()))?;
    std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
    let partial = tools.join(format!(
        ".gungraun-runner-{version}.partial-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&partial);
    let log = logs.join(format!("cargo-install-gungraun-runner-{version}.log"));
    let file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut install = tokio::process::Command::new(cargo);
    crate::cargo_env::remove_package_variables(install.as_std_mut());
    let status = install
        .args([
            "install",
            "gungraun-runner",
            "--locked",
            "--version",
            version,
        ])
        .arg("--root")
        .arg(&partial)
        // The install's own target directory, not the run's (whose locks a build may hold).
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true)
        .status()
        .await
        .context("starting cargo install")?;
    let installed = partial.join("bin").join("gungraun-runner");
    if !status.success() || runner_version(&installed).as_deref() != Some(version) {
        let _ = std::fs::remove_dir_all(&partial);
        bail!(
            "setup: `cargo install gungraun-runner --version {version}` failed ({status}); its \
             output is in {}.\n  fix: install it yourself (`cargo install gungraun-runner \
             --version {version} --locked`) so it is on PATH, or set {TOOLS_DIR_VARIABLE} to a \
             writable directory",
            log.display()
        );
    }
    match std::fs::rename(&partial, root) {
        Ok(()) => {}
        // Another run installed it meanwhile: keep theirs.
        Err(_) if runner_version(&dir.join("gungraun-runner")).as_deref() == Some(version) => {
            let _ = std::fs::remove_dir_all(&partial);
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e).with_context(|| format!("moving the runner to {}", root.display()));
        }
    }
    progress.line(&format!(
        "setup: gungraun-runner {version} is in {}",
        dir.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(mode: ServicesMode) -> ServicesFacts {
        ServicesFacts {
            mode,
            docker_answers: false,
            docker_images_present: false,
            native_missing: vec![Package::Redis],
            installer: Installer::AptAsRoot,
        }
    }

    #[test]
    fn docker_with_its_images_needs_nothing_installed() {
        let facts = ServicesFacts {
            docker_answers: true,
            docker_images_present: true,
            ..services(ServicesMode::Auto)
        };
        assert!(matches!(plan_services(&facts), ServicesStep::Ready(_)));
        // Asked for native servers, they are installed even with Docker there.
        let native = ServicesFacts {
            mode: ServicesMode::Native,
            ..facts
        };
        assert!(matches!(
            plan_services(&native),
            ServicesStep::Install { ref packages, .. } if packages == &[Package::Redis]
        ));
    }

    #[test]
    fn external_and_docker_modes_install_nothing() {
        for mode in [ServicesMode::External, ServicesMode::Docker] {
            assert!(matches!(
                plan_services(&services(mode)),
                ServicesStep::Ready(_)
            ));
        }
    }

    #[test]
    fn a_missing_redis_is_installed_as_root_and_named_with_sudo_otherwise() {
        // The fresh machine of issue 14: no engine, Postgres on PATH, no redis-server, root.
        let step = plan_services(&services(ServicesMode::Auto));
        assert_eq!(
            step,
            ServicesStep::Install {
                packages: vec![Package::Redis],
                why: "no Docker engine answers, and `redis-server` is not on PATH".to_owned(),
            }
        );
        let not_root = ServicesFacts {
            installer: Installer::AptNotRoot,
            ..services(ServicesMode::Auto)
        };
        match plan_services(&not_root) {
            ServicesStep::Blocked(message) => {
                assert!(
                    message.contains("`sudo apt-get install -y redis-server`"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        let unknown = ServicesFacts {
            installer: Installer::Unknown,
            ..services(ServicesMode::Auto)
        };
        match plan_services(&unknown) {
            ServicesStep::Blocked(message) => assert!(
                message.contains("install `redis-server` with this system's package manager"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_engine_without_images_still_gets_native_servers() {
        let facts = ServicesFacts {
            docker_answers: true,
            ..services(ServicesMode::Auto)
        };
        match plan_services(&facts) {
            ServicesStep::Install { why, .. } => {
                assert!(
                    why.starts_with("the Docker engine lacks the images"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_postgres_is_never_installed_blind_but_explained() {
        let facts = ServicesFacts {
            native_missing: vec![Package::Postgres, Package::Redis],
            ..services(ServicesMode::Auto)
        };
        match plan_services(&facts) {
            ServicesStep::Blocked(message) => {
                for needle in [
                    "`initdb` and `postgres` and `redis-server` are not on PATH",
                    "pg_config --bindir",
                    "apt-get install redis-server",
                ] {
                    assert!(message.contains(needle), "{needle} in {message}");
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn native_servers_on_path_need_nothing() {
        let facts = ServicesFacts {
            native_missing: vec![],
            ..services(ServicesMode::Native)
        };
        assert!(matches!(plan_services(&facts), ServicesStep::Ready(_)));
    }

    fn runner(on_path: Option<&str>, owned: bool, valgrind: bool) -> RunnerFacts {
        RunnerFacts {
            wanted: Some("0.20.0".to_owned()),
            on_path: on_path.map(str::to_owned),
            owned,
            valgrind,
            installer: Installer::AptAsRoot,
        }
    }

    #[test]
    fn the_runner_on_path_is_used_only_at_the_locked_version() {
        assert_eq!(
            plan_runner(&runner(Some("0.20.0"), false, true)),
            RunnerStep::UsePath
        );
        assert_eq!(
            plan_runner(&runner(Some("0.19.1"), true, true)),
            RunnerStep::UseOwned("0.20.0".to_owned())
        );
        match plan_runner(&runner(Some("0.19.1"), false, true)) {
            RunnerStep::InstallRunner { version, why } => {
                assert_eq!(version, "0.20.0");
                assert!(why.contains("PATH has 0.19.1"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        match plan_runner(&runner(None, false, true)) {
            RunnerStep::InstallRunner { why, .. } => {
                assert!(why.contains("none is on PATH"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // A checkout whose lock names no gungraun: nothing to install for it.
        let no_lock = RunnerFacts {
            wanted: None,
            ..runner(None, false, true)
        };
        assert_eq!(plan_runner(&no_lock), RunnerStep::UsePath);
    }

    #[test]
    fn valgrind_comes_first_and_without_root_is_a_command() {
        match plan_runner(&runner(None, false, false)) {
            RunnerStep::InstallPackages { packages, then, .. } => {
                assert_eq!(packages, vec![Package::Valgrind]);
                assert!(matches!(*then, RunnerStep::InstallRunner { .. }));
            }
            other => panic!("{other:?}"),
        }
        let not_root = RunnerFacts {
            installer: Installer::AptNotRoot,
            ..runner(Some("0.20.0"), false, false)
        };
        match plan_runner(&not_root) {
            RunnerStep::Blocked(message) => {
                assert!(
                    message.contains("`sudo apt-get install -y valgrind`"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_locked_gungraun_version_is_read_from_cargo_lock() {
        let lock = "version = 4\n\n[[package]]\nname = \"gungraun-runner\"\nversion = \"9.9.9\"\n\n\
                    [[package]]\nname = \"gungraun\"\nversion = \"0.20.0\"\n";
        assert_eq!(gungraun_version_in(lock).as_deref(), Some("0.20.0"));
        assert_eq!(gungraun_version_in("version = 4\n"), None);
        // This workspace's own lock names the version its benchmarks link.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let ours = gungraun_version_in_lock(root).unwrap();
        assert!(ours.is_some_and(|v| v.split('.').count() == 3));
    }
}
