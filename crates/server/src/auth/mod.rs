//! Authentication and authorisation: users kept in the store ([`users`]) and stream ACLs
//! ([`acl`]). Not wired into the request path yet: the server is anonymous and plain-text
//! until TLS and credentials are required (see `docs/server.md`).

pub mod acl;
pub mod users;
