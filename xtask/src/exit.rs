//! The harness's exit codes and its top-level error type. Three distinct values, documented in
//! the README: 0 success, 1 regression found, 2 harness or usage error. Commands that judge
//! nothing never exit 1: `perf publish` exits 0 also when a fork's token could not comment
//! (the comment is saved for a trusted workflow), since the gate's verdict is the run's.

use std::process::ExitCode;

/// What a finished run says to CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ran, compared, and nothing regressed (or there was nothing to compare with).
    Success,
    /// At least one metric regressed.
    RegressionFound,
}

/// Exit code of a successful run without regressions.
pub const SUCCESS: u8 = 0;
/// Exit code of a run that found at least one regression.
pub const REGRESSION_FOUND: u8 = 1;
/// Exit code of a harness or usage error: bad flags or config, services that cannot start, a
/// failed benchmark, an interrupted run. Nothing is stored as a baseline in that case.
pub const HARNESS_ERROR: u8 = 2;

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Self::Success => SUCCESS,
            Self::RegressionFound => REGRESSION_FOUND,
        })
    }
}
