//! A client that sends an OAuth request body too slowly gets 408 and the connection closed,
//! and the gateway keeps serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{config_text, free_port, with_server_lines, Gateway, Setup};

#[test]
fn a_body_that_never_completes_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = with_server_lines(&config_text(port, &Setup::default()), "body_read_timeout_secs = 1");
    common::write(&dir.path().join("gateway.toml"), &text);
    let gw = Gateway::start_in(dir, port);

    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        b"POST /oauth2/token HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\ngrant_type=",
    )
    .unwrap();
    let mut answer = Vec::new();
    // The gateway answers, then closes: read to the end.
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("invalid_request"), "{answer}");

    assert_eq!(gw.api(&gw.cc("jwt-app")), 200, "others are served");
}
