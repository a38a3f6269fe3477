//! The perf harness behind `cargo xtask perf` (see ARCHITECTURE.md). `main` builds one
//! `config::Config` and runs one of `commands`; a measuring command runs the stages of
//! `pipeline`:
//!
//! baseline lookup -> selection check -> services (`provision`) -> collect (`suites` ->
//! `record`) -> judge (`compare`, `stats`) -> report (`render`, `html`, `bmf`) -> `publish` ->
//! exit code.
//!
//! `compare` (with `locate`), `stats` and `render` are pure; only `provision` starts services (and knows
//! Docker); only `baseline/` knows git; only `publish` talks to GitHub.
//!
//! Without the default `harness` feature only the pure steps and their data are built
//! (`config`, `record`, `compare`, `stats`, `render`): the harness builds its own `render`
//! benchmark that way, in release, without services, git or GitHub's client.

#[cfg(feature = "harness")]
pub mod baseline;
#[cfg(feature = "harness")]
pub mod bisect;
pub mod bmf;
#[cfg(feature = "harness")]
pub mod calibrate;
pub mod cargo_env;
#[cfg(feature = "harness")]
pub mod commands;
pub mod compare;
pub mod config;
#[cfg(feature = "harness")]
pub mod exit;
#[cfg(feature = "harness")]
pub mod fingerprint;
#[cfg(feature = "harness")]
pub mod flags;
#[cfg(feature = "harness")]
pub mod flamegraph;
#[cfg(feature = "harness")]
pub mod history;
#[cfg(feature = "harness")]
pub mod html;
pub mod locate;
#[cfg(feature = "harness")]
pub mod outputs;
#[cfg(feature = "harness")]
pub mod pipeline;
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
pub mod shard;
#[cfg(feature = "harness")]
pub mod shutdown;
pub mod stats;
#[cfg(feature = "harness")]
pub mod suites;
#[cfg(feature = "harness")]
pub mod workspace;
