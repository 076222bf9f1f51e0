//! A Factum event store on a server: [`RemoteStore`] implements the [`EventStore`] contract
//! over the KurrentDB gRPC client protocol, against `factum serve` (or any server speaking that
//! protocol without TLS).
//!
//! ```no_run
//! # async fn run() -> Result<(), factum_core::Error> {
//! use factum_client::RemoteStore;
//! use factum_core::{EventStore, ExpectedRevision, ProposedEvent, ReadStreamOptions, StreamName};
//!
//! let store = RemoteStore::connect("kurrentdb://localhost:2113?tls=false").await?;
//! let stream = StreamName::new("account-42")?;
//! let opened = ProposedEvent::json("AccountOpened", &serde_json::json!({"owner": "Alice"}))?;
//! store.append(&stream, ExpectedRevision::NoStream, vec![opened]).await?;
//! let events = store.read_stream(&stream, ReadStreamOptions::forwards()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! `url` parses connection strings, `wire` converts between the contract's types and the
//! protocol's, `errors` turns the server's failures back into [`factum_core::Error`], `calls`
//! sends requests, `head` keeps the head watch, and `store` is the contract itself. How what the
//! protocol has no field for (schema versions, tags) travels is on [`RemoteStore`].
//!
//! [`EventStore`]: factum_core::EventStore

mod calls;
mod errors;
mod head;
mod store;
mod url;
mod wire;

pub use store::RemoteStore;
pub use url::{ConnectionSettings, DEFAULT_PORT};
pub use wire::SCHEMA_VERSION_KEY;
