//! Brute-force lockout against the real binary. Each "address" is its own loopback source address
//! (127.0.0.2, 127.0.0.3, ...: all of 127/8 reaches the gateway on Linux), so the per-address
//! counting is seen as a client elsewhere would see it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{from, Gateway, Setup, SECRET};
use reqwest::blocking::Response;

const LOCK_3: &str = "lockout_max_failures = 3\nlockout_window_secs = 600\nlockout_secs = 600";

fn post(gw: &Gateway, ip: &str, path: &str, client: &str, secret: &str, form: &[(&str, &str)]) -> Response {
    from(ip)
        .post(format!("{}{path}", gw.base))
        .basic_auth(client, Some(secret))
        .form(form)
        .send()
        .unwrap()
}

/// Status of a client_credentials request.
fn cc(gw: &Gateway, ip: &str, client: &str, secret: &str) -> u16 {
    let r = post(
        gw,
        ip,
        "/oauth2/token",
        client,
        secret,
        &[("grant_type", "client_credentials")],
    );
    r.status().as_u16()
}

/// Status of a password-grant request by `jwt-app` for `user`.
fn login(gw: &Gateway, ip: &str, user: &str, password: &str) -> u16 {
    let form = [("grant_type", "password"), ("username", user), ("password", password)];
    post(gw, ip, "/oauth2/token", "jwt-app", SECRET, &form)
        .status()
        .as_u16()
}

/// Asserts a 429 answer with a sensible `Retry-After` and the JSON error.
fn assert_locked(r: Response, max_secs: u64) {
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=max_secs).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"], "slow_down");
}

#[test]
fn failures_lock_the_address_and_the_client_id_from_it_but_no_one_else() {
    let gw = Gateway::start(Setup {
        oauth: LOCK_3.into(),
        ..Setup::default()
    });
    for _ in 0..3 {
        assert_eq!(cc(&gw, "127.0.0.2", "jwt-app", "wrong"), 401);
    }
    // Locked before the secret is checked: the right secret does not help.
    let r = post(
        &gw,
        "127.0.0.2",
        "/oauth2/token",
        "jwt-app",
        SECRET,
        &[("grant_type", "client_credentials")],
    );
    assert_locked(r, 600);
    assert_eq!(
        cc(&gw, "127.0.0.3", "jwt-app", SECRET),
        200,
        "the real client elsewhere is not locked out by someone else's wrong secrets"
    );
    assert_eq!(
        cc(&gw, "127.0.0.2", "other-app", SECRET),
        429,
        "the address is locked for every client"
    );
    assert_eq!(
        cc(&gw, "127.0.0.3", "other-app", SECRET),
        200,
        "another client elsewhere is not slowed"
    );
    // Revoke and introspect authenticate the same way.
    for path in ["/oauth2/revoke", "/oauth2/introspect"] {
        assert_locked(
            post(&gw, "127.0.0.2", path, "other-app", SECRET, &[("token", "x")]),
            600,
        );
        for client in ["jwt-app", "other-app"] {
            let r = post(&gw, "127.0.0.3", path, client, SECRET, &[("token", "x")]);
            assert_eq!(r.status(), 200, "{path} {client}");
        }
    }
}

#[test]
fn unknown_client_ids_count_against_the_address() {
    let gw = Gateway::start(Setup {
        oauth: LOCK_3.into(),
        ..Setup::default()
    });
    for i in 0..3 {
        assert_eq!(cc(&gw, "127.0.0.4", &format!("nobody-{i}"), "x"), 401);
    }
    assert_eq!(cc(&gw, "127.0.0.4", "opaque-app", SECRET), 429);
    assert_eq!(cc(&gw, "127.0.0.5", "opaque-app", SECRET), 200);
}

#[test]
fn failed_logins_lock_the_username_from_that_address_known_or_not() {
    let gw = Gateway::start(Setup {
        oauth: LOCK_3.into(),
        ..Setup::default()
    });
    for user in ["alice", "mallory"] {
        for _ in 0..3 {
            assert_eq!(login(&gw, "127.0.0.6", user, "wrong"), 400, "{user}");
        }
        assert_eq!(
            login(&gw, "127.0.0.6", user, &format!("{user}-password")),
            429,
            "{user}"
        );
    }
    assert_eq!(
        login(&gw, "127.0.0.6", "bob", "bob-password"),
        200,
        "another user, same address"
    );
    assert_eq!(
        login(&gw, "127.0.0.7", "alice", "alice-password"),
        200,
        "alice from elsewhere is not locked out"
    );
}

#[test]
fn on_by_default_and_off_with_zero() {
    let gw = Gateway::start(Setup::default());
    for _ in 0..10 {
        assert_eq!(cc(&gw, "127.0.0.8", "jwt-app", "wrong"), 401);
    }
    assert_eq!(
        cc(&gw, "127.0.0.8", "jwt-app", SECRET),
        429,
        "10 failures lock by default"
    );
    drop(gw);

    let gw = Gateway::start(Setup {
        oauth: "lockout_max_failures = 0".into(),
        ..Setup::default()
    });
    for _ in 0..12 {
        assert_eq!(cc(&gw, "127.0.0.9", "jwt-app", "wrong"), 401);
    }
    assert_eq!(cc(&gw, "127.0.0.9", "jwt-app", SECRET), 200);
}

/// In-process: the failures show in the metric of their endpoint, and the counters live beside
/// the config, so a reload that keeps the lockout on keeps who is locked out.
#[test]
fn failures_are_counted_per_endpoint_and_survive_a_config_swap() {
    use base64::Engine;
    use tokengate::oauth::errors::OAuthError;
    use tokengate::oauth::token_endpoint::{authenticate, EndpointRequest};

    let dir = tempfile::tempdir().unwrap();
    let text = |max: u32| {
        format!(
            "[server]\ndata_dir = \"data\"\n[oauth]\njwt_algorithm = \"EdDSA\"\nlockout_max_failures = {max}\n\
             [[clients]]\nid = \"c\"\nsecret_sha256 = \"{}\"\ngrant_types = [\"client_credentials\"]\n",
            common::SECRET_SHA256
        )
    };
    let config = |max| tokengate::config::parse_str(&text(max), dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = rt.block_on(tokengate::state::AppState::start(config(2))).unwrap();
    let auth = |secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("c:{secret}"))
        )
    };
    let (wrong, right) = (auth("wrong"), auth(SECRET));
    let failures = |endpoint: &str| state.metrics.client_auth_failures.with_label_values(&[endpoint]).get();
    let run = |authorization: &str, endpoint| {
        let live = state.live();
        let req = EndpointRequest {
            authorization: Some(authorization.as_bytes()),
            content_type: Some(b"application/x-www-form-urlencoded"),
            body: b"token=x",
            peer: Some("192.0.2.1".parse().unwrap()),
            ..EndpointRequest::default()
        };
        authenticate(state.oauth(), &live.config, &req, endpoint).map(|_| ())
    };

    assert_eq!(run(&wrong, "revoke"), Err(OAuthError::InvalidClient));
    assert_eq!(run(&wrong, "introspect"), Err(OAuthError::InvalidClient));
    assert_eq!(
        (failures("revoke"), failures("introspect"), failures("token")),
        (1, 1, 0)
    );
    assert!(matches!(run(&right, "token"), Err(OAuthError::TooManyRequests { .. })));

    state.replace_config(config(5));
    assert!(
        matches!(run(&right, "token"), Err(OAuthError::TooManyRequests { .. })),
        "still locked"
    );
    state.replace_config(config(0));
    assert_eq!(run(&right, "token"), Ok(()), "the lockout turned off applies at once");
}
