//! I/O counts: the SQL statements, rows, shared-buffer accesses and calls per normalized
//! statement (`pg_stat_statements`, filtered to the scenario's database) and the Redis commands
//! (`INFO commandstats`) one run of a named scenario causes, counted on the servers themselves.
//! Deterministic: a scenario makes the same calls, on the same pages, every run.
//!
//! This module must never record as deterministic a count that differs between two runs of the
//! same commit. That is why buffers are recorded as *accesses* (`shared_blks_hit +
//! shared_blks_read`) only: how the accesses split into hits and reads depends on what earlier
//! work left in shared buffers (the seed loads and vacuums through small ring buffers, so which
//! of its pages stay cached is not fixed), while the pages a statement touches are fixed by
//! the seed and the plan. Statement ids are hashes of the text with every constant and
//! parameter replaced (see [`canonical_text`]), not `pg_stat_statements.queryid`, which
//! differs between databases (it hashes table OIDs) and server versions.

use std::collections::BTreeMap;

use sqlx::{Connection, PgConnection};

use crate::record::{Metric, MetricKind, Suite, Unit};

use super::SuiteError;

/// What one scenario run cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoCounts {
    pub sql_statements: u64,
    pub sql_rows: u64,
    /// Shared buffers found in the cache (`shared_blks_hit`).
    pub shared_blks_hit: u64,
    /// Shared buffers read in (`shared_blks_read`): not deterministic alone, see the module.
    pub shared_blks_read: u64,
    /// Calls per statement, by [`statement_label`].
    pub statements: BTreeMap<String, u64>,
    /// Each counted statement's [`canonical_text`], by [`statement_label`].
    pub texts: BTreeMap<String, String>,
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
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT s.query, s.calls, s.rows, s.shared_blks_hit, s.shared_blks_read \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = $1",
        )
        .bind(database)
        .fetch_all(&mut self.admin)
        .await
        .map_err(|e| probe_error(e.to_string()))?;
        let mut counts = IoCounts::default();
        for (query, calls, returned, hit, read) in rows {
            counts.sql_statements += calls as u64;
            counts.sql_rows += returned as u64;
            counts.shared_blks_hit += hit as u64;
            counts.shared_blks_read += read as u64;
            let label = statement_label(&query);
            *counts.statements.entry(label.clone()).or_default() += calls as u64;
            counts.texts.insert(label, canonical_text(&query));
        }
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.redis)
            .await
            .map_err(|e| probe_error(format!("INFO commandstats: {e}")))?;
        counts.redis_commands = parse_commandstats(&info);
        Ok(counts)
    }
}

/// A short, stable label of a statement: its first keyword, the first table it names (after
/// FROM, INTO or UPDATE), and 8 hex digits of a SHA-256 of its [`canonical_text`], e.g.
/// `select_review_cards_1a2b3c4d`, `begin_0e1f2a3b`.
pub fn statement_label(query: &str) -> String {
    use sha2::{Digest, Sha256};
    let words: Vec<&str> = query.split_whitespace().collect();
    let normalized = canonical_text(query);
    let keyword = words
        .first()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_ascii_lowercase()
        })
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "sql".to_owned());
    let table = words
        .windows(2)
        .find(|pair| {
            let word = pair[0]
                .trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_ascii_lowercase();
            ["from", "into", "update"].contains(&word.as_str())
                && pair[1]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
        })
        .map(|pair| {
            pair[1]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
                .to_ascii_lowercase()
        });
    let digest = Sha256::digest(normalized.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    match table {
        Some(table) if !table.is_empty() => format!("{keyword}_{table}_{hash}"),
        _ => format!("{keyword}_{hash}"),
    }
}

/// The text a statement's label is hashed from: every constant and parameter as `?`, white
/// space folded.
///
/// `pg_stat_statements` keeps, per statement, the text of the call that created its entry.
/// When the statement was parsed after the counters were reset, that text has its constants
/// replaced by `$n`; when a pooled connection runs a statement it prepared before the reset,
/// the entry is created at execution and keeps the source text, constants and all. Which
/// connection runs it first is timing, so the same statement came out as two labels in two
/// runs of the same code (seen: `with_user_preferences_fcb54700` against `…a79f82ab`, a false
/// "0 → 1 statements" regression). Both forms give the same canonical text. (Not
/// `queryid`: it hashes the tables' OIDs, which differ in every database a run creates.)
pub fn canonical_text(query: &str) -> String {
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    let after_word = |out: &String| out.chars().last().is_some_and(word_char);
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if !out.is_empty() && i < chars.len() {
                out.push(' ');
            }
            continue;
        }
        if c == '\'' {
            // A string constant; `''` inside it is a quote. An E, B or X prefix is part of it.
            if matches!(out.chars().last(), Some('E' | 'e' | 'B' | 'b' | 'X' | 'x')) {
                let mut before = out.chars().rev().skip(1);
                if !before.next().is_some_and(word_char) {
                    out.pop();
                }
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push('?');
            continue;
        }
        if c == '$' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push('?');
            continue;
        }
        if c.is_ascii_digit() && !after_word(&out) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push('?');
            continue;
        }
        if word_char(c) {
            let start = i;
            while i < chars.len() && word_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if ["true", "false", "null"].contains(&word.to_ascii_lowercase().as_str()) {
                out.push('?');
            } else {
                out.push_str(&word);
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
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
        shape: None,
    };
    let mut metrics = vec![
        metric(
            "sql_statements".to_owned(),
            Unit::Statements,
            counts.sql_statements,
        ),
        metric("sql_rows".to_owned(), Unit::Rows, counts.sql_rows),
        // Shown, never gated: buffer accesses are not repeatable under load (an A/A pair on a
        // busy machine differed by up to 3.6%: hint bits, page pruning and autovacuum change
        // which pages a statement touches), and a gate on them would raise false alarms.
        Metric {
            kind: MetricKind::Statistical,
            ..metric(
                "sql_buffers".to_owned(),
                Unit::Buffers,
                counts.shared_blks_hit + counts.shared_blks_read,
            )
        },
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
        counts
            .statements
            .iter()
            .map(|(label, calls)| metric(format!("sql/{label}"), Unit::Statements, *calls)),
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
    fn statement_labels_are_short_stable_and_tell_statements_apart() {
        let due = "SELECT c.id AS card_id FROM review_cards c JOIN words w ON w.id = c.word_id \
                   WHERE c.user_id = $1 LIMIT $3";
        let label = statement_label(due);
        assert!(label.starts_with("select_review_cards_"), "{label}");
        assert_eq!(label.len(), "select_review_cards_".len() + 8);
        // Whitespace and the numbering of parameters do not matter; any other change does.
        assert_eq!(statement_label(&due.replace(' ', "\n  ")), label);
        assert_eq!(statement_label(&due.replace("$3", "$4")), label);
        assert_ne!(statement_label(&due.replace("c.id", "c.ease")), label);
        assert!(statement_label("BEGIN").starts_with("begin_"));
        assert!(
            statement_label("INSERT INTO review_log (card_id) VALUES ($1)")
                .starts_with("insert_review_log_")
        );
        assert!(
            statement_label("WITH updated AS (UPDATE review_cards SET ease = $1) SELECT 1")
                .starts_with("with_review_cards_")
        );
    }

    /// The false alarm of issue 13's lifecycle run: one statement, kept by
    /// `pg_stat_statements` as its source text in one run and with its constants replaced by
    /// `$n` in the other, must have one label.
    #[test]
    fn a_statement_kept_with_or_without_its_constants_has_one_label() {
        let source = "WITH today AS (SELECT (($2::timestamptz AT TIME ZONE 'UTC') + o.off)::date \
                      FROM user_preferences WHERE user_id = $1) SELECT count(*) FILTER \
                      (WHERE grade >= 3), interval '30 days', E'it''s', true, NULL, 1.5e3 \
                      FROM review_log LIMIT 50";
        let normalized = "WITH today AS (SELECT (($2::timestamptz AT TIME ZONE $3) + o.off)::date \
                          FROM user_preferences WHERE user_id = $1) SELECT count(*) FILTER \
                          (WHERE grade >= $4), interval $5, $6, $7, $8, $9 \
                          FROM review_log LIMIT $10";
        assert_eq!(canonical_text(source), canonical_text(normalized));
        assert_eq!(statement_label(source), statement_label(normalized));
        assert!(statement_label(source).starts_with("with_user_preferences_"));
        // Identifiers with digits are not constants.
        assert_ne!(
            canonical_text("SELECT t1.a FROM t1"),
            canonical_text("SELECT t2.a FROM t2")
        );
        assert_ne!(
            statement_label("SELECT a FROM words WHERE id = $1"),
            statement_label("SELECT b FROM words WHERE id = $1")
        );
    }

    #[test]
    fn scenario_metrics_name_totals_and_commands() {
        let counts = IoCounts {
            sql_statements: 50,
            sql_rows: 50,
            shared_blks_hit: 140,
            shared_blks_read: 10,
            statements: BTreeMap::from([("select_words_0a1b2c3d".to_owned(), 50)]),
            texts: BTreeMap::new(),
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
                ("io/read/sql_buffers", 150.0),
                ("io/read/redis_commands", 200.0),
                ("io/read/redis/get", 150.0),
                ("io/read/redis/setex", 50.0),
                ("io/read/sql/select_words_0a1b2c3d", 50.0),
                ("io/read/observed/loads", 50.0),
            ]
        );
    }
}
