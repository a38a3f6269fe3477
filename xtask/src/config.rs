//! The harness configuration: `[workspace.metadata.perf]` of the root `Cargo.toml`, the
//! environment's image overrides and the flags, merged into one [`Config`] value. Unknown keys
//! are errors that name the key and the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(feature = "harness")]
use crate::provision::ImageChoice;

/// The git branch that stores the target branch's records unless `baseline_branch` says
/// otherwise.
pub const DEFAULT_BASELINE_BRANCH: &str = "perf-baselines";

/// `[workspace.metadata.perf]`, exactly as written (every key optional, no unknown keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerfMetadata {
    /// The branch whose records are baselines (default `main`).
    pub target_branch: String,
    /// The git branch that stores the target branch's records (default `perf-baselines`).
    pub baseline_branch: String,
    /// How many first-parent ancestors of the merge-base are searched for a stored record
    /// before the merge-base itself is measured (default 20).
    pub max_ancestor_distance: u32,
    /// Name of the class of machine records are comparable within; `auto` derives it from the
    /// OS, architecture, core count and CPU model.
    pub machine_class: String,
    /// What every run measures: metric name patterns, as `--filter` takes them (`["io/",
    /// "plans/"]`); empty (the default) measures everything. A run under this selection is
    /// complete for the configuration (its records are stored as baselines, and compared only
    /// with records of the same selection: it is part of the config hash); `--filter` narrows
    /// one run further and makes it a filtered run.
    pub suites: Vec<String>,
    /// Metrics (names, or prefixes ending in `/`) that were removed on purpose: a base's metric
    /// matching one of these that is missing in head is not a regression.
    pub retired: Vec<String>,
    pub images: Images,
    pub seed: Seed,
    pub thresholds: Thresholds,
    /// How `--paired` judges its wall-time rows together and when it measures more rounds.
    pub paired: PairedConfig,
    /// Absolute limits (`[[workspace.metadata.perf.budgets]]`).
    pub budgets: Vec<Budget>,
    /// How many jobs of the workflows' matrix measure a run, each `perf --shard k/n`, merged
    /// by a last job (default 1, at most [`MAX_SHARDS`]). Not part of what makes records
    /// comparable: a merged record is the unsharded run's.
    pub shards: u32,
}

/// The most shards `shards` may name (GitHub's matrix allows 256 jobs; each shard seeds its
/// own database, so past a few dozen the seed dominates).
pub const MAX_SHARDS: u32 = 64;

impl Default for PerfMetadata {
    fn default() -> Self {
        Self {
            target_branch: "main".to_owned(),
            baseline_branch: DEFAULT_BASELINE_BRANCH.to_owned(),
            max_ancestor_distance: 20,
            machine_class: "auto".to_owned(),
            suites: Vec::new(),
            retired: Vec::new(),
            images: Images::default(),
            seed: Seed::default(),
            thresholds: Thresholds::default(),
            paired: PairedConfig::default(),
            budgets: Vec::new(),
            shards: 1,
        }
    }
}

/// Default images of the docker mode (the official ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    pub postgres: String,
    pub redis: String,
}

impl Default for Images {
    fn default() -> Self {
        Self {
            postgres: "postgres:16".to_owned(),
            redis: "redis:7".to_owned(),
        }
    }
}

/// Size of the deterministic seed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Seed {
    pub users: u32,
    pub words: u32,
    pub cards: u32,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            users: 1_000,
            words: 20_000,
            cards: 100_000,
        }
    }
}

/// Relative changes (percent) beyond which a deterministic metric is a regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Instruction counts (Gungraun).
    pub instructions_pct: f64,
    /// SQL statements, rows and Redis commands per scenario (0: any growth is a regression).
    pub io_counts_pct: f64,
    /// Wall time measured side by side (`--paired`): the smallest significant change, in
    /// percent, that is a regression (or an improvement). Wall time from separate runs is never
    /// judged.
    pub wall_time_pct: f64,
    /// Per benchmark: a metric's name, or a prefix of names ending in `/`, to its threshold in
    /// percent. The longest match wins over the kind's threshold.
    pub metrics: std::collections::BTreeMap<String, f64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            instructions_pct: 1.0,
            io_counts_pct: 0.0,
            wall_time_pct: 5.0,
            metrics: std::collections::BTreeMap::new(),
        }
    }
}

impl Thresholds {
    /// The configured per-benchmark threshold of `metric`, if one matches: the entry named
    /// exactly, or else the longest prefix entry (ending in `/`) the name starts with.
    pub fn for_metric(&self, metric: &str) -> Option<(&str, f64)> {
        if let Some((key, pct)) = self.metrics.get_key_value(metric) {
            return Some((key.as_str(), *pct));
        }
        self.metrics
            .iter()
            .filter(|(key, _)| key.ends_with('/') && metric.starts_with(key.as_str()))
            .max_by_key(|(key, _)| key.len())
            .map(|(key, pct)| (key.as_str(), *pct))
    }
}

/// `[workspace.metadata.perf.paired]`: how the paired rows of one `--paired` run are judged as
/// a family, and how far the rounds of undecided rows are extended (`baselines/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairedConfig {
    /// `holm` (default), `hochberg`, `benjamini_hochberg` or `per_row`.
    pub family: crate::stats::FamilyControl,
    /// A row whose raw p-value is above this is settled as unchanged (default 0.3).
    pub undecided_p: f64,
    /// The most rounds an undecided benchmark is measured in, the first ones included
    /// (default 20; at most `--paired-rounds` turns adaptive rounds off).
    pub max_rounds: u32,
    /// Extra rounds are measured this many at a time (default 5).
    pub batch: u32,
    /// No batch of extra rounds starts after this many seconds of extra rounds (default 600).
    pub max_extra_seconds: u64,
}

impl Default for PairedConfig {
    fn default() -> Self {
        let adaptive = crate::stats::AdaptiveRounds::default();
        Self {
            family: crate::stats::FamilyControl::default(),
            undecided_p: adaptive.undecided_p,
            max_rounds: adaptive.max_rounds as u32,
            batch: adaptive.batch as u32,
            max_extra_seconds: 600,
        }
    }
}

impl PairedConfig {
    /// The adaptive rounds' limits as `stats` and `compare` take them.
    pub fn adaptive(&self) -> crate::stats::AdaptiveRounds {
        crate::stats::AdaptiveRounds {
            undecided_p: self.undecided_p,
            max_rounds: self.max_rounds as usize,
            batch: self.batch as usize,
        }
    }
}

/// An absolute limit on one metric, checked on every run beside the relative verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The metric's full name, as `--list` and the record show it.
    pub metric: String,
    /// The most the metric may be (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The least the metric may be (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid [workspace.metadata.perf] in {path}: {message}\n  fix: see the keys documented in README.md (Configuration)"
    )]
    Invalid { path: PathBuf, message: String },
}

/// Reads `[workspace.metadata.perf]` from the workspace's `Cargo.toml` (defaults when absent).
pub fn read_metadata(root: &Path) -> Result<PerfMetadata, ConfigError> {
    let path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    parse_metadata(&text).map_err(|message| ConfigError::Invalid { path, message })
}

/// Parses the metadata table out of a manifest's text.
pub fn parse_metadata(manifest: &str) -> Result<PerfMetadata, String> {
    let value: toml::Table = toml::from_str(manifest).map_err(|e| e.to_string())?;
    let perf = value
        .get("workspace")
        .and_then(|w| w.get("metadata"))
        .and_then(|m| m.get("perf"));
    let metadata = match perf {
        None => PerfMetadata::default(),
        Some(table) => table
            .clone()
            .try_into::<PerfMetadata>()
            .map_err(|e| e.message().to_owned())?,
    };
    for budget in &metadata.budgets {
        match (budget.min, budget.max) {
            (None, None) => {
                return Err(format!(
                    "budget on {:?} has neither `max` nor `min`",
                    budget.metric
                ));
            }
            (Some(min), Some(max)) if min > max => {
                return Err(format!(
                    "budget on {:?} has min {min} above max {max}",
                    budget.metric
                ));
            }
            _ => {}
        }
    }
    validate(&metadata)?;
    Ok(metadata)
}

/// Refuses values that parse but cannot work: thresholds and limits that are not finite
/// numbers (or are negative), names that cannot name a branch, empty patterns.
fn validate(metadata: &PerfMetadata) -> Result<(), String> {
    let percentage = |key: String, pct: f64| {
        if pct.is_finite() && pct >= 0.0 {
            Ok(())
        } else {
            Err(format!(
                "{key} = {pct}: a threshold is a percentage, 0 or more"
            ))
        }
    };
    let thresholds = &metadata.thresholds;
    percentage(
        "thresholds.instructions_pct".to_owned(),
        thresholds.instructions_pct,
    )?;
    percentage(
        "thresholds.io_counts_pct".to_owned(),
        thresholds.io_counts_pct,
    )?;
    percentage(
        "thresholds.wall_time_pct".to_owned(),
        thresholds.wall_time_pct,
    )?;
    for (metric, pct) in &thresholds.metrics {
        percentage(format!("thresholds.metrics.{metric:?}"), *pct)?;
    }
    if !(1..=MAX_SHARDS).contains(&metadata.shards) {
        return Err(format!(
            "shards = {}: the workflows measure a run in 1 to {MAX_SHARDS} jobs (default 1)",
            metadata.shards
        ));
    }
    let paired = &metadata.paired;
    if !(paired.undecided_p > 0.0 && paired.undecided_p <= 1.0) {
        return Err(format!(
            "paired.undecided_p = {}: it is a p-value above 0 and at most 1 (default 0.3)",
            paired.undecided_p
        ));
    }
    if paired.batch == 0 {
        return Err(
            "paired.batch = 0: extra rounds are measured at least 1 at a time (default 5)"
                .to_owned(),
        );
    }
    for budget in &metadata.budgets {
        for (bound, value) in [("min", budget.min), ("max", budget.max)] {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err(format!(
                    "budget on {:?} has {bound} = {}: a limit is a finite number",
                    budget.metric,
                    value.unwrap_or_default()
                ));
            }
        }
    }
    for (key, branch) in [
        ("target_branch", &metadata.target_branch),
        ("baseline_branch", &metadata.baseline_branch),
    ] {
        if !git_branch_name_is_valid(branch) {
            return Err(format!("{key} = {branch:?} is not a valid git branch name"));
        }
    }
    if metadata.target_branch == metadata.baseline_branch {
        return Err(format!(
            "target_branch and baseline_branch are both {:?}: the records need a branch of their own",
            metadata.target_branch
        ));
    }
    for (key, patterns) in [("suites", &metadata.suites), ("retired", &metadata.retired)] {
        if let Some(empty) = patterns
            .iter()
            .find(|p| p.trim().is_empty() || p.contains(','))
        {
            return Err(format!(
                "{key} has the entry {empty:?}: each entry is one non-empty metric name or prefix, without commas"
            ));
        }
    }
    Ok(())
}

/// The rules of `git check-ref-format --branch` that a configured name can break.
fn git_branch_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && name != "@"
        && !name
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
        && !name.split('/').any(|part| part.starts_with('.'))
}

impl PerfMetadata {
    /// The selection every run measures (`suites`, as one `--filter` value), if any.
    pub fn suites_filter(&self) -> Option<String> {
        (!self.suites.is_empty()).then(|| self.suites.join(","))
    }

    /// Whether `metric` was retired on purpose (`retired`: a name, or a prefix ending in `/`).
    pub fn is_retired(&self, metric: &str) -> bool {
        names_or_prefixes_match(&self.retired, metric)
    }
}

/// Whether one of `entries` is `metric`'s name, or a prefix of it ending in `/`.
pub fn names_or_prefixes_match(entries: &[String], metric: &str) -> bool {
    entries.iter().any(|entry| {
        entry == metric || (entry.ends_with('/') && metric.starts_with(entry.as_str()))
    })
}

/// Images the docker mode starts: `PERF_POSTGRES_IMAGE` / `PERF_REDIS_IMAGE` override the
/// configured ones.
#[cfg(feature = "harness")]
pub fn image_choices(images: &Images) -> (ImageChoice, ImageChoice) {
    let pick = |variable: &'static str, configured: &str| ImageChoice {
        reference: std::env::var(variable)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| configured.to_owned()),
        override_variable: variable,
    };
    (
        pick("PERF_POSTGRES_IMAGE", &images.postgres),
        pick("PERF_REDIS_IMAGE", &images.redis),
    )
}

/// One command's configuration, built once in `main` from its flags, `[workspace.metadata.perf]`
/// and the environment, and passed to every command: where things are (`layout`), what the
/// configuration says (`metadata`: thresholds, budgets, branches, seed, suites), this
/// machine's class, and how services are provided (mode and images).
#[cfg(feature = "harness")]
#[derive(Debug, Clone)]
pub struct Config {
    pub layout: crate::workspace::Layout,
    pub metadata: PerfMetadata,
    /// `machine_class`, or `auto`'s derivation from this machine's CPU.
    pub machine_class: String,
    pub provision: crate::provision::ProvisionOptions,
}

#[cfg(feature = "harness")]
impl Config {
    /// The configuration of the workspace the harness runs in, with outputs in `out` (default
    /// `<target>/perf`) and services provided as `services` says.
    pub fn load(
        out: Option<&Path>,
        services: crate::provision::ServicesMode,
    ) -> Result<Self, ConfigError> {
        let layout = crate::workspace::Layout::new(out);
        let metadata = read_metadata(&layout.root)?;
        let (postgres_image, redis_image) = image_choices(&metadata.images);
        Ok(Self {
            machine_class: crate::fingerprint::machine_class(&metadata),
            provision: crate::provision::ProvisionOptions {
                mode: services,
                postgres_image,
                redis_image,
            },
            layout,
            metadata,
        })
    }

    /// What a run measures: `--filter` when given, else the configured `suites`, else
    /// everything (`None`).
    pub fn selection(&self, filter: Option<&str>) -> Option<String> {
        filter
            .map(str::to_owned)
            .or_else(|| self.metadata.suites_filter())
    }

    /// How a selection that selects nothing is named in its error: the flag, or the key.
    pub fn describe_selection(&self, filter: Option<&str>) -> String {
        match filter {
            Some(filter) => format!("--filter {filter:?}"),
            None => format!(
                "`suites = {:?}` in [workspace.metadata.perf]",
                self.metadata.suites
            ),
        }
    }
}

/// A short hash of what changes the measured data (seed sizes) and what is measured
/// (`suites`), so that records measured on different data or selections are never compared.
pub fn measurement_config_hash(metadata: &PerfMetadata) -> String {
    // The seed alone when every suite runs (the hash of every record made before `suites`
    // existed), the seed and the selection otherwise.
    let canonical = if metadata.suites.is_empty() {
        serde_json::to_vec(&metadata.seed)
    } else {
        serde_json::to_vec(&(&metadata.seed, &metadata.suites))
    }
    .expect("seed serializes");
    let digest = Sha256::digest(&canonical);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_metric_thresholds_match_by_name_then_longest_prefix() {
        let manifest = "[workspace.metadata.perf.thresholds.metrics]\n\
             \"instructions/\" = 2.0\n\
             \"instructions/review/\" = 3.0\n\
             \"instructions/review/sm2_schedule/lapse\" = 5.0\n";
        let thresholds = parse_metadata(manifest).unwrap().thresholds;
        assert_eq!(
            thresholds.for_metric("instructions/review/sm2_schedule/lapse"),
            Some(("instructions/review/sm2_schedule/lapse", 5.0))
        );
        assert_eq!(
            thresholds.for_metric("instructions/review/sm2_schedule/first_review"),
            Some(("instructions/review/", 3.0))
        );
        assert_eq!(
            thresholds.for_metric("instructions/cache/key_and_ttls/x"),
            Some(("instructions/", 2.0))
        );
        assert_eq!(thresholds.for_metric("io/due_cards/sql_statements"), None);
    }

    #[test]
    fn budgets_parse_and_bad_ones_are_refused() {
        let manifest = "[[workspace.metadata.perf.budgets]]\n\
             metric = \"io/dashboard_warm/sql_statements\"\nmax = 0\n\
             [[workspace.metadata.perf.budgets]]\n\
             metric = \"io/dashboard_warm/observed/due.hit_permille\"\nmin = 950\n";
        let budgets = parse_metadata(manifest).unwrap().budgets;
        assert_eq!(budgets.len(), 2);
        assert_eq!(budgets[0].max, Some(0.0));
        assert_eq!(budgets[1].min, Some(950.0));

        let neither = "[[workspace.metadata.perf.budgets]]\nmetric = \"a\"\n";
        assert!(parse_metadata(neither).unwrap_err().contains("neither"));
        let crossed = "[[workspace.metadata.perf.budgets]]\nmetric = \"a\"\nmin = 2\nmax = 1\n";
        assert!(parse_metadata(crossed).unwrap_err().contains("above max"));
        let unknown = "[[workspace.metadata.perf.budgets]]\nmetric = \"a\"\nmaximum = 1\n";
        assert!(parse_metadata(unknown).unwrap_err().contains("maximum"));
        let negative = "[workspace.metadata.perf.thresholds.metrics]\n\"a\" = -1.0\n";
        assert!(parse_metadata(negative).unwrap_err().contains("0 or more"));
    }

    #[test]
    fn values_that_parse_but_cannot_work_are_refused() {
        for (manifest, expected) in [
            (
                "[workspace.metadata.perf.thresholds]\ninstructions_pct = nan\n",
                "instructions_pct",
            ),
            (
                "[workspace.metadata.perf.thresholds]\nio_counts_pct = -1.0\n",
                "io_counts_pct",
            ),
            (
                "[workspace.metadata.perf.thresholds]\nwall_time_pct = inf\n",
                "wall_time_pct",
            ),
            (
                "[[workspace.metadata.perf.budgets]]\nmetric = \"a\"\nmax = nan\n",
                "finite number",
            ),
            (
                "[[workspace.metadata.perf.budgets]]\nmetric = \"a\"\nmin = -inf\n",
                "finite number",
            ),
            (
                "[workspace.metadata.perf]\ntarget_branch = \"ma in\"\n",
                "target_branch",
            ),
            (
                "[workspace.metadata.perf]\ntarget_branch = \"\"\n",
                "target_branch",
            ),
            (
                "[workspace.metadata.perf]\nbaseline_branch = \"a..b\"\n",
                "baseline_branch",
            ),
            (
                "[workspace.metadata.perf]\nbaseline_branch = \"main\"\n",
                "a branch of their own",
            ),
            ("[workspace.metadata.perf]\nsuites = [\"\"]\n", "suites"),
            (
                "[workspace.metadata.perf]\nretired = [\"a,b\"]\n",
                "retired",
            ),
        ] {
            let error = parse_metadata(manifest).expect_err(manifest);
            assert!(error.contains(expected), "{manifest}: {error}");
        }
        let fine = "[workspace.metadata.perf]\ntarget_branch = \"release/2.x\"\nsuites = [\"io/\", \"plans/\"]\n";
        let metadata = parse_metadata(fine).unwrap();
        assert_eq!(metadata.suites_filter().as_deref(), Some("io/,plans/"));
    }

    #[test]
    fn retired_metrics_match_by_name_or_prefix() {
        let metadata = PerfMetadata {
            retired: vec![
                "io/old_scenario/".to_owned(),
                "wall_time/cache/gone".to_owned(),
            ],
            ..PerfMetadata::default()
        };
        assert!(metadata.is_retired("io/old_scenario/sql_statements"));
        assert!(metadata.is_retired("wall_time/cache/gone"));
        assert!(!metadata.is_retired("wall_time/cache/gone_too"));
        assert!(!metadata.is_retired("io/due_cards/sql_statements"));
    }

    #[test]
    fn absent_table_gives_defaults() {
        let metadata = parse_metadata("[workspace]\nmembers = []\n").unwrap();
        assert_eq!(metadata, PerfMetadata::default());
    }

    #[test]
    fn partial_table_keeps_other_defaults() {
        let manifest = "[workspace.metadata.perf.thresholds]\ninstructions_pct = 2.5\n";
        let metadata = parse_metadata(manifest).unwrap();
        assert_eq!(metadata.thresholds.instructions_pct, 2.5);
        assert_eq!(metadata.thresholds.io_counts_pct, 0.0);
        assert_eq!(metadata.target_branch, "main");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let manifest = "[workspace.metadata.perf]\ntarget_brnach = \"dev\"\n";
        let error = parse_metadata(manifest).unwrap_err();
        assert!(error.contains("target_brnach"), "{error}");
    }

    #[test]
    fn unknown_nested_key_is_an_error_naming_it() {
        let manifest = "[workspace.metadata.perf.seed]\nusers = 10\nrows = 3\n";
        let error = parse_metadata(manifest).unwrap_err();
        assert!(error.contains("rows"), "{error}");
    }

    #[test]
    fn shards_are_1_to_64_and_never_change_what_records_compare_with() {
        assert_eq!(parse_metadata("").unwrap().shards, 1);
        let three = parse_metadata("[workspace.metadata.perf]\nshards = 3\n").unwrap();
        assert_eq!(three.shards, 3);
        assert_eq!(
            measurement_config_hash(&three),
            measurement_config_hash(&PerfMetadata::default())
        );
        for bad in [0, 65] {
            let error = parse_metadata(&format!("[workspace.metadata.perf]\nshards = {bad}\n"))
                .unwrap_err();
            assert!(
                error.contains(&format!("shards = {bad}")) && error.contains("1 to 64"),
                "{error}"
            );
        }
    }

    #[test]
    fn config_hash_changes_with_seed_size_and_selection_only() {
        let base = PerfMetadata::default();
        let mut other_threshold = base.clone();
        other_threshold.thresholds.instructions_pct = 9.0;
        let mut other_seed = base.clone();
        other_seed.seed.cards = 10;
        assert_eq!(
            measurement_config_hash(&base),
            measurement_config_hash(&other_threshold)
        );
        assert_ne!(
            measurement_config_hash(&base),
            measurement_config_hash(&other_seed)
        );
        let mut selected = base.clone();
        selected.suites = vec!["io/".to_owned()];
        assert_ne!(
            measurement_config_hash(&base),
            measurement_config_hash(&selected)
        );
    }
}
