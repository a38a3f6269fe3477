//! The errors of cache operations: Redis (including time-outs), codec, and the caller's loader.
//! Cloneable, so that one failed load can be handed to every caller that waited for it.
//!
//! This module must never decide what to do about an error (retry, fall back): it only says
//! what went wrong, and where.

use std::error::Error as StdError;
use std::sync::Arc;

use crate::codec::CodecError;

/// A boxed error of a loader, as the cache hands it back.
pub type LoadError = Arc<dyn StdError + Send + Sync + 'static>;

/// Why a cache operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// Redis failed, the connection was lost, or the operation timed out
    /// ([`CacheError::is_timeout`]).
    #[error("cache namespace {namespace}: redis {command} failed: {source}")]
    Redis {
        namespace: &'static str,
        command: &'static str,
        #[source]
        source: redis::RedisError,
    },
    /// A value read from Redis could not be decoded, or a loaded one encoded.
    #[error("cache namespace {namespace}: {source}")]
    Codec {
        namespace: &'static str,
        #[source]
        source: CodecError,
    },
    /// The caller's loader failed; its error is `source`.
    #[error("cache namespace {namespace}: loading failed: {source}")]
    Load {
        namespace: &'static str,
        #[source]
        source: LoadError,
    },
}

impl CacheError {
    pub fn namespace(&self) -> &'static str {
        match self {
            CacheError::Redis { namespace, .. }
            | CacheError::Codec { namespace, .. }
            | CacheError::Load { namespace, .. } => namespace,
        }
    }

    /// Whether Redis did not answer in time (the operation time-out or the connection's
    /// response time-out).
    pub fn is_timeout(&self) -> bool {
        matches!(self, CacheError::Redis { source, .. } if source.is_timeout())
    }

    /// The loader's error as its own type, e.g. `sqlx::Error`.
    pub fn load_error<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            CacheError::Load { source, .. } => source.downcast_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_errors_keep_their_type_and_clone_cheaply() {
        let io = std::io::Error::other("db down");
        let error = CacheError::Load {
            namespace: "word",
            source: Arc::new(io),
        };
        let copy = error.clone();
        assert_eq!(copy.namespace(), "word");
        assert_eq!(
            copy.load_error::<std::io::Error>().unwrap().to_string(),
            "db down"
        );
        assert!(copy.load_error::<std::fmt::Error>().is_none());
        assert!(!copy.is_timeout());
        assert_eq!(
            error.to_string(),
            "cache namespace word: loading failed: db down"
        );
    }

    #[test]
    fn timeouts_are_recognised() {
        let source = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer",
        ));
        let error = CacheError::Redis {
            namespace: "due",
            command: "MGET",
            source,
        };
        assert!(error.is_timeout());
    }
}
