//! Users, kept in the store itself: each user is a stream `$user-{name}` of events
//! (`UserCreated`, `PasswordChanged`, `UserDisabled`, `UserEnabled`), and `$users` lists the
//! names. Passwords are hashed with Argon2id (memory-hard, a random salt per hash) and never
//! stored or logged in clear.
//!
//! Authentication answers one error for every failure (unknown user, wrong password, disabled
//! user), and takes about as long for an unknown user as for a wrong password, so a caller
//! learns nothing about which part was wrong. Verified credentials are remembered per user and
//! revision of the user's stream, as a keyed hash, so a busy client does not pay for Argon2 on
//! every call and a password change or a disable takes effect on the next call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use blake2::{Blake2b512, Digest};
use factum_core::{
    Error, EventStore, ExpectedRevision, ProposedEvent, ReadStreamOptions, StreamName,
};
use serde::{Deserialize, Serialize};

use super::acl::Principal;

/// The stream that lists every user name.
pub const USERS_STREAM: &str = "$users";

/// The longest user name, in bytes.
pub const USER_NAME_BYTES_MAX: usize = 64;

/// The longest password, in bytes (Argon2 takes any length; this bounds the work per call).
pub const PASSWORD_BYTES_MAX: usize = 1024;

/// What can go wrong with users.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The user name or password breaks a rule.
    #[error("invalid user: {0}")]
    Invalid(String),
    /// A user of this name exists already.
    #[error("user {0} already exists")]
    AlreadyExists(String),
    /// No user of this name.
    #[error("user {0} not found")]
    NotFound(String),
    /// The credentials are not valid. Deliberately says nothing more.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// A user as stored (without the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name users log in with.
    pub name: String,
    /// A name for people.
    pub full_name: String,
    /// The groups the user belongs to (`$admins` for administrators).
    pub groups: Vec<String>,
    /// Whether the user may not log in.
    pub disabled: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum UserEvent {
    UserCreated {
        full_name: String,
        groups: Vec<String>,
        password_hash: String,
    },
    PasswordChanged {
        password_hash: String,
    },
    UserDisabled,
    UserEnabled,
}

impl UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::UserCreated { .. } => "UserCreated",
            UserEvent::PasswordChanged { .. } => "PasswordChanged",
            UserEvent::UserDisabled => "UserDisabled",
            UserEvent::UserEnabled => "UserEnabled",
        }
    }
}

/// A user folded from its stream, with the hash to verify passwords against.
struct StoredUser {
    user: User,
    password_hash: String,
    revision: u64,
}

/// A user's stream, read and folded.
enum Loaded {
    /// The stream does not exist (or is empty).
    Missing,
    /// The user.
    Found(StoredUser),
    /// An event of the stream does not decode, or comes out of order.
    Undecodable {
        stream: StreamName,
        revision: u64,
        reason: String,
    },
}

/// Credentials verified at a revision of the user's stream.
struct Verified {
    revision: u64,
    fingerprint: [u8; 64],
    principal: Principal,
}

/// The users of a store.
pub struct UserStore {
    store: Arc<dyn EventStore>,
    /// A per-process random key for the fingerprints of verified passwords.
    fingerprint_key: [u8; 32],
    verified: Mutex<HashMap<String, Verified>>,
    /// A hash no password matches, verified against for unknown users so they take as long.
    decoy_hash: String,
}

impl std::fmt::Debug for UserStore {
    // Keys and hashes stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStore").finish_non_exhaustive()
    }
}

impl UserStore {
    /// The users kept in `store`.
    pub fn new(store: Arc<dyn EventStore>) -> UserStore {
        let mut fingerprint_key = [0u8; 32];
        OsRng.fill_bytes(&mut fingerprint_key);
        let mut decoy = [0u8; 32];
        OsRng.fill_bytes(&mut decoy);
        let decoy_hash = hash_password(&hex(&decoy)).expect("hashing a random password");
        UserStore {
            store,
            fingerprint_key,
            verified: Mutex::new(HashMap::new()),
            decoy_hash,
        }
    }

    /// Creates a user. Errors: [`UserError::Invalid`], [`UserError::AlreadyExists`].
    pub async fn create(
        &self,
        name: &str,
        full_name: &str,
        groups: &[String],
        password: &str,
    ) -> Result<(), UserError> {
        let stream = user_stream(name)?;
        check_password(password)?;
        let password_hash = hash_blocking(password.to_owned()).await?;
        // Listed first: a crash between the two appends leaves a name without a user, which
        // `list` skips, rather than a user nobody can list.
        let listing = ProposedEvent::json("UserListed", &serde_json::json!({ "name": name }))?;
        self.store
            .append(
                &StreamName::new(USERS_STREAM)?,
                ExpectedRevision::Any,
                vec![listing],
            )
            .await?;
        let created = UserEvent::UserCreated {
            full_name: full_name.to_owned(),
            groups: groups.to_vec(),
            password_hash,
        };
        match self
            .store
            .append(&stream, ExpectedRevision::NoStream, vec![event(&created)?])
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::WrongExpectedRevision { .. }) => Err(UserError::AlreadyExists(name.into())),
            Err(error) => Err(error.into()),
        }
    }

    /// Sets a new password. Errors: [`UserError::Invalid`], [`UserError::NotFound`].
    pub async fn change_password(&self, name: &str, password: &str) -> Result<(), UserError> {
        check_password(password)?;
        let password_hash = hash_blocking(password.to_owned()).await?;
        self.append_to_existing(name, UserEvent::PasswordChanged { password_hash })
            .await
    }

    /// Disables or enables a user. Errors: [`UserError::NotFound`].
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), UserError> {
        let event = if disabled {
            UserEvent::UserDisabled
        } else {
            UserEvent::UserEnabled
        };
        self.append_to_existing(name, event).await
    }

    /// The user called `name`, if there is one.
    pub async fn get(&self, name: &str) -> Result<Option<User>, UserError> {
        Ok(self.load(name).await?.map(|stored| stored.user))
    }

    /// Every user, by name.
    pub async fn list(&self) -> Result<Vec<User>, UserError> {
        let listed = match self
            .store
            .read_stream(
                &StreamName::new(USERS_STREAM)?,
                ReadStreamOptions::forwards(),
            )
            .await
        {
            Ok(events) => events,
            Err(Error::StreamNotFound { .. }) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let mut names: Vec<String> = listed
            .iter()
            .filter_map(|event| {
                serde_json::from_slice::<serde_json::Value>(&event.data)
                    .ok()?
                    .get("name")?
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names.dedup();
        let mut users = Vec::with_capacity(names.len());
        for name in names {
            if let Some(user) = self.get(&name).await? {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// Checks credentials. Every failure is [`UserError::InvalidCredentials`].
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<Principal, UserError> {
        let stored = match user_stream(name) {
            Ok(_) => match self.read_user(name).await? {
                Loaded::Found(stored) => Some(stored),
                Loaded::Missing => None,
                Loaded::Undecodable {
                    stream,
                    revision,
                    reason,
                } => {
                    // Refused like bad credentials, so the caller learns nothing; the operator
                    // learns which event to repair. Other users are not affected.
                    tracing::error!(
                        %stream,
                        revision,
                        %reason,
                        "a user's stream does not decode: the user cannot log in until it is \
                         repaired"
                    );
                    None
                }
            },
            Err(_) => None,
        };
        let Some(stored) = stored else {
            // As slow as a real check, so unknown names cannot be told apart by timing.
            let _ = verify_blocking(self.decoy_hash.clone(), password.to_owned()).await;
            return Err(UserError::InvalidCredentials);
        };
        if stored.user.disabled {
            return Err(UserError::InvalidCredentials);
        }
        let fingerprint = self.fingerprint(name, password);
        if let Some(verified) = self.verified.lock().expect("not poisoned").get(name)
            && verified.revision == stored.revision
            && verified.fingerprint == fingerprint
        {
            return Ok(verified.principal.clone());
        }
        if !verify_blocking(stored.password_hash.clone(), password.to_owned()).await {
            return Err(UserError::InvalidCredentials);
        }
        let principal = Principal {
            name: stored.user.name.clone(),
            groups: stored.user.groups.clone(),
        };
        self.verified.lock().expect("not poisoned").insert(
            name.to_owned(),
            Verified {
                revision: stored.revision,
                fingerprint,
                principal: principal.clone(),
            },
        );
        Ok(principal)
    }

    async fn append_to_existing(&self, name: &str, change: UserEvent) -> Result<(), UserError> {
        let stream = user_stream(name)?;
        let Some(stored) = self.load(name).await? else {
            return Err(UserError::NotFound(name.into()));
        };
        self.store
            .append(
                &stream,
                ExpectedRevision::Exact(stored.revision),
                vec![event(&change)?],
            )
            .await?;
        Ok(())
    }

    /// The user called `name`; an undecodable stream is [`Error::Corrupt`].
    async fn load(&self, name: &str) -> Result<Option<StoredUser>, UserError> {
        match self.read_user(name).await? {
            Loaded::Found(stored) => Ok(Some(stored)),
            Loaded::Missing => Ok(None),
            Loaded::Undecodable {
                stream,
                revision,
                reason,
            } => Err(Error::Corrupt {
                detail: format!("{stream} revision {revision}: {reason}"),
            }
            .into()),
        }
    }

    /// Reads and folds the stream of the user called `name`. Errors: the store's.
    async fn read_user(&self, name: &str) -> Result<Loaded, UserError> {
        let stream = user_stream(name)?;
        let events = match self
            .store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await
        {
            Ok(events) => events,
            Err(Error::StreamNotFound { .. }) => return Ok(Loaded::Missing),
            Err(error) => return Err(error.into()),
        };
        let undecodable = |revision, reason: String| Loaded::Undecodable {
            stream: stream.clone(),
            revision,
            reason,
        };
        let mut stored: Option<StoredUser> = None;
        for recorded in &events {
            let change: UserEvent = match serde_json::from_slice(&recorded.data) {
                Ok(change) => change,
                Err(error) => return Ok(undecodable(recorded.revision, error.to_string())),
            };
            match (change, stored.as_mut()) {
                (
                    UserEvent::UserCreated {
                        full_name,
                        groups,
                        password_hash,
                    },
                    None,
                ) => {
                    stored = Some(StoredUser {
                        user: User {
                            name: name.to_owned(),
                            full_name,
                            groups,
                            disabled: false,
                        },
                        password_hash,
                        revision: recorded.revision,
                    });
                }
                (UserEvent::PasswordChanged { password_hash }, Some(user)) => {
                    user.password_hash = password_hash;
                }
                (UserEvent::UserDisabled, Some(user)) => user.user.disabled = true,
                (UserEvent::UserEnabled, Some(user)) => user.user.disabled = false,
                (change, _) => {
                    let reason = format!("{} out of order", change.event_type());
                    return Ok(undecodable(recorded.revision, reason));
                }
            }
            if let Some(user) = stored.as_mut() {
                user.revision = recorded.revision;
            }
        }
        Ok(match stored {
            Some(stored) => Loaded::Found(stored),
            // No event left to read (a first event other than `UserCreated` is out of order).
            None => Loaded::Missing,
        })
    }

    fn fingerprint(&self, name: &str, password: &str) -> [u8; 64] {
        let mut hasher = Blake2b512::new();
        hasher.update(self.fingerprint_key);
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }
}

fn user_stream(name: &str) -> Result<StreamName, UserError> {
    let valid = !name.is_empty()
        && name.len() <= USER_NAME_BYTES_MAX
        && !name.starts_with('$')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if !valid {
        return Err(UserError::Invalid(format!(
            "a user name has 1 to {USER_NAME_BYTES_MAX} letters, digits, '_', '-', '.' or '@', \
             and does not start with '$' (got {name:?})"
        )));
    }
    Ok(StreamName::new(format!("$user-{name}"))?)
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.is_empty() || password.len() > PASSWORD_BYTES_MAX {
        return Err(UserError::Invalid(format!(
            "a password has 1 to {PASSWORD_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

fn event(change: &UserEvent) -> Result<ProposedEvent, Error> {
    ProposedEvent::json(change.event_type(), change)
}

fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Argon2 is deliberately slow: run it off the async workers.
async fn hash_blocking(password: String) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| UserError::Invalid("hashing the password failed".into()))?
        .map_err(|error| UserError::Invalid(format!("hashing the password failed: {error}")))
}

async fn verify_blocking(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use factum_memory::MemoryStore;

    fn users() -> (Arc<dyn EventStore>, UserStore) {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        (store.clone(), UserStore::new(store))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_created_user_authenticates_and_nothing_else_does_with_one_error() {
        let (store, users) = users();
        users
            .create("alice", "Alice A.", &["ops".into()], "correct horse")
            .await
            .unwrap();
        let principal = users.authenticate("alice", "correct horse").await.unwrap();
        assert_eq!(principal.name, "alice");
        assert_eq!(principal.groups, ["ops"]);
        // The cached path answers the same.
        assert_eq!(
            users.authenticate("alice", "correct horse").await.unwrap(),
            principal
        );
        for (name, password) in [("alice", "wrong"), ("bob", "correct horse"), ("$x", "y")] {
            assert!(matches!(
                users.authenticate(name, password).await,
                Err(UserError::InvalidCredentials)
            ));
        }
        // The password is stored hashed, never in clear.
        let stored = store
            .read_stream(
                &StreamName::new("$user-alice").unwrap(),
                ReadStreamOptions::forwards(),
            )
            .await
            .unwrap();
        let data = String::from_utf8(stored[0].data.to_vec()).unwrap();
        assert!(!data.contains("correct horse"));
        assert!(data.contains("$argon2id$"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_password_change_or_a_disable_takes_effect_on_the_next_call() {
        let (_, users) = users();
        users.create("alice", "", &[], "first").await.unwrap();
        users.authenticate("alice", "first").await.unwrap();
        users.change_password("alice", "second").await.unwrap();
        assert!(users.authenticate("alice", "first").await.is_err());
        users.authenticate("alice", "second").await.unwrap();
        users.set_disabled("alice", true).await.unwrap();
        assert!(users.authenticate("alice", "second").await.is_err());
        users.set_disabled("alice", false).await.unwrap();
        users.authenticate("alice", "second").await.unwrap();
    }

    /// Keeps the error events logged on this thread, as `field=value` text.
    struct ErrorLog(Arc<Mutex<Vec<String>>>);

    impl tracing::Subscriber for ErrorLog {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() != tracing::Level::ERROR {
                return;
            }
            let mut text = String::new();
            let mut visit = |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                text.push_str(&format!("{}={value:?} ", field.name()));
            };
            event.record(&mut visit);
            self.0.lock().unwrap().push(text);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    // Current thread: the log is caught on the test's thread.
    #[tokio::test]
    async fn a_user_whose_stream_does_not_decode_cannot_log_in_and_the_log_says_where() {
        let (store, users) = users();
        for name in ["alice", "bob", "carol"] {
            users.create(name, "", &[], "pw").await.unwrap();
        }
        // alice was verified (and remembered) before her stream went bad.
        users.authenticate("alice", "pw").await.unwrap();
        store
            .append(
                &StreamName::new("$user-alice").unwrap(),
                ExpectedRevision::Any,
                vec![ProposedEvent::bytes("PasswordChanged", "not json")],
            )
            .await
            .unwrap();
        // carol's stream decodes but makes no sense: created twice.
        let created = UserEvent::UserCreated {
            full_name: String::new(),
            groups: vec!["$admins".into()],
            password_hash: hash_password("other").unwrap(),
        };
        store
            .append(
                &StreamName::new("$user-carol").unwrap(),
                ExpectedRevision::Any,
                vec![event(&created).unwrap()],
            )
            .await
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let _logging = tracing::subscriber::set_default(ErrorLog(log.clone()));
        for (name, password) in [("alice", "pw"), ("carol", "pw"), ("carol", "other")] {
            assert!(
                matches!(
                    users.authenticate(name, password).await,
                    Err(UserError::InvalidCredentials)
                ),
                "{name} is refused as with bad credentials"
            );
        }
        users.authenticate("bob", "pw").await.unwrap();
        let log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 3, "{log:?}");
        assert!(log[0].contains("stream=$user-alice revision=1 "), "{log:?}");
        assert!(log[1].contains("stream=$user-carol revision=1 "), "{log:?}");
        assert!(log[1].contains("UserCreated out of order"), "{log:?}");
        // Elsewhere the stream is an error, not a missing user.
        assert!(matches!(
            users.get("alice").await,
            Err(UserError::Store(Error::Corrupt { .. }))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn names_are_unique_checked_and_listed() {
        let (_, users) = users();
        users.create("bob", "Bob", &[], "pw").await.unwrap();
        users
            .create("alice", "Alice", &["$admins".into()], "pw")
            .await
            .unwrap();
        assert!(matches!(
            users.create("bob", "Bob again", &[], "pw").await,
            Err(UserError::AlreadyExists(_))
        ));
        for bad in ["", "$admin", "a b", &"x".repeat(65)] {
            assert!(matches!(
                users.create(bad, "", &[], "pw").await,
                Err(UserError::Invalid(_))
            ));
        }
        assert!(matches!(
            users.create("carol", "", &[], "").await,
            Err(UserError::Invalid(_))
        ));
        assert!(matches!(
            users.change_password("nobody", "pw").await,
            Err(UserError::NotFound(_))
        ));
        let listed: Vec<String> = users
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|user| user.name)
            .collect();
        assert_eq!(listed, ["alice", "bob"]);
    }
}
