//! The Redis side of the cache (L2): one multiplexed, reconnecting connection
//! (`ConnectionManager`) and the only commands the cache sends, each bounded by a time-out:
//!
//! - `GET`, `MGET`, `SET .. EX` (alone or pipelined) and `DEL`, for namespaces without guarded
//!   fills;
//! - for guarded namespaces: `MGET` of keys and their generation keys, and `EVALSHA` of one of
//!   two scripts: the *fill* script (per key: `GET` of the generation key, then `SET .. EX` of
//!   the value only if the generation is still what the read saw) and the *invalidation*
//!   script (one `DEL` per 4,096 keys, per key `INCR` + `PEXPIRE` of its generation key, one
//!   `PUBLISH` of the keys on `{run}:invalidations`). Redis counts the commands a script runs
//!   in `INFO commandstats` too, beside the `EVALSHA`;
//! - at connect: `SCRIPT LOAD` of both scripts, and with [`RedisL2::connect_subscribed`] the
//!   subscriber's `SUBSCRIBE` (see `coherence.rs`), before any caller's operation.
//!
//! `EVALSHA` that finds the script missing (Redis restarted or its scripts were flushed since
//! connect) loads it (`SCRIPT LOAD`) and sends the `EVALSHA` once more, all within the same
//! operation time-out; with a Redis that kept its scripts this never happens, so counts are
//! deterministic.
//!
//! A command that finds the connection dead (refused, reset, broken pipe) is tried once more,
//! after the connection manager's reconnect, so the first command after Redis comes back does
//! not fail; a live connection never repeats a command.
//!
//! This module must never send a command that a caller did not ask for (no `EXISTS`, `TTL`,
//! `EXPIRE`, `PING` or `CLIENT SETINFO`; nothing but the above), never wrap a pipeline in
//! `MULTI`/`EXEC`, and never
//! wait for Redis without a time-out: the harness counts commands exactly, and a cache read
//! must fail, not hang, when Redis is gone.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, IntoConnectionInfo, RedisError, RedisResult, Script};

use super::coherence::{Shared, Subscription};
use super::redis_options::{RedisOptions, bounded};

/// KEYS: value key, generation key, per entry; ARGV: value, TTL (s), generation the read saw
/// (`""` = none), per entry. Sets each value whose generation is unchanged; returns 1 (set)
/// or 0 (refused) per entry.
const FILL_SCRIPT: &str = r#"
local stored = {}
local a = 1
for i = 1, #KEYS, 2 do
  local generation = redis.call('GET', KEYS[i + 1])
  if (generation or '') == ARGV[a + 2] then
    redis.call('SET', KEYS[i], ARGV[a], 'EX', ARGV[a + 1])
    stored[#stored + 1] = 1
  else
    stored[#stored + 1] = 0
  end
  a = a + 3
end
return stored
"#;

/// KEYS: n value keys, then their n generation keys; ARGV: generation TTL (ms), channel,
/// message. Deletes the values (one `DEL` per [`DEL_CHUNK`] keys: Lua's `unpack` is bounded),
/// bumps the generations, publishes; returns how many it deleted.
const INVALIDATE_SCRIPT: &str = r#"
local n = #KEYS / 2
local deleted = 0
for first = 1, n, 4096 do
  deleted = deleted + redis.call('DEL', unpack(KEYS, first, math.min(first + 4095, n)))
end
for i = n + 1, #KEYS do
  redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return deleted
"#;

/// Keys per `DEL` inside the invalidation script (the `4096` in it).
pub const DEL_CHUNK: usize = 4096;

static FILL: LazyLock<Script> = LazyLock::new(|| Script::new(FILL_SCRIPT));
static INVALIDATE: LazyLock<Script> = LazyLock::new(|| Script::new(INVALIDATE_SCRIPT));

/// A handle on Redis shared by all caches of a process (cloning shares the connection).
#[derive(Clone)]
pub struct RedisL2 {
    connection: ConnectionManager,
    operation_timeout: Duration,
    subscription: Option<Arc<Subscription>>,
}

impl std::fmt::Debug for RedisL2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisL2")
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisL2 {
    /// Connects to `url` (`redis://host:port[/db]`) and loads the two scripts (two
    /// `SCRIPT LOAD`; the client library's `CLIENT SETINFO` is turned off; `AUTH` or `SELECT`
    /// too if the URL has a password or a database other than 0). Without a subscription:
    /// caches of guarded namespaces on this handle never use their L1 (see
    /// [`RedisL2::connect_subscribed`]).
    pub async fn connect(url: &str, options: &RedisOptions) -> RedisResult<Self> {
        Ok(Self::open(url, options).await?.0)
    }

    /// [`RedisL2::connect`], and subscribes a dedicated pub/sub connection to the invalidations
    /// of `run_namespace` (`SUBSCRIBE {run}:invalidations`), waiting (within 4 × the operation
    /// time-out) for the subscription to be confirmed: the L1s of guarded namespaces of that
    /// run namespace on this handle then work from the start.
    pub async fn connect_subscribed(
        url: &str,
        options: &RedisOptions,
        run_namespace: &str,
    ) -> RedisResult<Self> {
        let (mut l2, client) = Self::open(url, options).await?;
        let subscription = Subscription::start(client, run_namespace, options).await?;
        l2.subscription = Some(Arc::new(subscription));
        Ok(l2)
    }

    async fn open(url: &str, options: &RedisOptions) -> RedisResult<(Self, redis::Client)> {
        let info = url.into_connection_info()?;
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connection_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(options.reconnect_retries)
            .set_max_delay(options.reconnect_max_delay);
        let connect = ConnectionManager::new_with_config(client.clone(), config);
        let connection = bounded("connect", options.operation_timeout * 4, connect).await?;
        let l2 = Self {
            connection,
            operation_timeout: options.operation_timeout,
            subscription: None,
        };
        for script in [&*FILL, &*INVALIDATE] {
            let attempt = || {
                let mut connection = l2.connection.clone();
                async move { script.prepare_invoke().load_async(&mut connection).await }
            };
            bounded(
                "SCRIPT LOAD",
                options.operation_timeout,
                once_more_if_connection_lost(attempt),
            )
            .await?;
        }
        Ok((l2, client))
    }

    /// The subscription's state, if this handle has one.
    pub(crate) fn coherence(&self) -> Option<&Arc<Shared>> {
        self.subscription.as_ref().map(|s| s.shared())
    }

    /// Whether this handle's invalidation subscription is live (always `false` without one).
    pub fn invalidations_live(&self) -> bool {
        self.coherence().is_some_and(|shared| shared.is_live())
    }

    /// How many times the invalidation subscription has been confirmed (subscribed, or
    /// subscribed again after its connection dropped); 0 without one.
    pub fn subscriptions_confirmed(&self) -> u64 {
        self.subscription
            .as_ref()
            .map_or(0, |subscription| subscription.confirmations())
    }

    /// Waits, at most `limit`, until the subscription has been confirmed `n` times in all;
    /// whether it was.
    pub async fn wait_for_subscriptions(&self, n: u64, limit: Duration) -> bool {
        match &self.subscription {
            Some(subscription) => subscription.wait_for_confirmations(n, limit).await,
            None => false,
        }
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

    /// `EVALSHA` of the fill script (one command, one round trip, whatever the number of
    /// items); inside it, per item, `GET` of the generation key and, if it still equals what
    /// the read saw, `SET key value EX ttl`. Per item, whether its value was set. `items` must
    /// not be empty.
    pub(crate) async fn fill_guarded(
        &self,
        items: &[GuardedSetItem<'_>],
    ) -> RedisResult<Vec<bool>> {
        debug_assert!(!items.is_empty());
        let mut invocation = FILL.prepare_invoke();
        for item in items {
            invocation.key(item.key).key(item.generation_key);
            invocation
                .arg(&item.value)
                .arg(item.ttl_secs)
                .arg(item.seen_generation.unwrap_or_default());
        }
        let stored: Vec<i64> = self.evalsha("EVALSHA", &invocation).await?;
        if stored.len() != items.len() {
            return Err(RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the fill script answered a different number of flags than items",
            )));
        }
        Ok(stored.into_iter().map(|flag| flag == 1).collect())
    }

    /// `EVALSHA` of the invalidation script (one command, one round trip): inside it one `DEL`
    /// per [`DEL_CHUNK`] of `keys`, per key `INCR` and `PEXPIRE generation_ttl` of its generation key, and one
    /// `PUBLISH channel message`. The number of keys Redis removed. `keys` must not be empty
    /// and `generation_keys` must be as long.
    pub(crate) async fn invalidate_guarded(
        &self,
        keys: &[&str],
        generation_keys: &[&str],
        generation_ttl: Duration,
        channel: &str,
        message: &[u8],
    ) -> RedisResult<u64> {
        debug_assert!(!keys.is_empty() && keys.len() == generation_keys.len());
        let mut invocation = INVALIDATE.prepare_invoke();
        invocation.key(keys).key(generation_keys);
        invocation
            .arg(u64::try_from(generation_ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(channel)
            .arg(message);
        self.evalsha("EVALSHA", &invocation).await
    }

    async fn evalsha<T: FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        let attempt = || {
            let mut connection = self.connection.clone();
            async move { invocation.invoke_async::<T>(&mut connection).await }
        };
        bounded(
            what,
            self.operation_timeout,
            once_more_if_connection_lost(attempt),
        )
        .await
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
/// connection broke after Redis executed the command, the retry repeats it: `GET`, `MGET`,
/// `SET`, `DEL` and the fill script are idempotent; the invalidation script bumps the
/// generations once more and publishes again, which only makes the invalidation stronger.
/// Only a Redis that survived would count the repeat.
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

/// One conditional fill: `SET key value EX ttl_secs` if `generation_key` still holds
/// `seen_generation` (`None`: did not exist).
pub(crate) struct GuardedSetItem<'a> {
    pub key: &'a str,
    pub generation_key: &'a str,
    pub value: Vec<u8>,
    pub ttl_secs: u64,
    pub seen_generation: Option<&'a [u8]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invalidation_script_deletes_in_chunks_of_del_chunk_keys() {
        assert!(INVALIDATE_SCRIPT.contains(&format!("for first = 1, n, {DEL_CHUNK} do")));
        assert!(INVALIDATE_SCRIPT.contains(&format!("first + {}", DEL_CHUNK - 1)));
    }
}
