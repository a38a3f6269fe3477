//! `cargo xtask`: parse the flags, build the command's one [`Config`] and run the command (one
//! match over the command table, `xtask::commands`), and map the result to the documented
//! exit code (0 success, 1 regression found, 2 harness or usage error).

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use xtask::commands;
use xtask::config::Config;
use xtask::exit::{HARNESS_ERROR, Outcome};
use xtask::flags::{BaselineCommand, Command, PerfAction, Xtask};
use xtask::provision::ServicesMode;
use xtask::shutdown::Shutdown;

fn main() -> ExitCode {
    let flags = Xtask::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(HARNESS_ERROR);
        }
    };
    let result = runtime.block_on(async {
        // First thing: no signal may kill the harness unhandled.
        let mut shutdown = Shutdown::install()?;
        run(flags.command, &mut shutdown).await
    });
    // A command stopped by a signal may leave a blocking task (a git program it waits for):
    // do not wait for it on the way out.
    runtime.shutdown_background();
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(HARNESS_ERROR)
        }
    }
}

/// The command table: each command's [`Config`] (from its `--out` and `--services`, the
/// workspace's `[workspace.metadata.perf]` and the environment), then the command.
async fn run(command: Command, shutdown: &mut Shutdown) -> Result<Outcome> {
    let load = Config::load;
    match command {
        Command::Setup(setup) => commands::setup::run(&load(None, setup.services)?, shutdown).await,
        Command::Perf(flags) => match &flags.action {
            None => {
                let config = load(flags.select.out.as_deref(), flags.measure.services)?;
                if flags.list {
                    commands::list::run(&config, &flags, shutdown).await
                } else {
                    commands::perf::run(&config, &flags, shutdown).await
                }
            }
            Some(PerfAction::Baseline(command)) => {
                let services = match command {
                    BaselineCommand::Record { measure, .. } => measure.services,
                    _ => ServicesMode::Auto,
                };
                commands::baseline::run(&load(None, services)?, command, shutdown).await
            }
            Some(PerfAction::History(history)) => {
                commands::history::run(&load(None, ServicesMode::Auto)?, history, shutdown).await
            }
            Some(PerfAction::Bisect(bisect)) => {
                let config = load(bisect.out.as_deref(), bisect.services)?;
                commands::bisect::run(&config, bisect, shutdown).await
            }
            Some(PerfAction::Calibrate(calibrate)) => {
                let config = load(calibrate.select.out.as_deref(), calibrate.measure.services)?;
                commands::calibrate::run(&config, calibrate, shutdown).await
            }
            Some(PerfAction::Merge(merge)) => {
                commands::merge::run(&load(merge.out.as_deref(), ServicesMode::Auto)?, merge)
            }
            Some(PerfAction::Publish(publish)) => {
                // The directory published: the artifact's, else the report's.
                let dir = publish
                    .from_artifact
                    .as_deref()
                    .or(publish.report.as_deref());
                commands::publish::run(&load(dir, ServicesMode::Auto)?, publish, shutdown).await
            }
        },
    }
}
