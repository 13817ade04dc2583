//! A route's servers as pingora's load balancer (`pingora::lb`) sees them: it picks the server
//! of each request (round robin, random, or consistent hashing by client id) among those that are
//! up, by the active health checks ([`crate::services::health`] runs them) and passively: a server
//! that refused a connection is skipped for a while. Host names are resolved again periodically
//! when the route asks.
//!
//! One [`Balancer`] per route, built with the config and swapped with it; a reload that leaves a
//! route's upstream settings as they were keeps its balancer (see
//! [`super::routes::RouteTable::keep_balancers`]), with its health and rotation.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pingora::lb::health_check::HealthCheck;
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, Random, RoundRobin};
use pingora::lb::{Backend, Backends, HealthRegistry, LoadBalancer};
use pingora::server::ShutdownWatch;

use super::discovery::{backend, Resolved, Resolver, ServerList};
use super::settings::{Balancing, HealthCheck as CheckSettings, UpstreamSettings};
use super::tls::UpstreamTls;

/// How long a server that refused a connection is skipped at most (the check interval, if
/// shorter): the next requests go to the others without waiting for the active check.
pub const PASSIVE_SKIP: Duration = Duration::from_secs(10);

/// The selection algorithm, one of pingora's.
enum Selector {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    Consistent(LoadBalancer<Consistent>),
}

/// `$body` with `$lb` bound to the load balancer, whatever its algorithm.
macro_rules! each {
    ($selector:expr, $lb:ident => $body:expr) => {
        match $selector {
            Selector::RoundRobin($lb) => $body,
            Selector::Random($lb) => $body,
            Selector::Consistent($lb) => $body,
        }
    };
}

fn load_balancer<S>(backends: Backends, resolve_interval: Option<Duration>) -> LoadBalancer<S>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let mut lb = LoadBalancer::from_backends(backends);
    lb.update_frequency = resolve_interval;
    lb
}

/// Servers that refused a connection lately, and until when they are skipped.
#[derive(Default)]
struct Skips {
    any: AtomicBool,
    until: Mutex<Vec<(SocketAddr, Instant)>>,
}

impl Skips {
    fn skip(&self, addr: SocketAddr, until: Instant) {
        let mut list = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        list.retain(|&(a, t)| a != addr && t > now);
        list.push((addr, until));
        self.any.store(true, Ordering::Relaxed);
    }

    fn is_skipped(&self, addr: SocketAddr) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        let mut list = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        list.retain(|&(_, t)| t > now);
        if list.is_empty() {
            self.any.store(false, Ordering::Relaxed);
        }
        list.iter().any(|&(a, _)| a == addr)
    }
}

/// Why a balancer could not be built.
#[derive(Debug, thiserror::Error)]
#[error("the load balancer could not take the servers: {0}")]
pub struct BalancerError(String);

/// How one server of a route is doing.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerHealth {
    pub server: Arc<str>,
    pub addr: SocketAddr,
    /// Passes the active check (true for a route without one).
    pub checked_up: bool,
    /// Refused a connection lately, so skipped while another server is up.
    pub skipped: bool,
}

impl ServerHealth {
    /// In the rotation: up by the active check and not skipped.
    pub fn healthy(&self) -> bool {
        self.checked_up && !self.skipped
    }
}

/// A route's load balancer: its settings, pingora's selection and health, the passive skips.
pub struct Balancer {
    route: Arc<str>,
    settings: UpstreamSettings,
    selector: Selector,
    registry: Arc<HealthRegistry>,
    servers: Arc<ServerList>,
    skips: Skips,
    check_installed: AtomicBool,
    max_iterations: usize,
    /// The one server of a route without a check or re-resolution: nothing to choose, the
    /// request path skips the selection.
    fixed: Option<SocketAddr>,
}

impl Balancer {
    /// The balancer of the route `route` (its path prefix, used in logs and metrics).
    pub fn new(route: &str, settings: UpstreamSettings) -> Result<Balancer, BalancerError> {
        let route: Arc<str> = Arc::from(route);
        let servers = Arc::new(ServerList::default());
        servers.replace(
            settings
                .servers
                .iter()
                .map(|s| Resolved {
                    name: Arc::from(s.name.as_str()),
                    host: Arc::from(s.host.as_str()),
                    port: s.port,
                    addr: s.addr,
                })
                .collect(),
        );
        let registry = Arc::new(HealthRegistry::new());
        let discovery = Box::new(Resolver::new(Arc::clone(&route), Arc::clone(&servers)));
        let backends = Backends::new_with_health_registry(discovery, Arc::clone(&registry));
        let every = settings.resolve_interval;
        let selector = match settings.balancing {
            Balancing::RoundRobin => Selector::RoundRobin(load_balancer(backends, every)),
            Balancing::Random => Selector::Random(load_balancer(backends, every)),
            Balancing::ConsistentHash => Selector::Consistent(load_balancer(backends, every)),
        };
        // The first discovery returns the servers resolved at load without waiting on anything.
        let updated = each!(&selector, lb => {
            let mut update = pin!(lb.update());
            update.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        });
        match updated {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(BalancerError(e.to_string())),
            Poll::Pending => return Err(BalancerError("the first update did not complete".into())),
        }
        let max_iterations = 256 + 16 * settings.servers.len();
        let fixed = match settings.servers.as_slice() {
            [one] if settings.health_check.is_none() && settings.resolve_interval.is_none() => Some(one.addr),
            _ => None,
        };
        Ok(Balancer {
            route,
            settings,
            selector,
            registry,
            servers,
            skips: Skips::default(),
            check_installed: AtomicBool::new(false),
            max_iterations,
            fixed,
        })
    }

    pub fn route(&self) -> &Arc<str> {
        &self.route
    }

    pub fn settings(&self) -> &UpstreamSettings {
        &self.settings
    }

    pub fn tls(&self) -> Option<&UpstreamTls> {
        self.settings.tls.as_ref()
    }

    pub fn servers(&self) -> &Arc<ServerList> {
        &self.servers
    }

    /// The server for a request: one up by the active check, not `exclude` (the server whose
    /// connection just failed) and preferably not skipped; `None` when no server is up. `key`
    /// is what consistent hashing goes by (the other algorithms ignore it).
    pub fn select(&self, key: &[u8], exclude: Option<SocketAddr>) -> Option<SocketAddr> {
        if let Some(addr) = self.fixed {
            // Skipped or not, the only server is tried: there is no other.
            return (exclude != Some(addr)).then_some(addr);
        }
        let pick = |allow_skipped: bool| {
            let accept = |b: &Backend, up: bool| {
                let addr = b.addr.as_inet().copied();
                up && addr.is_some()
                    && addr != exclude
                    && (allow_skipped || addr.is_none_or(|a| !self.skips.is_skipped(a)))
            };
            each!(&self.selector, lb => lb.select_with(key, self.max_iterations, accept))
                .and_then(|b| b.addr.as_inet().copied())
        };
        // Skipped servers are a preference: when every server that is up was skipped, one of
        // them is tried rather than answering 502 without trying.
        pick(false).or_else(|| {
            if self.skips.any.load(Ordering::Relaxed) {
                pick(true)
            } else {
                None
            }
        })
    }

    /// Whether a server other than `addr` could take a retry.
    pub fn has_other_than(&self, addr: SocketAddr) -> bool {
        let backends = each!(&self.selector, lb => lb.backends());
        self.servers
            .current()
            .iter()
            .any(|s| s.addr != addr && backends.ready(&backend(s.addr)))
    }

    /// Skips `addr` for the next requests: it refused a connection.
    pub fn skip(&self, addr: SocketAddr) {
        let skip = match &self.settings.health_check {
            Some(check) => check.interval.min(PASSIVE_SKIP),
            None => PASSIVE_SKIP,
        };
        self.skips.skip(addr, Instant::now() + skip);
    }

    /// Each server's health now, in the order of the config.
    pub fn health(&self) -> Vec<ServerHealth> {
        let backends = each!(&self.selector, lb => lb.backends());
        self.servers
            .current()
            .into_iter()
            .map(|s| ServerHealth {
                checked_up: backends.ready(&backend(s.addr)),
                skipped: self.skips.is_skipped(s.addr),
                server: s.name,
                addr: s.addr,
            })
            .collect()
    }

    /// The route's active check, if it has one.
    pub fn health_check(&self) -> Option<&CheckSettings> {
        self.settings.health_check.as_ref()
    }

    /// The health registry the active check reports to (for pingora's `HealthCheckService`).
    pub fn registry(&self) -> Arc<HealthRegistry> {
        Arc::clone(&self.registry)
    }

    /// Gives the registry its check; only the first call does (pingora allows one per registry).
    pub fn install_check(&self, check: Box<dyn HealthCheck + Send + Sync>) -> bool {
        if self.check_installed.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.registry.set_health_check(check);
        true
    }

    /// Resolves the servers' host names every `resolve_interval_secs` until `stop` says so;
    /// returns at once for a route that does not ask for it.
    pub async fn resolve_periodically(&self, stop: ShutdownWatch) {
        if self.settings.resolve_interval.is_some() {
            each!(&self.selector, lb => lb.run(stop, None).await);
        }
    }
}

/// Equal when built from equal settings for the same route.
impl PartialEq for Balancer {
    fn eq(&self, other: &Balancer) -> bool {
        self.route == other.route && self.settings == other.settings
    }
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("route", &self.route)
            .field("settings", &self.settings)
            .finish()
    }
}

#[cfg(test)]
#[path = "balancer_tests.rs"]
mod tests;
