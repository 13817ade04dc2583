//! `Expect: 100-continue` on the OAuth endpoints (RFC 9110 section 10.1.1). Clients that send it
//! hold the body back until the server answers `100 Continue` (curl waits a second, others wait
//! until their own timeout), so the gateway must answer it before it reads a body it wants, and
//! refuse a body it does not want without asking for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod raw_http;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Gateway, Setup, SECRET};
use raw_http::Raw;

/// Connects, sends `head` (which ends with the blank line), and returns the stream.
fn send_head(port: u16, head: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A guard against a hang, not a timing: the gateway answers at once or not at all.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head).unwrap();
    s
}

/// Reads one response head (up to and including the blank line).
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn token_head(version: &str, length: usize) -> Vec<u8> {
    Raw(format!("POST /oauth2/token {version}\r\nHost: gw\r\nConnection: close\r\n").into_bytes())
        .basic("opaque-app", SECRET)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Expect", "100-continue")
        .header("Content-Length", length.to_string())
        .end()
}

#[test]
fn the_token_endpoint_asks_for_the_body_then_answers() {
    let gw = Gateway::start(Setup::default());
    let body = b"grant_type=client_credentials";
    let mut s = send_head(gw.port, &token_head("HTTP/1.1", body.len()));
    let interim = read_head(&mut s);
    assert!(interim.starts_with("HTTP/1.1 100 Continue\r\n"), "{interim}");

    s.write_all(body).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200 "), "{rest}");
    assert!(rest.contains("\"access_token\""), "{rest}");
}

#[test]
fn a_body_declared_too_large_is_refused_without_asking_for_it() {
    let gw = Gateway::start(Setup::default());
    let mut s = send_head(gw.port, &token_head("HTTP/1.1", 65 * 1024));
    let first = read_head(&mut s);
    assert!(first.starts_with("HTTP/1.1 413 "), "{first}");
}

#[test]
fn an_http_1_0_request_gets_no_interim_answer() {
    // RFC 9110 section 10.1.1: the expectation is ignored in an HTTP/1.0 request.
    let gw = Gateway::start(Setup::default());
    let body = b"grant_type=client_credentials";
    let mut request = token_head("HTTP/1.0", body.len());
    request.extend_from_slice(body);
    let mut s = send_head(gw.port, &request);
    let first = read_head(&mut s);
    assert!(
        first.starts_with("HTTP/1.1 200 ") || first.starts_with("HTTP/1.0 200 "),
        "{first}"
    );
}
