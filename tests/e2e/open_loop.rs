//! The load suite's open-loop driver (`bench_suite::load::open_loop`) under tokio's paused
//! clock: requests start at their intended times, latency counts from the intended start (the
//! queueing delay a closed loop hides), requests past the in-flight cap are dropped, failures
//! and timeouts are errors without a latency.
//!
//! They live here, not in bench-suite, because the paused clock needs tokio's `test-util`
//! feature: as a dev-dependency of bench-suite it changed tokio's features whenever the
//! benchmarks were built, so every dependency that uses tokio (sqlx, redis, moka) and
//! bench-suite itself were compiled twice in release, once for the `suite` binary and once for
//! the benchmarks (about 70 s of a one-file rebuild on 2 cores).

use std::sync::Arc;
use std::time::Duration;

use bench_suite::load::{REQUEST_TIMEOUT, Schedule, open_loop};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn requests_start_at_their_intended_times() {
    let schedule = Schedule::new(100.0, Duration::from_secs(1), 1000).unwrap();
    let start = Instant::now();
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let outcome = open_loop(&schedule, |index| {
        let starts = Arc::clone(&starts);
        async move {
            starts.lock().unwrap().push((index, start.elapsed()));
            Ok(())
        }
    })
    .await;
    assert_eq!(outcome.completed, 100);
    assert_eq!(outcome.dropped + outcome.errors, 0);
    let starts = starts.lock().unwrap();
    assert_eq!(starts.len(), 100);
    for &(index, at) in starts.iter() {
        let intended = Duration::from_millis(10 * index);
        assert!(
            at >= intended && at < intended + Duration::from_millis(2),
            "request {index} started at {at:?}, intended {intended:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn latency_includes_the_queueing_delay_of_a_slow_server() {
    // One "connection": each request holds it for 20 ms, while requests are due every
    // 10 ms. Request k waits for the k before it: its latency from its intended start is
    // 20 ms * (k + 1) - 10 ms * k = 10 ms * k + 20 ms. A closed-loop measurement would say
    // 20 ms for every request.
    let schedule = Schedule::new(100.0, Duration::from_millis(100), 1000).unwrap();
    let connection = Arc::new(tokio::sync::Mutex::new(()));
    let outcome = open_loop(&schedule, |_| {
        let connection = Arc::clone(&connection);
        async move {
            let _held = connection.lock().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        }
    })
    .await;
    assert_eq!(outcome.completed, 10);
    let max_ms = outcome.latency_us.max() as f64 / 1000.0;
    let min_ms = outcome.latency_us.min() as f64 / 1000.0;
    assert!((109.0..=112.0).contains(&max_ms), "max {max_ms} ms");
    assert!((19.0..=22.0).contains(&min_ms), "min {min_ms} ms");
    let p50_ms = outcome.latency_us.value_at_quantile(0.5) as f64 / 1000.0;
    assert!(p50_ms >= 59.0, "p50 {p50_ms} ms hides the queueing delay");
    // The run lasts until the last request finished: 10 * 20 ms.
    assert!(outcome.elapsed >= Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn requests_beyond_max_in_flight_are_dropped_not_queued() {
    // Due every 10 ms, each takes 25 ms, one at a time: requests 0, 3, 6, 9 run (each
    // finds the previous one finished), the 6 in between are dropped.
    let schedule = Schedule::new(100.0, Duration::from_millis(100), 1).unwrap();
    let outcome = open_loop(&schedule, |_| async {
        tokio::time::sleep(Duration::from_millis(25)).await;
        Ok(())
    })
    .await;
    assert_eq!((outcome.completed, outcome.dropped), (4, 6));
}

#[tokio::test(start_paused = true)]
async fn failures_and_timeouts_are_errors_without_latency() {
    let schedule = Schedule::new(10.0, Duration::from_millis(300), 10).unwrap();
    let outcome = open_loop(&schedule, |index| async move {
        match index {
            0 => Err("boom".to_owned()),
            1 => {
                tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
                Ok(())
            }
            _ => Ok(()),
        }
    })
    .await;
    assert_eq!((outcome.completed, outcome.errors), (1, 2));
    assert_eq!(outcome.timeouts, 1);
    assert_eq!(outcome.latency_us.len(), 1);
    assert_eq!(outcome.first_error.as_deref(), Some("boom"));
}
