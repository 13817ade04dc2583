//! OAuth2 protocol logic: grants, client authentication, the renewal policy and the endpoints.
//! Plain Rust, unaware of pingora: it takes parsed inputs and returns replies.

pub mod client_assertion;
pub mod client_auth;
pub mod deps;
pub(crate) mod documents;
pub mod dpop;
pub mod dpop_client;
pub mod dpop_grant;
pub mod dpop_nonce;
pub(crate) mod endpoints;
pub mod errors;
pub mod form;
pub mod lockout;
pub mod passwords;
pub mod replay;
pub mod token_endpoint;

/// Where these lived before the domain layer took them (kept for existing users).
pub use crate::domain::{grant_type, policy};
