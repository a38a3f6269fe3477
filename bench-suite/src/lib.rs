//! The system under test: a vocabulary-learning service's **query layer** (sqlx on Postgres)
//! and **cache layer** (in-process L1 + Redis L2), plus the deterministic seed data and the
//! named I/O scenarios, the benchmarked [`operations`], heap accounting and the load generator the harness drives.
//!
//! This crate knows nothing of the harness: it reads its connection settings from the
//! environment (`DATABASE_URL`, `REDIS_URL`, see [`settings`]) and is driven through the `suite`
//! binary and the `wall_time` / `instructions` benchmarks. [`plans`] explains the query layer's
//! statements for the harness's plans suite.

pub mod arena;
pub mod cache;
pub mod codec;
pub mod load;
pub mod memory;
pub mod model;
pub mod operations;
pub mod plans;
pub mod query;
pub mod scenarios;
pub mod seed;
pub mod service;
pub mod settings;
pub mod sm2;

/// The fixed instant every query and the seed data treat as "now", so that a due list is the
/// same in every run, whatever the wall clock says.
pub fn fixed_now() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .expect("a valid fixed instant")
}
