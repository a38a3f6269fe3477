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

/// A server URL split so the database (path) can be replaced: everything before the path
/// (`scheme://[userinfo@]host[:port]`) in its parts, the path, and `query`, empty or starting
/// with `?` (or `#`).
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
    /// Parses `scheme://[userinfo@]host[:port][/path][?query][#fragment]` with the `url` crate
    /// (WHATWG URL rules: a Postgres or Redis URL has an opaque host, kept as written). The
    /// error says what is wrong; the caller names the variable and shows an example.
    pub(crate) fn parse(input: &str) -> Result<UrlParts, String> {
        let url = url::Url::parse(input).map_err(|error| match error {
            url::ParseError::RelativeUrlWithoutBase => "no scheme:// at the start".to_owned(),
            url::ParseError::InvalidPort => {
                "invalid port: a port is a number from 0 to 65535 (e.g. :5432)".to_owned()
            }
            url::ParseError::InvalidIpv6Address => {
                "invalid IPv6 host: write it in brackets, e.g. [::1]".to_owned()
            }
            url::ParseError::EmptyHost => {
                "no host before the port: name the server, e.g. localhost:5432".to_owned()
            }
            other => other.to_string(),
        })?;
        if !url.has_authority() {
            return Err("no scheme:// at the start".to_owned());
        }
        // `url` lowercases the scheme; keep it as written, so that `POSTGRES://` is named as
        // written when it is refused.
        let written = input.trim_start_matches(|c: char| c <= ' ');
        let scheme = written
            .get(..url.scheme().len())
            .filter(|scheme| scheme.eq_ignore_ascii_case(url.scheme()))
            .unwrap_or(url.scheme());
        let userinfo = match (url.username(), url.password()) {
            ("", None) => None,
            (user, None) => Some(user.to_owned()),
            (user, Some(password)) => Some(format!("{user}:{password}")),
        };
        let mut query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        if let Some(fragment) = url.fragment() {
            query.push('#');
            query.push_str(fragment);
        }
        Ok(UrlParts {
            scheme: scheme.to_owned(),
            userinfo,
            host: url.host_str().unwrap_or_default().to_owned(),
            port: url.port(),
            path: url
                .path()
                .strip_prefix('/')
                .unwrap_or(url.path())
                .to_owned(),
            query,
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
        assert_eq!(p.with_path("0"), "redis://127.0.0.1:6379/0");
    }

    #[test]
    fn url_parts_keep_what_they_do_not_replace() {
        // A Unix-socket URL: no host, the default address.
        let p = UrlParts::parse("postgres:///db?host=/var/run/postgresql").unwrap();
        assert_eq!(p.host, "");
        assert_eq!(p.address(5432), "localhost:5432");
        assert_eq!(
            p.with_path("perf"),
            "postgres:///perf?host=/var/run/postgresql"
        );
        // Host and scheme as written (a Postgres URL's host is opaque, so not lowercased), an
        // empty port, a user without a password, a query and a fragment.
        let p = UrlParts::parse("POSTGRES://app@DB.Example:/Main?sslmode=require#x").unwrap();
        assert_eq!(p.scheme, "POSTGRES");
        assert_eq!(p.userinfo.as_deref(), Some("app"));
        assert_eq!(p.address(5432), "DB.Example:5432");
        assert_eq!(p.path, "Main");
        assert_eq!(
            p.with_path("y"),
            "POSTGRES://app@DB.Example/y?sslmode=require#x"
        );
        assert_eq!(
            p.redacted(),
            "POSTGRES://app@DB.Example/Main?sslmode=require#x"
        );
        // Redis: a password without a user, a database number, a path still encoded.
        let p = UrlParts::parse("redis://:pw@[::1]:6380/2").unwrap();
        assert_eq!(p.address(6379), "[::1]:6380");
        assert_eq!(p.redacted(), "redis://:***@[::1]:6380/2");
        let p = UrlParts::parse("postgres://h/perf%20run").unwrap();
        assert_eq!(p.path, "perf%20run");
        assert_eq!(p.with_path(&p.path), "postgres://h/perf%20run");
    }

    #[test]
    fn bad_urls_are_refused_with_what_is_wrong() {
        for (url, problem) in [
            ("localhost:5432", "no scheme:// at the start"),
            ("postgres:/db", "no scheme:// at the start"),
            ("db.example/main", "no scheme:// at the start"),
            ("", "no scheme:// at the start"),
            (
                "postgres://h:notaport/db",
                "invalid port: a port is a number",
            ),
            ("postgres://h:65536/db", "invalid port: a port is a number"),
            ("postgres://[::1/db", "invalid IPv6 host"),
            ("postgres://[::1]x/db", "invalid IPv6 host"),
            ("postgres://:5432/db", "no host before the port"),
        ] {
            let error = UrlParts::parse(url).unwrap_err();
            assert!(error.starts_with(problem), "{url:?}: {error}");
        }
        assert_eq!(
            redact("postgres://app:s3cret@h:notaport/db"),
            "<unparsable URL, not shown>",
            "a password in a URL that does not parse is never shown"
        );
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
