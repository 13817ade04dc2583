//! HTTP side, pingora's glue: request targets, bearer checks, identity and forwarding headers,
//! the connection bound, and the proxy that ties them together.

pub mod bearer;
pub mod connections;
pub mod forwarded;
pub mod identity;
pub mod limits;
pub mod proxy;
pub mod target;
pub mod upstream;

/// Where these lived before the domain and config layers took them (kept for existing users).
pub use crate::config::routes;
pub use crate::domain::path;
