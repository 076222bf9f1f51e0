//! Compatibility of the on-disk format: a store written by format version 1 (committed under
//! `tests/fixtures/format-v1`) opens and reads back exactly, and a store that claims a newer
//! format is refused with a clear error instead of being guessed at.
//!
//! To write the fixture again (only when adding a new format version, never to make this test
//! pass): `FACTUM_WRITE_FIXTURE=1 cargo test -p factum-log --test format_compat`.

use std::path::{Path, PathBuf};

use factum_core::{
    Error, EventStore, ExpectedRevision, ProposedEvent, ReadAllOptions, ReadStreamOptions,
    StreamMetadata, StreamName,
};
use factum_log::format::{SEGMENT_HEADER_LEN, SegmentHeader};
use factum_log::{EmbeddedStore, Options};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1")
}

/// Small segments, so the fixture has full segments with index files and an open one.
fn options() -> Options {
    Options {
        segment_size_bytes_max: 1024,
        ..Options::default()
    }
}

fn id(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0000 | n)
}

/// What the fixture holds, as (stream, event type, data) in commit order, user events only.
fn expected_user_events() -> Vec<(String, String, String)> {
    let mut events = Vec::new();
    for n in 0..12u64 {
        let stream = format!("account-{}", n % 3);
        events.push((
            stream,
            "MoneyDeposited".to_owned(),
            format!("{{\"amount_cents\":{}}}", n * 100),
        ));
    }
    events
}

async fn write_fixture(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let store = EmbeddedStore::open_with(dir, options()).unwrap();
    for (n, (stream, event_type, data)) in (0u128..).zip(expected_user_events()) {
        let stream = StreamName::new(stream).unwrap();
        let event = ProposedEvent::new(event_type, "application/json", data.into_bytes())
            .with_id(id(n))
            .with_tags(["fixture"]);
        store
            .append(&stream, ExpectedRevision::Any, vec![event])
            .await
            .unwrap();
    }
    let capped = StreamMetadata {
        max_count: Some(2),
        ..StreamMetadata::default()
    };
    let account_0 = StreamName::new("account-0").unwrap();
    store
        .set_stream_metadata(&account_0, ExpectedRevision::NoStream, &capped)
        .await
        .unwrap();
    store
        .tombstone_stream(
            &StreamName::new("account-2").unwrap(),
            ExpectedRevision::Any,
        )
        .await
        .unwrap();
    drop(store);
    std::fs::remove_file(dir.join("LOCK")).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn a_version_1_store_reads_back_exactly() {
    if std::env::var_os("FACTUM_WRITE_FIXTURE").is_some() {
        write_fixture(&fixture_dir()).await;
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), dir.path());
    let segments = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(
        segments >= 3,
        "the fixture has full segments and an open one"
    );
    let store = EmbeddedStore::open_with(dir.path(), options()).unwrap();

    let all = store
        .read_all(ReadAllOptions::forwards())
        .await
        .unwrap()
        .events;
    let seen: Vec<(String, String, String)> = all
        .iter()
        .map(|event| {
            let data = String::from_utf8(event.data.to_vec()).unwrap();
            (event.stream.to_string(), event.event_type.to_string(), data)
        })
        .collect();
    assert_eq!(seen, expected_user_events());
    for (n, event) in (0u128..).zip(&all) {
        assert_eq!(event.id.0, id(n), "event {n}'s id");
        assert_eq!(event.position.0, n as u64 + 1, "positions are dense from 1");
        assert_eq!(event.tags, vec!["fixture".to_owned()]);
    }
    // The metadata and the tombstone written then still rule the reads now.
    let account_0 = StreamName::new("account-0").unwrap();
    let capped = store
        .read_stream(&account_0, ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert_eq!(
        capped
            .iter()
            .map(|event| event.revision)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    let account_2 = StreamName::new("account-2").unwrap();
    let deleted = store
        .read_stream(&account_2, ReadStreamOptions::forwards())
        .await;
    assert!(
        matches!(deleted, Err(Error::StreamDeleted { .. })),
        "{deleted:?}"
    );
    // And the store takes new appends after what it had.
    let head = store.head().await.unwrap();
    let next = store
        .append(
            &account_0,
            ExpectedRevision::Exact(3),
            vec![ProposedEvent::bytes("Later", vec![1])],
        )
        .await
        .unwrap();
    assert_eq!(next.position.0, head.0 + 1);
    assert_eq!(next.revision, 4);
}

#[tokio::test]
async fn a_store_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let stream = StreamName::new("s").unwrap();
    store
        .append(
            &stream,
            ExpectedRevision::Any,
            vec![ProposedEvent::bytes("Happened", vec![1])],
        )
        .await
        .unwrap();
    drop(store);

    // Rewrite the first segment's header as a later Factum would: version 2, checksum valid.
    let segment = dir.path().join("segment-0000000001.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let header = SegmentHeader::decode(&bytes[..SEGMENT_HEADER_LEN]).unwrap();
    let mut newer = header.encode();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&newer[0..60]);
    newer[60..64].copy_from_slice(&crc.to_le_bytes());
    bytes[..SEGMENT_HEADER_LEN].copy_from_slice(&newer);
    std::fs::write(&segment, &bytes).unwrap();

    let error = EmbeddedStore::open(dir.path())
        .err()
        .expect("a newer format is refused");
    let message = error.to_string();
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    assert!(
        message.contains("newer") && message.contains("upgrade"),
        "{message}"
    );
    // Refusing changed nothing on disk.
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
}
