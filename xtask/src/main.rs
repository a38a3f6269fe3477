//! `cargo xtask`: parse flags, dispatch to one function per command, map the result to the
//! documented exit code (0 success, 1 regression found, 2 harness or usage error).

use std::process::ExitCode;

use clap::Parser;
use xtask::exit::HARNESS_ERROR;
use xtask::flags::{Command, Xtask};
use xtask::perf;

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
        let mut shutdown = perf::Shutdown::install()?;
        match flags.command {
            Command::Perf(perf_flags) => perf::run(*perf_flags, &mut shutdown).await,
            Command::Setup(setup_flags) => {
                tokio::select! {
                    ready = xtask::setup::run(&setup_flags) => ready,
                    signal = shutdown.received() => Err(anyhow::anyhow!("setup stopped by {signal}")),
                }
            }
        }
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
