//! Stream access control: who may read, write, delete, and read or write the metadata of a
//! stream, from the `$acl` of its metadata (KurrentDB's shape) and the server's defaults.
//!
//! `$acl` is a JSON object whose keys `$r`, `$w`, `$d`, `$mr`, `$mw` each hold a role or a list
//! of roles: a user name, a group name, `$all` (every authenticated user) or `$admins`. A key
//! that is absent falls back to the default: every authenticated user for user streams, admins
//! only for system streams (names starting with `$`). Admins may do everything. Reading `$all`
//! is for admins and the configured readers' group: it shows every stream.

use factum_core::StreamName;
use serde_json::Value;

/// The group whose members may do everything.
pub const ADMINS_GROUP: &str = "$admins";

/// The role that stands for every authenticated user.
pub const EVERYONE_ROLE: &str = "$all";

/// What a caller wants to do to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read its events (and subscribe to it).
    Read,
    /// Append to it.
    Write,
    /// Soft-delete or tombstone it.
    Delete,
    /// Read its metadata (`$$stream`).
    MetadataRead,
    /// Write its metadata (`$$stream`).
    MetadataWrite,
}

impl Operation {
    /// The `$acl` key that governs this operation.
    pub fn acl_key(self) -> &'static str {
        match self {
            Operation::Read => "$r",
            Operation::Write => "$w",
            Operation::Delete => "$d",
            Operation::MetadataRead => "$mr",
            Operation::MetadataWrite => "$mw",
        }
    }

    /// Every operation, for test matrices and listings.
    pub const ALL: [Operation; 5] = [
        Operation::Read,
        Operation::Write,
        Operation::Delete,
        Operation::MetadataRead,
        Operation::MetadataWrite,
    ];
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name.
    pub name: String,
    /// The groups the user belongs to.
    pub groups: Vec<String>,
}

impl Principal {
    /// Whether the caller is an administrator (a member of `$admins`).
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|group| group == ADMINS_GROUP)
    }

    fn has_role(&self, role: &str) -> bool {
        role == EVERYONE_ROLE || role == self.name || self.groups.iter().any(|group| group == role)
    }
}

/// An `$acl` that is not the object of role lists the rules need.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid $acl: {0}")]
pub struct InvalidAcl(String);

/// The server's access rules beyond each stream's `$acl`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Members of this group may read `$all` (and subscribe to it) besides admins.
    pub all_readers_group: Option<String>,
}

impl AccessPolicy {
    /// Whether `principal` may do `operation` on `stream`, whose metadata's `$acl` is `acl`.
    /// For a metadata stream `$$s`, pass `s` and a metadata operation (see [`target_of`]).
    pub fn allows(
        &self,
        principal: &Principal,
        operation: Operation,
        stream: &StreamName,
        acl: Option<&Value>,
    ) -> Result<bool, InvalidAcl> {
        if principal.is_admin() {
            return Ok(true);
        }
        let roles = match acl {
            None | Some(Value::Null) => None,
            Some(Value::Object(acl)) => roles_of(acl.get(operation.acl_key()))?,
            Some(_) => return Err(InvalidAcl("it must be a JSON object".into())),
        };
        Ok(match roles {
            Some(roles) => roles.iter().any(|role| principal.has_role(role)),
            // No rule for this operation: user streams are open to every authenticated
            // user, system streams to admins only.
            None => !stream.is_system(),
        })
    }

    /// Whether `principal` may read `$all`: it shows every stream, so only admins and the
    /// configured readers' group.
    pub fn may_read_all(&self, principal: &Principal) -> bool {
        principal.is_admin()
            || self
                .all_readers_group
                .as_ref()
                .is_some_and(|group| principal.groups.contains(group))
    }
}

/// The stream and operation an access to `stream` is judged by: reading or writing a metadata
/// stream `$$s` is reading or writing the metadata of `s`.
pub fn target_of(stream: &StreamName, operation: Operation) -> (StreamName, Operation) {
    match (stream.metadata_of(), operation) {
        (Some(described), Operation::Read) => (described, Operation::MetadataRead),
        (Some(described), Operation::Write) => (described, Operation::MetadataWrite),
        (Some(described), other) => (described, other),
        (None, other) => (stream.clone(), other),
    }
}

fn roles_of(value: Option<&Value>) -> Result<Option<Vec<String>>, InvalidAcl> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(role)) => Ok(Some(vec![role.clone()])),
        Some(Value::Array(roles)) => roles
            .iter()
            .map(|role| match role {
                Value::String(role) => Ok(role.clone()),
                other => Err(InvalidAcl(format!("a role must be a string, not {other}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(InvalidAcl(format!(
            "a rule must be a role or a list of roles, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> Principal {
        Principal {
            name: name.into(),
            groups: groups.iter().map(|group| (*group).to_owned()).collect(),
        }
    }

    fn stream(name: &str) -> StreamName {
        StreamName::new(name).unwrap()
    }

    #[test]
    fn without_an_acl_user_streams_are_open_and_system_streams_are_for_admins() {
        let policy = AccessPolicy::default();
        let alice = user("alice", &[]);
        let admin = user("root", &[ADMINS_GROUP]);
        for operation in Operation::ALL {
            assert!(
                policy
                    .allows(&alice, operation, &stream("orders"), None)
                    .unwrap()
            );
            assert!(
                !policy
                    .allows(&alice, operation, &stream("$users"), None)
                    .unwrap()
            );
            assert!(
                policy
                    .allows(&admin, operation, &stream("$users"), None)
                    .unwrap()
            );
        }
    }

    #[test]
    fn each_operation_follows_its_own_key_with_users_groups_and_everyone() {
        let policy = AccessPolicy::default();
        let acl = json!({"$r": ["alice", "auditors"], "$w": "alice", "$d": [], "$mr": "$all"});
        let s = stream("ledger");
        let alice = user("alice", &[]);
        let auditor = user("bob", &["auditors"]);
        let other = user("carol", &["sales"]);
        let allows =
            |who: &Principal, operation| policy.allows(who, operation, &s, Some(&acl)).unwrap();
        assert!(allows(&alice, Operation::Read));
        assert!(allows(&auditor, Operation::Read));
        assert!(!allows(&other, Operation::Read));
        assert!(allows(&alice, Operation::Write));
        assert!(!allows(&auditor, Operation::Write));
        // An empty list allows nobody but admins.
        assert!(!allows(&alice, Operation::Delete));
        assert!(allows(&other, Operation::MetadataRead));
        // `$mw` is absent: the default for a user stream.
        assert!(allows(&other, Operation::MetadataWrite));
        let admin = user("root", &[ADMINS_GROUP]);
        assert!(allows(&admin, Operation::Delete));
    }

    #[test]
    fn a_malformed_acl_is_an_error_not_an_open_door() {
        let policy = AccessPolicy::default();
        let alice = user("alice", &[]);
        for acl in [
            json!("alice"),
            json!({"$r": 3}),
            json!({"$r": ["alice", 3]}),
        ] {
            assert!(
                policy
                    .allows(&alice, Operation::Read, &stream("s"), Some(&acl))
                    .is_err(),
                "{acl}"
            );
        }
    }

    #[test]
    fn reading_all_is_for_admins_and_the_readers_group() {
        let policy = AccessPolicy {
            all_readers_group: Some("readers".into()),
        };
        assert!(policy.may_read_all(&user("root", &[ADMINS_GROUP])));
        assert!(policy.may_read_all(&user("r", &["readers"])));
        assert!(!policy.may_read_all(&user("alice", &[])));
        assert!(!AccessPolicy::default().may_read_all(&user("r", &["readers"])));
    }

    #[test]
    fn metadata_streams_are_judged_by_the_metadata_rules_of_the_stream_they_describe() {
        assert_eq!(
            target_of(&stream("$$orders"), Operation::Read),
            (stream("orders"), Operation::MetadataRead)
        );
        assert_eq!(
            target_of(&stream("$$orders"), Operation::Write),
            (stream("orders"), Operation::MetadataWrite)
        );
        assert_eq!(
            target_of(&stream("orders"), Operation::Write),
            (stream("orders"), Operation::Write)
        );
    }
}
