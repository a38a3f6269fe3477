//! The stages of a measuring command, each a module with a typed hand-off to the next:
//! `services` (what the machine lacks, then Postgres and Redis up, and down whatever happens),
//! `collect` (measure HEAD and, when needed, the base; the target branch's records for noise
//! bands: a [`collect::Collected`]), `judge` (pure: compare, budgets, acceptance: a
//! [`judge::Judgement`]), `report` (one [`report::RunReport`], written by one exporter per
//! format, and the terminal's text); publishing is `publish`'s. The commands in `commands/`
//! call them in that order.

pub mod collect;
pub mod judge;
pub mod report;
pub mod selection;
pub mod services;
