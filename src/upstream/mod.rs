//! Where a route's requests go, below the config and the proxy: the upstream settings as data,
//! the TLS material for HTTPS to the servers, name resolution, and the load balancer built on
//! pingora's own (`pingora::lb`) that picks a healthy server for each request.

pub mod balancer;
pub(crate) mod discovery;
pub mod settings;
pub mod tls;
