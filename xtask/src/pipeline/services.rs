//! The services stage: install what this machine lacks for them (native servers when nothing
//! else serves; valgrind and the Gungraun runner for a whole run), start Postgres and Redis, and
//! tear them down. A signal during the start stops it and whatever it started.

use anyhow::Result;

use crate::config::Config;
use crate::progress::Progress;
use crate::provision::{ProvisionOptions, Services, ServicesMode};
use crate::record::Phase;
use crate::shutdown::Shutdown;

/// Starts the services `mode` asks for (a run with a `selection` counts no instructions, so it
/// needs no runner), and the phase saying how long that took.
pub async fn start(
    config: &Config,
    mode: ServicesMode,
    selection: Option<&str>,
    progress: &Progress,
    shutdown: &mut Shutdown,
) -> Result<(Services, Phase)> {
    let layout = &config.layout;
    let options = ProvisionOptions {
        mode,
        ..config.provision.clone()
    };
    let report_line = |line: &str| progress.line(line);
    let started = std::time::Instant::now();
    // What this machine lacks for the services (native servers when nothing else serves).
    let setup_logs = layout.target_dir.join("perf-setup");
    shutdown
        .until_interrupted(crate::setup::ensure_services(
            &options,
            &setup_logs,
            progress,
        ))
        .await?;
    if selection.is_none() {
        // A whole run counts instructions: valgrind and the runner before anything starts.
        shutdown
            .until_interrupted(crate::setup::gungraun_runner(
                &layout.root,
                &layout.target_dir,
                progress,
            ))
            .await?;
    }
    let services = shutdown
        .until_interrupted(Services::start(&options, &report_line))
        .await?;
    let phase = Phase {
        name: "services: start".to_owned(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((services, phase))
}

/// Tears the services down; a failure is said, never an error (the run's outcome stands).
pub async fn tear_down(services: Services, progress: &Progress) {
    progress.line("services: tearing down");
    if let Err(error) = services.teardown().await {
        progress.line(&format!("services: teardown failed: {error}"));
    }
}
