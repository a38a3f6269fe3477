//! Query plans of the query layer: `EXPLAIN (FORMAT JSON)` of every key statement of
//! [`crate::query`], with fixed representative parameters, reduced to a canonical one-line
//! *shape* (node types, relation and index names, join types, nesting) that the harness
//! records and compares.
//!
//! This module must never run `EXPLAIN ANALYZE` (or anything that executes a statement it
//! explains: the bulk import would insert) and never put into a shape what can vary between two
//! runs of the same commit (costs, row estimates, widths, worker counts, timings): a shape
//! changes only when the plan does.
//!
//! Which plan is captured: the **custom plan for the given parameters**. Each statement is
//! explained through the extended protocol with its parameters bound, on a connection with
//! `plan_cache_mode = force_custom_plan`, so Postgres plans it for these values. The service's
//! own prepared statements (sqlx caches them per connection) may switch to a *generic* plan
//! after five executions when Postgres estimates it no costlier; a generic plan can differ
//! from the custom one (e.g. for skewed values), and is not what this module captures.
//! Statistics come from the seed's `VACUUM (ANALYZE)`; `ANALYZE` samples large tables at
//! random, so only statements whose plan does not hinge on a close cost call belong here.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};

use crate::query;

/// One explained statement: its name, its plan's shape and how many nodes the plan has, and
/// the plan as `EXPLAIN` prints it (costs and estimates included: for people to read, never
/// compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanLine {
    pub name: String,
    pub shape: String,
    pub nodes: u32,
    pub text: String,
}

/// The shape of a plan and its node count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanShape {
    pub shape: String,
    pub nodes: u32,
}

/// The user, word and session every statement is explained for (they exist in any seed).
const USER_ID: i64 = 7;
const WORD_ID: i64 = 42;

/// The names of the statements [`explain_all`] explains, in its order (what `suite plans
/// --list` prints; `explain_all` fails if the two ever disagree).
pub const STATEMENTS: [&str; 11] = [
    "due_cards_first_page",
    "due_cards_after",
    "difficult_cards",
    "user_stats",
    "word_prefix_search",
    "words_by_ids",
    "word_by_id",
    "session_by_token",
    "user_preferences",
    "review_lock",
    "import_cards",
];

/// Fresh statistics and a complete visibility map before anything is explained. Without them
/// a plan can flip between runs of one commit (an index-only scan is costed by the visibility
/// map, which autovacuum updates at times of its own), a false alarm.
async fn settle_planner_inputs(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("VACUUM (ANALYZE)")
        .execute(&mut *conn)
        .await
        .context("VACUUM (ANALYZE) before explaining")?;
    sqlx::query("SET plan_cache_mode = force_custom_plan")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The values the key statements are explained with: those the scenarios use.
struct Bindings {
    now: DateTime<Utc>,
    cursor_due: DateTime<Utc>,
    cursor_id: i64,
    card_id: i64,
    page: i64,
    prefix: &'static str,
    upper: String,
    word_ids: Vec<i64>,
    token: String,
    request: uuid::Uuid,
    import_users: Vec<i64>,
    import_words: Vec<i64>,
    import_due: Vec<DateTime<Utc>>,
}

/// The bindings, from the seeded database at `database_url`: the cursor of a later page and
/// the card a review locks are the seed's own first due page.
async fn bindings(database_url: &str) -> Result<Bindings> {
    let now = crate::fixed_now();
    let pool = query::connect(database_url, 1).await?;
    let first_page = query::due_cards(&pool, USER_ID, now, None).await?;
    pool.close().await;
    let first_card = first_page.cards.first().with_context(|| {
        format!("user {USER_ID} has no due card: is the database seeded (`suite prepare`)?")
    })?;
    let (cursor_due, cursor_id) = match first_page.next {
        Some(cursor) => (cursor.due_at, cursor.card_id),
        None => (first_card.due_at, first_card.card_id),
    };
    let card_id = first_card.card_id;
    let page = query::DUE_PAGE_SIZE as i64;
    let prefix = "ka";
    let upper = query::prefix_upper_bound(prefix).expect("a non-empty prefix has a bound");
    let word_ids: Vec<i64> = (1..=50).collect();
    let token = crate::seed::session_token(USER_ID);
    let request = uuid::Uuid::from_u128(0x5EED_0000_0000_4000_8000_0000_0000_0001);
    // The bulk import of the `bulk_import` scenario: 100 words for each of users 1..=10.
    let import_users: Vec<i64> = (1..=10).flat_map(|u| [u; 100]).collect();
    let import_words: Vec<i64> = (1..=10).flat_map(|_| 19_901..=20_000).collect();
    let import_due: Vec<DateTime<Utc>> = import_words
        .iter()
        .map(|w| now + chrono::Duration::hours(w % 48))
        .collect();

    Ok(Bindings {
        now,
        cursor_due,
        cursor_id,
        card_id,
        page,
        prefix,
        upper,
        word_ids,
        token,
        request,
        import_users,
        import_words,
        import_due,
    })
}

/// Explains every key statement of the query layer against the seeded database at
/// `database_url`, in a fixed order.
///
/// Over 80 lines because it is the list of the key statements, one `explain!` with its
/// bindings each, in `STATEMENTS`' order: the list reads best whole.
pub async fn explain_all(database_url: &str) -> Result<Vec<PlanLine>> {
    let mut conn = PgConnection::connect(database_url)
        .await
        .with_context(|| "cannot connect to DATABASE_URL to explain the query layer's plans")?;
    settle_planner_inputs(&mut conn).await?;
    let b = bindings(database_url).await?;

    let mut lines = Vec::new();
    macro_rules! explain {
        ($name:expr, $sql:expr $(, $bind:expr)*) => {{
            let statement = format!("EXPLAIN (FORMAT JSON) {}", $sql);
            let row = sqlx::query(sqlx::AssertSqlSafe(statement))
                $(.bind(&$bind))*
                .fetch_one(&mut conn)
                .await
                .with_context(|| format!("EXPLAIN of {}", $name))?;
            let text: &str = row
                .try_get_raw(0)?
                .as_str()
                .map_err(|e| anyhow::anyhow!("EXPLAIN of {} is not text: {e}", $name))?;
            let plan: Value = serde_json::from_str(text)
                .with_context(|| format!("EXPLAIN of {} is not JSON", $name))?;
            let PlanShape { shape, nodes } = shape_of_explain(&plan)
                .with_context(|| format!("EXPLAIN of {} has no plan", $name))?;
            let text: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", $sql)))
                $(.bind(&$bind))*
                .fetch_all(&mut conn)
                .await
                .with_context(|| format!("EXPLAIN (text) of {}", $name))?;
            lines.push(PlanLine { name: $name.to_owned(), shape, nodes, text: text.join("\n") });
        }};
    }
    explain!(
        "due_cards_first_page",
        query::DUE_CARDS_FIRST_PAGE_SQL,
        USER_ID,
        b.now,
        b.page
    );
    explain!(
        "due_cards_after",
        query::DUE_CARDS_AFTER_SQL,
        USER_ID,
        b.now,
        b.cursor_due,
        b.cursor_id,
        b.page
    );
    explain!(
        "difficult_cards",
        query::DIFFICULT_CARDS_SQL,
        USER_ID,
        i64::from(query::DIFFICULT_CARDS_MAX)
    );
    explain!("user_stats", query::USER_STATS_SQL, USER_ID, b.now);
    explain!(
        "word_prefix_search",
        query::WORD_PREFIX_SEARCH_SQL,
        b.prefix,
        b.upper,
        i64::from(query::words::PREFIX_SEARCH_MAX)
    );
    explain!("words_by_ids", query::WORDS_BY_IDS_SQL, &b.word_ids);
    explain!("word_by_id", query::WORD_BY_ID_SQL, WORD_ID);
    explain!("session_by_token", query::SESSION_BY_TOKEN_SQL, &b.token);
    explain!("user_preferences", query::USER_PREFERENCES_SQL, USER_ID);
    explain!(
        "review_lock",
        query::REVIEW_LOCK_SQL,
        b.card_id,
        USER_ID,
        b.request
    );
    explain!(
        "import_cards",
        query::INSERT_NEW_CARDS,
        &b.import_users,
        &b.import_words,
        &b.import_due,
        crate::sm2::CardState::New.as_i16(),
        crate::sm2::INITIAL_EASE
    );
    conn.close().await?;
    let explained: Vec<&str> = lines.iter().map(|line| line.name.as_str()).collect();
    anyhow::ensure!(
        explained == STATEMENTS,
        "plans::STATEMENTS {STATEMENTS:?} does not list what explain_all explains \
         ({explained:?}): update it"
    );
    Ok(lines)
}

/// The shape of the output of `EXPLAIN (FORMAT JSON)`: `[{"Plan": {...}}]`. `None` when it has
/// no plan.
pub fn shape_of_explain(explain: &Value) -> Option<PlanShape> {
    let plan = explain.get(0)?.get("Plan")?;
    let mut nodes = 0;
    let shape = node_shape(plan, None, &mut nodes);
    Some(PlanShape { shape, nodes })
}

/// `Label[attributes](children, ...)` of one plan node, counting nodes into `nodes`.
/// `relation` is the parent's relation, which a Bitmap Index Scan (it has none) scans.
fn node_shape(node: &Value, relation: Option<&str>, nodes: &mut u32) -> String {
    *nodes += 1;
    let text = |key: &str| node.get(key).and_then(Value::as_str);
    let node_type = text("Node Type").unwrap_or("?");
    let mut label = String::new();
    // Where a child plugs in: InitPlans and SubPlans (CTEs among them) are named, plain
    // inputs (Outer, Inner, Member) are implied by their position.
    match (text("Parent Relationship"), text("Subplan Name")) {
        (Some("InitPlan" | "SubPlan"), Some(name)) if name.starts_with("CTE ") => {
            label.push_str(name);
            label.push_str(": ");
        }
        (Some(kind @ ("InitPlan" | "SubPlan")), _) => {
            label.push_str(kind);
            label.push_str(": ");
        }
        _ => {}
    }
    if node.get("Parallel Aware").and_then(Value::as_bool) == Some(true) {
        label.push_str("Parallel ");
    }
    label.push_str(node_type);

    let own_relation = text("Relation Name");
    let scanned = own_relation.or(relation);
    let mut attributes: Vec<String> = Vec::new();
    if let Some(operation) = text("Operation") {
        attributes.push(operation.to_owned());
    }
    match (text("Index Name"), scanned) {
        (Some(index), Some(relation)) => attributes.push(format!("{index} on {relation}")),
        (Some(index), None) => attributes.push(index.to_owned()),
        (None, Some(relation)) if own_relation.is_some() => {
            if attributes.is_empty() {
                attributes.push(relation.to_owned());
            } else {
                // ModifyTable: "Insert on review_cards".
                let operation = attributes.pop().unwrap_or_default();
                attributes.push(format!("{operation} on {relation}"));
            }
        }
        _ => {}
    }
    if text("Scan Direction") == Some("Backward") {
        attributes.push("backward".to_owned());
    }
    for key in [
        "Join Type",
        "Strategy",
        "Command",
        "CTE Name",
        "Function Name",
    ] {
        if let Some(value) = text(key) {
            attributes.push(value.to_owned());
        }
    }
    let mut out = label;
    if !attributes.is_empty() {
        out.push('[');
        out.push_str(&attributes.join(" "));
        out.push(']');
    }
    if let Some(children) = node.get("Plans").and_then(Value::as_array) {
        let inner: Vec<String> = children
            .iter()
            .map(|child| node_shape(child, scanned, nodes))
            .collect();
        out.push('(');
        out.push_str(&inner.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(json: &str) -> PlanShape {
        shape_of_explain(&serde_json::from_str(json).unwrap()).unwrap()
    }

    // `EXPLAIN (FORMAT JSON)` outputs captured from the default seed on PostgreSQL 15.18, as
    // they came (costs and estimates included: shapes must not depend on them).
    /// The first due page of user 7.
    const DUE_CARDS_FIRST_PAGE: &str = include_str!("plans_samples/due_cards_first_page.json");
    /// The same after `DROP INDEX review_cards_user_due`: a hash join over a seq scan of words
    /// and another index of review_cards, then a sort.
    const DUE_CARDS_WITHOUT_INDEX: &str =
        include_str!("plans_samples/due_cards_without_index.json");
    /// User 7's due card ids with `enable_indexscan = off`.
    const BITMAP_SCAN: &str = include_str!("plans_samples/bitmap_scan.json");
    /// The bulk import's INSERT (two cards).
    const IMPORT_CARDS: &str = include_str!("plans_samples/import_cards.json");
    /// The statistics of user 7 (one statement of CTEs).
    const USER_STATS: &str = include_str!("plans_samples/user_stats.json");

    #[test]
    fn the_due_list_is_an_index_range_scan_joined_by_primary_key() {
        let PlanShape { shape, nodes } = shape(DUE_CARDS_FIRST_PAGE);
        assert_eq!(
            shape,
            "Limit(Nested Loop[Inner](Index Scan[review_cards_user_due on review_cards], \
             Index Scan[words_pkey on words]))"
        );
        assert_eq!(nodes, 4);
    }

    #[test]
    fn without_its_index_the_due_list_shows_what_replaced_it() {
        let PlanShape { shape, nodes } = shape(DUE_CARDS_WITHOUT_INDEX);
        assert_eq!(
            shape,
            "Limit(Sort(Hash Join[Inner](Seq Scan[words], \
             Hash(Index Scan[review_cards_user_state_due on review_cards]))))"
        );
        assert_eq!(nodes, 6);
    }

    #[test]
    fn bitmap_index_scans_name_the_relation_of_their_heap_scan() {
        let PlanShape { shape, nodes } = shape(BITMAP_SCAN);
        assert_eq!(
            shape,
            "Bitmap Heap Scan[review_cards](Bitmap Index Scan[review_cards_user_due on review_cards])"
        );
        assert_eq!(nodes, 2);
    }

    #[test]
    fn an_insert_names_its_operation_and_target() {
        let PlanShape { shape, .. } = shape(IMPORT_CARDS);
        assert_eq!(shape, "ModifyTable[Insert on review_cards](Function Scan)");
    }

    #[test]
    fn ctes_and_subplans_are_named_and_nothing_numeric_is_kept() {
        let PlanShape { shape, nodes } = shape(USER_STATS);
        assert!(
            shape.starts_with("Nested Loop[Inner](CTE today: "),
            "{shape}"
        );
        assert!(shape.contains("CTE streak: Recursive Union("), "{shape}");
        assert!(
            shape.contains("InitPlan: Aggregate[Plain](CTE Scan[streak])"),
            "{shape}"
        );
        assert!(
            shape.contains("Index Only Scan[review_cards_user_state_due on review_cards]"),
            "{shape}"
        );
        for volatile in ["Cost", "Rows", "Width", "cost", "rows="] {
            assert!(!shape.contains(volatile), "{volatile} in {shape}");
        }
        assert!(nodes > 5);
    }

    #[test]
    fn costs_and_estimates_do_not_change_a_shape() {
        // The same plan with other costs and row estimates (another ANALYZE sample).
        let mut other: Value = serde_json::from_str(DUE_CARDS_FIRST_PAGE).unwrap();
        fn perturb(node: &mut Value) {
            if let Some(map) = node.as_object_mut() {
                for key in ["Startup Cost", "Total Cost", "Plan Rows", "Plan Width"] {
                    if let Some(v) = map.get_mut(key) {
                        *v = serde_json::json!(v.as_f64().unwrap_or(0.0) * 1.7 + 3.0);
                    }
                }
                if let Some(Value::Array(children)) = map.get_mut("Plans") {
                    children.iter_mut().for_each(perturb);
                }
            }
        }
        perturb(&mut other[0]["Plan"]);
        assert_eq!(shape_of_explain(&other), Some(shape(DUE_CARDS_FIRST_PAGE)));
    }

    #[test]
    fn no_plan_is_none() {
        assert_eq!(shape_of_explain(&serde_json::json!([])), None);
        assert_eq!(shape_of_explain(&serde_json::json!({"Plan": {}})), None);
    }
}
