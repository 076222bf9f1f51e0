//! Every decoder of the on-disk format fed arbitrary and damaged bytes: frames, frame heads,
//! segment headers and sealed index files. They must answer an error (`Corrupt`, or
//! `Incomplete` for a frame cut short), never panic, and a valid frame must round-trip.

use std::sync::Arc;

use bytes::Bytes;
use factum_core::{EventId, StreamName, Timestamp};
use factum_log::format::{
    EventToWrite, FrameCheck, FrameHead, SegmentHeader, check_frame, decode_frame,
    decode_frame_head, encode_frame,
};
use factum_log::index::{ActiveIndex, SealedIndex, write_index};
use factum_log::storage::{Storage, StorageFile};
use factum_sim::SimStorage;
use proptest::prelude::*;

/// A file of a fresh simulated disk holding `bytes`.
fn file_with(bytes: &[u8]) -> Arc<dyn StorageFile> {
    let storage = SimStorage::new(0);
    let file = storage.open("file", true).expect("creates");
    file.write_all_at(bytes, 0).expect("writes");
    file
}

/// Runs every reader of a sealed index over `bytes`; only panics count as failures.
fn read_index(bytes: &[u8], streams: &[StreamName]) {
    if let Ok(index) = SealedIndex::open(file_with(bytes)) {
        let _ = index.frame_map();
        for stream in streams {
            let _ = index.entries(stream);
            let _ = index.last_entry(stream);
        }
    }
}

fn stream_name() -> impl Strategy<Value = StreamName> {
    "[a-z][a-z0-9-]{0,15}".prop_map(|name| StreamName::new(name).expect("a valid name"))
}

fn event_to_write() -> impl Strategy<Value = EventToWrite> {
    (
        any::<u128>(),
        "[A-Za-z]{1,12}",
        1u32..5,
        prop_oneof![
            Just("application/json".to_owned()),
            Just("application/octet-stream".to_owned()),
            "[a-z]{1,8}/[a-z]{1,8}",
        ],
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..16),
        proptest::collection::vec("[a-z]{1,6}", 0..3),
    )
        .prop_map(
            |(id, event_type, schema_version, content_type, data, metadata, tags)| EventToWrite {
                id: EventId(uuid::Uuid::from_u128(id)),
                event_type,
                schema_version,
                content_type,
                data: Bytes::from(data),
                metadata: Bytes::from(metadata),
                tags,
            },
        )
}

/// A valid frame: its head, its events, and its encoding.
fn frame() -> impl Strategy<Value = (FrameHead, Vec<EventToWrite>, Vec<u8>)> {
    (
        stream_name(),
        1u64..1 << 40,
        0u64..1 << 40,
        0u64..1 << 52,
        proptest::collection::vec(event_to_write(), 1..4),
    )
        .prop_map(|(stream, first_position, first_revision, micros, events)| {
            let head = FrameHead {
                stream,
                first_position,
                first_revision,
                recorded_at: Timestamp::from_unix_micros(micros),
                event_count: events.len() as u32,
            };
            let mut bytes = Vec::new();
            let len = encode_frame(&mut bytes, &head, &events);
            assert_eq!(len, bytes.len());
            (head, events, bytes)
        })
}

/// A valid index file of one segment, built by the engine's own writer, and its streams.
fn index_file() -> impl Strategy<Value = (Vec<u8>, Vec<StreamName>)> {
    proptest::collection::vec((0usize..4, 1u64..4, any::<bool>()), 1..40).prop_map(|frames| {
        let streams: Vec<StreamName> = (0..4)
            .map(|index| StreamName::new(format!("index-{index}")).expect("a valid name"))
            .collect();
        let mut index = ActiveIndex::default();
        let mut revisions = [0u64; 4];
        let mut position = 100;
        let mut offset = 64;
        for (stream, count, tombstone) in frames {
            let tombstones = (0..count).map(|event| tombstone && event == count - 1);
            index.add_frame(
                &streams[stream],
                position,
                revisions[stream],
                offset,
                tombstones,
            );
            revisions[stream] += count;
            position += count;
            offset += 100 * count;
        }
        let storage = SimStorage::new(0);
        write_index(&storage, "x.idx", 3, 100, position - 1, offset, &index).expect("writes");
        let bytes = storage.contents("x.idx").expect("the index");
        (bytes, streams)
    })
}

/// Re-seals the checksums of an index file after a change, so the change reaches the code
/// behind them: the header's, and every stream row's.
fn reseal_index(bytes: &mut [u8]) {
    if bytes.len() < 128 {
        return;
    }
    let stream_count = u64::from_le_bytes(bytes[48..56].try_into().expect("8 bytes"));
    for row in 0..stream_count.min(64) as usize {
        let start = 128 + row * 48;
        if start + 48 > bytes.len() {
            break;
        }
        let crc = crc32fast_hash(&bytes[start..start + 44]);
        bytes[start + 44..start + 48].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast_hash(&bytes[0..124]);
    bytes[124..128].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 (IEEE), bit by bit: what `crc32fast` computes, without depending on it here.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let checked = check_frame(&bytes);
        prop_assert!(!matches!(checked, Ok(FrameCheck::Complete(_))), "garbage is not a frame");
        let _ = decode_frame_head(&bytes);
        let _ = decode_frame(&bytes);
        prop_assert!(SegmentHeader::decode(&bytes).is_err());
        read_index(&bytes, &[StreamName::new("a").expect("a valid name")]);
        prop_assert!(SealedIndex::open(file_with(&bytes)).is_err());
    }

    #[test]
    fn a_valid_frame_round_trips((head, events, bytes) in frame()) {
        prop_assert_eq!(check_frame(&bytes).expect("checks"), FrameCheck::Complete(bytes.len()));
        prop_assert_eq!(&decode_frame_head(&bytes).expect("decodes"), &head);
        let decoded = decode_frame(&bytes).expect("decodes");
        prop_assert_eq!(decoded.len(), events.len());
        for (index, (recorded, written)) in decoded.iter().zip(&events).enumerate() {
            prop_assert_eq!(recorded.id, written.id);
            prop_assert_eq!(&recorded.stream, &head.stream);
            prop_assert_eq!(recorded.position.0, head.first_position + index as u64);
            prop_assert_eq!(recorded.revision, head.first_revision + index as u64);
            prop_assert_eq!(&recorded.event_type, &written.event_type);
            prop_assert_eq!(recorded.schema_version, written.schema_version);
            prop_assert_eq!(&recorded.content_type, &written.content_type);
            prop_assert_eq!(&recorded.data, &written.data);
            prop_assert_eq!(&recorded.metadata, &written.metadata);
            prop_assert_eq!(&recorded.tags, &written.tags);
            prop_assert_eq!(recorded.recorded_at, head.recorded_at);
        }
    }

    #[test]
    fn a_frame_with_a_flipped_bit_is_refused(
        (_, _, bytes) in frame(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut damaged = bytes.clone();
        let at = at.index(damaged.len());
        damaged[at] ^= 1 << bit;
        // CRC-32 catches every single-bit error; a flip in the length reads as incomplete or
        // out of range.
        prop_assert!(!matches!(check_frame(&damaged), Ok(FrameCheck::Complete(_))));
        let _ = decode_frame_head(&damaged);
        let _ = decode_frame(&damaged);
    }

    #[test]
    fn a_frame_with_random_damage_never_panics(
        (_, _, bytes) in frame(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
    ) {
        let mut damaged = bytes.clone();
        for (at, mask) in flips {
            let at = at.index(damaged.len());
            damaged[at] ^= mask;
        }
        if let Ok(FrameCheck::Complete(len)) = check_frame(&damaged) {
            let _ = decode_frame_head(&damaged[..len]);
            let _ = decode_frame(&damaged[..len]);
        }
        // The decoders take unchecked bytes too.
        let _ = decode_frame_head(&damaged);
        let _ = decode_frame(&damaged);
    }

    #[test]
    fn a_truncated_frame_is_incomplete_and_does_not_decode(
        (_, _, bytes) in frame(),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(bytes.len());
        let truncated = &bytes[..cut];
        prop_assert_eq!(check_frame(truncated).expect("a cut frame is no error"), FrameCheck::Incomplete);
        prop_assert!(decode_frame(truncated).is_err());
        let _ = decode_frame_head(truncated);
    }

    #[test]
    fn a_segment_header_round_trips_and_refuses_any_flipped_bit(
        segment_number in 1u64..u64::MAX,
        first_position in 1u64..u64::MAX,
        at in 0usize..64,
        bit in 0u8..8,
    ) {
        let header = SegmentHeader { segment_number, first_position };
        let bytes = header.encode();
        prop_assert_eq!(SegmentHeader::decode(&bytes).expect("decodes"), header);
        let mut damaged = bytes;
        damaged[at] ^= 1 << bit;
        prop_assert!(SegmentHeader::decode(&damaged).is_err());
        for cut in [0, 1, 32, 63] {
            prop_assert!(SegmentHeader::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn a_valid_index_reads_back_and_damaged_ones_never_panic(
        (bytes, streams) in index_file(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let index = SealedIndex::open(file_with(&bytes)).expect("a valid index opens");
        prop_assert_eq!(index.segment_number, 3);
        for stream in &streams {
            let entries = index.entries(stream).expect("entries read");
            for (revision, entry) in entries.iter().enumerate() {
                prop_assert_eq!(entry.revision, revision as u64);
            }
        }
        prop_assert!(index.frame_map().is_ok());

        // Damage, as a disk would (checksums catch it) ...
        let mut damaged = bytes.clone();
        for (at, mask) in &flips {
            let at = at.index(damaged.len());
            damaged[at] ^= mask;
        }
        read_index(&damaged, &streams);
        read_index(&bytes[..cut.index(bytes.len())], &streams);
        // ... and damage behind valid checksums, as a bug would write it: still no panic.
        reseal_index(&mut damaged);
        read_index(&damaged, &streams);
    }
}

/// Regression story: a stream row of an index file carries the offset of the stream's name in
/// the names section. A row whose checksum is right but whose offset is huge (a bug, or damage
/// that happens to keep the row's CRC) made `find_row` add it to the section's offset without
/// a check: an arithmetic overflow, a panic in debug builds, instead of `Corrupt`.
#[test]
fn an_index_row_pointing_past_every_name_is_corrupt_not_a_panic() {
    let stream = StreamName::new("index-0").expect("a valid name");
    let mut index = ActiveIndex::default();
    index.add_frame(&stream, 1, 0, 64, [false].into_iter());
    let storage = SimStorage::new(0);
    write_index(&storage, "x.idx", 1, 1, 1, 200, &index).expect("writes");
    let mut bytes = storage.contents("x.idx").expect("the index");
    // The only row's name offset (bytes 24..32 of the row at 128).
    bytes[128 + 24..128 + 32].copy_from_slice(&u64::MAX.to_le_bytes());
    reseal_index(&mut bytes);
    let index = SealedIndex::open(file_with(&bytes)).expect("the header is fine");
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| index.entries(&stream)));
    match read {
        Ok(Err(factum_core::Error::Corrupt { .. })) => {}
        Ok(other) => panic!("expected Corrupt, got {other:?}"),
        Err(_) => panic!("reading an index row with a huge name offset panicked"),
    }
}

#[test]
fn the_test_crc_matches_the_formats() {
    // The header of a fresh segment carries the CRC of its first 60 bytes.
    let bytes = SegmentHeader {
        segment_number: 1,
        first_position: 1,
    }
    .encode();
    let stored = u32::from_le_bytes(bytes[60..64].try_into().expect("4 bytes"));
    assert_eq!(crc32fast_hash(&bytes[0..60]), stored);
}
