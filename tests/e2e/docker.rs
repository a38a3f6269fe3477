//! The docker provisioning path (testcontainers), with the local images `.ci/setup-machine.sh`
//! builds (no image registry is reachable here; on GitHub the official images are used).

use perf_tests::{assert_torn_down, fixture, heavy, metric, read_json, ready_services, run};

const POSTGRES_IMAGE: &str = "local/postgres:15";
const REDIS_IMAGE: &str = "local/redis:7";

#[test]
fn docker_run_measures_the_same_io_counts_and_removes_its_containers() {
    let _heavy = heavy();
    let fixture = fixture();
    let out = tempfile::tempdir().unwrap();
    let head = fixture.head();
    let result = run(fixture
        .xtask(&[
            "perf",
            "--quick",
            "--services",
            "docker",
            "--base",
            "none",
            "--filter",
            // The I/O counts only: the docker path is what this test is about, and the other
            // tools' runs on docker prove nothing more (the native e2e runs every suite).
            "io/cache_aside_read",
            "--out",
            out.path().to_str().unwrap(),
        ])
        .env("PERF_POSTGRES_IMAGE", POSTGRES_IMAGE)
        .env("PERF_REDIS_IMAGE", REDIS_IMAGE));
    assert_eq!(result.code, Some(0), "{}", result.describe());
    let services = ready_services(&result.stderr);
    assert_eq!(services.len(), 2, "{}", result.describe());
    assert!(
        services.iter().all(|s| s.container.is_some()),
        "{services:?}"
    );
    assert_torn_down(&services);

    // A filtered run is partial: it is kept apart and never becomes a baseline.
    assert!(
        !out.path()
            .join("runs")
            .join(format!("{head}.json"))
            .exists()
    );
    let record = read_json(&out.path().join("filtered").join(format!("{head}.json")));
    assert_eq!(record["environment"]["services"]["mode"], "docker");
    assert!(
        record["environment"]["services"]["postgres_image"]
            .as_str()
            .is_some_and(|image| image.contains(POSTGRES_IMAGE)),
        "{record:#}"
    );
    assert_eq!(
        metric(&record, "io/cache_aside_read/sql_statements"),
        Some(50.0)
    );
    assert_eq!(
        metric(&record, "io/cache_aside_read/redis/get"),
        Some(100.0)
    );
    assert!(
        metric(&record, "io/due_cards/sql_statements").is_none(),
        "filter ignored"
    );
}

#[test]
fn an_image_that_cannot_be_pulled_names_the_image_and_its_override() {
    let _heavy = heavy();
    let fixture = fixture();
    let containers_before = managed_containers();
    let out = tempfile::tempdir().unwrap();
    let result = run(fixture
        .xtask(&[
            "perf",
            "--services",
            "docker",
            "--base",
            "none",
            "--out",
            out.path().to_str().unwrap(),
        ])
        .env("PERF_POSTGRES_IMAGE", "perf-tests/no-such-image:0")
        .env("PERF_REDIS_IMAGE", REDIS_IMAGE));
    assert_eq!(result.code, Some(2), "{}", result.describe());
    assert!(
        result.stderr.contains("perf-tests/no-such-image:0"),
        "{}",
        result.describe()
    );
    assert!(
        result.stderr.contains("PERF_POSTGRES_IMAGE"),
        "{}",
        result.describe()
    );
    assert!(
        !out.path().join("runs").exists(),
        "a failed run stored a record"
    );
    assert_eq!(
        managed_containers(),
        containers_before,
        "a container was left behind"
    );
}

/// Ids of the containers testcontainers manages on this engine.
fn managed_containers() -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args([
            "ps",
            "--all",
            "--quiet",
            "--filter",
            "label=org.testcontainers.managed-by=testcontainers",
        ])
        .output()
        .expect("docker ps");
    assert!(
        output.status.success(),
        "docker ps failed: is a Docker engine running? (the tests ran .ci/setup-machine.sh)"
    );
    let mut ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

#[test]
fn sigint_during_a_docker_run_removes_the_containers() {
    let _heavy = heavy();
    let fixture = fixture();
    let out = tempfile::tempdir().unwrap();
    let mut command = fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "docker",
        "--base",
        "none",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    command
        .env("PERF_POSTGRES_IMAGE", POSTGRES_IMAGE)
        .env("PERF_REDIS_IMAGE", REDIS_IMAGE);
    let interrupted = perf_tests::interrupt_when(command, "seeding");
    assert_eq!(interrupted.code, Some(2), "{}", interrupted.describe());
    assert!(
        interrupted.stderr.contains("interrupted by SIGINT"),
        "{}",
        interrupted.describe()
    );
    let services = ready_services(&interrupted.stderr);
    assert!(
        services.iter().all(|s| s.container.is_some()),
        "{services:?}"
    );
    assert_torn_down(&services);
    assert!(
        !out.path().join("runs").exists(),
        "an interrupted run stored a record"
    );
}

/// The host addresses a container's ports are published on, from `docker inspect`.
fn published_host_ips(container: &str) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{ range $port, $bindings := .HostConfig.PortBindings }}{{ range $bindings }}{{ .HostIp }} {{ end }}{{ end }}",
            container,
        ])
        .output()
        .expect("docker inspect");
    assert!(output.status.success(), "docker inspect {container} failed");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn containers_are_published_on_loopback_only_and_want_the_runs_password() {
    use sqlx::Connection;
    use xtask::provision::{
        ImageChoice, ProvisionOptions, ServerProcesses, Services, ServicesMode,
    };

    perf_tests::prepare_machine();
    let _heavy = heavy();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let options = ProvisionOptions {
            mode: ServicesMode::Docker,
            postgres_image: ImageChoice {
                reference: POSTGRES_IMAGE.to_owned(),
                override_variable: "PERF_POSTGRES_IMAGE",
            },
            redis_image: ImageChoice {
                reference: REDIS_IMAGE.to_owned(),
                override_variable: "PERF_REDIS_IMAGE",
            },
        };
        let services = Services::start(&options, &|_| {})
            .await
            .expect("docker services (the tests ran .ci/setup-machine.sh; see its [setup] lines)");
        let ServerProcesses::Docker { postgres, redis } = services.server_processes() else {
            panic!("containers expected");
        };
        for container in [&postgres, &redis] {
            assert_eq!(published_host_ips(container), ["127.0.0.1"], "{container}");
        }

        // With the start's password both answer; without it, or with another, both refuse.
        let mut admin = sqlx::PgConnection::connect(&services.postgres_url("postgres"))
            .await
            .expect("postgres with the password");
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(one, 1);
        let address = services.postgres_address();
        for wrong in [
            format!("postgres://postgres@{address}/postgres"),
            format!("postgres://postgres:{}@{address}/postgres", "0".repeat(32)),
        ] {
            let refused = sqlx::PgConnection::connect(&wrong)
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(refused.contains("password"), "{refused:?}");
        }
        let mut redis_conn = redis::Client::open(services.redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("redis with the password");
        let pong: String = redis::cmd("PING")
            .query_async(&mut redis_conn)
            .await
            .unwrap();
        assert_eq!(pong, "PONG");
        let bare = redis::Client::open(format!("redis://{}/", services.redis_address())).unwrap();
        let refused = match bare.get_multiplexed_async_connection().await {
            Err(e) => e.to_string(),
            Ok(mut conn) => redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        };
        assert!(refused.contains("NOAUTH"), "{refused:?}");
        let _ = admin.close().await;
        services.teardown().await.expect("teardown");
    });
}
