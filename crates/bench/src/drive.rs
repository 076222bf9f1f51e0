//! The timing harness every append workload shares, embedded or PostgreSQL: `w` writers append
//! in a loop, first for the warm-up, then for the measured window, and the harness counts what
//! was acknowledged inside the window.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

/// One writer of a workload: it owns one stream and appends to it with exact revisions.
#[async_trait]
pub trait Writer: Send + 'static {
    /// Appends `count` events in one append and returns once it is acknowledged (durable).
    /// Returns the wrapping sum of the ids appended (0 where ids are not tracked).
    async fn append(&mut self, count: usize) -> anyhow::Result<u128>;
}

/// How long a workload runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Appends before the measured window, not counted (caches, allocator, disk settle).
    pub warmup: Duration,
    /// The measured window.
    pub measured: Duration,
}

/// What one workload measured, and what it wrote in all (warm-up included).
#[derive(Debug, Default)]
pub struct Measured {
    /// Events acknowledged inside the measured window.
    pub events: u64,
    /// Appends acknowledged inside the measured window.
    pub appends: u64,
    /// The measured window's real length.
    pub elapsed: Duration,
    /// Latency of each measured append, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// The fsync counter's growth over the measured window (0 when there is no counter).
    pub fsyncs: u64,
    /// Every event the workload appended, warm-up included: they are in the store.
    pub events_written: u64,
    /// The wrapping sum of the ids of those events.
    pub id_sum: u128,
}

impl Measured {
    /// Events per second over the measured window.
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at `quantile` (0..=1), in microseconds; 0 if nothing was measured.
    pub fn latency_us(&self, quantile: f64) -> u64 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let last = self.latencies_us.len() - 1;
        let index = ((last as f64) * quantile).round() as usize;
        self.latencies_us[index.min(last)]
    }
}

/// The flags writers watch: when to start counting and when to stop.
#[derive(Default)]
struct Phase {
    measuring: AtomicBool,
    stop: AtomicBool,
}

/// What one writer task returns.
#[derive(Default)]
struct WriterTally {
    events: u64,
    appends: u64,
    latencies_us: Vec<u64>,
    events_written: u64,
    id_sum: u128,
}

/// Runs `writers` concurrently, each appending `batch` events per append, through the warm-up
/// and the measured window. `fsyncs` reads the engine's fsync counter.
pub async fn drive<W: Writer>(
    writers: Vec<W>,
    batch: usize,
    timing: Timing,
    fsyncs: impl Fn() -> u64,
) -> anyhow::Result<Measured> {
    let phase = Arc::new(Phase::default());
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|mut writer| {
            let phase = phase.clone();
            tokio::spawn(async move {
                let mut tally = WriterTally::default();
                while !phase.stop.load(Ordering::Acquire) {
                    let start = Instant::now();
                    let id_sum = writer.append(batch).await?;
                    let latency = start.elapsed();
                    tally.events_written += batch as u64;
                    tally.id_sum = tally.id_sum.wrapping_add(id_sum);
                    // Only appends acknowledged inside the window count; one that straddles
                    // the start is counted, one acknowledged after the stop is not.
                    if phase.measuring.load(Ordering::Acquire)
                        && !phase.stop.load(Ordering::Acquire)
                    {
                        tally.events += batch as u64;
                        tally.appends += 1;
                        tally
                            .latencies_us
                            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
                    }
                }
                anyhow::Ok(tally)
            })
        })
        .collect();
    tokio::time::sleep(timing.warmup).await;
    let fsyncs_start = fsyncs();
    let start = Instant::now();
    phase.measuring.store(true, Ordering::Release);
    tokio::time::sleep(timing.measured).await;
    phase.stop.store(true, Ordering::Release);
    let elapsed = start.elapsed();
    let fsyncs_end = fsyncs();
    let mut measured = Measured {
        elapsed,
        fsyncs: fsyncs_end - fsyncs_start,
        ..Measured::default()
    };
    for task in tasks {
        let tally = task.await??;
        measured.events += tally.events;
        measured.appends += tally.appends;
        measured.latencies_us.extend(tally.latencies_us);
        measured.events_written += tally.events_written;
        measured.id_sum = measured.id_sum.wrapping_add(tally.id_sum);
    }
    measured.latencies_us.sort_unstable();
    Ok(measured)
}

/// The payload of every benchmark event: a JSON object of exactly [`PAYLOAD_BYTES`] bytes,
/// shaped like a small domain event (the issue's method asks for ~200-byte JSON payloads).
pub fn payload(writer: usize, sequence: u64) -> Bytes {
    let mut text = format!(
        r#"{{"account":"acc-{writer:06}","sequence":{sequence},"amount":{},"currency":"EUR","note":""#,
        sequence % 100_000
    );
    let padding = PAYLOAD_BYTES.saturating_sub(text.len() + 2);
    text.push_str(&PADDING[..padding.min(PADDING.len())]);
    text.push_str("\"}");
    Bytes::from(text)
}

/// Filler for [`payload`]'s note.
const PADDING: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// The size of [`payload`]'s JSON.
pub const PAYLOAD_BYTES: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_200_bytes_of_json() {
        for sequence in [0, 7, 123_456_789, u64::MAX] {
            let data = payload(63, sequence);
            assert_eq!(data.len(), PAYLOAD_BYTES);
            let value: serde_json::Value = serde_json::from_slice(&data).unwrap();
            assert_eq!(value["sequence"], serde_json::json!(sequence));
        }
    }

    #[test]
    fn quantiles_pick_from_the_sorted_latencies() {
        let measured = Measured {
            latencies_us: (1..=100).collect(),
            ..Measured::default()
        };
        assert_eq!(measured.latency_us(0.5), 51);
        assert_eq!(measured.latency_us(0.99), 99);
        assert_eq!(Measured::default().latency_us(0.5), 0);
    }
}
