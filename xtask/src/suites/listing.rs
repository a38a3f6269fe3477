//! `cargo xtask perf --list`: the name of every benchmark and scenario of the work tree, as a
//! run would record it (`io/<scenario>`, `mem/<scenario>`, `load/<mix>`, `plans/<statement>`,
//! `wall_time/<group>/<bench>`,
//! `instructions/<group>/<function>/<id>`), taken from each tool's own listing (`suite list`,
//! `suite plans --list`, criterion's and Gungraun's `--list`), so the list cannot drift from
//! what a run measures.
//!
//! This module must never start a server or run a benchmark: listing builds the checkout
//! and asks each tool for names only.

use std::path::Path;

use super::child::{run_tool, tool_in};
use super::{SuiteError, build_bench_suite, build_guard, cargo_program};
use crate::record::Suite;
use crate::workspace::Layout;

/// One benchmark or scenario: its name as recorded, and what it is (when the tool says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub about: Option<String>,
}

/// Builds the work tree's `bench-suite` and lists what a run would measure, filtered by
/// `filter` (a substring of the name, as `--filter` selects), sorted by name.
pub async fn list(
    layout: &Layout,
    filter: Option<&str>,
    progress: &crate::progress::Progress,
) -> Result<Vec<Listed>, SuiteError> {
    let raw = layout.raw_dir("list");
    std::fs::create_dir_all(&raw).map_err(|e| SuiteError::Output {
        suite: "list",
        detail: format!("cannot create {}: {e}", raw.display()),
    })?;
    let dir = layout.root.as_path();
    // Held while the binaries are listed: no other run rebuilds them meanwhile.
    let _built = build_guard::build_checkout(
        dir,
        &layout.target_dir,
        false,
        |message| eprintln!("list: {message}"),
        || {
            build_bench_suite(
                dir,
                &layout.target_dir,
                "list",
                &raw,
                super::BuildScope::for_filter(filter),
            )
        },
    )
    .await?;

    let mut listed = list_suite(dir, &layout.target_dir, &raw).await?;
    listed.extend(list_benches(layout, filter, progress, &raw).await?);
    listed.retain(|entry| filter.is_none_or(|filter| super::filter_matches(filter, &entry.name)));
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listed)
}

/// What the `suite` binary lists: its scenarios (`io/`, and `mem/` for each), the load mix, and
/// the statements whose plans it captures.
async fn list_suite(dir: &Path, target_dir: &Path, raw: &Path) -> Result<Vec<Listed>, SuiteError> {
    let mut listed = Vec::new();
    let suite_bin = target_dir.join("release").join("suite");
    let mut scenarios = tool_in(&suite_bin, dir, target_dir);
    scenarios.arg("list");
    let stdout = run_tool(scenarios, "suite list", &raw.join("list.log")).await?;
    let scenarios = parse_scenarios(&stdout);
    // Each named scenario is also measured for heap use and leaks (`mem/<scenario>/...`); a
    // benchmark's one counted call is not.
    let memory: Vec<Listed> = scenarios
        .iter()
        .filter(|scenario| scenario.benchmark.is_none())
        .map(|scenario| Listed {
            name: format!("{}{}", Suite::Memory.prefix(), scenario.name),
            about: Some("heap use and leak check of the scenario's measured part".to_owned()),
        })
        .collect();
    listed.extend(scenarios.iter().map(ListedScenario::listed));
    listed.extend(memory);
    listed.push(Listed {
        name: format!("load/{}", super::load::MIX),
        about: Some(format!(
            "open-loop load at {} req/s: latency percentiles, throughput, errors, server CPU and memory",
            super::load::RATE
        )),
    });
    let mut plans = tool_in(&suite_bin, dir, target_dir);
    plans.args(["plans", "--list"]);
    let stdout = run_tool(plans, "suite plans --list", &raw.join("list-plans.log")).await?;
    listed.extend(
        stdout
            .lines()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| Listed {
                name: format!("plans/{name}"),
                about: None,
            }),
    );
    Ok(listed)
}

/// What the benchmarks list (criterion's `wall_time`, Gungraun's `instructions`): only those
/// the filter selects, so that none is built only to be listed.
async fn list_benches(
    layout: &Layout,
    filter: Option<&str>,
    progress: &crate::progress::Progress,
    raw: &Path,
) -> Result<Vec<Listed>, SuiteError> {
    let dir = layout.root.as_path();
    let mut listed = Vec::new();
    let benches = [("bench-suite", "wall_time", "wall_time")]
        .into_iter()
        .chain(
            super::instructions::BENCHES.map(|(package, bench)| (package, bench, "instructions")),
        );
    for (package, bench, prefix) in benches {
        if super::tool_filter(filter, &format!("{prefix}/")) == super::ToolFilter::Skip {
            continue; // not selected, and perhaps not built: do not build it to list it
        }
        // Gungraun's `--list` asks its runner: the one the run would use (`setup`).
        let runner_dir = if prefix == "instructions" {
            crate::setup::gungraun_runner(dir, &layout.target_dir, progress)
                .await
                .map_err(|e| SuiteError::Setup(format!("{e:#}")))?
        } else {
            None
        };
        let stdout = bench_list(
            dir,
            &layout.target_dir,
            package,
            bench,
            raw,
            runner_dir.as_deref(),
        )
        .await?;
        listed.extend(
            parse_bench_list(&stdout, prefix)
                .into_iter()
                .map(|name| Listed { name, about: None }),
        );
    }
    Ok(listed)
}

/// `cargo bench --package <package> --bench <bench> -- --list` (criterion and Gungraun both
/// answer it without running anything).
async fn bench_list(
    dir: &Path,
    target_dir: &Path,
    package: &str,
    bench: &str,
    raw: &Path,
    runner_dir: Option<&Path>,
) -> Result<String, SuiteError> {
    let mut command = tool_in(cargo_program(), dir, target_dir);
    super::runner_first_on_path(&mut command, runner_dir);
    command
        .args(super::bench_target_args(package, bench))
        .args(["--quiet", "--", "--list"]);
    run_tool(
        command,
        &format!("cargo bench --bench {bench} -- --list"),
        &raw.join(format!("list-{bench}.log")),
    )
    .await
}

/// A scenario as `suite list` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedScenario {
    /// Its name, as in `suite scenario <name>` and `io/<name>/…`.
    pub name: String,
    pub about: Option<String>,
    /// The wall-time benchmark (`wall_time/<group>/<name>`) whose one call the scenario counts;
    /// `None` for a named scenario. Such a scenario is counted only: no heap use, no leak check.
    pub benchmark: Option<String>,
}

impl ListedScenario {
    fn listed(&self) -> Listed {
        let about = match (&self.benchmark, &self.about) {
            (Some(benchmark), Some(about)) => {
                Some(format!("I/O of one call of {benchmark}: {about}"))
            }
            (Some(benchmark), None) => Some(format!("I/O of one call of {benchmark}")),
            (None, about) => about.clone(),
        };
        Listed {
            name: format!("{}{}", Suite::IoCounts.prefix(), self.name),
            about,
        }
    }
}

/// `suite list` prints one JSON object per scenario: `{"name": ..., "about": ...}`, and
/// `"benchmark"` for a benchmark's counted call.
pub fn parse_scenarios(stdout: &str) -> Vec<ListedScenario> {
    let text = |value: &serde_json::Value, key: &str| {
        value.get(key).and_then(|v| v.as_str()).map(str::to_owned)
    };
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|value| {
            Some(ListedScenario {
                name: text(&value, "name")?,
                about: text(&value, "about"),
                benchmark: text(&value, "benchmark"),
            })
        })
        .collect()
}

/// Names from a libtest-style `--list`: lines `<name>: benchmark`. Criterion names are
/// `group/bench`; Gungraun's are `<bench target>::group::function::id`, whose first segment
/// is dropped. Each becomes `<prefix>/<name with / separators>`.
pub fn parse_bench_list(stdout: &str, prefix: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.trim().strip_suffix(": benchmark"))
        .map(|name| match name.split_once("::") {
            Some((_target, rest)) => rest.replace("::", "/"),
            None => name.to_owned(),
        })
        .map(|name| format!("{prefix}/{name}"))
        .collect()
}

/// The listing as printed: one name per line, with what it is when known.
pub fn render(listed: &[Listed]) -> String {
    let width = listed.iter().map(|l| l.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for entry in listed {
        match &entry.about {
            Some(about) => out.push_str(&format!("{:width$}  {about}\n", entry.name)),
            None => out.push_str(&format!("{}\n", entry.name)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criterion_and_gungraun_lists_become_metric_names() {
        let criterion = "cache/l1_hit: benchmark\n\nimport/bulk_10k: benchmark\n";
        assert_eq!(
            parse_bench_list(criterion, "wall_time"),
            ["wall_time/cache/l1_hit", "wall_time/import/bulk_10k"]
        );
        let gungraun = "instructions::cache::cache_aside_read_decode::word: benchmark\n\n\
                        0 tests, 1 benchmarks\n";
        assert_eq!(
            parse_bench_list(gungraun, "instructions"),
            ["instructions/cache/cache_aside_read_decode/word"]
        );
    }

    #[test]
    fn scenarios_keep_their_description_and_skip_noise() {
        let stdout = "{\"name\":\"dashboard_warm\",\"about\":\"A warm dashboard\"}\nnot json\n\
                      {\"name\":\"call.query.due_cards\",\"about\":\"a page\",\
                      \"benchmark\":\"wall_time/query/due_cards\"}\n";
        let scenarios = parse_scenarios(stdout);
        assert_eq!(
            scenarios
                .iter()
                .map(ListedScenario::listed)
                .collect::<Vec<_>>(),
            [
                Listed {
                    name: "io/dashboard_warm".to_owned(),
                    about: Some("A warm dashboard".to_owned()),
                },
                Listed {
                    name: "io/call.query.due_cards".to_owned(),
                    about: Some("I/O of one call of wall_time/query/due_cards: a page".to_owned()),
                }
            ]
        );
        assert_eq!(scenarios[0].benchmark, None);
        assert_eq!(
            scenarios[1].benchmark.as_deref(),
            Some("wall_time/query/due_cards")
        );
    }

    #[test]
    fn the_listing_aligns_descriptions() {
        let listed = [
            Listed {
                name: "io/a".to_owned(),
                about: Some("first".to_owned()),
            },
            Listed {
                name: "wall_time/cache/l1_hit".to_owned(),
                about: None,
            },
        ];
        assert_eq!(
            render(&listed),
            "io/a                    first\nwall_time/cache/l1_hit\n"
        );
    }
}
