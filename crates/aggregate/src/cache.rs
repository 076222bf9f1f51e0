//! The repository's state cache: the last state it saw of each recently used aggregate, so a
//! command normally reads only the events written since instead of reloading the aggregate.
//!
//! The cache is only ever a starting point. [`Repository`](crate::Repository) checks it against
//! the store before each command (a read of the events after the cached revision) and saves with
//! `ExpectedRevision::Exact`, so a stale entry costs a reload, never a wrong write.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How a state is copied in and out of the cache; `None` keeps it out.
pub(crate) type CopyState<A> = fn(&A) -> Option<A>;

/// One aggregate's cached state.
#[derive(Debug)]
pub(crate) struct Cached<A> {
    /// The state after the event at `revision`.
    pub(crate) state: A,
    /// The revision of the last event folded into `state`.
    pub(crate) revision: u64,
    /// The revision covered by the newest snapshot known to exist, for the snapshot policy.
    pub(crate) snapshot_revision: Option<u64>,
}

/// A bounded map from stream name to [`Cached`] state that evicts the least recently used
/// entry when full. Shared by a repository and its clones.
pub(crate) struct StateCache<A> {
    /// The most entries kept (at least 1).
    capacity: usize,
    copy: CopyState<A>,
    inner: Mutex<Inner<A>>,
}

struct Inner<A> {
    entries: HashMap<String, Entry<A>>,
    /// Stream names by last use, oldest first: the eviction order.
    by_use: BTreeMap<u64, String>,
    /// The use counter; raised on every lookup hit and insertion.
    tick: u64,
}

struct Entry<A> {
    cached: Cached<A>,
    /// The tick of its last use (its key in `by_use`).
    used: u64,
}

impl<A> StateCache<A> {
    /// A cache of at most `capacity` aggregates (at least 1), copying states with `copy`.
    pub(crate) fn new(capacity: usize, copy: CopyState<A>) -> StateCache<A> {
        StateCache {
            capacity: capacity.max(1),
            copy,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
                tick: 0,
            }),
        }
    }

    /// The most entries kept.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, Inner<A>> {
        // Nothing panics while the lock is held but the user's copy, which reads the entry
        // without changing the maps: they are consistent even after a panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the state cached for `stream`, if any.
    pub(crate) fn get(&self, stream: &str) -> Option<Cached<A>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.entries.get_mut(stream)?;
        let state = (self.copy)(&entry.cached.state)?;
        let cached = Cached {
            state,
            revision: entry.cached.revision,
            snapshot_revision: entry.cached.snapshot_revision,
        };
        let used = std::mem::replace(&mut entry.used, tick);
        inner.by_use.remove(&used);
        inner.by_use.insert(tick, stream.to_owned());
        Some(cached)
    }

    /// The revision cached for `stream`, if any (without counting as a use).
    pub(crate) fn revision(&self, stream: &str) -> Option<u64> {
        self.lock()
            .entries
            .get(stream)
            .map(|entry| entry.cached.revision)
    }

    /// Caches a copy of `state` as of `revision`, unless a newer revision is cached already
    /// (another command of this repository got further). Evicts the least recently used entry
    /// when full.
    pub(crate) fn put(
        &self,
        stream: &str,
        state: &A,
        revision: u64,
        snapshot_revision: Option<u64>,
    ) {
        if self
            .revision(stream)
            .is_some_and(|cached| cached > revision)
        {
            return;
        }
        // Copied outside the lock: the copy may be slow.
        let Some(state) = (self.copy)(state) else {
            return;
        };
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(entry) = inner.entries.get_mut(stream) {
            // Checked again: another command may have cached a newer state meanwhile.
            if entry.cached.revision > revision {
                return;
            }
            entry.cached = Cached {
                state,
                revision,
                snapshot_revision,
            };
            let used = std::mem::replace(&mut entry.used, tick);
            inner.by_use.remove(&used);
            inner.by_use.insert(tick, stream.to_owned());
            return;
        }
        // Bounded: each turn removes one entry, and there are at most `capacity` of them.
        while inner.entries.len() >= self.capacity {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            inner.entries.remove(&oldest);
        }
        let cached = Cached {
            state,
            revision,
            snapshot_revision,
        };
        inner
            .entries
            .insert(stream.to_owned(), Entry { cached, used: tick });
        inner.by_use.insert(tick, stream.to_owned());
        debug_assert_eq!(inner.entries.len(), inner.by_use.len());
    }

    /// Forgets `stream`'s state if it is at `revision` or older: it was found stale.
    pub(crate) fn remove_at_most(&self, stream: &str, revision: u64) {
        let mut inner = self.lock();
        let stale = inner
            .entries
            .get(stream)
            .is_some_and(|entry| entry.cached.revision <= revision);
        if stale && let Some(entry) = inner.entries.remove(stream) {
            inner.by_use.remove(&entry.used);
        }
    }

    /// Forgets `stream`'s state, whatever its revision.
    pub(crate) fn remove(&self, stream: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.remove(stream) {
            inner.by_use.remove(&entry.used);
        }
    }

    /// How many aggregates are cached.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize) -> StateCache<u64> {
        StateCache::new(capacity, |state| Some(*state))
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let cache = cache(2);
        cache.put("a", &1, 0, None);
        cache.put("b", &2, 0, None);
        // Using `a` makes `b` the oldest.
        assert_eq!(cache.get("a").map(|cached| cached.state), Some(1));
        cache.put("c", &3, 0, None);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none());
        assert_eq!(cache.get("a").map(|cached| cached.state), Some(1));
        assert_eq!(cache.get("c").map(|cached| cached.state), Some(3));
    }

    #[test]
    fn keeps_the_newest_revision_and_forgets_stale_ones() {
        let cache = cache(4);
        cache.put("a", &5, 5, Some(3));
        cache.put("a", &4, 4, None);
        assert_eq!(cache.revision("a"), Some(5));
        cache.remove_at_most("a", 4);
        assert_eq!(cache.revision("a"), Some(5));
        cache.remove_at_most("a", 5);
        assert_eq!(cache.revision("a"), None);
        cache.put("a", &6, 6, None);
        cache.remove("a");
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_state_that_cannot_be_copied_is_not_cached() {
        let cache = StateCache::<u64>::new(4, |_| None);
        cache.put("a", &1, 0, None);
        assert_eq!(cache.len(), 0);
        assert!(cache.get("a").is_none());
    }
}
