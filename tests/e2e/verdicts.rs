//! Budgets and acceptance through the real binary on real services: a broken budget fails the
//! run (exit 1) and the report says which budget and by how much; `--accept` turns the same run
//! into a success whose record says who accepted what and why.

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
                &["--accept", "the warm dashboard reads one goal row"],
            ]
            .concat(),
        )
        .env("GITHUB_ACTOR", "octocat"));
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
