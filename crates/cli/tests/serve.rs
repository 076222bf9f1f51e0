//! `factum serve` as a process: a graceful stop under load answers or refuses every append and
//! loses none it answered, and the config file is honoured.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use factum_proto::shared;
use factum_proto::streams::batch_append_req::options::ExpectedStreamPosition;
use factum_proto::streams::streams_client::StreamsClient;
use factum_proto::streams::{batch_append_resp, read_resp};
use support::server::{Server, append_request};
use tokio_stream::StreamExt;

const WRITERS: usize = 16;
const ACKS_BEFORE_STOP: usize = 200;

/// What the writers saw acknowledged: stream → event ids by revision, and a running count the
/// test waits on.
#[derive(Clone)]
struct Acknowledged {
    ids: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    count: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Acknowledged {
    fn new() -> Acknowledged {
        Acknowledged {
            ids: Arc::default(),
            count: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    fn record(&self, stream: &str, id: String) {
        self.ids
            .lock()
            .unwrap()
            .entry(stream.to_owned())
            .or_default()
            .push(id);
        self.count.send_modify(|count| *count += 1);
    }
}

fn id_of(uuid: &Option<shared::Uuid>) -> String {
    match uuid.as_ref().and_then(|uuid| uuid.value.as_ref()) {
        Some(shared::uuid::Value::String(text)) => text.clone(),
        other => panic!("expected a string id, got {other:?}"),
    }
}

/// Appends one event at a time to `stream` with exact expected revisions until an append is
/// refused or the connection fails; records each acknowledged one.
async fn write_until_refused(server_address: String, stream: String, acknowledged: Acknowledged) {
    let channel = match tonic::transport::Channel::from_shared(format!("http://{server_address}"))
        .unwrap()
        .connect()
        .await
    {
        Ok(channel) => channel,
        Err(_) => return,
    };
    let mut client = StreamsClient::new(channel);
    let mut revision: Option<u64> = None;
    loop {
        let mut request = append_request(&stream, 1, "Deposited");
        request.options.as_mut().unwrap().expected_stream_position = Some(match revision {
            None => ExpectedStreamPosition::NoStream(()),
            Some(revision) => ExpectedStreamPosition::StreamPosition(revision),
        });
        let id = id_of(&request.proposed_messages[0].id);
        let reply = match client.batch_append(tokio_stream::iter([request])).await {
            Ok(replies) => replies.into_inner().next().await,
            Err(_) => return,
        };
        match reply {
            Some(Ok(reply)) => match reply.result {
                Some(batch_append_resp::Result::Success(success)) => {
                    let Some(batch_append_resp::success::CurrentRevisionOption::CurrentRevision(
                        current,
                    )) = success.current_revision_option
                    else {
                        panic!("a success without a revision");
                    };
                    assert_eq!(current, revision.map_or(0, |revision| revision + 1));
                    revision = Some(current);
                    acknowledged.record(&stream, id);
                }
                other => panic!("an append was answered with {other:?}"),
            },
            // Refused or cut by the shutdown: not acknowledged, so nothing to check.
            Some(Err(_)) | None => return,
        }
    }
}

async fn read_ids(channel: tonic::transport::Channel, stream: &str) -> Vec<String> {
    let mut client = StreamsClient::new(channel);
    let mut request = support::server::subscribe_to_all();
    let options = request.options.as_mut().unwrap();
    use factum_proto::streams::read_req::options;
    options.stream_option = Some(options::StreamOption::Stream(options::StreamOptions {
        stream_identifier: Some(shared::StreamIdentifier {
            stream_name: stream.as_bytes().to_vec().into(),
        }),
        revision_option: Some(options::stream_options::RevisionOption::Start(
            shared::Empty {},
        )),
    }));
    options.count_option = Some(options::CountOption::Count(u64::MAX));
    let mut messages = client.read(request).await.unwrap().into_inner();
    let mut ids = Vec::new();
    while let Some(message) = messages.next().await {
        match message.unwrap().content {
            Some(read_resp::Content::Event(event)) => {
                let recorded = event.event.unwrap();
                assert_eq!(recorded.stream_revision, ids.len() as u64);
                ids.push(id_of(&recorded.id));
            }
            Some(read_resp::Content::StreamNotFound(_)) => {}
            other => panic!("unexpected read message {other:?}"),
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_cleanly_and_loses_no_acknowledged_append() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let acknowledged = Acknowledged::new();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            tokio::spawn(write_until_refused(
                server.address.clone(),
                format!("account-{writer}"),
                acknowledged.clone(),
            ))
        })
        .collect();
    // Stop once the writers are well under way.
    let mut count = acknowledged.count.subscribe();
    tokio::time::timeout(
        Duration::from_secs(60),
        count.wait_for(|count| *count >= ACKS_BEFORE_STOP),
    )
    .await
    .expect("the writers are acknowledged 200 appends within 60 s")
    .unwrap();
    let terminated = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .expect("every writer ends after the shutdown")
            .unwrap();
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        drop(server);
        status
    })
    .await
    .unwrap();
    assert!(status.success(), "factum serve exited with {status}");

    let restarted = Server::start(data.path());
    let channel = restarted.channel().await;
    let acknowledged = acknowledged.ids.lock().unwrap().clone();
    for (stream, ids) in acknowledged {
        let stored = read_ids(channel.clone(), &stream).await;
        assert!(
            stored.starts_with(&ids),
            "{stream}: acknowledged {ids:?}, stored {stored:?}"
        );
        // An append answered by nothing (cut by the shutdown) may or may not have landed.
        assert!(
            stored.len() <= ids.len() + 1,
            "{stream}: unexpected extra events"
        );
    }
}

#[tokio::test]
async fn the_config_file_sets_the_data_directory_and_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("from-config");
    let config = dir.path().join("factum.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = [\"127.0.0.1:0\"]\nmax_append_bytes = 1024\n",
            data_dir.display().to_string()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_factum"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert!(
        data_dir.is_dir(),
        "the store is in the configured directory"
    );
    assert!(!dir.path().join("factum-data").exists());

    // The configured append limit is enforced.
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = StreamsClient::new(channel);
    let request = append_request("big", 20, "Deposited");
    let reply = client
        .batch_append(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    let Some(batch_append_resp::Result::Error(status)) = reply.result else {
        panic!("expected the append to be refused, got {reply:?}");
    };
    assert_eq!(status.message, "Maximum Append Size of 1024 Exceeded.");
    child.kill().unwrap();
    child.wait().unwrap();
}
