//! HTTP/1.1 pipelining (RFC 9112 section 9.3.2): requests sent on one connection before the
//! previous answer arrived are all answered, in order. pingora's default is to answer the first
//! and close, dropping the rest (wrk's pipelining script then sees only read errors).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod raw_http;

use common::{Gateway, Setup, SECRET};
use raw_http::{exchange, Raw};

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let gw = Gateway::start(Setup::default());
    let keep_alive = |raw: Raw| {
        Raw(String::from_utf8(raw.0)
            .unwrap()
            .replace("Connection: close\r\n", "")
            .into_bytes())
    };
    let mut requests = keep_alive(Raw::new("GET", "/public/first")).end();
    requests.extend(
        keep_alive(Raw::post("/oauth2/token"))
            .basic("opaque-app", SECRET)
            .form("grant_type=client_credentials"),
    );
    requests.extend(keep_alive(Raw::new("GET", "/api/no-token")).end());
    requests.extend(Raw::new("GET", "/.well-known/oauth-authorization-server").end());

    let answer = exchange(gw.port, &requests).unwrap();
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "401", "200"], "{answer}");
    let at = |needle: &str| {
        answer
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} missing: {answer}"))
    };
    assert!(at("/public/first") < at("\"access_token\""), "{answer}");
    assert!(at("\"access_token\"") < at("\"grant_types_supported\""), "{answer}");
}
