//! Docker mode: Postgres and Redis containers through testcontainers (`GenericImage`), readiness
//! by real queries on the mapped ports, and removal of every container this start created.
//! Both want the start's own password (`POSTGRES_PASSWORD`, which the official image and this
//! project's local one turn into scram-sha-256 for TCP; Redis `--requirepass`), and an engine
//! in this network namespace publishes their ports on 127.0.0.1 only (a remote `DOCKER_HOST`,
//! or the host's engine seen from inside a container, cannot be reached on its loopback, so
//! there they are published on the engine's default addresses, and the password guards them).
//!
//! Must never: rely on log lines for readiness; leave a container behind on any path it can
//! control (teardown, error, drop, panic); remove a container it did not create (removal is by
//! id or by this start's own session label); pull or build images beyond what testcontainers does.

use std::time::Duration;

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::IntoContainerPort;
use testcontainers::core::client::ClientError;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt, TestcontainersError};

use super::engine::{self, EngineCheck, SESSION_LABEL};
use super::error::{ProvisionError, advice};
use super::probe::{self, UrlParts, Wait};
use super::{Backend, ImageChoice, Started};

/// Container-side ports.
const POSTGRES_PORT: u16 = 5432;
const REDIS_PORT: u16 = 6379;

/// Postgres server settings: the statement statistics the harness reads, and no durability
/// work (the data is throwaway).
pub(crate) const POSTGRES_SETTINGS: [&str; 4] = [
    "shared_preload_libraries=pg_stat_statements",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
];

/// The containers of one start. Dropping it removes them synchronously.
pub(crate) struct DockerServers {
    /// The engine endpoint, for synchronous removal.
    engine_host: String,
    /// Value of the session label on every container of this start.
    session: String,
    postgres: Option<ContainerAsync<GenericImage>>,
    redis: Option<ContainerAsync<GenericImage>>,
    /// Ids of every container created (kept after the handles are taken).
    ids: Vec<String>,
    done: bool,
}

impl DockerServers {
    /// The ids of the Postgres and Redis containers (`None` once removed).
    pub(crate) fn container_ids(&self) -> (Option<String>, Option<String>) {
        let id = |c: &Option<ContainerAsync<GenericImage>>| c.as_ref().map(|c| c.id().to_owned());
        (id(&self.postgres), id(&self.redis))
    }

    /// Removes the containers through the async client, then any leftover with this session's
    /// label; falls back to the synchronous path if the async one fails.
    pub(crate) async fn teardown(mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        for container in [self.postgres.take(), self.redis.take()]
            .into_iter()
            .flatten()
        {
            let id = container.id().to_owned();
            if let Err(e) = container.rm().await {
                errors.push(format!("container {id}: {e}"));
            }
        }
        if let Err(e) = engine::remove_session_containers(&self.session).await {
            errors.push(e);
        }
        if !errors.is_empty() {
            // One more try the synchronous way, off the async threads.
            let host = self.engine_host.clone();
            let ids = self.ids.clone();
            let session = self.session.clone();
            let retry = tokio::task::spawn_blocking(move || {
                engine::remove_containers_blocking(&host, &ids, &session)
            })
            .await;
            match retry {
                Ok(Ok(())) => errors.clear(),
                Ok(Err(e)) => errors.push(format!("retry: {e}")),
                Err(e) => errors.push(format!("retry: {e}")),
            }
        }
        self.done = true;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "containers {} (label {SESSION_LABEL}={}): {}",
                self.ids.join(", "),
                self.session,
                errors.join("; ")
            ))
        }
    }

    /// Synchronous removal for `Drop`: works inside or outside a tokio runtime. The
    /// testcontainers handles are forgotten, not dropped: their own `Drop` needs a runtime
    /// (`Handle::current()` panics outside one).
    pub(crate) fn cleanup_blocking(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        for container in [self.postgres.take(), self.redis.take()]
            .into_iter()
            .flatten()
        {
            std::mem::forget(container);
        }
        let mut result =
            engine::remove_containers_blocking(&self.engine_host, &self.ids, &self.session);
        if self.ids.len() < 2 {
            // Dropped while a create may still be in flight at the engine (the start was
            // cancelled): sweep the session's label once more after it has had time to land.
            std::thread::sleep(Duration::from_secs(1));
            result = result.and(engine::remove_containers_blocking(
                &self.engine_host,
                &[],
                &self.session,
            ));
        }
        if let Err(e) = result {
            eprintln!(
                "services: could not remove containers {} (label {SESSION_LABEL}={}): {e}; remove \
                 them with `docker rm -f ID`",
                self.ids.join(", "),
                self.session
            );
        }
    }
}

impl Drop for DockerServers {
    fn drop(&mut self) {
        self.cleanup_blocking();
    }
}

#[derive(Clone, Copy)]
enum Service {
    Postgres,
    Redis,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
        }
    }
}

/// Starts both containers and waits until they answer.
pub(crate) async fn start(
    postgres_image: &ImageChoice,
    redis_image: &ImageChoice,
    engine: &EngineCheck,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Started, ProvisionError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let session = format!("{}-{nanos}", std::process::id());
    let password = probe::run_password()?;
    let loopback = ports_on_loopback(engine);
    progress(&format!(
        "services: container ports published on {}",
        if loopback {
            "127.0.0.1 only"
        } else {
            "the engine's default addresses (the engine is not in this network namespace)"
        }
    ));
    let mut servers = DockerServers {
        engine_host: engine.host.clone(),
        session: session.clone(),
        postgres: None,
        redis: None,
        ids: Vec::new(),
        done: false,
    };

    progress(&format!(
        "services: starting containers from {} and {}",
        postgres_image.reference, redis_image.reference
    ));
    if let Err(e) = start_both(
        &mut servers,
        postgres_image,
        redis_image,
        &password,
        loopback,
    )
    .await
    {
        // Also removes a container a failed start may have created but not handed back.
        if let Err(cleanup) = servers.teardown().await {
            progress(&format!(
                "services: cleanup after the failed start: {cleanup}"
            ));
        }
        return Err(e);
    }

    match ready(
        &servers,
        postgres_image,
        redis_image,
        &password,
        loopback,
        timeout,
        progress,
    )
    .await
    {
        Ok(mut started) => {
            started.backend = Backend::Docker(Box::new(servers));
            Ok(started)
        }
        Err(e) => {
            if let Err(cleanup) = servers.teardown().await {
                progress(&format!(
                    "services: cleanup after the failed start: {cleanup}"
                ));
            }
            Err(e)
        }
    }
}

/// Whether containers publish their ports on 127.0.0.1 only: when the engine's ports land in
/// this network namespace (an engine on this machine, and either not inside a container or
/// inside one whose engine runs beside us: its bridge is ours). A harness in a container using
/// the host's engine socket reaches the containers through the bridge's gateway, so there the
/// engine's default stays.
fn ports_on_loopback(engine: &EngineCheck) -> bool {
    engine_is_local(&engine.host)
        && (!std::path::Path::new("/.dockerenv").exists()
            || std::path::Path::new("/sys/class/net/docker0").exists())
}

/// Creates and starts both containers, each run to completion (no cancellation halfway through
/// a create); the first error, after both are done. What started is in `servers`.
async fn start_both(
    servers: &mut DockerServers,
    postgres_image: &ImageChoice,
    redis_image: &ImageChoice,
    password: &str,
    loopback: bool,
) -> Result<(), ProvisionError> {
    let session = servers.session.clone();
    let (pg, rd) = tokio::join!(
        start_container(
            Service::Postgres,
            postgres_image,
            &session,
            password,
            loopback
        ),
        start_container(Service::Redis, redis_image, &session, password, loopback),
    );
    let mut first_error = None;
    match pg {
        Ok(c) => {
            servers.ids.push(c.id().to_owned());
            servers.postgres = Some(c);
        }
        Err(e) => first_error = Some(e),
    }
    match rd {
        Ok(c) => {
            servers.ids.push(c.id().to_owned());
            servers.redis = Some(c);
        }
        Err(e) => first_error = first_error.or(Some(e)),
    }
    first_error.map_or(Ok(()), Err)
}

/// Waits until both containers answer; the returned `Started` has `Backend::None` for the
/// caller to fill in.
async fn ready(
    servers: &DockerServers,
    postgres_image: &ImageChoice,
    redis_image: &ImageChoice,
    password: &str,
    loopback: bool,
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Started, ProvisionError> {
    let pg_container = servers.postgres.as_ref().expect("postgres container");
    let rd_container = servers.redis.as_ref().expect("redis container");
    let (pg_host, pg_port) =
        mapped_address(pg_container, Service::Postgres, postgres_image, loopback).await?;
    let (rd_host, rd_port) =
        mapped_address(rd_container, Service::Redis, redis_image, loopback).await?;
    let pg_url = UrlParts {
        scheme: "postgres".to_owned(),
        userinfo: Some(format!("postgres:{password}")),
        host: pg_host.clone(),
        port: Some(pg_port),
        path: "postgres".to_owned(),
        query: String::new(),
    };
    let redis_url = format!("redis://:{password}@{rd_host}:{rd_port}/");

    let pg_probe_url = pg_url.with_path("postgres");
    let pg_address = format!("{pg_host}:{pg_port}");
    let rd_address = format!("{rd_host}:{rd_port}");
    let (pg_ready, rd_ready) = tokio::join!(
        wait_ready(
            Service::Postgres,
            pg_container,
            postgres_image,
            &pg_address,
            timeout,
            || probe::postgres_once(&pg_probe_url),
        ),
        wait_ready(
            Service::Redis,
            rd_container,
            redis_image,
            &rd_address,
            timeout,
            || probe::redis_once(&redis_url),
        ),
    );
    let postgres_version = pg_ready?;
    let redis_version = rd_ready?;

    progress(&format!(
        "services: postgres ready at {pg_host}:{pg_port} (docker, container={}, image={})",
        pg_container.id(),
        postgres_image.reference
    ));
    progress(&format!(
        "services: redis ready at {rd_host}:{rd_port} (docker, container={}, image={})",
        rd_container.id(),
        redis_image.reference
    ));
    let (pg_identity, rd_identity) = tokio::join!(
        engine::image_identity(&postgres_image.reference),
        engine::image_identity(&redis_image.reference)
    );

    Ok(Started {
        backend: Backend::None,
        postgres_address: pg_address,
        redis_address: rd_address,
        postgres_url: pg_url,
        redis_url,
        postgres_version,
        redis_version,
        postgres_image: Some(pg_identity),
        redis_image: Some(rd_identity),
    })
}

async fn start_container(
    service: Service,
    image: &ImageChoice,
    session: &str,
    password: &str,
    loopback: bool,
) -> Result<ContainerAsync<GenericImage>, ProvisionError> {
    let (name, tag) = image.name_and_tag();
    let port = match service {
        Service::Postgres => POSTGRES_PORT,
        Service::Redis => REDIS_PORT,
    };
    let (args, env) = match service {
        Service::Postgres => {
            let mut args = Vec::new();
            for setting in POSTGRES_SETTINGS {
                args.push("-c".to_owned());
                args.push(setting.to_owned());
            }
            (args, vec![("POSTGRES_PASSWORD", password.to_owned())])
        }
        // The official image's entrypoint runs `redis-server` with arguments that start with
        // `-`; the local image's entrypoint is `redis-server` itself.
        Service::Redis => (
            vec!["--requirepass".to_owned(), password.to_owned()],
            Vec::new(),
        ),
    };
    let mut request = GenericImage::new(name, tag)
        .with_exposed_port(port.tcp())
        .with_cmd(args)
        .with_label(SESSION_LABEL, session);
    for (key, value) in env {
        request = request.with_env_var(key, value);
    }
    if loopback {
        request = request.with_host_config_modifier(move |host| publish_on_loopback(host, port));
    }
    let result = request.start().await;
    result.map_err(|e| classify_start_error(service, image, e))
}

/// Publishes the container's `port` on 127.0.0.1 only, on a port the engine chooses (instead
/// of testcontainers' "publish every exposed port on every interface").
fn publish_on_loopback(host: &mut HostConfig, port: u16) {
    host.publish_all_ports = Some(false);
    host.port_bindings = Some(
        [(
            format!("{port}/tcp"),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_owned()),
                host_port: Some(String::new()),
            }]),
        )]
        .into_iter()
        .collect(),
    );
}

/// Whether the engine runs on this machine (a Unix socket or a loopback TCP address), so its
/// published ports can be bound to loopback.
fn engine_is_local(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("tcp://").or(host.strip_prefix("http://")) else {
        return host.starts_with("unix://") || host.starts_with('/');
    };
    let address = rest.split('/').next().unwrap_or(rest);
    let name = match address.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => address,
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

fn classify_start_error(
    service: Service,
    image: &ImageChoice,
    e: TestcontainersError,
) -> ProvisionError {
    match e {
        TestcontainersError::Client(ClientError::PullImage { err, .. }) => {
            ProvisionError::ImageUnavailable {
                service: service.name(),
                reference: image.reference.clone(),
                override_variable: image.override_variable,
                detail: err.to_string(),
            }
        }
        other => ProvisionError::ContainerFailed {
            service: service.name(),
            reference: image.reference.clone(),
            override_variable: image.override_variable,
            detail: other.to_string(),
        },
    }
}

/// The host (127.0.0.1 when the ports are published on loopback; otherwise as testcontainers
/// reports it, `localhost` becoming 127.0.0.1 since the IPv4 mapping is used) and the mapped
/// IPv4 port.
async fn mapped_address(
    container: &ContainerAsync<GenericImage>,
    service: Service,
    image: &ImageChoice,
    loopback: bool,
) -> Result<(String, u16), ProvisionError> {
    let internal = match service {
        Service::Postgres => POSTGRES_PORT,
        Service::Redis => REDIS_PORT,
    };
    let failed = |detail: String| ProvisionError::ContainerFailed {
        service: service.name(),
        reference: image.reference.clone(),
        override_variable: image.override_variable,
        detail,
    };
    let port = match container.get_host_port_ipv4(internal.tcp()).await {
        Ok(port) => port,
        Err(e) => {
            // A container that already exited has no port mappings: say that instead.
            return Err(match exited_error(container, service, image).await {
                Some(exited) => exited,
                None => failed(format!("no IPv4 port mapping for {internal}: {e}")),
            });
        }
    };
    if loopback {
        return Ok(("127.0.0.1".to_owned(), port));
    }
    let host = container
        .get_host()
        .await
        .map_err(|e| failed(format!("cannot tell the host to reach it on: {e}")))?;
    let host = match host.to_string() {
        h if h == "localhost" => "127.0.0.1".to_owned(),
        h => h,
    };
    Ok((host, port))
}

async fn wait_ready<F>(
    service: Service,
    container: &ContainerAsync<GenericImage>,
    image: &ImageChoice,
    address: &str,
    timeout: Duration,
    attempt: impl FnMut() -> F,
) -> Result<String, ProvisionError>
where
    F: Future<Output = Result<String, String>>,
{
    let place = format!(
        "docker, container={}, image={}",
        container.id(),
        image.reference
    );
    let mut alive = ContainerLiveness {
        container,
        service,
        image,
    };
    match probe::poll_ready(timeout, attempt, &mut alive).await? {
        Wait::Ready(version) => Ok(version),
        Wait::TimedOut { last_error } => Err(ProvisionError::NotReady {
            service: service.name(),
            address: address.to_owned(),
            place: place.clone(),
            waited_secs: timeout.as_secs(),
            last_error,
            advice: advice(
                "its log",
                &container_logs(container).await,
                &format!(
                    "Check the container's log above and that {address} is reachable from here; \
                     if the image is not a Postgres/Redis image that honours the official \
                     image's settings, set {}=<name:tag> to one that does",
                    image.override_variable
                ),
            ),
        }),
    }
}

struct ContainerLiveness<'a> {
    container: &'a ContainerAsync<GenericImage>,
    service: Service,
    image: &'a ImageChoice,
}

impl probe::Liveness for ContainerLiveness<'_> {
    async fn check(&mut self, n: u32) -> Result<(), ProvisionError> {
        // Ask the engine about once a second, not on every attempt.
        if n % 10 != 9 {
            return Ok(());
        }
        match exited_error(self.container, self.service, self.image).await {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// `ServerExited` (with the container's log) if the container is no longer running.
async fn exited_error(
    container: &ContainerAsync<GenericImage>,
    service: Service,
    image: &ImageChoice,
) -> Option<ProvisionError> {
    if !matches!(container.is_running().await, Ok(false)) {
        return None;
    }
    let code = container.exit_code().await.ok().flatten();
    Some(ProvisionError::ServerExited {
        service: service.name(),
        place: format!(
            "docker, container={}, image={}",
            container.id(),
            image.reference
        ),
        status: match code {
            Some(c) => format!("the container exited with code {c}"),
            None => "the container stopped".to_owned(),
        },
        advice: advice(
            "its log",
            &container_logs(container).await,
            &format!(
                "Check that {} is a {} image that honours the official image's settings \
                 (`docker run --rm {}`), or set {}=<name:tag> to another image",
                image.reference,
                service.name(),
                image.reference,
                image.override_variable
            ),
        ),
    })
}

/// The last lines of a container's stdout and stderr.
async fn container_logs(container: &ContainerAsync<GenericImage>) -> String {
    let fetch = async {
        let out = container.stdout_to_vec().await.unwrap_or_default();
        let err = container.stderr_to_vec().await.unwrap_or_default();
        let mut text = String::from_utf8_lossy(&out).into_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&String::from_utf8_lossy(&err));
        probe::text_tail(&text, 20)
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_bound_to_loopback_only_for_an_engine_on_this_machine() {
        for local in [
            "unix:///var/run/docker.sock",
            "tcp://127.0.0.1:2375",
            "tcp://localhost:2376",
            "http://[::1]:2375",
        ] {
            assert!(engine_is_local(local), "{local}");
        }
        for remote in ["tcp://10.0.0.5:2375", "tcp://docker.example:2376"] {
            assert!(!engine_is_local(remote), "{remote}");
        }
    }

    #[test]
    fn loopback_publishing_replaces_publish_all_with_one_127_0_0_1_binding() {
        let mut host = HostConfig {
            publish_all_ports: Some(true),
            ..Default::default()
        };
        publish_on_loopback(&mut host, POSTGRES_PORT);
        assert_eq!(host.publish_all_ports, Some(false));
        let bindings = host.port_bindings.expect("bindings");
        assert_eq!(bindings.len(), 1);
        let binding = &bindings["5432/tcp"].as_ref().expect("a binding")[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some(""));
    }
}
