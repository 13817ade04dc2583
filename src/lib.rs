//! tokengate: an OAuth2 token gateway on pingora with WSO2's "multiple active access tokens"
//! renewal policy. See docs/architecture.md for the module map. The modules below are listed by
//! layer, bottom first: each uses only those above it in this list (and `tests/layers.rs` keeps
//! it so).

// 0: the vocabulary and small helpers.
pub mod demo_upstream;
pub mod domain;
pub mod fsutil;
pub mod logging;
pub mod reply;

// 1: durable rows; a route's servers.
pub mod store;
pub mod upstream;

// 2: the configuration model; the token engine.
pub mod config;
pub mod tokens;

// 3: metrics.
pub mod metrics;

// 4: OAuth grants and endpoints.
pub mod oauth;

// 5: the wiring.
pub mod state;

// 6: pingora's glue, the background services and the admin API.
pub mod admin;
pub mod gateway;
pub mod services;
pub mod tls;
