//! Wall time (criterion): runs the `wall_time` bench of a checkout and reads criterion's
//! results (`<CRITERION_HOME>/<id>/new/{benchmark,estimates,sample}.json`, nanoseconds) into
//! statistical metrics: the median with its 95% interval and the per-iteration samples.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::record::{Metric, MetricKind, Suite, Unit};

use super::SuiteError;

/// criterion's arguments for a profile: short warm-up and measurement for `--quick`. Without
/// `--paired`, wall time is shown for information only, so the quick profile (a pull
/// request's) spends half a second on each benchmark's samples: enough for a median of
/// thousands of iterations of a microsecond-long operation. Benchmarks that set their own
/// sample count (the imports, about a second per iteration) run that many iterations whatever
/// the profile.
pub fn criterion_args(quick: bool, filter_regex: Option<String>) -> Vec<String> {
    let mut args = vec!["--noplot".to_owned()];
    if quick {
        args.extend(
            [
                "--warm-up-time",
                "0.3",
                "--measurement-time",
                "0.5",
                "--sample-size",
                "20",
            ]
            .map(str::to_owned),
        );
    } else {
        args.extend(
            [
                "--warm-up-time",
                "2",
                "--measurement-time",
                "5",
                "--sample-size",
                "50",
            ]
            .map(str::to_owned),
        );
    }
    args.extend(filter_regex);
    args
}

/// criterion's filter for exactly these benchmark ids (`group/bench`): anchored at both ends.
pub fn exact_ids_regex<S: AsRef<str>>(ids: &[S]) -> String {
    let ids: Vec<String> = ids.iter().map(|id| regex_escape(id.as_ref())).collect();
    format!("^({})$", ids.join("|"))
}

/// criterion filters by regex; the harness's filter is plain text.
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[derive(Deserialize)]
struct BenchmarkFile {
    full_id: String,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct EstimatesFile {
    median: Estimate,
}

#[derive(Deserialize)]
struct SampleFile {
    iters: Vec<f64>,
    times: Vec<f64>,
}

/// Reads every benchmark criterion wrote under `home`, sorted by name.
pub fn read_results(home: &Path) -> Result<Vec<Metric>, SuiteError> {
    let mut dirs = Vec::new();
    find_new_dirs(home, &mut dirs)?;
    let mut metrics = Vec::new();
    for dir in dirs {
        let read = |name: &str| -> Result<String, SuiteError> {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| SuiteError::Output {
                suite: "wall_time",
                detail: format!("cannot read {}: {e}", path.display()),
            })
        };
        let parse_error = |e: serde_json::Error| SuiteError::Output {
            suite: "wall_time",
            detail: format!("unexpected criterion output in {}: {e}", dir.display()),
        };
        let benchmark: BenchmarkFile =
            serde_json::from_str(&read("benchmark.json")?).map_err(parse_error)?;
        let estimates: EstimatesFile =
            serde_json::from_str(&read("estimates.json")?).map_err(parse_error)?;
        let sample: SampleFile =
            serde_json::from_str(&read("sample.json")?).map_err(parse_error)?;
        let samples = sample
            .times
            .iter()
            .zip(&sample.iters)
            .map(|(time, iters)| time / iters)
            .collect();
        metrics.push(Metric {
            name: format!("wall_time/{}", benchmark.full_id),
            suite: Suite::WallTime,
            unit: Unit::Nanoseconds,
            kind: MetricKind::Statistical,
            value: estimates.median.point_estimate,
            interval: Some([
                estimates.median.confidence_interval.lower_bound,
                estimates.median.confidence_interval.upper_bound,
            ]),
            samples,
            shape: None,
        });
    }
    metrics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(metrics)
}

fn find_new_dirs(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), SuiteError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(SuiteError::Output {
                suite: "wall_time",
                detail: format!("cannot list {}: {e}", dir.display()),
            });
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") && path.join("benchmark.json").is_file() {
            found.push(path);
        } else if path
            .file_name()
            .is_some_and(|n| n != "report" && n != "base")
        {
            find_new_dirs(&path, found)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_files() {
        let home = tempfile::tempdir().unwrap();
        let new = home.path().join("cache").join("l1_hit").join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"full_id":"cache/l1_hit","title":"x"}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"median":{"point_estimate":250.0,"standard_error":1.0,
                "confidence_interval":{"confidence_level":0.95,"lower_bound":240.0,"upper_bound":260.0}}}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("sample.json"),
            r#"{"sampling_mode":"Linear","iters":[10.0,20.0],"times":[2500.0,5200.0]}"#,
        )
        .unwrap();
        let metrics = read_results(home.path()).unwrap();
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].name, "wall_time/cache/l1_hit");
        assert_eq!(metrics[0].value, 250.0);
        assert_eq!(metrics[0].interval, Some([240.0, 260.0]));
        assert_eq!(metrics[0].samples, vec![250.0, 260.0]);
    }

    #[test]
    fn filter_is_escaped_for_criterion() {
        let filter = crate::suites::ToolFilter::Pattern("cache/l1.hit");
        let args = criterion_args(true, filter.criterion_regex());
        assert_eq!(args.last().unwrap(), "cache/l1\\.hit");
        let exact = crate::suites::ToolFilter::Exact(vec!["cache/l1.hit", "query/due"]);
        assert_eq!(
            criterion_args(false, exact.criterion_regex())
                .last()
                .unwrap(),
            "^(cache/l1\\.hit|query/due)$"
        );
    }
}
