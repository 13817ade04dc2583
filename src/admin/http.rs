//! The admin listener on `[server] admin_listen`: plain HTTP on a port of its own (keep it on
//! loopback or a private network), answered by [`super::api::AdminApi`].

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

use super::api::{error, unauthorized, AdminApi};
use crate::reply::Reply;
use crate::state::AppState;

/// Largest request body the admin API reads (a revocation's JSON is a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// Serves the admin API.
pub struct AdminApp {
    api: AdminApi,
    state: Arc<AppState>,
}

impl AdminApp {
    pub fn new(state: Arc<AppState>) -> AdminApp {
        AdminApp {
            api: AdminApi::new(Arc::clone(&state)),
            state,
        }
    }

    /// The answer to the session's request.
    async fn reply(&self, session: &mut ServerSession) -> Reply {
        let req = session.req_header();
        let authorization = req.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        let Some(admin) = self.api.authenticate(authorization) else {
            let peer = session.client_addr().map(|a| a.to_string()).unwrap_or_default();
            log::warn!("admin API: refused a request without the admin credential from {peer}");
            // The body, if any, is left unread: the connection closes after the answer.
            session.set_keepalive(None);
            return unauthorized();
        };
        let (method, path) = (req.method.clone(), req.uri.path().to_string());
        let query = req.uri.query().map(str::to_string);
        let body = if method == Method::POST {
            let deadline = self.state.live().config.server.body_read_timeout;
            let read = match tokio::time::timeout(deadline, read_body(session)).await {
                Ok(read) => read,
                Err(_) => Err(error(408, "invalid_request", "the body did not arrive in time")),
            };
            match read {
                Ok(body) => body,
                Err(reply) => {
                    session.set_keepalive(None);
                    return reply;
                }
            }
        } else {
            Bytes::new()
        };
        self.api.answer(&admin, &method, &path, query.as_deref(), &body).await
    }
}

/// The whole request body, at most [`MAX_BODY`] bytes.
async fn read_body(session: &mut ServerSession) -> Result<Bytes, Reply> {
    let too_large = || error(413, "invalid_request", "the body is larger than 64 KiB");
    let declared = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        // curl holds a body over 1 KiB back until told to send it.
        session
            .write_continue_response()
            .await
            .map_err(|e| error(400, "invalid_request", &format!("cannot answer 100 Continue: {e}")))?;
    }
    let mut buf = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_BODY {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(buf)),
            Err(e) => return Err(error(400, "invalid_request", &format!("cannot read the body: {e}"))),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let reply = self.reply(session).await;
        let mut resp = Response::new(reply.body.to_vec());
        *resp.status_mut() =
            http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let h = resp.headers_mut();
        for (name, value) in &reply.headers {
            if let Ok(value) = header::HeaderValue::from_str(value) {
                h.insert(*name, value);
            }
        }
        h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(reply.body.len()));
        resp
    }
}

/// The pingora service listening on `addr` (one thread: admin requests are rare).
pub fn service(state: Arc<AppState>, addr: &str) -> Service<AdminApp> {
    let mut svc = Service::new("admin".to_string(), AdminApp::new(state));
    svc.add_tcp(addr);
    svc.threads = Some(1);
    svc
}
