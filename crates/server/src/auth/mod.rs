//! Authentication and authorisation: users kept in the store ([`users`]), credentials checked
//! on every request when the server requires them ([`middleware`]), and stream ACLs ([`acl`],
//! not yet enforced on requests; see `docs/server.md`).

pub mod acl;
pub mod middleware;
pub mod users;
