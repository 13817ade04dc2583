//! How the gateway reaches an upstream: the peer for a route, with the server's timeouts, and
//! the answer a client gets when proxying fails.

use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};

use super::routes::Route;
use crate::config::model::ServerSettings;
use crate::reply::Reply;

/// The upstream of `route`, with the server's timeouts: a dead or stalled upstream costs a
/// client at most these before it gets 504, instead of the kernel's connect timeout or for ever.
pub fn peer_for(route: &Route, server: &ServerSettings) -> HttpPeer {
    let mut peer = HttpPeer::new(route.upstream, false, String::new());
    peer.options.connection_timeout = Some(server.upstream_connect_timeout);
    peer.options.read_timeout = Some(server.upstream_timeout);
    peer.options.write_timeout = Some(server.upstream_timeout);
    peer
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
    use crate::domain::key::ScopeSet;
    use std::net::SocketAddr;
    use std::time::Duration;

    #[test]
    fn the_upstream_peer_carries_the_server_timeouts() {
        let route = Route {
            path_prefix: "/api".into(),
            upstream: SocketAddr::from(([127, 0, 0, 1], 9000)),
            scopes: ScopeSet::default(),
            auth: true,
        };
        let config = crate::config::load::parse_str(
            "[server]\nupstream_connect_timeout_secs = 3\nupstream_timeout_secs = 9\n",
            std::path::Path::new("/base"),
        )
        .unwrap();
        let peer = peer_for(&route, &config.server);
        assert_eq!(peer.options.connection_timeout, Some(Duration::from_secs(3)));
        assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(9)));
        assert_eq!(peer.options.write_timeout, Some(Duration::from_secs(9)));
        assert_eq!(peer._address.to_string(), "127.0.0.1:9000");
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
