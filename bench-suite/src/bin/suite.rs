//! `suite`: the entry points through which the harness drives this crate at any revision:
//! `prepare` (migrate and seed an empty database), `scenario <name>` (run one I/O scenario and
//! print its observations as one JSON line) and `list`.

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
    Prepare {
        #[arg(long, default_value_t = 1_000)]
        users: u32,
        #[arg(long, default_value_t = 20_000)]
        words: u32,
        #[arg(long, default_value_t = 100_000)]
        cards: u32,
    },
    /// Run one I/O scenario and print what it observed as one JSON line.
    Scenario { name: String },
    /// List the I/O scenarios, one JSON line each.
    List,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    match Flags::parse().command {
        Command::Prepare {
            users,
            words,
            cards,
        } => {
            let settings = Settings::from_env()?;
            let pool = query::connect(&settings.database_url, 2).await?;
            query::MIGRATOR.run(&pool).await?;
            let summary = seed::seed(
                &pool,
                SeedSize {
                    users,
                    words,
                    cards,
                },
            )
            .await?;
            println!(
                "{}",
                serde_json::json!({
                    "users": summary.users, "words": summary.words, "cards": summary.cards,
                })
            );
        }
        Command::Scenario { name } => {
            let settings = Settings::from_env()?;
            let observations = scenarios::run(&name, &settings).await?;
            println!("{}", serde_json::to_string(&observations)?);
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
