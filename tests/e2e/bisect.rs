//! `perf bisect` on a real history: sixteen commits on the fixture's base, one of which adds an
//! N+1 to the due list (one more SQL statement per card of a page). The ends have stored
//! records (filtered runs at both, as a developer's `perf --filter` leaves them); the
//! bisection measures the commits between them it must, each in a worktree, finds the commit
//! with the N+1 in at most five measurements, and a second bisection measures nothing. With
//! `--paired`, the same commit is found by wall time, each step timed side by side with the
//! good end. The fixture is put back to its base commit afterwards, whatever happened.

use std::path::Path;

use perf_tests::{Fixture, RunOutput, fixture, heavy, run};

use crate::regressions::edit;

/// Puts the fixture back to `base` when dropped (also when a test panics).
struct ResetTo<'a> {
    fixture: &'a Fixture,
    base: String,
}

impl Drop for ResetTo<'_> {
    fn drop(&mut self) {
        self.fixture
            .git(&["reset", "--quiet", "--hard", &self.base]);
    }
}

const METRIC: &str = "io/due_cards/sql_statements";

/// `cargo xtask perf` of HEAD with only the due list's I/O scenario, nothing to compare with:
/// its record goes to `<out>/filtered/`.
fn filtered_run(fixture: &Fixture, out: &Path) {
    let output = run(fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        "none",
        "--filter",
        "io/due_cards",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(output.code, Some(0), "{}", output.describe());
}

fn bisect(fixture: &Fixture, out: &Path, good: &str, bad: &str) -> RunOutput {
    run(fixture.xtask(&[
        "perf",
        "bisect",
        "--metric",
        METRIC,
        "--good",
        good,
        "--bad",
        bad,
        "--services",
        "native",
        "--out",
        out.to_str().unwrap(),
    ]))
}

/// The count in `looked at … commits: N measured, M from stored records`.
fn measured(output: &RunOutput) -> usize {
    let line = output
        .stdout
        .lines()
        .find(|line| line.contains(" measured, "))
        .unwrap_or_else(|| panic!("no count of measurements: {}", output.describe()));
    let (before, _) = line.split_once(" measured, ").unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn bisect_finds_the_commit_that_added_an_n_plus_one_and_measures_nothing_the_second_time() {
    let _heavy = heavy();
    let fixture = fixture();
    let _reset = ResetTo {
        fixture,
        base: fixture.head(),
    };
    let out = tempfile::tempdir().unwrap();
    // Counts do not depend on the optimiser: every commit measured here builds bench-suite in
    // seconds instead of a minute.
    let manifest = fixture.root.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[profile.release.package.bench-suite]\nopt-level = 0\n");
    std::fs::write(&manifest, text).unwrap();
    let good = fixture.commit_all("bisect 1: bench-suite unoptimised");
    filtered_run(fixture, out.path());
    let mut culprit = String::new();
    let mut commits = vec![good.clone()];
    for step in 2..=16 {
        std::fs::write(
            fixture.root.join("bisect-step.txt"),
            format!("step {step}\n"),
        )
        .unwrap();
        let subject = if step == 11 {
            edit(
                fixture,
                "bench-suite/src/query/cards.rs",
                "    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))",
                "    for card in &cards {\n        let _: (String,) = sqlx::query_as(\"SELECT lemma FROM words WHERE id = $1\")\n            .bind(card.word_id)\n            .fetch_one(pool)\n            .await?;\n    }\n    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))",
            );
            format!("bisect {step}: each due card's word fetched again")
        } else {
            format!("bisect {step}")
        };
        let commit = fixture.commit_all(&subject);
        commits.push(commit.clone());
        if step == 11 {
            culprit = commit;
        }
    }
    let bad = fixture.head();
    filtered_run(fixture, out.path());

    let first = bisect(fixture, out.path(), &good, &bad);
    assert_eq!(first.code, Some(0), "{}", first.describe());
    let found = format!(
        "first crosses its threshold at {} \"bisect 11: each due card's word fetched again\"",
        &culprit[..10]
    );
    assert!(first.stdout.contains(&found), "{}", first.describe());
    let measurements = measured(&first);
    assert!(
        (1..=5).contains(&measurements),
        "{measurements} measurements: {}",
        first.describe()
    );
    assert!(
        first.stdout.contains("from stored records"),
        "{}",
        first.describe()
    );
    assert!(
        first.stderr.contains("services: tearing down"),
        "{}",
        first.describe()
    );

    let second = bisect(fixture, out.path(), &good, &bad);
    assert_eq!(second.code, Some(0), "{}", second.describe());
    assert!(second.stdout.contains(&found), "{}", second.describe());
    assert_eq!(measured(&second), 0, "{}", second.describe());
    assert!(
        !second.stderr.contains("services:"),
        "a bisection with every value stored started services: {}",
        second.describe()
    );

    // Wall time, with --paired: from commit 10 to 12, each commit the search looks at (12, then
    // 11) is timed side by side with commit 10 and judged by the paired test. The N+1 (50 more round trips
    // per page) makes the due list several times slower.
    let paired = run(fixture.xtask(&[
        "perf",
        "bisect",
        "--metric",
        "wall_time/query/due_cards",
        "--paired",
        "--paired-rounds",
        "6",
        "--good",
        &commits[9],
        "--bad",
        &commits[11],
        "--services",
        "native",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(paired.code, Some(0), "{}", paired.describe());
    let found = format!(
        "first judged slower at {} \"bisect 11: each due card's word fetched again\"",
        &culprit[..10]
    );
    assert!(paired.stdout.contains(&found), "{}", paired.describe());
    assert!(
        paired.stdout.contains("against the good end") && paired.stdout.contains("(paired, "),
        "the paired test's certainty is printed: {}",
        paired.describe()
    );
    let timed = paired
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("timed "))
        .and_then(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no count of timed commits: {}", paired.describe()));
    assert!(
        (2..=3).contains(&timed),
        "{timed} steps: {}",
        paired.describe()
    );
    // A wall-time metric without --paired is refused, naming the fix.
    let unpaired = run(fixture.xtask(&[
        "perf",
        "bisect",
        "--metric",
        "wall_time/query/due_cards",
        "--good",
        &good,
        "--bad",
        &bad,
        "--services",
        "native",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(unpaired.code, Some(2), "{}", unpaired.describe());
    assert!(
        unpaired.stderr.contains("--paired"),
        "{}",
        unpaired.describe()
    );

    // Bad input is refused before anything is measured, naming the fix.
    let nonsense = run(fixture.xtask(&[
        "perf",
        "bisect",
        "--metric",
        "due_cards",
        "--good",
        &good,
        "--bad",
        &bad,
    ]));
    assert_eq!(nonsense.code, Some(2), "{}", nonsense.describe());
    assert!(nonsense.stderr.contains("fix:"), "{}", nonsense.describe());
    let same = run(fixture.xtask(&[
        "perf", "bisect", "--metric", METRIC, "--good", &bad, "--bad", &bad,
    ]));
    assert_eq!(same.code, Some(2), "{}", same.describe());
    assert!(
        same.stderr.contains("the same commit"),
        "{}",
        same.describe()
    );
}
