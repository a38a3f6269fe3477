//! Stopping cleanly on SIGINT and SIGTERM: the handlers (installed once, first thing, for the
//! whole process), a blocking command run until it ends or a signal comes, and the two errors a
//! signal turns into (a run that measured: services torn down and nothing stored; any other
//! command: stopped).

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::exit::Outcome;

/// The signals that stop a command cleanly.
pub struct Shutdown {
    interrupt: Signal,
    terminate: Signal,
}

impl Shutdown {
    /// Installs the handlers; call first thing, so no signal kills the harness unhandled.
    pub fn install() -> Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// The name of the next signal received.
    pub async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    /// `work` until it ends, or the error of a command `stopped` by a signal.
    pub async fn until_stopped<T, E>(
        &mut self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T>
    where
        anyhow::Error: From<E>,
    {
        self.until(work, stopped).await
    }

    /// `work` until it ends, or the error of a measuring run `interrupted` by a signal.
    pub async fn until_interrupted<T, E>(
        &mut self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T>
    where
        anyhow::Error: From<E>,
    {
        self.until(work, interrupted).await
    }

    /// Runs a blocking command on a blocking thread until it ends or a signal stops it (the
    /// thread is then left to the runtime, which does not wait for it on the way out).
    pub async fn until_stopped_blocking(
        &mut self,
        command: &str,
        work: impl FnOnce() -> Result<Outcome> + Send + 'static,
    ) -> Result<Outcome> {
        let blocking = tokio::task::spawn_blocking(work);
        let finished = async {
            blocking
                .await
                .with_context(|| format!("the {command} command panicked"))?
        };
        self.until(finished, stopped).await
    }

    /// `work` until it ends, or the error `signal_error` makes of the signal that came first.
    async fn until<T, E>(
        &mut self,
        work: impl Future<Output = Result<T, E>>,
        signal_error: fn(&str) -> String,
    ) -> Result<T>
    where
        anyhow::Error: From<E>,
    {
        tokio::select! {
            done = work => Ok(done?),
            signal = self.received() => Err(anyhow::anyhow!(signal_error(signal))),
        }
    }
}

/// The error of a command that measures nothing, stopped by a signal.
pub fn stopped(signal: &str) -> String {
    format!("interrupted by {signal}: stopped")
}

/// The error of a measuring run stopped by a signal.
pub fn interrupted(signal: &str) -> String {
    format!("interrupted by {signal}: services torn down, no record saved")
}
