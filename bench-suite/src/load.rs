//! An open-loop load generator on tokio, and the realistic request mix the harness drives with
//! it through the service layer.
//!
//! Open loop: request `i` is due at `start + i / rate`, whether or not earlier requests have
//! finished, and its latency is measured from that intended start (into an HDR histogram), so
//! a slow server shows up as queueing delay instead of as fewer requests (no coordinated
//! omission). When `max_in_flight` requests are already running, a due request is counted as
//! dropped instead of being queued: the generator never queues without bound.
//!
//! Must never: run without a bound (the number of requests, the duration, each request's time
//! and the final drain are all capped), talk to anything but the service's own loopback
//! Postgres and Redis, or measure latency from the moment a request actually started.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::model::ReviewRequestId;
use crate::scenarios::Handshake;
use crate::service::{Service, ServiceOptions};
use crate::settings::Settings;
use crate::sm2::Grade;

/// The most requests one run may schedule.
pub const MAX_REQUESTS: u64 = 200_000;
/// The longest one run may last.
pub const MAX_DURATION: Duration = Duration::from_secs(300);
/// How long one request may take before it counts as a timed-out error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the generator waits for requests still running after the last one was due.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest latency the histogram records (longer ones are clamped to it).
const HISTOGRAM_MAX_US: u64 = 60_000_000;

/// When requests are due and how many may run at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
}

impl Schedule {
    /// `rate` requests per second for `duration`, at most `max_in_flight` running at once.
    pub fn new(rate: f64, duration: Duration, max_in_flight: usize) -> Result<Schedule> {
        ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate {rate} is not a positive number of requests per second"
        );
        ensure!(
            !duration.is_zero() && duration <= MAX_DURATION,
            "--duration {} s is outside 0 < d <= {} s; fix: choose a shorter run",
            duration.as_secs_f64(),
            MAX_DURATION.as_secs()
        );
        ensure!(max_in_flight > 0, "--max-in-flight must be at least 1");
        let schedule = Schedule {
            rate,
            duration,
            max_in_flight,
        };
        ensure!(
            schedule.total() <= MAX_REQUESTS,
            "--rate {rate} for {} s schedules {} requests, more than the cap of {MAX_REQUESTS}; \
             fix: lower the rate or the duration",
            duration.as_secs_f64(),
            schedule.total()
        );
        ensure!(
            schedule.total() > 0,
            "--rate {rate} for {} s schedules no request; fix: raise the rate or the duration",
            duration.as_secs_f64()
        );
        Ok(schedule)
    }

    /// How many requests the run schedules.
    pub fn total(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).floor() as u64
    }

    /// When request `index` is due, after the start.
    pub fn intended_offset(&self, index: u64) -> Duration {
        Duration::from_secs_f64(index as f64 / self.rate)
    }
}

/// What one run of the generator measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scheduled: u64,
    /// Requests that finished without error; their latencies are in `latency_us`.
    pub completed: u64,
    /// Requests that failed, including `timeouts`.
    pub errors: u64,
    /// Requests that took longer than [`REQUEST_TIMEOUT`] (or were still running at the end).
    pub timeouts: u64,
    /// Requests not sent because `max_in_flight` were running when they were due.
    pub dropped: u64,
    /// From the start until the last request finished.
    pub elapsed: Duration,
    /// Latency from the intended start to completion, in microseconds.
    pub latency_us: Histogram<u64>,
    pub first_error: Option<String>,
}

impl Outcome {
    /// Completed requests per second.
    pub fn throughput(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The one-line summary the `suite load` command prints.
    pub fn summary(&self, mix: &str) -> LoadSummary {
        let h = &self.latency_us;
        let at = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        LoadSummary {
            mix: mix.to_owned(),
            scheduled: self.scheduled,
            completed: self.completed,
            errors: self.errors,
            timeouts: self.timeouts,
            dropped: self.dropped,
            elapsed_s: self.elapsed.as_secs_f64(),
            throughput: self.throughput(),
            p50_us: at(0.50),
            p95_us: at(0.95),
            p99_us: at(0.99),
            max_us: if h.is_empty() { 0 } else { h.max() },
            first_error: self.first_error.clone(),
        }
    }
}

/// What `suite load` prints, as `{"load": ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub mix: String,
    pub scheduled: u64,
    pub completed: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub dropped: u64,
    pub elapsed_s: f64,
    /// Completed requests per second.
    pub throughput: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub first_error: Option<String>,
}

/// Runs `op(index)` on the schedule (open loop) and measures each request's latency from its
/// intended start. `op` is called in order, once per request that is sent.
pub async fn open_loop<F, Fut>(schedule: &Schedule, op: F) -> Outcome
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut outcome = Outcome {
        scheduled: schedule.total(),
        completed: 0,
        errors: 0,
        timeouts: 0,
        dropped: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3)
            .expect("valid histogram bounds"),
        first_error: None,
    };
    type Finished = (
        Result<Result<(), String>, tokio::time::error::Elapsed>,
        Duration,
    );
    let record = |outcome: &mut Outcome, finished: Result<Finished, tokio::task::JoinError>| {
        let error = match finished {
            Ok((Ok(Ok(())), latency)) => {
                outcome.completed += 1;
                let us = (latency.as_micros() as u64).clamp(1, HISTOGRAM_MAX_US);
                outcome.latency_us.record(us).expect("clamped into bounds");
                return;
            }
            Ok((Ok(Err(error)), _)) => error,
            Ok((Err(_), _)) => {
                outcome.timeouts += 1;
                format!("timed out after {} s", REQUEST_TIMEOUT.as_secs())
            }
            Err(join) => format!("request task failed: {join}"),
        };
        outcome.errors += 1;
        outcome.first_error.get_or_insert(error);
    };

    let mut running: JoinSet<Finished> = JoinSet::new();
    let start = Instant::now();
    for index in 0..schedule.total() {
        let intended = start + schedule.intended_offset(index);
        tokio::time::sleep_until(intended).await;
        while let Some(finished) = running.try_join_next() {
            record(&mut outcome, finished);
        }
        if running.len() >= schedule.max_in_flight {
            outcome.dropped += 1;
            continue;
        }
        let request = op(index);
        running.spawn(async move {
            let result = tokio::time::timeout(REQUEST_TIMEOUT, request).await;
            (result, intended.elapsed())
        });
    }
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, running.join_next()).await {
            Ok(Some(finished)) => record(&mut outcome, finished),
            Ok(None) => break,
            Err(_) => {
                let left = running.len() as u64;
                outcome.errors += left;
                outcome.timeouts += left;
                outcome
                    .first_error
                    .get_or_insert_with(|| "still running at the end of the drain".to_owned());
                running.abort_all();
                break;
            }
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}

/// The name of the realistic mix, as in `load/<mix>/...` metrics.
pub const MIXED: &str = "mixed";

/// Which kind of request the mix sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// 80%: a random user's dashboard.
    Dashboard(i64),
    /// 15%: a random word's definition.
    WordLookup(i64),
    /// 5%: a review of one of a fixed sample of cards, with a fresh request id.
    Review { user_id: i64, card_id: i64 },
}

/// What the mix draws from.
struct Population {
    users: i64,
    words: i64,
    cards: Vec<(i64, i64)>,
}

fn draw(rng: &mut ChaCha8Rng, population: &Population) -> Request {
    let roll = rng.random_range(0..100);
    if roll < 80 || population.cards.is_empty() && roll >= 95 {
        Request::Dashboard(rng.random_range(1..=population.users))
    } else if roll < 95 {
        Request::WordLookup(rng.random_range(1..=population.words))
    } else {
        let (card_id, user_id) = population.cards[rng.random_range(0..population.cards.len())];
        Request::Review { user_id, card_id }
    }
}

/// Connects a service, then runs the realistic mix (80% dashboards of random users, 15% word
/// lookups, 5% reviews with fresh request ids; users and words from a fixed-seed RNG) on the
/// schedule. The setup (connecting, sizing the population) happens before `handshake`'s go.
pub async fn run_mixed(
    settings: &Settings,
    schedule: &Schedule,
    seed: u64,
    handshake: &Handshake,
) -> Result<LoadSummary> {
    let service = Arc::new(Service::connect(settings, &ServiceOptions::default()).await?);
    let (users, words): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM users), (SELECT COALESCE(MAX(id), 0) FROM words)",
    )
    .fetch_one(service.pool())
    .await
    .context("sizing the load population")?;
    ensure!(
        users > 0 && words > 0,
        "the database has no users or words; fix: run `suite prepare` first"
    );
    let cards: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, user_id FROM review_cards ORDER BY id LIMIT 1000")
            .fetch_all(service.pool())
            .await
            .context("sampling cards to review")?;
    let population = Population {
        users,
        words,
        cards,
    };
    let rng = RefCell::new(ChaCha8Rng::seed_from_u64(seed));
    let grade = Grade::new(4).expect("a valid grade");
    handshake.ready().await?;
    let outcome = open_loop(schedule, |_| {
        let request = draw(&mut rng.borrow_mut(), &population);
        let service = Arc::clone(&service);
        async move {
            let result = match request {
                Request::Dashboard(user_id) => service.dashboard(user_id).await.map(drop),
                Request::WordLookup(word_id) => service.word_lookup(word_id).await.map(drop),
                Request::Review { user_id, card_id } => service
                    .record_review(user_id, card_id, grade, ReviewRequestId::random())
                    .await
                    .map(drop),
            };
            result.map_err(|e| e.to_string())
        }
    })
    .await;
    Ok(outcome.summary(MIXED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_bounded_and_spaced_by_the_rate() {
        let schedule = Schedule::new(100.0, Duration::from_secs(2), 8).unwrap();
        assert_eq!(schedule.total(), 200);
        assert_eq!(schedule.intended_offset(0), Duration::ZERO);
        assert_eq!(schedule.intended_offset(150), Duration::from_millis(1500));
        let too_many = Schedule::new(1e6, Duration::from_secs(100), 8).unwrap_err();
        assert!(too_many.to_string().contains("cap"), "{too_many}");
        assert!(Schedule::new(10.0, Duration::from_secs(301), 8).is_err());
        assert!(Schedule::new(0.0, Duration::from_secs(1), 8).is_err());
        assert!(Schedule::new(10.0, Duration::from_secs(1), 0).is_err());
    }

    #[test]
    fn the_mix_is_seeded_and_mostly_dashboards() {
        let population = Population {
            users: 1000,
            words: 20_000,
            cards: vec![(1, 1), (2, 1)],
        };
        let draws = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..2000)
                .map(|_| draw(&mut rng, &population))
                .collect::<Vec<_>>()
        };
        let first = draws(7);
        assert_eq!(first, draws(7), "the same seed draws the same requests");
        let dashboards = first
            .iter()
            .filter(|r| matches!(r, Request::Dashboard(_)))
            .count();
        let reviews = first
            .iter()
            .filter(|r| matches!(r, Request::Review { .. }))
            .count();
        assert!((1500..1700).contains(&dashboards), "{dashboards}");
        assert!((50..150).contains(&reviews), "{reviews}");
    }
}
