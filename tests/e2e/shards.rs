//! A run split into shards (`perf --shard k/n`) and merged (`perf merge`), end to end on real
//! servers: a change with an injected regression, its base measured by each of three shards in
//! a worktree of its own, merged and judged once (`perf --from-record`), holds exactly the
//! deterministic metrics of the unsharded run of the same commit and gets its verdict on every
//! deterministic row and its exit code; a lost shard, a shard given twice, a shard of another
//! commit or machine class is an error (exit 2) that writes nothing. One test, so that the
//! unsharded run and the shards are measured once for all of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use perf_tests::{assert_torn_down, fixture, heavy, read_json, ready_services, run};

/// Deterministic counts, plans and instructions, and one wall-time benchmark that reviews
/// cards: the row-decoding instruction benchmarks read their rows from the database, so their
/// counts are the same in a shard and in the whole run only if no other suite's writes reach
/// them first. Each shard seeds its own database, so the seed's cost is paid once per shard.
const SELECTION: &str =
    "io/,plans/,instructions/review,instructions/query,wall_time/service/record_review";

/// The one instruction count that is not the same in two unsharded runs of one commit: decoding
/// Postgres rows counted 135,559 and 135,712 instructions in two runs with the same filter
/// (0.1%; within its noise band and the 1% threshold). Every other deterministic metric must
/// be equal exactly.
const ROW_DECODING: &str = "instructions/query/due_cards_row_decode/";

/// A record's metrics by name: (kind, value).
fn metrics(record: &serde_json::Value) -> BTreeMap<String, (String, f64)> {
    record["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                (
                    m["kind"].as_str().unwrap().to_owned(),
                    m["value"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Every file below `dir` (none when it does not exist).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_below(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// A copy of the record at `path` in `dir`, with `edit` applied to its JSON.
fn edited_copy(path: &Path, dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut record = read_json(path);
    edit(&mut record);
    std::fs::create_dir_all(dir).unwrap();
    let copy = dir.join(path.file_name().unwrap());
    std::fs::write(&copy, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    copy
}

/// Each deterministic row's verdict in a `report.json`.
fn deterministic_verdicts(report: &serde_json::Value) -> BTreeMap<String, String> {
    report["rows"]
        .as_array()
        .expect("comparison rows")
        .iter()
        .filter(|row| row["kind"] != "statistical")
        .map(|row| {
            (
                row["name"].as_str().unwrap().to_owned(),
                row["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The one file in `dir`.
fn only_file(dir: &Path) -> PathBuf {
    let files = files_below(dir);
    assert_eq!(files.len(), 1, "{}: {files:?}", dir.display());
    files.into_iter().next().unwrap()
}

#[test]
fn three_shards_merged_hold_the_unsharded_runs_deterministic_metrics_and_get_its_verdict() {
    let _heavy = heavy();
    let fixture = fixture();
    let base = fixture.head();
    std::fs::write(
        fixture
            .root
            .join("bench-suite/migrations/0004_drop_due_index.sql"),
        "-- A change that loses the due list's index.\nDROP INDEX review_cards_user_due;\n",
    )
    .unwrap();
    fixture.commit_all("drop the due list's index");
    let head = fixture.head();
    let dir = tempfile::tempdir().unwrap();
    let perf = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "perf",
            "--quick",
            "--services",
            "native",
            "--base",
            "HEAD^",
            "--filter",
            SELECTION,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        run(fixture.xtask(&args))
    };
    let whole = perf(&dir.path().join("whole"), &[]);
    let shard_runs: Vec<_> = (1..=3)
        .map(|k| {
            perf(
                &dir.path().join(format!("shard-{k}")),
                &["--shard", &format!("{k}/3")],
            )
        })
        .collect();
    let shards: Vec<PathBuf> = (1..=3)
        .map(|k| dir.path().join(format!("shard-{k}/filtered/{head}.json")))
        .collect();
    let merged_head = dir.path().join("merged-head");
    let merged_base = dir.path().join("merged-base");
    let merge = |out: &Path, part: &str| {
        let mut args = vec!["perf", "merge", "--out", out.to_str().unwrap()];
        let parts: Vec<String> = (1..=3)
            .map(|k| {
                let file = dir.path().join(format!("shard-{k}/filtered/{part}"));
                file.to_str().unwrap().to_owned()
            })
            .collect();
        args.extend(parts.iter().map(String::as_str));
        run(fixture.xtask(&args))
    };
    let merged = [
        merge(&merged_head, &format!("{head}.json")),
        merge(&merged_base, &format!("base/{base}.json")),
    ];
    let judged_out = dir.path().join("judged");
    let judged = {
        let head_record = merged_head.join(format!("filtered/{head}.json"));
        let base_record = merged_base.join(format!("filtered/{base}.json"));
        run(fixture.xtask(&[
            "perf",
            "--from-record",
            head_record.to_str().unwrap(),
            "--base-record",
            base_record.to_str().unwrap(),
            "--filter",
            SELECTION,
            "--out",
            judged_out.to_str().unwrap(),
        ]))
    };
    // Leave the shared fixture as other tests expect it.
    fixture.git(&["reset", "--quiet", "--hard", &base]);

    assert_eq!(whole.code, Some(1), "{}", whole.describe());
    assert_torn_down(&ready_services(&whole.stderr));
    for (k, shard) in shard_runs.iter().enumerate() {
        assert!(matches!(shard.code, Some(0 | 1)), "{}", shard.describe());
        assert_torn_down(&ready_services(&shard.stderr));
        assert!(
            shard.stderr.contains("base: shard") && shard.stderr.contains("part stored at"),
            "each shard measured its part of the base: {}",
            shard.describe()
        );
        // The base commit's sources were built by the whole run: a shard's new worktree of
        // the same commit reuses that build instead of compiling the workspace again.
        assert!(
            shard.stderr.contains("reusing that build"),
            "shard {}: {}",
            k + 1,
            shard.describe()
        );
        for log in ["build.log", "build-benches.log"] {
            let path = dir.path().join(format!("shard-{}/raw/base/{log}", k + 1));
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                // Only a run of benchmarks builds them.
                Err(_) if log == "build-benches.log" => continue,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            assert!(
                !text.contains("Compiling bench-suite"),
                "shard {}: the base's bench-suite was compiled again ({}):\n{text}",
                k + 1,
                path.display()
            );
        }
    }
    for merge in &merged {
        assert_eq!(merge.code, Some(0), "{}", merge.describe());
        assert!(
            merge.stdout.contains("merged 3 shards"),
            "{}",
            merge.describe()
        );
    }

    // Each shard's record says which part it is and holds only that part.
    let mut units_seen = Vec::new();
    for (k, path) in shards.iter().enumerate() {
        let record = read_json(path);
        let shard = &record["shard"];
        assert_eq!(shard["index"], k as u64 + 1, "{shard:#}");
        assert_eq!(shard["count"], 3, "{shard:#}");
        assert_eq!(shard["filter"], SELECTION, "{shard:#}");
        let units: Vec<String> = shard["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect();
        assert!(!units.is_empty(), "{shard:#}");
        for name in metrics(&record).keys() {
            assert!(
                units
                    .iter()
                    .any(|unit| name == unit || name.starts_with(&format!("{unit}/"))),
                "shard {}: {name} is outside its units {units:?}",
                k + 1
            );
        }
        units_seen.extend(units);
    }
    let distinct: std::collections::BTreeSet<&String> = units_seen.iter().collect();
    assert_eq!(distinct.len(), units_seen.len(), "a unit in two shards");

    // The shards split a `--filter` run: the merged record is not a baseline candidate either.
    assert!(files_below(&merged_head.join("runs")).is_empty());
    let merged_record = read_json(&only_file(&merged_head.join("filtered")));
    assert!(
        merged_record.get("shard").is_none(),
        "{:#}",
        merged_record["shard"]
    );
    let whole_record = read_json(&dir.path().join(format!("whole/filtered/{head}.json")));
    let (merged_metrics, whole_metrics) = (metrics(&merged_record), metrics(&whole_record));
    assert_eq!(
        merged_metrics.keys().collect::<Vec<_>>(),
        whole_metrics.keys().collect::<Vec<_>>(),
        "the same metrics"
    );
    let deterministic: Vec<&String> = whole_metrics
        .iter()
        .filter(|(_, (kind, _))| kind != "statistical")
        .map(|(name, _)| name)
        .collect();
    assert!(
        deterministic.len() > 100
            && deterministic
                .iter()
                .any(|n| n.starts_with("instructions/query/due_cards_row_decode"))
            && deterministic.iter().any(|n| n.starts_with("plans/"))
            && deterministic.iter().any(|n| n.starts_with("io/")),
        "{deterministic:?}"
    );
    for name in deterministic {
        let (merged, whole) = (merged_metrics[name].1, whole_metrics[name].1);
        if name.starts_with(ROW_DECODING) {
            // Varies between two runs of one commit, sharded or not (see ROW_DECODING).
            assert!(
                ((merged - whole) / whole).abs() < 0.005,
                "{name}: {merged} vs {whole}"
            );
        } else {
            assert_eq!(merged_metrics[name], whole_metrics[name], "{name}");
        }
    }

    // Judged once, the merged records get the whole run's verdict and exit code.
    assert_eq!(judged.code, Some(1), "{}", judged.describe());
    assert!(
        ready_services(&judged.stderr).is_empty(),
        "judging a record starts no service: {}",
        judged.describe()
    );
    let expected = deterministic_verdicts(&read_json(&dir.path().join("whole/report.json")));
    let report = read_json(&judged_out.join("report.json"));
    assert_eq!(deterministic_verdicts(&report), expected);
    assert_eq!(expected["plans/due_cards_first_page"], "regression");
    assert_eq!(expected["io/dashboard_warm/sql_statements"], "unchanged");
    assert_eq!(
        report["baseline"]["commit"],
        base.as_str(),
        "{:#}",
        report["baseline"]
    );
    // The judged record is stored like a run's, with nothing left of its shards.
    let stored = read_json(&only_file(&judged_out.join("filtered")));
    assert_eq!(stored["commit"], head.as_str());
    assert!(stored.get("shard").is_none());

    // Faults: each an error naming the problem, exit 2, and nothing written.
    let faulty = dir.path().join("faulty");
    let edited = dir.path().join("edited");
    let other_commit = edited_copy(&shards[2], &edited.join("commit"), |record| {
        record["commit"] = "0".repeat(40).into();
    });
    let other_machine = edited_copy(&shards[1], &edited.join("machine"), |record| {
        record["environment"]["machine_class"] = "linux-aarch64-64c-00000000".into();
    });
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let cases: [(&str, Vec<String>, &str); 4] = [
        (
            "a lost shard",
            vec![path(&shards[0]), path(&shards[1])],
            "shard 3/3 of this run is missing",
        ),
        (
            "a shard given twice",
            vec![
                path(&shards[0]),
                path(&shards[1]),
                path(&shards[1]),
                path(&shards[2]),
            ],
            "shard 2/3 is given twice",
        ),
        (
            "a shard of another commit",
            vec![path(&shards[0]), path(&shards[1]), path(&other_commit)],
            "the shards are of different commits",
        ),
        (
            "a shard of another machine class",
            vec![path(&shards[0]), path(&other_machine), path(&shards[2])],
            "linux-aarch64-64c-00000000",
        ),
    ];
    for (what, records, message) in cases {
        let mut args = vec![
            "perf".to_owned(),
            "merge".to_owned(),
            "--out".to_owned(),
            path(&faulty),
        ];
        args.extend(records);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = run(fixture.xtask(&args));
        assert_eq!(result.code, Some(2), "{what}: {}", result.describe());
        assert!(
            result.stderr.contains(message) && result.stderr.contains("fix:"),
            "{what}: {}",
            result.describe()
        );
        assert!(
            files_below(&faulty).is_empty(),
            "{what}: something was written"
        );
    }
}

#[test]
fn a_shard_that_is_not_k_of_n_or_more_shards_than_units_is_a_usage_error() {
    let _heavy = heavy();
    let fixture = fixture();
    let out = tempfile::tempdir().unwrap();
    let result = run(fixture.xtask(&["perf", "--shard", "4/3", "--base", "none"]));
    assert_eq!(result.code, Some(2), "{}", result.describe());
    assert!(
        result.stderr.contains("k/n with 1 <= k <= n"),
        "{}",
        result.describe()
    );
    let result = run(fixture.xtask(&[
        "perf",
        "--shard",
        "2/3",
        "--base",
        "none",
        "--filter",
        "=io/dashboard_warm,=plans/word_by_id",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(result.code, Some(2), "{}", result.describe());
    assert!(
        result
            .stderr
            .contains("the selection has 2 benchmarks, scenarios and plans, fewer than 3 shards")
            && result.stderr.contains("fix: use at most 2 shards"),
        "{}",
        result.describe()
    );
    assert!(
        ready_services(&result.stderr).is_empty(),
        "no service started: {}",
        result.describe()
    );
}
