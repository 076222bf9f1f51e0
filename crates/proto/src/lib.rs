//! The KurrentDB client protocol (v1, package `event_store.client.*`) as Rust types: prost
//! messages and tonic services, generated at build time from Factum's own `.proto` files in
//! `proto/` (written from the wire facts in the protocol notes, compiled by protox, so no system
//! `protoc` is needed).
//!
//! Only wire facts are fixed by the clients: package, service and method names, field numbers
//! and types, and the message names that travel in `google.protobuf.Any` type URLs
//! ([`shared::WrongExpectedVersion`] and its siblings).
#![allow(
    missing_docs,
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant
)]

/// The generated code, in modules that follow the protobuf packages (the generated paths
/// refer to each other through them). Use the short names below.
pub mod generated {
    /// Package `event_store`.
    pub mod event_store {
        /// Package `event_store.client`.
        pub mod client {
            tonic::include_proto!("event_store.client");

            /// Package `event_store.client.streams`.
            pub mod streams {
                tonic::include_proto!("event_store.client.streams");
            }

            /// Package `event_store.client.gossip`.
            pub mod gossip {
                tonic::include_proto!("event_store.client.gossip");
            }

            /// Package `event_store.client.server_features`.
            pub mod server_features {
                tonic::include_proto!("event_store.client.server_features");
            }

            /// Package `event_store.client.persistent_subscriptions`.
            pub mod persistent_subscriptions {
                tonic::include_proto!("event_store.client.persistent_subscriptions");
            }
        }
    }

    /// Package `google`.
    pub mod google {
        /// Package `google.rpc`.
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
}

/// `event_store.client`: ids, stream identifiers, positions, error details.
pub use generated::event_store::client as shared;
/// `event_store.client.gossip`: cluster membership (one member).
pub use generated::event_store::client::gossip;
/// `event_store.client.persistent_subscriptions`: only `List` for now.
pub use generated::event_store::client::persistent_subscriptions as persistent;
/// `event_store.client.server_features`: what the server implements.
pub use generated::event_store::client::server_features;
/// `event_store.client.streams`: reads, subscriptions, appends, deletes.
pub use generated::event_store::client::streams;
/// `google.rpc`: the status carried in BatchAppend replies.
pub use generated::google::rpc as status;

/// The `type.googleapis.com/…` URL of a message of package `event_store.client`, as packed in
/// `google.rpc.Status.details`.
pub fn type_url(message_name: &str) -> String {
    format!("type.googleapis.com/event_store.client.{message_name}")
}
