//! The routes' background work, following the live config: the active health checks of their
//! servers (pingora's `TcpHealthCheck` or `HttpHealthCheck`, run by pingora's
//! `HealthCheckService`) and the periodic re-resolution of host names (pingora's load balancer
//! run as a service).
//!
//! Each route's balancer gets its tasks when it enters the live config and loses them when it
//! leaves it: on every config swap the tasks of the balancers gone are told to stop, and those of
//! new balancers start. A reload that keeps a route's upstream settings keeps its balancer, and so
//! its tasks. The set of running tasks lives in this service, not in a process-wide registry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::{Backend, HealthCheckService};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::{Error, ErrorType};
use tokio::sync::watch;

use crate::config::routes::RouteTable;
use crate::state::AppState;
use crate::upstream::balancer::Balancer;
use crate::upstream::discovery::ServerList;
use crate::upstream::settings::HealthCheck as CheckSettings;

/// How a route's servers are checked.
enum Probe {
    Tcp(Box<TcpHealthCheck>),
    /// One HTTP check per server name: each sends its own `Host` header and SNI.
    Http(Vec<(Arc<str>, HttpHealthCheck)>),
}

/// A route's active check: pingora's check of the right kind, bounded by the route's timeout and
/// named after the route and server in pingora's log lines.
pub struct RouteCheck {
    route: Arc<str>,
    servers: Arc<ServerList>,
    timeout: Duration,
    probe: Probe,
}

impl RouteCheck {
    /// The check `settings` asks for, for the servers of `balancer`; `None` when the HTTP
    /// request cannot be built (the config check makes that impossible).
    pub fn new(balancer: &Balancer, settings: &CheckSettings) -> Option<RouteCheck> {
        let probe = match &settings.path {
            None => {
                let mut tcp = TcpHealthCheck::new();
                tcp.peer_template.options.connection_timeout = Some(settings.timeout);
                Probe::Tcp(tcp)
            }
            Some(path) => {
                let tls = balancer.tls();
                let mut checks = Vec::new();
                for server in balancer.servers().current() {
                    let mut http = HttpHealthCheck::new(&server.name, tls.is_some());
                    let mut req = RequestHeader::build("GET", path.as_bytes(), None).ok()?;
                    req.insert_header("Host", &*server.name).ok()?;
                    req.insert_header("User-Agent", "tokengate-health-check").ok()?;
                    http.req = req;
                    let options = &mut http.peer_template.options;
                    options.connection_timeout = Some(settings.timeout);
                    options.read_timeout = Some(settings.timeout);
                    options.write_timeout = Some(settings.timeout);
                    if let Some(tls) = tls {
                        http.peer_template.sni = tls.sni_for(&server.host).to_string();
                        tls.apply(&mut http.peer_template);
                    }
                    checks.push((server.name, http));
                }
                Probe::Http(checks)
            }
        };
        Some(RouteCheck {
            route: Arc::clone(balancer.route()),
            servers: Arc::clone(balancer.servers()),
            timeout: settings.timeout,
            probe,
        })
    }

    fn server_name(&self, addr: Option<SocketAddr>) -> String {
        match addr.and_then(|a| self.servers.find(a)) {
            Some(s) if s.name.as_ref() == s.addr.to_string() => s.name.to_string(),
            Some(s) => format!("{} ({})", s.name, s.addr),
            None => addr.map_or_else(|| "?".to_string(), |a| a.to_string()),
        }
    }
}

#[async_trait]
impl HealthCheck for RouteCheck {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let probe = async {
            match &self.probe {
                Probe::Tcp(tcp) => tcp.check(target).await,
                Probe::Http(checks) => {
                    let server = target.addr.as_inet().and_then(|a| self.servers.find(*a));
                    let check = server
                        .and_then(|s| checks.iter().find(|(name, _)| *name == s.name))
                        .or(checks.first())
                        .map(|(_, check)| check);
                    match check {
                        Some(check) => check.check(target).await,
                        None => Error::e_explain(ErrorType::InternalError, "no check for this server"),
                    }
                }
            }
        };
        match tokio::time::timeout(self.timeout, probe).await {
            Ok(result) => result,
            Err(_) => Error::e_explain(
                ErrorType::ReadTimedout,
                format!("no answer within {} ms", self.timeout.as_millis()),
            ),
        }
    }

    fn health_threshold(&self, _success: bool) -> usize {
        1
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        // pingora logs the failure itself, as a warning with its reason.
        if healthy {
            let server = self.server_name(target.addr.as_inet().copied());
            log::info!(
                "route {}: upstream {server} passes its health check: back in the rotation",
                self.route
            );
        }
    }

    fn backend_summary(&self, target: &Backend) -> String {
        format!(
            "route {}: upstream {}",
            self.route,
            self.server_name(target.addr.as_inet().copied())
        )
    }
}

/// The tasks of one balancer; dropping it tells them to stop.
struct Running {
    balancer: Arc<Balancer>,
    stop: watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // pingora's services return when the watch says true (not when it closes).
        self.stop.send_replace(true);
    }
}

/// Starts the active check and the re-resolution of `balancer`, as far as its route has them.
fn start(balancer: &Arc<Balancer>) -> Running {
    let (stop, watch) = watch::channel(false);
    if let Some(settings) = balancer.health_check() {
        match RouteCheck::new(balancer, settings) {
            Some(check) => {
                balancer.install_check(Box::new(check));
                log::debug!(
                    "route {}: health check every {:?}, {}",
                    balancer.route(),
                    settings.interval,
                    settings
                        .path
                        .as_deref()
                        .map_or("TCP".to_string(), |p| format!("GET {p}"))
                );
                let mut service = HealthCheckService::new(balancer.registry());
                service.health_check_frequency = Some(settings.interval);
                service.parallel_health_check = true;
                let stop: ShutdownWatch = watch.clone();
                tokio::spawn(async move { service.start(stop).await });
            }
            None => log::error!("route {}: the health check cannot be built", balancer.route()),
        }
    }
    if balancer.settings().resolve_interval.is_some() {
        let balancer = Arc::clone(balancer);
        let stop: ShutdownWatch = watch.clone();
        tokio::spawn(async move { balancer.resolve_periodically(stop).await });
    }
    Running {
        balancer: Arc::clone(balancer),
        stop,
    }
}

/// Stops the tasks of balancers that left `routes` and starts those of balancers that entered.
fn follow(running: &mut Vec<Running>, routes: &RouteTable) {
    running.retain(|r| routes.iter().any(|route| Arc::ptr_eq(&route.upstream, &r.balancer)));
    for route in routes.iter() {
        if !running.iter().any(|r| Arc::ptr_eq(&r.balancer, &route.upstream)) {
            running.push(start(&route.upstream));
        }
    }
}

/// The pingora background service that keeps each live route's tasks running.
pub struct UpstreamHealth {
    state: Arc<AppState>,
}

impl UpstreamHealth {
    pub fn new(state: Arc<AppState>) -> UpstreamHealth {
        UpstreamHealth { state }
    }
}

#[async_trait]
impl BackgroundService for UpstreamHealth {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut versions = self.state.config_versions();
        let mut running = Vec::new();
        loop {
            versions.borrow_and_update();
            follow(&mut running, &self.state.live().config.routes);
            tokio::select! {
                _ = shutdown.changed() => return,
                changed = versions.changed() => {
                    if changed.is_err() {
                        // The state is gone: nothing will change any more.
                        let _ = shutdown.changed().await;
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
