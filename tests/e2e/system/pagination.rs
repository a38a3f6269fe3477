//! Keyset pagination of the due list: walking the pages with their cursors gives exactly the
//! rows of one unpaginated `SELECT .. ORDER BY due_at, id`, with no duplicate and no gap, also
//! when cards share a `due_at` across a page boundary.

use std::collections::HashSet;

use bench_suite::model::{DueCard, DueCursor};
use bench_suite::query::DUE_PAGE_SIZE;
use bench_suite::service::{Service, ServiceOptions};
use perf_tests::heavy;
use perf_tests::services::TestServices;

use super::{small_seed, user_with_most_due, whole_due_list};

/// Every page of `user_id`'s due list through the service (the first through the cache, the
/// others from the database), following the cursors; at most `max_pages` pages.
async fn walk(service: &Service, user_id: i64, max_pages: usize) -> Vec<Vec<DueCard>> {
    let mut pages = Vec::new();
    let mut cursor: Option<DueCursor> = None;
    loop {
        assert!(
            pages.len() < max_pages,
            "user {user_id}: more than {max_pages} pages"
        );
        let page = service
            .due_cards(user_id, cursor)
            .await
            .expect("a due page");
        pages.push(page.cards.clone());
        match page.next {
            Some(next) => {
                let last = page.cards.last().expect("a page with a cursor has cards");
                assert_eq!(
                    next,
                    DueCursor {
                        due_at: last.due_at,
                        card_id: last.card_id
                    },
                    "user {user_id}: the cursor is not the page's last card"
                );
                cursor = Some(next);
            }
            None => return pages,
        }
    }
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_due_pages_by_cursor_yields_the_whole_ordered_due_list_once() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let service = Service::connect(&servers.settings, &ServiceOptions::default())
        .await
        .expect("service");
    let pool = service.pool();
    let now = service.now();

    // The heaviest user has more than three pages.
    let (heaviest, due) = user_with_most_due(pool, now).await;
    assert!(
        due > 3 * DUE_PAGE_SIZE as i64,
        "user {heaviest} has only {due} due cards"
    );

    // Ties across a page boundary: the heaviest user's due cards at positions 40..60 (the
    // first page ends at 49) all get the due_at of position 40. The order stays the same
    // outside the group (positions 39 and 60 were already <= and >= it); inside it, cards are
    // ordered by id, so the cursor's (due_at, id) comparison decides where page 2 starts.
    let list = whole_due_list(pool, heaviest, now).await;
    let tied: Vec<i64> = list[40..60].iter().map(|c| c.card_id).collect();
    let updated = sqlx::query("UPDATE review_cards SET due_at = $2 WHERE id = ANY($1)")
        .bind(&tied)
        .bind(list[40].due_at)
        .execute(pool)
        .await
        .expect("tie due dates")
        .rows_affected();
    assert_eq!(updated, 20);

    // Every seeded user, and one that does not exist (an empty list: one empty page).
    let users: Vec<i64> = sqlx::query_scalar("SELECT id FROM users ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("users");
    assert_eq!(users.len(), 20);
    let mut saw_single_page = false;
    for user in users.iter().copied().chain([1_000_000]) {
        let expected = whole_due_list(pool, user, now).await;
        // A full page has a cursor, so a list of n cards takes n / 50 + 1 pages: the last one
        // is partial, or empty when n is a multiple of 50 (including n = 0).
        let expected_pages = expected.len() / DUE_PAGE_SIZE + 1;
        let pages = walk(&service, user, expected_pages + 1).await;
        assert_eq!(
            pages.len(),
            expected_pages,
            "user {user}: {} due cards",
            expected.len()
        );
        let (last, full) = pages.split_last().expect("at least one page");
        assert!(full.iter().all(|page| page.len() == DUE_PAGE_SIZE));
        assert!(last.len() < DUE_PAGE_SIZE);
        let walked: Vec<DueCard> = pages.into_iter().flatten().collect();
        let distinct: HashSet<i64> = walked.iter().map(|c| c.card_id).collect();
        assert_eq!(distinct.len(), walked.len(), "user {user}: a card twice");
        assert_eq!(
            walked, expected,
            "user {user}: the pages differ from the list"
        );
        saw_single_page |= !expected.is_empty() && expected_pages == 1;
    }
    assert!(saw_single_page, "no user with a short, one-page due list");

    // Once more for the heaviest user, now with the first page from L1: the cached page's
    // cursor leads on the same way.
    let again = walk(&service, heaviest, due as usize / DUE_PAGE_SIZE + 2).await;
    assert_eq!(
        again.into_iter().flatten().collect::<Vec<_>>(),
        whole_due_list(pool, heaviest, now).await
    );
    assert_eq!(service.cache_stats().due.l1_hits, 1);

    servers.stop().await;
}

/// A due date before 1970 is a valid `timestamptz` (an import may carry any date, e.g. "due
/// long ago"), and such a card is due like any other: it must be on the first page.
#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_due_before_1970_are_listed_first_not_skipped() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let service = Service::connect(&servers.settings, &ServiceOptions::default())
        .await
        .expect("service");
    let pool = service.pool();
    let now = service.now();
    let (user, due) = user_with_most_due(pool, now).await;

    // Two of the user's due cards move to 1969 and 1900 (both still due at `now`).
    let list = whole_due_list(pool, user, now).await;
    let (a, b) = (list[10].card_id, list[70].card_id);
    sqlx::query(
        "UPDATE review_cards SET due_at = CASE id WHEN $1 THEN '1969-07-20 20:17:40+00' \
                                               ELSE '1900-01-01 00:00:00+00' END::timestamptz \
         WHERE id IN ($1, $2)",
    )
    .bind(a)
    .bind(b)
    .execute(pool)
    .await
    .expect("move two due dates before 1970");
    let expected = whole_due_list(pool, user, now).await;
    assert_eq!(
        expected.len() as i64,
        due,
        "the user's due count is unchanged"
    );
    assert_eq!(
        (expected[0].card_id, expected[1].card_id),
        (b, a),
        "1900 first, then 1969"
    );

    let pages = walk(&service, user, expected.len() / DUE_PAGE_SIZE + 2).await;
    assert_eq!(pages[0].first().map(|c| c.card_id), Some(b));
    assert_eq!(pages.into_iter().flatten().collect::<Vec<_>>(), expected);

    servers.stop().await;
}
