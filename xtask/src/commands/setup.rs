//! `cargo xtask setup`: installs what this machine lacks for `cargo xtask perf` (`setup`), and
//! says where the Gungraun runner is.

use anyhow::Result;

use crate::config::Config;
use crate::exit::Outcome;
use crate::progress::Progress;
use crate::shutdown::Shutdown;

/// Installs the services' and the runner's prerequisites; stopped by SIGINT or SIGTERM.
pub async fn run(config: &Config, shutdown: &mut Shutdown) -> Result<Outcome> {
    let progress = Progress::new();
    tokio::select! {
        ready = crate::setup::run(config, &progress) => ready,
        signal = shutdown.received() => Err(anyhow::anyhow!("setup stopped by {signal}")),
    }
}
