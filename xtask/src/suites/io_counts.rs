//! I/O counts: the SQL statements and rows (`pg_stat_statements`, filtered to the scenario's
//! database) and the Redis commands (`INFO commandstats`) one run of a named scenario causes,
//! counted on the servers themselves. Deterministic: a scenario makes the same calls every run.

use std::collections::BTreeMap;

use sqlx::{Connection, PgConnection};

use crate::record::{Metric, MetricKind, Suite, Unit};

use super::SuiteError;

/// What one scenario run cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoCounts {
    pub sql_statements: u64,
    pub sql_rows: u64,
    pub redis_commands: BTreeMap<String, u64>,
}

/// A connection to each server for resetting and reading their statistics.
pub struct IoProbe {
    admin: PgConnection,
    redis: redis::aio::MultiplexedConnection,
}

fn probe_error(detail: String) -> SuiteError {
    SuiteError::Probe(detail)
}

impl IoProbe {
    /// Connects, and makes sure `pg_stat_statements` is loaded and queryable.
    pub async fn connect(admin_url: &str, redis_url: &str) -> Result<Self, SuiteError> {
        let mut admin = PgConnection::connect(admin_url)
            .await
            .map_err(|e| probe_error(format!("cannot connect to Postgres: {e}")))?;
        let preload: String =
            sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
                .fetch_one(&mut admin)
                .await
                .map_err(|e| probe_error(e.to_string()))?;
        if !preload.contains("pg_stat_statements") {
            return Err(probe_error(format!(
                "pg_stat_statements is not preloaded (shared_preload_libraries = {preload:?}); \
                 SQL statements cannot be counted.\n  fix: start Postgres with \
                 `-c shared_preload_libraries=pg_stat_statements` (the docker and native modes do)"
            )));
        }
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut admin)
            .await
            .map_err(|e| probe_error(format!("cannot create extension pg_stat_statements: {e}")))?;
        let client = redis::Client::open(redis_url).map_err(|e| probe_error(e.to_string()))?;
        let redis = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| probe_error(format!("cannot connect to Redis: {e}")))?;
        Ok(Self { admin, redis })
    }

    /// Zeroes both servers' statistics.
    pub async fn reset(&mut self) -> Result<(), SuiteError> {
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&mut self.admin)
            .await
            .map_err(|e| probe_error(e.to_string()))?;
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(&mut self.redis)
            .await
            .map_err(|e| probe_error(format!("CONFIG RESETSTAT: {e}")))?;
        Ok(())
    }

    /// Reads what happened in `database` and on Redis since the last reset.
    pub async fn read(&mut self, database: &str) -> Result<IoCounts, SuiteError> {
        let (statements, rows): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(calls), 0)::BIGINT, COALESCE(SUM(rows), 0)::BIGINT \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = $1",
        )
        .bind(database)
        .fetch_one(&mut self.admin)
        .await
        .map_err(|e| probe_error(e.to_string()))?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.redis)
            .await
            .map_err(|e| probe_error(format!("INFO commandstats: {e}")))?;
        Ok(IoCounts {
            sql_statements: statements as u64,
            sql_rows: rows as u64,
            redis_commands: parse_commandstats(&info),
        })
    }
}

/// Calls per command from `INFO commandstats`, without the harness's own `INFO` and
/// `CONFIG RESETSTAT`.
pub fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| line.trim().strip_prefix("cmdstat_"))
        .filter_map(|rest| {
            let (command, stats) = rest.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse::<u64>()
                .ok()?;
            Some((command.to_ascii_lowercase(), calls))
        })
        .filter(|(command, _)| command != "info" && !command.starts_with("config"))
        .collect()
}

/// The metrics of one scenario: totals, Redis commands by type, and what the scenario itself
/// observed (e.g. cache loads).
pub fn scenario_metrics(
    scenario: &str,
    counts: &IoCounts,
    observations: &BTreeMap<String, u64>,
) -> Vec<Metric> {
    let metric = |suffix: String, unit: Unit, value: u64| Metric {
        name: format!("io/{scenario}/{suffix}"),
        suite: Suite::IoCounts,
        unit,
        kind: MetricKind::Deterministic,
        value: value as f64,
        interval: None,
        samples: Vec::new(),
    };
    let mut metrics = vec![
        metric(
            "sql_statements".to_owned(),
            Unit::Statements,
            counts.sql_statements,
        ),
        metric("sql_rows".to_owned(), Unit::Rows, counts.sql_rows),
        metric(
            "redis_commands".to_owned(),
            Unit::Commands,
            counts.redis_commands.values().sum(),
        ),
    ];
    metrics.extend(
        counts
            .redis_commands
            .iter()
            .map(|(command, calls)| metric(format!("redis/{command}"), Unit::Commands, *calls)),
    );
    metrics.extend(
        observations
            .iter()
            .map(|(key, value)| metric(format!("observed/{key}"), Unit::Count, *value)),
    );
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_without_the_harness_commands() {
        let info = "# Commandstats\r\n\
            cmdstat_get:calls=150,usec=300,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_setex:calls=50,usec=100,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_info:calls=1,usec=10,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_config|resetstat:calls=1,usec=5,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n";
        let parsed = parse_commandstats(info);
        assert_eq!(
            parsed,
            BTreeMap::from([("get".to_owned(), 150), ("setex".to_owned(), 50)])
        );
    }

    #[test]
    fn scenario_metrics_name_totals_and_commands() {
        let counts = IoCounts {
            sql_statements: 50,
            sql_rows: 50,
            redis_commands: BTreeMap::from([("get".to_owned(), 150), ("setex".to_owned(), 50)]),
        };
        let metrics =
            scenario_metrics("read", &counts, &BTreeMap::from([("loads".to_owned(), 50)]));
        let named: Vec<(&str, f64)> = metrics.iter().map(|m| (m.name.as_str(), m.value)).collect();
        assert_eq!(
            named,
            vec![
                ("io/read/sql_statements", 50.0),
                ("io/read/sql_rows", 50.0),
                ("io/read/redis_commands", 200.0),
                ("io/read/redis/get", 150.0),
                ("io/read/redis/setex", 50.0),
                ("io/read/observed/loads", 50.0),
            ]
        );
    }
}
