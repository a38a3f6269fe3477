//! Readiness by real queries (Postgres `SELECT 1` over TCP, Redis `PING`), server versions, and
//! the small URL helpers the modes share.
//!
//! Must never: judge readiness by log lines, wait without a deadline, or print a password.

use std::future::Future;
use std::time::Duration;

use sqlx::Connection;
use tokio::time::Instant;

use super::error::ProvisionError;

/// How long one connection attempt may take before it counts as "no answer".
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between attempts.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Outcome of [`poll_ready`].
pub(crate) enum Wait<T> {
    Ready(T),
    TimedOut { last_error: String },
}

/// Tells [`poll_ready`] that a server is gone, so the wait ends at once. (A trait rather than an
/// async closure: async closures capturing references make the futures fail `Send` checks.)
pub(crate) trait Liveness {
    /// Called before attempt `n`; an error means the server is gone.
    fn check(&mut self, n: u32) -> impl Future<Output = Result<(), ProvisionError>> + Send;
}

/// For servers whose liveness cannot be observed (external mode).
pub(crate) struct Unobserved;

impl Liveness for Unobserved {
    async fn check(&mut self, _n: u32) -> Result<(), ProvisionError> {
        Ok(())
    }
}

/// Calls `attempt` every ~100 ms until it succeeds or `timeout` passes. Before every attempt,
/// `alive` may report that the server is gone (its error ends the wait at once).
pub(crate) async fn poll_ready<T, A, F>(
    timeout: Duration,
    mut attempt: A,
    alive: &mut impl Liveness,
) -> Result<Wait<T>, ProvisionError>
where
    A: FnMut() -> F,
    F: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut n = 0u32;
    loop {
        alive.check(n).await?;
        let attempt_deadline = (Instant::now() + ATTEMPT_TIMEOUT).min(deadline);
        let last_error = match tokio::time::timeout_at(attempt_deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(Wait::Ready(value)),
            Ok(Err(e)) => e,
            Err(_) => "no answer within 2 s".to_owned(),
        };
        if Instant::now() + POLL_INTERVAL >= deadline {
            return Ok(Wait::TimedOut { last_error });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        n += 1;
    }
}

/// One Postgres attempt: connect, `SELECT 1`, `SHOW server_version`. Returns the version.
pub(crate) async fn postgres_once(url: &str) -> Result<String, String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("SELECT 1: {e}"))?;
    if one != 1 {
        return Err(format!("SELECT 1 answered {one}"));
    }
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("SHOW server_version: {e}"))?;
    let _ = conn.close().await;
    Ok(version)
}

/// The server's `data_directory` (the harness's own servers only: it needs a superuser).
pub(crate) async fn postgres_data_directory(url: &str) -> Result<String, String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let directory: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("SHOW data_directory: {e}"))?;
    let _ = conn.close().await;
    Ok(directory)
}

/// One Redis attempt: connect, `PING`, `INFO server`. Returns `redis_version`.
pub(crate) async fn redis_once(url: &str) -> Result<String, String> {
    let client = redis::Client::open(url).map_err(|e| format!("invalid URL: {e}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("PING: {e}"))?;
    if pong != "PONG" {
        return Err(format!("PING answered {pong:?}"));
    }
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("INFO server: {e}"))?;
    parse_redis_version(&info).ok_or_else(|| "INFO server has no redis_version".to_owned())
}

pub(crate) fn parse_redis_version(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
}

/// A fresh secret for the servers of one start: 32 hex digits (128 bits) from the operating
/// system's random source, so it needs no escaping in a URL or a config file.
pub(crate) fn run_password() -> Result<String, ProvisionError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ProvisionError::Io {
        action: "drawing the servers' password from the operating system's random source"
            .to_owned(),
        source: std::io::Error::other(e.to_string()),
        hint: "Check that /dev/urandom (getrandom(2)) is available".to_owned(),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A server URL split so the database (path) can be replaced: `prefix` is
/// `scheme://[userinfo@]host[:port]`, `query` is empty or starts with `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlParts {
    pub scheme: String,
    pub userinfo: Option<String>,
    /// Host as written (IPv6 in brackets); may be empty (e.g. Unix-socket URLs).
    pub host: String,
    pub port: Option<u16>,
    /// Path without the leading `/`, still encoded.
    pub path: String,
    pub query: String,
}

impl UrlParts {
    pub(crate) fn parse(url: &str) -> Result<UrlParts, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "no scheme:// at the start".to_owned())?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(format!("invalid scheme {scheme:?}"));
        }
        let (before_query, query) = match rest.find(['?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i + 1..]),
            None => (before_query, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
            let end = stripped
                .find(']')
                .ok_or_else(|| "unclosed [ in host".to_owned())?;
            let host = &hostport[..end + 2];
            let after = &stripped[end + 1..];
            let port = match after.strip_prefix(':') {
                Some("") => None,
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("unexpected {after:?} after the host")),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) if !p.is_empty() => (h, Some(p)),
                Some((h, _)) => (h, None),
                None => (hostport, None),
            }
        };
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| format!("invalid port {p:?}")))
            .transpose()?;
        Ok(UrlParts {
            scheme: scheme.to_owned(),
            userinfo: userinfo.map(str::to_owned),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            query: query.to_owned(),
        })
    }

    /// The URL with `path` as its path (already encoded), everything else kept.
    pub(crate) fn with_path(&self, path: &str) -> String {
        let mut s = format!("{}://", self.scheme);
        if let Some(u) = &self.userinfo {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s.push('/');
        s.push_str(path);
        s.push_str(&self.query);
        s
    }

    /// `host:port` for messages, with defaults filled in.
    pub(crate) fn address(&self, default_port: u16) -> String {
        let host = if self.host.is_empty() {
            "localhost"
        } else {
            &self.host
        };
        format!("{host}:{}", self.port.unwrap_or(default_port))
    }

    /// The URL with any password replaced by `***`, for messages.
    pub(crate) fn redacted(&self) -> String {
        let mut copy = self.clone();
        if let Some(u) = &copy.userinfo
            && let Some((user, _)) = u.split_once(':')
        {
            copy.userinfo = Some(format!("{user}:***"));
        }
        let path = copy.path.clone();
        copy.with_path(&path)
    }
}

/// Best-effort redaction of a URL that might not parse.
pub(crate) fn redact(url: &str) -> String {
    match UrlParts::parse(url) {
        Ok(p) => p.redacted(),
        Err(_) => "<unparsable URL, not shown>".to_owned(),
    }
}

/// The last `max_lines` lines of a text file (reads at most the last 16 KiB).
pub(crate) fn file_tail(path: &std::path::Path, max_lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    text_tail(&String::from_utf8_lossy(&buf), max_lines)
}

/// The last `max_lines` non-empty-trailing lines of `text`.
pub(crate) fn text_tail(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let from = lines.len().saturating_sub(max_lines);
    lines[from..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_passwords_are_fresh_hex_secrets() {
        let a = run_password().unwrap();
        let b = run_password().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b, "two starts must not share a password");
    }

    #[test]
    fn url_parts_replace_database_and_keep_the_rest() {
        let p =
            UrlParts::parse("postgres://app:s3cret@db.example:6543/main?sslmode=disable").unwrap();
        assert_eq!(p.address(5432), "db.example:6543");
        assert_eq!(
            p.with_path(&percent_encode("perf run")),
            "postgres://app:s3cret@db.example:6543/perf%20run?sslmode=disable"
        );
        assert_eq!(
            p.redacted(),
            "postgres://app:***@db.example:6543/main?sslmode=disable"
        );
        let p = UrlParts::parse("postgresql://[::1]/x").unwrap();
        assert_eq!(p.address(5432), "[::1]:5432");
        assert_eq!(p.with_path("y"), "postgresql://[::1]/y");
        let p = UrlParts::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!(p.address(6379), "127.0.0.1:6379");
        assert!(UrlParts::parse("localhost:5432").is_err());
        assert!(UrlParts::parse("postgres://h:notaport/db").is_err());
    }

    #[test]
    fn redis_version_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(parse_redis_version(info).as_deref(), Some("7.0.15"));
        assert_eq!(parse_redis_version("# Server\r\n"), None);
    }

    #[test]
    fn text_tail_keeps_the_last_lines() {
        assert_eq!(text_tail("a\nb\nc\n\n", 2), "b\nc");
        assert_eq!(text_tail("", 2), "");
    }
}
