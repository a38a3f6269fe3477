//! Progress of a run, on stderr (reports go to stdout; progress never does). On a terminal
//! (and not `--ci`), an `indicatif` spinner shows the current step and the elapsed time, with
//! each finished step printed above it; otherwise, plain timestamped lines, so that logs of CI
//! and of the end-to-end tests read the same as a terminal.
//!
//! This module must never write to stdout, and never draw a spinner when stderr is not a
//! terminal or in CI mode.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyleChoice {
    /// A spinner with the current step (a terminal, not CI).
    Spinner,
    /// Timestamped lines (CI, pipes, files).
    Lines,
}

impl ProgressStyleChoice {
    /// A spinner when stderr is a terminal and `ci` is off; lines otherwise.
    pub fn detect(ci: bool) -> Self {
        Self::choose(ci, std::io::stderr().is_terminal())
    }

    /// The pure rule behind [`detect`](Self::detect).
    pub fn choose(ci: bool, stderr_is_terminal: bool) -> Self {
        if stderr_is_terminal && !ci {
            Self::Spinner
        } else {
            Self::Lines
        }
    }
}

/// Prints progress relative to the start of the run.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    spinner: Option<ProgressBar>,
}

impl Progress {
    /// Timestamped lines only.
    pub fn new() -> Self {
        Self::with_style(ProgressStyleChoice::Lines)
    }

    pub fn with_style(style: ProgressStyleChoice) -> Self {
        let spinner = (style == ProgressStyleChoice::Spinner).then(|| {
            let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            spinner.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_msg}")
                    .expect("a valid progress template"),
            );
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        Self {
            started: Instant::now(),
            spinner,
        }
    }

    /// One step, e.g. `[perf   12.3s] services: native ...`: printed as a line, and shown
    /// by the spinner (if any) as the current step.
    pub fn line(&self, message: &str) {
        let text = stamped(self.started.elapsed(), message);
        match &self.spinner {
            Some(spinner) if !spinner.is_finished() => {
                spinner.println(&text);
                spinner.set_message(message.to_owned());
            }
            _ => eprintln!("{text}"),
        }
    }

    /// Removes the spinner (before the report is printed); lines are unaffected.
    pub fn finish(&self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `[perf   12.3s] message`
fn stamped(elapsed: Duration, message: &str) -> String {
    format!("[perf {:6.1}s] {message}", elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spinner_only_on_a_terminal_outside_ci() {
        use ProgressStyleChoice::*;
        assert_eq!(ProgressStyleChoice::choose(false, true), Spinner);
        assert_eq!(ProgressStyleChoice::choose(true, true), Lines);
        assert_eq!(ProgressStyleChoice::choose(false, false), Lines);
        assert_eq!(ProgressStyleChoice::choose(true, false), Lines);
    }

    #[test]
    fn lines_carry_the_elapsed_seconds() {
        assert_eq!(
            stamped(Duration::from_millis(12_340), "services: ready"),
            "[perf   12.3s] services: ready"
        );
    }
}
