//! The command layer: one module per command of `cargo xtask`, each a short `run(&Config, …)`
//! that calls the stages below it (`pipeline`, `baseline`, `publish`, …) and returns the
//! [`Outcome`](crate::exit::Outcome) `main` turns into the exit code. Nothing below this layer
//! imports a command.
//!
//! | command | module |
//! |---|---|
//! | `perf` | [`perf`] |
//! | `perf --list` | [`list`] |
//! | `perf baseline list\|show\|add\|fetch\|push\|prune\|record` | [`baseline`] |
//! | `perf history` | [`history`] |
//! | `perf bisect` | [`bisect`] |
//! | `perf calibrate` | [`calibrate`] |
//! | `perf merge` | [`merge`] |
//! | `perf publish` | [`publish`] |
//! | `setup` | [`setup`] |

pub mod baseline;
pub mod bisect;
pub mod calibrate;
pub mod history;
pub mod list;
pub mod merge;
pub mod perf;
pub mod publish;
pub mod setup;
