//! Tokens: identity ([`key`]), formats, minting ([`opaque`], [`jwt`]), records, the in-memory
//! [`index`], and the engine that issues, refreshes and revokes ([`service`], [`lifecycle`]; many tokens at once:
//! [`bulk`]),
//! within the bounds on tokens held at once ([`capacity`], [`client_counts`]).

pub mod bulk;
pub(crate) mod capacity;
pub(crate) mod client_counts;
pub(crate) mod dead_ids;
pub(crate) mod id_set;
pub mod index;
pub(crate) mod intern;
mod issue;
pub mod jwt;
pub mod lifecycle;
pub mod opaque;
mod opaque_body;
mod presign;
pub mod record;
pub mod request;
pub(crate) mod rows;
pub mod service;
mod sync;

#[cfg(test)]
mod audience_tests;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
#[path = "engine_fixture_tests.rs"]
pub(crate) mod test_engine;

/// Where these lived before the domain layer took them (kept for existing users).
pub use crate::domain::{format, key};
