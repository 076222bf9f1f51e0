//! What the writer thread measures as it commits: how long each `fdatasync` takes and how many
//! events and writes each one covers. The figures are for monitoring (`factum serve` exposes
//! them as Prometheus metrics); the engine never reads them back.
//!
//! Every figure is a fixed set of relaxed atomic counters: recording one is a bucket search
//! over a dozen bounds and two `fetch_add`s, next to an fsync of tens of microseconds or more.
//! Readers take a [`HistogramSnapshot`] at any time; its buckets may be a few records apart
//! from its sum (they are not read at one instant), which monitoring tolerates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds of the fsync latency, in microseconds: 50 µs to 1 s.
const FSYNC_MICROS_BOUNDS: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// Bucket upper bounds of the events one fsync covers.
const GROUP_EVENTS_BOUNDS: &[u64] = &[
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 4_096, 16_384, 65_536,
];

/// Bucket upper bounds of the writes (appends and deletes) one fsync covers; a group takes at
/// most 4096 requests.
const GROUP_WRITES_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 4_096];

/// A histogram of `u64` values over fixed bucket bounds, updated with relaxed atomics.
#[derive(Debug)]
pub struct Histogram {
    /// Inclusive upper bounds, ascending.
    bounds: &'static [u64],
    /// One counter per bound, plus the last for values above every bound.
    buckets: Box<[AtomicU64]>,
    /// The sum of every recorded value.
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (inclusive upper bounds, ascending).
    pub fn new(bounds: &'static [u64]) -> Histogram {
        assert!(
            bounds.windows(2).all(|pair| pair[0] < pair[1]),
            "histogram bounds ascend"
        );
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one value.
    pub fn record(&self, value: u64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self
                .buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Inclusive upper bounds of the buckets, ascending.
    pub bounds: &'static [u64],
    /// How many values fell in each bucket (not cumulative): `counts[i]` for values at most
    /// `bounds[i]` and above the bound before it; the last, one more than `bounds`, for values
    /// above every bound.
    pub counts: Vec<u64>,
    /// The sum of the values.
    pub sum: u64,
}

impl HistogramSnapshot {
    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The writer thread's figures, shared with whoever monitors the store
/// ([`EmbeddedStore::stats`](crate::EmbeddedStore::stats)).
#[derive(Debug)]
pub struct EngineStats {
    /// How long each group commit's `fdatasync` took, in microseconds.
    pub fsync_micros: Histogram,
    /// How many events each group commit's fsync made durable.
    pub group_events: Histogram,
    /// How many writes (appends, and the frame of a delete) each group commit's fsync made
    /// durable; idempotent retries and refused requests write nothing and are not counted.
    pub group_writes: Histogram,
}

impl Default for EngineStats {
    fn default() -> EngineStats {
        EngineStats {
            fsync_micros: Histogram::new(FSYNC_MICROS_BOUNDS),
            group_events: Histogram::new(GROUP_EVENTS_BOUNDS),
            group_writes: Histogram::new(GROUP_WRITES_BOUNDS),
        }
    }
}

impl EngineStats {
    /// Records one group commit's fsync (successful or not).
    pub fn record_fsync(&self, elapsed: Duration) {
        self.fsync_micros
            .record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records what one durable group commit wrote.
    pub fn record_group(&self, writes: usize, events: usize) {
        self.group_writes.record(writes as u64);
        self.group_events.record(events as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_whose_bound_is_at_least_them() {
        let histogram = Histogram::new(&[1, 10, 100]);
        for value in [0, 1, 2, 10, 11, 100, 101, 5_000] {
            histogram.record(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts, vec![2, 2, 2, 2]);
        assert_eq!(snapshot.sum, 5_225);
        assert_eq!(snapshot.count(), 8);
    }

    #[test]
    fn engine_stats_record_fsyncs_in_microseconds() {
        let stats = EngineStats::default();
        stats.record_fsync(Duration::from_micros(700));
        stats.record_group(3, 10);
        assert_eq!(stats.fsync_micros.snapshot().sum, 700);
        assert_eq!(stats.group_writes.snapshot().count(), 1);
        assert_eq!(stats.group_events.snapshot().sum, 10);
    }
}
