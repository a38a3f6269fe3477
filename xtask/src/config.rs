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
    pub images: Images,
    pub seed: Seed,
    pub thresholds: Thresholds,
    /// Absolute limits (`[[workspace.metadata.perf.budgets]]`).
    pub budgets: Vec<Budget>,
}

impl Default for PerfMetadata {
    fn default() -> Self {
        Self {
            target_branch: "main".to_owned(),
            baseline_branch: DEFAULT_BASELINE_BRANCH.to_owned(),
            max_ancestor_distance: 20,
            machine_class: "auto".to_owned(),
            images: Images::default(),
            seed: Seed::default(),
            thresholds: Thresholds::default(),
            budgets: Vec::new(),
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
    for (metric, pct) in &metadata.thresholds.metrics {
        if !(pct.is_finite() && *pct >= 0.0) {
            return Err(format!(
                "thresholds.metrics.{metric:?} = {pct}: a threshold is a percentage, 0 or more"
            ));
        }
    }
    Ok(metadata)
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

/// A short hash of what changes the measured data (seed sizes), so that records measured on
/// different data are never compared.
pub fn measurement_config_hash(metadata: &PerfMetadata) -> String {
    let canonical = serde_json::to_vec(&metadata.seed).expect("seed serializes");
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
    fn config_hash_changes_with_seed_size_only() {
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
    }
}
