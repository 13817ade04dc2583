//! A route's servers as they are reached now, and pingora's discovery of them: the addresses
//! the config resolved, resolved again on each later call (the load balancer makes one every
//! `resolve_interval_secs`, when the route sets it).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::{Backend, Extensions};
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;

/// One server as it is reached now.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// As written in the config (`host:port`).
    pub name: Arc<str>,
    /// The host part: the default SNI.
    pub host: Arc<str>,
    pub port: u16,
    pub addr: SocketAddr,
}

/// The route's servers by address, now and before the last re-resolution (a request may still
/// hold an address the selector gave out just before).
#[derive(Debug, Default)]
struct Known {
    current: Vec<Resolved>,
    previous: Vec<Resolved>,
}

/// The servers of one route, shared by the balancer, its discovery and its health check.
#[derive(Debug, Default)]
pub struct ServerList(ArcSwap<Known>);

impl ServerList {
    /// The servers as they are reached now.
    pub fn current(&self) -> Vec<Resolved> {
        self.0.load().current.clone()
    }

    /// The server at `addr`.
    pub fn find(&self, addr: SocketAddr) -> Option<Resolved> {
        let known = self.0.load();
        known
            .current
            .iter()
            .chain(&known.previous)
            .find(|s| s.addr == addr)
            .cloned()
    }

    pub fn replace(&self, next: Vec<Resolved>) {
        let previous = self.0.load().current.clone();
        self.0.store(Arc::new(Known {
            current: next,
            previous,
        }));
    }
}

pub fn backend(addr: SocketAddr) -> Backend {
    Backend {
        addr: PeerAddr::Inet(addr),
        weight: 1,
        ext: Extensions::new(),
    }
}

fn backend_set(servers: &[Resolved]) -> BTreeSet<Backend> {
    servers.iter().map(|s| backend(s.addr)).collect()
}

/// pingora's discovery for a route: its servers, resolved again on every call but the first
/// (the load balancer calls it every `resolve_interval_secs`, when the route sets it).
pub struct Resolver {
    route: Arc<str>,
    servers: Arc<ServerList>,
    first: AtomicBool,
}

impl Resolver {
    pub fn new(route: Arc<str>, servers: Arc<ServerList>) -> Resolver {
        Resolver {
            route,
            servers,
            first: AtomicBool::new(true),
        }
    }
}

#[async_trait]
impl ServiceDiscovery for Resolver {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        if self.first.swap(false, Ordering::Relaxed) {
            return Ok((backend_set(&self.servers.current()), HashMap::new()));
        }
        let mut next = self.servers.current();
        for server in &mut next {
            match tokio::net::lookup_host((&*server.host, server.port)).await {
                Ok(mut addrs) => match addrs.next() {
                    Some(addr) if addr != server.addr => {
                        log::info!(
                            "route {}: {} now resolves to {addr} (was {})",
                            self.route,
                            server.name,
                            server.addr
                        );
                        server.addr = addr;
                    }
                    Some(_) => {}
                    None => log::warn!(
                        "route {}: {} resolves to nothing; keeping {}",
                        self.route,
                        server.name,
                        server.addr
                    ),
                },
                Err(e) => log::warn!(
                    "route {}: cannot resolve {}: {e}; keeping {}",
                    self.route,
                    server.name,
                    server.addr
                ),
            }
        }
        let set = backend_set(&next);
        self.servers.replace(next);
        Ok((set, HashMap::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_discovery_takes_the_loaded_addresses_and_later_ones_resolve_again() {
        let loaded = SocketAddr::from(([10, 0, 0, 1], 9));
        let servers = Arc::new(ServerList::default());
        servers.replace(vec![Resolved {
            name: Arc::from("localhost:9"),
            host: Arc::from("localhost"),
            port: 9,
            addr: loaded,
        }]);
        let resolver = Resolver::new(Arc::from("/api"), Arc::clone(&servers));
        let (first, _) = resolver.discover().await.unwrap();
        assert_eq!(first, BTreeSet::from([backend(loaded)]));
        let (again, _) = resolver.discover().await.unwrap();
        let now = servers.current()[0].addr;
        assert!(now.ip().is_loopback(), "{now}");
        assert_eq!(again, BTreeSet::from([backend(now)]));
        // A request may still hold the old address: its server is still known.
        assert_eq!(servers.find(loaded).map(|s| s.name), Some(Arc::from("localhost:9")));
    }
}
