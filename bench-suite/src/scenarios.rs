//! Named I/O scenarios: fixed sequences of service calls whose SQL statements and Redis
//! commands the harness counts on the servers. Each scenario is deterministic given the seed
//! data and a fresh cache namespace, so its counts are exact and repeatable.
//!
//! A scenario first does its setup (connecting, warming what it needs warm), then hands its
//! measured part to [`Handshake::measure`]; only that part is counted (the harness zeroes the
//! servers' statistics when it says go), and only that part's heap use is reported. The
//! documented counts below are checked by the end-to-end tests. [`Handshake::Leak`] runs the
//! measured part repeatedly in one process to measure live-heap growth per round.
//!
//! Must never: do work after the measured part that the counts would miss, or let a scenario's
//! measured part depend on anything but the seed data and its own setup.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use chrono::Duration;

use crate::cache::CacheStats;
use crate::memory::{self, LeakReport, Usage};
use crate::model::{NewCard, ReviewRequestId};
use crate::operations::Operation;
use crate::seed::session_token;
use crate::service::{Service, ServiceOptions};
use crate::settings::Settings;
use crate::sm2::Grade;

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
        about: "50 word lookups cold (50 SQL, 50 GET, 50 SET), again warm (L1: nothing), again \
                from a fresh L1 (50 GET)",
    },
    ScenarioInfo {
        name: "words_batch",
        about: "the definitions of a list of 50 words cold (1 MGET, 1 SQL, 50 SET), then warm",
    },
    ScenarioInfo {
        name: "due_cards",
        about: "the first 3 due pages of users 1..=10: first pages through the cache (MGET, \
                EVALSHA fill [GET, SET] each), later pages from the database",
    },
    ScenarioInfo {
        name: "dashboard_cold",
        about: "the dashboards of users 1..=10 with a cold cache: 3 SQL and 10 Redis commands \
                each (GET + SET; 2 x MGET + EVALSHA [GET, SET])",
    },
    ScenarioInfo {
        name: "dashboard_warm",
        about: "the dashboards of users 1..=10 again, warm: no SQL, no Redis command",
    },
    ScenarioInfo {
        name: "review_card",
        about: "user 7 reviews the first card of a warm due list (4 EVALSHA invalidations \
                [DEL, INCR, PEXPIRE, PUBLISH]), then opens the dashboard again (2 x MGET + \
                EVALSHA [GET, SET]): 6 SQL, 28 Redis commands",
    },
    ScenarioInfo {
        name: "bulk_import",
        about: "1,000 new cards for users 1..=10 in one set-based statement, between 2 x 2 \
                EVALSHA invalidations of their due lists and statistics (92 Redis commands)",
    },
    ScenarioInfo {
        name: "session_auth",
        about: "20 session lookups cold, then the same 20 warm",
    },
];

/// What the scenario observed from the inside (the harness adds the servers' counts).
pub type Observations = BTreeMap<String, u64>;

/// How a scenario's measured part is driven.
pub enum Handshake {
    /// Print `{"ready":true}` on stdout, wait for a line on stdin (the harness's protocol),
    /// then run the measured part once, measuring its heap use.
    Stdio,
    /// Run the measured part once without waiting (tests, direct use).
    None,
    /// Run the measured part once to warm up, then `rounds` times, and report live-heap growth
    /// per round ([`memory::leak_check`]).
    Leak { rounds: u32 },
}

/// What running a scenario produced.
#[derive(Debug, Default)]
pub struct Measured {
    /// What the (last run of the) measured part observed.
    pub observations: Observations,
    /// Heap use of the measured part (`Stdio`, when the binary counts allocations).
    pub memory: Option<Usage>,
    /// Live-heap growth over the rounds (`Leak`).
    pub leak: Option<LeakReport>,
}

impl Handshake {
    /// Tells the driver that setup is done and waits for its go (`Stdio` only).
    pub async fn ready(&self) -> Result<()> {
        self.tell_and_wait(r#"{"ready":true}"#, "waiting for the harness's go on stdin")
            .await
    }

    /// Tells the driver that the measured part is over and waits until it has read its counts
    /// (`Stdio` only), so that a scenario can undo what it changed without being counted:
    /// `{"measured":true}` on stdout, then a line on stdin.
    pub async fn measured(&self) -> Result<()> {
        self.tell_and_wait(
            r#"{"measured":true}"#,
            "waiting for the harness to read the counts",
        )
        .await
    }

    /// `Stdio`: prints `line` on stdout and waits for a line on stdin.
    async fn tell_and_wait(&self, line: &str, waiting_for: &'static str) -> Result<()> {
        match self {
            Handshake::None | Handshake::Leak { .. } => Ok(()),
            Handshake::Stdio => {
                use std::io::Write as _;
                let mut stdout = std::io::stdout();
                writeln!(stdout, "{line}")?;
                stdout.flush()?;
                tokio::task::spawn_blocking(|| {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).map(|_| ())
                })
                .await?
                .context(waiting_for)
            }
        }
    }

    /// Runs a scenario's measured part as this handshake says (after [`Handshake::ready`]).
    pub async fn measure(
        &self,
        mut part: impl AsyncFnMut() -> Result<Observations>,
    ) -> Result<Measured> {
        self.ready().await?;
        match self {
            Handshake::None => Ok(Measured {
                observations: part().await?,
                ..Measured::default()
            }),
            Handshake::Stdio => {
                let span = memory::Span::start();
                let observations = part().await?;
                let usage = span.finish();
                Ok(Measured {
                    observations,
                    memory: memory::is_counting().then_some(usage),
                    leak: None,
                })
            }
            Handshake::Leak { rounds } => {
                anyhow::ensure!(
                    memory::is_counting(),
                    "this binary does not count allocations: install memory::CountingAllocator \
                     as its #[global_allocator] to run a leak check"
                );
                let mut last = Observations::new();
                let report = memory::leak_check(*rounds, async || {
                    last = part().await?;
                    Ok::<(), anyhow::Error>(())
                })
                .await?;
                Ok(Measured {
                    observations: last,
                    memory: None,
                    leak: Some(report),
                })
            }
        }
    }
}

/// Runs the named scenario once and returns what it observed.
pub async fn run(name: &str, settings: &Settings, handshake: &Handshake) -> Result<Observations> {
    Ok(run_measured(name, settings, handshake).await?.observations)
}

/// Runs the named scenario as `handshake` says: its observations, heap use or leak report.
pub async fn run_measured(
    name: &str,
    settings: &Settings,
    handshake: &Handshake,
) -> Result<Measured> {
    match name {
        "cache_aside_read" => cache_aside_read(settings, handshake).await,
        "words_batch" => words_batch(settings, handshake).await,
        "due_cards" => due_cards(settings, handshake).await,
        "dashboard_cold" => dashboard(settings, handshake, false).await,
        "dashboard_warm" => dashboard(settings, handshake, true).await,
        "review_card" => review_card(settings, handshake).await,
        "bulk_import" => bulk_import(settings, handshake).await,
        "session_auth" => session_auth(settings, handshake).await,
        other => match Operation::of_scenario(other) {
            Some(operation) => operation.count_one_call(settings, handshake).await,
            None => {
                let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
                bail!(
                    "no scenario named {other:?}; known: {}, and `{}<benchmark>` for every \
                     wall-time benchmark",
                    known.join(", "),
                    crate::operations::SCENARIO_PREFIX
                )
            }
        },
    }
}

async fn connect(settings: &Settings) -> Result<Service> {
    Ok(Service::connect(settings, &ServiceOptions::default()).await?)
}

/// The counters of one namespace, as `{prefix}.{counter}` observations (zeros left out).
fn observe(observations: &mut Observations, prefix: &str, stats: &CacheStats) {
    for (name, value) in stats.fields() {
        if value > 0 {
            observations.insert(format!("{prefix}.{name}"), value);
        }
    }
    if let Some(permille) = stats.hit_permille() {
        observations.insert(format!("{prefix}.hit_permille"), permille);
    }
}

const WORD_IDS: std::ops::RangeInclusive<i64> = 1..=50;
const USERS: std::ops::RangeInclusive<i64> = 1..=10;

async fn cache_aside_read(settings: &Settings, handshake: &Handshake) -> Result<Measured> {
    let first = connect(settings).await?;
    // A second instance has an empty L1 but shares Redis: its reads are L2 hits.
    let second = connect(settings).await?;
    handshake
        .measure(async || {
            for _ in 0..2 {
                for id in WORD_IDS {
                    first
                        .word_lookup(id)
                        .await?
                        .with_context(|| format!("word {id} is missing from the seed data"))?;
                }
            }
            for id in WORD_IDS {
                second.word_lookup(id).await?;
            }
            let mut observations = Observations::new();
            observe(&mut observations, "first.words", &first.cache_stats().words);
            observe(
                &mut observations,
                "second.words",
                &second.cache_stats().words,
            );
            Ok(observations)
        })
        .await
}

async fn words_batch(settings: &Settings, handshake: &Handshake) -> Result<Measured> {
    let service = connect(settings).await?;
    let ids: Vec<i64> = (100..150).collect();
    handshake
        .measure(async || {
            for _ in 0..2 {
                let words = service.words_lookup(&ids).await?;
                anyhow::ensure!(
                    words.iter().all(Option::is_some),
                    "a seeded word is missing"
                );
            }
            let mut observations = Observations::new();
            observe(&mut observations, "words", &service.cache_stats().words);
            Ok(observations)
        })
        .await
}

async fn due_cards(settings: &Settings, handshake: &Handshake) -> Result<Measured> {
    let service = connect(settings).await?;
    handshake
        .measure(async || {
            let mut cards = 0_u64;
            let mut pages = 0_u64;
            for user_id in USERS {
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
            let mut observations =
                Observations::from([("pages".to_owned(), pages), ("cards".to_owned(), cards)]);
            observe(&mut observations, "due", &service.cache_stats().due);
            Ok(observations)
        })
        .await
}

async fn dashboard(settings: &Settings, handshake: &Handshake, warm: bool) -> Result<Measured> {
    let service = connect(settings).await?;
    if warm {
        for user_id in USERS {
            service.dashboard(user_id).await?;
        }
    }
    let before = service.cache_stats();
    handshake
        .measure(async || {
            let mut due_now = 0_u64;
            for user_id in USERS {
                let dashboard = service.dashboard(user_id).await?;
                due_now += dashboard.stats.due_now as u64;
            }
            let after = service.cache_stats();
            let mut observations = Observations::from([("due_now".to_owned(), due_now)]);
            observe(
                &mut observations,
                "progress",
                &after.progress.since(&before.progress),
            );
            observe(&mut observations, "due", &after.due.since(&before.due));
            observe(
                &mut observations,
                "prefs",
                &after.preferences.since(&before.preferences),
            );
            Ok(observations)
        })
        .await
}

const REVIEWER: i64 = 7;

async fn review_card(settings: &Settings, handshake: &Handshake) -> Result<Measured> {
    let service = connect(settings).await?;
    let dashboard = service.dashboard(REVIEWER).await?;
    let card = dashboard
        .due
        .cards
        .first()
        .with_context(|| format!("user {REVIEWER} has no due card in the seed data"))?
        .card_id;
    let before = service.cache_stats();
    handshake
        .measure(async || {
            let review = service
                .record_review(
                    REVIEWER,
                    card,
                    Grade::new(4).expect("a valid grade"),
                    ReviewRequestId::random(),
                )
                .await?;
            let outcome = review
                .recorded()
                .context("a review with a new request id was answered as already recorded")?;
            let dashboard = service.dashboard(REVIEWER).await?;
            anyhow::ensure!(
                dashboard.due.cards.iter().all(|c| c.card_id != card),
                "the reviewed card is still in the due list: stale cache"
            );
            let after = service.cache_stats();
            let mut observations = Observations::from([(
                "repetitions_after".to_owned(),
                outcome.after.repetitions as u64,
            )]);
            observe(
                &mut observations,
                "progress",
                &after.progress.since(&before.progress),
            );
            observe(&mut observations, "due", &after.due.since(&before.due));
            Ok(observations)
        })
        .await
}

async fn bulk_import(settings: &Settings, handshake: &Handshake) -> Result<Measured> {
    let service = connect(settings).await?;
    let now = service.now();
    // Cards for the last 100 word ids of the default seed: most users do not study them yet.
    let cards: Vec<NewCard> = USERS
        .flat_map(|user_id| {
            (19_901..=20_000).map(move |word_id| NewCard {
                user_id,
                word_id,
                due_at: now + Duration::hours(word_id % 48),
            })
        })
        .collect();
    handshake
        .measure(async || {
            let inserted = service.import_cards(&cards).await?;
            Ok(Observations::from([
                ("offered".to_owned(), cards.len() as u64),
                ("inserted".to_owned(), inserted),
            ]))
        })
        .await
}

async fn session_auth(settings: &Settings, handshake: &Handshake) -> Result<Measured> {
    let service = connect(settings).await?;
    handshake
        .measure(async || {
            let mut valid = 0_u64;
            for _ in 0..2 {
                for user_id in 1..=20 {
                    if service
                        .authenticate(&session_token(user_id))
                        .await?
                        .is_some()
                    {
                        valid += 1;
                    }
                }
            }
            let mut observations = Observations::from([("valid".to_owned(), valid)]);
            observe(
                &mut observations,
                "sessions",
                &service.cache_stats().sessions,
            );
            Ok(observations)
        })
        .await
}
