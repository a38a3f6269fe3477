//! `suite`: the entry points through which the harness drives this crate at any revision:
//! `prepare` (migrate and seed an empty database), `scenario <name>` (run one I/O scenario and
//! print its observations as one JSON line), `list`, and `plans` (the plan shape of every key
//! statement of the query layer, one JSON line each).

use anyhow::Result;
use bench_suite::query;
use bench_suite::scenarios::{self, SCENARIOS};
use bench_suite::seed::{self, SeedSize};
use bench_suite::settings::Settings;
use clap::{Parser, Subcommand};

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
    /// Run one I/O scenario and print what it observed as one JSON line.
    Scenario { name: String },
    /// List the I/O scenarios, one JSON line each.
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
        } => {
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
        }
        Command::Scenario { name } => {
            let settings = Settings::from_env()?;
            let observations =
                scenarios::run(&name, &settings, &scenarios::Handshake::Stdio).await?;
            println!("{}", serde_json::to_string(&observations)?);
        }
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
        }
    }
    Ok(())
}
