//! A burst of 1,000 catch-up subscribers against `factum serve`: every one receives the whole
//! history and then a live event, and the server's peak memory (VmHWM of its process) stays
//! under a documented bound.
//!
//! Why it is bounded: a subscription holds at most one page of events (32 on the server) and
//! its HTTP/2 stream's send buffer, and it pulls the next page only when the client has taken
//! the last one, so server memory grows with the number of subscribers, not with the history
//! they replay or with how slowly they read. Measured: about 100 KiB per subscriber while all
//! of them replay at once, most of it HTTP/2 send buffers (hyper queues up to 400 KiB per
//! stream when the client's flow-control window allows it); an idle, caught-up subscriber
//! costs a few KiB.

mod support;

use std::time::Duration;

use factum_proto::streams::read_resp;
use factum_proto::streams::streams_client::StreamsClient;
use support::server::{Server, append, subscribe_to_all};
use tokio_stream::StreamExt;

const SUBSCRIBERS: usize = 1_000;
const CONNECTIONS: usize = 10;
const HISTORY_EVENTS: usize = 1_000;
/// The documented bound on the server's growth for this burst: 160 KiB per subscriber.
const PEAK_GROWTH_MIB_MAX: u64 = 160;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_subscribers_is_served_within_the_memory_bound() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(server.channel().await);
    }
    for batch in 0..HISTORY_EVENTS / 100 {
        append(&channels[0], &format!("account-{batch}"), 100, "Deposited").await;
    }
    let rss_before_kib = server.status_kib("VmRSS:");

    let mut subscribers = Vec::new();
    for index in 0..SUBSCRIBERS {
        let channel = channels[index % CONNECTIONS].clone();
        subscribers.push(tokio::spawn(async move {
            let mut client = StreamsClient::new(channel);
            let mut messages = client.read(subscribe_to_all()).await.unwrap().into_inner();
            let mut events = 0;
            while let Some(message) = messages.next().await {
                if let Some(read_resp::Content::Event(event)) = message.unwrap().content {
                    events += 1;
                    if event.event.unwrap().metadata["type"] == "Live" {
                        return events;
                    }
                }
            }
            panic!("the subscription ended after {events} events");
        }));
    }
    append(&channels[0], "live", 1, "Live").await;
    for subscriber in subscribers {
        let received = tokio::time::timeout(Duration::from_secs(120), subscriber)
            .await
            .expect("every subscriber gets the live event within 2 minutes")
            .unwrap();
        assert_eq!(received, HISTORY_EVENTS + 1);
    }

    let peak_kib = server.status_kib("VmHWM:");
    let growth_mib = peak_kib.saturating_sub(rss_before_kib) / 1024;
    println!(
        "server: RSS before {} MiB, peak {} MiB, growth {growth_mib} MiB for {SUBSCRIBERS} \
         subscribers replaying {HISTORY_EVENTS} events",
        rss_before_kib / 1024,
        peak_kib / 1024
    );
    assert!(
        growth_mib <= PEAK_GROWTH_MIB_MAX,
        "the server's peak memory grew by {growth_mib} MiB, bound {PEAK_GROWTH_MIB_MAX} MiB"
    );
}
