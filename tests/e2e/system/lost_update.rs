//! No lost update: concurrent reviews of one card queue on its row lock, each reschedules from
//! the previous one's result, and each leaves exactly one `review_log` row.

use std::sync::Arc;
use std::time::Duration;

use bench_suite::model::{CardState, Review, ReviewOutcome, ReviewRequestId};
use bench_suite::query::{self, PoolSettings};
use perf_tests::heavy;
use perf_tests::services::TestServices;

use super::{card_row, grade, review_log_rows, small_seed};

const REVIEWS: usize = 50;

/// The new `review_log` rows of a card (id > `after_id`), in id order: (grade, ease_before,
/// ease_after, interval_before, interval_after).
async fn new_log_rows(
    pool: &sqlx::PgPool,
    card_id: i64,
    after_id: i64,
) -> Vec<(i16, f32, f32, i32, i32)> {
    sqlx::query_as(
        "SELECT grade, ease_before, ease_after, interval_before, interval_after \
         FROM review_log WHERE card_id = $1 AND id > $2 ORDER BY id",
    )
    .bind(card_id)
    .bind(after_id)
    .fetch_all(pool)
    .await
    .expect("the card's new reviews")
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_reviews_of_one_card_are_all_applied_and_logged() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    // One connection per concurrent review of a card, so that the reviews really wait on the
    // row lock in Postgres, not for a pool connection.
    let pool = query::connect_with(
        &servers.settings.database_url,
        &PoolSettings {
            max_connections: REVIEWS as u32,
            min_connections: 0,
            ..PoolSettings::default()
        },
    )
    .await
    .expect("pool");
    let now = bench_suite::fixed_now();

    // Two cards: one reviewed 50 times with grade 4 (a success), one 50 times with grade 1 (a
    // lapse), all 100 reviews at once.
    let cards: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, user_id FROM review_cards ORDER BY id LIMIT 2")
            .fetch_all(&pool)
            .await
            .expect("two cards");
    let [(good, good_user), (bad, bad_user)] = cards[..] else {
        panic!("two cards expected: {cards:?}")
    };
    let last_log_id: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM review_log")
        .fetch_one(&pool)
        .await
        .expect("last review id");
    let good_before = card_row(&pool, good).await;
    let bad_before = card_row(&pool, bad).await;
    let good_logs = review_log_rows(&pool, good).await;
    let bad_logs = review_log_rows(&pool, bad).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(2 * REVIEWS));
    let tasks: Vec<_> = (0..2 * REVIEWS)
        .map(|i| {
            let (user, card, g) = if i % 2 == 0 {
                (good_user, good, grade(4))
            } else {
                (bad_user, bad, grade(1))
            };
            let pool = pool.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                query::record_review(&pool, user, card, g, ReviewRequestId::random(), now).await
            })
        })
        .collect();
    let mut outcomes: Vec<ReviewOutcome> = Vec::with_capacity(2 * REVIEWS);
    for task in tasks {
        let outcome = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the reviews finish within a minute")
            .expect("task")
            .expect("review");
        match outcome {
            Review::Recorded(outcome) => outcomes.push(outcome),
            replay => panic!("every review has its own request id: {replay:?}"),
        }
    }
    let (good_outcomes, bad_outcomes): (Vec<_>, Vec<_>) =
        outcomes.into_iter().partition(|o| o.card_id == good);
    assert_eq!(
        (good_outcomes.len(), bad_outcomes.len()),
        (REVIEWS, REVIEWS)
    );

    // Exactly one log row per review: 50 more for each card.
    assert_eq!(
        review_log_rows(&pool, good).await,
        good_logs + REVIEWS as i64
    );
    assert_eq!(review_log_rows(&pool, bad).await, bad_logs + REVIEWS as i64);

    // Grade 4 is a success: each review adds one repetition to what it read and keeps the
    // lapses, so 50 serialised reviews add exactly 50; each saw a different predecessor, i.e.
    // the repetitions they started from are r0, r0 + 1, ..., r0 + 49.
    let r0 = good_before.3.max(0);
    let good_after = card_row(&pool, good).await;
    assert_eq!(
        good_after.3,
        r0 + REVIEWS as i32,
        "repetitions of card {good}"
    );
    assert_eq!(good_after.4, good_before.4, "lapses of card {good}");
    assert_eq!(good_after.0, CardState::Review.as_i16());
    let mut seen: Vec<i32> = good_outcomes.iter().map(|o| o.before.repetitions).collect();
    seen.sort_unstable();
    assert_eq!(seen, (r0..r0 + REVIEWS as i32).collect::<Vec<_>>());

    // Grade 1 is a lapse: each adds one lapse and resets the repetitions to 0.
    let bad_after = card_row(&pool, bad).await;
    assert_eq!(
        bad_after.4,
        bad_before.4 + REVIEWS as i32,
        "lapses of card {bad}"
    );
    assert_eq!(bad_after.3, 0, "repetitions of card {bad}");
    assert_eq!(bad_after.0, CardState::Relearning.as_i16());
    let mut seen: Vec<i32> = bad_outcomes.iter().map(|o| o.before.lapses).collect();
    seen.sort_unstable();
    let l0 = bad_before.4;
    assert_eq!(seen, (l0..l0 + REVIEWS as i32).collect::<Vec<_>>());

    // The log rows, in id (= commit) order, form one chain: each starts from the ease and
    // interval the previous one left, the first from the card before, the last is the card.
    for (card, before, after, g) in [
        (good, good_before, good_after, 4),
        (bad, bad_before, bad_after, 1),
    ] {
        let rows = new_log_rows(&pool, card, last_log_id).await;
        assert_eq!(rows.len(), REVIEWS);
        let mut ease = before.1;
        let mut interval = before.2;
        for (i, &(row_grade, ease_before, ease_after, interval_before, interval_after)) in
            rows.iter().enumerate()
        {
            assert_eq!(row_grade, g, "card {card}, review {i}");
            assert_eq!(
                (ease_before, interval_before),
                (ease, interval),
                "card {card}, review {i} did not start from the previous one"
            );
            ease = ease_after;
            interval = interval_after;
        }
        assert_eq!((ease, interval), (after.1, after.2), "card {card}");
    }

    pool.close().await;
    servers.stop().await;
}
