//! Snapshots: an aggregate's state at a revision, stored in the system stream
//! `$snapshots-{stream}` of the same store, so loading replays only the events after it.
//!
//! A snapshot is a `Snapshot` event whose schema version is the aggregate's
//! [`SNAPSHOT_VERSION`](crate::Aggregate::SNAPSHOT_VERSION) and whose data is
//! `{"revision": <last revision covered>, "state": <the state as JSON>}`. Being in a system
//! stream, snapshots never appear in `$all` reads or subscriptions unless `include_system` is
//! asked for.

use factum_core::StreamName;
use serde::Deserialize;

/// The event type of snapshot events.
pub const SNAPSHOT_EVENT_TYPE: &str = "Snapshot";

/// The snapshot stream of `stream`: `$snapshots-{stream}`. `None` when the name would be too
/// long (the stream then simply gets no snapshots).
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use factum_aggregate::examples::bank::{AccountCommand, BankAccount};
/// use factum_aggregate::{EventSchema, Repository, SnapshotPolicy, snapshot_stream_of};
/// use factum_core::{EventStore, ReadAllOptions, StreamName};
///
/// let store: Arc<dyn EventStore> = Arc::new(factum_memory::MemoryStore::new());
/// let accounts = Repository::<BankAccount>::new(store.clone(), EventSchema::json())
///     .with_snapshots(SnapshotPolicy::every(1));
/// let open = AccountCommand::Open { owner: "Bo".into(), initial_balance_cents: 0 };
/// accounts.execute("1", &open).await?;
///
/// let snapshots = snapshot_stream_of(&StreamName::new("account-1")?).expect("a short name");
/// assert_eq!(snapshots.as_str(), "$snapshots-account-1");
/// // Snapshots are system events: `$all` shows them only when asked.
/// assert_eq!(store.read_all(ReadAllOptions::forwards()).await?.events.len(), 1);
/// let everything = store.read_all(ReadAllOptions::forwards().include_system()).await?;
/// assert!(everything.events.iter().any(|event| event.stream == snapshots));
/// # Ok(())
/// # }
/// ```
pub fn snapshot_stream_of(stream: &StreamName) -> Option<StreamName> {
    StreamName::new(format!("$snapshots-{stream}")).ok()
}

/// When the repository takes snapshots, and how many it keeps.
///
/// ```
/// use factum_aggregate::SnapshotPolicy;
///
/// let policy = SnapshotPolicy::every(100).keep(3);
/// assert_eq!(policy.every_events(), Some(100));
/// assert_eq!(SnapshotPolicy::never().every_events(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnapshotPolicy {
    every_events: Option<u64>,
    keep_count: u64,
}

impl SnapshotPolicy {
    /// How many snapshots are kept by default (`$maxCount` of the snapshot stream).
    pub const KEEP_COUNT_DEFAULT: u64 = 3;

    /// No snapshots: every load replays the whole stream.
    pub fn never() -> SnapshotPolicy {
        SnapshotPolicy {
            every_events: None,
            keep_count: Self::KEEP_COUNT_DEFAULT,
        }
    }

    /// A snapshot after a save once at least `events` events (at least 1) were written since
    /// the last usable snapshot.
    pub fn every(events: u64) -> SnapshotPolicy {
        SnapshotPolicy {
            every_events: Some(events.max(1)),
            keep_count: Self::KEEP_COUNT_DEFAULT,
        }
    }

    /// Keeps only the newest `count` (at least 1) snapshots visible: set as `$maxCount` on the
    /// snapshot stream when its first snapshot is written.
    pub fn keep(mut self, count: u64) -> SnapshotPolicy {
        self.keep_count = count.max(1);
        self
    }

    /// The snapshot interval, `None` for never.
    pub fn every_events(&self) -> Option<u64> {
        self.every_events
    }

    /// How many snapshots are kept.
    pub fn keep_count(&self) -> u64 {
        self.keep_count
    }

    /// Whether a snapshot is due at `last_revision`, the last one covering `covered` (or none).
    pub(crate) fn is_due(&self, last_revision: u64, covered: Option<u64>) -> bool {
        let Some(every_events) = self.every_events else {
            return false;
        };
        let since = match covered {
            Some(covered) => last_revision.saturating_sub(covered),
            None => last_revision + 1,
        };
        since >= every_events
    }
}

/// A decoded snapshot record.
#[derive(Deserialize)]
pub(crate) struct SnapshotRecord<A> {
    pub(crate) revision: u64,
    pub(crate) state: A,
}

/// How snapshots of one aggregate type are encoded, captured where the serde bounds are known.
pub(crate) struct SnapshotCodec<A> {
    pub(crate) policy: SnapshotPolicy,
    pub(crate) encode: fn(&A) -> Result<Vec<u8>, serde_json::Error>,
    pub(crate) decode: fn(&[u8]) -> Result<SnapshotRecord<A>, serde_json::Error>,
}

impl<A> Clone for SnapshotCodec<A> {
    fn clone(&self) -> SnapshotCodec<A> {
        SnapshotCodec {
            policy: self.policy,
            encode: self.encode,
            decode: self.decode,
        }
    }
}

/// The data of a snapshot event covering `revision`, around the already encoded state.
pub(crate) fn snapshot_data(revision: u64, state_json: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(state_json.len() + 40);
    data.extend_from_slice(format!("{{\"revision\":{revision},\"state\":").as_bytes());
    data.extend_from_slice(state_json);
    data.push(b'}');
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_due_after_enough_events_since_the_last_snapshot() {
        let policy = SnapshotPolicy::every(3);
        assert!(!policy.is_due(1, None));
        assert!(policy.is_due(2, None));
        assert!(!policy.is_due(4, Some(2)));
        assert!(policy.is_due(5, Some(2)));
        assert!(!SnapshotPolicy::never().is_due(1_000, None));
    }

    #[test]
    fn wraps_the_state_with_its_revision() {
        let data = snapshot_data(7, br#"{"balance_cents":5}"#);
        let record: SnapshotRecord<serde_json::Value> = serde_json::from_slice(&data).unwrap();
        assert_eq!(record.revision, 7);
        assert_eq!(record.state["balance_cents"], 5);
    }
}
