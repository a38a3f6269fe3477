//! The Redis side of the cache (L2): one multiplexed, reconnecting connection
//! (`ConnectionManager`) and the only four commands the cache sends — `GET`, `MGET`, `SET .. EX`
//! (alone or pipelined) and `DEL` — each bounded by a time-out.
//!
//! A command that finds the connection dead (refused, reset, broken pipe) is tried once more,
//! after the connection manager's reconnect, so the first command after Redis comes back does
//! not fail; a live connection never repeats a command.
//!
//! This module must never send a command that a caller did not ask for (no `EXISTS`, `TTL`,
//! `EXPIRE`, `PING` or `CLIENT SETINFO`), never wrap a pipeline in `MULTI`/`EXEC`, and never
//! wait for Redis without a time-out: the harness counts commands exactly, and a cache read
//! must fail, not hang, when Redis is gone.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, IntoConnectionInfo, RedisError, RedisResult};

/// How the Redis connection behaves when Redis is slow or gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Bound of one TCP connect (also of each reconnect attempt).
    pub connection_timeout: Duration,
    /// Bound of one command's answer on a live connection.
    pub response_timeout: Duration,
    /// Reconnect attempts after a lost connection before the pending commands fail; the next
    /// command starts a new round, so the cache recovers whenever Redis is back.
    pub reconnect_retries: usize,
    /// Longest pause between reconnect attempts.
    pub reconnect_max_delay: Duration,
    /// Bound of a whole cache operation's Redis step (waiting for a reconnect included).
    pub operation_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connection_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(500),
            reconnect_retries: 2,
            reconnect_max_delay: Duration::from_millis(500),
            operation_timeout: Duration::from_secs(1),
        }
    }
}

/// A handle on Redis shared by all caches of a process (cloning shares the connection).
#[derive(Clone)]
pub struct RedisL2 {
    connection: ConnectionManager,
    operation_timeout: Duration,
}

impl std::fmt::Debug for RedisL2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisL2")
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisL2 {
    /// Connects to `url` (`redis://host:port[/db]`). Connecting sends no command (the client
    /// library's `CLIENT SETINFO` is turned off) unless the URL has a password (`AUTH`) or a
    /// database other than 0 (`SELECT`).
    pub async fn connect(url: &str, options: &RedisOptions) -> RedisResult<Self> {
        let info = url.into_connection_info()?;
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connection_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(options.reconnect_retries)
            .set_max_delay(options.reconnect_max_delay);
        let connect = ConnectionManager::new_with_config(client, config);
        let connection = bounded("connect", options.operation_timeout * 4, connect).await?;
        Ok(Self {
            connection,
            operation_timeout: options.operation_timeout,
        })
    }

    /// The underlying connection, for callers that need other commands (the cache never
    /// sends any through it but its own).
    pub fn connection(&self) -> &ConnectionManager {
        &self.connection
    }

    /// `GET key`
    pub(crate) async fn get(&self, key: &str) -> RedisResult<Option<Vec<u8>>> {
        let mut command = redis::cmd("GET");
        command.arg(key);
        self.query("GET", &command).await
    }

    /// `MGET key...` (one command, whatever the number of keys; `keys` must not be empty).
    pub(crate) async fn mget(&self, keys: &[&str]) -> RedisResult<Vec<Option<Vec<u8>>>> {
        debug_assert!(!keys.is_empty());
        let mut command = redis::cmd("MGET");
        command.arg(keys);
        self.query("MGET", &command).await
    }

    /// `SET key value EX seconds` for each item, in one round trip (a plain, non-transactional
    /// pipeline when there are several). `items` must not be empty.
    pub(crate) async fn set_ex(&self, items: &[SetItem<'_>]) -> RedisResult<()> {
        debug_assert!(!items.is_empty());
        let mut pipeline = redis::pipe();
        for item in items {
            pipeline
                .cmd("SET")
                .arg(item.key)
                .arg(&item.value)
                .arg("EX")
                .arg(item.ttl_secs)
                .ignore();
        }
        let attempt = || {
            let mut connection = self.connection.clone();
            let pipeline = &pipeline;
            async move { pipeline.query_async::<()>(&mut connection).await }
        };
        bounded(
            "SET",
            self.operation_timeout,
            once_more_if_connection_lost(attempt),
        )
        .await
    }

    /// `DEL key...` (one command); the number of keys Redis removed. `keys` must not be empty.
    pub(crate) async fn del(&self, keys: &[&str]) -> RedisResult<u64> {
        debug_assert!(!keys.is_empty());
        let mut command = redis::cmd("DEL");
        command.arg(keys);
        self.query("DEL", &command).await
    }

    async fn query<T: FromRedisValue>(&self, what: &'static str, command: &Cmd) -> RedisResult<T> {
        let attempt = || {
            let mut connection = self.connection.clone();
            async move { command.query_async::<T>(&mut connection).await }
        };
        bounded(
            what,
            self.operation_timeout,
            once_more_if_connection_lost(attempt),
        )
        .await
    }
}

/// Runs `attempt`, and once more if it found the connection dead (refused, broken pipe,
/// reset, closed). This matters after Redis was away: the connection manager notices a dead
/// connection, or remembers its last failed reconnect, only when a command fails on it, and
/// only then reconnects, so without the retry the first command after Redis is back would
/// fail. The retry waits for that reconnect (within the operation's time-out). A refused or
/// already-dead connection delivered nothing, so normally nothing is sent twice; if a
/// connection broke after Redis executed the command, the retry repeats an idempotent
/// command (`GET`, `MGET`, `SET`, `DEL`), which only a Redis that survived would count.
async fn once_more_if_connection_lost<T, F, Fut>(attempt: F) -> RedisResult<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    match attempt().await {
        Err(error) if error.is_connection_refusal() || error.is_connection_dropped() => {
            attempt().await
        }
        other => other,
    }
}

/// One `SET key value EX ttl_secs`.
pub(crate) struct SetItem<'a> {
    pub key: &'a str,
    pub value: Vec<u8>,
    pub ttl_secs: u64,
}

/// `operation` bounded by `limit`; running out of time is an I/O time-out error.
async fn bounded<T>(
    what: &'static str,
    limit: Duration,
    operation: impl Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    match tokio::time::timeout(limit, operation).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("redis {what}: no answer within {limit:?}"),
        ))),
    }
}
