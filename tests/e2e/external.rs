//! The external provisioning path: servers the harness did not start (`DATABASE_URL`,
//! `REDIS_URL`). The harness measures in a database of its own, drops only that database, and
//! never flushes Redis or touches other data.

use bench_suite::seed::SeedSize;
use perf_tests::services::TestServices;
use perf_tests::{fixture, heavy, metric, read_json, ready_services, run};
use sqlx::{Connection, PgConnection};

#[test]
fn external_servers_are_measured_without_losing_their_data() {
    let _heavy = heavy();
    let fixture = fixture();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tiny = SeedSize {
        users: 10,
        words: 100,
        cards: 200,
    };
    let servers = runtime.block_on(TestServices::start(tiny));
    let admin_url = servers.services().postgres_url("postgres");
    let redis_url = servers.services().redis_url();
    let mut redis = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = redis::cmd("SET")
        .arg("someone-elses-key")
        .arg("kept")
        .query(&mut redis)
        .unwrap();

    let out = tempfile::tempdir().unwrap();
    let result = run(fixture
        .xtask(&[
            "perf",
            "--quick",
            "--services",
            "external",
            "--base",
            "none",
            "--filter",
            "cache_aside_read",
            "--out",
            out.path().to_str().unwrap(),
        ])
        .env("DATABASE_URL", &admin_url)
        .env("REDIS_URL", &redis_url));
    assert_eq!(result.code, Some(0), "{}", result.describe());
    let ready = ready_services(&result.stderr);
    assert_eq!(ready.len(), 2, "{}", result.describe());
    assert!(
        result.stderr.contains("(external)"),
        "{}",
        result.describe()
    );

    let record = read_json(
        &out.path()
            .join("filtered")
            .join(format!("{}.json", fixture.head())),
    );
    assert_eq!(record["environment"]["services"]["mode"], "external");
    assert_eq!(
        metric(&record, "io/cache_aside_read/sql_statements"),
        Some(50.0)
    );

    let kept: Option<String> = redis::cmd("GET")
        .arg("someone-elses-key")
        .query(&mut redis)
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("kept"),
        "the harness flushed a Redis it does not own"
    );
    let databases: Vec<String> = runtime.block_on(async {
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")
            .fetch_all(&mut admin)
            .await
            .unwrap()
    });
    assert_eq!(
        databases,
        vec!["postgres", "system_test"],
        "only the harness's own database may go"
    );
    runtime.block_on(servers.stop());
}
