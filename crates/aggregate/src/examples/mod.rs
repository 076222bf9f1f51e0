//! Example domains, used by the documentation, the tests and the demo: the article's
//! [`bank`] account, and an [`order`] whose event schema changed twice.

pub mod bank;
pub mod order;
