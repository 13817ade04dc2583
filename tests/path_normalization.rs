//! The gateway chooses a route by the normal form of the request path and sends the upstream
//! that same path, so a path spelt with `..`, `.`, escapes or doubled slashes cannot pass as a
//! public route and reach a protected one. Raw requests: client libraries (reqwest included)
//! would resolve the dot segments before sending.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod raw_http;

use common::{at, Gateway, Setup};
use raw_http::{exchange, send, Answer, Raw};

fn get(path: &str, token: Option<&str>) -> Vec<u8> {
    let raw = Raw::new("GET", path);
    match token {
        Some(t) => raw.header("Authorization", format!("Bearer {t}")).end(),
        None => raw.end(),
    }
}

fn status(gw: &Gateway, path: &str) -> (u16, Option<String>) {
    match send(gw.port, &get(path, None)) {
        Answer::Status { status, error } => (status, error),
        Answer::Closed => panic!("{path}: connection closed without an answer"),
    }
}

/// The path the upstream was sent, from the demo upstream's echo.
fn upstream_saw(gw: &Gateway, path: &str, token: &str) -> String {
    let answer = exchange(gw.port, &get(path, Some(token))).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{path}: {answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    echo["path"].as_str().unwrap().to_string()
}

#[test]
fn a_public_prefix_spelt_around_a_protected_path_does_not_pass() {
    let gw = Gateway::start(Setup::default());
    assert_eq!(status(&gw, "/public/x").0, 200, "the public route itself is public");
    for path in [
        "/public/../api/x",
        "/public/%2e%2e/api/x",
        "/public/.%2E/api/x",
        "/public/./../api/x",
        "/public/x/../../api/x",
        "/%70ublic/../api/x",
    ] {
        assert_eq!(status(&gw, path).0, 401, "{path} is the protected /api/x");
    }
}

#[test]
fn paths_an_upstream_could_read_two_ways_are_400() {
    let gw = Gateway::start(Setup::default());
    for path in [
        "/public/..%2Fapi/x",
        "/public/..%2fapi/x",
        "/public/..%5Capi/x",
        "/public/%00",
        "/public/%zz",
        "/public/%",
        "/..",
        "/public/../../api/x",
    ] {
        assert_eq!(status(&gw, path), (400, Some("invalid_request".into())), "{path}");
    }
    // A target that is not UTF-8 would be forwarded as bytes no route was chosen by.
    let raw = b"GET /public/\xff/../api/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".to_vec();
    assert!(
        matches!(send(gw.port, &raw), Answer::Status { status: 400, .. }),
        "non-UTF-8 target"
    );
    assert_eq!(status(&gw, "/public/x").0, 200, "still serving");
}

#[test]
fn the_upstream_is_sent_the_path_the_route_was_chosen_by() {
    let gw = Gateway::start(Setup::default());
    let token = gw.cc("opaque-app");
    let token = at(&token);
    assert_eq!(
        upstream_saw(&gw, "/api/./orders//42?q=a/../b", token),
        "/api/orders/42?q=a/../b"
    );
    assert_eq!(upstream_saw(&gw, "/public/x/../y", token), "/public/y");
    assert_eq!(upstream_saw(&gw, "/%61pi/%7Euser/a%3fb", token), "/api/~user/a%3Fb");
    assert_eq!(
        upstream_saw(&gw, "/api/orders/42?x=1", token),
        "/api/orders/42?x=1",
        "normal paths untouched"
    );
}
