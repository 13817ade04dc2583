//! The operations listener on `[server] metrics_listen`: `GET /metrics` in the Prometheus text
//! format and `GET /healthz` (`ok`; with `?detail`, each route's servers and their health in
//! JSON). Plain HTTP on its own port, so it can stay on a private network (or loopback) while
//! the gateway's listener faces clients.

use std::sync::Arc;

use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

use crate::state::AppState;
use crate::store::shared::SyncState;
use crate::upstream::balancer::ServerHealth;

/// The Prometheus text exposition content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The token store's part of `/healthz`.
struct StoreHealth {
    state: &'static str,
    caught_up_ms_ago: Option<u64>,
}

/// Answers `/metrics` and `/healthz` from the gateway's state.
pub struct OpsApp {
    state: Arc<AppState>,
}

impl OpsApp {
    pub fn new(state: Arc<AppState>) -> OpsApp {
        OpsApp { state }
    }

    /// Each live route (its path prefix) with the health of its servers.
    fn upstreams(&self) -> Vec<(String, Vec<ServerHealth>)> {
        let live = self.state.live();
        live.config
            .routes
            .iter()
            .map(|r| (r.path_prefix.clone(), r.upstream.health()))
            .collect()
    }

    /// `/healthz?detail`: the gateway serves, and how each route's servers are doing.
    fn health_detail(&self) -> Vec<u8> {
        let routes = self.upstreams();
        let up = |servers: &[ServerHealth]| servers.iter().filter(|s| s.healthy()).count();
        let status = if routes.iter().any(|(_, s)| up(s) == 0) {
            "failing"
        } else if routes.iter().any(|(_, s)| up(s) < s.len()) {
            "degraded"
        } else {
            "ok"
        };
        let routes: Vec<serde_json::Value> = routes
            .iter()
            .map(|(prefix, servers)| {
                let list: Vec<serde_json::Value> = servers
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "server": &*s.server,
                            "address": s.addr.to_string(),
                            "healthy": s.healthy(),
                            "health_check_passes": s.checked_up,
                            "skipped_after_failure": s.skipped,
                        })
                    })
                    .collect();
                serde_json::json!({"path_prefix": prefix, "servers_up": up(servers), "servers": list})
            })
            .collect();
        let store = self.store_health();
        let status = match store.state {
            "ok" => status,
            "unreachable" => "degraded",
            _ => "failing",
        };
        let store = serde_json::json!({
            "state": store.state,
            "shared": self.state.tokens.feed().is_some(),
            "caught_up_ms_ago": store.caught_up_ms_ago,
        });
        let mut body = serde_json::json!({"status": status, "store": store, "routes": routes}).to_string();
        body.push('\n');
        body.into_bytes()
    }

    /// The store's state as `/healthz` tells it: `ok`; `unreachable` (a cluster node cut off
    /// from the database, still answering bearer checks from its index); `stale` (cut off longer
    /// than `store.stale_after_secs`: bearer checks answer 503).
    fn store_health(&self) -> StoreHealth {
        let Some(feed) = self.state.tokens.feed() else {
            return StoreHealth {
                state: "ok",
                caught_up_ms_ago: None,
            };
        };
        let now = crate::domain::ids::now_ms();
        let live = self.state.live();
        let stale_after_ms = live.config.start.store.stale_after.as_millis() as u64;
        let state = if !self.state.tokens.index_is_fresh(now, stale_after_ms) {
            "stale"
        } else if feed.state() == SyncState::Ok {
            "ok"
        } else {
            "unreachable"
        };
        StoreHealth {
            state,
            caught_up_ms_ago: Some(now.saturating_sub(feed.caught_up_at_ms())),
        }
    }

    /// The answer to `method path?query`: status, content type and body.
    pub fn answer(&self, method: &Method, path: &str, query: Option<&str>) -> (StatusCode, &'static str, Vec<u8>) {
        let text = "text/plain; charset=utf-8";
        if path != "/metrics" && path != "/healthz" {
            return (StatusCode::NOT_FOUND, text, b"not found\n".to_vec());
        }
        if method != Method::GET {
            return (StatusCode::METHOD_NOT_ALLOWED, text, b"use GET\n".to_vec());
        }
        if path == "/healthz" {
            // This listener runs in the gateway's server: answering means the gateway serves.
            let detail = query.is_some_and(|q| q.split('&').any(|p| p == "detail" || p.starts_with("detail=")));
            let store = self.store_health();
            let code = if store.state == "stale" {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            if detail {
                return (code, "application/json", self.health_detail());
            }
            let line: &[u8] = match store.state {
                "ok" => b"ok\n",
                "unreachable" => b"degraded: the token store cannot be reached; bearer checks use the index\n",
                _ => b"stale: cut off from the token store too long; bearer checks answer 503\n",
            };
            return (code, text, line.to_vec());
        }
        let index = self.state.tokens.index();
        let connections = i64::try_from(self.state.connections.open()).unwrap_or(i64::MAX);
        self.state.metrics.client_connections.set(connections);
        let upstreams = self.upstreams();
        self.state.metrics.upstream_health(
            upstreams
                .iter()
                .flat_map(|(route, servers)| servers.iter().map(move |s| (route.as_str(), &*s.server, s.healthy()))),
        );
        match self
            .state
            .metrics
            .render(index.access_len(), index.refresh_len(), &index.client_lens())
        {
            Ok(body) => (StatusCode::OK, PROMETHEUS_TEXT, body),
            Err(e) => {
                log::error!("cannot encode metrics: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    text,
                    b"cannot encode metrics\n".to_vec(),
                )
            }
        }
    }
}

#[async_trait]
impl ServeHttp for OpsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let (status, content_type, body) = self.answer(&req.method, req.uri.path(), req.uri.query());
        if req.method != Method::GET {
            // A body we did not read must not be taken for the next request.
            session.set_keepalive(None);
        }
        let len = body.len();
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
        h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
        h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
        resp
    }
}

/// The pingora service listening on `addr` (one thread: scrapes are rare).
pub fn service(state: Arc<AppState>, addr: &str) -> Service<OpsApp> {
    let mut svc = Service::new("metrics".to_string(), OpsApp::new(state));
    svc.add_tcp(addr);
    svc.threads = Some(1);
    svc
}
