//! The operations listener on `[server] metrics_listen`: `GET /metrics` in the Prometheus text
//! format and `GET /healthz`. Plain HTTP on its own port, so it can stay on a private network
//! (or loopback) while the gateway's listener faces clients.

use std::sync::Arc;

use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

use crate::state::AppState;

/// The Prometheus text exposition content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers `/metrics` and `/healthz` from the gateway's state.
pub struct OpsApp {
    state: Arc<AppState>,
}

impl OpsApp {
    pub fn new(state: Arc<AppState>) -> OpsApp {
        OpsApp { state }
    }

    /// The answer to `method path`: status, content type and body.
    pub fn answer(&self, method: &Method, path: &str) -> (StatusCode, &'static str, Vec<u8>) {
        let text = "text/plain; charset=utf-8";
        if path != "/metrics" && path != "/healthz" {
            return (StatusCode::NOT_FOUND, text, b"not found\n".to_vec());
        }
        if method != Method::GET {
            return (StatusCode::METHOD_NOT_ALLOWED, text, b"use GET\n".to_vec());
        }
        if path == "/healthz" {
            // This listener runs in the gateway's server: answering means the gateway serves.
            return (StatusCode::OK, text, b"ok\n".to_vec());
        }
        let index = self.state.tokens.index();
        let connections = i64::try_from(self.state.connections.open()).unwrap_or(i64::MAX);
        self.state.metrics.client_connections.set(connections);
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
        let (status, content_type, body) = self.answer(&req.method, req.uri.path());
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
