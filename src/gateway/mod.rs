//! HTTP side: the route table, bearer checks and the pingora proxy that ties them together.

pub mod balancer;
pub mod bearer;
pub mod connections;
pub mod discovery;
pub mod forwarded;
pub mod identity;
pub mod limits;
pub mod path;
pub mod proxy;
pub mod routes;
pub mod target;
pub mod upstream;
pub mod upstream_tls;
