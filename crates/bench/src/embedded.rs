//! The embedded engine's side of the bench: its writers, the bulk load and reopen that run in
//! child processes, and the reads.
//!
//! Everything goes through the public [`EventStore`] trait, as an application would; only the
//! fsync counter is engine-specific.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use factum_core::{
    AllStart, CONTENT_TYPE_JSON, Error, EventStore, ExpectedRevision, Position, ProposedEvent,
    ReadAllOptions, ReadStreamOptions, StreamName,
};
use factum_log::EmbeddedStore;

use crate::drive::{Writer, payload};

/// The type of every benchmark event.
pub const EVENT_TYPE: &str = "BenchEventRecorded";

/// The stream `read_stream_10k_ms` reads, interleaved with the bulk load's streams.
pub const READ_STREAM: &str = "bench-read-10k";

/// The events of [`READ_STREAM`].
pub const READ_STREAM_EVENTS: u64 = 10_000;

/// The stream the reopen child appends its one event to.
pub const REOPEN_STREAM: &str = "bench-reopen";

/// Events per append of the bulk load.
const LOAD_BATCH_EVENTS: u64 = 1_000;

/// Concurrent appenders of the bulk load (their fsyncs are shared by group commit).
const LOAD_TASKS: u64 = 4;

/// Streams of the bulk load, a multiple of [`LOAD_TASKS`] so that each has one owner.
const LOAD_STREAMS: u64 = 1_000;

/// Events per `read_all` page.
const READ_ALL_PAGE_EVENTS: u64 = 10_000;

/// Builds `count` benchmark events for writer `writer`, numbered from `sequence`; returns them
/// with the wrapping sum of their ids.
pub fn events(writer: usize, sequence: u64, count: usize) -> (Vec<ProposedEvent>, u128) {
    let mut id_sum = 0u128;
    let events = (0..count as u64)
        .map(|offset| {
            let event = ProposedEvent::new(
                EVENT_TYPE,
                CONTENT_TYPE_JSON,
                payload(writer, sequence + offset),
            );
            id_sum = id_sum.wrapping_add(event.id.0.as_u128());
            event
        })
        .collect();
    (events, id_sum)
}

/// The revision an append to `stream` must expect: `Exact(last)`, or `NoStream` for a new one.
pub async fn expected_now(
    store: &dyn EventStore,
    stream: &StreamName,
) -> anyhow::Result<ExpectedRevision> {
    match store
        .read_stream(stream, ReadStreamOptions::backwards().limit(1))
        .await
    {
        Ok(events) => Ok(events.first().map_or(ExpectedRevision::NoStream, |event| {
            ExpectedRevision::Exact(event.revision)
        })),
        Err(Error::StreamNotFound { .. }) => Ok(ExpectedRevision::NoStream),
        Err(error) => Err(error.into()),
    }
}

/// A writer of an append workload on the embedded store.
pub struct StoreWriter {
    store: Arc<EmbeddedStore>,
    stream: StreamName,
    expected: ExpectedRevision,
    writer: usize,
    sequence: u64,
}

impl StoreWriter {
    /// Writer `writer` of `writers`: it appends to `bench-{writers}-{writer}`, continuing
    /// whatever an earlier workload left there.
    pub async fn new(
        store: Arc<EmbeddedStore>,
        writers: usize,
        writer: usize,
    ) -> anyhow::Result<StoreWriter> {
        let stream = StreamName::new(format!("bench-{writers}-{writer}"))?;
        let expected = expected_now(store.as_ref(), &stream).await?;
        Ok(StoreWriter {
            store,
            stream,
            expected,
            writer,
            sequence: 0,
        })
    }
}

#[async_trait]
impl Writer for StoreWriter {
    async fn append(&mut self, count: usize) -> anyhow::Result<u128> {
        let (events, id_sum) = events(self.writer, self.sequence, count);
        self.sequence += count as u64;
        let result = self
            .store
            .append(&self.stream, self.expected, events)
            .await?;
        self.expected = ExpectedRevision::Exact(result.revision);
        Ok(id_sum)
    }
}

/// What the load child reports once its last append is acknowledged.
#[derive(Debug)]
pub struct Loaded {
    /// Events appended.
    pub events: u64,
    /// The wrapping sum of their ids.
    pub id_sum: u128,
    /// How long the load took.
    pub elapsed: Duration,
}

/// Appends `events` events (at least [`READ_STREAM_EVENTS`]) to the store in `dir`, in
/// 1,000-event appends to [`LOAD_STREAMS`] streams from [`LOAD_TASKS`] concurrent tasks, with
/// [`READ_STREAM`]'s 10,000 events spread among them.
pub async fn load(store: Arc<EmbeddedStore>, events: u64) -> anyhow::Result<Loaded> {
    let others = events.saturating_sub(READ_STREAM_EVENTS);
    let jobs = others.div_ceil(LOAD_BATCH_EVENTS);
    let start = Instant::now();
    let tasks: Vec<_> = (0..LOAD_TASKS)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(load_task(store, task, jobs, others))
        })
        .collect();
    let mut loaded = Loaded {
        events: 0,
        id_sum: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (count, id_sum) = task.await??;
        loaded.events += count;
        loaded.id_sum = loaded.id_sum.wrapping_add(id_sum);
    }
    loaded.elapsed = start.elapsed();
    if loaded.events != others + READ_STREAM_EVENTS {
        bail!(
            "the load appended {} events instead of {}",
            loaded.events,
            others + READ_STREAM_EVENTS
        );
    }
    Ok(loaded)
}

/// One task of the load: jobs `task`, `task + LOAD_TASKS`, ... of `jobs`; task 0 also appends
/// [`READ_STREAM`] a slice at a time after each of its jobs, so that stream is spread over the
/// whole log.
async fn load_task(
    store: Arc<EmbeddedStore>,
    task: u64,
    jobs: u64,
    others: u64,
) -> anyhow::Result<(u64, u128)> {
    let mut expected: HashMap<u64, ExpectedRevision> = HashMap::new();
    let mut appended = 0u64;
    let mut id_sum = 0u128;
    let read_stream = StreamName::new(READ_STREAM)?;
    let mut read_expected = ExpectedRevision::NoStream;
    let mut read_left = if task == 0 { READ_STREAM_EVENTS } else { 0 };
    let my_jobs = (task..jobs).step_by(LOAD_TASKS as usize).count() as u64;
    let read_slice = READ_STREAM_EVENTS.div_ceil(my_jobs.max(1)).max(1);
    let writer = usize::try_from(task)?;
    for job in (task..jobs).step_by(LOAD_TASKS as usize) {
        let number = job % LOAD_STREAMS;
        let stream = StreamName::new(format!("bench-load-{number}"))?;
        let count = LOAD_BATCH_EVENTS.min(others - job * LOAD_BATCH_EVENTS);
        let (batch, sum) = events(writer, job * LOAD_BATCH_EVENTS, usize::try_from(count)?);
        let revision = expected
            .get(&number)
            .copied()
            .unwrap_or(ExpectedRevision::NoStream);
        let result = store.append(&stream, revision, batch).await?;
        expected.insert(number, ExpectedRevision::Exact(result.revision));
        appended += count;
        id_sum = id_sum.wrapping_add(sum);
        if read_left > 0 {
            let count = read_slice.min(read_left);
            let (sum, revision) =
                append_read_slice(&store, &read_stream, read_expected, count).await?;
            read_expected = revision;
            read_left -= count;
            appended += count;
            id_sum = id_sum.wrapping_add(sum);
        }
    }
    // Without other jobs (a tiny store) the read stream is appended on its own.
    while read_left > 0 {
        let count = LOAD_BATCH_EVENTS.min(read_left);
        let (sum, revision) = append_read_slice(&store, &read_stream, read_expected, count).await?;
        read_expected = revision;
        read_left -= count;
        appended += count;
        id_sum = id_sum.wrapping_add(sum);
    }
    Ok((appended, id_sum))
}

async fn append_read_slice(
    store: &EmbeddedStore,
    stream: &StreamName,
    expected: ExpectedRevision,
    count: u64,
) -> anyhow::Result<(u128, ExpectedRevision)> {
    let (batch, sum) = events(999_999, 0, usize::try_from(count)?);
    let result = store.append(stream, expected, batch).await?;
    Ok((sum, ExpectedRevision::Exact(result.revision)))
}

/// What the reopen child measured.
#[derive(Debug)]
pub struct Reopened {
    /// Opening the store alone.
    pub open: Duration,
    /// Open, first read and first append.
    pub total: Duration,
    /// The id of the event the first append wrote.
    pub id_sum: u128,
}

/// Opens the store in `dir` (after a crash: the loading process was killed), reads the last
/// event of [`READ_STREAM`] and appends one event to [`REOPEN_STREAM`], timing it all.
pub async fn reopen(dir: &Path) -> anyhow::Result<(EmbeddedStore, Reopened)> {
    let start = Instant::now();
    let store = EmbeddedStore::open(dir)
        .with_context(|| format!("cannot reopen the store in {}", dir.display()))?;
    let open = start.elapsed();
    let read_stream = StreamName::new(READ_STREAM)?;
    let last = store
        .read_stream(&read_stream, ReadStreamOptions::backwards().limit(1))
        .await?;
    if last.first().map(|event| event.revision) != Some(READ_STREAM_EVENTS - 1) {
        bail!("after the reopen, {READ_STREAM} does not end at its 10,000th event");
    }
    let (batch, id_sum) = events(0, 0, 1);
    store
        .append(
            &StreamName::new(REOPEN_STREAM)?,
            ExpectedRevision::NoStream,
            batch,
        )
        .await?;
    let total = start.elapsed();
    Ok((
        store,
        Reopened {
            open,
            total,
            id_sum,
        },
    ))
}

/// What reading the whole log found.
#[derive(Debug)]
pub struct ReadAll {
    /// Events read.
    pub events: u64,
    /// The wrapping sum of their ids: the checksum the bench prints and checks.
    pub id_sum: u128,
    /// How long it took.
    pub elapsed: Duration,
}

/// Reads the whole log forwards through [`EventStore::read_all`], a page at a time, touching
/// every decoded event (its id, and its data's length) so none of the work can be skipped.
pub async fn read_all(store: &dyn EventStore) -> anyhow::Result<ReadAll> {
    let start = Instant::now();
    let mut from = AllStart::Start;
    let mut events = 0u64;
    let mut id_sum = 0u128;
    let mut data_bytes = 0u64;
    loop {
        let mut options = ReadAllOptions::forwards().limit(READ_ALL_PAGE_EVENTS);
        options.from = from;
        let slice = store.read_all(options).await?;
        for event in &slice.events {
            events += 1;
            id_sum = id_sum.wrapping_add(event.id.0.as_u128());
            data_bytes += event.data.len() as u64;
        }
        if slice.end_of_log {
            break;
        }
        from = AllStart::Position(Position(slice.scanned_to.0 + 1));
    }
    let elapsed = start.elapsed();
    // Every event of the bench carries a payload; an empty one would mean a decoding slip.
    if data_bytes < events {
        bail!("read_all returned events without data");
    }
    Ok(ReadAll {
        events,
        id_sum,
        elapsed,
    })
}

/// Reads [`READ_STREAM`] whole, `times` times; returns each read's duration.
pub async fn read_stream_10k(
    store: &dyn EventStore,
    times: usize,
) -> anyhow::Result<Vec<Duration>> {
    let stream = StreamName::new(READ_STREAM)?;
    let mut durations = Vec::with_capacity(times);
    for _ in 0..times {
        let start = Instant::now();
        let events = store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await?;
        durations.push(start.elapsed());
        if events.len() as u64 != READ_STREAM_EVENTS {
            bail!(
                "{READ_STREAM} has {} events instead of {READ_STREAM_EVENTS}",
                events.len()
            );
        }
    }
    Ok(durations)
}
