//! The Docker engine seen from the harness: which endpoint testcontainers will use, whether it
//! answers (`GET /_ping`, 2 s), what an image's id/digest is, and a synchronous way to remove
//! containers that works outside any async runtime (for `Drop` on the panic path).
//!
//! Must never: start, pull or modify images; remove a container that this process did not start
//! (removal is by container id or by this process's own session label only); use a shell.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testcontainers::bollard;

/// How long the engine check waits for `GET /_ping`.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The label that marks the containers of one `Services::start` (value: a session token).
pub(crate) const SESSION_LABEL: &str = "org.perf-harness.session";

/// Result of the engine check.
#[derive(Debug, Clone)]
pub(crate) struct EngineCheck {
    /// The endpoint, e.g. `unix:///var/run/docker.sock`.
    pub host: String,
    pub answers: bool,
    /// Human-readable: what was checked and what it answered.
    pub detail: String,
}

/// The Docker endpoint testcontainers 0.28 uses, in its order: `DOCKER_HOST`, then the first
/// existing socket of `/var/run/docker.sock`, `$XDG_RUNTIME_DIR/.docker/run/docker.sock`,
/// `~/.docker/run/docker.sock`, `~/.docker/desktop/docker.sock`, else the default socket.
/// Returns the endpoint and where it came from.
pub(crate) fn docker_host() -> (String, &'static str) {
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.trim().is_empty()
    {
        return (host, "DOCKER_HOST");
    }
    let mut candidates = vec!["/var/run/docker.sock".to_owned()];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        candidates.push(format!("{dir}/.docker/run/docker.sock"));
    }
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(format!("{home}/.docker/run/docker.sock"));
        candidates.push(format!("{home}/.docker/desktop/docker.sock"));
    }
    for c in candidates {
        if Path::new(&c).exists() {
            return (format!("unix://{c}"), "the default socket");
        }
    }
    (
        "unix:///var/run/docker.sock".to_owned(),
        "the default socket",
    )
}

/// Asks the engine testcontainers would use for `GET /_ping`, with a 2 s timeout.
pub(crate) async fn check() -> EngineCheck {
    let (host, source) = docker_host();
    let ping = async {
        let docker = testcontainers::core::client::docker_client_instance()
            .await
            .map_err(|e| e.to_string())?;
        docker.ping().await.map_err(|e| e.to_string())
    };
    let (answers, what) = match tokio::time::timeout(PING_TIMEOUT, ping).await {
        Ok(Ok(_)) => (true, "GET /_ping answered".to_owned()),
        Ok(Err(e)) => (false, format!("GET /_ping: {e}")),
        Err(_) => (false, "GET /_ping: no answer within 2 s".to_owned()),
    };
    let detail = if answers {
        format!("a Docker engine answers at {host} ({source}; {what})")
    } else {
        format!("no Docker engine answers at {host} ({source}; {what})")
    };
    EngineCheck {
        host,
        answers,
        detail,
    }
}

/// The engine's description of a local image (no pull is tried), within 5 s; None when the
/// engine does not answer or has no such image.
async fn inspect_image(reference: &str) -> Option<testcontainers::bollard::models::ImageInspect> {
    let inspect = async {
        let docker = testcontainers::core::client::docker_client_instance()
            .await
            .ok()?;
        docker.inspect_image(reference).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(5), inspect)
        .await
        .ok()
        .flatten()
}

/// Whether the engine has the image locally (no pull is tried).
pub(crate) async fn image_present(reference: &str) -> bool {
    inspect_image(reference).await.is_some()
}

/// `REF (image id sha256:..., digest NAME@sha256:...)`, or just `REF` if the engine does not say.
pub(crate) async fn image_identity(reference: &str) -> String {
    match inspect_image(reference).await {
        Some(image) => {
            let mut parts = Vec::new();
            if let Some(id) = image.id {
                parts.push(format!("image id {id}"));
            }
            if let Some(digest) = image.repo_digests.and_then(|d| d.into_iter().next()) {
                parts.push(format!("digest {digest}"));
            }
            if parts.is_empty() {
                reference.to_owned()
            } else {
                format!("{reference} ({})", parts.join(", "))
            }
        }
        None => reference.to_owned(),
    }
}

/// Removes (force, with volumes) every container carrying this session's label, through the
/// async client. Returns the ids removed.
pub(crate) async fn remove_session_containers(session: &str) -> Result<Vec<String>, String> {
    let docker = testcontainers::core::client::docker_client_instance()
        .await
        .map_err(|e| e.to_string())?;
    let mut filters = HashMap::new();
    filters.insert("label", vec![format!("{SESSION_LABEL}={session}")]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| format!("listing containers: {e}"))?;
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for c in list {
        let Some(id) = c.id else { continue };
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(&id, Some(options)).await {
            Ok(()) => removed.push(id),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => errors.push(format!("container {id}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(removed)
    } else {
        Err(errors.join("; "))
    }
}

/// Synchronously removes the given containers and any other container with this session's
/// label. Works with no async runtime (plain HTTP over the Unix socket or TCP; falls back to the
/// `docker` CLI for other endpoints, e.g. TLS).
pub(crate) fn remove_containers_blocking(
    host: &str,
    ids: &[String],
    session: &str,
) -> Result<(), String> {
    match remove_over_http(host, ids, session) {
        Ok(()) => Ok(()),
        Err(HttpFailure::Transport(transport)) => remove_with_cli(ids, session)
            .map_err(|cli| format!("over the API ({transport}) and with the docker CLI ({cli})")),
        Err(HttpFailure::Api(e)) => Err(e),
    }
}

enum HttpFailure {
    /// Could not talk to the engine at all: worth trying the CLI.
    Transport(String),
    /// The engine answered with an error.
    Api(String),
}

fn remove_over_http(host: &str, ids: &[String], session: &str) -> Result<(), HttpFailure> {
    let mut all: Vec<String> = ids.to_vec();
    let filters = format!("{{\"label\":[\"{SESSION_LABEL}={session}\"]}}");
    let path = format!(
        "/containers/json?all=1&filters={}",
        super::probe::percent_encode(&filters)
    );
    let (status, body) = http_blocking(host, "GET", &path).map_err(HttpFailure::Transport)?;
    if status == 200
        && let Ok(serde_json::Value::Array(list)) =
            serde_json::from_slice::<serde_json::Value>(&body)
    {
        for c in list {
            if let Some(id) = c.get("Id").and_then(|v| v.as_str())
                && !all.iter().any(|known| known == id)
            {
                all.push(id.to_owned());
            }
        }
    }
    let mut errors = Vec::new();
    for id in &all {
        let path = format!("/containers/{id}?force=1&v=1");
        match http_blocking(host, "DELETE", &path) {
            Ok((204 | 200 | 404, _)) => {}
            Ok((status, body)) => errors.push(format!(
                "removing container {id}: HTTP {status} {}",
                String::from_utf8_lossy(&body).trim()
            )),
            Err(e) => return Err(HttpFailure::Transport(e)),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(HttpFailure::Api(errors.join("; ")))
    }
}

/// A one-shot HTTP/1.0 request to the engine. Returns status and body.
fn http_blocking(host: &str, method: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let timeout = Duration::from_secs(15);
    let request = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n");
    let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0");
    let raw = if let Some(socket) = host.strip_prefix("unix://") {
        let mut s = std::os::unix::net::UnixStream::connect(socket)
            .map_err(|e| format!("connect {socket}: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        buf
    } else if let Some(addr) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
        .filter(|_| !tls)
    {
        use std::net::ToSocketAddrs;
        let addr = addr.trim_end_matches('/');
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| format!("resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("resolve {addr}: no address"))?;
        let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(5))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        buf
    } else {
        return Err(format!(
            "endpoint {host} is not plain HTTP over a Unix socket or TCP"
        ));
    };
    parse_http_response(&raw)
}

fn parse_http_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| "incomplete HTTP response".to_owned())?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| "no HTTP status line".to_owned())?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

fn remove_with_cli(ids: &[String], session: &str) -> Result<(), String> {
    let mut all: Vec<String> = ids.to_vec();
    let label = format!("label={SESSION_LABEL}={session}");
    if let Ok(out) = run_with_timeout(Command::new("docker").args([
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &label,
    ])) {
        for id in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !all.iter().any(|known| known == id) {
                all.push(id.to_owned());
            }
        }
    }
    if all.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("docker");
    cmd.args(["rm", "-f", "-v"]).args(&all);
    match run_with_timeout(&mut cmd) {
        Ok(_) => Ok(()),
        // `docker rm -f` of a container that is already gone fails with "No such container".
        Err(e) if e.contains("No such container") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs a program (no shell) for at most 20 s; returns stdout, or an error with stderr.
pub(crate) fn run_with_timeout(cmd: &mut Command) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{:?} did not finish within 20 s",
                    cmd.get_program()
                ));
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses_parse_plain_and_chunked() {
        let (status, body) =
            parse_http_response(b"HTTP/1.0 204 No Content\r\nServer: x\r\n\r\n").unwrap();
        assert_eq!((status, body.as_slice()), (204, &b""[..]));
        let (status, body) = parse_http_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"[1,2]"[..]));
        assert!(parse_http_response(b"garbage").is_err());
    }
}
