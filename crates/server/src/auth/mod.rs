//! Authentication and authorisation: users kept in the store ([`users`]), credentials checked
//! on every request when the server requires them ([`middleware`]), and stream ACLs ([`acl`])
//! enforced by handing each authenticated request the store as its user may use it
//! ([`guard`]).

pub mod acl;
pub mod guard;
pub mod middleware;
pub mod users;
