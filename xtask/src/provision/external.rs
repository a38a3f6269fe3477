//! External mode: Postgres and Redis that someone else runs, named by DATABASE_URL and REDIS_URL.
//! Checks that both answer a real query and reports their versions.
//!
//! Must never: start, stop, drop or flush anything (the harness does not own these servers), or
//! print a password from the URLs.

use std::time::Duration;

use super::error::ProvisionError;
use super::probe::{self, UrlParts, Wait};
use super::{Backend, Started};

const DATABASE_EXAMPLE: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_EXAMPLE: &str = "redis://127.0.0.1:6379/";

fn read_variable(
    variable: &'static str,
    service: &'static str,
    example: &'static str,
) -> Result<String, ProvisionError> {
    match std::env::var(variable) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(ProvisionError::ExternalVariableMissing {
            variable,
            service,
            example,
        }),
    }
}

/// Reads and checks DATABASE_URL and REDIS_URL (without connecting).
pub(crate) fn urls() -> Result<(UrlParts, String, UrlParts), ProvisionError> {
    let database = read_variable("DATABASE_URL", "Postgres", DATABASE_EXAMPLE)?;
    let redis = read_variable("REDIS_URL", "Redis", REDIS_EXAMPLE)?;
    let invalid = |variable, value: &str, service, problem: String, example| {
        ProvisionError::ExternalUrlInvalid {
            variable,
            value: probe::redact(value),
            service,
            problem,
            example,
        }
    };
    let pg = UrlParts::parse(&database)
        .map_err(|p| invalid("DATABASE_URL", &database, "Postgres", p, DATABASE_EXAMPLE))?;
    if pg.scheme != "postgres" && pg.scheme != "postgresql" {
        return Err(invalid(
            "DATABASE_URL",
            &database,
            "Postgres",
            format!("the scheme is {:?}, not postgres://", pg.scheme),
            DATABASE_EXAMPLE,
        ));
    }
    redis::Client::open(redis.as_str())
        .map_err(|e| invalid("REDIS_URL", &redis, "Redis", e.to_string(), REDIS_EXAMPLE))?;
    let redis_parts = UrlParts::parse(&redis)
        .map_err(|p| invalid("REDIS_URL", &redis, "Redis", p, REDIS_EXAMPLE))?;
    Ok((pg, redis, redis_parts))
}

/// Waits until both servers answer.
pub(crate) async fn start(
    timeout: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Started, ProvisionError> {
    let (pg, redis_url, redis_parts) = urls()?;
    let pg_address = pg.address(5432);
    let redis_address = redis_parts.address(6379);
    let pg_url = pg.with_path(&pg.path);
    progress(&format!(
        "services: checking postgres at {} and redis at {}",
        pg.redacted(),
        redis_parts.redacted()
    ));
    let (mut pg_alive, mut redis_alive) = (probe::Unobserved, probe::Unobserved);
    let (pg_ready, redis_ready) = tokio::join!(
        probe::poll_ready(timeout, || probe::postgres_once(&pg_url), &mut pg_alive),
        probe::poll_ready(timeout, || probe::redis_once(&redis_url), &mut redis_alive),
    );
    let not_ready = |service, address: &str, variable: &str, shown: String, last_error| {
        ProvisionError::NotReady {
            service,
            address: address.to_owned(),
            place: "external".to_owned(),
            waited_secs: timeout.as_secs(),
            last_error,
            advice: format!(
                "\nCheck that {variable}={shown} names a running server that accepts this user, \
                 or use `--services docker` or `--services native`"
            ),
        }
    };
    let postgres_version = match pg_ready? {
        Wait::Ready(v) => v,
        Wait::TimedOut { last_error } => {
            return Err(not_ready(
                "postgres",
                &pg_address,
                "DATABASE_URL",
                pg.redacted(),
                last_error,
            ));
        }
    };
    let redis_version = match redis_ready? {
        Wait::Ready(v) => v,
        Wait::TimedOut { last_error } => {
            return Err(not_ready(
                "redis",
                &redis_address,
                "REDIS_URL",
                redis_parts.redacted(),
                last_error,
            ));
        }
    };
    progress(&format!(
        "services: postgres ready at {pg_address} (external)"
    ));
    progress(&format!(
        "services: redis ready at {redis_address} (external)"
    ));
    Ok(Started {
        backend: Backend::None,
        postgres_address: pg_address,
        redis_address,
        postgres_url: pg,
        redis_url,
        postgres_version,
        redis_version,
        postgres_image: None,
        redis_image: None,
    })
}
