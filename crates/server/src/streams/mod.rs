//! `event_store.client.streams.Streams`: reads and catch-up subscriptions, Append,
//! BatchAppend, Delete and Tombstone, over any [`EventStore`].

mod append;
mod batch;
mod delete;
mod read;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use factum_core::EventStore;
use factum_proto::streams::streams_server::Streams;
use factum_proto::streams::{
    AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq, DeleteResp, ReadReq,
    ReadResp, TombstoneReq, TombstoneResp,
};
use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::limits::{ConnectionInfo, SubscriptionSlots};
use crate::metrics::{Method, Metrics};
use crate::shutdown::Shutdown;

/// A stream of replies, as tonic wants it.
pub type ReplyStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The Streams service.
pub struct StreamsService {
    store: Arc<dyn EventStore>,
    shutdown: Shutdown,
    max_append_bytes: usize,
    metrics: Arc<Metrics>,
    reads: read::ReadContext,
}

impl StreamsService {
    /// The service over `store`; subscriptions and long-lived BatchAppend calls end when
    /// `shutdown` fires. Appends larger than `max_append_bytes` are refused with the protocol's
    /// error before they reach the store. Calls are counted in `metrics`.
    pub fn new(
        store: Arc<dyn EventStore>,
        shutdown: Shutdown,
        max_append_bytes: usize,
        metrics: Arc<Metrics>,
        subscriptions: Arc<SubscriptionSlots>,
    ) -> StreamsService {
        StreamsService {
            reads: read::ReadContext {
                shutdown: shutdown.clone(),
                metrics: metrics.clone(),
                subscriptions,
            },
            store,
            shutdown,
            max_append_bytes,
            metrics,
        }
    }

    /// Counts a call by its answer (and a failure by its kind), and passes the answer on.
    fn counted<T>(
        &self,
        method: Method,
        started: Instant,
        answer: Result<T, Status>,
    ) -> Result<Response<T>, Status> {
        match &answer {
            Ok(_) => self.metrics.call(method, tonic::Code::Ok, started),
            Err(status) => {
                self.metrics.call(method, status.code(), started);
                self.metrics.error(status);
            }
        }
        answer.map(Response::new)
    }
}

impl StreamsService {
    /// The store as the request's user may use it (see `auth::guard`); the store itself on an
    /// anonymous server.
    fn store_for<T>(&self, request: &Request<T>) -> Arc<dyn EventStore> {
        crate::auth::guard::store_for(&self.store, request.extensions())
    }
}

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = ReplyStream<ReadResp>;
    type BatchAppendStream = ReplyStream<BatchAppendResp>;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        let started = Instant::now();
        let store = self.store_for(&request);
        let connection = request.extensions().get::<ConnectionInfo>().cloned();
        let stream = read::read(
            store,
            &self.reads,
            connection.as_ref(),
            request.into_inner(),
        )
        .await;
        self.counted(Method::Read, started, stream)
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        let started = Instant::now();
        let store = self.store_for(&request);
        let reply = append::append(
            store.as_ref(),
            self.max_append_bytes,
            &self.metrics,
            request.into_inner(),
        )
        .await;
        self.counted(Method::Append, started, reply)
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        let started = Instant::now();
        let store = self.store_for(&request);
        let reply = delete::delete(store.as_ref(), request.into_inner()).await;
        self.counted(Method::Delete, started, reply)
    }

    async fn tombstone(
        &self,
        request: Request<TombstoneReq>,
    ) -> Result<Response<TombstoneResp>, Status> {
        let started = Instant::now();
        let store = self.store_for(&request);
        let reply = delete::tombstone(store.as_ref(), request.into_inner()).await;
        self.counted(Method::Tombstone, started, reply)
    }

    async fn batch_append(
        &self,
        request: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        let started = Instant::now();
        let store = self.store_for(&request);
        let replies = batch::batch_append(
            store,
            self.shutdown.clone(),
            self.max_append_bytes,
            self.metrics.clone(),
            request.into_inner(),
        );
        self.counted(Method::BatchAppend, started, Ok(replies))
    }
}
