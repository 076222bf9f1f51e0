//! The engine: one writer thread that commits appends in groups, and readers that see only
//! durable positions.
//!
//! Appends travel over a channel to the writer thread. The writer drains every request that is
//! waiting, decides each one against the stream state (on disk plus what earlier requests of
//! the same group wrote), encodes the accepted ones as frames into one buffer, writes it with
//! one `pwrite` and makes it durable with one `fdatasync`, and only then updates the in-memory
//! index, publishes the new durable position and answers every request of the group. Readers
//! look only at the index, which holds durable events only.
//!
//! If a write or fsync fails, the writer truncates what it may have written, answers the whole
//! group with the error, and refuses every later append until the store is reopened: after a
//! failed fsync the kernel may have dropped the dirty pages, so retrying could acknowledge data
//! that is not on disk.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};

use factum_core::rules::{
    self, AppendPlan, IdCheckOutcome, STREAM_DELETED_EVENT_TYPE, StoredId, StreamState,
};
use factum_core::{
    AppendResult, CONTENT_TYPE_JSON, DeleteResult, Error, EventId, ExpectedRevision,
    METADATA_EVENT_TYPE, Position, ProposedEvent, RecordedEvent, StreamMetadata, StreamName,
    Timestamp,
};
use tokio::sync::{oneshot, watch};

use crate::format::{EventToWrite, FrameHead, SEGMENT_HEADER_LEN, SegmentHeader, encode_frame};
use crate::index::{ActiveIndex, IndexEntry, SealedIndex, write_index};
use crate::segment::{SealedSegment, index_file_name, read_frame_events, segment_file_name};
use crate::stats::EngineStats;
use crate::storage::{Storage, StorageFile};

/// The most requests one group commit takes.
const GROUP_REQUESTS_MAX: usize = 4096;
/// The most bytes one group commit writes (a single larger append still goes alone).
const GROUP_BYTES_MAX: usize = 32 * 1024 * 1024;
/// How long the writer polls for the next command before it sleeps.
const WRITER_POLL: std::time::Duration = std::time::Duration::from_micros(100);
/// The most stream states the writer keeps between groups; looking one up again costs a few
/// index reads.
const STREAM_CACHE_MAX: usize = 65_536;

/// What the writer is asked to do.
pub enum Command {
    /// Append validated events.
    Append {
        /// The stream.
        stream: StreamName,
        /// The expectation to check.
        expected: ExpectedRevision,
        /// The events, already validated.
        events: Vec<ProposedEvent>,
        /// Where the answer goes, after the fsync that covers it.
        reply: oneshot::Sender<Result<AppendResult, Error>>,
    },
    /// Soft-delete or tombstone a stream.
    Delete {
        /// The stream.
        stream: StreamName,
        /// The expectation to check.
        expected: ExpectedRevision,
        /// A tombstone (final) rather than a soft delete.
        tombstone: bool,
        /// Where the answer goes, after the fsync that covers it.
        reply: oneshot::Sender<Result<DeleteResult, Error>>,
    },
}

/// The open segment: the only file that grows.
pub struct ActiveSegment {
    /// The segment's number.
    pub number: u64,
    /// The position of its first event.
    pub first_position: u64,
    /// The file.
    pub file: Arc<dyn StorageFile>,
    /// The length of its durable part: header and whole, synced frames.
    pub len: u64,
    /// The index of its durable events.
    pub index: ActiveIndex,
}

/// The segments, as readers see them: durable frames only.
pub struct Segments {
    /// Full segments, oldest first.
    pub sealed: Vec<Arc<SealedSegment>>,
    /// The open segment.
    pub active: ActiveSegment,
}

/// State the writer thread and readers share.
pub struct Shared {
    /// The directory.
    pub storage: Arc<dyn Storage>,
    /// The segments.
    pub segments: RwLock<Segments>,
    /// Why appends are refused, once a write or fsync failed.
    pub failure: Mutex<Option<String>>,
    /// The head, published after every group commit.
    pub head: watch::Sender<Position>,
    /// How many `fdatasync` calls the engine made (for benchmarks).
    pub fsync_count: AtomicU64,
    /// What the writer measures: fsync latency and group sizes (for monitoring).
    pub stats: Arc<EngineStats>,
    /// The size at which the open segment is sealed and a new one started.
    pub segment_size_bytes_max: u64,
}

/// What the writer knows of a stream: its durable state plus this group's pending writes.
#[derive(Debug, Clone, Default)]
pub struct StreamInfo {
    /// The last revision ever written.
    pub last_revision: Option<u64>,
    /// Whether its last event is a tombstone marker.
    pub tombstoned: bool,
    /// Its metadata (default for metadata streams).
    pub metadata: StreamMetadata,
}

/// The revision → location entries of a stream, across segments.
pub struct Located {
    /// The segment file holding each entry's frame.
    pub file: Arc<dyn StorageFile>,
    /// The entry.
    pub entry: IndexEntry,
}

impl Shared {
    fn segments(&self) -> std::sync::RwLockReadGuard<'_, Segments> {
        self.segments.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The durable head position.
    pub fn head(&self) -> Position {
        *self.head.borrow()
    }

    /// The durable entries of `stream` whose revisions are in `revisions`, by revision: walks
    /// segments newest first and stops once it is below the range.
    pub fn locate_range(
        &self,
        stream: &StreamName,
        revisions: std::ops::Range<u64>,
    ) -> Result<Vec<Located>, Error> {
        let (sealed, mut located): (Vec<Arc<SealedSegment>>, Vec<Located>) = {
            let segments = self.segments();
            let active = segments
                .active
                .index
                .streams
                .get(stream)
                .map(|entries| {
                    entries
                        .iter()
                        .filter(|entry| revisions.contains(&entry.revision))
                        .map(|entry| Located {
                            file: segments.active.file.clone(),
                            entry: *entry,
                        })
                        .collect()
                })
                .unwrap_or_default();
            (segments.sealed.clone(), active)
        };
        let reached_start = |located: &[Located]| {
            located
                .first()
                .is_some_and(|first| first.entry.revision <= revisions.start)
        };
        for segment in sealed.iter().rev() {
            if reached_start(&located) {
                break;
            }
            let entries = segment.index.entries(stream)?;
            if entries
                .first()
                .is_some_and(|first| first.revision >= revisions.end)
            {
                continue;
            }
            let older: Vec<Located> = entries
                .into_iter()
                .filter(|entry| revisions.contains(&entry.revision))
                .map(|entry| Located {
                    file: segment.file.clone(),
                    entry,
                })
                .collect();
            located.splice(0..0, older);
        }
        Ok(located)
    }

    /// The last durable entry of `stream`, with its segment file: newest segment first.
    pub fn last_located(&self, stream: &StreamName) -> Result<Option<Located>, Error> {
        let sealed = {
            let segments = self.segments();
            if let Some(entry) = segments
                .active
                .index
                .streams
                .get(stream)
                .and_then(|entries| entries.last())
            {
                return Ok(Some(Located {
                    file: segments.active.file.clone(),
                    entry: *entry,
                }));
            }
            segments.sealed.clone()
        };
        for segment in sealed.iter().rev() {
            if let Some(entry) = segment.index.last_entry(stream)? {
                return Ok(Some(Located {
                    file: segment.file.clone(),
                    entry,
                }));
            }
        }
        Ok(None)
    }

    /// Reads the event an entry points to.
    pub fn read_event(&self, located: &Located) -> Result<RecordedEvent, Error> {
        let events =
            read_frame_events(located.file.as_ref(), u64::from(located.entry.frame_offset))?;
        pick_event(events, located.entry)
    }

    /// The durable state of a stream: last revision, tombstone, metadata.
    pub fn stream_info(&self, stream: &StreamName) -> Result<StreamInfo, Error> {
        let last = self.last_located(stream)?;
        let metadata = match stream.metadata_stream() {
            None => StreamMetadata::default(),
            Some(metadata_stream) => match self.last_located(&metadata_stream)? {
                None => StreamMetadata::default(),
                Some(located) => StreamMetadata::from_json(&self.read_event(&located)?.data)?,
            },
        };
        Ok(StreamInfo {
            last_revision: last.as_ref().map(|located| located.entry.revision),
            tombstoned: last.is_some_and(|located| located.entry.tombstone),
            metadata,
        })
    }

    /// The rules' view of a stream (a metadata stream takes its tombstone from its stream).
    pub fn stream_state(&self, stream: &StreamName) -> Result<(StreamState, StreamInfo), Error> {
        let info = self.stream_info(stream)?;
        let tombstoned = match stream.metadata_of() {
            Some(described) => self.stream_info(&described)?.tombstoned,
            None => info.tombstoned,
        };
        Ok((
            StreamState {
                last_revision: info.last_revision,
                truncate_before: info.metadata.truncate_before,
                tombstoned,
            },
            info,
        ))
    }
}

/// The event of `events` (one frame's) that `entry` points to.
pub fn pick_event(events: Vec<RecordedEvent>, entry: IndexEntry) -> Result<RecordedEvent, Error> {
    let event = events
        .into_iter()
        .find(|event| event.position.0 == entry.position)
        .ok_or_else(|| crate::format::corrupt("index points to a frame without the event"))?;
    if event.revision != entry.revision {
        return Err(crate::format::corrupt(
            "index and frame disagree on a revision",
        ));
    }
    Ok(event)
}

/// The writer and the queue of commands waiting for it. The writer thread commits what the
/// queue holds; an appender on a multi-threaded runtime that finds the writer idle commits its
/// own command (and whatever else is queued) on its own thread instead, which saves the two
/// thread wake-ups of a round trip through the writer thread.
pub struct Committer {
    writer: Mutex<Writer>,
    queue: Mutex<Queue>,
    /// Rung when a command is queued for the writer thread, or the queue closes.
    bell: Condvar,
}

#[derive(Default)]
struct Queue {
    commands: VecDeque<Command>,
    closed: bool,
}

impl Committer {
    /// A committer for the store `shared`.
    pub fn new(shared: Arc<Shared>) -> Committer {
        Committer {
            writer: Mutex::new(Writer::new(shared)),
            queue: Mutex::new(Queue::default()),
            bell: Condvar::new(),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a command for the writer thread; gives it back if the store is closing.
    pub fn submit(&self, command: Command) -> Result<(), Command> {
        let mut queue = self.queue();
        if queue.closed {
            return Err(command);
        }
        queue.commands.push_back(command);
        drop(queue);
        self.bell.notify_one();
        Ok(())
    }

    /// Commits `command` on the calling thread if the writer is idle, with everything queued
    /// before it; gives it back if the writer is busy or the store is closing. Blocks for the
    /// write and its fsync: call it where blocking is allowed.
    pub fn commit_if_idle(&self, command: Command) -> Result<(), Command> {
        let Ok(mut writer) = self.writer.try_lock() else {
            return Err(command);
        };
        let group = {
            let mut queue = self.queue();
            if queue.closed {
                return Err(command);
            }
            queue.commands.push_back(command);
            take_group(&mut queue)
        };
        writer.commit_group(group);
        Ok(())
    }

    /// Whether the writer is idle right now (a hint: it may be taken a moment later).
    pub fn is_idle(&self) -> bool {
        self.writer.try_lock().is_ok()
    }

    /// Refuses new commands; the writer thread finishes the queued ones and stops.
    pub fn close(&self) {
        self.queue().closed = true;
        self.bell.notify_all();
    }

    /// The writer thread's loop: commits queued commands in groups until closed and drained.
    pub fn run_thread(&self) {
        // Bounded by `close`: it ends when the store is dropped and the queue is drained.
        while self.wait_for_commands() {
            let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            // Taken under the writer lock, so groups commit in the order they were queued.
            let group = take_group(&mut self.queue());
            if !group.is_empty() {
                writer.commit_group(group);
            }
        }
    }

    /// Waits until a command is queued (true), or the queue is closed and empty (false). A
    /// writer that just answered is likely to be sent the next command within microseconds (a
    /// client appending in a loop), so it polls briefly before sleeping: waking a sleeping
    /// thread costs tens of microseconds, a fifth of an fsync on a fast disk.
    fn wait_for_commands(&self) -> bool {
        let polling_until = std::time::Instant::now() + WRITER_POLL;
        // Bounded by the deadline.
        while std::time::Instant::now() < polling_until {
            let queue = self.queue();
            if !queue.commands.is_empty() {
                return true;
            }
            if queue.closed {
                return false;
            }
            drop(queue);
            std::thread::yield_now();
        }
        let mut queue = self.queue();
        // Bounded: every wake-up is a queued command or the close.
        loop {
            if !queue.commands.is_empty() {
                return true;
            }
            if queue.closed {
                return false;
            }
            queue = self
                .bell
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Takes up to a group's worth of queued commands, oldest first.
fn take_group(queue: &mut Queue) -> Vec<Command> {
    let mut group = Vec::new();
    let mut bytes = 0usize;
    while group.len() < GROUP_REQUESTS_MAX && bytes < GROUP_BYTES_MAX {
        let Some(command) = queue.commands.pop_front() else {
            break;
        };
        bytes += command_size(&command);
        group.push(command);
    }
    group
}

fn command_size(command: &Command) -> usize {
    match command {
        Command::Append { events, .. } => events.iter().map(ProposedEvent::size_bytes).sum(),
        Command::Delete { .. } => 256,
    }
}

/// A decided request waiting for its group's fsync.
enum Pending {
    Append(
        oneshot::Sender<Result<AppendResult, Error>>,
        Result<AppendResult, Error>,
    ),
    Delete(
        oneshot::Sender<Result<DeleteResult, Error>>,
        Result<DeleteResult, Error>,
    ),
}

/// One frame of the group: where it goes and what the index learns from it.
struct PendingFrame {
    stream: StreamName,
    first_position: u64,
    first_revision: u64,
    offset: u64,
    tombstones: Vec<bool>,
    ids: Vec<EventId>,
}

struct Writer {
    shared: Arc<Shared>,
    /// The recorded time of the newest event, so recorded times never decrease.
    last_recorded_at: Timestamp,
    /// The group being built.
    buffer: Vec<u8>,
    frames: Vec<PendingFrame>,
    pending: Vec<Pending>,
    /// Stream states: durable ones the writer has looked up (it is the only writer, so they
    /// stay true) plus the effect of this group's frames. Cleared when a group fails, and when
    /// it grows past `STREAM_CACHE_MAX` streams.
    overlay: HashMap<StreamName, StreamInfo>,
}

impl Writer {
    fn new(shared: Arc<Shared>) -> Writer {
        let last_recorded_at = last_recorded_at(&shared).unwrap_or(Timestamp::EPOCH);
        Writer {
            shared,
            last_recorded_at,
            buffer: Vec::new(),
            frames: Vec::new(),
            pending: Vec::new(),
            overlay: HashMap::new(),
        }
    }

    fn failure(&self) -> Option<String> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn commit_group(&mut self, group: Vec<Command>) {
        for command in group {
            if let Some(reason) = self.failure() {
                reply_unavailable(command, &reason);
                continue;
            }
            match command {
                Command::Append {
                    stream,
                    expected,
                    events,
                    reply,
                } => {
                    let result = self.decide_append(&stream, expected, events);
                    self.pending.push(Pending::Append(reply, result));
                }
                Command::Delete {
                    stream,
                    expected,
                    tombstone,
                    reply,
                } => {
                    let result = self.decide_delete(&stream, expected, tombstone);
                    self.pending.push(Pending::Delete(reply, result));
                }
            }
        }
        self.flush();
    }

    fn info(&mut self, stream: &StreamName) -> Result<StreamInfo, Error> {
        if let Some(info) = self.overlay.get(stream) {
            return Ok(info.clone());
        }
        let info = self.shared.stream_info(stream)?;
        self.overlay.insert(stream.clone(), info.clone());
        Ok(info)
    }

    fn state(&mut self, stream: &StreamName) -> Result<StreamState, Error> {
        let info = self.info(stream)?;
        let tombstoned = match stream.metadata_of() {
            Some(described) => self.info(&described)?.tombstoned,
            None => info.tombstoned,
        };
        Ok(StreamState {
            last_revision: info.last_revision,
            truncate_before: info.metadata.truncate_before,
            tombstoned,
        })
    }

    /// The ids stored at `revisions` of `stream`: pending ones from this group, the rest from
    /// disk (reading each frame once).
    fn stored_ids(
        &self,
        stream: &StreamName,
        revisions: std::ops::Range<u64>,
    ) -> Result<Vec<StoredId>, Error> {
        let mut stored = Vec::new();
        let durable = self.shared.locate_range(stream, revisions.clone())?;
        let mut frame: Option<(*const (), u32, Vec<RecordedEvent>)> = None;
        for located in &durable {
            let key = Arc::as_ptr(&located.file) as *const ();
            let cached = frame.as_ref().is_some_and(|(file, offset, _)| {
                *file == key && *offset == located.entry.frame_offset
            });
            if !cached {
                let events = read_frame_events(
                    located.file.as_ref(),
                    u64::from(located.entry.frame_offset),
                )?;
                frame = Some((key, located.entry.frame_offset, events));
            }
            let (_, _, events) = frame.as_ref().expect("just filled");
            let event = events
                .iter()
                .find(|event| event.position.0 == located.entry.position)
                .ok_or_else(|| {
                    crate::format::corrupt("index points to a frame without the event")
                })?;
            stored.push(StoredId {
                revision: located.entry.revision,
                id: event.id,
                position: event.position,
            });
        }
        for frame in self.frames.iter().filter(|frame| frame.stream == *stream) {
            for (index, id) in (0u64..).zip(&frame.ids) {
                let revision = frame.first_revision + index;
                if revisions.contains(&revision) {
                    stored.push(StoredId {
                        revision,
                        id: *id,
                        position: Position(frame.first_position + index),
                    });
                }
            }
        }
        Ok(stored)
    }

    fn decide_append(
        &mut self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult, Error> {
        let state = self.state(stream)?;
        let first_revision =
            match rules::plan_append(stream, &state, expected, events.len() as u64)? {
                AppendPlan::Write { first_revision } => first_revision,
                AppendPlan::CheckIds(check) => {
                    let stored = self.stored_ids(stream, check.revisions())?;
                    let proposed: Vec<EventId> = events.iter().map(|event| event.id).collect();
                    match check.resolve(&proposed, &stored)? {
                        IdCheckOutcome::Write { first_revision } => first_revision,
                        IdCheckOutcome::AlreadyWritten(result) => return Ok(result),
                    }
                }
            };
        self.write_frame(stream, first_revision, events)
    }

    fn decide_delete(
        &mut self,
        stream: &StreamName,
        expected: ExpectedRevision,
        tombstone: bool,
    ) -> Result<DeleteResult, Error> {
        let state = self.state(stream)?;
        rules::plan_delete(stream, &state, expected, tombstone)?;
        let result = if tombstone {
            let marker =
                ProposedEvent::new(STREAM_DELETED_EVENT_TYPE, CONTENT_TYPE_JSON, &b"{}"[..]);
            self.write_frame(stream, state.next_revision(), vec![marker])?
        } else {
            let last_revision = state
                .last_revision
                .expect("plan_delete refuses soft deletes of never-written streams");
            let metadata = rules::soft_delete_metadata(&self.info(stream)?.metadata, last_revision);
            let metadata_stream = stream
                .metadata_stream()
                .expect("plan_delete refuses metadata streams");
            let next_revision = self.state(&metadata_stream)?.next_revision();
            let event =
                ProposedEvent::new(METADATA_EVENT_TYPE, CONTENT_TYPE_JSON, metadata.to_json());
            self.write_frame(&metadata_stream, next_revision, vec![event])?
        };
        Ok(DeleteResult {
            position: result.position,
        })
    }

    /// Encodes a frame into the group's buffer and records its effect on the overlay.
    fn write_frame(
        &mut self,
        stream: &StreamName,
        first_revision: u64,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult, Error> {
        let frame_len_estimate: usize = events
            .iter()
            .map(|event| event.size_bytes() + 64)
            .sum::<usize>()
            + 64;
        let segment_len = self.segment_len();
        let segment_used = segment_len + self.buffer.len() as u64;
        if segment_used > SEGMENT_HEADER_LEN as u64
            && segment_used + frame_len_estimate as u64 > self.shared.segment_size_bytes_max
        {
            // The segment is full: commit what the group has so far, then start a new segment.
            self.flush();
            if let Some(reason) = self.failure() {
                return Err(Error::Unavailable { reason });
            }
            self.roll_segment()?;
        }
        let segment_len = self.segment_len();
        let first_position = self.next_position();
        let count = events.len() as u64;
        if first_position + count - 1 > Position::MAX.0 {
            return Err(Error::Unavailable {
                reason: "the global log is full (2^63 - 1 positions)".into(),
            });
        }
        let recorded_at = Timestamp::now().max(self.last_recorded_at);
        self.last_recorded_at = recorded_at;
        let tombstones: Vec<bool> = events
            .iter()
            .map(|event| event.event_type == STREAM_DELETED_EVENT_TYPE)
            .collect();
        let ids: Vec<EventId> = events.iter().map(|event| event.id).collect();
        let newest_metadata = events
            .iter()
            .rev()
            .find(|event| stream.is_metadata() && event.event_type == METADATA_EVENT_TYPE)
            .map(|event| event.data.clone());
        let head = FrameHead {
            stream: stream.clone(),
            first_position,
            first_revision,
            recorded_at,
            event_count: u32::try_from(events.len())
                .expect("appends are limited to 100 000 events"),
        };
        let to_write: Vec<EventToWrite> = events
            .into_iter()
            .map(|event| EventToWrite {
                id: event.id,
                event_type: event.event_type,
                schema_version: event.schema_version,
                content_type: event.content_type,
                data: event.data,
                metadata: event.metadata,
                tags: event.tags,
            })
            .collect();
        let offset = segment_len + self.buffer.len() as u64;
        encode_frame(&mut self.buffer, &head, &to_write);
        let last_revision = first_revision + count - 1;
        let tombstoned = tombstones.last().copied().unwrap_or(false);
        self.frames.push(PendingFrame {
            stream: stream.clone(),
            first_position,
            first_revision,
            offset,
            tombstones,
            ids,
        });
        let info = self.overlay.entry(stream.clone()).or_default();
        info.last_revision = Some(last_revision);
        info.tombstoned = tombstoned;
        if let (Some(json), Some(described)) = (newest_metadata, stream.metadata_of()) {
            let metadata = StreamMetadata::from_json(&json)?;
            // The described stream's other fields come from disk if the group has not seen it.
            let mut described_info = self.info(&described)?;
            described_info.metadata = metadata;
            self.overlay.insert(described, described_info);
        }
        Ok(AppendResult {
            position: Position(first_position + count - 1),
            revision: last_revision,
        })
    }

    fn segment_len(&self) -> u64 {
        self.shared
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .active
            .len
    }

    fn next_position(&self) -> u64 {
        match self.frames.last() {
            Some(frame) => frame.first_position + frame.ids.len() as u64,
            None => self.shared.head().0 + 1,
        }
    }

    /// Writes and syncs the group's buffer, then publishes it and answers its requests.
    fn flush(&mut self) {
        let outcome = if self.buffer.is_empty() {
            Ok(())
        } else {
            self.write_and_sync()
        };
        if let Err(error) = outcome {
            let reason = format!("a write or fsync failed ({error}); reopen the store");
            *self
                .shared
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(reason.clone());
            for pending in self.pending.drain(..) {
                // Decisions made against this group's frames may rest on writes that are not
                // durable: nobody gets an answer that depends on them.
                match pending {
                    Pending::Append(reply, _) => {
                        let _ = reply.send(Err(Error::Unavailable {
                            reason: reason.clone(),
                        }));
                    }
                    Pending::Delete(reply, _) => {
                        let _ = reply.send(Err(Error::Unavailable {
                            reason: reason.clone(),
                        }));
                    }
                }
            }
            self.buffer.clear();
            self.frames.clear();
            self.overlay.clear();
            return;
        }
        if !self.buffer.is_empty() {
            let events = self.frames.iter().map(|frame| frame.ids.len()).sum();
            self.shared.stats.record_group(self.frames.len(), events);
        }
        self.publish();
        for pending in self.pending.drain(..) {
            match pending {
                Pending::Append(reply, result) => {
                    let _ = reply.send(result);
                }
                Pending::Delete(reply, result) => {
                    let _ = reply.send(result);
                }
            }
        }
        if self.overlay.len() > STREAM_CACHE_MAX {
            self.overlay.clear();
        }
    }

    fn write_and_sync(&mut self) -> Result<(), Error> {
        let (file, offset) = {
            let segments = self.shared.segments();
            (segments.active.file.clone(), segments.active.len)
        };
        let written = file.write_all_at(&self.buffer, offset).and_then(|()| {
            self.shared.fsync_count.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let synced = file.sync_data();
            self.shared.stats.record_fsync(started.elapsed());
            synced
        });
        if let Err(error) = written {
            // Roll the partial tail back so a reopen finds the file as it was, and try to make
            // the cut durable; if either fails, recovery truncates the torn tail on open (and
            // syncs what it keeps before serving it).
            if file.set_len(offset).is_ok() {
                let _ = file.sync_data();
            }
            return Err(Error::Io(error));
        }
        Ok(())
    }

    /// Makes the synced frames visible: index, length, head.
    fn publish(&mut self) {
        if self.frames.is_empty() {
            return;
        }
        let last_frame = self.frames.last().expect("checked above");
        let head = Position(last_frame.first_position + last_frame.ids.len() as u64 - 1);
        {
            let mut segments = self
                .shared
                .segments
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let active = &mut segments.active;
            for frame in self.frames.drain(..) {
                active.index.add_frame(
                    &frame.stream,
                    frame.first_position,
                    frame.first_revision,
                    frame.offset,
                    frame.tombstones.into_iter(),
                );
            }
            active.len += self.buffer.len() as u64;
        }
        self.buffer.clear();
        self.shared.head.send_replace(head);
    }

    /// Seals the open segment (its index written durably) and starts the next one.
    fn roll_segment(&mut self) -> Result<(), Error> {
        let result = self.try_roll_segment();
        if let Err(error) = &result {
            let reason = format!("starting a new segment failed ({error}); reopen the store");
            *self
                .shared
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(reason);
        }
        result
    }

    fn try_roll_segment(&mut self) -> Result<(), Error> {
        let storage = self.shared.storage.clone();
        let (number, first_position, len, index) = {
            let segments = self.shared.segments();
            let active = &segments.active;
            (
                active.number,
                active.first_position,
                active.len,
                active.index.clone(),
            )
        };
        let last_position = self.shared.head().0;
        write_index(
            storage.as_ref(),
            &index_file_name(number),
            number,
            first_position,
            last_position,
            len,
            &index,
        )?;
        let sealed_index = SealedIndex::open(storage.open(&index_file_name(number), false)?)?;
        let next = create_segment(storage.as_ref(), number + 1, last_position + 1)?;
        let mut segments = self
            .shared
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut segments.active, next);
        segments
            .sealed
            .push(Arc::new(SealedSegment::new(old.file, sealed_index)));
        Ok(())
    }
}

fn reply_unavailable(command: Command, reason: &str) {
    let error = || Error::Unavailable {
        reason: reason.to_owned(),
    };
    match command {
        Command::Append { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Command::Delete { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
    }
}

/// Creates segment `number` starting at `first_position`: header written and synced, then the
/// directory synced, so the segment exists durably before any frame goes in.
pub fn create_segment(
    storage: &dyn Storage,
    number: u64,
    first_position: u64,
) -> Result<ActiveSegment, Error> {
    let name = segment_file_name(number);
    let file = storage.open(&name, true)?;
    file.set_len(0)?;
    let header = SegmentHeader {
        segment_number: number,
        first_position,
    };
    file.write_all_at(&header.encode(), 0)?;
    file.sync_data()?;
    storage.sync_dir()?;
    Ok(ActiveSegment {
        number,
        first_position,
        file,
        len: SEGMENT_HEADER_LEN as u64,
        index: ActiveIndex::default(),
    })
}

/// The recorded time of the newest event, read from its frame.
fn last_recorded_at(shared: &Shared) -> Option<Timestamp> {
    let (file, offset) = {
        let segments = shared.segments();
        match segments.active.index.last_frame {
            Some((_, offset)) => (segments.active.file.clone(), offset),
            None => {
                let sealed = segments.sealed.last()?;
                let map = sealed.frame_map().ok()?;
                let (_, offset) = *map.last()?;
                // The last frame is at or after the last anchor; scanning from it finds it.
                let mut cursor = crate::segment::FrameCursor::new(
                    sealed.file.as_ref(),
                    offset,
                    sealed.index.segment_len,
                );
                let mut last = None;
                while let Ok(Some((_, frame))) = cursor.next_frame() {
                    last = crate::format::decode_frame_head(frame)
                        .ok()
                        .map(|head| head.recorded_at);
                }
                return last;
            }
        }
    };
    let events = read_frame_events(file.as_ref(), offset).ok()?;
    events.last().map(|event| event.recorded_at)
}
