//! A user's study statistics in one statement.
//!
//! This module must never split the statistics into several round trips or scan more than
//! the user's own index ranges: every part is served by an index (see [`user_stats`]).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::model::UserStats;

/// [`user_stats`]: `$1` user, `$2` now. Public so that the plans suite can explain it.
pub const USER_STATS_SQL: &str = "WITH RECURSIVE \
         today AS ( \
             SELECT (($2::timestamptz AT TIME ZONE 'UTC') + o.off)::date AS day, o.off \
             FROM ( \
                 SELECT make_interval(mins => COALESCE(max(utc_offset_minutes), 0)) AS off \
                 FROM user_preferences WHERE user_id = $1 \
             ) AS o \
         ), \
         card_counts AS ( \
             SELECT count(*) FILTER (WHERE card_state = 0) AS new_cards, \
                    count(*) FILTER (WHERE card_state = 1) AS learning_cards, \
                    count(*) FILTER (WHERE card_state = 2) AS review_cards, \
                    count(*) FILTER (WHERE card_state = 3) AS relearning_cards, \
                    count(*) FILTER (WHERE due_at <= $2) AS due_now \
             FROM review_cards WHERE user_id = $1 \
         ), \
         recent AS ( \
             SELECT count(*) AS reviews_30d, \
                    count(*) FILTER (WHERE l.grade >= 3) AS recalled_30d, \
                    count(*) FILTER ( \
                        WHERE l.reviewed_at >= ((t.day::timestamp - t.off) AT TIME ZONE 'UTC') \
                    ) AS reviews_today \
             FROM review_log l, today t \
             WHERE l.user_id = $1 \
               AND l.reviewed_at > $2::timestamptz - interval '30 days' \
               AND l.reviewed_at <= $2 \
         ), \
         streak (day) AS ( \
             SELECT s.day FROM ( \
                 SELECT d.day FROM today t, LATERAL (VALUES (t.day), (t.day - 1)) AS d (day) \
                 WHERE EXISTS ( \
                     SELECT 1 FROM review_log l \
                     WHERE l.user_id = $1 \
                       AND l.reviewed_at >= ((d.day::timestamp - t.off) AT TIME ZONE 'UTC') \
                       AND l.reviewed_at < (((d.day + 1)::timestamp - t.off) AT TIME ZONE 'UTC') \
                       AND l.reviewed_at <= $2) \
                 ORDER BY d.day DESC LIMIT 1 \
             ) AS s \
             UNION ALL \
             SELECT s.day - 1 FROM streak s, today t \
             WHERE EXISTS ( \
                 SELECT 1 FROM review_log l \
                 WHERE l.user_id = $1 \
                   AND l.reviewed_at >= (((s.day - 1)::timestamp - t.off) AT TIME ZONE 'UTC') \
                   AND l.reviewed_at < ((s.day::timestamp - t.off) AT TIME ZONE 'UTC')) \
         ) \
         SELECT $1::int8 AS user_id, c.new_cards, c.learning_cards, c.review_cards, \
                c.relearning_cards, c.due_now, r.reviews_today, r.reviews_30d, \
                r.recalled_30d::float8 / NULLIF(r.reviews_30d, 0) AS retention_30d, \
                (SELECT count(*) FROM streak)::int4 AS streak_days \
         FROM card_counts c, recent r";

/// The statistics of `user_id` at `now`, in ONE statement (CTEs):
/// - cards by state and `due_now` (`due_at <= now`): an index-only scan of the user's range of
///   `review_cards_user_state_due (user_id, card_state, due_at)`;
/// - `reviews_30d` (`now - 30 days < reviewed_at <= now`), `retention_30d` (share of them
///   graded 3 or more, `None` without reviews) and `reviews_today` (since the start of the
///   user's local day): one index-only range scan of `review_log_user_time (user_id,
///   reviewed_at) INCLUDE (grade)`;
/// - `streak_days`: consecutive local days with a review, ending today, or ending yesterday
///   when there is none yet today; walked back one day at a time (a recursive CTE, one index
///   probe of `review_log_user_time` per day), so its cost follows the streak, not the
///   history.
///
/// Local days use the user's `user_preferences.utc_offset_minutes` (0 without preferences).
/// An unknown user gets zeros.
pub async fn user_stats(
    pool: &PgPool,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<UserStats, sqlx::Error> {
    sqlx::query_as(USER_STATS_SQL)
        .bind(user_id)
        .bind(now)
        .fetch_one(pool)
        .await
}
