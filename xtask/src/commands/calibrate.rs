//! `cargo xtask perf calibrate`: measures HEAD several times on one set of services (each run
//! with a database and cache keys of its own), compares each run with the one before, and
//! reports the false alarms per metric (`calibrate::summarize`, pure) in `calibration.json` and
//! on the terminal. Exit 1 when any metric alarmed.

use anyhow::Result;

use crate::baseline::{GitRepo, HeadState};
use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::CalibrateFlags;
use crate::pipeline::collect::{self, Measuring};
use crate::pipeline::services;
use crate::progress::{Progress, ProgressStyleChoice};
use crate::record::{self, RunRecord};
use crate::shutdown::Shutdown;

/// Measures HEAD `--runs` times and reports the false alarms.
pub async fn run(
    config: &Config,
    flags: &CalibrateFlags,
    shutdown: &mut Shutdown,
) -> Result<Outcome> {
    let progress = Progress::with_style(ProgressStyleChoice::detect(false));
    let layout = &config.layout;
    let _claimed = crate::outputs::claim(&layout.out_dir)?;
    let repo = GitRepo::open(&layout.root)?;
    let head = repo.head()?;
    let selection = config.selection(flags.select.filter.as_deref());
    let (services, _) = services::start(
        config,
        flags.measure.services,
        selection.as_deref(),
        &progress,
        shutdown,
    )
    .await?;
    let measuring = Measuring {
        config,
        services: &services,
        progress: &progress,
        quick: flags.measure.quick,
        selection: selection.as_deref(),
    };
    let measured = shutdown
        .until_interrupted(measure_runs(&measuring, &head, flags.runs))
        .await;
    services::tear_down(services, &progress).await;
    let records = measured?;
    let calibration = crate::calibrate::summarize(&records, &config.metadata.thresholds);
    let json = serde_json::to_vec_pretty(&calibration)?;
    let path = layout.out_dir.join("calibration.json");
    record::write_atomically(&path, &json)?;
    progress.line(&format!("calibration written to {}", path.display()));
    progress.finish();
    print!("{}", crate::calibrate::render_calibration(&calibration));
    Ok(if calibration.false_alarms() == 0 {
        Outcome::Success
    } else {
        Outcome::RegressionFound
    })
}

/// HEAD measured `runs` times in the work tree, each run with a run id of its own.
async fn measure_runs(
    measuring: &Measuring<'_>,
    head: &HeadState,
    runs: u32,
) -> Result<Vec<RunRecord>> {
    let environment = measuring.environment();
    let calibration_id = collect::run_id();
    let mut records = Vec::new();
    for round in 1..=runs {
        measuring
            .progress
            .line(&format!("calibrate: run {round} of {runs}"));
        let context = measuring.suite_context(format!("{calibration_id}r{round}"), false);
        let measurement = measuring
            .in_work_tree(&context, "calibrate", &head.commit)
            .await?;
        records.push(measuring.record(&environment, head, measurement));
    }
    Ok(records)
}
