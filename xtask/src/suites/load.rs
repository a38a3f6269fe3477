//! Load: an open-loop load run of the realistic mix (`suite load`, after every other suite of a
//! checkout) and, while it runs, the servers' own resource use (`resources`).
//!
//! Every `load/<mix>/...` metric is statistical: latency, throughput and server CPU depend on
//! the machine's other work (two shared cores), so they are shown, never gated. That includes
//! `errors`: a request can time out on a busy machine without any change in the code, so a
//! deterministic zero threshold would fail runs for noise; errors are shown (with the first
//! error's text on the progress line) and a human judges them.
//!
//! Must never: run a load without a bound (the `suite load` command caps requests and time, and
//! the harness kills it after its duration plus a margin), send load anywhere but the run's own
//! loopback servers, or record a server resource number it did not read (external servers, and
//! servers whose statistics cannot be read, are said to be unmeasured in the record's notes).

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use crate::provision::{Sampler, ServerProcesses};
use crate::record::{Metric, MetricKind, Suite, Unit};

use super::SuiteError;
use super::child::Interactive;
use super::resources::{self, ServerUsage};

/// The mix `suite load` runs, as named in metrics.
pub const MIX: &str = "mixed";
/// Requests per second.
pub const RATE: u32 = 200;
/// Requests running at once before new ones are dropped.
pub const MAX_IN_FLIGHT: u32 = 64;

/// How long the load runs: short in the quick profile, so `--quick` stays fast.
pub fn duration(quick: bool) -> Duration {
    Duration::from_secs(if quick { 3 } else { 20 })
}

/// The `suite load` arguments of a profile.
pub fn args(quick: bool) -> Vec<String> {
    vec![
        "load".to_owned(),
        "--rate".to_owned(),
        RATE.to_string(),
        "--duration".to_owned(),
        duration(quick).as_secs().to_string(),
        "--max-in-flight".to_owned(),
        MAX_IN_FLIGHT.to_string(),
        "--handshake".to_owned(),
    ]
}

/// What a load run recorded.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub metrics: Vec<Metric>,
    /// What was not measured and why, and how memory was read.
    pub notes: Vec<String>,
    /// A line for the progress output.
    pub summary: String,
}

fn metric(measure: &str, unit: Unit, value: f64) -> Metric {
    Metric {
        name: format!("load/{MIX}/{measure}"),
        suite: Suite::Load,
        unit,
        kind: MetricKind::Statistical,
        value,
        interval: None,
        samples: Vec::new(),
        shape: None,
    }
}

/// The metrics of `suite load`'s `{"load": ...}` line.
pub fn load_metrics(stdout: &str) -> Result<(Vec<Metric>, serde_json::Value), SuiteError> {
    let load = stdout
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|mut v| v.get_mut("load").map(serde_json::Value::take))
        .ok_or_else(|| SuiteError::Output {
            suite: "load",
            detail: format!("`suite load` printed no `{{\"load\": ..}}` line; output:\n{stdout}"),
        })?;
    let field = |name: &str| {
        load.get(name)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| SuiteError::Output {
                suite: "load",
                detail: format!("`load.{name}` is missing or not a number in {load}"),
            })
    };
    let metrics = vec![
        metric("throughput", Unit::PerSecond, field("throughput")?),
        metric("p50_us", Unit::Microseconds, field("p50_us")?),
        metric("p95_us", Unit::Microseconds, field("p95_us")?),
        metric("p99_us", Unit::Microseconds, field("p99_us")?),
        metric("max_us", Unit::Microseconds, field("max_us")?),
        metric("errors", Unit::Count, field("errors")?),
        metric("dropped", Unit::Count, field("dropped")?),
    ];
    Ok((metrics, load))
}

/// The server metrics of a measured usage, or a note saying why there are none.
pub fn usage_metrics(usage: &ServerUsage) -> (Vec<Metric>, Vec<String>) {
    match usage {
        ServerUsage::Measured {
            postgres_cpu_ms,
            redis_cpu_ms,
            postgres_peak_bytes,
            redis_peak_bytes,
            memory_source,
        } => (
            vec![
                metric("postgres_cpu_ms", Unit::Milliseconds, *postgres_cpu_ms),
                metric("redis_cpu_ms", Unit::Milliseconds, *redis_cpu_ms),
                metric(
                    "postgres_peak_rss_bytes",
                    Unit::Bytes,
                    *postgres_peak_bytes as f64,
                ),
                metric(
                    "redis_peak_rss_bytes",
                    Unit::Bytes,
                    *redis_peak_bytes as f64,
                ),
            ],
            vec![format!(
                "load/{MIX}: server memory is {memory_source}, sampled every {} ms",
                resources::SAMPLE_INTERVAL.as_millis()
            )],
        ),
        ServerUsage::NotMeasured { reason } => (
            Vec::new(),
            vec![format!(
                "load/{MIX}: server resource use (CPU, memory) was not measured: {reason}"
            )],
        ),
    }
}

/// Runs `command` (a `suite load ... --handshake`) and measures the servers while it runs.
pub async fn run(
    command: tokio::process::Command,
    servers: ServerProcesses,
    quick: bool,
    what: &str,
    log: &Path,
) -> Result<LoadResult, SuiteError> {
    let sampler = Sampler::new(servers).await;
    let mut child = Interactive::spawn(command)?;
    // The load's own duration, its final drain (10 s) and a margin for setup.
    let limit = duration(quick) + Duration::from_secs(60);
    let (status, measured, usage) =
        tokio::time::timeout(limit, exchange(&mut child, &sampler, limit))
            .await
            .map_err(|_| {
                output_error(format!(
                    "{what} did not finish within {} s",
                    limit.as_secs()
                ))
            })??;
    let stdout = child.finish(what, status, measured, log).await?;
    let (mut metrics, load) = load_metrics(&stdout)?;
    let usage = usage.ok_or_else(|| {
        output_error("`suite load` never sent its {\"ready\":true} handshake".to_owned())
    })?;
    let (server_metrics, notes) = usage_metrics(&usage);
    metrics.extend(server_metrics);
    Ok(LoadResult {
        metrics,
        notes,
        summary: summary(&load),
    })
}

fn output_error(detail: String) -> SuiteError {
    SuiteError::Output {
        suite: "load",
        detail,
    }
}

/// Reads the load's output until its handshake, reads the servers (the baseline), answers
/// `go` and samples the servers until the output ends (at most `limit`); then waits for the
/// load to exit. Returns its exit status, its output without the handshake, and the servers'
/// usage (`None` when the load never sent its handshake).
async fn exchange(
    child: &mut Interactive,
    sampler: &Result<Sampler, String>,
    limit: Duration,
) -> Result<(ExitStatus, String, Option<ServerUsage>), SuiteError> {
    let mut measured = String::new();
    let mut usage = None;
    while let Some(line) = child
        .next_line()
        .await
        .map_err(|e| output_error(format!("reading `suite load`'s output: {e}")))?
    {
        if usage.is_none() && Interactive::is_ready(&line) {
            let baseline = match sampler {
                Ok(sampler) => sampler.read().await.map(|baseline| (sampler, baseline)),
                Err(reason) => Err(reason.clone()),
            };
            child
                .answer_go()
                .await
                .map_err(|e| output_error(format!("answering the load's handshake: {e}")))?;
            let rest = async {
                while let Ok(Some(line)) = child.next_line().await {
                    measured.push_str(&line);
                    measured.push('\n');
                }
            };
            usage = Some(match baseline {
                Ok((sampler, baseline)) => {
                    resources::measure_until(sampler, baseline, rest, limit).await
                }
                Err(reason) => {
                    rest.await;
                    ServerUsage::NotMeasured { reason }
                }
            });
            break;
        }
        measured.push_str(&line);
        measured.push('\n');
    }
    let status = child.wait().await?;
    Ok((status, measured, usage))
}

/// The progress line of a load's `{"load": ...}` numbers.
fn summary(load: &serde_json::Value) -> String {
    let number = |name: &str| {
        load.get(name)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    let mut summary = format!(
        "{:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {} errors, {} dropped",
        number("throughput"),
        number("p50_us"),
        number("p99_us"),
        number("errors"),
        number("dropped")
    );
    if let Some(first) = load.get("first_error").and_then(serde_json::Value::as_str) {
        summary.push_str(&format!(" (first error: {first})"));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_line_becomes_statistical_metrics() {
        let stdout = "{\"load\":{\"mix\":\"mixed\",\"throughput\":199.5,\"p50_us\":800,\
                      \"p95_us\":2000,\"p99_us\":5000,\"max_us\":9000,\"errors\":0,\
                      \"dropped\":1,\"first_error\":null}}\n";
        let (metrics, _) = load_metrics(stdout).unwrap();
        let named: Vec<(&str, f64)> = metrics.iter().map(|m| (m.name.as_str(), m.value)).collect();
        assert_eq!(
            named,
            vec![
                ("load/mixed/throughput", 199.5),
                ("load/mixed/p50_us", 800.0),
                ("load/mixed/p95_us", 2000.0),
                ("load/mixed/p99_us", 5000.0),
                ("load/mixed/max_us", 9000.0),
                ("load/mixed/errors", 0.0),
                ("load/mixed/dropped", 1.0),
            ]
        );
        assert!(
            metrics
                .iter()
                .all(|m| m.kind == MetricKind::Statistical && m.suite == Suite::Load)
        );
        assert!(load_metrics("{\"load\":{\"throughput\":1}}\n").is_err());
    }

    #[test]
    fn unmeasured_servers_give_a_note_and_no_numbers() {
        let (metrics, notes) = usage_metrics(&ServerUsage::NotMeasured {
            reason: "external servers".to_owned(),
        });
        assert!(metrics.is_empty());
        assert!(
            notes[0].contains("not measured: external servers"),
            "{notes:?}"
        );
    }

    #[test]
    fn quick_profile_arguments_are_short_and_bounded() {
        let quick = args(true);
        assert_eq!(quick[0], "load");
        assert!(quick.contains(&"--handshake".to_owned()));
        assert!(duration(true) < duration(false));
        assert!(duration(false) <= Duration::from_secs(60));
    }
}
