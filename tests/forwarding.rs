//! What the upstream is told about the client (`X-Forwarded-*`, `X-Real-IP`), against the real
//! binary and the demo upstream's echo; and, behind a trusted reverse proxy, which address the
//! brute-force lockout counts. Clients speak from their own loopback addresses (127.0.0.2, ...).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod raw_http;

use common::{at, from, with_server_lines, Gateway, Setup, SECRET};
use raw_http::{send, Answer, Raw};
use serde_json::Value;

/// Starts a gateway with `server_lines` in `[server]` and `oauth` in `[oauth]`.
fn start(server_lines: &str, oauth: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let setup = Setup {
        oauth: oauth.into(),
        ..Setup::default()
    };
    let text = with_server_lines(&common::config_text(port, &setup), server_lines);
    std::fs::write(dir.path().join("gateway.toml"), text).unwrap();
    Gateway::start_in(dir, port)
}

/// The echo of a public-route request from `ip` with `headers`.
fn echo(gw: &Gateway, ip: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = from(ip).get(format!("{}/public/x", gw.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().unwrap();
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

const FORGED: [(&str, &str); 5] = [
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Real-IP", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("Forwarded", "for=6.6.6.6;proto=https"),
];

#[test]
fn an_edge_gateway_tells_the_upstream_the_real_client_and_replaces_forged_claims() {
    let gw = start("", "");
    let e = echo(&gw, "127.0.0.2", &FORGED);
    assert_eq!(
        e["x-forwarded-for"], "6.6.6.6, 127.0.0.2",
        "appended: the rightmost is the peer"
    );
    assert_eq!(e["x-real-ip"], "127.0.0.2");
    assert_eq!(
        e["x-forwarded-proto"],
        Value::Null,
        "plain HTTP: none, which means http"
    );
    assert_eq!(e["x-forwarded-host"], Value::Null, "the upstream is sent Host itself");
    assert_eq!(
        e["forwarded"],
        Value::Null,
        "Forwarded from an untrusted peer is dropped"
    );

    // The same on a protected route, beside the identity headers.
    let token = gw.cc("opaque-app");
    let e: Value = from("127.0.0.3")
        .get(format!("{}/api/x", gw.base))
        .bearer_auth(at(&token))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(e["x-forwarded-for"], "127.0.0.3");
    assert_eq!(e["x-real-ip"], "127.0.0.3");
    assert_eq!(e["x-client-id"], "opaque-app");
}

#[test]
fn behind_a_trusted_proxy_its_forwarding_headers_pass_and_name_the_client() {
    let gw = start(
        "trusted_proxies = [\"127.0.0.2\", \"10.0.0.0/8\"]\naccess_log = true",
        "",
    );
    let headers = [
        ("X-Forwarded-For", "6.6.6.6, 198.51.100.9, 10.0.0.5"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "api.example.com"),
        ("Forwarded", "for=198.51.100.9;proto=https"),
    ];
    let e = echo(&gw, "127.0.0.2", &headers);
    assert_eq!(e["x-forwarded-for"], "6.6.6.6, 198.51.100.9, 10.0.0.5, 127.0.0.2");
    assert_eq!(
        e["x-real-ip"], "198.51.100.9",
        "the rightmost address no trusted proxy holds"
    );
    assert_eq!(e["x-forwarded-proto"], "https");
    assert_eq!(e["x-forwarded-host"], "api.example.com");
    assert_eq!(e["forwarded"], "for=198.51.100.9;proto=https");

    // Another peer of the same gateway is not a trusted proxy: its claims are replaced.
    let e = echo(&gw, "127.0.0.3", &headers);
    assert_eq!(e["x-real-ip"], "127.0.0.3");
    assert_eq!(e["x-forwarded-proto"], Value::Null);
    assert_eq!(e["x-forwarded-host"], Value::Null);
    assert_eq!(e["forwarded"], Value::Null);

    // The access log names the same clients.
    gw.eventually(10, "both access log lines", || {
        let log = gw.log();
        log.contains("198.51.100.9 GET /public/x 200") && log.contains("127.0.0.3 GET /public/x 200")
    });
}

/// Status of a token request with a wrong secret, from `ip`, claiming to forward `client`.
fn failed_login(gw: &Gateway, ip: &str, client: &str) -> u16 {
    from(ip)
        .post(format!("{}/oauth2/token", gw.base))
        .basic_auth("no-such-app", Some(SECRET))
        .header("X-Forwarded-For", client)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Three failed logins through `proxy` for `client`: the lockout's limit in these tests.
fn fail_three_times(gw: &Gateway, proxy: &str, client: &str) {
    for _ in 0..3 {
        assert_eq!(failed_login(gw, proxy, client), 401);
    }
}

#[test]
fn behind_a_trusted_proxy_the_lockout_counts_the_forwarded_client() {
    const LOCK_3: &str = "lockout_max_failures = 3\nlockout_window_secs = 600\nlockout_secs = 600";
    let gw = start("trusted_proxies = [\"127.0.0.2\"]", LOCK_3);
    fail_three_times(&gw, "127.0.0.2", "198.51.100.9");
    let locked = failed_login(&gw, "127.0.0.2", "198.51.100.9");
    assert_eq!(locked, 429, "that client is locked out");
    let other = failed_login(&gw, "127.0.0.2", "198.51.100.10");
    assert_eq!(other, 401, "another client behind the same proxy is not");

    // Without trusted proxies the header is not believed: the proxy's address is the client.
    let gw = start("", LOCK_3);
    fail_three_times(&gw, "127.0.0.2", "198.51.100.9");
    let other = failed_login(&gw, "127.0.0.2", "198.51.100.10");
    assert_eq!(other, 429, "a forged header changes nothing");
}

#[test]
fn an_http_1_1_request_without_host_is_400() {
    let gw = start("", "");
    // `Raw` always writes a Host line; this head is written out by hand.
    let head = b"GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n";
    match send(gw.port, head) {
        Answer::Status { status, error } => {
            assert_eq!(status, 400);
            assert_eq!(error.as_deref(), Some("invalid_request"));
        }
        Answer::Closed => panic!("closed without an answer"),
    }
    match send(gw.port, &Raw::new("GET", "/public/x").end()) {
        Answer::Status { status, .. } => assert_eq!(status, 200, "the same request with Host passes"),
        Answer::Closed => panic!("closed without an answer"),
    }
}
