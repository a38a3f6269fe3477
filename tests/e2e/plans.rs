//! The plans suite end to end: a commit that drops the due list's index is caught as a plan
//! regression (naming the index and the seq scan) and as more buffer accesses of the due-list
//! scenario; and two EXPLAINs of the same statements, with statistics sampled anew in between,
//! give the same shapes.

use bench_suite::seed::SeedSize;
use perf_tests::services::TestServices;
use perf_tests::{assert_torn_down, fixture, heavy, read_json, ready_services, run};

#[test]
fn dropping_the_due_index_is_a_plan_regression_with_more_buffer_accesses() {
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
    let out = tempfile::tempdir().unwrap();
    let result = run(fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        "HEAD^",
        "--filter",
        "plans/,io/due_cards",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    // Leave the shared fixture as other tests expect it.
    fixture.git(&["reset", "--quiet", "--hard", &base]);
    assert_eq!(result.code, Some(1), "{}", result.describe());
    assert_torn_down(&ready_services(&result.stderr));

    let report = read_json(&out.path().join("report.json"));
    let rows = report["rows"].as_array().expect("comparison rows");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name} in {report:#}"))
    };
    let plan = row("plans/due_cards_first_page");
    assert_eq!(plan["verdict"], "regression", "{plan:#}");
    let base_shape = plan["base_shape"].as_str().unwrap();
    let head_shape = plan["head_shape"].as_str().unwrap();
    assert!(
        base_shape.contains("Index Scan[review_cards_user_due on review_cards]"),
        "{plan:#}"
    );
    assert!(!head_shape.contains("review_cards_user_due"), "{plan:#}");
    // Lookups the migration does not touch keep their plan.
    assert_eq!(row("plans/word_by_id")["verdict"], "unchanged");

    let buffers = row("io/due_cards/sql_buffers");
    let (base_buffers, head_buffers) = (
        buffers["base"].as_f64().unwrap(),
        buffers["head"].as_f64().unwrap(),
    );
    assert!(
        head_buffers > base_buffers,
        "the due list without its index touches more buffers: {buffers:#}"
    );
    // Buffer accesses are shown, not gated (they vary under load).
    assert_eq!(buffers["kind"], "statistical", "{buffers:#}");

    let markdown = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let regressions = markdown
        .split("### Regressions")
        .nth(1)
        .and_then(|rest| rest.split("###").next())
        .unwrap_or_else(|| panic!("no regressions section:\n{markdown}"));
    let plan_line = regressions
        .lines()
        .find(|line| line.contains("`plans/due_cards_first_page`"))
        .unwrap_or_else(|| panic!("the due plan is not a regression:\n{markdown}"));
    assert!(
        plan_line.contains(
            "index review_cards_user_due on review_cards used in base, no longer used in head"
        ),
        "{plan_line}"
    );
}

// The guard is a `std` mutex held across this test's own `.await`s; no task of its runtime
// ever takes it, so it cannot deadlock (as in the `system` tests).
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_explains_of_the_same_statements_give_the_same_shapes() {
    let _heavy = heavy();
    // The default seed: plans on toy tables are seq scans, not what the service runs.
    let services = TestServices::start(SeedSize::scaled(1.0)).await;
    let url = services.settings.database_url.clone();
    let first = bench_suite::plans::explain_all(&url)
        .await
        .expect("explain");
    // New statistics: ANALYZE samples large tables at random.
    let pool = bench_suite::query::connect(&url, 1).await.unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    pool.close().await;
    let second = bench_suite::plans::explain_all(&url)
        .await
        .expect("explain");
    services.stop().await;

    // The shapes and node counts; the EXPLAIN texts carry the estimates of each ANALYZE.
    let shapes = |lines: &[bench_suite::plans::PlanLine]| -> Vec<(String, String, u32)> {
        lines
            .iter()
            .map(|line| (line.name.clone(), line.shape.clone(), line.nodes))
            .collect()
    };
    assert_eq!(shapes(&first), shapes(&second));
    assert!(
        first.iter().all(|line| !line.text.is_empty()),
        "every plan has its EXPLAIN text: {first:?}"
    );
    let names: Vec<&str> = first.iter().map(|line| line.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "due_cards_first_page",
            "due_cards_after",
            "difficult_cards",
            "user_stats",
            "word_prefix_search",
            "words_by_ids",
            "word_by_id",
            "session_by_token",
            "user_preferences",
            "review_lock",
            "import_cards",
        ]
    );
    for line in &first[..2] {
        assert!(
            line.shape
                .contains("Index Scan[review_cards_user_due on review_cards]"),
            "{line:?}"
        );
    }
}
