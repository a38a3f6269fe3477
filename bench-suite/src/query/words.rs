//! Word lookups (what the cache layer loads through) and the prefix search.
//!
//! This module must never build SQL from user text: a prefix is bound as a parameter and
//! turned into a byte-wise range, so `%`, `_` and `\` in it are plain characters.

use sqlx::PgPool;

use crate::model::{Word, WordHit};

/// The most hits one prefix search returns.
pub const PREFIX_SEARCH_MAX: u32 = 100;

/// [`word_by_id`]: `$1` word id. Public so that the plans suite can explain it.
pub const WORD_BY_ID_SQL: &str =
    "SELECT id, lemma, definition, difficulty FROM words WHERE id = $1";

/// [`words_by_ids`]: `$1` the ids (an array). Public so that the plans suite can explain it.
pub const WORDS_BY_IDS_SQL: &str =
    "SELECT id, lemma, definition, difficulty FROM words WHERE id = ANY($1) ORDER BY id";

/// [`word_prefix_search`] with an upper bound: `$1` prefix, `$2` its upper bound, `$3` the
/// limit. Public so that the plans suite can explain it.
pub const WORD_PREFIX_SEARCH_SQL: &str = "SELECT id, lemma FROM words \
     WHERE lemma ~>=~ $1 AND lemma ~<~ $2 \
     ORDER BY lemma USING ~<~ \
     LIMIT $3";

/// [`word_prefix_search`] without an upper bound (an empty prefix): `$1` prefix, `$2` the limit.
pub const WORD_PREFIX_FROM_SQL: &str = "SELECT id, lemma FROM words \
     WHERE lemma ~>=~ $1 \
     ORDER BY lemma USING ~<~ \
     LIMIT $2";

/// A word by id, or `None` when there is no such word.
pub async fn word_by_id(pool: &PgPool, word_id: i64) -> Result<Option<Word>, sqlx::Error> {
    sqlx::query_as(WORD_BY_ID_SQL)
        .bind(word_id)
        .fetch_optional(pool)
        .await
}

/// The words with these ids, in id order, in one statement (`id = ANY($1)`); ids without a
/// word are left out, duplicates give one row.
pub async fn words_by_ids(pool: &PgPool, word_ids: &[i64]) -> Result<Vec<Word>, sqlx::Error> {
    if word_ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(WORDS_BY_IDS_SQL)
        .bind(word_ids)
        .fetch_all(pool)
        .await
}

/// Words whose lemma starts with `prefix`, in byte-wise (code point) order of the lemma, at
/// most `limit` (capped at [`PREFIX_SEARCH_MAX`]).
///
/// The prefix becomes the range `lemma ~>=~ prefix AND lemma ~<~ successor(prefix)`
/// ([`prefix_upper_bound`]), an index-only range scan of `words_lemma_prefix (lemma
/// text_pattern_ops) INCLUDE (id)` in index order, whatever the database collation and
/// whether the plan is generic or custom. Unlike `LIKE $1`, no character of the prefix is
/// special.
pub async fn word_prefix_search(
    pool: &PgPool,
    prefix: &str,
    limit: u32,
) -> Result<Vec<WordHit>, sqlx::Error> {
    let limit = i64::from(limit.min(PREFIX_SEARCH_MAX));
    match prefix_upper_bound(prefix) {
        Some(upper) => {
            sqlx::query_as(WORD_PREFIX_SEARCH_SQL)
                .bind(prefix)
                .bind(upper)
                .bind(limit)
                .fetch_all(pool)
                .await
        }
        // An empty prefix (or one of U+10FFFF only) has no upper bound: everything from it.
        None => {
            sqlx::query_as(WORD_PREFIX_FROM_SQL)
                .bind(prefix)
                .bind(limit)
                .fetch_all(pool)
                .await
        }
    }
}

/// The smallest string greater, in code point (= UTF-8 byte) order, than every string that
/// starts with `prefix`: the prefix with its last character replaced by the next one
/// (skipping surrogates; a trailing `char::MAX` is dropped and the one before it advanced).
/// `None` when there is no such string (an empty prefix, or only `char::MAX`s).
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            code => char::from_u32(code),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    /// Whether `candidate` is in the range a prefix search scans.
    fn in_range(prefix: &str, candidate: &str) -> bool {
        let above = candidate.as_bytes() >= prefix.as_bytes();
        let below = prefix_upper_bound(prefix).is_none_or(|u| candidate.as_bytes() < u.as_bytes());
        above && below
    }

    #[test]
    fn the_upper_bound_advances_the_last_character() {
        assert_eq!(prefix_upper_bound("ka").as_deref(), Some("kb"));
        assert_eq!(prefix_upper_bound("a%").as_deref(), Some("a&"));
        assert_eq!(prefix_upper_bound("a_").as_deref(), Some("a`"));
        assert_eq!(
            prefix_upper_bound("z\u{D7FF}").as_deref(),
            Some("z\u{E000}")
        );
        assert_eq!(prefix_upper_bound("é").as_deref(), Some("ê"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
    }

    #[test]
    fn the_range_holds_exactly_the_strings_with_the_prefix() {
        let prefixes = ["ka", "a%", "a_", "\\", "é", "a\u{10FFFF}", "", "lo"];
        let candidates = [
            "",
            "k",
            "ka",
            "kaz",
            "kb",
            "kA",
            "a",
            "a%",
            "a%b",
            "a&",
            "ab",
            "a_",
            "a_x",
            "a`",
            "aX",
            "\\",
            "\\%",
            "]",
            "é",
            "éa",
            "ê",
            "e",
            "a\u{10FFFF}",
            "a\u{10FFFF}x",
            "b",
            "lo",
            "lol",
            "lp",
            "l",
            "\u{10FFFF}",
        ];
        for prefix in prefixes {
            for candidate in candidates {
                assert_eq!(
                    in_range(prefix, candidate),
                    candidate.starts_with(prefix),
                    "prefix {prefix:?}, candidate {candidate:?}"
                );
            }
        }
    }
}
