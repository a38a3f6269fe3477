//! Real Postgres and Redis for tests that call the system under test directly: native servers
//! started through `xtask::provision` (torn down when the value drops), one fresh database per
//! test, migrated and seeded by `bench_suite` itself.

use bench_suite::query;
use bench_suite::seed::{self, SeedSize};
use bench_suite::settings::Settings;
use sqlx::{Connection, PgConnection};
use xtask::provision::{ImageChoice, ProvisionOptions, Services, ServicesMode};

/// Native services plus one seeded database.
pub struct TestServices {
    services: Option<Services>,
    pub settings: Settings,
}

impl TestServices {
    /// Starts native Postgres and Redis and seeds a database of `size`.
    pub async fn start(size: SeedSize) -> Self {
        crate::prepare_machine();
        let options = ProvisionOptions {
            mode: ServicesMode::Native,
            postgres_image: ImageChoice {
                reference: "postgres:16".to_owned(),
                override_variable: "PERF_POSTGRES_IMAGE",
            },
            redis_image: ImageChoice {
                reference: "redis:7".to_owned(),
                override_variable: "PERF_REDIS_IMAGE",
            },
        };
        let services = Services::start(&options, &|_| {}).await.expect(
            "native Postgres and Redis (the tests ran .ci/setup-machine.sh; see its [setup] lines)",
        );
        let mut admin = PgConnection::connect(&services.postgres_url("postgres"))
            .await
            .expect("admin connection");
        sqlx::query("CREATE DATABASE system_test")
            .execute(&mut admin)
            .await
            .expect("create database");
        let settings = Settings {
            database_url: services.postgres_url("system_test"),
            redis_url: services.redis_url(),
            cache_namespace: "test".to_owned(),
        };
        let pool = query::connect(&settings.database_url, 2)
            .await
            .expect("pool");
        query::MIGRATOR.run(&pool).await.expect("migrations");
        seed::seed(&pool, size).await.expect("seed");
        pool.close().await;
        Self {
            services: Some(services),
            settings,
        }
    }

    pub fn services(&self) -> &Services {
        self.services.as_ref().expect("running")
    }

    /// Stops the servers (dropping the value does the same, synchronously).
    pub async fn stop(mut self) {
        if let Some(services) = self.services.take() {
            services.teardown().await.expect("teardown");
        }
    }
}
