//! Single-flight: at most one lookup (Redis read, then loader) of a key is in flight per cache
//! in this process; concurrent lookups of the key wait for its outcome instead of sending
//! their own. Works the same with L1 on or off. A lookup in flight when its key is invalidated
//! is marked, so that it does not put what it read before the invalidation into the cache.
//!
//! This module must never do I/O or hold its lock across an `.await`, and a leader that is
//! dropped (cancelled) must never leave its waiters hanging: they are told and start over.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::error::CacheError;

/// What a lookup of one key gives every caller that waited for it.
pub(crate) type Outcome<V> = Result<Option<Arc<V>>, CacheError>;

type Slot<V> = Option<Outcome<V>>;

struct Flight<V> {
    outcome: watch::Sender<Slot<V>>,
    invalidated: AtomicBool,
}

/// The lookups in flight, by key.
pub(crate) struct Flights<K, V> {
    in_flight: Mutex<HashMap<K, Arc<Flight<V>>>>,
}

/// The caller's part in a lookup of a key.
pub(crate) enum Join<'a, K: Eq + Hash, V> {
    /// No lookup of the key was in flight: this caller does it and must [`Leader::complete`].
    Lead(Leader<'a, K, V>),
    /// Another caller's lookup is in flight: [`Waiter::outcome`] gives its result.
    Wait(Waiter<V>),
}

/// The caller that performs a key's lookup. Dropping it without completing (cancellation)
/// releases the key: its waiters then start over.
pub(crate) struct Leader<'a, K: Eq + Hash, V> {
    flights: &'a Flights<K, V>,
    key: K,
    flight: Arc<Flight<V>>,
}

/// A caller waiting for another caller's lookup.
pub(crate) struct Waiter<V> {
    outcome: watch::Receiver<Slot<V>>,
}

impl<K: Eq + Hash, V> Flights<K, V> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Arc<Flight<V>>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: Eq + Hash + Clone, V> Flights<K, V> {
    pub fn new() -> Self {
        Self {
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Leads or joins the lookup of `key`.
    pub fn join(&self, key: &K) -> Join<'_, K, V> {
        let mut in_flight = self.lock();
        Self::join_locked(self, &mut in_flight, key)
    }

    /// [`Flights::join`] for each key, under one lock.
    pub fn join_many<'k>(&self, keys: impl IntoIterator<Item = &'k K>) -> Vec<Join<'_, K, V>>
    where
        K: 'k,
    {
        let mut in_flight = self.lock();
        keys.into_iter()
            .map(|key| Self::join_locked(self, &mut in_flight, key))
            .collect()
    }

    fn join_locked<'a>(
        flights: &'a Self,
        in_flight: &mut HashMap<K, Arc<Flight<V>>>,
        key: &K,
    ) -> Join<'a, K, V> {
        if let Some(flight) = in_flight.get(key) {
            return Join::Wait(Waiter {
                outcome: flight.outcome.subscribe(),
            });
        }
        let flight = Arc::new(Flight {
            outcome: watch::Sender::new(None),
            invalidated: AtomicBool::new(false),
        });
        in_flight.insert(key.clone(), Arc::clone(&flight));
        Join::Lead(Leader {
            flights,
            key: key.clone(),
            flight,
        })
    }

    /// Marks the lookup of `key` in flight, if any, as invalidated, and detaches it: later
    /// lookups of the key start their own instead of joining one that may have read old data.
    pub fn invalidate(&self, key: &K) {
        if let Some(flight) = self.lock().remove(key) {
            flight.invalidated.store(true, Ordering::SeqCst);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

impl<K: Eq + Hash, V> Leader<'_, K, V> {
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Whether the key was invalidated since this lookup started: then what it read must not
    /// be put into the cache.
    pub fn is_invalidated(&self) -> bool {
        self.flight.invalidated.load(Ordering::SeqCst)
    }

    /// Hands `outcome` to every waiter and releases the key.
    pub fn complete(self, outcome: Outcome<V>) {
        self.flight.outcome.send_replace(Some(outcome));
        // Dropping `self` now releases the key.
    }
}

impl<K: Eq + Hash, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        let mut in_flight = self.flights.lock();
        if in_flight
            .get(&self.key)
            .is_some_and(|flight| Arc::ptr_eq(flight, &self.flight))
        {
            in_flight.remove(&self.key);
        }
    }
}

impl<V> Waiter<V> {
    /// The leader's outcome, or `None` when the leader was dropped without one (cancelled):
    /// then the caller starts over.
    pub async fn outcome(mut self) -> Option<Outcome<V>> {
        match self.outcome.wait_for(Option::is_some).await {
            Ok(slot) => slot.clone(),
            Err(_closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead<'a>(flights: &'a Flights<u32, String>, key: u32) -> Leader<'a, u32, String> {
        match flights.join(&key) {
            Join::Lead(leader) => leader,
            Join::Wait(_) => panic!("expected to lead {key}"),
        }
    }

    fn wait(flights: &Flights<u32, String>, key: u32) -> Waiter<String> {
        match flights.join(&key) {
            Join::Wait(waiter) => waiter,
            Join::Lead(_) => panic!("expected to wait for {key}"),
        }
    }

    #[tokio::test]
    async fn waiters_get_the_leaders_outcome_and_the_key_is_released() {
        let flights = Flights::<u32, String>::new();
        let leader = lead(&flights, 1);
        let waiters: Vec<_> = (0..5).map(|_| wait(&flights, 1)).collect();
        let other = lead(&flights, 2);
        assert_eq!(flights.len(), 2);
        leader.complete(Ok(Some(Arc::new("one".to_owned()))));
        for waiter in waiters {
            let outcome = waiter.outcome().await.expect("an outcome");
            assert_eq!(outcome.unwrap().as_deref().map(String::as_str), Some("one"));
        }
        assert_eq!(flights.len(), 1);
        drop(other);
        assert_eq!(flights.len(), 0);
        drop(lead(&flights, 1));
    }

    #[tokio::test]
    async fn a_cancelled_leader_lets_its_waiters_start_over() {
        let flights = Flights::<u32, String>::new();
        let leader = lead(&flights, 7);
        let waiter = wait(&flights, 7);
        let waiting = tokio::spawn(waiter.outcome());
        tokio::task::yield_now().await;
        drop(leader);
        assert!(waiting.await.unwrap().is_none());
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn errors_reach_every_waiter() {
        let flights = Flights::<u32, String>::new();
        let leader = lead(&flights, 3);
        let waiter = wait(&flights, 3);
        leader.complete(Err(CacheError::Load {
            namespace: "t",
            source: Arc::new(std::io::Error::other("boom")),
        }));
        let outcome = waiter.outcome().await.expect("an outcome");
        assert!(matches!(outcome, Err(CacheError::Load { .. })));
    }

    #[test]
    fn invalidation_marks_and_detaches_the_flight() {
        let flights = Flights::<u32, String>::new();
        let old = lead(&flights, 4);
        assert!(!old.is_invalidated());
        flights.invalidate(&4);
        assert!(old.is_invalidated());
        // A new lookup does not join the invalidated one.
        let new = lead(&flights, 4);
        assert!(!new.is_invalidated());
        drop(old); // must not release the new flight
        assert_eq!(flights.len(), 1);
        drop(new);
        assert_eq!(flights.len(), 0);
        flights.invalidate(&5); // nothing in flight: nothing to do
    }

    #[test]
    fn join_many_leads_new_keys_and_waits_for_others() {
        let flights = Flights::<u32, String>::new();
        let _held = lead(&flights, 2);
        let joins = flights.join_many([1, 2, 3].iter());
        let kinds: Vec<bool> = joins.iter().map(|j| matches!(j, Join::Lead(_))).collect();
        assert_eq!(kinds, [true, false, true]);
    }
}
