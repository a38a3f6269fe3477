//! End-to-end tests: the real `cargo xtask` binary, in a real git repository made from this
//! workspace, against real Postgres and Redis (native servers and Docker containers).
//! Runs that start services hold `perf_tests::heavy()` so they do not share the two cores.

mod baselines;
mod bisect;
mod blind_spots;
mod docker;
mod external;
mod far_moves;
mod faults;
mod instructions;
mod memload;
mod native;
mod open_loop;
mod plans;
mod regressions;
mod shards;
mod system;
mod verdicts;
