//! The whole conformance suite, and the model-based property test, over gRPC: every case gets
//! its own `factum serve` (in process, on a free port, over a fresh in-memory store) and talks
//! to it through a [`RemoteStore`].

use std::sync::Arc;

use factum_client::RemoteStore;
use factum_memory::MemoryStore;

/// A fresh in-memory store behind a server of its own, and a client connected to it. The
/// server runs on the calling runtime, so it stops with the test that made it.
async fn new_store() -> Arc<RemoteStore> {
    let listeners = factum_server::bind(&["127.0.0.1:0".to_owned()])
        .await
        .expect("a free port on the loopback");
    let address = listeners[0]
        .local_addr()
        .expect("a bound listener's address");
    tokio::spawn(factum_server::serve(
        Arc::new(MemoryStore::new()),
        listeners,
        factum_server::ServerOptions::default(),
        std::future::pending(),
    ));
    let store = RemoteStore::connect(&format!("http://{address}"))
        .await
        .expect("the client connects to the server it just started");
    Arc::new(store)
}

factum_conformance::conformance_tests!(new_store);
