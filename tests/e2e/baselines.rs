//! `cargo xtask perf baseline ...` on the fixture's repository and bare remotes in temp dirs:
//! a record added, listed, shown, pushed and fetched back with another machine's record; a
//! dirty record and an unknown one refused with exit code 2, the branch left as it was; and
//! `perf history` finding a shift in a branch of stored records; `baseline record` measuring a
//! revision in a worktree and storing it.
//!
//! The records are of a commit on a branch of its own that no other test measures or
//! compares with, so the fixture's baseline branch never changes another test's base.

use std::path::Path;

use perf_tests::{
    assert_torn_down, assert_valid_record, fixture, heavy, ready_services, run, shared_target_dir,
};

fn record_json(commit: &str, machine_class: &str, dirty: bool) -> String {
    record_json_with(commit, machine_class, dirty, 30.0, 1_000.0)
}

/// A record with two metrics: SQL statements `statements` and an instruction count
/// `instructions`.
fn record_json_with(
    commit: &str,
    machine_class: &str,
    dirty: bool,
    statements: f64,
    instructions: f64,
) -> String {
    serde_json::json!({
        "schema_version": 1, "commit": commit, "dirty": dirty, "branch": "main",
        "created_at": "2026-11-01T00:00:00Z", "profile": "quick",
        "environment": {
            "machine_class": machine_class, "cpu_model": "cpu", "cores": 2,
            "os": "linux", "rustc": "rustc", "valgrind": null, "gungraun_runner": null,
            "services": {
                "mode": "native", "reason": "--services native",
                "postgres_version": "15.18", "redis_version": "7.0.15",
                "postgres_image": null, "redis_image": null
            },
            "config_hash": "0123456789abcdef"
        },
        "phases": [],
        "metrics": [{ "name": "io/due_cards/sql_statements", "suite": "io_counts",
                      "unit": "statements", "kind": "deterministic", "value": statements },
                    { "name": "instructions/sm2/schedule", "suite": "instructions",
                      "unit": "instructions", "kind": "deterministic", "value": instructions }],
    })
    .to_string()
}

fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=perf-tests",
            "-c",
            "user.email=perf-tests@localhost",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn records_are_added_listed_shown_pushed_and_fetched() {
    let fixture = fixture();
    let tree = fixture.git(&["rev-parse", "HEAD^{tree}"]);
    let commit = fixture.git(&["commit-tree", &tree, "-m", "measured by the baseline test"]);
    fixture.git(&["branch", "--force", "baseline-cli-test", &commit]);
    let files = tempfile::tempdir().unwrap();
    let branch_tip = || {
        fixture.git(&[
            "for-each-ref",
            "--format=%(objectname)",
            "refs/heads/perf-baselines",
        ])
    };

    // A dirty work tree's record is refused; the branch does not move.
    let dirty = files.path().join("dirty.json");
    std::fs::write(&dirty, record_json(&commit, "e2e-class", true)).unwrap();
    let before = branch_tip();
    let refused = run(fixture.xtask(&["perf", "baseline", "add", dirty.to_str().unwrap()]));
    assert_eq!(refused.code, Some(2), "{}", refused.describe());
    assert!(refused.stderr.contains("dirty"), "{}", refused.describe());
    assert_eq!(branch_tip(), before);

    // A clean one is stored, listed and shown.
    let clean = files.path().join("clean.json");
    std::fs::write(&clean, record_json(&commit, "e2e-class", false)).unwrap();
    let added = run(fixture.xtask(&["perf", "baseline", "add", clean.to_str().unwrap()]));
    assert_eq!(added.code, Some(0), "{}", added.describe());
    assert!(
        added
            .stdout
            .contains(&format!("stored e2e-class/{commit}.json")),
        "{}",
        added.describe()
    );
    let again = run(fixture.xtask(&["perf", "baseline", "add", clean.to_str().unwrap()]));
    assert!(
        again.stdout.contains("already stored"),
        "{}",
        again.describe()
    );
    let listed = run(fixture.xtask(&["perf", "baseline", "list"]));
    assert_eq!(listed.code, Some(0), "{}", listed.describe());
    assert!(
        listed.stdout.contains(&format!("e2e-class  {commit}")),
        "{}",
        listed.describe()
    );
    let shown = run(fixture.xtask(&[
        "perf",
        "baseline",
        "show",
        "baseline-cli-test",
        "--machine-class",
        "e2e-class",
    ]));
    assert_eq!(shown.code, Some(0), "{}", shown.describe());
    let record: serde_json::Value = serde_json::from_str(&shown.stdout).expect("a JSON record");
    assert_eq!(record["commit"], commit.as_str());

    // This machine's class has no record of that commit: exit 2 with the fix.
    let unknown = run(fixture.xtask(&["perf", "baseline", "show", "baseline-cli-test"]));
    assert_eq!(unknown.code, Some(2), "{}", unknown.describe());
    assert!(unknown.stderr.contains("fix:"), "{}", unknown.describe());

    // Pushed to a bare remote, which then holds the same branch.
    let remote = tempfile::tempdir().unwrap();
    git_in(remote.path(), &["init", "--quiet", "--bare"]);
    let remote_arg = remote.path().to_str().unwrap();
    let pushed = run(fixture.xtask(&["perf", "baseline", "push", "--remote", remote_arg]));
    assert_eq!(pushed.code, Some(0), "{}", pushed.describe());
    assert!(
        pushed.stdout.contains("pushed perf-baselines"),
        "{}",
        pushed.describe()
    );
    assert_eq!(
        git_in(remote.path(), &["rev-parse", "refs/heads/perf-baselines"]),
        branch_tip()
    );

    // Another machine adds its record to the remote; fetch brings it here.
    let other = tempfile::tempdir().unwrap();
    git_in(
        other.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            "perf-baselines",
            remote_arg,
            ".",
        ],
    );
    std::fs::create_dir_all(other.path().join("other-class")).unwrap();
    std::fs::write(
        other
            .path()
            .join("other-class")
            .join(format!("{commit}.json")),
        record_json(&commit, "other-class", false),
    )
    .unwrap();
    git_in(other.path(), &["add", "--all"]);
    git_in(
        other.path(),
        &["commit", "--quiet", "-m", "another machine's record"],
    );
    git_in(
        other.path(),
        &["push", "--quiet", "origin", "perf-baselines"],
    );
    let fetched = run(fixture.xtask(&["perf", "baseline", "fetch", "--remote", remote_arg]));
    assert_eq!(fetched.code, Some(0), "{}", fetched.describe());
    assert!(
        fetched.stdout.contains("fast-forwarded"),
        "{}",
        fetched.describe()
    );
    let listed = run(fixture.xtask(&["perf", "baseline", "list"]));
    assert!(
        listed.stdout.contains(&format!("other-class  {commit}")),
        "{}",
        listed.describe()
    );
}

/// Sixteen commits on a branch of their own, each with a stored record (a machine class no
/// other test uses): the instruction count steps up 0.8% at the ninth, below any per-PR
/// threshold; the SQL statement count never moves. `perf history` names the shift, the
/// commit it came with, and nothing else.
#[test]
fn history_finds_the_commit_a_small_persistent_shift_came_with() {
    let fixture = fixture();
    let tree = fixture.git(&["rev-parse", "HEAD^{tree}"]);
    let files = tempfile::tempdir().unwrap();
    let mut parent: Option<String> = None;
    let mut commits = Vec::new();
    for index in 0..16 {
        let message = format!("history step {index}");
        let mut args = vec!["commit-tree", tree.as_str(), "-m", message.as_str()];
        if let Some(parent) = &parent {
            args.extend(["-p", parent.as_str()]);
        }
        let commit = fixture.git(&args);
        let instructions = if index < 8 { 1_000_000.0 } else { 1_008_000.0 };
        let file = files.path().join(format!("{index}.json"));
        std::fs::write(
            &file,
            record_json_with(&commit, "e2e-history", false, 30.0, instructions),
        )
        .unwrap();
        let added = run(fixture.xtask(&["perf", "baseline", "add", file.to_str().unwrap()]));
        assert_eq!(added.code, Some(0), "{}", added.describe());
        commits.push(commit.clone());
        parent = Some(commit);
    }
    fixture.git(&["branch", "--force", "history-test", &commits[15]]);

    let history = run(fixture.xtask(&[
        "perf",
        "history",
        "--rev",
        "history-test",
        "--machine-class",
        "e2e-history",
    ]));
    assert_eq!(history.code, Some(0), "{}", history.describe());
    assert!(
        history.stdout.contains("history: 16 records"),
        "{}",
        history.describe()
    );
    let shift_lines: Vec<&str> = history
        .stdout
        .lines()
        .filter(|line| line.contains('%') && line.contains("from "))
        .collect();
    assert_eq!(shift_lines.len(), 1, "{}", history.describe());
    let line = shift_lines[0];
    assert!(line.contains("+0.80%"), "{line}");
    assert!(line.contains("instructions/sm2/schedule"), "{line}");
    assert!(line.contains(&commits[8][..10]), "{line}");
    assert!(line.contains("history step 8"), "{line}");
    assert!(
        !history.stdout.contains("io/due_cards"),
        "{}",
        history.describe()
    );

    // A revision that does not exist: exit 2 and the fix.
    let unknown = run(fixture.xtask(&["perf", "history", "--rev", "no-such-branch"]));
    assert_eq!(unknown.code, Some(2), "{}", unknown.describe());
    assert!(unknown.stderr.contains("fix:"), "{}", unknown.describe());
}

/// `baseline record <rev>` measures a commit in a worktree on real services and stores its
/// record on the baseline branch (and in the runs directory); an unknown revision fails
/// before any service starts. The commit has the fixture's tree but no parent, so no other
/// test ever chooses its record as a base.
#[test]
fn baseline_record_measures_a_revision_and_stores_it() {
    let _heavy = heavy();
    let fixture = fixture();
    let tree = fixture.git(&["rev-parse", "HEAD^{tree}"]);
    let commit = fixture.git(&["commit-tree", &tree, "-m", "recorded by the baseline test"]);
    fixture.git(&["branch", "--force", "baseline-record-test", &commit]);

    let unknown = run(fixture.xtask(&["perf", "baseline", "record", "no-such-revision"]));
    assert_eq!(unknown.code, Some(2), "{}", unknown.describe());
    assert!(
        unknown.stderr.contains("no-such-revision") && unknown.stderr.contains("fix:"),
        "{}",
        unknown.describe()
    );
    assert!(
        !unknown.stderr.contains("services:"),
        "{}",
        unknown.describe()
    );

    let recorded = run(fixture.xtask(&[
        "perf",
        "baseline",
        "record",
        "baseline-record-test",
        "--quick",
        "--services",
        "native",
    ]));
    assert_eq!(recorded.code, Some(0), "{}", recorded.describe());
    assert_torn_down(&ready_services(&recorded.stderr));
    assert!(
        recorded
            .stdout
            .contains(&format!("/{commit}.json on perf-baselines")),
        "{}",
        recorded.describe()
    );
    let shown = run(fixture.xtask(&["perf", "baseline", "show", "baseline-record-test"]));
    assert_eq!(shown.code, Some(0), "{}", shown.describe());
    let record: serde_json::Value = serde_json::from_str(&shown.stdout).expect("a JSON record");
    assert_valid_record(&record, Path::new("perf-baselines"));
    assert_eq!(record["commit"], commit.as_str());
    assert_eq!(record["dirty"], false);
    assert_eq!(record["profile"], "quick");
    assert!(
        record["metrics"].as_array().unwrap().len() > 50,
        "{}",
        shown.stdout
    );
    // The default out directory is under the target directory the fixture builds in.
    let runs_copy = shared_target_dir()
        .join("perf/runs")
        .join(format!("{commit}.json"));
    assert!(runs_copy.exists(), "{} missing", runs_copy.display());
}
