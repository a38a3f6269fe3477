//! Provisioning: starts (or finds) the real Postgres and Redis a run measures, waits until a
//! real query answers, describes exactly what runs (versions, images), and tears everything
//! down on success, error, panic and Ctrl-C. The only module that knows how services start.
//!
//! Modes (`--services`): `docker` (testcontainers), `native` (`initdb`/`postgres` and
//! `redis-server` from PATH on free loopback ports in a temp dir), `external` (`DATABASE_URL`,
//! `REDIS_URL`), and `auto` (docker, then native, saying which and why).
//!
//! Must never: judge readiness by a log line; drop, flush or stop servers it did not start
//! (external mode); leave a container, process or temp dir behind on any path it controls
//! (teardown, error, drop, panic); print a password; use a shell.

mod docker;
mod engine;
mod error;
mod external;
mod native;
mod probe;
mod usage;

use std::fmt;
use std::time::{Duration, Instant};

pub use error::ProvisionError;
pub use usage::{Reading, Sampler};
// Part of every record, so defined beside it (and built without the harness feature).
pub use crate::record::{ServicesDescription, ServicesMode};

/// The variable that overrides the Postgres image.
pub const POSTGRES_IMAGE_VARIABLE: &str = "PERF_POSTGRES_IMAGE";
/// The variable that overrides the Redis image.
pub const REDIS_IMAGE_VARIABLE: &str = "PERF_REDIS_IMAGE";
/// How long each server gets to answer a real query after it was started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// An image reference and where its name came from (so errors can name the override).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChoice {
    /// `name:tag`, e.g. `postgres:16` or `local/postgres:15`.
    pub reference: String,
    /// The variable that overrides it: `PERF_POSTGRES_IMAGE` or `PERF_REDIS_IMAGE`.
    pub override_variable: &'static str,
}

/// What `start` needs.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub mode: ServicesMode,
    pub postgres_image: ImageChoice,
    pub redis_image: ImageChoice,
}

impl ImageChoice {
    /// testcontainers' `(name, tag)` for this reference: the tag is what follows the last `:`
    /// after the last `/` (`latest` if none), so `localhost:5000/pg` is name `localhost:5000/pg`,
    /// tag `latest`. A digest reference (`name@sha256:...`) splits so that `name:tag` rebuilds it.
    pub fn name_and_tag(&self) -> (String, String) {
        split_image_reference(&self.reference)
    }
}

fn split_image_reference(reference: &str) -> (String, String) {
    let reference = reference.trim();
    if reference.contains('@') {
        // `name@sha256:hex` or `name:tag@sha256:hex`: testcontainers formats `{name}:{tag}`.
        if let Some((name, tag)) = reference.rsplit_once(':') {
            return (name.to_owned(), tag.to_owned());
        }
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(i) => {
            let colon = last_slash + i;
            (
                reference[..colon].to_owned(),
                reference[colon + 1..].to_owned(),
            )
        }
        None => (reference.to_owned(), "latest".to_owned()),
    }
}

/// Where the servers' own resource use (CPU time, memory) can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerProcesses {
    /// Native servers: the postmaster's and redis-server's pids (their process trees are the
    /// servers).
    Native { postgres: u32, redis: u32 },
    /// Docker: the containers, whose cgroup statistics the engine exposes.
    Docker { postgres: String, redis: String },
    /// Servers the harness did not start, or that are gone: nothing to read, and why.
    Unavailable { reason: String },
}

/// What a mode's start hands back.
pub(crate) struct Started {
    pub backend: Backend,
    pub postgres_address: String,
    pub redis_address: String,
    /// The Postgres URL; its path is replaced by the database name in `postgres_url`.
    pub postgres_url: probe::UrlParts,
    pub redis_url: String,
    pub postgres_version: String,
    pub redis_version: String,
    pub postgres_image: Option<String>,
    pub redis_image: Option<String>,
}

/// What a `Services` value owns.
pub(crate) enum Backend {
    /// Nothing (external mode).
    None,
    Docker(Box<docker::DockerServers>),
    Native(native::NativeServers),
}

/// Running Postgres and Redis, and what is needed to stop them.
pub struct Services {
    description: ServicesDescription,
    postgres_address: String,
    redis_address: String,
    postgres_url: probe::UrlParts,
    redis_url: String,
    owns: bool,
    backend: Option<Backend>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services")
            .field("description", &self.description)
            .field("postgres", &self.postgres_address)
            .field("redis", &self.redis_address)
            .field("owns_servers", &self.owns)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Starts or finds Postgres and Redis per `options.mode`; `progress` receives
    /// human-readable lines (one per step). Once both answer, it receives one line per service:
    /// `services: postgres ready at HOST:PORT (native, pid=PID, dir=DIR)`,
    /// `services: redis ready at HOST:PORT (docker, container=ID, image=REF)`,
    /// `services: postgres ready at HOST:PORT (external)` and the like.
    pub async fn start(
        options: &ProvisionOptions,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Services, ProvisionError> {
        Self::start_with_timeout(options, READY_TIMEOUT, progress).await
    }

    /// [`Services::start`] with another readiness timeout per service.
    pub async fn start_with_timeout(
        options: &ProvisionOptions,
        timeout: Duration,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Services, ProvisionError> {
        let began = Instant::now();
        let (mode, reason, started) = match options.mode {
            ServicesMode::Docker => {
                let (host, _) = engine::docker_host();
                progress(&format!("services: checking for a Docker engine at {host}"));
                let engine = engine::check().await;
                if !engine.answers {
                    return Err(ProvisionError::DockerUnavailable {
                        checked: engine.detail,
                    });
                }
                let reason = format!("--services docker; {}", engine.detail);
                progress(&format!("services: docker ({reason})"));
                let started = docker::start(
                    &options.postgres_image,
                    &options.redis_image,
                    &engine,
                    timeout,
                    progress,
                )
                .await?;
                (ServicesMode::Docker, reason, started)
            }
            ServicesMode::Native => {
                let bins = native::find()?;
                let reason = format!("--services native; {}", bins.describe());
                progress(&format!("services: native ({reason})"));
                let started = native::start(&bins, timeout, progress).await?;
                (ServicesMode::Native, reason, started)
            }
            ServicesMode::External => {
                let reason = "--services external; DATABASE_URL and REDIS_URL".to_owned();
                progress(&format!("services: external ({reason})"));
                let started = external::start(timeout, progress).await?;
                (ServicesMode::External, reason, started)
            }
            ServicesMode::Auto => start_auto(options, timeout, progress).await?,
        };
        let description = ServicesDescription {
            mode,
            reason,
            postgres_version: started.postgres_version,
            redis_version: started.redis_version,
            postgres_image: started.postgres_image,
            redis_image: started.redis_image,
        };
        progress(&format!(
            "services: ready in {:.1} s (postgres {}, redis {})",
            began.elapsed().as_secs_f64(),
            description.postgres_version,
            description.redis_version
        ));
        Ok(Services {
            description,
            postgres_address: started.postgres_address,
            redis_address: started.redis_address,
            postgres_url: started.postgres_url,
            redis_url: started.redis_url,
            owns: !matches!(started.backend, Backend::None),
            backend: Some(started.backend),
        })
    }

    pub fn description(&self) -> &ServicesDescription {
        &self.description
    }

    /// URL of `database` on the server as a superuser, e.g.
    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DB` with the start's own password (external
    /// mode: DATABASE_URL with its database replaced). It carries a password: do not print it.
    pub fn postgres_url(&self, database: &str) -> String {
        self.postgres_url
            .with_path(&probe::percent_encode(database))
    }

    /// e.g. `redis://:PASSWORD@127.0.0.1:PORT/` (external mode: REDIS_URL as given). It
    /// carries a password: do not print it.
    pub fn redis_url(&self) -> String {
        self.redis_url.clone()
    }

    /// `HOST:PORT` of Postgres, for messages.
    pub fn postgres_address(&self) -> &str {
        &self.postgres_address
    }

    /// `HOST:PORT` of Redis, for messages.
    pub fn redis_address(&self) -> &str {
        &self.redis_address
    }

    /// false in external mode: the harness must then never drop/flush what it did not create.
    pub fn owns_servers(&self) -> bool {
        self.owns
    }

    /// Where the servers' resource use can be read.
    pub fn server_processes(&self) -> ServerProcesses {
        let gone = || ServerProcesses::Unavailable {
            reason: "the servers were already stopped".to_owned(),
        };
        match &self.backend {
            Some(Backend::Native(servers)) => match servers.pids() {
                (Some(postgres), Some(redis)) => ServerProcesses::Native { postgres, redis },
                _ => gone(),
            },
            Some(Backend::Docker(servers)) => match servers.container_ids() {
                (Some(postgres), Some(redis)) => ServerProcesses::Docker { postgres, redis },
                _ => gone(),
            },
            Some(Backend::None) => ServerProcesses::Unavailable {
                reason: "external servers (--services external) are not the harness's: their \
                         processes may serve others and are not inspected"
                    .to_owned(),
            },
            None => gone(),
        }
    }

    /// Stops and removes everything this value started (containers, processes, temp dirs).
    /// Idempotent: nothing is left for `Drop` afterwards, and stopping what already stopped is fine.
    pub async fn teardown(mut self) -> Result<(), ProvisionError> {
        let result = match self.backend.take() {
            None | Some(Backend::None) => Ok(()),
            Some(Backend::Docker(servers)) => servers.teardown().await,
            Some(Backend::Native(servers)) => servers.teardown().await,
        };
        result.map_err(ProvisionError::Teardown)
    }
}

impl Drop for Services {
    /// Best-effort synchronous cleanup when `teardown` was not called (error or panic paths):
    /// works inside a multi-thread or current-thread tokio runtime and outside any runtime.
    fn drop(&mut self) {
        match self.backend.take() {
            None | Some(Backend::None) => {}
            Some(Backend::Docker(mut servers)) => servers.cleanup_blocking(),
            Some(Backend::Native(mut servers)) => servers.cleanup_blocking(),
        }
    }
}

/// What a start would find, without starting anything: for setup's decisions.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// A Docker engine answers.
    pub docker_answers: bool,
    /// ... and has both images locally.
    pub docker_images_present: bool,
    /// Native servers' programs not on PATH (`postgres`, `redis-server`).
    pub native_missing: Vec<&'static str>,
}

/// Whether an executable `program` is on PATH (as native mode looks for its servers).
pub fn program_on_path(program: &str) -> bool {
    native::on_path(program)
}

/// Looks for what each mode needs (the engine and its images; the native programs).
pub async fn readiness(options: &ProvisionOptions) -> Readiness {
    let docker_answers = engine::check().await.answers;
    let docker_images_present = docker_answers
        && engine::image_present(&options.postgres_image.reference).await
        && engine::image_present(&options.redis_image.reference).await;
    Readiness {
        docker_answers,
        docker_images_present,
        native_missing: native::missing_programs(),
    }
}

/// A short reason why native mode cannot serve, for auto mode's messages.
fn native_unavailable_reason(e: &ProvisionError) -> String {
    match e {
        ProvisionError::NativeBinaryMissing {
            binary, searched, ..
        } => format!("native servers are not installed (`{binary}` not found in {searched})"),
        ProvisionError::NativeSetup { problem, .. } => {
            format!("native servers cannot run: {problem}")
        }
        other => other.to_string(),
    }
}

async fn start_auto(
    options: &ProvisionOptions,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(ServicesMode, String, Started), ProvisionError> {
    let (host, _) = engine::docker_host();
    progress(&format!(
        "services: auto: checking for a Docker engine at {host}"
    ));
    let engine = engine::check().await;
    let native = native::find();
    if engine.answers {
        let reason = format!("auto: {}", engine.detail);
        progress(&format!("services: docker ({reason})"));
        match docker::start(
            &options.postgres_image,
            &options.redis_image,
            &engine,
            timeout,
            progress,
        )
        .await
        {
            Ok(started) => return Ok((ServicesMode::Docker, reason, started)),
            Err(ProvisionError::ImageUnavailable {
                reference,
                override_variable,
                ..
            }) if native.is_ok() => {
                let bins = native.as_ref().expect("checked");
                let reason = format!(
                    "auto: {}, but image {reference} is not available locally and could not be \
                     pulled (set {override_variable}=<name:tag> to a local image to use Docker); \
                     {} found",
                    engine.detail,
                    bins.describe()
                );
                progress(&format!("services: native ({reason})"));
                let started = native::start(bins, timeout, progress).await?;
                return Ok((ServicesMode::Native, reason, started));
            }
            Err(e) => return Err(e),
        }
    }
    match native {
        Ok(bins) => {
            let reason = format!("auto: {}; {} found", engine.detail, bins.describe());
            progress(&format!("services: native ({reason})"));
            let started = native::start(&bins, timeout, progress).await?;
            Ok((ServicesMode::Native, reason, started))
        }
        Err(e) => Err(ProvisionError::NothingCanServe {
            docker: engine.detail,
            native: native_unavailable_reason(&e),
            postgres_image: options.postgres_image.reference.clone(),
            redis_image: options.redis_image.reference.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(reference: &str) -> ImageChoice {
        ImageChoice {
            reference: reference.to_owned(),
            override_variable: POSTGRES_IMAGE_VARIABLE,
        }
    }

    #[test]
    fn image_references_split_into_name_and_tag() {
        let split = |r: &str| choice(r).name_and_tag();
        let pair = |n: &str, t: &str| (n.to_owned(), t.to_owned());
        assert_eq!(split("postgres:16"), pair("postgres", "16"));
        assert_eq!(split("postgres"), pair("postgres", "latest"));
        assert_eq!(split("local/postgres:15"), pair("local/postgres", "15"));
        assert_eq!(
            split("localhost:5000/pg"),
            pair("localhost:5000/pg", "latest")
        );
        assert_eq!(
            split("localhost:5000/team/pg:15.4-bookworm"),
            pair("localhost:5000/team/pg", "15.4-bookworm")
        );
        // testcontainers formats `{name}:{tag}`: a digest reference must come back unchanged.
        for r in ["postgres@sha256:abc123", "postgres:16@sha256:abc123"] {
            let (name, tag) = split(r);
            assert_eq!(format!("{name}:{tag}"), r);
        }
    }

    #[test]
    fn nothing_can_serve_lists_the_three_fixes() {
        let e = ProvisionError::NothingCanServe {
            docker: "no Docker engine answers at unix:///var/run/docker.sock".to_owned(),
            native: "native servers are not installed (`redis-server` not found in PATH)"
                .to_owned(),
            postgres_image: "postgres:16".to_owned(),
            redis_image: "redis:7".to_owned(),
        }
        .to_string();
        for needle in [
            "no Docker engine answers at unix:///var/run/docker.sock",
            "`redis-server` not found",
            "1. start a Docker engine",
            "postgres:16",
            "PERF_POSTGRES_IMAGE / PERF_REDIS_IMAGE",
            "2. install the native servers",
            "pg_stat_statements",
            "3. point DATABASE_URL and REDIS_URL",
            "--services external",
        ] {
            assert!(e.contains(needle), "{needle:?} missing from: {e}");
        }
    }

    #[test]
    fn image_errors_name_the_reference_and_its_variable() {
        let e = ProvisionError::ImageUnavailable {
            service: "redis",
            reference: "redis:7".to_owned(),
            override_variable: REDIS_IMAGE_VARIABLE,
            detail: "pull failed".to_owned(),
        }
        .to_string();
        assert!(e.starts_with("image redis:7 is not available locally and could not be pulled"));
        assert!(e.contains("(pull failed)"), "{e}");
        assert!(e.ends_with("set PERF_REDIS_IMAGE=<name:tag>"), "{e}");
    }

    #[test]
    fn mode_errors_say_what_is_missing() {
        let e = ProvisionError::NativeBinaryMissing {
            binary: "initdb",
            searched: "PATH".to_owned(),
            package: "postgresql",
        }
        .to_string();
        assert!(e.contains("`initdb` was not found"), "{e}");
        let e = ProvisionError::ExternalVariableMissing {
            variable: "REDIS_URL",
            service: "Redis",
            example: "redis://127.0.0.1:6379/",
        }
        .to_string();
        assert!(e.contains("REDIS_URL is not set"), "{e}");
        let e = ProvisionError::NotReady {
            service: "postgres",
            address: "127.0.0.1:5432".to_owned(),
            place: "native, pid=1".to_owned(),
            waited_secs: 30,
            last_error: "connect: refused".to_owned(),
            advice: error::advice("its log", "FATAL: boom\n", "Fix it"),
        }
        .to_string();
        assert!(
            e.starts_with("postgres at 127.0.0.1:5432 (native, pid=1) did not answer within 30 s"),
            "{e}"
        );
        assert!(e.contains("last error: connect: refused"), "{e}");
        assert!(e.contains("    FATAL: boom\nFix it"), "{e}");
    }

    #[test]
    fn services_and_start_can_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<Services>();
        send_sync::<ProvisionError>();
        let options = ProvisionOptions {
            mode: ServicesMode::External,
            postgres_image: choice("postgres:16"),
            redis_image: choice("redis:7"),
        };
        let progress = |_: &str| {};
        // Not polled: only its type is checked.
        let start = Services::start(&options, &progress);
        send(&start);
    }

    #[test]
    fn errors_stay_small_enough_to_return_by_value() {
        // clippy::result_large_err fires above 128 bytes in every caller's signature.
        assert!(std::mem::size_of::<ProvisionError>() <= 128);
    }
}
