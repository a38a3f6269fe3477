//! `--base <rev>` without a stored record: the base revision is checked out in a git worktree,
//! built and measured in the same run, compared, and the worktree is removed.

use perf_tests::{assert_torn_down, fixture, heavy, read_json, ready_services, run};

#[test]
fn a_base_without_a_record_is_measured_in_a_worktree() {
    let _heavy = heavy();
    let fixture = fixture();
    let base = fixture.head();
    // A second commit that changes no measured code.
    std::fs::write(
        fixture.root.join("NOTES.txt"),
        "a change that measures the same\n",
    )
    .unwrap();
    let head = fixture.commit_all("docs: a note");
    let out = tempfile::tempdir().unwrap();
    let result = run(fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        &base,
        "--filter",
        "due_cards",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    // Leave the shared fixture as other tests expect it.
    fixture.git(&["reset", "--quiet", "--hard", &base]);
    assert_eq!(result.code, Some(0), "{}", result.describe());
    assert!(
        result.stdout.contains("measured in a git worktree"),
        "{}",
        result.describe()
    );
    assert!(
        result.stdout.contains("No regression"),
        "{}",
        result.describe()
    );
    assert_torn_down(&ready_services(&result.stderr));
    let report = read_json(&out.path().join("report.json"));
    assert_eq!(report["head"]["commit"], head.as_str());
    assert_eq!(report["baseline"]["commit"], base.as_str());
    let rows = report["rows"].as_array().unwrap();
    let io_row = rows
        .iter()
        .find(|r| r["name"] == "io/due_cards/sql_statements")
        .expect("the due_cards scenario was compared");
    assert_eq!(io_row["verdict"], "unchanged", "{io_row:#}");
    let worktrees = fixture.git(&["worktree", "list", "--porcelain"]);
    assert_eq!(
        worktrees.matches("worktree ").count(),
        1,
        "a worktree was left: {worktrees}"
    );
}
