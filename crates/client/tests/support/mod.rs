//! An in-process `factum serve` on a free port, for the client's tests.

#![allow(dead_code, reason = "each test file uses part of it")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use factum_client::RemoteStore;
use factum_core::EventStore;
use factum_memory::MemoryStore;
use factum_server::ServerOptions;
use tokio::sync::oneshot;

/// How long stopping the server may take.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// A server on a free port of the loopback; it stops when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT` (the address with TLS too: the scheme is the client's choice).
    pub url: String,
    /// Where it listens.
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// A plain-text server over a fresh in-memory store.
    pub async fn start() -> Server {
        Server::start_with(ServerOptions::default()).await
    }

    /// A server with `options` over a fresh in-memory store.
    pub async fn start_with(options: ServerOptions) -> Server {
        Server::start_on(Arc::new(MemoryStore::new()), options).await
    }

    /// A server with `options` over `store`.
    pub async fn start_on(store: Arc<dyn EventStore>, options: ServerOptions) -> Server {
        let listeners = factum_server::bind(&["127.0.0.1:0".to_owned()])
            .await
            .unwrap();
        let address = listeners[0].local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            factum_server::serve(store, listeners, options, shutdown)
                .await
                .unwrap();
        });
        Server {
            url: format!("http://{address}"),
            address,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client of the plain-text server.
    pub async fn connect(&self) -> RemoteStore {
        RemoteStore::connect(&self.url).await.unwrap()
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(STOP_PATIENCE, self.task.take().unwrap())
            .await
            .expect("the server stops")
            .unwrap();
    }
}
