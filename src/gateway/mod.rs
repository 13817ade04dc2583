//! HTTP side, pingora's glue: request targets, bearer checks, identity and forwarding headers,
//! the connection bound and the drain at shutdown, and the proxy that ties them together.

pub mod bearer;
pub(crate) mod body;
pub mod connections;
pub mod dpop;
pub mod drain;
pub(crate) mod forwarded;
pub(crate) mod identity;
pub mod last_token;
pub(crate) mod limits;
pub mod proxy;
pub(crate) mod target;
pub(crate) mod upstream;

/// Where these lived before the domain and config layers took them (kept for existing users).
pub use crate::config::routes;
pub use crate::domain::path;
