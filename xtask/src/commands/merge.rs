//! `cargo xtask perf merge`: the one record of a commit from its shards' records (`perf --shard
//! k/n`), checked by `shard::merge` (one commit, machine class and partition; no shard missing
//! or twice; covering the partition) and written atomically to `<out>/runs/<sha>.json`
//! (`<out>/filtered/` when the shards split a `--filter` run). A failing check writes nothing.

use anyhow::{Context, Result};

use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::MergeFlags;
use crate::record;
use crate::render::short_sha;
use crate::shard;

/// Reads every record, merges them and stores the result.
pub fn run(config: &Config, flags: &MergeFlags) -> Result<Outcome> {
    let mut records = Vec::with_capacity(flags.records.len());
    for path in &flags.records {
        let record = record::read_record(path)?
            .with_context(|| format!("{}: no such record.\n  fix: pass the path of each shard's record (`<out>/filtered/<sha>.json` of its `perf --shard k/n` run)", path.display()))?;
        records.push((path.display().to_string(), record));
    }
    let merged = shard::merge(&records)?;
    // The shards of a `--filter` run measured part of the suites: never a baseline candidate.
    let filter = records[0].1.shard.as_ref().and_then(|s| s.filter.clone());
    let dir = match &filter {
        Some(_) => config.layout.out_dir.join("filtered"),
        None => config.layout.runs_dir(),
    };
    let path = record::store_record(&dir, &merged)?;
    println!(
        "merged {} shards of {} ({} metrics{}): {}",
        records.len(),
        short_sha(&merged.commit),
        merged.metrics.len(),
        filter.map_or_else(String::new, |f| format!(", of --filter {f:?}")),
        path.display()
    );
    Ok(Outcome::Success)
}
