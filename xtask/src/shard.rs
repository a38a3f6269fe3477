//! Sharding a run over several machines (pure): `perf --shard k/n` measures one part of the
//! selection, `perf merge` makes the commit's one record from every part.
//!
//! The partition is deterministic: every shard job lists the same selection and computes the
//! same assignment of units (a benchmark, scenario, plan or load mix, as `--list` names them)
//! to shards, each the largest remaining unit first onto the least loaded shard (LPT), so that
//! shards take about the same time. A unit's cost is its measuring time in the base's record
//! when that record has it, else an estimate per suite and profile; ties go by a stable hash
//! of the name. A shard's record carries its part and a digest of the whole partition; merging
//! checks that the parts are of one commit, one machine class and one partition, that none is
//! missing or given twice, and that together they cover the partition exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::compare::fingerprint_mismatches;
use crate::record::{Profile, RunRecord, ShardInfo, Suite, is_at_or_below};

/// `--shard k/n`: the k-th of n shards, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fix = "write it as k/n with 1 <= k <= n, e.g. 2/3 for the second of three shards";
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not k/n: {fix}"))?;
        let parse = |part: &str| part.trim().parse::<u32>().ok();
        match (parse(k), parse(n)) {
            (Some(index), Some(count)) if index >= 1 && index <= count => {
                Ok(ShardSpec { index, count })
            }
            _ => Err(format!("{text:?} is not a shard: {fix}")),
        }
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The units of each shard (index 0 is shard 1), each sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub shards: Vec<Vec<String>>,
    /// The estimated seconds of each shard, in the same order.
    pub seconds: Vec<f64>,
}

impl Partition {
    /// The record's description of shard `spec` of a run of `filter` (`None`: the whole run):
    /// its units and the partition's digest.
    pub fn info(&self, spec: ShardSpec, filter: Option<&str>) -> ShardInfo {
        ShardInfo {
            index: spec.index,
            count: spec.count,
            units: self.shards[spec.index as usize - 1].clone(),
            partition: partition_digest(self.shards.iter().enumerate().flat_map(
                |(shard, units)| {
                    units
                        .iter()
                        .map(move |unit| (unit.as_str(), shard as u32 + 1))
                },
            )),
            filter: filter.map(str::to_owned),
        }
    }
}

/// Splits `units` into `count` shards, balanced by `cost` (seconds; see the module's first
/// lines). Deterministic: the same units and costs give the same partition in every job.
pub fn partition(units: &[String], count: u32, cost: impl Fn(&str) -> f64) -> Partition {
    let count = count.max(1) as usize;
    let mut ordered: Vec<(&String, f64)> = units
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|unit| (unit, cost(unit).max(0.0)))
        .collect();
    ordered.sort_by(|(a, cost_a), (b, cost_b)| {
        cost_b
            .total_cmp(cost_a)
            .then_with(|| stable_hash(a).cmp(&stable_hash(b)))
            .then_with(|| a.cmp(b))
    });
    let mut shards = vec![Vec::new(); count];
    let mut seconds = vec![0.0_f64; count];
    for (unit, cost) in ordered {
        let lightest = (0..count)
            .min_by(|&a, &b| seconds[a].total_cmp(&seconds[b]).then(a.cmp(&b)))
            .expect("at least one shard");
        shards[lightest].push(unit.clone());
        seconds[lightest] += cost;
    }
    for shard in &mut shards {
        shard.sort();
    }
    Partition { shards, seconds }
}

/// A unit's cost when the base's record does not say: about how long it takes to measure on a
/// 2-core runner (criterion's warm-up and measurement per profile, a Gungraun benchmark under
/// Callgrind, a scenario's run and its leak check, the load run's length).
pub fn estimated_seconds(unit: &str, profile: Profile) -> f64 {
    let quick = profile == Profile::Quick;
    match Suite::of_metric(unit) {
        Some(Suite::WallTime) if quick => 1.5,
        Some(Suite::WallTime) => 8.0,
        Some(Suite::Instructions) => 4.0,
        Some(Suite::IoCounts) => 0.5,
        Some(Suite::Memory) => 1.5,
        Some(Suite::Plans) => 0.2,
        Some(Suite::Load) if quick => 5.0,
        Some(Suite::Load) => 22.0,
        None => 1.0,
    }
}

/// A hash of a name that is the same on every machine and every build (unlike std's).
fn stable_hash(name: &str) -> [u8; 8] {
    let digest = Sha256::digest(name.as_bytes());
    digest[..8].try_into().expect("8 bytes")
}

/// The digest of an assignment of units to shards, whatever the order it is given in.
fn partition_digest<'a>(assignment: impl Iterator<Item = (&'a str, u32)>) -> String {
    let sorted: BTreeMap<&str, u32> = assignment.collect();
    let mut hasher = Sha256::new();
    for (unit, shard) in sorted {
        hasher.update(format!("{unit}\t{shard}\n").as_bytes());
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why shard records cannot be merged: each names the records and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error(
        "no records to merge.\n  fix: pass every shard's record (`perf --shard k/n` writes it under <out>/filtered/)"
    )]
    Nothing,
    #[error(
        "{0} is not a shard's record (it has no `shard`).\n  fix: merge only the records `perf --shard k/n` wrote"
    )]
    NotAShard(String),
    #[error(
        "the shards are of different commits: {first} is {first_commit}, {other} is {other_commit}.\n  fix: merge the shards of one run (one commit)"
    )]
    DifferentCommits {
        first: String,
        first_commit: String,
        other: String,
        other_commit: String,
    },
    #[error(
        "{other} was measured elsewhere than {first}: {mismatches}.\n  fix: run every shard on the same machine class, toolchain and service versions"
    )]
    DifferentMachines {
        first: String,
        other: String,
        mismatches: String,
    },
    /// Each side: the record's name, its shard and its partition's digest.
    #[error(
        "the shards split the run differently: {first}, {other}.\n  fix: merge the shards of one run; when the run's selection or the base's record changed between its jobs, run every shard again"
    )]
    DifferentPartitions { first: String, other: String },
    #[error(
        "shard {shard} is given twice: {first} and {second}.\n  fix: pass each shard's record once"
    )]
    Duplicated {
        shard: String,
        first: String,
        second: String,
    },
    #[error(
        "shard {missing} of this run is missing (given: {given}).\n  fix: run that shard again (its job failed or its artifact was not downloaded) and pass its record too"
    )]
    Missing { missing: String, given: String },
    /// Each side: the record's name and the base it was timed against.
    #[error(
        "the shards timed wall time side by side with different bases: {first}, {other}.\n  fix: merge the shards of one run (one base)"
    )]
    DifferentPairedBases { first: String, other: String },
    #[error(
        "{record} (shard {shard}) holds {name}, which is not in its part of the partition.\n  fix: merge records as `perf --shard` wrote them, unedited"
    )]
    Outside {
        record: String,
        shard: String,
        name: String,
    },
    #[error(
        "the shards' parts do not cover the partition they name ({partition}).\n  fix: merge records as `perf --shard` wrote them, unedited"
    )]
    NotCovering { partition: String },
}

/// One record of the commit from its shards' records (each with the name it is known by, for
/// errors): the metrics, notes and details of every part, the phases prefixed with their
/// shard, no `shard`. Every check of the module's first lines comes first; a failing one is
/// an error and nothing is made.
pub fn merge(records: &[(String, RunRecord)]) -> Result<RunRecord, MergeError> {
    let (first_name, first) = records.first().ok_or(MergeError::Nothing)?;
    let first_shard = shard_of(first_name, first)?;
    let mut by_index: BTreeMap<u32, &str> = BTreeMap::new();
    for (name, record) in records {
        let shard = shard_of(name, record)?;
        check_alike(first_name, first, first_shard, name, record, shard)?;
        if let Some(earlier) = by_index.insert(shard.index, name) {
            return Err(MergeError::Duplicated {
                shard: shard_label(shard),
                first: earlier.to_owned(),
                second: name.clone(),
            });
        }
    }
    if let Some(missing) = (1..=first_shard.count).find(|i| !by_index.contains_key(i)) {
        return Err(MergeError::Missing {
            missing: format!("{missing}/{}", first_shard.count),
            given: by_index
                .iter()
                .map(|(index, name)| format!("{index}/{} {name}", first_shard.count))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    check_parts(records)?;
    check_paired_bases(records)?;
    Ok(merged(records))
}

fn shard_of<'a>(name: &str, record: &'a RunRecord) -> Result<&'a ShardInfo, MergeError> {
    record
        .shard
        .as_ref()
        .ok_or_else(|| MergeError::NotAShard(name.to_owned()))
}

fn shard_label(shard: &ShardInfo) -> String {
    format!("{}/{}", shard.index, shard.count)
}

/// The checks between the first record and another: commit, machine, partition.
fn check_alike(
    first_name: &str,
    first: &RunRecord,
    first_shard: &ShardInfo,
    name: &str,
    record: &RunRecord,
    shard: &ShardInfo,
) -> Result<(), MergeError> {
    if record.commit != first.commit {
        return Err(MergeError::DifferentCommits {
            first: first_name.to_owned(),
            first_commit: first.commit.clone(),
            other: name.to_owned(),
            other_commit: record.commit.clone(),
        });
    }
    let mut mismatches = fingerprint_mismatches(&first.environment, &record.environment);
    if record.profile != first.profile {
        mismatches.push(format!(
            "profile: {} {}, {name} {}",
            first_name, first.profile, record.profile
        ));
    }
    if !mismatches.is_empty() {
        return Err(MergeError::DifferentMachines {
            first: first_name.to_owned(),
            other: name.to_owned(),
            mismatches: mismatches
                .join("; ")
                .replace("base ", &format!("{first_name} "))
                .replace("head ", &format!("{name} ")),
        });
    }
    if shard.count != first_shard.count
        || shard.partition != first_shard.partition
        || shard.filter != first_shard.filter
    {
        let describe = |name: &str, shard: &ShardInfo| {
            format!(
                "{name} is shard {} of partition {} of {}",
                shard_label(shard),
                shard.partition,
                shard
                    .filter
                    .as_ref()
                    .map_or_else(|| "the whole run".to_owned(), |f| format!("--filter {f:?}"))
            )
        };
        return Err(MergeError::DifferentPartitions {
            first: describe(first_name, first_shard),
            other: describe(name, shard),
        });
    }
    Ok(())
}

/// Every metric of a part lies in that part's units, and the parts make the partition.
fn check_parts(records: &[(String, RunRecord)]) -> Result<(), MergeError> {
    let mut assignment = Vec::new();
    for (name, record) in records {
        let shard = record.shard.as_ref().expect("checked");
        if let Some(metric) = record.metrics.iter().find(|metric| {
            !shard
                .units
                .iter()
                .any(|unit| is_at_or_below(&metric.name, unit))
        }) {
            return Err(MergeError::Outside {
                record: name.clone(),
                shard: shard_label(shard),
                name: metric.name.clone(),
            });
        }
        assignment.extend(shard.units.iter().map(|unit| (unit.as_str(), shard.index)));
    }
    let partition = &records[0].1.shard.as_ref().expect("checked").partition;
    let units = assignment.len();
    let distinct: BTreeSet<&str> = assignment.iter().map(|(unit, _)| *unit).collect();
    if distinct.len() != units || partition_digest(assignment.into_iter()) != *partition {
        return Err(MergeError::NotCovering {
            partition: partition.clone(),
        });
    }
    Ok(())
}

/// The shards that timed wall time side by side did so against one base.
fn check_paired_bases(records: &[(String, RunRecord)]) -> Result<(), MergeError> {
    let mut paired = records
        .iter()
        .filter_map(|(name, record)| Some((name, &record.paired.as_ref()?.base)));
    let Some((first, first_base)) = paired.next() else {
        return Ok(());
    };
    match paired.find(|(_, base)| base != &first_base) {
        Some((other, other_base)) => Err(MergeError::DifferentPairedBases {
            first: format!("{first} against {first_base}"),
            other: format!("{other} against {other_base}"),
        }),
        None => Ok(()),
    }
}

/// The checked parts as one record.
fn merged(records: &[(String, RunRecord)]) -> RunRecord {
    let mut ordered: Vec<&RunRecord> = records.iter().map(|(_, record)| record).collect();
    ordered.sort_by_key(|record| record.shard.as_ref().map(|shard| shard.index));
    let mut merged = ordered[0].clone();
    merged.shard = None;
    merged.acceptance = None;
    merged.metrics.clear();
    merged.phases.clear();
    merged.notes.clear();
    merged.details = Default::default();
    merged.paired = None;
    for record in ordered {
        let shard = shard_label(record.shard.as_ref().expect("checked"));
        merged.dirty |= record.dirty;
        merged.created_at = merged.created_at.max(record.created_at);
        merged.metrics.extend(record.metrics.iter().cloned());
        merged
            .phases
            .extend(record.phases.iter().map(|phase| crate::record::Phase {
                name: format!("shard {shard}: {}", phase.name),
                seconds: phase.seconds,
            }));
        for note in &record.notes {
            if !merged.notes.contains(note) {
                merged.notes.push(note.clone());
            }
        }
        let details = &record.details;
        merged.details.statements.extend(details.statements.clone());
        merged.details.plans.extend(details.plans.clone());
        merged.details.functions.extend(details.functions.clone());
        merged.details.calls.extend(details.calls.clone());
        if let Some(paired) = &record.paired {
            let samples = &mut merged
                .paired
                .get_or_insert_with(|| crate::record::PairedRounds {
                    base: paired.base.clone(),
                    samples: BTreeMap::new(),
                })
                .samples;
            samples.extend(paired.samples.clone());
        }
    }
    merged.metrics.sort_by(|a, b| a.name.cmp(&b.name));
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Metric, MetricKind, TestRecord, Unit};

    fn units() -> Vec<String> {
        [
            "io/due_cards",
            "io/dashboard_warm",
            "io/dashboard_warm_twice",
            "mem/due_cards",
            "plans/due_cards_first_page",
            "plans/word_by_id",
            "load/mixed",
            "wall_time/cache/l1_hit",
            "wall_time/query/due_cards",
            "wall_time/import/bulk_10k",
            "instructions/query/due_cards_row_decode/page_of_50",
            "instructions/review/sm2_schedule/lapse",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn count(name: &str, value: f64) -> Metric {
        Metric {
            name: name.to_owned(),
            suite: Suite::of_metric(name).expect("a suite's name"),
            unit: Unit::Count,
            kind: MetricKind::Deterministic,
            value,
            interval: None,
            samples: Vec::new(),
            shape: None,
        }
    }

    /// A whole run's metrics: two below each unit.
    fn whole_metrics() -> Vec<Metric> {
        let mut metrics: Vec<Metric> = units()
            .iter()
            .enumerate()
            .flat_map(|(i, unit)| {
                [
                    count(&format!("{unit}/first"), i as f64),
                    count(&format!("{unit}/second"), 100.0 + i as f64),
                ]
            })
            .collect();
        metrics.sort_by(|a, b| a.name.cmp(&b.name));
        metrics
    }

    /// The records of a run split into `count` shards, each holding its part of
    /// [`whole_metrics`].
    fn shard_records(commit: &str, count: u32) -> Vec<(String, RunRecord)> {
        let partition = partition(&units(), count, |unit| {
            estimated_seconds(unit, Profile::Quick)
        });
        (1..=count)
            .map(|index| {
                let info = partition.info(ShardSpec { index, count }, None);
                let metrics = whole_metrics()
                    .into_iter()
                    .filter(|metric| {
                        info.units
                            .iter()
                            .any(|unit| is_at_or_below(&metric.name, unit))
                    })
                    .collect();
                let mut record = TestRecord::new(commit).metrics(metrics).build();
                record.phases.push(crate::record::Phase {
                    name: "head: seed".to_owned(),
                    seconds: 10.0,
                });
                record.shard = Some(info);
                (format!("shard-{index}.json"), record)
            })
            .collect()
    }

    #[test]
    fn a_shard_is_k_of_n_and_anything_else_is_refused_with_the_form() {
        assert_eq!("2/3".parse(), Ok(ShardSpec { index: 2, count: 3 }));
        assert_eq!("1/1".parse(), Ok(ShardSpec { index: 1, count: 1 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2", ""] {
            let error = bad.parse::<ShardSpec>().unwrap_err();
            assert!(error.contains("k/n with 1 <= k <= n"), "{bad}: {error}");
        }
        assert_eq!(ShardSpec { index: 2, count: 3 }.to_string(), "2/3");
    }

    #[test]
    fn the_partition_is_disjoint_covering_deterministic_and_balanced_by_cost() {
        let units = units();
        let cost = |unit: &str| estimated_seconds(unit, Profile::Full);
        let three = partition(&units, 3, cost);
        let mut reversed = units.clone();
        reversed.reverse();
        assert_eq!(partition(&reversed, 3, cost), three, "order of listing");
        let all: Vec<&String> = three.shards.iter().flatten().collect();
        assert_eq!(all.len(), units.len());
        assert_eq!(
            all.iter().copied().collect::<BTreeSet<_>>(),
            units.iter().collect()
        );
        // LPT: the load run (22 s) alone outweighs the rest of one third; no shard is more than
        // the largest unit above the mean.
        let mean = three.seconds.iter().sum::<f64>() / 3.0;
        let slowest = three.seconds.iter().copied().fold(0.0, f64::max);
        assert!(slowest <= mean + 22.0, "{three:?}");
        assert!(three.shards.iter().all(|shard| !shard.is_empty()));
        // Equal costs: spread evenly, by a hash of the name rather than the listing's order.
        let even = partition(&units, 4, |_| 1.0);
        assert!(even.shards.iter().all(|shard| shard.len() == 3), "{even:?}");
        // One shard holds everything.
        assert_eq!(partition(&units, 1, cost).shards[0].len(), units.len());
    }

    #[test]
    fn every_shard_names_the_same_partition_and_another_split_another() {
        let three = partition(&units(), 3, |unit| estimated_seconds(unit, Profile::Quick));
        let digests: BTreeSet<String> = (1..=3)
            .map(|index| three.info(ShardSpec { index, count: 3 }, None).partition)
            .collect();
        assert_eq!(digests.len(), 1);
        let other = partition(&units(), 3, |_| 1.0);
        assert_ne!(other.shards, three.shards);
        assert_ne!(
            other.info(ShardSpec { index: 1, count: 3 }, None).partition,
            three.info(ShardSpec { index: 1, count: 3 }, None).partition
        );
    }

    #[test]
    fn merged_shards_hold_exactly_the_whole_runs_metrics_in_any_order() {
        let mut records = shard_records("c0ffee", 3);
        records.reverse();
        let merged = merge(&records).unwrap();
        assert_eq!(merged.metrics, whole_metrics());
        assert_eq!(merged.shard, None);
        assert_eq!(merged.commit, "c0ffee");
        let phases: Vec<&str> = merged.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            phases,
            [
                "shard 1/3: head: seed",
                "shard 2/3: head: seed",
                "shard 3/3: head: seed"
            ]
        );
    }

    #[test]
    fn side_by_side_rounds_of_every_shard_are_kept_and_must_share_one_base() {
        let mut records = shard_records("c0ffee", 2);
        for (k, (_, record)) in records.iter_mut().enumerate() {
            record.paired = Some(crate::record::PairedRounds {
                base: "ba5e".to_owned(),
                samples: BTreeMap::from([(
                    format!("wall_time/group/bench_{k}"),
                    crate::record::RoundSamples {
                        base: vec![1.0, 2.0],
                        head: vec![1.5, 2.5],
                    },
                )]),
            });
        }
        let merged = merge(&records).unwrap().paired.unwrap();
        assert_eq!(merged.base, "ba5e");
        assert_eq!(
            merged.samples.keys().collect::<Vec<_>>(),
            ["wall_time/group/bench_0", "wall_time/group/bench_1"]
        );
        records[1].1.paired.as_mut().unwrap().base = "0ther".to_owned();
        let error = merge(&records).unwrap_err().to_string();
        assert!(
            error.contains("shard-1.json against ba5e")
                && error.contains("shard-2.json against 0ther"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_duplicated_or_foreign_shard_is_an_error_naming_it() {
        let records = shard_records("c0ffee", 3);
        let missing = merge(&records[..2]).unwrap_err();
        assert!(matches!(&missing, MergeError::Missing { missing, .. } if missing == "3/3"));
        assert!(
            missing
                .to_string()
                .contains("shard 3/3 of this run is missing"),
            "{missing}"
        );

        let twice = [records.clone(), vec![records[1].clone()]].concat();
        let error = merge(&twice).unwrap_err();
        assert!(
            error.to_string().contains("shard 2/3 is given twice"),
            "{error}"
        );

        let mut other_commit = records.clone();
        other_commit[2].1.commit = "decade".to_owned();
        let error = merge(&other_commit).unwrap_err();
        assert!(
            matches!(error, MergeError::DifferentCommits { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("shard-3.json is decade"),
            "{error}"
        );

        let mut elsewhere = records.clone();
        elsewhere[1].1.environment.machine_class = "linux-aarch64-4c-1".to_owned();
        let error = merge(&elsewhere).unwrap_err().to_string();
        assert!(
            error.contains("shard-2.json was measured elsewhere than shard-1.json")
                && error.contains("machine class")
                && error.contains("linux-aarch64-4c-1"),
            "{error}"
        );

        let mut whole = records.clone();
        whole[0].1.shard = None;
        let error = merge(&whole).unwrap_err();
        assert_eq!(error, MergeError::NotAShard("shard-1.json".to_owned()));

        let other_split = shard_records("c0ffee", 2);
        let mixed = [records[..2].to_vec(), other_split[1..].to_vec()].concat();
        let error = merge(&mixed).unwrap_err();
        assert!(
            matches!(error, MergeError::DifferentPartitions { .. }),
            "{error}"
        );

        let mut edited = records.clone();
        edited[0].1.metrics.push(count("io/not_its_own/first", 1.0));
        let error = merge(&edited).unwrap_err();
        assert!(matches!(error, MergeError::Outside { .. }), "{error}");

        let mut lost_unit = records;
        lost_unit[2].1.shard.as_mut().unwrap().units.pop();
        lost_unit[2].1.metrics.clear();
        let error = merge(&lost_unit).unwrap_err();
        assert!(matches!(error, MergeError::NotCovering { .. }), "{error}");
        assert_eq!(merge(&[]).unwrap_err(), MergeError::Nothing);
    }
}
