//! No blind spot: every wall-time benchmark's operation has exact I/O counts
//! (`io/call.<group>.<name>/…`, one counted call of the same operation), gated like the
//! scenarios'. One commit adds an N+1 to each query path the benchmarks run, each with its own
//! statement text; one run compares it with its parent (measured in a worktree). Each path's
//! counted call is a regression by exactly the statements injected into that path, the extra
//! statement is named under that path and no other, the paths the benchmarks run warm (no SQL)
//! and the raw statement (no layer code) do not move, and the run fails.

use std::collections::{BTreeMap, BTreeSet};

use perf_tests::{fixture, heavy, read_json, run};

use crate::regressions::edit;

/// A statement of its own per path: `SELECT id, id, … FROM words WHERE id = $1`, with as many
/// `id`s as the path's number (`pg_stat_statements` tells statements apart by their parse
/// tree, in which a column alias is not, but the length of the select list is).
macro_rules! lookup {
    ($select:literal, $id:literal, $on:literal) => {
        concat!(
            "sqlx::query(\"SELECT ",
            $select,
            " FROM words WHERE id = $1\").bind(",
            $id,
            ").execute(",
            $on,
            ").await?;"
        )
    };
}

/// An N+1 in each query path the benchmarks run: (file, unique anchor, the anchor with the
/// extra statements).
const INJECTIONS: &[(&str, &str, &str)] = &[
    // Per card of a due page (first and later pages).
    (
        "bench-suite/src/query/cards.rs",
        "    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))",
        concat!(
            "    for card in &cards { ",
            lookup!("id", "card.word_id", "pool"),
            " }\n    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))"
        ),
    ),
    // Per difficult card asked for (20).
    (
        "bench-suite/src/query/cards.rs",
        ") -> Result<Vec<DifficultCard>, sqlx::Error> {\n",
        concat!(
            ") -> Result<Vec<DifficultCard>, sqlx::Error> {\n    for id in 0..i64::from(limit) { ",
            lookup!("id, id", "id", "pool"),
            " }\n"
        ),
    ),
    // Per hit asked for (20).
    (
        "bench-suite/src/query/words.rs",
        ") -> Result<Vec<WordHit>, sqlx::Error> {\n",
        concat!(
            ") -> Result<Vec<WordHit>, sqlx::Error> {\n    for id in 0..i64::from(limit) { ",
            lookup!("id, id, id", "id", "pool"),
            " }\n"
        ),
    ),
    // Per row of the statistics (one).
    (
        "bench-suite/src/query/stats.rs",
        ") -> Result<UserStats, sqlx::Error> {\n",
        concat!(
            ") -> Result<UserStats, sqlx::Error> {\n    ",
            lookup!("id, id, id, id", "user_id", "pool"),
            "\n"
        ),
    ),
    // Per row of the preferences (one).
    (
        "bench-suite/src/query/users.rs",
        ") -> Result<Option<UserPreferences>, sqlx::Error> {\n",
        concat!(
            ") -> Result<Option<UserPreferences>, sqlx::Error> {\n    ",
            lookup!("id, id, id, id, id", "user_id", "pool"),
            "\n"
        ),
    ),
    // Per review (one), before its transaction.
    (
        "bench-suite/src/query/review.rs",
        "    let mut tx = pool.begin().await?;\n    let locked",
        concat!(
            "    ",
            lookup!("id, id, id, id, id, id", "card_id", "pool"),
            "\n    let mut tx = pool.begin().await?;\n    let locked"
        ),
    ),
    // Per imported card, in the set-based import and in the row-by-row loop.
    (
        "bench-suite/src/query/import.rs",
        "    let due: Vec<_> = cards.iter().map(|c| c.due_at).collect();\n",
        concat!(
            "    let due: Vec<_> = cards.iter().map(|c| c.due_at).collect();\n    for card in cards { ",
            lookup!("id, id, id, id, id, id, id", "card.word_id", "pool"),
            " }\n"
        ),
    ),
    (
        "bench-suite/src/query/import.rs",
        "    for card in cards {\n        inserted +=",
        concat!(
            "    for card in cards {\n        ",
            lookup!(
                "id, id, id, id, id, id, id, id",
                "card.word_id",
                "&mut *connection"
            ),
            "\n        inserted +="
        ),
    ),
];

/// (counted call, statements added per call, the alias of the statement injected into it)
const EXPECTED: &[(&str, f64, &[&str])] = &[
    ("call.query.due_cards", 50.0, &["due_n1"]),
    ("call.query.due_cards_next_page", 50.0, &["due_n1"]),
    ("call.query.difficult_cards", 20.0, &["difficult_n1"]),
    ("call.query.word_prefix_search", 20.0, &["prefix_n1"]),
    ("call.query.user_stats", 1.0, &["stats_n1"]),
    (
        "call.service.dashboard_cold",
        52.0,
        &["due_n1", "stats_n1", "preferences_n1"],
    ),
    ("call.service.record_review", 1.0, &["review_n1"]),
    ("call.import.bulk_10k", 10_000.0, &["bulk_n1"]),
    ("call.import.row_by_row_10k", 10_000.0, &["row_n1"]),
    (
        "call.import.row_by_row_autocommit_10k",
        10_000.0,
        &["row_n1"],
    ),
];

/// Counted calls that must not move: warm (no SQL at all) or no layer code.
const UNMOVED: &[&str] = &[
    "call.cache.l1_hit",
    "call.cache.cache_aside_read",
    "call.cache.words_lookup_50",
    "call.raw.redis_get",
    "call.raw.due_cards_statement",
    "call.service.dashboard_warm",
    "call.service.authenticate",
];

#[test]
fn an_n_plus_one_in_every_benchmarked_query_path_is_a_counted_regression_of_that_path() {
    let _heavy = heavy();
    let fixture = fixture();
    let base = fixture.head();
    for (file, anchor, injected) in INJECTIONS {
        edit(fixture, file, anchor, injected);
    }
    fixture.commit_all("perf: an N+1 in every query path the benchmarks run");
    let out = tempfile::tempdir().unwrap();
    let output = run(fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        &base,
        "--filter",
        "io/call.",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    fixture.git(&["reset", "--quiet", "--hard", &base]);
    let report = read_json(&out.path().join("report.json"));
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let described = output.describe();
    let row = |name: &str| {
        rows.iter()
            .find(|row| row["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {described}"))
    };
    let mut label_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (call, added, aliases) in EXPECTED {
        let statements = row(&format!("io/{call}/sql_statements"));
        let (before, after) = (statements["base"].as_f64(), statements["head"].as_f64());
        assert_eq!(
            after.zip(before).map(|(after, before)| after - before),
            Some(*added),
            "{call}: {statements:#}"
        );
        assert_eq!(
            statements["verdict"], "regression",
            "{call}: {statements:#}"
        );
        // The injected statements are named under this path: new `sql/<label>` rows, the
        // same label wherever the same path's statement runs, a different one for each path.
        let labels: BTreeSet<&str> = rows
            .iter()
            .filter(|row| {
                row["verdict"] == "regression" && row["base"].as_f64().unwrap_or(0.0) == 0.0
            })
            .filter_map(|row| {
                row["name"]
                    .as_str()?
                    .strip_prefix(&format!("io/{call}/sql/"))
            })
            .collect();
        let known: BTreeSet<&str> = aliases
            .iter()
            .filter_map(|alias| label_of.get(alias).copied())
            .collect();
        assert!(
            known.is_subset(&labels),
            "{call}: {labels:?} lacks {known:?}"
        );
        let unknown: Vec<&&str> = aliases
            .iter()
            .filter(|a| !label_of.contains_key(*a))
            .collect();
        let fresh: Vec<&str> = labels.difference(&known).copied().collect();
        assert_eq!(
            fresh.len(),
            unknown.len(),
            "{call}: {labels:?}\n{described}"
        );
        assert!(
            fresh
                .iter()
                .all(|label| !label_of.values().any(|l| l == label)),
            "{call}: {fresh:?} is another path's statement"
        );
        if let ([alias], [label]) = (unknown.as_slice(), fresh.as_slice()) {
            label_of.insert(alias, label);
        }
    }
    for call in UNMOVED {
        let statements = row(&format!("io/{call}/sql_statements"));
        assert_eq!(statements["verdict"], "unchanged", "{call}: {statements:#}");
        let commands = row(&format!("io/{call}/redis_commands"));
        assert_eq!(commands["verdict"], "unchanged", "{call}: {commands:#}");
    }
    assert_eq!(output.code, Some(1), "{described}");
    assert!(
        output
            .stdout
            .contains("io/call.query.due_cards/sql_statements"),
        "the terminal names the path: {described}"
    );
}
