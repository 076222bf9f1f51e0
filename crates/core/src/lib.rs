//! The Factum event store contract.
//!
//! This crate defines what every backend promises and nothing about how: the [`EventStore`]
//! trait, the types it speaks in (streams, events, revisions, positions, filters, stream
//! metadata), the [`Error`] type with how to handle each variant, the input [`Limits`], the
//! append rules every backend shares ([`rules`]), and catch-up [`Subscription`]s built on top
//! of any store. It does no I/O.
//!
//! # Vocabulary
//!
//! - A **stream** is an ordered sequence of events, usually one per aggregate (`account-42`).
//! - An event's **revision** is its 0-based index in its stream; revisions are gapless and never
//!   reset, not even by a soft delete.
//! - An event's **position** is its place in the global log (`$all`): a `u64 ≥ 1`, strictly
//!   increasing in commit order and unique per event. `Position(0)` means "nothing / the start".
//! - A stream whose name starts with `$` is a **system stream**. Stream `s`'s metadata lives in
//!   the system stream `$$s`.
//!
//! # Example
//!
//! ```
//! # async fn demo(store: &dyn factum_core::EventStore) -> Result<(), factum_core::Error> {
//! use factum_core::{ExpectedRevision, ProposedEvent, ReadStreamOptions, StreamName};
//!
//! let stream = StreamName::new("account-42")?;
//! let opened = ProposedEvent::json("AccountOpened", &serde_json::json!({"owner": "Alice"}))?;
//! let written = store.append(&stream, ExpectedRevision::NoStream, vec![opened]).await?;
//! assert_eq!(written.revision, 0);
//!
//! let events = store.read_stream(&stream, ReadStreamOptions::forwards()).await?;
//! assert_eq!(events[0].event_type, "AccountOpened");
//! # Ok(())
//! # }
//! ```

mod error;
mod event;
pub mod event_json;
mod filter;
mod limits;
mod metadata;
mod name;
mod read;
mod revision;
pub mod rules;
mod shared_str;
mod store;
mod subscription;
mod timestamp;

pub use error::{Error, Result};
pub use event::{CONTENT_TYPE_BYTES, CONTENT_TYPE_JSON, EventId, ProposedEvent, RecordedEvent};
pub use event_json::{EventJson, ProposedEventJson};
pub use filter::{EventFilter, FilterRegex};
pub use limits::Limits;
pub use metadata::{METADATA_EVENT_TYPE, StreamMetadata, StreamMetadataResult};
pub use name::StreamName;
pub use read::{AllSlice, AllStart, Direction, ReadAllOptions, ReadStreamOptions, StreamStart};
pub use revision::{AppendResult, CurrentRevision, DeleteResult, ExpectedRevision, Position};
pub use shared_str::SharedStr;
pub use store::EventStore;
pub use subscription::{
    SubscribeToAllOptions, SubscribeToStreamOptions, Subscription, SubscriptionMessage,
    SubscriptionStart,
};
pub use timestamp::Timestamp;
