//! `suite`: the entry points through which the harness drives this crate at any revision:
//! `prepare` (migrate and seed an empty database), `scenario <name>` (run one I/O scenario and
//! print its heap use and its observations as JSON lines), `leak <name>` (repeat a scenario's
//! measured part and print its live-heap growth per round), `load` (an open-loop load run of
//! the realistic mix), `list`, and `plans` (the plan shape of every key statement of the query
//! layer, one JSON line each).
//!
//! Its global allocator counts allocations (`bench_suite::memory`). Must never: print anything
//! on stdout but the JSON lines the harness reads, or run without a bound.

use anyhow::Result;
use bench_suite::load::{self, Schedule};
use bench_suite::memory::CountingAllocator;
use bench_suite::operations::Operation;
use bench_suite::query;
use bench_suite::scenarios::{self, SCENARIOS};
use bench_suite::seed::{self, SeedSize};
use bench_suite::settings::Settings;
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[derive(Parser)]
#[command(about = "Drives the system under test for the perf harness")]
struct Flags {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the migrations and insert the deterministic seed data into an empty database.
    ///
    /// The size is the default (1,000 users, 20,000 words, 100,000 cards) times `--scale`;
    /// `--users`, `--words` and `--cards` override one count each.
    Prepare {
        /// Multiplies every default count (0.1, 10, ...).
        #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
        scale: f64,
        #[arg(long)]
        users: Option<u32>,
        #[arg(long)]
        words: Option<u32>,
        #[arg(long)]
        cards: Option<u32>,
    },
    /// Run one I/O scenario; print `{"memory": ...}` (its measured part's allocations, bytes
    /// and peak heap growth), then what it observed, as JSON lines.
    Scenario { name: String },
    /// Run a scenario's measured part once to warm up, then `--rounds` times in this process,
    /// and print `{"leak": ...}`: the live-heap growth per round from the first to the last.
    Leak {
        name: String,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=1000))]
        rounds: u32,
    },
    /// Open-loop load of the realistic mix through the service layer; prints `{"load": ...}`.
    Load {
        /// Requests per second, scheduled at fixed intended start times.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Seconds (at most 300).
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
        /// Requests running at once; a request due beyond it is counted as dropped.
        #[arg(long, default_value_t = 64)]
        max_in_flight: usize,
        /// Seed of the RNG that picks users, words and cards.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print `{"ready":true}` after connecting and wait for a line on stdin before the load
        /// starts (the harness's handshake).
        #[arg(long)]
        handshake: bool,
    },
    /// List the I/O scenarios, one JSON line each: the named scenarios, then one per wall-time
    /// benchmark (`call.<group>.<name>`, with the `benchmark` whose one call it counts).
    List,
    /// Explain (without executing) every key statement of the query layer against the seeded
    /// database and print `{"name", "shape", "nodes"}` per statement, one JSON line each.
    Plans {
        /// Only print the statements' names, one per line (needs no database).
        #[arg(long)]
        list: bool,
    },
}

/// A `--scale`: a finite number above 0.
fn parse_scale(text: &str) -> Result<f64, String> {
    let scale: f64 = text
        .parse()
        .map_err(|error| format!("{text:?} is not a number: {error}"))?;
    if scale.is_finite() && scale > 0.0 {
        Ok(scale)
    } else {
        Err(format!("{text:?} is not a positive finite scale"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    match Flags::parse().command {
        Command::Prepare {
            scale,
            users,
            words,
            cards,
        } => prepare(scale, users, words, cards).await?,
        Command::Scenario { name } => {
            let settings = Settings::from_env()?;
            let measured =
                scenarios::run_measured(&name, &settings, &scenarios::Handshake::Stdio).await?;
            if let Some(memory) = measured.memory {
                println!("{}", serde_json::json!({ "memory": memory }));
            }
            println!("{}", serde_json::to_string(&measured.observations)?);
        }
        Command::Leak { name, rounds } => {
            let settings = Settings::from_env()?;
            let measured =
                scenarios::run_measured(&name, &settings, &scenarios::Handshake::Leak { rounds })
                    .await?;
            println!("{}", serde_json::json!({ "leak": measured.leak }));
        }
        Command::Load {
            rate,
            duration,
            max_in_flight,
            seed,
            handshake,
        } => run_load(rate, duration, max_in_flight, seed, handshake).await?,
        Command::Plans { list: true } => {
            for name in bench_suite::plans::STATEMENTS {
                println!("{name}");
            }
        }
        Command::Plans { list: false } => {
            let database_url = std::env::var("DATABASE_URL").map_err(|_| {
                anyhow::anyhow!(
                    "DATABASE_URL is not set; run through `cargo xtask perf`, or set it to a \
                     database seeded by `suite prepare`"
                )
            })?;
            for line in bench_suite::plans::explain_all(&database_url).await? {
                println!("{}", serde_json::to_string(&line)?);
            }
        }
        Command::List => {
            for scenario in SCENARIOS {
                println!(
                    "{}",
                    serde_json::json!({ "name": scenario.name, "about": scenario.about })
                );
            }
            // One call of each wall-time benchmark's operation: counted, never leak-checked.
            for operation in Operation::ALL {
                println!(
                    "{}",
                    serde_json::json!({
                        "name": operation.scenario(),
                        "about": operation.about(),
                        "benchmark": format!("wall_time/{}", operation.benchmark()),
                    })
                );
            }
        }
    }
    Ok(())
}

/// `suite prepare`: migrates the database at `DATABASE_URL` and seeds it (`scale` times the
/// default size, unless a count is given); prints the seed's summary.
async fn prepare(
    scale: f64,
    users: Option<u32>,
    words: Option<u32>,
    cards: Option<u32>,
) -> Result<()> {
    let scaled = SeedSize::scaled(scale);
    let size = SeedSize {
        users: users.unwrap_or(scaled.users),
        words: words.unwrap_or(scaled.words),
        cards: cards.unwrap_or(scaled.cards),
    };
    let settings = Settings::from_env()?;
    let pool = query::connect(&settings.database_url, 2).await?;
    query::MIGRATOR.run(&pool).await?;
    let summary = seed::seed(&pool, size).await?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// `suite load`: the open-loop load run of the realistic mix; prints its summary.
async fn run_load(
    rate: f64,
    duration: f64,
    max_in_flight: usize,
    seed: u64,
    handshake: bool,
) -> Result<()> {
    anyhow::ensure!(
        duration.is_finite() && duration > 0.0,
        "--duration {duration} is not a positive number of seconds"
    );
    let schedule = Schedule::new(
        rate,
        std::time::Duration::from_secs_f64(duration.min(1e6)),
        max_in_flight,
    )?;
    let settings = Settings::from_env()?;
    let handshake = if handshake {
        scenarios::Handshake::Stdio
    } else {
        scenarios::Handshake::None
    };
    let summary = load::run_mixed(&settings, &schedule, seed, &handshake).await?;
    println!("{}", serde_json::json!({ "load": summary }));
    Ok(())
}
