//! Torn tails on the real file system: write a store, close it, damage the end of its last
//! segment the ways a crash can (garbage after the end, a cut anywhere inside the last frame, a
//! flipped bit, a zero-filled tail), and check that reopening gives back exactly the records
//! committed before the damage, cuts the file back, and continues at the right position and
//! revision. Damage inside a sealed segment is not a torn tail: the store must refuse it.

use std::fs;
use std::path::{Path, PathBuf};

use factum_core::{
    Error, EventStore, ExpectedRevision, ProposedEvent, ReadAllOptions, ReadStreamOptions,
    RecordedEvent, StreamName,
};
use factum_log::format::{FrameCheck, SEGMENT_HEADER_LEN, check_frame};
use factum_log::segment::{index_file_name, segment_file_name};
use factum_log::{EmbeddedStore, Options};
use factum_sim::Rng;
use tempfile::TempDir;

const STREAMS: [&str; 2] = ["torn-a", "torn-b"];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

fn name(stream: &str) -> StreamName {
    StreamName::new(stream).expect("a valid name")
}

/// A closed store in a temporary directory and every event it committed, in order.
struct Written {
    dir: TempDir,
    events: Vec<RecordedEvent>,
}

fn write_store(options: Options, appends: usize) -> Written {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = runtime();
    let events = runtime.block_on(async {
        let store = EmbeddedStore::open_with(dir.path(), options).expect("opens");
        let mut rng = Rng::new(appends as u64);
        for index in 0..appends {
            let stream = name(STREAMS[index % STREAMS.len()]);
            let count = rng.range(1, 3);
            let events = (0..count)
                .map(|_| {
                    let len = rng.range(10, 60) as usize;
                    ProposedEvent::bytes("Happened", rng.bytes(len))
                })
                .collect();
            store
                .append(&stream, ExpectedRevision::Any, events)
                .await
                .expect("appends");
        }
        all_events(&store).await
    });
    Written { dir, events }
}

async fn all_events(store: &EmbeddedStore) -> Vec<RecordedEvent> {
    store
        .read_all(ReadAllOptions::forwards().include_system())
        .await
        .expect("$all reads")
        .events
}

/// The offsets where each frame of a segment's bytes ends, first to last.
fn frame_ends(bytes: &[u8]) -> Vec<u64> {
    let mut ends = Vec::new();
    let mut offset = SEGMENT_HEADER_LEN;
    // Bounded: each step moves past one frame of a finite buffer.
    while let Ok(FrameCheck::Complete(len)) = check_frame(&bytes[offset..]) {
        offset += len;
        ends.push(offset as u64);
    }
    assert_eq!(offset, bytes.len(), "the pristine segment is whole");
    ends
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(segment_file_name(number))
}

/// Copies the written store into a fresh directory with its last segment replaced by
/// `segment`, reopens it, and checks it holds exactly the first `kept` events, that the file
/// was cut back to `cut_to`, and that an append continues after them.
fn check_recovers(written: &Written, number: u64, segment: &[u8], kept: usize, cut_to: u64) {
    let copy = tempfile::tempdir().expect("a temporary directory");
    for entry in fs::read_dir(written.dir.path()).expect("lists") {
        let entry = entry.expect("an entry");
        let file_name = entry.file_name();
        if file_name != "LOCK" {
            fs::copy(entry.path(), copy.path().join(&file_name)).expect("copies");
        }
    }
    fs::write(segment_path(copy.path(), number), segment).expect("writes the damage");
    let runtime = runtime();
    runtime.block_on(async {
        let store = EmbeddedStore::open(copy.path())
            .unwrap_or_else(|error| panic!("a torn tail is recovered: {error}"));
        let events = all_events(&store).await;
        assert_eq!(
            events.len(),
            kept,
            "exactly the committed events before the damage"
        );
        assert_eq!(&events[..], &written.events[..kept]);
        assert_eq!(store.head().await.expect("head").0, kept as u64);
        let len = fs::metadata(segment_path(copy.path(), number))
            .expect("the segment")
            .len();
        assert_eq!(len, cut_to, "the torn tail is cut off");

        let stream = name(STREAMS[0]);
        let last_revision = events
            .iter()
            .rev()
            .find(|event| event.stream == stream)
            .map(|event| event.revision);
        let written = store
            .append(
                &stream,
                ExpectedRevision::Any,
                vec![ProposedEvent::bytes("After", &b"next"[..])],
            )
            .await
            .expect("appends after recovery");
        assert_eq!(written.position.0, kept as u64 + 1, "the next position");
        assert_eq!(written.revision, last_revision.map_or(0, |last| last + 1));
        let read = store
            .read_stream(&stream, ReadStreamOptions::backwards().limit(1))
            .await
            .expect("reads");
        assert_eq!(read[0].data, &b"next"[..]);
    });
}

/// How many of the written events are in the frames that end at or before `offset`.
fn events_before(written: &Written, ends: &[u64], offset: u64) -> usize {
    let frames = ends.iter().filter(|end| **end <= offset).count();
    // One frame per append, and consecutive appends alternate streams: a frame ends where the
    // stream changes.
    let mut seen_frames = 0;
    for (index, event) in written.events.iter().enumerate() {
        if index > 0 && written.events[index - 1].stream != event.stream {
            seen_frames += 1;
            if seen_frames == frames {
                return index;
            }
        }
    }
    assert_eq!(frames, seen_frames + 1, "every frame is counted");
    written.events.len()
}

fn pristine(written: &Written, number: u64) -> Vec<u8> {
    fs::read(segment_path(written.dir.path(), number)).expect("reads the segment")
}

#[test]
fn garbage_after_the_last_frame_is_cut_off() {
    let written = write_store(Options::default(), 12);
    let bytes = pristine(&written, 1);
    let ends = frame_ends(&bytes);
    let last_start = ends[ends.len() - 2] as usize;
    let mut rng = Rng::new(5);
    let mut tails: Vec<Vec<u8>> = (0..20).map(|len| rng.bytes(1 + len * 13)).collect();
    // A frame header promising a body that never came.
    tails.push([&[0xaa; 4][..], &200u32.to_le_bytes()[..], &[1, 0, 3]].concat());
    // A whole copy of the last frame with one byte changed: a checksum must catch it.
    let mut copy = bytes[last_start..].to_vec();
    copy[20] ^= 0x40;
    tails.push(copy);
    for tail in tails {
        let damaged = [&bytes[..], &tail[..]].concat();
        check_recovers(
            &written,
            1,
            &damaged,
            written.events.len(),
            bytes.len() as u64,
        );
    }
}

#[test]
fn a_cut_at_every_offset_inside_the_last_frame_loses_exactly_that_frame() {
    let written = write_store(Options::default(), 8);
    let bytes = pristine(&written, 1);
    let ends = frame_ends(&bytes);
    let last_start = ends[ends.len() - 2];
    let kept = events_before(&written, &ends, last_start);
    assert!(kept < written.events.len(), "the last append has events");
    for cut in last_start..bytes.len() as u64 {
        check_recovers(&written, 1, &bytes[..cut as usize], kept, last_start);
    }
    // Cut at the very end: nothing is torn.
    check_recovers(
        &written,
        1,
        &bytes,
        written.events.len(),
        bytes.len() as u64,
    );
}

#[test]
fn a_flipped_bit_in_the_last_frame_loses_exactly_that_frame() {
    let written = write_store(Options::default(), 8);
    let bytes = pristine(&written, 1);
    let ends = frame_ends(&bytes);
    let last_start = ends[ends.len() - 2];
    let kept = events_before(&written, &ends, last_start);
    for at in last_start..bytes.len() as u64 {
        let mut damaged = bytes.clone();
        damaged[at as usize] ^= 1 << (at % 8);
        check_recovers(&written, 1, &damaged, kept, last_start);
    }
}

#[test]
fn a_zero_filled_tail_is_cut_off() {
    let written = write_store(Options::default(), 8);
    let bytes = pristine(&written, 1);
    let ends = frame_ends(&bytes);
    let last_start = ends[ends.len() - 2];
    let kept = events_before(&written, &ends, last_start);
    // The size reached the disk but the data did not: the last frame reads as zeros.
    let mut zeroed = bytes.clone();
    zeroed[last_start as usize..].fill(0);
    check_recovers(&written, 1, &zeroed, kept, last_start);
    // Zeros past the end (a preallocated or extended file).
    let extended = [&bytes[..], &[0u8; 4096][..]].concat();
    check_recovers(
        &written,
        1,
        &extended,
        written.events.len(),
        bytes.len() as u64,
    );
    // Zeros from the middle of the last frame on, and beyond.
    let mut half = bytes.clone();
    let middle = (last_start as usize + bytes.len()) / 2;
    half[middle..].fill(0);
    half.extend_from_slice(&[0u8; 100]);
    check_recovers(&written, 1, &half, kept, last_start);
}

/// A store of three or more segments; returns it and how many segments it has.
fn write_sealed_store() -> (Written, u64) {
    let options = Options {
        segment_size_bytes_max: 1024,
        ..Options::default()
    };
    let written = write_store(options, 30);
    let segments = (1..)
        .take_while(|number| segment_path(written.dir.path(), *number).exists())
        .count() as u64;
    assert!(segments >= 3, "the store has sealed segments");
    (written, segments)
}

fn open_damaged(
    written: &Written,
    number: u64,
    damage: impl FnOnce(&mut Vec<u8>),
) -> Result<EmbeddedStore, Error> {
    let copy = tempfile::tempdir().expect("a temporary directory");
    for entry in fs::read_dir(written.dir.path()).expect("lists") {
        let entry = entry.expect("an entry");
        if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copies");
        }
    }
    let path = segment_path(copy.path(), number);
    let mut bytes = fs::read(&path).expect("reads");
    damage(&mut bytes);
    fs::write(&path, bytes).expect("writes");
    let store = EmbeddedStore::open(copy.path())?;
    let all = runtime().block_on(async {
        store
            .read_all(ReadAllOptions::forwards().include_system())
            .await
    })?;
    assert!(
        all.events != written.events,
        "damage inside a sealed segment went unnoticed"
    );
    panic!("a damaged sealed segment was read as different events")
}

fn assert_corrupt(result: Result<EmbeddedStore, Error>, what: &str) {
    match result {
        Err(Error::Corrupt { .. }) => {}
        Err(other) => panic!("{what}: expected Corrupt, got {other:?}"),
        Ok(_) => panic!("{what}: expected Corrupt, the store opened"),
    }
}

#[test]
fn damage_inside_a_sealed_segment_is_refused_as_corrupt() {
    let (written, segments) = write_sealed_store();
    for number in 1..segments {
        assert_corrupt(
            open_damaged(&written, number, |bytes| bytes.truncate(bytes.len() - 7)),
            "a truncated sealed segment",
        );
        assert_corrupt(
            open_damaged(&written, number, |bytes| {
                bytes.extend_from_slice(&[7u8; 33])
            }),
            "garbage after a sealed segment",
        );
        let middle = |bytes: &mut Vec<u8>| {
            let at = bytes.len() / 2;
            bytes[at] ^= 0x10;
        };
        // With its index the engine trusts a sealed segment's length and does not rescan it at
        // open (that is the index's purpose); the flip must then surface as Corrupt on read.
        assert_corrupt(open_damaged(&written, number, middle), "a flipped bit");
    }
}

#[test]
fn damage_inside_a_sealed_segment_without_its_index_fails_the_open() {
    let (written, segments) = write_sealed_store();
    for number in 1..segments {
        fs::remove_file(written.dir.path().join(index_file_name(number))).expect("removes");
    }
    for number in 1..segments {
        let copy = tempfile::tempdir().expect("a temporary directory");
        for entry in fs::read_dir(written.dir.path()).expect("lists") {
            let entry = entry.expect("an entry");
            if entry.file_name() != "LOCK" {
                fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copies");
            }
        }
        let path = segment_path(copy.path(), number);
        let mut bytes = fs::read(&path).expect("reads");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x10;
        fs::write(&path, bytes).expect("writes");
        match EmbeddedStore::open(copy.path()) {
            Err(Error::Corrupt { .. }) => {}
            Err(other) => panic!("segment {number}: expected Corrupt, got {other:?}"),
            Ok(_) => panic!("segment {number}: a damaged sealed segment was opened"),
        }
    }
}
