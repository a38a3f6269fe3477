//! The servers' own resource use while a load runs: CPU time (user + system) consumed by
//! Postgres and by Redis, and their peak memory. Sampled every [`SAMPLE_INTERVAL`] through
//! `provision`'s [`Sampler`], which knows where and how the servers run (a process tree read
//! from `/proc`, a container's statistics from the Docker engine); external servers are not
//! measured.
//!
//! Must never: report a number it did not read (what cannot be measured is said, not
//! estimated), or sample without bound.

use std::time::Duration;

use crate::provision::{Reading, Sampler};

/// What a load run's servers used, or why it was not measured.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerUsage {
    Measured {
        postgres_cpu_ms: f64,
        redis_cpu_ms: f64,
        postgres_peak_bytes: u64,
        redis_peak_bytes: u64,
        /// How memory was read, for the report ("RSS of the process tree", "cgroup anon").
        memory_source: &'static str,
    },
    NotMeasured {
        reason: String,
    },
}

/// How often the peak memory is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Samples the servers from `baseline` until `stop` resolves (at most `limit`), then reads
/// them once more: CPU used since the baseline, and the peak memory seen.
pub async fn measure_until(
    sampler: &Sampler,
    baseline: (Reading, Reading),
    stop: impl std::future::Future<Output = ()>,
    limit: Duration,
) -> ServerUsage {
    let mut peak = (baseline.0.memory_bytes, baseline.1.memory_bytes);
    let mut failure = None;
    let sampling = async {
        let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
        loop {
            ticker.tick().await;
            match sampler.read().await {
                Ok((pg, rd)) => {
                    peak = (peak.0.max(pg.memory_bytes), peak.1.max(rd.memory_bytes));
                }
                Err(e) => {
                    failure = Some(e);
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = stop => {}
        () = sampling => {}
        () = tokio::time::sleep(limit) => {}
    }
    if let Some(reason) = failure {
        return ServerUsage::NotMeasured { reason };
    }
    match sampler.read().await {
        Ok((pg, rd)) => ServerUsage::Measured {
            postgres_cpu_ms: pg.cpu_ns.saturating_sub(baseline.0.cpu_ns) as f64 / 1e6,
            redis_cpu_ms: rd.cpu_ns.saturating_sub(baseline.1.cpu_ns) as f64 / 1e6,
            postgres_peak_bytes: peak.0.max(pg.memory_bytes),
            redis_peak_bytes: peak.1.max(rd.memory_bytes),
            memory_source: sampler.memory_source(),
        },
        Err(reason) => ServerUsage::NotMeasured { reason },
    }
}
