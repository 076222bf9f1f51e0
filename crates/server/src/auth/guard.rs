//! The store as one authenticated user may use it: every call is checked against the stream's
//! `$acl` (or the defaults) before it reaches the store, so every path that goes through the
//! store — gRPC, HTTP, and the catch-up subscriptions built on its reads — is covered by the
//! same rules. `$all` is for admins (and a configured readers' group).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use factum_core::{
    AllSlice, AppendResult, DeleteResult, Error, EventStore, ExpectedRevision, Limits, Position,
    ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, Result, StreamName,
};
use serde_json::Value;
use tokio::sync::watch;

use super::acl::{AccessPolicy, Operation, Principal, target_of};

/// `inner` as `principal` may use it.
pub struct GuardedStore {
    inner: Arc<dyn EventStore>,
    principal: Principal,
    policy: AccessPolicy,
}

impl GuardedStore {
    /// The store as `principal` sees it under `policy`.
    pub fn new(inner: Arc<dyn EventStore>, principal: Principal, policy: AccessPolicy) -> Self {
        GuardedStore {
            inner,
            principal,
            policy,
        }
    }

    /// Checks `operation` on `stream` (a metadata stream counts as its stream's metadata).
    async fn check(&self, stream: &StreamName, operation: Operation) -> Result<()> {
        if self.principal.is_admin() {
            return Ok(());
        }
        let (target, operation) = target_of(stream, operation);
        let acl = match self.inner.stream_metadata(&target).await {
            Ok(metadata) => metadata.metadata.acl,
            // A tombstoned stream has no readable metadata: the defaults decide, and the call
            // itself then answers that the stream is deleted.
            Err(Error::StreamDeleted { .. }) => None,
            Err(error) => return Err(error),
        };
        if self.permits(operation, &target, acl.as_ref()) {
            Ok(())
        } else {
            Err(denied(operation, target.as_str()))
        }
    }

    /// Whether the `$acl` of `target` lets the caller do `operation`. A malformed `$acl`
    /// denies (fail closed) rather than opening the stream.
    fn permits(&self, operation: Operation, target: &StreamName, acl: Option<&Value>) -> bool {
        self.policy
            .allows(&self.principal, operation, target, acl)
            .unwrap_or(false)
    }

    /// Whether a (non-admin) caller reading `$all` sees the events of `stream`: those it may
    /// read. A tombstoned stream's `$acl` went with it, so nothing says who may read what it
    /// held: its events stay in `$all` for admins only (the defaults would open them all).
    async fn shows_in_all(&self, stream: &StreamName) -> Result<bool> {
        let (target, operation) = target_of(stream, Operation::Read);
        match self.inner.stream_metadata(&target).await {
            Ok(metadata) => Ok(self.permits(operation, &target, metadata.metadata.acl.as_ref())),
            Err(Error::StreamDeleted { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }
}

fn denied(operation: Operation, target: &str) -> Error {
    Error::AccessDenied {
        operation: match operation {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Delete => "delete",
            Operation::MetadataRead => "metadata read",
            Operation::MetadataWrite => "metadata write",
        },
        target: target.to_owned(),
    }
}

#[async_trait]
impl EventStore for GuardedStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult> {
        self.check(stream, Operation::Write).await?;
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        options: ReadStreamOptions,
    ) -> Result<Vec<RecordedEvent>> {
        self.check(stream, Operation::Read).await?;
        self.inner.read_stream(stream, options).await
    }

    async fn read_all(&self, options: ReadAllOptions) -> Result<AllSlice> {
        if !self.policy.may_read_all(&self.principal) {
            return Err(denied(Operation::Read, "$all"));
        }
        let mut slice = self.inner.read_all(options).await?;
        if self.principal.is_admin() {
            return Ok(slice);
        }
        // A member of the readers' group sees `$all` without the streams it may not read:
        // each stream is judged once per call. The slice's scan bounds stay as read, so a
        // reader continues after what was left out.
        let mut readable: HashMap<StreamName, bool> = HashMap::new();
        let mut kept = Vec::with_capacity(slice.events.len());
        for event in slice.events {
            let allowed = match readable.get(&event.stream) {
                Some(allowed) => *allowed,
                None => {
                    let allowed = self.shows_in_all(&event.stream).await?;
                    readable.insert(event.stream.clone(), allowed);
                    allowed
                }
            };
            if allowed {
                kept.push(event);
            }
        }
        slice.events = kept;
        Ok(slice)
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        self.check(stream, Operation::Delete).await?;
        self.inner.delete_stream(stream, expected).await
    }

    async fn tombstone_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        self.check(stream, Operation::Delete).await?;
        self.inner.tombstone_stream(stream, expected).await
    }

    async fn head(&self) -> Result<Position> {
        self.inner.head().await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.watch_head()
    }

    fn limits(&self) -> &Limits {
        self.inner.limits()
    }

    // `stream_metadata` and `set_stream_metadata` keep the trait's definitions: they read and
    // append `$$stream` through the guarded methods above, as metadata reads and writes.
}

/// The store a request may use: `store` itself for an anonymous server (no principal in the
/// request's extensions), else `store` as the request's user under the server's policy (both
/// put there by the credentials middleware).
pub fn store_for(
    store: &Arc<dyn EventStore>,
    extensions: &http::Extensions,
) -> Arc<dyn EventStore> {
    match extensions.get::<Principal>() {
        None => store.clone(),
        Some(principal) => Arc::new(GuardedStore::new(
            store.clone(),
            principal.clone(),
            extensions
                .get::<AccessPolicy>()
                .cloned()
                .unwrap_or_default(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::ADMINS_GROUP;
    use factum_core::StreamMetadata;
    use factum_memory::MemoryStore;
    use serde_json::json;

    fn principal(name: &str, groups: &[&str]) -> Principal {
        Principal {
            name: name.into(),
            groups: groups.iter().map(|group| (*group).to_owned()).collect(),
        }
    }

    fn stream(name: &str) -> StreamName {
        StreamName::new(name).unwrap()
    }

    fn event() -> Vec<ProposedEvent> {
        vec![ProposedEvent::bytes("Happened", "x")]
    }

    fn is_denied<T: std::fmt::Debug>(outcome: Result<T>) -> bool {
        matches!(outcome, Err(Error::AccessDenied { .. }))
    }

    /// The matrix: each operation × allowed/denied by `$acl` × user/admin, on one store.
    #[tokio::test]
    async fn every_operation_follows_the_acl_and_admins_pass() {
        let inner: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let ledger = stream("ledger");
        inner
            .append(&ledger, ExpectedRevision::NoStream, event())
            .await
            .unwrap();
        let acl =
            json!({"$r": "alice", "$w": "alice", "$d": "alice", "$mr": "alice", "$mw": "alice"});
        inner
            .set_stream_metadata(
                &ledger,
                ExpectedRevision::Any,
                &StreamMetadata {
                    acl: Some(acl),
                    ..StreamMetadata::default()
                },
            )
            .await
            .unwrap();
        let as_user = |name: &str, groups: &[&str]| {
            GuardedStore::new(
                inner.clone(),
                principal(name, groups),
                AccessPolicy::default(),
            )
        };
        for (store, allowed) in [
            (as_user("alice", &[]), true),
            (as_user("bob", &[]), false),
            (as_user("root", &[ADMINS_GROUP]), true),
        ] {
            let denied = !allowed;
            let read = store
                .read_stream(&ledger, ReadStreamOptions::forwards())
                .await;
            assert_eq!(is_denied(read), denied);
            let metadata = store.stream_metadata(&ledger).await;
            assert_eq!(is_denied(metadata), denied);
            let metadata_write = store
                .set_stream_metadata(&ledger, ExpectedRevision::Any, &StreamMetadata::default())
                .await;
            assert_eq!(is_denied(metadata_write), denied);
            // (An allowed metadata write just reset the ACL: set it back for the next user.)
            if allowed {
                inner
                    .set_stream_metadata(
                        &ledger,
                        ExpectedRevision::Any,
                        &StreamMetadata {
                            acl: Some(json!({"$r": "alice", "$w": "alice", "$d": "alice", "$mr": "alice", "$mw": "alice"})),
                            ..StreamMetadata::default()
                        },
                    )
                    .await
                    .unwrap();
            }
            let write = store.append(&ledger, ExpectedRevision::Any, event()).await;
            assert_eq!(is_denied(write), denied);
        }
        // Denied calls wrote nothing: 1 event + alice's and root's appends.
        let events = inner
            .read_stream(&ledger, ReadStreamOptions::forwards())
            .await
            .unwrap();
        assert_eq!(events.len(), 3);
        let bob = as_user("bob", &[]);
        assert!(is_denied(
            bob.delete_stream(&ledger, ExpectedRevision::Any).await
        ));
        assert!(is_denied(
            bob.tombstone_stream(&ledger, ExpectedRevision::Any).await
        ));
        as_user("alice", &[])
            .delete_stream(&ledger, ExpectedRevision::Any)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_readers_group_sees_all_without_the_streams_it_may_not_read() {
        let inner: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        for name in ["orders", "secret", "$user-root"] {
            inner
                .append(&stream(name), ExpectedRevision::Any, event())
                .await
                .unwrap();
        }
        inner
            .set_stream_metadata(
                &stream("secret"),
                ExpectedRevision::Any,
                &StreamMetadata {
                    acl: Some(json!({"$r": "root"})),
                    ..StreamMetadata::default()
                },
            )
            .await
            .unwrap();
        let policy = AccessPolicy {
            all_readers_group: Some("readers".into()),
        };
        let reader = GuardedStore::new(inner.clone(), principal("rita", &["readers"]), policy);
        let seen = reader
            .read_all(ReadAllOptions::forwards().include_system())
            .await
            .unwrap();
        let streams: Vec<&str> = seen
            .events
            .iter()
            .map(|event| event.stream.as_str())
            .collect();
        // `secret`'s events and `$user-root` are left out; `$$secret` (its metadata) is in,
        // since its `$acl` has no `$mr` rule and metadata of a user stream is open by default.
        assert_eq!(streams, ["orders", "$$secret"]);
        assert!(seen.end_of_log);
        let outsider = GuardedStore::new(
            inner,
            principal("olaf", &[]),
            AccessPolicy {
                all_readers_group: Some("readers".into()),
            },
        );
        assert!(is_denied(
            outsider.read_all(ReadAllOptions::forwards()).await
        ));
    }

    #[tokio::test]
    async fn a_tombstoned_streams_events_stay_in_all_for_admins_only() {
        let inner: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        for name in ["orders", "closed"] {
            inner
                .append(&stream(name), ExpectedRevision::Any, event())
                .await
                .unwrap();
        }
        inner
            .set_stream_metadata(
                &stream("closed"),
                ExpectedRevision::Any,
                &StreamMetadata {
                    acl: Some(json!({"$r": "root", "$mr": "root"})),
                    ..StreamMetadata::default()
                },
            )
            .await
            .unwrap();
        inner
            .tombstone_stream(&stream("closed"), ExpectedRevision::Any)
            .await
            .unwrap();
        let policy = AccessPolicy {
            all_readers_group: Some("readers".into()),
        };
        let streams_seen = |store: GuardedStore| async move {
            let slice = store
                .read_all(ReadAllOptions::forwards().include_system())
                .await
                .unwrap();
            slice
                .events
                .iter()
                .map(|event| event.stream.to_string())
                .collect::<Vec<_>>()
        };
        // Its `$acl` is gone with it: the defaults would show it to every reader.
        let reader = GuardedStore::new(
            inner.clone(),
            principal("rita", &["readers"]),
            policy.clone(),
        );
        assert_eq!(streams_seen(reader).await, ["orders"]);
        let admin = GuardedStore::new(inner, principal("root", &[ADMINS_GROUP]), policy);
        assert_eq!(
            streams_seen(admin).await,
            ["orders", "closed", "$$closed", "closed"]
        );
    }

    #[tokio::test]
    async fn system_streams_and_all_are_for_admins_and_user_streams_open_by_default() {
        let inner: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let bob = GuardedStore::new(
            inner.clone(),
            principal("bob", &[]),
            AccessPolicy::default(),
        );
        bob.append(&stream("orders"), ExpectedRevision::Any, event())
            .await
            .unwrap();
        bob.read_stream(&stream("orders"), ReadStreamOptions::forwards())
            .await
            .unwrap();
        assert!(is_denied(
            bob.append(&stream("$user-admin"), ExpectedRevision::Any, event())
                .await
        ));
        assert!(is_denied(
            bob.read_stream(&stream("$users"), ReadStreamOptions::forwards())
                .await
        ));
        assert!(is_denied(bob.read_all(ReadAllOptions::forwards()).await));
        let root = GuardedStore::new(
            inner,
            principal("root", &[ADMINS_GROUP]),
            AccessPolicy::default(),
        );
        root.read_all(ReadAllOptions::forwards()).await.unwrap();
    }
}
