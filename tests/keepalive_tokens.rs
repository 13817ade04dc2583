//! One keep-alive connection, several tokens: the gateway remembers the last token a connection
//! presented (so that it is decoded once, not per request), and that memory must never let a
//! revoked token through, mix up two tokens' identities, or accept a text that differs from the
//! remembered one by a character.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod raw_http;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{at, Gateway, Setup};
use serde_json::Value;

/// One request on the open connection `s`; returns the status and the body.
fn get(s: &mut TcpStream, path: &str, token: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let (head, body) = raw_http::read_answer(s);
    (head[9..12].parse().unwrap(), body)
}

/// What the upstream was told: client id, subject and scope (empty when not sent).
fn identity_seen(body: &str) -> [String; 3] {
    let v: Value = serde_json::from_str(body).expect("the demo upstream's JSON");
    assert_eq!(v["authorization_seen"], false);
    ["x-client-id", "x-subject", "x-scope"].map(|h| v[h].as_str().unwrap_or_default().to_string())
}

fn client_id_seen(body: &str) -> String {
    let [client, _, _] = identity_seen(body);
    client
}

/// `token` with its character at `at` changed to another base64url character.
fn one_char_changed(token: &str, pos: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_connection_that_keeps_its_token_sees_it_revoked_at_once() {
    let gw = Gateway::start(Setup::default());
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for client in ["opaque-app", "jwt-app"] {
        let token = at(&gw.cc(client)).to_string();
        for _ in 0..3 {
            let (status, body) = get(&mut s, "/api/x", &token);
            assert_eq!(status, 200, "{client}");
            assert_eq!(client_id_seen(&body), client);
        }
        // A text one character off the remembered one is another token: refused, and the real
        // one still passes after it.
        for pos in [4, token.len() / 2, token.len() - 1] {
            let forged = one_char_changed(&token, pos);
            let (status, _) = get(&mut s, "/api/x", &forged);
            assert!(
                matches!(status, 400 | 401),
                "{client}: a changed character at {pos} gave {status}"
            );
        }
        assert_eq!(get(&mut s, "/api/x", &token).0, 200, "{client}");
        assert_eq!(gw.revoke(client, &token), 200);
        assert_eq!(
            get(&mut s, "/api/x", &token).0,
            401,
            "{client}: revoked, on the same connection"
        );
    }
}

#[test]
fn tokens_taking_turns_on_one_connection_keep_their_own_identities() {
    let gw = Gateway::start(Setup::default());
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let opaque = at(&gw.cc("opaque-app")).to_string();
    let jwt = at(&gw.cc("jwt-app")).to_string();
    let narrow = at(&gw.cc_scope("opaque-app", "a")).to_string();
    let alice = gw.token_ok(
        "opaque-app",
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password"),
            ("scope", "a b"),
        ],
    );
    let alice = at(&alice).to_string();
    for _ in 0..3 {
        for (token, client) in [(&opaque, "opaque-app"), (&jwt, "jwt-app"), (&opaque, "opaque-app")] {
            let (status, body) = get(&mut s, "/api/x", token);
            assert_eq!(status, 200);
            assert_eq!(client_id_seen(&body), client);
        }
        // Two keys of one client (another scope, a resource owner) each with their own headers.
        for (token, subject, scope) in [(&alice, "alice", "a b"), (&narrow, "", "a"), (&alice, "alice", "a b")] {
            let (status, body) = get(&mut s, "/api/x", token);
            assert_eq!(status, 200);
            assert_eq!(
                identity_seen(&body),
                ["opaque-app".to_string(), subject.into(), scope.into()]
            );
        }
        // The same token on a route it lacks the scope for, right after it passed another.
        assert_eq!(get(&mut s, "/scoped/x", &opaque).0, 200);
        assert_eq!(get(&mut s, "/scoped/x", &narrow).0, 403);
        assert_eq!(get(&mut s, "/api/x", &narrow).0, 200);
        assert_eq!(get(&mut s, "/scoped/x", &narrow).0, 403);
    }
}
