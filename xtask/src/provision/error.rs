//! The errors `Services::start` and `Services::teardown` return. Every message names the problem
//! and how to fix it, so a developer or a CI log reader can act on it without reading code.
//!
//! Must never: include a password (URLs from DATABASE_URL / REDIS_URL are shown redacted), or
//! lose the underlying cause (the last error, the server's log tail).

/// Why provisioning failed, with the fix in the message.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Auto mode: no Docker engine answers and the native servers are not installed.
    #[error(
        "nothing can provide Postgres and Redis: {docker}; {native}. Fix one of:\n  \
         1. start a Docker engine (the harness then runs the images {postgres_image} and \
         {redis_image}; override them with PERF_POSTGRES_IMAGE / PERF_REDIS_IMAGE);\n  \
         2. install the native servers so they are on PATH: `initdb` and `postgres` with the \
         pg_stat_statements extension (Debian: postgresql) and `redis-server` (Debian: \
         redis-server);\n  \
         3. point DATABASE_URL and REDIS_URL at running servers and pass `--services external`"
    )]
    NothingCanServe {
        /// What the Docker engine check found.
        docker: String,
        /// What is missing for native servers.
        native: String,
        postgres_image: String,
        redis_image: String,
    },

    /// Docker mode, but no engine answers.
    #[error(
        "--services docker: {checked}. Start a Docker engine (or set DOCKER_HOST to one that \
         runs), or use `--services native` (local initdb/postgres/redis-server) or \
         `--services external` (DATABASE_URL/REDIS_URL)"
    )]
    DockerUnavailable {
        /// What was checked and what it answered.
        checked: String,
    },

    /// Native mode (or auto's fallback), but a server binary is missing.
    #[error(
        "--services native: `{binary}` was not found (searched {searched}). Install it so it is \
         on PATH (Debian package: {package}), or use `--services docker` or `--services external`"
    )]
    NativeBinaryMissing {
        binary: &'static str,
        searched: String,
        package: &'static str,
    },

    /// Native mode cannot be set up on this machine (e.g. running as root without a `postgres` user).
    #[error("native servers: {problem}. {fix}")]
    NativeSetup { problem: String, fix: String },

    /// `initdb` failed.
    #[error(
        "native servers: `{command}` failed ({status}):\n{output}\nFix the Postgres installation \
         (the output above says what is wrong), or use `--services docker` or `--services external`"
    )]
    Initdb {
        command: String,
        status: String,
        output: String,
    },

    /// External mode without a URL variable.
    #[error(
        "--services external: {variable} is not set. Set {variable} to the URL of a running \
         {service} server, e.g. {variable}={example}, or use `--services docker` or \
         `--services native`"
    )]
    ExternalVariableMissing {
        variable: &'static str,
        service: &'static str,
        example: &'static str,
    },

    /// External mode with a URL that cannot be used.
    #[error(
        "--services external: {variable}={value} is not a usable {service} URL ({problem}); set \
         it like {variable}={example}"
    )]
    ExternalUrlInvalid {
        variable: &'static str,
        /// Redacted value.
        value: String,
        service: &'static str,
        problem: String,
        example: &'static str,
    },

    /// Docker: the image is neither local nor pullable.
    #[error(
        "image {reference} is not available locally and could not be pulled ({detail}). Build or \
         load one and set {override_variable}=<name:tag>"
    )]
    ImageUnavailable {
        service: &'static str,
        reference: String,
        override_variable: &'static str,
        detail: String,
    },

    /// Docker: the container could not be created or started for another reason.
    #[error(
        "the {service} container from image {reference} could not be started: {detail}. Check \
         the Docker engine (`docker info`, `docker run --rm {reference}`), or set \
         {override_variable}=<name:tag> to another image"
    )]
    ContainerFailed {
        service: &'static str,
        reference: String,
        override_variable: &'static str,
        detail: String,
    },

    /// A server process or container exited before it answered.
    #[error("{service} ({place}) exited before it was ready: {status}{advice}")]
    ServerExited {
        service: &'static str,
        /// e.g. "native, pid=123, log=/tmp/x/postgres.log" or "docker, container=ID".
        place: String,
        status: String,
        /// The log tail (if any) and the fix, starting with a newline (see [`advice`]).
        advice: String,
    },

    /// Native mode: another process took a chosen loopback port before the server bound it, on
    /// every attempt.
    #[error(
        "{service} could not listen on 127.0.0.1:{port}: another process took the port between \
         the harness choosing it and the server binding it ({attempts} attempts with fresh \
         ports). Find what is opening loopback ports in a burst (`ss -ltnp`), retry, or use \
         `--services docker`"
    )]
    PortTaken {
        service: &'static str,
        port: u16,
        attempts: u32,
    },

    /// A server did not answer a real query in time.
    #[error(
        "{service} at {address} ({place}) did not answer within {waited_secs} s; last error: \
         {last_error}{advice}"
    )]
    NotReady {
        service: &'static str,
        address: String,
        place: String,
        waited_secs: u64,
        last_error: String,
        /// The log tail (if any) and the fix, starting with a newline (see [`advice`]).
        advice: String,
    },

    /// Creating a directory, allocating a port, spawning a process and the like.
    #[error("{action} failed: {source}. {hint}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
        hint: String,
    },

    /// Teardown could not remove everything it started.
    #[error(
        "teardown left things behind: {0}. Remove them by hand (containers: `docker rm -f ID`; \
         processes: `kill PID`; directories: `rm -rf DIR`)"
    )]
    Teardown(String),
}

/// The `advice` field: the log tail (indented, if there is one) and then the fix.
pub(crate) fn advice(what: &str, tail: &str, hint: &str) -> String {
    let tail = tail.trim_end();
    if tail.is_empty() {
        format!("\n{hint}")
    } else {
        let indented: Vec<String> = tail.lines().map(|l| format!("    {l}")).collect();
        format!("\n  {what} ends with:\n{}\n{hint}", indented.join("\n"))
    }
}
