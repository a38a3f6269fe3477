//! The perf harness behind `cargo xtask perf`: one module per step of the data flow
//! (see ARCHITECTURE.md):
//!
//! config -> provision -> (seed, run suites: `suites`) -> record -> baseline -> compare ->
//! render -> exit code.
//!
//! `compare`, `stats` and `render` are pure; only `provision` starts services; only `baseline`
//! and `store` (the baseline branch) know git.
//!
//! Without the default `harness` feature only the pure steps and their data are built
//! (`config`, `record`, `compare`, `stats`, `render`): the harness builds its own `render`
//! benchmark that way, in release, without services, git or GitHub's client.

#[cfg(feature = "harness")]
pub mod baseline;
#[cfg(feature = "harness")]
pub mod baseline_command;
pub mod bmf;
#[cfg(feature = "harness")]
pub mod calibrate;
pub mod cargo_env;
pub mod compare;
pub mod config;
#[cfg(feature = "harness")]
pub mod exit;
#[cfg(feature = "harness")]
pub mod fingerprint;
#[cfg(feature = "harness")]
pub mod flags;
#[cfg(feature = "harness")]
pub mod history;
#[cfg(feature = "harness")]
pub mod html;
#[cfg(feature = "harness")]
pub mod outputs;
#[cfg(feature = "harness")]
pub mod perf;
#[cfg(feature = "harness")]
pub mod progress;
#[cfg(feature = "harness")]
pub mod provision;
#[cfg(feature = "harness")]
pub mod publish;
pub mod record;
pub mod render;
#[cfg(feature = "harness")]
pub mod setup;
pub mod stats;
#[cfg(feature = "harness")]
pub mod store;
#[cfg(feature = "harness")]
pub mod suites;
#[cfg(feature = "harness")]
pub mod workspace;
