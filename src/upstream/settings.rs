//! A route's upstream settings as data: its servers, how one is chosen, the active check, HTTPS
//! to them and re-resolution. Read from `[[routes]]` by the config ([`crate::config::upstreams`]);
//! the [`super::balancer`] is built from them.

use std::net::SocketAddr;
use std::time::Duration;

use super::tls::UpstreamTls;

/// More servers than this in one route is surely a mistake (and pingora's selection has bounds).
pub const MAX_SERVERS: usize = 1000;
/// `health_check.interval_secs` when unset.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// `health_check.timeout_ms` when unset.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_millis(1000);

/// One server of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// As written: `host:port`.
    pub name: String,
    /// The host part (brackets of an IPv6 address taken off): the default SNI.
    pub host: String,
    pub port: u16,
    /// The address `name` resolved to when the file was loaded (the first one).
    pub addr: SocketAddr,
}

/// `load_balancing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balancing {
    RoundRobin,
    Random,
    /// By the token's client id (the client's address on a public route): a client stays on one
    /// server while that server is up.
    ConsistentHash,
}

/// `health_check`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// `GET` this path and expect 200; `None`: a TCP connect check.
    pub path: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Everything about where a route's requests go.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSettings {
    pub servers: Vec<Server>,
    pub balancing: Balancing,
    pub health_check: Option<HealthCheck>,
    pub tls: Option<UpstreamTls>,
    /// How often host names are resolved again; `None`: only when the file is loaded.
    pub resolve_interval: Option<Duration>,
}

impl UpstreamSettings {
    /// Plain HTTP to `addrs`, by round robin, without checks (for tests and examples).
    pub fn plain(addrs: &[SocketAddr]) -> UpstreamSettings {
        UpstreamSettings {
            servers: addrs
                .iter()
                .map(|a| Server {
                    name: a.to_string(),
                    host: a.ip().to_string(),
                    port: a.port(),
                    addr: *a,
                })
                .collect(),
            balancing: Balancing::RoundRobin,
            health_check: None,
            tls: None,
            resolve_interval: None,
        }
    }
}
