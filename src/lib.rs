//! tokengate: an OAuth2 token gateway on pingora with WSO2's "multiple active access tokens"
//! renewal policy. See docs/architecture.md for the module map and its layers.

pub mod config;
pub mod demo_upstream;
pub mod domain;
pub mod fsutil;
pub mod gateway;
pub mod logging;
pub mod metrics;
pub mod oauth;
pub mod reply;
pub mod services;
pub mod state;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod upstream;
