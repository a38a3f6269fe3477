//! What each cache namespace is: its name in the keys, its TTLs in Redis (L2) and in process
//! (L1), its L1 capacity, how long a "missing" answer is remembered, how much TTLs are
//! jittered, and whether writes invalidate it across processes (`guarded_fills`). Plain values
//! and their validation.
//!
//! This module must never touch Redis, the clock or any other I/O.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long a "the loader found nothing" answer is cached (before jitter).
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// TTL jitter, in per mille of the TTL either way: 100 = ±10%.
pub const DEFAULT_JITTER_PERMILLE: u32 = 100;
/// Largest jitter a configuration may ask for (±50%).
pub const MAX_JITTER_PERMILLE: u32 = 500;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;

/// The service's cache namespaces, with their default configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// Login sessions by token: L2 30 min.
    Sessions,
    /// Word definitions by word id: L2 24 h.
    Words,
    /// Progress statistics by user: L2 15 min.
    Progress,
    /// Review cards (due lists) by user (and page): L2 5 min.
    DueCards,
    /// User preferences by user: L2 6 h.
    Preferences,
}

impl Namespace {
    pub const ALL: [Namespace; 5] = [
        Namespace::Sessions,
        Namespace::Words,
        Namespace::Progress,
        Namespace::DueCards,
        Namespace::Preferences,
    ];

    /// The namespace's segment in the cache keys.
    pub const fn name(self) -> &'static str {
        match self {
            Namespace::Sessions => "session",
            Namespace::Words => "word",
            Namespace::Progress => "progress",
            Namespace::DueCards => "due",
            Namespace::Preferences => "prefs",
        }
    }

    /// The default configuration. The namespaces that writes invalidate (`progress`, `due`)
    /// have guarded fills: their invalidations are broadcast to every process's L1 and a fill
    /// that raced an invalidation is refused by Redis (see [`NamespaceConfig::guarded_fills`]).
    /// The others change only by expiry, so an L1 TTL bounds how long a process keeps a copy.
    pub fn config(self) -> NamespaceConfig {
        let (l2, l1_capacity, l1) = match self {
            Namespace::Sessions => (30 * MINUTE, 10_000, MINUTE),
            Namespace::Words => (24 * HOUR, 10_000, HOUR),
            Namespace::Progress => (15 * MINUTE, 1_000, 30),
            Namespace::DueCards => (5 * MINUTE, 1_000, 30),
            Namespace::Preferences => (6 * HOUR, 10_000, 5 * MINUTE),
        };
        let guarded = matches!(self, Namespace::Progress | Namespace::DueCards);
        NamespaceConfig::new(self.name(), Duration::from_secs(l2))
            .with_l1(l1_capacity, Duration::from_secs(l1))
            .with_guarded_fills(guarded)
    }
}

/// How one namespace of the cache behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// The namespace's segment in the keys: `{run}:{name}:v{format}.{schema}:{key}`.
    pub name: &'static str,
    /// Version of the cached value's shape: bump it when the value type changes, so that
    /// bytes written for the old shape are never decoded as the new one.
    pub schema_version: u32,
    /// TTL of a value in Redis (before jitter).
    pub l2_ttl: Duration,
    /// Entries kept in L1; 0 turns L1 off (every read that is not coalesced goes to Redis).
    pub l1_capacity: u64,
    /// TTL of a value in L1 (before jitter); at most `l2_ttl`.
    pub l1_ttl: Duration,
    /// TTL of a "missing" entry in Redis (before jitter); in L1 at most `l1_ttl`.
    pub negative_ttl: Duration,
    /// Jitter of every TTL, per mille either way, the same fraction for both levels of a key.
    pub jitter_permille: u32,
    /// Coherence across processes, for namespaces that writes invalidate. On: each key has a
    /// generation key in Redis; a read is `MGET key generation`, a fill is a script that sets
    /// the value only if the generation is still the one the read saw, an invalidation is a
    /// script that deletes the keys, bumps their generations and publishes them to every
    /// process's L1; and L1 serves only while this process's subscription to those
    /// publications is live. Off: `GET`, `SET .. EX` and `DEL`, and an invalidation reaches
    /// only this process's L1 (another process keeps its copy until its L1 TTL).
    pub guarded_fills: bool,
}

impl NamespaceConfig {
    /// A namespace with L1 on (10 000 entries, L1 TTL = `l2_ttl`), a 60 s negative TTL (at
    /// most `l2_ttl`) and ±10% jitter.
    pub fn new(name: &'static str, l2_ttl: Duration) -> Self {
        Self {
            name,
            schema_version: 1,
            l2_ttl,
            l1_capacity: 10_000,
            l1_ttl: l2_ttl,
            negative_ttl: DEFAULT_NEGATIVE_TTL.min(l2_ttl),
            jitter_permille: DEFAULT_JITTER_PERMILLE,
            guarded_fills: false,
        }
    }

    pub fn with_l1(mut self, capacity: u64, ttl: Duration) -> Self {
        self.l1_capacity = capacity;
        self.l1_ttl = ttl;
        self
    }

    /// Sets the L1 capacity only; 0 turns L1 off.
    pub fn with_l1_capacity(mut self, capacity: u64) -> Self {
        self.l1_capacity = capacity;
        self
    }

    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    pub fn with_jitter_permille(mut self, permille: u32) -> Self {
        self.jitter_permille = permille;
        self
    }

    pub fn with_schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// Turns guarded fills (cross-process coherence) on or off.
    pub fn with_guarded_fills(mut self, guarded: bool) -> Self {
        self.guarded_fills = guarded;
        self
    }

    /// How long a generation key lives after its last bump: twice the L2 TTL, so longer than
    /// any jittered TTL (jitter is at most ±50%). A fill compares the generation its read saw
    /// within this window; a lookup whose read-load-fill takes longer could miss a bump.
    pub fn generation_ttl(&self) -> Duration {
        self.l2_ttl * 2
    }

    pub fn l1_enabled(&self) -> bool {
        self.l1_capacity > 0
    }

    /// The version segment of the keys: the codec's format and the value's schema.
    pub fn version_tag(&self) -> String {
        format!("{}.{}", crate::codec::FORMAT_VERSION, self.schema_version)
    }

    /// Checks the rules: a key-safe name, whole-second L2 TTLs of at least 1 s, L1 TTL not
    /// longer than the L2 TTL, negative TTL not longer than the L2 TTL, bounded jitter.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |why: String| {
            Err(ConfigError {
                namespace: self.name,
                why,
            })
        };
        if self.name.is_empty() || self.name.contains([':', ' ', '\n', '\r', '\t']) {
            return fail(format!(
                "name {:?} must be non-empty, without ':' or whitespace",
                self.name
            ));
        }
        for (what, ttl) in [("l2_ttl", self.l2_ttl), ("negative_ttl", self.negative_ttl)] {
            if ttl < Duration::from_secs(1) {
                return fail(format!("{what} {ttl:?} is shorter than Redis's 1 s unit"));
            }
        }
        if self.l1_enabled() && self.l1_ttl.is_zero() {
            return fail("l1_ttl is 0 while L1 is on".to_owned());
        }
        if self.l1_ttl > self.l2_ttl {
            return fail(format!(
                "l1_ttl {:?} is longer than l2_ttl {:?}",
                self.l1_ttl, self.l2_ttl
            ));
        }
        if self.negative_ttl > self.l2_ttl {
            return fail(format!(
                "negative_ttl {:?} is longer than l2_ttl {:?}",
                self.negative_ttl, self.l2_ttl
            ));
        }
        if self.jitter_permille > MAX_JITTER_PERMILLE {
            return fail(format!(
                "jitter of {} per mille is more than {MAX_JITTER_PERMILLE}",
                self.jitter_permille
            ));
        }
        Ok(())
    }
}

/// A namespace configuration breaks a rule of [`NamespaceConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache namespace {namespace:?}: {why}")]
pub struct ConfigError {
    pub namespace: &'static str,
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_the_specified_l2_ttls_and_are_valid() {
        let expected = [
            (Namespace::Sessions, "session", 30 * MINUTE),
            (Namespace::Words, "word", 24 * HOUR),
            (Namespace::Progress, "progress", 15 * MINUTE),
            (Namespace::DueCards, "due", 5 * MINUTE),
            (Namespace::Preferences, "prefs", 6 * HOUR),
        ];
        assert_eq!(expected.len(), Namespace::ALL.len());
        for (namespace, name, l2_secs) in expected {
            let config = namespace.config();
            assert_eq!(config.name, name);
            assert_eq!(config.l2_ttl, Duration::from_secs(l2_secs));
            assert!(config.l1_enabled());
            assert!(config.l1_ttl <= config.l2_ttl, "{name}");
            assert_eq!(config.negative_ttl, DEFAULT_NEGATIVE_TTL);
            config.validate().unwrap();
            let guarded = matches!(namespace, Namespace::Progress | Namespace::DueCards);
            assert_eq!(config.guarded_fills, guarded, "{name}");
            assert!(
                config.generation_ttl() > config.l2_ttl.mul_f64(1.5),
                "{name}"
            );
        }
    }

    #[test]
    fn rules_are_enforced() {
        let base = NamespaceConfig::new("t", Duration::from_secs(10));
        base.validate().unwrap();
        assert_eq!(base.negative_ttl, Duration::from_secs(10), "capped by l2");
        let broken = [
            NamespaceConfig::new("", Duration::from_secs(10)),
            NamespaceConfig::new("a:b", Duration::from_secs(10)),
            NamespaceConfig::new("t", Duration::from_millis(500)),
            base.clone().with_l1(10, Duration::from_secs(11)),
            base.clone().with_l1(10, Duration::ZERO),
            base.clone().with_negative_ttl(Duration::from_secs(11)),
            base.clone().with_negative_ttl(Duration::from_millis(10)),
            base.clone().with_jitter_permille(501),
        ];
        for config in broken {
            assert!(config.validate().is_err(), "{config:?}");
        }
        // L1 off: its TTL does not matter.
        base.clone().with_l1(0, Duration::ZERO).validate().unwrap();
    }

    #[test]
    fn version_tag_has_format_and_schema() {
        let config = Namespace::Words.config().with_schema_version(3);
        assert_eq!(
            config.version_tag(),
            format!("{}.3", crate::codec::FORMAT_VERSION)
        );
    }
}
