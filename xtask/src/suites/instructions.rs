//! Instructions (Gungraun under callgrind): runs the `instructions` bench of a checkout with
//! `--output-format=json` and turns each benchmark's total `Ir` (instructions executed) into a
//! deterministic metric `instructions/<group>/<function>/<id>`.

use serde::Deserialize;

use crate::record::{Metric, MetricKind, Suite, Unit};

use super::SuiteError;

/// The Gungraun benchmarks a run counts: `(package, bench target)`. The system under test's
/// CPU-bound paths, and the harness's own comparison and rendering (skipped at a revision
/// that does not have it).
pub const BENCHES: [(&str, &str); 2] = [("bench-suite", "instructions"), ("xtask", "render")];

/// Cargo's feature flags for a package's instruction benchmark. The harness's own (`xtask`'s
/// `render`) is built with only the pure steps it measures, not the services, git and GitHub
/// crates of the `harness` feature, which would otherwise be built in release for every
/// measured checkout. Revisions from before the feature existed accept the flag too (they have
/// no default features to turn off).
pub fn cargo_feature_args(package: &str) -> &'static [&'static str] {
    if package == "xtask" {
        &["--no-default-features"]
    } else {
        &[]
    }
}

/// Gungraun's arguments: JSON lines on stdout, and a wildcard pattern (made by
/// [`gungraun_patterns`]) over `FILE::GROUP::FUNCTION::ID`.
pub fn gungraun_args(pattern: Option<&str>) -> Vec<String> {
    let mut args = vec!["--output-format=json".to_owned()];
    args.extend(pattern.map(str::to_owned));
    args
}

/// The Gungraun invocations a suite's filter needs, one pattern each (`None`: every
/// benchmark). Gungraun takes one wildcard pattern: the harness's plain-text filter becomes
/// `*text*`; exact names (`=instructions/<group>/<function>/<id>`) one exact pattern each,
/// `*::<group>::<function>::<id>` (the file's name is not in the metric's). A metric's name
/// separates the parts with `/`, Gungraun with `::`.
pub fn gungraun_patterns(filter: &super::ToolFilter<'_>) -> Vec<Option<String>> {
    match filter {
        super::ToolFilter::Skip => Vec::new(),
        super::ToolFilter::All => vec![None],
        super::ToolFilter::Pattern(pattern) => {
            vec![Some(format!("*{}*", wildcard_escape(pattern)))]
        }
        super::ToolFilter::Exact(ids) => ids
            .iter()
            .map(|id| Some(format!("*::{}", wildcard_escape(id))))
            .collect(),
    }
}

/// Plain text as a literal in Gungraun's wildcard pattern, `/` as `::`.
fn wildcard_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = matches!(c, '*' | '?' | '[' | ']' | '\\');
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect::<String>()
        .replace('/', "::")
}

#[derive(Deserialize)]
struct BenchLine {
    group: Option<String>,
    function_name: String,
    id: Option<String>,
    profiles: Vec<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    tool: String,
    data: ProfileData,
}

#[derive(Deserialize)]
struct ProfileData {
    total: Total,
}

#[derive(Deserialize)]
struct Total {
    metrics: serde_json::Map<String, serde_json::Value>,
}

/// Parses gungraun's JSON lines (other lines are ignored).
pub fn parse_output(stdout: &str) -> Result<Vec<Metric>, SuiteError> {
    let mut metrics = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| l.starts_with('{')) {
        let bench: BenchLine = serde_json::from_str(line).map_err(|e| SuiteError::Output {
            suite: "instructions",
            detail: format!("unexpected gungraun JSON ({e}): {line:.200}"),
        })?;
        let callgrind = bench
            .profiles
            .iter()
            .find(|p| p.tool == "Callgrind")
            .ok_or_else(|| SuiteError::Output {
                suite: "instructions",
                detail: format!("no Callgrind profile for {}", bench.function_name),
            })?;
        let instructions = callgrind
            .data
            .total
            .metrics
            .get("Ir")
            .and_then(|ir| ir.pointer("/values/new"))
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| SuiteError::Output {
                suite: "instructions",
                detail: format!("no Ir count for {}", bench.function_name),
            })?;
        let mut name = String::from("instructions");
        for part in [
            bench.group.as_deref(),
            Some(bench.function_name.as_str()),
            bench.id.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            name.push('/');
            name.push_str(part);
        }
        metrics.push(Metric {
            name,
            suite: Suite::Instructions,
            unit: Unit::Instructions,
            kind: MetricKind::Deterministic,
            value: instructions,
            interval: None,
            samples: Vec::new(),
            shape: None,
        });
    }
    metrics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_gungraun_json_line() {
        let line =
            r#"{"group":"cache","function_name":"decode","id":"word","kind":"LibraryBenchmark",
            "profiles":[{"tool":"Callgrind","data":{"parts":[],"total":{"metrics":
            {"Ir":{"values":{"new":2576}},"Dr":{"values":{"new":593}}},"regressions":[]}}}]}"#
                .replace('\n', " ");
        let metrics = parse_output(&format!("noise\n{line}\n")).unwrap();
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].name, "instructions/cache/decode/word");
        assert_eq!(metrics[0].value, 2576.0);
    }

    #[test]
    fn filter_becomes_a_substring_wildcard_and_exact_names_one_exact_pattern_each() {
        use crate::suites::ToolFilter::{All, Exact, Pattern, Skip};
        let one = |pattern| gungraun_patterns(&Pattern(pattern));
        assert_eq!(one("decode"), [Some("*decode*".to_owned())]);
        assert_eq!(
            one("query/due_cards_row_decode/page"),
            [Some("*query::due_cards_row_decode::page*".to_owned())]
        );
        assert_eq!(one("a*b"), [Some("*a\\*b*".to_owned())]);
        assert_eq!(
            gungraun_patterns(&Exact(vec!["query/decode/page", "cache/get"])),
            [
                Some("*::query::decode::page".to_owned()),
                Some("*::cache::get".to_owned())
            ]
        );
        assert_eq!(gungraun_patterns(&All), [None]);
        assert!(gungraun_patterns(&Skip).is_empty());
        assert_eq!(gungraun_args(Some("*x*")).last().unwrap(), "*x*");
    }
}
