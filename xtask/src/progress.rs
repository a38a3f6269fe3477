//! Progress lines: plain, timestamped lines on stderr, so logs of CI and of the end-to-end
//! tests read the same as a terminal. Reports go to stdout; progress never does.

use std::time::Instant;

/// Prints timestamped progress lines relative to the start of the run.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    started: Instant,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    /// One line on stderr, e.g. `[perf   12.3s] services: native ...`.
    pub fn line(&self, message: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        eprintln!("[perf {elapsed:6.1}s] {message}");
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
