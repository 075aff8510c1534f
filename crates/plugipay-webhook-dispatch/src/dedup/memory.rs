//! The in-process store: bounded, with expiry.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{Claim, DedupStore, EventKey};
use crate::error::{BoxFuture, StoreError, MAX_DURATION};
use crate::token::ClaimToken;

#[derive(Debug)]
enum State {
    Claimed(ClaimToken),
    Done,
}

#[derive(Debug)]
struct Record {
    state: State,
    expires: Instant,
    /// When the record entered its current state (oldest-first eviction).
    since: Instant,
}

/// An in-process store for one receiver process.
///
/// Bounded: when full it first drops expired records, then done records,
/// oldest first; it never drops a live claim — with only live claims left it
/// answers [`StoreError`] (so the delivery gets 503 and is retried) rather
/// than forget one. Records expire by themselves: lapsed claims after their
/// lease, done records after the retention.
///
/// Times come from `tokio::time`, so tests can pause and advance the clock.
#[derive(Debug)]
pub struct MemoryStore {
    records: Mutex<HashMap<EventKey, Record>>,
    capacity: usize,
}

/// Default capacity of [`MemoryStore::new`].
pub const DEFAULT_MEMORY_CAPACITY: usize = 100_000;

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// A store holding at most 100,000 records.
    #[must_use]
    pub fn new() -> MemoryStore {
        MemoryStore::with_capacity(DEFAULT_MEMORY_CAPACITY)
    }

    /// A store holding at most `capacity` records (at least 1).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> MemoryStore {
        MemoryStore {
            records: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// How many records are held (live or not yet purged).
    #[must_use]
    pub fn len(&self) -> usize {
        self.records().len()
    }

    /// The records. A panic elsewhere while the lock was held cannot leave
    /// them inconsistent (every change is one map operation), so a poisoned
    /// lock is taken over rather than answering 503 forever.
    fn records(&self) -> MutexGuard<'_, HashMap<EventKey, Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether no record is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn claim_now(&self, key: &EventKey, lease: Duration) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut records = self.records();
        if let Some(r) = records.get(key) {
            if r.expires > now {
                return Ok(match r.state {
                    State::Claimed(_) => Claim::InProgress,
                    State::Done => Claim::Done,
                });
            }
        } else if records.len() >= self.capacity {
            make_room(&mut records, self.capacity, now)?;
        }
        let token = ClaimToken::new();
        records.insert(
            key.clone(),
            Record {
                state: State::Claimed(token.clone()),
                expires: later(now, lease),
                since: now,
            },
        );
        Ok(Claim::Acquired(token))
    }

    fn finish(&self, key: &EventKey, token: &ClaimToken, then: Then) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut records = self.records();
        let holds =
            matches!(records.get(key), Some(Record { state: State::Claimed(t), .. }) if t == token);
        if !holds {
            return Ok(false);
        }
        match then {
            Then::Done(retention) => {
                records.insert(
                    key.clone(),
                    Record {
                        state: State::Done,
                        expires: later(now, retention),
                        since: now,
                    },
                );
            }
            Then::Extend(lease) => {
                if let Some(r) = records.get_mut(key) {
                    r.expires = later(now, lease);
                }
            }
            Then::Release => {
                records.remove(key);
            }
        }
        Ok(true)
    }
}

/// What the holder of a claim does with it.
enum Then {
    Done(Duration),
    Extend(Duration),
    Release,
}

/// `now + d`, with `d` clamped to [`MAX_DURATION`]: never overflows.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_DURATION))
        .expect("100 years from now is a valid Instant")
}

/// Frees at least one slot: expired records first, then done records oldest
/// first (an eighth of the capacity at a time, to amortise the scan).
fn make_room(
    records: &mut HashMap<EventKey, Record>,
    capacity: usize,
    now: Instant,
) -> Result<(), StoreError> {
    records.retain(|_, r| r.expires > now);
    if records.len() < capacity {
        return Ok(());
    }
    let mut done: Vec<(Instant, EventKey)> = records
        .iter()
        .filter(|(_, r)| matches!(r.state, State::Done))
        .map(|(k, r)| (r.since, k.clone()))
        .collect();
    if done.is_empty() {
        return Err(StoreError::new(format!(
            "memory store full: {capacity} live claims and nothing expired or done to evict"
        )));
    }
    done.sort_unstable();
    let evict = (capacity / 8).max(1).min(done.len());
    for (_, k) in done.into_iter().take(evict) {
        records.remove(&k);
    }
    tracing::debug!(
        evicted = evict,
        "memory de-duplication store full: evicted the oldest done records"
    );
    Ok(())
}

impl DedupStore for MemoryStore {
    fn claim<'a>(
        &'a self,
        key: &'a EventKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(std::future::ready(self.claim_now(key, lease)))
    }

    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(self.finish(
            key,
            token,
            Then::Done(retention),
        )))
    }

    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(self.finish(key, token, Then::Release)))
    }

    fn extend<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(self.finish(
            key,
            token,
            Then::Extend(lease),
        )))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
