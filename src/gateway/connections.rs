//! A bound on client connections open at once (`server.max_connections`).
//!
//! Every client connection is a file and a few hundred KiB: without a bound, clients that open
//! connections and hold them (idle keep-alive, or never a whole head) use up the process's open
//! files, and then every new client is refused by `accept` with no answer at all. Past the
//! bound a new connection is answered `503 temporarily_unavailable` (HTTP/1) and closed at once,
//! so the connections in use go on and new clients get in as soon as idle ones are closed by
//! `server.keepalive_timeout_secs`.
//!
//! It wraps the proxy's pingora application: one count per accepted connection, held for the
//! connection's whole life (pingora serves all the requests of a keep-alive connection in one
//! `process_new` call). Once the listener stops accepting, the proxy's cleanup waits for those
//! connections to close ([`Drain`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::AsyncWriteExt;

use super::drain::Drain;
use crate::state::AppState;

/// The answer to a connection past the bound.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: application/json\r\n\
Cache-Control: no-store\r\n\
Retry-After: 1\r\n\
Connection: close\r\n\
Content-Length: 85\r\n\
\r\n\
{\"error\":\"temporarily_unavailable\",\"error_description\":\"too many client connections\"}";

/// How long the refusal may take to write before the connection is simply closed.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The proxy application `A` behind the connection bound.
pub struct ConnectionLimit<A> {
    app: Arc<A>,
    state: Arc<AppState>,
    drain: Drain,
}

impl<A> ConnectionLimit<A> {
    pub fn new(app: A, state: Arc<AppState>, drain: Drain) -> ConnectionLimit<A> {
        ConnectionLimit {
            app: Arc::new(app),
            state,
            drain,
        }
    }
}

/// Answers a connection past the bound (HTTP/1 only: an HTTP/2 client would not read it) and
/// closes it.
async fn refuse(mut stream: Stream) {
    if !matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
        let written = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await
        })
        .await;
        if let Ok(Err(e)) = written {
            log::debug!("could not answer a connection past server.max_connections: {e}");
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionLimit<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let max = self.state.live_guard().config.server.max_connections;
        let Some(_permit) = self.state.connections.try_open(max) else {
            self.state.metrics.connections_refused.inc();
            log::debug!("connection refused: server.max_connections ({max}) are open");
            refuse(stream).await;
            return None;
        };
        self.app.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        // The listener stopped accepting: the open connections may end with an answer before
        // pingora closes the idle ones.
        self.drain.until_idle_may_close(&self.state).await;
        self.app.cleanup().await;
        self.drain.until_closed(&self.state).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_http_answer() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "temporarily_unavailable");
    }
}
