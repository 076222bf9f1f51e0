//! A Factum event store on a server: [`RemoteStore`] implements the [`EventStore`] contract
//! over the KurrentDB gRPC client protocol, against `factum serve` (or any server speaking that
//! protocol), in plain text or over TLS, anonymously or as a user.
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
//! A secure server (TLS, users) takes `kurrentdb://USER:PASSWORD@HOST:PORT?tlsCaFile=ca.pem`,
//! or [`ConnectionSettings`] with [`Credentials`] set and [`RemoteStore::connect_with`], which
//! keeps the password out of the URL.
//!
//! `url` parses connection strings, `tls` turns their TLS settings into rustls', `wire`
//! converts between the contract's types and the protocol's, `errors` turns the server's
//! failures back into [`factum_core::Error`], `calls` sends requests, `head` keeps the head
//! watch, and `store` is the contract itself. How what the protocol has no field for (schema
//! versions, tags) travels is on [`RemoteStore`].
//!
//! [`EventStore`]: factum_core::EventStore

mod calls;
mod errors;
mod head;
mod store;
mod tls;
mod url;
mod wire;

pub use store::RemoteStore;
pub use url::{ConnectionSettings, Credentials, DEFAULT_PORT, TlsTrust, redact as redact_password};
pub use wire::SCHEMA_VERSION_KEY;
