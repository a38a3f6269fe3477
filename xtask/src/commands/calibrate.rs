//! `cargo xtask perf calibrate`: measures HEAD several times on one set of services (each run
//! with a database and cache keys of its own), compares each run with the one before, and
//! reports the false alarms per metric (`calibrate::summarize`, pure) in `calibration.json` and
//! on the terminal. Exit 1 when any metric alarmed. With `--paired`, HEAD's wall-time benchmarks
//! timed against themselves in paired runs (`suites::paired::run_rounds`, as `perf --paired`),
//! judged as a family per run (`calibrate::summarize_paired`), in `calibration-paired.json`.

use anyhow::Result;

use crate::baseline::{GitRepo, HeadState};
use crate::compare;
use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::CalibrateFlags;
use crate::pipeline::collect::{self, Measuring};
use crate::pipeline::services;
use crate::progress::{Progress, ProgressStyleChoice};
use crate::record::{self, RunRecord, Suite};
use crate::shutdown::Shutdown;
use crate::suites::{self, Checkout};

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
    if flags.paired {
        let measured = shutdown
            .until_interrupted(paired_runs(&measuring, &head, flags))
            .await;
        services::tear_down(services, &progress).await;
        return report_paired(config, &progress, &measured?);
    }
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

/// HEAD built once, its binaries kept as both sides, then timed against itself in `--runs`
/// paired runs, each with a run id (databases, cache namespaces) of its own: the samples of
/// each run, adaptive rounds included.
async fn paired_runs(
    measuring: &Measuring<'_>,
    head: &HeadState,
    flags: &CalibrateFlags,
) -> Result<Vec<compare::PairedSamples>> {
    let config = measuring.config;
    let calibration_id = collect::run_id();
    let context = measuring.suite_context(calibration_id.clone(), true);
    if suites::tool_filter(context.filter, Suite::WallTime.prefix()) == suites::ToolFilter::Skip {
        anyhow::bail!(
            "calibrate --paired times wall-time benchmarks, but the selection ({}) selects none.\n  fix: drop --filter, or give one that selects wall_time/ benchmarks",
            config.describe_selection(flags.select.filter.as_deref())
        );
    }
    let head_side = suites::build_for_pairing(
        &context,
        &Checkout {
            label: "head",
            dir: &config.layout.root,
            commit: &head.commit,
            target_dir: &config.layout.target_dir,
            harness_worktree: false,
        },
    )
    .await?;
    let base_side = head_side.copy_as("base", &config.layout.raw_dir("base"))?;
    let plan = suites::paired::RoundsPlan {
        rounds: flags.paired_rounds,
        thresholds: &config.metadata.thresholds,
        paired: config.metadata.paired,
        only: None,
    };
    let mut runs = Vec::new();
    for run in 1..=flags.runs {
        measuring.progress.line(&format!(
            "calibrate --paired: A/A run {run} of {}",
            flags.runs
        ));
        let context = measuring.suite_context(format!("{calibration_id}p{run}"), true);
        let rounds = suites::paired::run_rounds(&context, [&base_side, &head_side], plan).await?;
        for note in &rounds.notes {
            measuring.progress.line(note);
        }
        let judged = crate::calibrate::summarize_paired(
            std::slice::from_ref(&rounds.samples),
            plan.thresholds,
            plan.paired.family,
        );
        let alarms: Vec<String> = judged
            .alarms
            .iter()
            .map(|alarm| format!("{} {:+.1}%", alarm.name, alarm.change_pct))
            .collect();
        measuring.progress.line(&format!(
            "calibrate --paired: A/A run {run}: {}",
            if alarms.is_empty() {
                "no false alarm".to_owned()
            } else {
                format!("FALSE ALARM in {}", alarms.join(", "))
            }
        ));
        runs.push(rounds.samples);
    }
    Ok(runs)
}

/// Writes `calibration-paired.json`, prints the paired calibration; exit 1 with any false
/// alarm.
fn report_paired(
    config: &Config,
    progress: &Progress,
    runs: &[compare::PairedSamples],
) -> Result<Outcome> {
    let calibration = crate::calibrate::summarize_paired(
        runs,
        &config.metadata.thresholds,
        config.metadata.paired.family,
    );
    let path = config.layout.out_dir.join("calibration-paired.json");
    record::write_atomically(&path, &serde_json::to_vec_pretty(&calibration)?)?;
    progress.line(&format!("paired calibration written to {}", path.display()));
    progress.finish();
    print!(
        "{}",
        crate::calibrate::render_paired_calibration(&calibration)
    );
    Ok(if calibration.runs_with_false_alarm == 0 {
        Outcome::Success
    } else {
        Outcome::RegressionFound
    })
}
