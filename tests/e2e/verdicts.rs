//! Budgets and acceptance through the real binary on real services: a broken budget fails the
//! run (exit 1) and the report says which budget and by how much; `--accept` turns the same run
//! into a success whose record says who accepted what and why; `perf calibrate` counts the
//! false alarms of repeated runs of one commit.

use std::path::PathBuf;

use perf_tests::{fixture, heavy, read_json, run};

/// Appends to the fixture's `Cargo.toml` and puts the original back when dropped (also when
/// the test fails), so other tests see the project's own configuration again.
struct ManifestAddition {
    path: PathBuf,
    original: String,
}

impl ManifestAddition {
    fn append(path: PathBuf, text: &str) -> Self {
        let original = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{original}\n{text}")).unwrap();
        Self { path, original }
    }
}

impl Drop for ManifestAddition {
    fn drop(&mut self) {
        std::fs::write(&self.path, &self.original).unwrap();
    }
}

#[test]
fn a_broken_budget_fails_the_run_and_an_acceptance_records_who_and_why() {
    let _heavy = heavy();
    let fixture = fixture();
    // A warm dashboard sends no SQL statement: a budget of at least one is broken by one.
    let _budget = ManifestAddition::append(
        fixture.root.join("Cargo.toml"),
        "[[workspace.metadata.perf.budgets]]\nmetric = \"io/dashboard_warm/sql_statements\"\nmin = 1\n",
    );
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap();
    let args = [
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        "none",
        "--filter",
        "io/dashboard_warm",
        "--out",
        out_arg,
    ];
    let broken = run(fixture.xtask(&args));
    assert_eq!(broken.code, Some(1), "{}", broken.describe());
    assert!(
        broken.stdout.contains("1 budget(s) broken."),
        "{}",
        broken.describe()
    );
    assert!(
        broken
            .stdout
            .contains("BROKEN  io/dashboard_warm/sql_statements = 0 (≥ 1): 1 below the minimum 1"),
        "{}",
        broken.describe()
    );
    let markdown = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(markdown.contains("| **broken** |"), "{markdown}");

    let accepted = run(fixture
        .xtask(
            &[
                &args[..],
                &[
                    "--accept",
                    "the warm dashboard reads one goal row",
                    "--accepted-by",
                    "octocat",
                ],
            ]
            .concat(),
        )
        // On a push, GitHub's actor is the pusher: it must not be taken for the acceptor.
        .env("GITHUB_ACTOR", "the-pusher"));
    assert_eq!(accepted.code, Some(0), "{}", accepted.describe());
    assert!(
        accepted
            .stdout
            .contains("Accepted by octocat: the warm dashboard reads one goal row."),
        "{}",
        accepted.describe()
    );
    let report = read_json(&out.path().join("report.json"));
    let record_path = report["record"].as_str().expect("the record's path");
    let record = read_json(std::path::Path::new(record_path));
    assert_eq!(record["acceptance"]["by"], "octocat");
    assert_eq!(
        record["acceptance"]["accepted"],
        serde_json::json!(["budget io/dashboard_warm/sql_statements"])
    );
}

/// `perf calibrate` measures HEAD repeatedly on one set of services and finds no false alarm
/// in the I/O counts of a scenario (every A/A comparison judged, none alarming), and says so
/// in its JSON as well.
#[test]
fn calibrate_finds_no_false_alarm_in_repeated_runs_of_one_commit() {
    let _heavy = heavy();
    let fixture = fixture();
    let out = tempfile::tempdir().unwrap();
    let calibrated = run(fixture.xtask(&[
        "perf",
        "calibrate",
        "--runs",
        "3",
        "--quick",
        "--services",
        "native",
        "--filter",
        "io/due_cards",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(calibrated.code, Some(0), "{}", calibrated.describe());
    assert!(
        calibrated
            .stdout
            .contains("calibration: 3 runs of the same commit, 2 A/A comparisons"),
        "{}",
        calibrated.describe()
    );
    assert!(
        calibrated.stdout.contains("no false alarm"),
        "{}",
        calibrated.describe()
    );
    let calibration = read_json(&out.path().join("calibration.json"));
    let metrics = calibration["metrics"].as_array().unwrap();
    let statements = metrics
        .iter()
        .find(|m| m["name"] == "io/due_cards/sql_statements")
        .expect("the due_cards scenario was measured");
    assert_eq!(statements["comparisons"], 2, "{statements:#}");
    assert_eq!(statements["false_alarms"], 0, "{statements:#}");
    assert_eq!(statements["min"], statements["max"], "{statements:#}");

    let refused = run(fixture.xtask(&["perf", "calibrate", "--runs", "1"]));
    assert_eq!(refused.code, Some(2), "{}", refused.describe());
}
