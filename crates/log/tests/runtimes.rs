//! Appends work from every kind of tokio context: the writer thread serves current-thread
//! runtimes and local sets, and on a multi-threaded runtime an idle writer may run on the
//! caller's own worker (`block_in_place`). Each path must commit, durably and in order.

use std::sync::Arc;

use factum_core::{EventStore, ExpectedRevision, ProposedEvent, ReadStreamOptions, StreamName};
use factum_log::{EmbeddedStore, Options};

async fn append_and_check(store: &EmbeddedStore, stream: &str, count: u64) {
    let stream = StreamName::new(stream).unwrap();
    for n in 0..count {
        let expected = match n {
            0 => ExpectedRevision::NoStream,
            n => ExpectedRevision::Exact(n - 1),
        };
        let event = ProposedEvent::bytes("Happened", n.to_le_bytes().to_vec());
        let written = store.append(&stream, expected, vec![event]).await.unwrap();
        assert_eq!(written.revision, n);
    }
    let events = store
        .read_stream(&stream, ReadStreamOptions::forwards())
        .await
        .unwrap();
    let revisions: Vec<u64> = events.iter().map(|event| event.revision).collect();
    assert_eq!(revisions, (0..count).collect::<Vec<_>>());
}

#[test]
fn a_current_thread_runtime_appends_through_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_with(dir.path(), committing_on_caller_threads()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(append_and_check(&store, "current-thread", 20));
}

fn committing_on_caller_threads() -> Options {
    Options {
        commit_on_caller_thread: true,
        ..Options::default()
    }
}

#[test]
fn a_local_set_on_a_multi_threaded_runtime_appends() {
    // Even with caller-thread commits on, where `block_in_place` is refused the append falls
    // back to the writer thread (the runtime prints its refusal once per append).
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(EmbeddedStore::open_with(dir.path(), committing_on_caller_threads()).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let in_local = store.clone();
    runtime.block_on(local.run_until(async move {
        tokio::task::spawn_local(async move { append_and_check(&in_local, "local-set", 3).await })
            .await
            .unwrap();
    }));
}

#[test]
fn worker_tasks_of_a_multi_threaded_runtime_append_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(EmbeddedStore::open_with(dir.path(), committing_on_caller_threads()).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    append_and_check(&store, &format!("worker-{task}"), 25).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.head().await.unwrap().value(), 8 * 25);
    });
    // Fewer fsyncs than appends would show the group commit; here it is enough that every
    // append was covered by one.
    assert!(store.fsync_count() >= 1);
}
