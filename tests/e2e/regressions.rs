//! Regressions injected as real commits into the fixture's code, each caught by the real
//! binary comparing the commit with its parent (measured in a worktree) on real services:
//! about 1% more instructions decoding a page of due rows, and an N+1 (one extra SQL
//! statement per card of a due page), in one commit measured once. The fixture is put back to
//! its base commit afterwards.

use std::path::Path;
use std::sync::OnceLock;

use perf_tests::{Fixture, fixture, heavy, read_json, run};

/// Replaces `from` (which must occur exactly once) with `to` in a file of the fixture.
fn edit(fixture: &Fixture, file: &str, from: &str, to: &str) {
    let path = fixture.root.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{file} no longer holds the code this test changes: {from}"
    );
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// Commits the edits, compares the commit with its parent through `--filter`, resets the
/// fixture to the parent, and returns the exit code, stdout and report rows.
fn compare_with_parent(
    fixture: &Fixture,
    message: &str,
    filter: &str,
) -> (Option<i32>, String, Vec<serde_json::Value>) {
    let base = fixture.head();
    fixture.commit_all(message);
    let out = tempfile::tempdir().unwrap();
    let result = run(fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        &base,
        "--filter",
        filter,
        "--out",
        out.path().to_str().unwrap(),
    ]));
    fixture.git(&["reset", "--quiet", "--hard", &base]);
    let report_path = out.path().join("report.json");
    assert!(
        Path::new(&report_path).exists(),
        "no report: {}",
        result.describe()
    );
    let report = read_json(&report_path);
    assert_eq!(report["baseline"]["commit"], base.as_str(), "{report:#}");
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    (result.code, result.describe(), rows)
}

fn row<'a>(rows: &'a [serde_json::Value], name: &str, described: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|row| row["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {described}"))
}

/// What the fixture's commit with both injected regressions measured against its parent.
struct InjectedRun {
    code: Option<i32>,
    described: String,
    rows: Vec<serde_json::Value>,
}

/// One commit holds both regressions and one run (`--filter due_cards`, which selects the
/// row-decoding instruction benchmark and the due-list scenario) measures it against its
/// parent; each test then checks its own regression in that report. Made once, by whichever
/// test asks first.
fn injected_run() -> &'static InjectedRun {
    static RUN: OnceLock<InjectedRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let _heavy = heavy();
        let fixture = fixture();
        // About 1.2% more instructions per decoded page: wasted steps per row (the loop is
        // unrolled: about 1.1 instructions a step with this toolchain).
        edit(
            fixture,
            "bench-suite/src/query/cards.rs",
            "    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {\n        Ok(Self {",
            "    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {\n        for step in 0..32_u32 {\n            std::hint::black_box(step);\n        }\n        Ok(Self {",
        );
        // The classic N+1: each card of a due page fetches its word again, one statement each.
        edit(
            fixture,
            "bench-suite/src/query/cards.rs",
            "    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))",
            "    for card in &cards {\n        let _: (String,) = sqlx::query_as(\"SELECT lemma FROM words WHERE id = $1\")\n            .bind(card.word_id)\n            .fetch_one(pool)\n            .await?;\n    }\n    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))",
        );
        let (code, described, rows) = compare_with_parent(
            fixture,
            "perf: wasted steps per row, and each card's word fetched again",
            "due_cards",
        );
        InjectedRun {
            code,
            described,
            rows,
        }
    })
}

#[test]
fn an_injected_one_percent_instruction_regression_is_flagged() {
    let run = injected_run();
    let name = "instructions/query/due_cards_row_decode/page_of_50";
    let decode = row(&run.rows, name, &run.described);
    let change = decode["change_pct"].as_f64().unwrap();
    assert!(
        (1.0..2.0).contains(&change),
        "the injected change is {change}%, not about 1%: {decode:#}"
    );
    assert_eq!(
        decode["verdict"], "regression",
        "{decode:#}\n{}",
        run.described
    );
    assert_eq!(run.code, Some(1), "{}", run.described);
    assert!(run.described.contains(name), "{}", run.described);
}

#[test]
fn an_n_plus_one_query_is_flagged() {
    let run = injected_run();
    let statements = row(&run.rows, "io/due_cards/sql_statements", &run.described);
    let (base, head) = (
        statements["base"].as_f64().unwrap(),
        statements["head"].as_f64().unwrap(),
    );
    let cards = row(&run.rows, "io/due_cards/observed/cards", &run.described)["head"]
        .as_f64()
        .unwrap();
    assert_eq!(
        head - base,
        cards,
        "one extra statement per card: {statements:#}"
    );
    assert_eq!(statements["verdict"], "regression", "{statements:#}");
    assert_eq!(run.code, Some(1), "{}", run.described);
}
