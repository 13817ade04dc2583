//! An upstream that accepts a connection and never answers costs a client
//! `server.upstream_timeout_secs`, then 504; one that refuses connections is 502 at once. Either
//! way the gateway keeps serving the other routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};

use common::{config_text, free_port, with_server_lines, Gateway, Setup};

/// An upstream that accepts connections, reads nothing and answers nothing.
fn stalled_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

#[test]
fn a_stalled_upstream_is_504_and_a_refusing_one_502() {
    let stalled = stalled_upstream();
    // A port nothing listens on: bound, then released.
    let refusing = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let setup = Setup {
        extra: common::public_route("/stalled", stalled) + &common::public_route("/refusing", refusing),
        ..Setup::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics = free_port();
    let text = with_server_lines(
        &config_text(port, &setup),
        &format!("upstream_timeout_secs = 1\nmetrics_listen = \"127.0.0.1:{metrics}\""),
    );
    common::write(&dir.path().join("gateway.toml"), &text);
    let gw = Gateway::start_in(dir, port);

    let answer = |path: &str| {
        let r = gw.http.get(format!("{}{path}", gw.base)).send().unwrap();
        let status = r.status().as_u16();
        assert!(r.headers().get("server").is_none(), "{path}: no Server: Pingora");
        (status, r.text().unwrap())
    };
    let (status, body) = answer("/stalled/x");
    assert_eq!(status, 504);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "gateway_timeout");
    let (status, body) = answer("/refusing/x");
    assert_eq!(status, 502);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "bad_gateway");
    assert_eq!(answer("/public/x").0, 200, "the other routes are served");

    let scrape = reqwest::blocking::get(format!("http://127.0.0.1:{metrics}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    for series in [
        "tokengate_upstream_failures_total{status=\"502\"} 1",
        "tokengate_upstream_failures_total{status=\"504\"} 1",
    ] {
        assert!(scrape.contains(series), "{series} in:\n{scrape}");
    }
}
