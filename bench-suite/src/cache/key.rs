//! Cache keys and TTLs: `{run namespace}:{namespace}:v{format}.{schema}:{key}`, the generation
//! key of a guarded namespace's key (`{run namespace}:{namespace}:gen:{key}`), the run's
//! invalidation channel (`{run namespace}:invalidations`), a stable hash of each key, and the
//! deterministic per-key TTL jitter derived from it (so that keys filled together do not
//! expire together, and every run jitters every key the same way).
//!
//! This module must never do I/O, read the clock or use a randomly seeded hash: the same key
//! must get the same hash and TTLs in every process and every run.

use std::fmt::{Display, Write as _};
use std::time::Duration;

use super::config::NamespaceConfig;

/// The key prefix of one namespace in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    /// `{run}:{namespace}:v{format}.{schema}:`
    prefix: String,
    /// `{run}:{namespace}:gen:` (never a value key's prefix: those have `v..` there).
    generation_prefix: String,
    namespace: &'static str,
}

/// The pub/sub channel on which the invalidations of guarded namespaces of the run
/// `run_namespace` are published: `{run}:invalidations`.
pub fn invalidation_channel(run_namespace: &str) -> String {
    format!("{run_namespace}:invalidations")
}

/// A key as sent to Redis, with its stable hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisKey {
    pub full: String,
    /// [`key_hash`] of the namespace and the key (not of the run namespace or the version, so
    /// a key's jitter is the same in every run and across format changes).
    pub hash: u64,
}

impl KeySpace {
    pub fn new(run_namespace: &str, config: &NamespaceConfig) -> Self {
        Self {
            prefix: format!("{run_namespace}:{}:v{}:", config.name, config.version_tag()),
            generation_prefix: format!("{run_namespace}:{}:gen:", config.name),
            namespace: config.name,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The generation key of `key` (guarded namespaces): bumped by every invalidation of the
    /// key, compared by every fill. Not versioned: a schema change does not reset it.
    pub fn generation_key<K: Display + ?Sized>(&self, key: &K) -> String {
        let mut full = String::with_capacity(self.generation_prefix.len() + 24);
        full.push_str(&self.generation_prefix);
        write!(full, "{key}").expect("writing to a String cannot fail");
        full
    }

    /// The key part of a full Redis key of this space (`None` for another space's key).
    pub fn key_part<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(&self.prefix)
    }

    /// The Redis key of `key` and its hash.
    pub fn key<K: Display + ?Sized>(&self, key: &K) -> RedisKey {
        let mut full = String::with_capacity(self.prefix.len() + 24);
        full.push_str(&self.prefix);
        write!(full, "{key}").expect("writing to a String cannot fail");
        let hash = key_hash(self.namespace, &full[self.prefix.len()..]);
        RedisKey { full, hash }
    }
}

/// A stable 64-bit hash of `{namespace}:{key}`: FNV-1a, then the MurmurHash3 finaliser to
/// spread FNV's weak low bits. Fixed forever: TTL jitter depends on it.
pub fn key_hash(namespace: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in namespace
        .bytes()
        .chain(std::iter::once(b':'))
        .chain(key.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The jitter of a key, in per mille, in `-permille..=permille`.
pub fn jitter_permille(hash: u64, permille: u32) -> i64 {
    let span = 2 * u64::from(permille) + 1;
    (hash % span) as i64 - i64::from(permille)
}

/// `ttl` scaled by `1 + jitter/1000` (millisecond resolution, integer arithmetic).
pub fn jittered(ttl: Duration, jitter_permille: i64) -> Duration {
    let millis = ttl.as_millis() as i128 * (1000 + i128::from(jitter_permille)) / 1000;
    Duration::from_millis(millis.clamp(0, i128::from(u64::MAX)) as u64)
}

/// The TTLs of one entry in both levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryTtls {
    /// For `SET ... EX`: rounded to whole seconds, at least 1.
    pub l2_secs: u64,
    /// Never longer than the L2 TTL.
    pub l1: Duration,
}

/// The jittered TTLs of the entry with `hash`: a value (`missing == false`) or a "missing"
/// marker. Both levels get the same jitter fraction, so L1 never outlives L2 by configuration.
pub fn entry_ttls(config: &NamespaceConfig, hash: u64, missing: bool) -> EntryTtls {
    let jitter = jitter_permille(hash, config.jitter_permille);
    let (l2_base, l1_base) = if missing {
        (config.negative_ttl, config.negative_ttl.min(config.l1_ttl))
    } else {
        (config.l2_ttl, config.l1_ttl)
    };
    let l2_millis = jittered(l2_base, jitter).as_millis();
    let l2_secs = u64::try_from(((l2_millis + 500) / 1000).max(1)).unwrap_or(u64::MAX);
    let l1 = jittered(l1_base, jitter).min(Duration::from_secs(l2_secs));
    EntryTtls { l2_secs, l1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::config::Namespace;

    #[test]
    fn keys_have_the_documented_shape() {
        let config = Namespace::Words.config();
        let space = KeySpace::new("perf-abc", &config);
        let version = crate::codec::FORMAT_VERSION;
        assert_eq!(space.prefix(), format!("perf-abc:word:v{version}.1:"));
        let key = space.key(&42_i64);
        assert_eq!(key.full, format!("perf-abc:word:v{version}.1:42"));
        assert_eq!(key.hash, key_hash("word", "42"));
        let session = KeySpace::new("perf", &Namespace::Sessions.config()).key("tok-1");
        assert_eq!(session.full, format!("perf:session:v{version}.1:tok-1"));
        let due = KeySpace::new("perf-abc", &Namespace::DueCards.config());
        assert_eq!(due.generation_key(&7_i64), "perf-abc:due:gen:7");
        let full = due.key(&7_i64).full;
        assert_eq!(due.key_part(&full), Some("7"));
        assert_eq!(due.key_part(&key.full), None);
        assert_eq!(invalidation_channel("perf-abc"), "perf-abc:invalidations");
    }

    #[test]
    fn hash_is_stable_and_independent_of_run_and_version() {
        // Pinned: jitter, and so expiry times, must not change between builds.
        assert_eq!(key_hash("word", "42"), key_hash("word", "42"));
        // FNV-1a 64 of "word:42" through the MurmurHash3 finaliser, computed independently.
        assert_eq!(key_hash("word", "42"), 0xb43e_50f7_71f2_dd03);
        assert_ne!(key_hash("word", "42"), key_hash("word", "43"));
        assert_ne!(key_hash("word", "42"), key_hash("due", "42"));
        let config = Namespace::Words.config();
        let a = KeySpace::new("run-a", &config).key(&7_i64);
        let b = KeySpace::new("run-b", &config.with_schema_version(9)).key(&7_i64);
        assert_eq!(a.hash, b.hash);
    }

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let mut seen = std::collections::BTreeSet::new();
        for id in 0..10_000_i64 {
            let jitter = jitter_permille(key_hash("word", &id.to_string()), 100);
            assert!((-100..=100).contains(&jitter));
            seen.insert(jitter);
        }
        assert_eq!(seen.len(), 201, "every jitter value is used");
        assert_eq!(jitter_permille(12345, 0), 0);
    }

    #[test]
    fn ttls_are_jittered_deterministically_within_ten_percent() {
        let config = Namespace::Words.config();
        let l2 = config.l2_ttl.as_secs();
        let mut distinct = std::collections::BTreeSet::new();
        for id in 0..1_000_i64 {
            let hash = key_hash("word", &id.to_string());
            let ttls = entry_ttls(&config, hash, false);
            assert_eq!(ttls, entry_ttls(&config, hash, false), "deterministic");
            assert!(ttls.l2_secs >= l2 * 9 / 10 && ttls.l2_secs <= l2 * 11 / 10);
            assert!(ttls.l1 <= Duration::from_secs(ttls.l2_secs));
            assert!(ttls.l1 >= config.l1_ttl.mul_f64(0.9) && ttls.l1 <= config.l1_ttl.mul_f64(1.1));
            distinct.insert(ttls.l2_secs);
        }
        assert!(distinct.len() > 100, "keys do not expire together");
    }

    #[test]
    fn negative_entries_use_the_negative_ttl() {
        let config = Namespace::Progress.config(); // L1 TTL 30 s < negative 60 s
        for id in 0..200_i64 {
            let ttls = entry_ttls(&config, key_hash("progress", &id.to_string()), true);
            assert!((54..=66).contains(&ttls.l2_secs), "{ttls:?}");
            assert!(ttls.l1 <= Duration::from_secs(33), "{ttls:?}");
        }
    }

    #[test]
    fn short_ttls_never_round_to_zero() {
        let config = NamespaceConfig::new("t", Duration::from_secs(1)).with_jitter_permille(500);
        for id in 0..100_i64 {
            let ttls = entry_ttls(&config, key_hash("t", &id.to_string()), false);
            assert!(ttls.l2_secs >= 1);
            assert!(ttls.l1 <= Duration::from_secs(ttls.l2_secs));
        }
        assert_eq!(
            jittered(Duration::from_secs(100), -100),
            Duration::from_secs(90)
        );
        assert_eq!(
            jittered(Duration::from_secs(100), 100),
            Duration::from_secs(110)
        );
    }
}
