//! How cached values are encoded in Redis (L2): postcard, a compact, non-self-describing serde
//! format with a stable, documented wire format. One place, so that the encoding can be changed
//! (and measured by the `instructions` benchmark) without touching the cache logic.
//!
//! Chosen by measurement (Gungraun instruction counts and encoded sizes of a word and of a page
//! of 50 due cards against serde_json, bincode 2, MessagePack, bitcode and CBOR): postcard had
//! the lowest encode+decode cost for a single word and within 2% of the best for a page, at a
//! quarter of JSON's size.
//!
//! This module must never do I/O, and must never decode bytes of another format: the bytes are
//! not self-describing, so every change of this encoding, or of the shape of a cached type,
//! must change the version in the cache keys ([`FORMAT_VERSION`] here, or the namespace's
//! `schema_version`) so that old bytes are never read as new ones.

use serde::{Serialize, de::DeserializeOwned};

/// The version of this encoding, part of every cache key (`v{FORMAT_VERSION}.{schema}`).
/// 1 was serde_json; 2 is postcard with the [`encode_entry`] envelope.
pub const FORMAT_VERSION: u32 = 2;

/// Bytes reserved before encoding: enough for most single values without a reallocation.
const INITIAL_CAPACITY: usize = 64;

/// A value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("postcard: {0}")]
    Postcard(#[from] postcard::Error),
    /// The bytes held a whole value and then more: they were written for another shape.
    #[error("{0} byte(s) left over after the value: written for another shape or format")]
    TrailingBytes(usize),
}

/// Encodes a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_extend(
        value,
        Vec::with_capacity(INITIAL_CAPACITY),
    )?)
}

/// Decodes a value, refusing bytes that are longer than one value of `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(CodecError::TrailingBytes(rest.len()))
    }
}

/// Encodes what the cache stores for a key: a value, or `None` for "the loader found nothing"
/// (negative caching). One tag byte (0 = missing, 1 = present) before the value.
pub fn encode_entry<T: Serialize>(value: Option<&T>) -> Result<Vec<u8>, CodecError> {
    encode(&value)
}

/// Decodes what [`encode_entry`] wrote.
pub fn decode_entry<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, CodecError> {
    decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DueCard, DueCursor, DuePage, Word};

    fn word() -> Word {
        Word {
            id: 42,
            lemma: "saka".to_owned(),
            definition: "the meaning of saka (entry 42)".to_owned(),
            difficulty: 3,
        }
    }

    fn page() -> DuePage {
        let now = crate::fixed_now();
        let cards = (0..50_i64)
            .map(|i| DueCard {
                card_id: 1_000 + i,
                word_id: i + 1,
                lemma: format!("lemma{i}"),
                card_state: (i % 4) as i16,
                ease: 2.5,
                interval_days: i as i32,
                repetitions: (i % 7) as i32,
                due_at: now - chrono::Duration::minutes(i * 13),
            })
            .collect();
        DuePage::from_rows(cards, 50)
    }

    #[test]
    fn values_round_trip() {
        let word = word();
        assert_eq!(decode::<Word>(&encode(&word).unwrap()).unwrap(), word);
        let page = page();
        assert!(page.next.is_some());
        assert_eq!(decode::<DuePage>(&encode(&page).unwrap()).unwrap(), page);
        let cursor = page.next.unwrap();
        assert_eq!(
            decode::<DueCursor>(&encode(&cursor).unwrap()).unwrap(),
            cursor
        );
    }

    #[test]
    fn entries_round_trip_present_and_missing() {
        let word = word();
        let present = encode_entry(Some(&word)).unwrap();
        assert_eq!(present[0], 1);
        assert_eq!(decode_entry::<Word>(&present).unwrap(), Some(word));
        let missing = encode_entry::<Word>(None).unwrap();
        assert_eq!(missing, [0]);
        assert_eq!(decode_entry::<Word>(&missing).unwrap(), None);
    }

    #[test]
    fn encoding_is_compact_and_stable() {
        // postcard: varint zig-zag integers, length-prefixed strings, no field names.
        let bytes = encode(&word()).unwrap();
        assert_eq!(bytes.len(), 1 + 1 + 4 + 1 + 30 + 1);
        assert_eq!(&bytes[..2], [84, 4]);
        assert_eq!(encode(&word()).unwrap(), bytes, "deterministic");
    }

    #[test]
    fn foreign_or_truncated_bytes_are_errors() {
        let bytes = encode(&word()).unwrap();
        assert!(decode::<Word>(&bytes[..bytes.len() - 3]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode::<Word>(&longer).unwrap_err(),
            CodecError::TrailingBytes(1)
        );
        // The old serde_json bytes (format 1) are refused, not misread.
        let json = serde_json::to_vec(&word()).unwrap();
        assert!(decode_entry::<Word>(&json).is_err());
    }
}
