//! Hostile input against the real binary: a table of bad requests, each with the status (and
//! RFC 6749/6750 error code) it must get, sent as raw bytes so that nothing a client library
//! would tidy up (non-UTF-8 headers, duplicates, huge heads, chunked bodies) is out of reach.
//! None of them may reach the upstream (a dedicated counting one) or the store; the test ends by
//! proving the gateway still issues a token that works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod raw_http;

use std::sync::atomic::Ordering;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{at, Gateway, Setup, SECRET};
use raw_http::{counting_upstream, send, Answer, Raw};

/// A form request to `path` as `jwt-app` with HTTP Basic.
fn as_client(path: &str, body: &str) -> Vec<u8> {
    Raw::post(path).basic("jwt-app", SECRET).form(body)
}

fn token(body: &str) -> Vec<u8> {
    as_client("/oauth2/token", body)
}

fn api(authorization: &[u8]) -> Vec<u8> {
    Raw::new("GET", "/counted/x")
        .header("Authorization", authorization)
        .end()
}

/// Expected answer: a status and, for JSON errors, the `error` code; or `None` for "any 4xx or
/// a closed connection" (what pingora does is its business, as long as it is not 5xx).
type Expect = Option<(u16, Option<&'static str>)>;

/// `client_assertion_type` of a JWT client assertion, form-encoded.
const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let big = "a".repeat(65 * 1024);
    let long = |n| "u".repeat(n);
    let cc = "grant_type=client_credentials";
    let ir = Some("invalid_request");
    let ic = Some("invalid_client");
    vec![
        // Limits of the OAuth endpoints.
        ("token body > 64 KiB", token(&format!("{cc}&x={big}")), Some((413, ir))),
        (
            "chunked token body > 64 KiB",
            raw_http::chunked("/oauth2/token", "jwt-app", SECRET, 80 * 1024),
            Some((413, ir)),
        ),
        (
            "revoke body > 64 KiB",
            as_client("/oauth2/revoke", &big),
            Some((413, ir)),
        ),
        (
            "introspect body > 64 KiB",
            as_client("/oauth2/introspect", &big),
            Some((413, ir)),
        ),
        (
            "JSON content type",
            Raw::post("/oauth2/token")
                .basic("jwt-app", SECRET)
                .header("Content-Type", "application/json")
                .body(r#"{"grant_type":"client_credentials"}"#),
            Some((400, ir)),
        ),
        (
            "no content type",
            Raw::post("/oauth2/token").basic("jwt-app", SECRET).body(cc),
            Some((400, ir)),
        ),
        ("repeated grant_type", token(&format!("{cc}&{cc}")), Some((400, ir))),
        (
            "repeated empty scope",
            token(&format!("{cc}&scope=&scope=")),
            Some((400, ir)),
        ),
        (
            "33 parameters",
            token(&format!(
                "{cc}{}",
                (0..32).map(|i| format!("&p{i}=1")).collect::<String>()
            )),
            Some((400, ir)),
        ),
        (
            "value > 16 KiB",
            token(&format!("{cc}&x={}", long(17_000))),
            Some((400, ir)),
        ),
        (
            "non-UTF-8 form value",
            token(&format!("{cc}&scope=%FF")),
            Some((400, ir)),
        ),
        (
            "overlong username",
            token(&format!("grant_type=password&username={}&password=x", long(300))),
            Some((400, ir)),
        ),
        (
            "overlong password",
            token(&format!("grant_type=password&username=alice&password={}", long(1100))),
            Some((400, ir)),
        ),
        (
            "overlong scope",
            token(&format!("{cc}&scope={}", "a+".repeat(2100))),
            Some((400, ir)),
        ),
        (
            "overlong token at revoke",
            as_client("/oauth2/revoke", &format!("token={}", long(9000))),
            Some((400, ir)),
        ),
        (
            "overlong token at introspect",
            as_client("/oauth2/introspect", &format!("token={}", long(9000))),
            Some((400, ir)),
        ),
        (
            "head > 64 KiB at the token endpoint",
            Raw::post("/oauth2/token").header("X-Junk", &big).form(cc),
            Some((431, ir)),
        ),
        // Grants, parameters and methods.
        (
            "unknown grant type",
            token("grant_type=authorization_code&code=x"),
            Some((400, Some("unsupported_grant_type"))),
        ),
        ("missing grant_type", token("scope=a"), Some((400, ir))),
        (
            "password grant without password",
            token("grant_type=password&username=alice"),
            Some((400, ir)),
        ),
        (
            "refresh grant without refresh_token",
            token("grant_type=refresh_token"),
            Some((400, ir)),
        ),
        (
            "forged refresh token",
            token("grant_type=refresh_token&refresh_token=tgr_forged"),
            Some((400, Some("invalid_grant"))),
        ),
        (
            "scope the client lacks",
            token(&format!("{cc}&scope=admin")),
            Some((400, Some("invalid_scope"))),
        ),
        (
            "revoke without token",
            as_client("/oauth2/revoke", "token_type_hint=access_token"),
            Some((400, ir)),
        ),
        (
            "introspect without token",
            as_client("/oauth2/introspect", ""),
            Some((400, ir)),
        ),
        (
            "GET /oauth2/token",
            Raw::new("GET", "/oauth2/token").end(),
            Some((405, ir)),
        ),
        (
            "PUT /oauth2/revoke",
            Raw::new("PUT", "/oauth2/revoke").form("token=x"),
            Some((405, ir)),
        ),
        (
            "DELETE /oauth2/introspect",
            Raw::new("DELETE", "/oauth2/introspect").end(),
            Some((405, ir)),
        ),
        (
            "POST /oauth2/jwks",
            Raw::post("/oauth2/jwks").form("a=b"),
            Some((405, ir)),
        ),
        // Client authentication.
        (
            "no client credentials",
            Raw::post("/oauth2/token").form(cc),
            Some((401, ic)),
        ),
        (
            "wrong client secret",
            Raw::post("/oauth2/token").basic("jwt-app", "wrong").form(cc),
            Some((401, ic)),
        ),
        (
            "Bearer scheme at the token endpoint",
            Raw::post("/oauth2/token")
                .header("Authorization", "Bearer abc")
                .form(cc),
            Some((401, ic)),
        ),
        (
            "empty Bearer at the token endpoint",
            Raw::post("/oauth2/token").header("Authorization", "Bearer").form(cc),
            Some((401, ic)),
        ),
        (
            "Basic without credentials",
            Raw::post("/oauth2/token").header("Authorization", "Basic").form(cc),
            Some((400, ir)),
        ),
        (
            "Basic with bad Base64",
            Raw::post("/oauth2/token").header("Authorization", "Basic !!!").form(cc),
            Some((400, ir)),
        ),
        (
            "Basic without colon",
            Raw::post("/oauth2/token")
                .header("Authorization", format!("Basic {}", STANDARD.encode("jwt-app")))
                .form(cc),
            Some((400, ir)),
        ),
        (
            "Basic with non-UTF-8 header bytes",
            Raw::post("/oauth2/token")
                .header("Authorization", b"Basic \xff\xfe")
                .form(cc),
            Some((400, ir)),
        ),
        (
            "Basic decoding to non-UTF-8",
            Raw::post("/oauth2/token")
                .header("Authorization", "Basic /w==")
                .form(cc),
            Some((400, ir)),
        ),
        (
            "Basic and form credentials together",
            token(&format!("{cc}&client_id=jwt-app&client_secret={SECRET}")),
            Some((400, ir)),
        ),
        (
            "two Authorization headers at the token endpoint",
            Raw::post("/oauth2/token")
                .basic("jwt-app", SECRET)
                .basic("jwt-app", SECRET)
                .form(cc),
            Some((400, ir)),
        ),
        (
            "overlong client secret",
            Raw::post("/oauth2/token").basic("jwt-app", &long(2000)).form(cc),
            Some((401, ic)),
        ),
        (
            "overlong client_assertion",
            Raw::post("/oauth2/token").form(format!(
                "{cc}&client_assertion_type={JWT_BEARER}&client_assertion={}",
                long(9000)
            )),
            Some((401, ic)),
        ),
        (
            "client_assertion without client_assertion_type",
            Raw::post("/oauth2/token").form(format!("{cc}&client_assertion=a.b.c")),
            Some((400, ir)),
        ),
        (
            "an unknown client_assertion_type",
            Raw::post("/oauth2/token").form(format!("{cc}&client_assertion_type=urn%3Aex&client_assertion=a.b.c")),
            Some((401, ic)),
        ),
        // Bearer tokens at a protected route (RFC 6750).
        (
            "no Authorization",
            Raw::new("GET", "/counted/x").end(),
            Some((401, Some("unauthorized"))),
        ),
        ("empty Bearer", api(b"Bearer"), Some((400, ir))),
        ("Bearer and a space", api(b"Bearer "), Some((400, ir))),
        ("two tokens", api(b"Bearer abc def"), Some((400, ir))),
        (
            "two Authorization headers",
            Raw::new("GET", "/counted/x")
                .header("Authorization", "Bearer a")
                .header("Authorization", "Bearer b")
                .end(),
            Some((400, ir)),
        ),
        ("non-UTF-8 bearer", api(b"Bearer \xff\xfe"), Some((400, ir))),
        (
            "bearer > 8 KiB",
            api(format!("Bearer {}", long(9000)).as_bytes()),
            Some((400, ir)),
        ),
        (
            "unknown bearer token",
            api(b"Bearer abc.def.ghi"),
            Some((401, Some("invalid_token"))),
        ),
        (
            "forged opaque token",
            api(format!("Bearer tga_{}", "A".repeat(86)).as_bytes()),
            Some((401, Some("invalid_token"))),
        ),
        (
            "Basic at a protected route",
            api(format!("Basic {}", STANDARD.encode("a:b")).as_bytes()),
            Some((401, Some("unauthorized"))),
        ),
        // Heads.
        (
            "head > 64 KiB",
            Raw::new("GET", "/counted/x").header("X-Junk", &big).end(),
            Some((431, ir)),
        ),
        (
            "head > 1 MiB",
            Raw::new("GET", "/counted/x")
                .header("X-Junk", "a".repeat(1100 * 1024))
                .end(),
            None,
        ),
        (
            "300 header lines",
            (0..300)
                .fold(Raw::new("GET", "/counted/x"), |r, i| r.header(&format!("X-{i}"), "1"))
                .end(),
            None,
        ),
        (
            "non-token header name",
            Raw::new("GET", "/counted/x").header("X\u{ff} Bad", "1").end(),
            None,
        ),
        (
            "target of 64 KiB",
            Raw::new("GET", &format!("/counted/{big}")).end(),
            None,
        ),
    ]
}

#[test]
fn every_bad_input_gets_its_answer_and_the_gateway_keeps_serving() {
    let (up, seen) = counting_upstream();
    let gw = Gateway::start(Setup {
        // Room for the table's few client-authentication failures from 127.0.0.1.
        oauth: "lockout_max_failures = 100".into(),
        extra: format!("[[routes]]\npath_prefix = \"/counted\"\nupstream = \"{up}\"\n"),
    });
    let mut wrong = Vec::new();
    for (what, request, expect) in cases() {
        let answer = send(gw.port, &request);
        let ok = match (&answer, expect) {
            (Answer::Status { status, error }, Some((s, e))) => *status == s && error.as_deref() == e,
            (Answer::Status { status, .. }, None) => (400..500).contains(status),
            (Answer::Closed, None) => true,
            (Answer::Closed, Some(_)) => false,
        };
        if !ok {
            wrong.push(format!("{what}: expected {expect:?}, got {answer:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "wrong answers:\n{}\nlog:\n{}",
        wrong.join("\n"),
        gw.log()
    );
    assert_eq!(seen.load(Ordering::SeqCst), 0, "a bad request reached the upstream");
    assert_eq!(store_rows(&gw), 0, "a bad request reached the store");

    // Still serving: a valid token, and a call with it that reaches the upstream once.
    let t = gw.cc("jwt-app");
    assert_eq!(gw.call("/counted/x", at(&t)), 200);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(store_rows(&gw), 1);
}

/// Token and state-change rows in the gateway's store.
fn store_rows(gw: &Gateway) -> i64 {
    let path = gw.dir.path().join("data/tokens.db");
    let db = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    db.query_row(
        "SELECT (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM state_changes)",
        [],
        |r| r.get(0),
    )
    .unwrap()
}
