//! Idempotent reviews: attempts of one review request, concurrent or retried, record it once
//! and each answer with the same review; a request id reused for a different review is
//! refused and writes nothing.

use std::sync::Arc;
use std::time::Duration;

use bench_suite::model::{Review, ReviewRequestId};
use bench_suite::query::{PoolSettings, ReviewError};
use bench_suite::service::{Service, ServiceError, ServiceOptions};
use perf_tests::heavy;
use perf_tests::services::TestServices;

use super::{card_row, grade, review_log_rows, small_seed, user_with_most_due};

const ATTEMPTS: usize = 20;

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_of_one_review_request_record_it_once() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    // A connection per attempt, so that the attempts really meet on the card's row lock.
    let options = ServiceOptions {
        pool: PoolSettings {
            max_connections: ATTEMPTS as u32,
            min_connections: 0,
            ..PoolSettings::default()
        },
        ..ServiceOptions::default()
    };
    let service = Arc::new(
        Service::connect(&servers.settings, &options)
            .await
            .expect("service"),
    );
    let pool = service.pool().clone();
    let (user, _) = user_with_most_due(&pool, service.now()).await;
    let first_page = service.due_cards(user, None).await.expect("due page");
    let (card, other_card) = (first_page.cards[0].card_id, first_page.cards[1].card_id);
    let logs_before = review_log_rows(&pool, card).await;
    let repetitions_before = card_row(&pool, card).await.3;

    // ATTEMPTS attempts of one request at once (a client that retried while its first
    // attempt was still running, many times over).
    let request = ReviewRequestId::random();
    let barrier = Arc::new(tokio::sync::Barrier::new(ATTEMPTS));
    let attempts: Vec<_> = (0..ATTEMPTS)
        .map(|_| {
            let service = Arc::clone(&service);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                service.record_review(user, card, grade(4), request).await
            })
        })
        .collect();
    let mut reviews = Vec::with_capacity(ATTEMPTS);
    for attempt in attempts {
        let review = tokio::time::timeout(Duration::from_secs(60), attempt)
            .await
            .expect("the attempts finish within a minute")
            .expect("attempt task")
            .expect("every attempt succeeds");
        reviews.push(review);
    }
    let recorded: Vec<_> = reviews.iter().filter_map(Review::recorded).collect();
    assert_eq!(
        recorded.len(),
        1,
        "exactly one attempt records: {reviews:?}"
    );
    let review_id = recorded[0].review_id;
    assert!(
        reviews.iter().all(|r| r.review_id() == review_id),
        "every attempt answers with the same review: {reviews:?}"
    );
    assert_eq!(review_log_rows(&pool, card).await, logs_before + 1);
    assert_eq!(card_row(&pool, card).await.3, repetitions_before.max(0) + 1);

    // A later retry: the same answer, nothing written.
    match service
        .record_review(user, card, grade(4), request)
        .await
        .expect("retry")
    {
        Review::AlreadyRecorded(past) => {
            assert_eq!(
                (past.review_id, past.card_id, past.grade),
                (review_id, card, grade(4))
            );
        }
        recorded => panic!("the retry recorded again: {recorded:?}"),
    }

    // The same request id for another grade, or another card: refused, nothing written.
    for (card_asked, grade_asked) in [(card, grade(2)), (other_card, grade(4))] {
        let other_logs = review_log_rows(&pool, card_asked).await;
        let refused = service
            .record_review(user, card_asked, grade_asked, request)
            .await;
        match &refused {
            Err(ServiceError::Review(ReviewError::RequestIdReused { past, .. })) => {
                assert_eq!(past.review_id, review_id);
                let message = refused.as_ref().unwrap_err().to_string();
                assert!(message.contains("make a new request id"), "{message}");
            }
            other => panic!("a reused request id must be refused: {other:?}"),
        }
        assert_eq!(review_log_rows(&pool, card_asked).await, other_logs);
    }
    assert_eq!(card_row(&pool, card).await.3, repetitions_before.max(0) + 1);

    // A new request id records a new review.
    let next = service
        .record_review(user, card, grade(4), ReviewRequestId::random())
        .await
        .expect("a new review");
    assert!(next.recorded().is_some(), "{next:?}");
    assert_eq!(review_log_rows(&pool, card).await, logs_before + 2);

    drop(service);
    pool.close().await;
    servers.stop().await;
}
