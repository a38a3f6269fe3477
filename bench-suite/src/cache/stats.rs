//! Counters of one cache namespace (where each lookup was served from, what was loaded, how
//! many Redis commands were sent, what failed) and their cheap, serialisable snapshot.
//!
//! This module must never block or allocate on the counting path: counters are relaxed
//! atomics, read only by [`Counters::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The live counters a cache bumps.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub l1_hits: AtomicU64,
    pub l1_negative_hits: AtomicU64,
    pub l2_hits: AtomicU64,
    pub l2_negative_hits: AtomicU64,
    pub coalesced: AtomicU64,
    pub misses: AtomicU64,
    pub loads: AtomicU64,
    pub negative_fills: AtomicU64,
    pub invalidations: AtomicU64,
    pub errors: AtomicU64,
    pub redis_commands: AtomicU64,
    pub redis_round_trips: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn bump(counter: &AtomicU64) {
        Self::add(counter, 1);
    }

    pub fn snapshot(&self) -> CacheStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            l1_hits: get(&self.l1_hits),
            l1_negative_hits: get(&self.l1_negative_hits),
            l2_hits: get(&self.l2_hits),
            l2_negative_hits: get(&self.l2_negative_hits),
            coalesced: get(&self.coalesced),
            misses: get(&self.misses),
            loads: get(&self.loads),
            negative_fills: get(&self.negative_fills),
            invalidations: get(&self.invalidations),
            errors: get(&self.errors),
            redis_commands: get(&self.redis_commands),
            redis_round_trips: get(&self.redis_round_trips),
        }
    }
}

/// A snapshot of one namespace's counters. Per key looked up, exactly one of `l1_hits`,
/// `l1_negative_hits`, `l2_hits`, `l2_negative_hits`, `coalesced`, `misses` is counted (or the
/// lookup failed, see `errors`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Served a value from L1.
    pub l1_hits: u64,
    /// Served "missing" from L1 (a cached negative answer).
    pub l1_negative_hits: u64,
    /// Served a value from Redis.
    pub l2_hits: u64,
    /// Served "missing" from Redis.
    pub l2_negative_hits: u64,
    /// Served by waiting for another caller's in-flight lookup of the same key (no I/O).
    pub coalesced: u64,
    /// Keys in neither level: handed to a loader.
    pub misses: u64,
    /// Loader calls (a batch loader call counts once, whatever the number of keys).
    pub loads: u64,
    /// Keys a loader found nothing for, now cached as "missing".
    pub negative_fills: u64,
    /// Keys invalidated.
    pub invalidations: u64,
    /// Operations (calls) that returned an error.
    pub errors: u64,
    /// Redis commands sent (GET, MGET, SET, DEL, EVALSHA; a pipeline of n SETs counts n, an
    /// EVALSHA counts 1 whatever its script runs), including ones that failed or timed out.
    pub redis_commands: u64,
    /// Round trips to Redis: one per command sent alone, one per pipeline (a pipeline of n
    /// `SET`s is n commands and 1 round trip), including ones that failed or timed out.
    #[serde(default)]
    pub redis_round_trips: u64,
}

impl CacheStats {
    /// Lookups answered without a loader (from L1, Redis, or another caller's lookup), in
    /// per mille of all lookups; `None` before any lookup.
    pub fn hit_permille(&self) -> Option<u64> {
        let hits = self.l1_hits
            + self.l1_negative_hits
            + self.l2_hits
            + self.l2_negative_hits
            + self.coalesced;
        let lookups = hits + self.misses;
        (lookups > 0).then(|| hits * 1000 / lookups)
    }

    /// Lookups served a cached "missing", from either level.
    pub fn negative_hits(&self) -> u64 {
        self.l1_negative_hits + self.l2_negative_hits
    }

    /// Every counter by name, for reports (e.g. a scenario's observations).
    pub fn fields(&self) -> [(&'static str, u64); 12] {
        [
            ("l1_hits", self.l1_hits),
            ("l1_negative_hits", self.l1_negative_hits),
            ("l2_hits", self.l2_hits),
            ("l2_negative_hits", self.l2_negative_hits),
            ("coalesced", self.coalesced),
            ("misses", self.misses),
            ("loads", self.loads),
            ("negative_fills", self.negative_fills),
            ("invalidations", self.invalidations),
            ("errors", self.errors),
            ("redis_commands", self.redis_commands),
            ("redis_round_trips", self.redis_round_trips),
        ]
    }

    /// What happened since `earlier` (a snapshot of the same cache).
    pub fn since(&self, earlier: &CacheStats) -> CacheStats {
        CacheStats {
            l1_hits: self.l1_hits.saturating_sub(earlier.l1_hits),
            l1_negative_hits: self
                .l1_negative_hits
                .saturating_sub(earlier.l1_negative_hits),
            l2_hits: self.l2_hits.saturating_sub(earlier.l2_hits),
            l2_negative_hits: self
                .l2_negative_hits
                .saturating_sub(earlier.l2_negative_hits),
            coalesced: self.coalesced.saturating_sub(earlier.coalesced),
            misses: self.misses.saturating_sub(earlier.misses),
            loads: self.loads.saturating_sub(earlier.loads),
            negative_fills: self.negative_fills.saturating_sub(earlier.negative_fills),
            invalidations: self.invalidations.saturating_sub(earlier.invalidations),
            errors: self.errors.saturating_sub(earlier.errors),
            redis_commands: self.redis_commands.saturating_sub(earlier.redis_commands),
            redis_round_trips: self
                .redis_round_trips
                .saturating_sub(earlier.redis_round_trips),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ratio_counts_every_lookup_answered_without_a_loader() {
        assert_eq!(CacheStats::default().hit_permille(), None);
        let stats = CacheStats {
            l1_hits: 50,
            l2_negative_hits: 10,
            coalesced: 15,
            misses: 25,
            ..CacheStats::default()
        };
        assert_eq!(stats.hit_permille(), Some(750));
    }

    #[test]
    fn snapshot_reflects_bumps_and_deltas() {
        let counters = Counters::default();
        Counters::bump(&counters.l1_hits);
        Counters::add(&counters.redis_commands, 3);
        Counters::bump(&counters.l2_negative_hits);
        Counters::bump(&counters.l1_negative_hits);
        let before = counters.snapshot();
        assert_eq!(before.l1_hits, 1);
        assert_eq!(before.redis_commands, 3);
        assert_eq!(before.negative_hits(), 2);
        Counters::bump(&counters.loads);
        Counters::bump(&counters.misses);
        let delta = counters.snapshot().since(&before);
        assert_eq!(
            delta,
            CacheStats {
                loads: 1,
                misses: 1,
                ..CacheStats::default()
            }
        );
    }

    #[test]
    fn fields_name_every_counter_and_serialise() {
        let stats = CacheStats {
            l1_hits: 1,
            l1_negative_hits: 2,
            l2_hits: 3,
            l2_negative_hits: 4,
            coalesced: 5,
            misses: 6,
            loads: 7,
            negative_fills: 8,
            invalidations: 9,
            errors: 10,
            redis_commands: 11,
            redis_round_trips: 12,
        };
        let fields = stats.fields();
        let values: Vec<u64> = fields.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, (1..=12).collect::<Vec<_>>());
        let json = serde_json::to_value(stats).unwrap();
        for (name, value) in fields {
            assert_eq!(json[name], value, "{name}");
        }
        let back: CacheStats = serde_json::from_value(json).unwrap();
        assert_eq!(back, stats);
    }
}
