//! How long the cache waits for Redis: [`RedisOptions`] (connect, answer, reconnect and
//! resubscribe time-outs and delays) and [`bounded`], the time-out every Redis step of the
//! cache runs under. Shared by the L2 connection (`l2.rs`) and the invalidation subscriber
//! (`coherence.rs`), which both depend on this module and not on each other for it.

use std::future::Future;
use std::time::Duration;

use redis::{RedisError, RedisResult};

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
    /// Bound of a whole cache operation's Redis step (waiting for a reconnect included); also
    /// of each subscription attempt.
    pub operation_timeout: Duration,
    /// First pause before the invalidation subscriber subscribes again after its connection
    /// dropped; doubled after each failed attempt, up to `reconnect_max_delay`.
    pub resubscribe_min_delay: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connection_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(500),
            reconnect_retries: 2,
            reconnect_max_delay: Duration::from_millis(500),
            operation_timeout: Duration::from_secs(1),
            resubscribe_min_delay: Duration::from_millis(50),
        }
    }
}

/// `operation` bounded by `limit`; running out of time is an I/O time-out error.
pub(crate) async fn bounded<T>(
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
