//! How the gateway reaches an upstream: the peer for a route's chosen server, with the server's
//! timeouts and the route's TLS, and the answer a client gets when proxying fails.

use std::net::SocketAddr;

use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};

use crate::config::model::ServerSettings;
use crate::config::routes::Route;
use crate::reply::Reply;

/// The server `addr` of `route`, with the server's timeouts: a dead or stalled upstream costs a
/// client at most these before it gets 504, instead of the kernel's connect timeout or for ever.
/// Over TLS when the route says so, with its SNI (by default the server's host), CA and client
/// certificate.
pub fn peer_for(route: &Route, addr: SocketAddr, server: &ServerSettings) -> HttpPeer {
    let mut peer = match route.upstream.tls() {
        None => HttpPeer::new(addr, false, String::new()),
        Some(tls) => {
            let host = route.upstream.servers().find(addr).map(|s| s.host);
            let sni = tls.sni_for(host.as_deref().unwrap_or_default()).to_string();
            let mut peer = HttpPeer::new(addr, true, sni);
            tls.apply(&mut peer);
            peer
        }
    };
    peer.options.connection_timeout = Some(server.upstream_connect_timeout);
    peer.options.read_timeout = Some(server.upstream_timeout);
    peer.options.write_timeout = Some(server.upstream_timeout);
    if let Some(tls) = route.upstream.tls() {
        // Connections verified under other TLS settings (another CA) stay in a pool of their own.
        peer.group_key = tls.pool_key();
    }
    peer
}

/// After the connection to the server `addr` of `route` failed, before anything was sent: skips
/// the server for the next requests (not for a failed TLS handshake, which is logged: a certificate
/// problem is not an outage) and says whether to retry on another server: once (`failed` holds
/// the server of the first failure), and only if another one is up.
pub fn connect_failed(route: &Route, addr: SocketAddr, e: &Error, failed: &mut Option<SocketAddr>) -> bool {
    if matches!(e.etype(), ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert) {
        log::warn!("route {}: TLS to upstream {addr} failed: {e}", route.path_prefix);
    } else {
        route.upstream.skip(addr);
    }
    let retry = failed.is_none() && route.upstream.has_other_than(addr);
    if retry {
        *failed = Some(addr);
    }
    retry
}

/// The status answered when proxying fails: pingora's choice (502 for any upstream failure,
/// 400 for a bad request, none when the client is gone, 500 otherwise), except that an
/// upstream that timed out is 504 Gateway Timeout (RFC 9110 section 15.6.5).
pub fn error_status(e: &Error) -> u16 {
    match (e.esource(), e.etype()) {
        (_, ErrorType::HTTPStatus(code)) => *code,
        (ErrorSource::Upstream, ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout) => 504,
        (ErrorSource::Upstream, _) => 502,
        (ErrorSource::Downstream, ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed) => 0,
        (ErrorSource::Downstream, _) => 400,
        (ErrorSource::Internal | ErrorSource::Unset, _) => 500,
    }
}

/// The answer for a failed proxy attempt with status `code`: JSON like every other answer of the
/// gateway (pingora's own is an empty body with `Server: Pingora`).
pub fn failure_reply(code: u16) -> Reply {
    let body = match code {
        502 => {
            r#"{"error":"bad_gateway","error_description":"the upstream refused the connection or did not answer properly"}"#
        }
        504 => r#"{"error":"gateway_timeout","error_description":"the upstream did not answer in time"}"#,
        400..=499 => r#"{"error":"invalid_request"}"#,
        _ => r#"{"error":"server_error"}"#,
    };
    Reply::json_no_store(code, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_upstream_peer_carries_the_server_timeouts() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9000));
        let settings = crate::upstream::settings::UpstreamSettings::plain(&[addr]);
        let route = Route {
            path_prefix: "/api".into(),
            upstream: std::sync::Arc::new(crate::upstream::balancer::Balancer::new("/api", settings).unwrap()),
            scopes: crate::domain::key::ScopeSet::default(),
            auth: true,
            audience: None,
        };
        let config = crate::config::load::parse_str(
            "[server]\nupstream_connect_timeout_secs = 3\nupstream_timeout_secs = 9\n",
            std::path::Path::new("/base"),
        )
        .unwrap();
        let peer = peer_for(&route, addr, &config.server);
        assert_eq!(peer.options.connection_timeout, Some(Duration::from_secs(3)));
        assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(9)));
        assert_eq!(peer.options.write_timeout, Some(Duration::from_secs(9)));
        assert_eq!(peer._address.to_string(), "127.0.0.1:9000");
    }

    #[test]
    fn an_https_route_gives_a_tls_peer_named_after_its_server() {
        let config = crate::config::load::parse_str(
            "[[routes]]\npath_prefix = \"/a\"\nupstreams = [\"127.0.0.1:8443\", \"localhost:8444\"]\nupstream_tls = true\n\
             [[routes]]\npath_prefix = \"/b\"\nupstream = \"127.0.0.1:8443\"\nupstream_tls = true\nupstream_sni = \"orders.internal\"\n",
            std::path::Path::new("/base"),
        )
        .unwrap();
        let a = config.routes.find("/a").unwrap();
        let ip = a.upstream.settings().servers[0].addr;
        let name = a.upstream.settings().servers[1].addr;
        let peer = peer_for(a, ip, &config.server);
        assert!(peer.is_tls());
        assert_eq!(peer.sni, "127.0.0.1", "the host part by default");
        assert_eq!(peer_for(a, name, &config.server).sni, "localhost");
        assert!(peer.options.verify_cert && peer.options.verify_hostname);
        let b = config.routes.find("/b").unwrap();
        let other = peer_for(b, ip, &config.server);
        assert_eq!(other.sni, "orders.internal");
        assert_ne!(other.group_key, peer.group_key, "other TLS settings: another pool");
    }

    #[test]
    fn an_upstream_that_timed_out_is_504_and_other_failures_keep_their_status() {
        for (e, want) in [
            (Error::new_up(ErrorType::ConnectTimedout), 504),
            (Error::new_up(ErrorType::ReadTimedout), 504),
            (Error::new_up(ErrorType::WriteTimedout), 504),
            (Error::new_up(ErrorType::ConnectRefused), 502),
            (Error::new_up(ErrorType::ConnectionClosed), 502),
            (Error::new_down(ErrorType::ReadTimedout), 400),
            (Error::new_down(ErrorType::ConnectionClosed), 0),
            (Error::new_in(ErrorType::InternalError), 500),
            (Error::new(ErrorType::HTTPStatus(503)), 503),
        ] {
            assert_eq!(error_status(&e), want, "{e}");
        }
    }

    #[test]
    fn failures_are_answered_in_json() {
        for (code, error) in [
            (502, "bad_gateway"),
            (504, "gateway_timeout"),
            (400, "invalid_request"),
            (500, "server_error"),
        ] {
            let r = failure_reply(code);
            assert_eq!(r.status, code);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["error"], error);
        }
    }
}
