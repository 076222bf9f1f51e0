//! `EmbeddedStore`: opening (with recovery) and the `EventStore` implementation.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use factum_core::{
    AllSlice, AllStart, AppendResult, DeleteResult, Direction, Error, EventStore, ExpectedRevision,
    Limits, Position, ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, Result,
    StreamMetadata, StreamName, Timestamp, rules,
};
use tokio::sync::{oneshot, watch};

use crate::engine::{
    ActiveSegment, Command, Committer, Segments, Shared, create_segment, pick_event,
};
use crate::format::{FrameDecoder, SEGMENT_HEADER_LEN, corrupt};
use crate::index::{ActiveIndex, SealedIndex, write_index};
use crate::segment::{
    FrameCursor, SealedSegment, index_file_name, parse_file_name, read_frame_events, scan_segment,
    segment_file_name,
};
use crate::stats::EngineStats;
use crate::storage::{DirStorage, Storage, StorageFile};

/// How an embedded store is configured.
#[derive(Debug, Clone)]
pub struct Options {
    /// The input limits.
    pub limits: Limits,
    /// When the open segment reaches this size it is sealed and a new one starts. Default
    /// 64 MiB; at most 2 GiB (frame offsets are 32-bit).
    pub segment_size_bytes_max: u64,
    /// Whether an append that finds the writer idle commits on the caller's own thread, through
    /// `tokio::task::block_in_place`, instead of a round trip through the writer thread: about
    /// a fifth less latency for a lone writer on a fast disk. Enable it only where every append
    /// runs on a worker of a multi-threaded tokio runtime (a server, say): `block_in_place` is
    /// refused inside a `LocalSet`, where the append then falls back to the writer thread after
    /// the runtime has printed a panic message. Appends from other runtimes always use the
    /// writer thread. Default off.
    pub commit_on_caller_thread: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: Limits::default(),
            segment_size_bytes_max: 64 * 1024 * 1024,
            commit_on_caller_thread: false,
        }
    }
}

/// The embedded event store: one data directory, one process.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    committer: Arc<Committer>,
    writer: Mutex<Option<JoinHandle<()>>>,
    limits: Limits,
    /// See [`Options::commit_on_caller_thread`].
    commit_on_caller_thread: bool,
    /// Held for the store's lifetime: the exclusive lock on the directory.
    _lock: Option<File>,
}

const LOCK_FILE: &str = "LOCK";

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<EmbeddedStore> {
        EmbeddedStore::open_with(dir, Options::default())
    }

    /// Opens (or creates) the store in `dir`. Takes an exclusive lock on the directory: a
    /// second process gets [`Error::Unavailable`] naming the process that holds it.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<EmbeddedStore> {
        let storage = DirStorage::new(dir.as_ref())?;
        let lock = lock_directory(dir.as_ref())?;
        let mut store = EmbeddedStore::open_on(Arc::new(storage), options)?;
        store._lock = Some(lock);
        Ok(store)
    }

    /// Opens the store on any [`Storage`] (tests use a simulated one). Recovers from a crash:
    /// a torn tail of the open segment is truncated; a damaged full segment is an error.
    pub fn open_on(storage: Arc<dyn Storage>, options: Options) -> Result<EmbeddedStore> {
        assert!(
            options.segment_size_bytes_max <= 2 * 1024 * 1024 * 1024,
            "segments are limited to 2 GiB"
        );
        let segments = recover(storage.as_ref())?;
        let head = segments
            .active
            .index
            .last_frame
            .map(|_| last_position(&segments.active))
            .unwrap_or(segments.active.first_position - 1);
        let (head_sender, _) = watch::channel(Position(head));
        let shared = Arc::new(Shared {
            storage,
            segments: RwLock::new(segments),
            failure: Mutex::new(None),
            head: head_sender,
            fsync_count: Default::default(),
            stats: Default::default(),
            segment_size_bytes_max: options.segment_size_bytes_max,
        });
        let committer = Arc::new(Committer::new(shared.clone()));
        let thread_committer = committer.clone();
        let writer = std::thread::Builder::new()
            .name("factum-writer".into())
            .spawn(move || thread_committer.run_thread())?;
        Ok(EmbeddedStore {
            shared,
            committer,
            writer: Mutex::new(Some(writer)),
            limits: options.limits,
            commit_on_caller_thread: options.commit_on_caller_thread,
            _lock: None,
        })
    }

    /// How many `fdatasync` calls the engine has made (group commit shares one per group).
    pub fn fsync_count(&self) -> u64 {
        self.shared.fsync_count.load(Ordering::Relaxed)
    }

    /// What the writer thread measures as it commits: fsync latency, and the events and writes
    /// each fsync covers. Shared: the figures keep growing while the store runs.
    pub fn stats(&self) -> Arc<EngineStats> {
        self.shared.stats.clone()
    }

    /// Stops the writer after the appends already sent, and releases the directory.
    pub fn close(self) {
        drop(self);
    }

    async fn send<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        if let Some(reason) = self
            .shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Err(Error::Unavailable { reason });
        }
        let (reply, answer) = oneshot::channel();
        let mut command = Some(make(reply));
        // On a multi-threaded runtime an idle writer is used right here, without the round
        // trip through the writer thread; `block_in_place` lets the runtime move this worker's
        // other tasks elsewhere while this thread waits for the fsync. `block_in_place` refuses
        // (by panicking, before it runs anything) in the rare contexts where blocking is not
        // allowed; the command then simply goes to the writer thread.
        if self.commit_on_caller_thread && may_block_in_place() && self.committer.is_idle() {
            let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                tokio::task::block_in_place(|| {
                    let own = command.take().expect("taken once");
                    if let Err(returned) = self.committer.commit_if_idle(own) {
                        command = Some(returned);
                    }
                })
            }));
            if let Err(panic) = committed
                && command.is_none()
            {
                // The commit itself panicked: that is a bug, not a refusal to block.
                std::panic::resume_unwind(panic);
            }
        }
        let leftover = command;
        if let Some(command) = leftover
            && self.committer.submit(command).is_err()
        {
            return Err(Error::Unavailable {
                reason: "the store is closed".into(),
            });
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::Unavailable {
                reason: "the writer stopped before answering".into(),
            })
        })
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish the appends it has, then exit.
        self.committer.close();
        if let Some(writer) = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = writer.join();
        }
    }
}

fn last_position(active: &ActiveSegment) -> u64 {
    active
        .index
        .streams
        .values()
        .filter_map(|entries| entries.last())
        .map(|entry| entry.position)
        .max()
        .unwrap_or(active.first_position - 1)
}

/// Takes the exclusive lock on the data directory, writing our pid into the lock file.
fn lock_directory(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_owned()
            } else {
                format!("process {holder}")
            };
            return Err(Error::Unavailable {
                reason: format!(
                    "the data directory {} is in use by {who}; stop it, or talk to it through `factum serve`",
                    dir.display()
                ),
            });
        }
        Err(TryLockError::Error(error)) => return Err(Error::Io(error)),
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.sync_data()?;
    Ok(file)
}

/// Finds the segments, checks the full ones against their indexes (rebuilding from its segment
/// an index that is missing, or whose header is damaged or does not match the segment; damage
/// deeper in an index or a full segment is found when it is read, as `Corrupt`), and scans the
/// open one, truncating a torn tail and syncing what it keeps.
fn recover(storage: &dyn Storage) -> Result<Segments> {
    let mut found: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
    for name in storage.list()? {
        if name.ends_with(".tmp") {
            // A half-written index from a crash during sealing; the segment is the truth.
            storage.remove(&name)?;
            continue;
        }
        if let Some((number, is_index)) = parse_file_name(&name) {
            let slot = found.entry(number).or_default();
            if is_index {
                slot.1 = true
            } else {
                slot.0 = true
            }
        }
    }
    let numbers: Vec<u64> = found
        .iter()
        .filter(|(_, (log, _))| *log)
        .map(|(number, _)| *number)
        .collect();
    if numbers.is_empty() {
        let active = create_segment(storage, 1, 1)?;
        return Ok(Segments {
            sealed: Vec::new(),
            active,
        });
    }
    for pair in numbers.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(corrupt(format!("segment {} is missing", pair[0] + 1)));
        }
    }
    let (last, full) = numbers.split_last().expect("not empty");
    let mut sealed = Vec::with_capacity(full.len());
    let mut next_first_position = None;
    for number in full {
        let segment = open_sealed(storage, *number, found[number].1, next_first_position)?;
        next_first_position = Some(segment.index.last_position + 1);
        sealed.push(Arc::new(segment));
    }
    if found[last].1 {
        // The open segment's index from an interrupted seal describes a segment that will
        // still grow: drop it; it is written again when the segment fills.
        storage.remove(&index_file_name(*last))?;
        storage.sync_dir()?;
    }
    let active = open_active(storage, *last, next_first_position)?;
    Ok(Segments { sealed, active })
}

fn open_sealed(
    storage: &dyn Storage,
    number: u64,
    has_index: bool,
    first_position: Option<u64>,
) -> Result<SealedSegment> {
    let file = storage.open(&segment_file_name(number), false)?;
    let file_len = file.len()?;
    if has_index {
        let index = SealedIndex::open(storage.open(&index_file_name(number), false)?);
        if let Ok(index) = index {
            let fits = index.segment_number == number
                && index.segment_len == file_len
                && first_position.is_none_or(|first| first == index.first_position);
            if fits {
                return Ok(SealedSegment::new(file, index));
            }
        }
    }
    // Rebuild the index from the segment, which must be whole: only the open segment may
    // have a torn tail.
    let scanned = scan_segment(file.as_ref())?;
    if scanned.valid_len != file_len || scanned.frames.is_empty() {
        return Err(corrupt(format!(
            "full segment {number} is damaged at offset {} of {file_len}",
            scanned.valid_len
        )));
    }
    if first_position.is_some_and(|first| first != scanned.header.first_position) {
        return Err(corrupt(format!(
            "segment {number} does not continue the log"
        )));
    }
    let index = index_of(&scanned);
    let (head, _, _) = scanned.frames.last().expect("not empty");
    let last_position = head.first_position + u64::from(head.event_count) - 1;
    write_index(
        storage,
        &index_file_name(number),
        number,
        scanned.header.first_position,
        last_position,
        file_len,
        &index,
    )?;
    let index = SealedIndex::open(storage.open(&index_file_name(number), false)?)?;
    Ok(SealedSegment::new(file, index))
}

fn index_of(scanned: &crate::segment::ScannedSegment) -> ActiveIndex {
    let mut index = ActiveIndex::default();
    for (head, offset, tombstones) in &scanned.frames {
        index.add_frame(
            &head.stream,
            head.first_position,
            head.first_revision,
            *offset,
            tombstones.iter().copied(),
        );
    }
    index
}

fn open_active(
    storage: &dyn Storage,
    number: u64,
    first_position: Option<u64>,
) -> Result<ActiveSegment> {
    let file = storage.open(&segment_file_name(number), false)?;
    let file_len = file.len()?;
    if file_len <= SEGMENT_HEADER_LEN as u64 {
        let mut header = vec![0u8; file_len as usize];
        file.read_exact_at(&mut header, 0)?;
        if header.iter().all(|byte| *byte == 0)
            || crate::format::SegmentHeader::decode(&header).is_err()
        {
            // Created but its header never became durable: nothing was ever written to it.
            let first = match first_position {
                Some(first) => first,
                None if number == 1 => 1,
                None => {
                    return Err(corrupt(format!(
                        "segment {number} has no header and no predecessor"
                    )));
                }
            };
            return create_segment(storage, number, first);
        }
    }
    let scanned = scan_segment(file.as_ref())?;
    if first_position.is_some_and(|first| first != scanned.header.first_position) {
        return Err(corrupt(format!(
            "segment {number} does not continue the log"
        )));
    }
    if scanned.header.segment_number != number {
        return Err(corrupt(format!(
            "segment file {number} has number {} in its header",
            scanned.header.segment_number
        )));
    }
    if scanned.valid_len < file_len {
        // A torn tail: bytes of appends that were never acknowledged (their fsync had not
        // completed). Cut them off before anything new is written.
        file.set_len(scanned.valid_len)?;
    }
    // Always sync what recovery keeps: a process that died between its write and its fsync
    // leaves whole frames in the page cache only. Serving them before they are durable would
    // let a later power loss take back events readers already saw (and reuse their positions).
    file.sync_data()?;
    Ok(ActiveSegment {
        number,
        first_position: scanned.header.first_position,
        file,
        len: scanned.valid_len,
        index: index_of(&scanned),
    })
}

/// One segment as a reader sees it at one instant.
struct SegmentView {
    file: Arc<dyn StorageFile>,
    first_position: u64,
    /// Where its durable frames end.
    end: u64,
    anchors: Anchors,
}

enum Anchors {
    Sealed(Arc<SealedSegment>),
    Active(Vec<(u64, u64)>),
}

impl SegmentView {
    fn anchors(&self) -> Result<&[(u64, u64)]> {
        match &self.anchors {
            Anchors::Sealed(segment) => segment.frame_map(),
            Anchors::Active(anchors) => Ok(anchors),
        }
    }

    /// The frames of the anchor group `group`: decoded, in order.
    fn group_events(&self, group: usize, decoder: &mut FrameDecoder) -> Result<Vec<RecordedEvent>> {
        let anchors = self.anchors()?;
        let start = anchors[group].1;
        let end = anchors.get(group + 1).map_or(self.end, |anchor| anchor.1);
        let mut events = Vec::new();
        let mut cursor = FrameCursor::new(self.file.as_ref(), start, end);
        while let Some((_, frame)) = cursor.next_frame()? {
            events.extend(decoder.decode(frame)?);
        }
        Ok(events)
    }
}

impl EmbeddedStore {
    /// The segments and the head, consistent with each other.
    fn view(&self) -> (Vec<SegmentView>, u64) {
        // Read the head first: everything up to it is already in the index and the lengths.
        let head = self.shared.head().0;
        let segments = self
            .shared
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut views: Vec<SegmentView> = segments
            .sealed
            .iter()
            .map(|segment| SegmentView {
                file: segment.file.clone(),
                first_position: segment.index.first_position,
                end: segment.index.segment_len,
                anchors: Anchors::Sealed(segment.clone()),
            })
            .collect();
        let active = &segments.active;
        if active.index.last_frame.is_some() {
            views.push(SegmentView {
                file: active.file.clone(),
                first_position: active.first_position,
                end: active.len,
                anchors: Anchors::Active(active.index.anchors.clone()),
            });
        }
        (views, head)
    }

    fn metadata_of(&self, stream: &StreamName) -> Result<StreamMetadata> {
        let Some(metadata_stream) = stream.metadata_stream() else {
            return Ok(StreamMetadata::default());
        };
        match self.shared.last_located(&metadata_stream)? {
            None => Ok(StreamMetadata::default()),
            Some(located) => StreamMetadata::from_json(&self.shared.read_event(&located)?.data),
        }
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult> {
        rules::validate_append(stream, &events, &self.limits)?;
        let stream = stream.clone();
        self.send(|reply| Command::Append {
            stream,
            expected,
            events,
            reply,
        })
        .await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        options: ReadStreamOptions,
    ) -> Result<Vec<RecordedEvent>> {
        let last = self.shared.last_located(stream)?;
        let tombstoned = match stream.metadata_of() {
            Some(described) => self
                .shared
                .last_located(&described)?
                .is_some_and(|last| last.entry.tombstone),
            None => last.as_ref().is_some_and(|last| last.entry.tombstone),
        };
        let metadata = self.metadata_of(stream)?;
        let state = rules::StreamState {
            last_revision: last.map(|last| last.entry.revision),
            truncate_before: metadata.truncate_before,
            tombstoned,
        };
        let Some(plan) = rules::plan_stream_read(stream, &state, &metadata, &options)? else {
            return Ok(Vec::new());
        };
        let (mut low, mut high) = (plan.start.min(plan.end), plan.start.max(plan.end));
        // Without `$maxAge` every revision in range is returned, so only `limit` of them need
        // locating; with it, expired ones are skipped and the whole range may be needed.
        let applies_max_age = metadata.max_age.is_some() && !stream.is_metadata();
        if !applies_max_age {
            let span = options.limit.saturating_sub(1);
            match plan.direction {
                Direction::Forwards => high = high.min(low.saturating_add(span)),
                Direction::Backwards => low = low.max(high.saturating_sub(span)),
            }
        }
        let located = self.shared.locate_range(stream, low..high + 1)?;
        if located.len() as u64 != high - low + 1 {
            return Err(corrupt(format!(
                "index of stream {stream} misses revisions between {low} and {high}"
            )));
        }
        let now = Timestamp::now();
        let limit = usize::try_from(options.limit).unwrap_or(usize::MAX);
        let mut events = Vec::new();
        // The frame last read: consecutive revisions usually share one, and each of its events
        // is taken out once.
        let mut frame: Option<(*const (), u32, u64, Vec<Option<RecordedEvent>>)> = None;
        for revision in plan.revisions() {
            if events.len() >= limit || revision < low || revision > high {
                break;
            }
            let item = &located[(revision - low) as usize];
            let key = Arc::as_ptr(&item.file) as *const ();
            let cached = frame.as_ref().is_some_and(|(file, offset, _, _)| {
                *file == key && *offset == item.entry.frame_offset
            });
            if !cached {
                let decoded =
                    read_frame_events(item.file.as_ref(), u64::from(item.entry.frame_offset))?;
                let first_position = decoded.first().map_or(0, |event| event.position.0);
                frame = Some((
                    key,
                    item.entry.frame_offset,
                    first_position,
                    decoded.into_iter().map(Some).collect(),
                ));
            }
            let (_, _, first_position, decoded) = frame.as_mut().expect("just filled");
            let event = take_event(decoded, *first_position, item.entry)?;
            if !applies_max_age || !metadata.is_expired(event.recorded_at, now) {
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn read_all(&self, options: ReadAllOptions) -> Result<AllSlice> {
        let (views, head) = self.view();
        let mut decoder = FrameDecoder::default();
        // One buffer for the events of every frame read.
        let mut scratch = Vec::new();
        let limit = usize::try_from(options.limit).unwrap_or(usize::MAX);
        let scan_limit = options.scan_limit.unwrap_or(u64::MAX);
        let mut events = Vec::new();
        let mut scanned = 0u64;
        match options.direction {
            Direction::Forwards => {
                let from = match options.from {
                    AllStart::Start => 1,
                    AllStart::End => head + 1,
                    AllStart::Position(position) => position.0.max(1),
                };
                let mut scanned_to = from - 1;
                if from > head {
                    return Ok(slice(events, scanned_to, true));
                }
                let start_view = views
                    .iter()
                    .rposition(|view| view.first_position <= from)
                    .unwrap_or(0);
                for view in &views[start_view..] {
                    let anchors = view.anchors()?;
                    let start_offset = anchors
                        .iter()
                        .rev()
                        .find(|anchor| anchor.0 <= from)
                        .map_or(SEGMENT_HEADER_LEN as u64, |anchor| anchor.1);
                    let mut cursor = FrameCursor::new(view.file.as_ref(), start_offset, view.end);
                    while let Some((_, frame)) = cursor.next_frame()? {
                        let frame_head = decoder.head(frame)?;
                        let count = u64::from(frame_head.event_count);
                        let first = frame_head.first_position;
                        if first + count - 1 < from {
                            continue;
                        }
                        // A frame whose stream the read excludes needs no decoding: its
                        // events are only counted as examined.
                        let skip_whole_frame = !options.keeps_stream(&frame_head.stream);
                        scratch.clear();
                        if !skip_whole_frame {
                            decoder.events_into(frame, &frame_head, &mut scratch)?;
                        }
                        let mut decoded = scratch.drain(..);
                        for index in 0..count {
                            let position = first + index;
                            let event = decoded.next();
                            if position < from {
                                continue;
                            }
                            if position > head {
                                return Ok(slice(events, scanned_to, true));
                            }
                            if events.len() >= limit || scanned >= scan_limit {
                                return Ok(slice(events, scanned_to, false));
                            }
                            scanned += 1;
                            scanned_to = position;
                            if let Some(event) = event.filter(|event| options.keeps(event)) {
                                events.push(event);
                            }
                        }
                    }
                }
                Ok(slice(events, scanned_to, true))
            }
            Direction::Backwards => {
                let before = match options.from {
                    AllStart::Start => 0,
                    AllStart::End => head + 1,
                    AllStart::Position(position) => position.0,
                };
                let newest = before.saturating_sub(1).min(head);
                let mut scanned_to = before;
                if newest == 0 {
                    return Ok(slice(events, scanned_to, true));
                }
                let start_view = views
                    .iter()
                    .rposition(|view| view.first_position <= newest)
                    .unwrap_or(0);
                for view in views.iter().take(start_view + 1).rev() {
                    let anchors = view.anchors()?;
                    let top = anchors
                        .iter()
                        .rposition(|anchor| anchor.0 <= newest)
                        .unwrap_or(anchors.len().saturating_sub(1));
                    for group in (0..=top).rev() {
                        for event in view.group_events(group, &mut decoder)?.into_iter().rev() {
                            let position = event.position.0;
                            if position > newest {
                                continue;
                            }
                            if events.len() >= limit || scanned >= scan_limit {
                                return Ok(slice(events, scanned_to, false));
                            }
                            scanned += 1;
                            scanned_to = position;
                            if options.keeps(&event) {
                                events.push(event);
                            }
                        }
                    }
                }
                Ok(slice(events, scanned_to, true))
            }
        }
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        let stream = stream.clone();
        self.send(|reply| Command::Delete {
            stream,
            expected,
            tombstone: false,
            reply,
        })
        .await
    }

    async fn tombstone_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        let stream = stream.clone();
        self.send(|reply| Command::Delete {
            stream,
            expected,
            tombstone: true,
            reply,
        })
        .await
    }

    async fn head(&self) -> Result<Position> {
        Ok(self.shared.head())
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.shared.head.subscribe()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Takes the event `entry` points to out of its decoded frame (whose first event is at
/// `first_position`), checking that the index and the frame agree.
fn take_event(
    frame: &mut [Option<RecordedEvent>],
    first_position: u64,
    entry: crate::index::IndexEntry,
) -> Result<RecordedEvent> {
    let event = entry
        .position
        .checked_sub(first_position)
        .and_then(|index| frame.get_mut(usize::try_from(index).ok()?))
        .and_then(Option::take)
        .ok_or_else(|| corrupt("index points to a frame without the event"))?;
    pick_event(vec![event], entry)
}

/// Whether the calling task runs on a multi-threaded tokio runtime, where
/// `tokio::task::block_in_place` may block a worker for an fsync.
fn may_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// A `$all` read's answer (see [`AllSlice`] for what the fields mean).
fn slice(events: Vec<RecordedEvent>, scanned_to: u64, end_of_log: bool) -> AllSlice {
    AllSlice {
        events,
        scanned_to: Position(scanned_to),
        end_of_log,
    }
}
