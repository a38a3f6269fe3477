//! Named I/O scenarios: fixed sequences of service calls whose SQL statements and Redis
//! commands the harness counts on the servers. Each scenario is deterministic given the seed
//! data and a fresh cache namespace, so its counts are exact and repeatable.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};

use crate::service::{Service, ServiceOptions};
use crate::settings::Settings;

/// A scenario the harness can run.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioInfo {
    pub name: &'static str,
    pub about: &'static str,
}

/// Every scenario, in the order the harness runs them.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "cache_aside_read",
        about: "50 word lookups with a cold cache, again warm (L1), again with a fresh L1 (L2)",
    },
    ScenarioInfo {
        name: "due_cards",
        about: "the first 3 pages of the due list of users 1..=10",
    },
];

/// What the scenario observed from the inside (the harness adds the servers' counts).
pub type Observations = BTreeMap<String, u64>;

const WORD_IDS: std::ops::RangeInclusive<i64> = 1..=50;

/// Runs the named scenario once.
pub async fn run(name: &str, settings: &Settings) -> Result<Observations> {
    match name {
        "cache_aside_read" => cache_aside_read(settings).await,
        "due_cards" => due_cards(settings).await,
        other => {
            let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            bail!("no scenario named {other:?}; known: {}", known.join(", "))
        }
    }
}

async fn cache_aside_read(settings: &Settings) -> Result<Observations> {
    let options = ServiceOptions {
        pool_size: 1,
        ..ServiceOptions::default()
    };
    let mut observations = Observations::new();
    let first = Service::connect(settings, &options).await?;
    for _ in 0..2 {
        for id in WORD_IDS {
            first
                .word_lookup(id)
                .await?
                .with_context(|| format!("word {id} is missing from the seed data"))?;
        }
    }
    // A second instance has an empty L1 but shares Redis: every read is an L2 hit.
    let second = Service::connect(settings, &options).await?;
    for id in WORD_IDS {
        second.word_lookup(id).await?;
    }
    for (instance, service) in [("first", &first), ("second", &second)] {
        let counters = service.word_cache().counters();
        for (what, counter) in [
            ("l1_hits", &counters.l1_hits),
            ("l2_hits", &counters.l2_hits),
            ("loads", &counters.loads),
        ] {
            observations.insert(
                format!("{instance}.{what}"),
                counter.load(Ordering::Relaxed),
            );
        }
    }
    Ok(observations)
}

async fn due_cards(settings: &Settings) -> Result<Observations> {
    let options = ServiceOptions {
        pool_size: 1,
        ..ServiceOptions::default()
    };
    let service = Service::connect(settings, &options).await?;
    let mut cards = 0_u64;
    let mut pages = 0_u64;
    for user_id in 1..=10 {
        let mut after = None;
        for _ in 0..3 {
            let page = service.due_cards(user_id, after).await?;
            pages += 1;
            cards += page.cards.len() as u64;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok(Observations::from([
        ("pages".to_owned(), pages),
        ("cards".to_owned(), cards),
    ]))
}
