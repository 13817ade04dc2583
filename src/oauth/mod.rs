//! OAuth2 protocol logic: grants, client authentication, the renewal policy and the endpoints.
//! Plain Rust, unaware of pingora: it takes parsed inputs and returns replies.

pub mod client_auth;
pub mod documents;
pub mod endpoints;
pub mod errors;
pub mod form;
pub mod grant_type;
pub mod lockout;
pub mod passwords;
pub mod policy;
pub mod token_endpoint;
