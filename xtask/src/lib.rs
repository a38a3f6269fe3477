//! The perf harness behind `cargo xtask perf`: one module per step of the data flow
//! (see ARCHITECTURE.md):
//!
//! config -> provision -> (seed, run suites: `suites`) -> record -> baseline -> compare ->
//! render -> exit code.
//!
//! `compare`, `stats` and `render` are pure; only `provision` starts services; only `baseline`
//! and `store` (the baseline branch) know git.

pub mod baseline;
pub mod baseline_command;
pub mod calibrate;
pub mod compare;
pub mod config;
pub mod exit;
pub mod fingerprint;
pub mod flags;
pub mod history;
pub mod perf;
pub mod progress;
pub mod provision;
pub mod record;
pub mod render;
pub mod stats;
pub mod store;
pub mod suites;
pub mod workspace;
