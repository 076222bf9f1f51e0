//! Appends larger than the recovery scan's read chunk (1 MiB) survive a reopen.
//!
//! The story of the bug: the frame cursor read one 1 MiB chunk before it knew a frame's length
//! and then refused to read again, so a frame of more than 1 MiB met at the start of a read was
//! "incomplete". The append was acknowledged, but the next open took the frame for a torn tail
//! and truncated it: 17,000 small events appended at once through `factum append --jsonl` were
//! gone after a reopen.

use factum_core::{
    EventStore, ExpectedRevision, ProposedEvent, ReadAllOptions, ReadStreamOptions, StreamName,
};
use factum_log::EmbeddedStore;

/// Small events in the first append: 41 bytes each in the frame, about 1.6 MiB.
const MANY: u32 = 40_000;
/// Events of almost 1 MiB each in the third append: about 12 MiB.
const LARGE: u32 = 12;
/// Every event written before the reopen.
const TOTAL: u32 = MANY + 1 + LARGE + 1;

fn small(n: u32) -> ProposedEvent {
    ProposedEvent::bytes("Small", n.to_le_bytes().to_vec())
}

fn exact(revision: u32) -> ExpectedRevision {
    ExpectedRevision::Exact(u64::from(revision))
}

#[tokio::test]
async fn appends_of_several_mebibytes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let stream = StreamName::new("big").unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        // First in its segment, so the recovery scan meets it with nothing read yet.
        let many: Vec<ProposedEvent> = (0..MANY).map(small).collect();
        store
            .append(&stream, ExpectedRevision::NoStream, many)
            .await
            .unwrap();
        store
            .append(&stream, exact(MANY - 1), vec![small(MANY)])
            .await
            .unwrap();
        let large: Vec<ProposedEvent> = (0..LARGE)
            .map(|n| ProposedEvent::bytes("Large", vec![n as u8; 1000 * 1000]))
            .collect();
        store.append(&stream, exact(MANY), large).await.unwrap();
        let last = MANY + LARGE + 1;
        store
            .append(&stream, exact(last - 1), vec![small(last)])
            .await
            .unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.head().await.unwrap().value(), u64::from(TOTAL));
    let events = store
        .read_stream(&stream, ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert_eq!(events.len(), TOTAL as usize);
    for revision in [0, MANY - 1, MANY, TOTAL - 1] {
        let data = events[revision as usize].data.as_ref();
        assert_eq!(data, revision.to_le_bytes(), "revision {revision}");
    }
    let last_large = &events[(MANY + LARGE) as usize];
    assert_eq!(last_large.data.len(), 1000 * 1000);
    assert!(
        last_large
            .data
            .iter()
            .all(|byte| u32::from(*byte) == LARGE - 1)
    );
    let all = store.read_all(ReadAllOptions::forwards()).await.unwrap();
    assert_eq!(all.events.len(), TOTAL as usize);
    // And the store goes on from there.
    let next = store
        .append(&stream, exact(TOTAL - 1), vec![small(TOTAL)])
        .await
        .unwrap();
    assert_eq!(next.position.value(), u64::from(TOTAL) + 1);
}
