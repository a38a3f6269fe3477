//! How cached values are encoded in Redis. One place, so that the encoding can be changed
//! (and measured by the `instructions` benchmark) without touching the cache logic.

use serde::{Serialize, de::DeserializeOwned};

/// Encodes a value for L2.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(value)
}

/// Decodes a value read from L2.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}
