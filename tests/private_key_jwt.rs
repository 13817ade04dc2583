//! `private_key_jwt` client authentication (RFC 7523 section 2.2) against the real binary:
//! assertions signed by a real client library (Python's PyJWT, which `scripts/deps.sh`
//! installs) and from Rust authenticate at the token, revocation and introspection endpoints;
//! hostile assertions are `invalid_client` and count toward the lockout; a private JWK in the
//! config is refused; the client's `jwks_file` is read again at a reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::client_keys::{now, PyKey, RustKey};
use common::{config_text, write, Gateway, Setup};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::blocking::Response;
use serde_json::{json, Value};

const CLIENT: &str = "pk-app";
const TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWKS_FILE: &str = "keys/pk-app.jwks.json";

/// Good claims for `pk-app` at `gw`, with a fresh `jti`.
fn claims(gw: &Gateway) -> Value {
    let jti = B64.encode(rand::random::<[u8; 12]>());
    let n = now();
    json!({"iss": CLIENT, "sub": CLIENT, "aud": token_endpoint(gw), "iat": n, "exp": n + 60, "jti": jti})
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(name);
    } else {
        claims[name] = value;
    }
    claims
}

fn token_endpoint(gw: &Gateway) -> String {
    format!("{}/oauth2/token", gw.base)
}

/// The `[[clients]]` entry of `pk-app` and the gateway's own lines (`oauth`).
fn setup(oauth: &str) -> Setup {
    Setup {
        oauth: oauth.into(),
        extra: format!(
            "[[clients]]\nid = \"{CLIENT}\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\n\
             jwks_file = \"{JWKS_FILE}\"\ngrant_types = [\"client_credentials\"]\nscopes = [\"a\", \"b\"]\n"
        ),
    }
}

fn write_jwks(dir: &Path, keys: &[&Value]) {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    write(&dir.join(JWKS_FILE), &json!({ "keys": keys }).to_string());
}

/// A gateway in `dir` whose `pk-app` trusts `keys`.
fn start(dir: tempfile::TempDir, keys: &[&Value], oauth: &str) -> Gateway {
    write_jwks(dir.path(), keys);
    let port = common::free_port();
    write(&dir.path().join("gateway.toml"), &config_text(port, &setup(oauth)));
    Gateway::start_in(dir, port)
}

/// POST `form` with the assertion to `/oauth2/<endpoint>`.
fn post(gw: &Gateway, endpoint: &str, assertion: &str, form: &[(&str, &str)]) -> Response {
    let mut all = vec![("client_assertion_type", TYPE), ("client_assertion", assertion)];
    all.extend_from_slice(form);
    gw.http
        .post(format!("{}/oauth2/{endpoint}", gw.base))
        .form(&all)
        .send()
        .unwrap()
}

fn cc(gw: &Gateway, assertion: &str) -> Response {
    post(gw, "token", assertion, &[("grant_type", "client_credentials")])
}

/// A token answer for `assertion`, which must succeed.
fn token_ok(gw: &Gateway, assertion: &str) -> String {
    let r = cc(gw, assertion);
    let status = r.status();
    let body: Value = r.json().unwrap();
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// The answer is RFC 6749's 401 `invalid_client`.
fn assert_invalid_client(r: Response, what: &str) {
    let status = r.status();
    let challenge = r.headers().get("www-authenticate").is_some();
    let body: Value = r.json().unwrap();
    assert_eq!((status.as_u16(), challenge), (401, true), "{what}: {body}");
    assert_eq!(body["error"], "invalid_client", "{what}");
}

#[test]
fn assertions_from_pyjwt_and_rust_authenticate_at_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = PyKey::new(dir.path(), "RSA", "py-rsa");
    let ec = PyKey::new(dir.path(), "EC", "py-ec");
    let rust = RustKey::generate();
    let gw = start(dir, &[&rsa.public, &ec.public, &rust.public], "");

    let meta = gw.metadata();
    assert!(meta["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("private_key_jwt")));
    assert_eq!(
        meta["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "PS256", "ES256", "EdDSA"])
    );

    let endpoint = token_endpoint(&gw);
    for (key, alg) in [(&rsa, "RS256"), (&rsa, "PS256"), (&ec, "ES256")] {
        let token = token_ok(&gw, &key.sign(alg, CLIENT, &endpoint));
        assert_eq!(gw.call("/api/x", &token), 200, "{alg}");
    }
    // The issuer is an audience too.
    token_ok(&gw, &rsa.sign("RS256", CLIENT, &gw.base));
    let token = token_ok(&gw, &rust.sign(&claims(&gw)));

    // Introspection and revocation authenticate the same way.
    let r = post(
        &gw,
        "introspect",
        &ec.sign("ES256", CLIENT, &endpoint),
        &[("token", &token)],
    );
    let body: Value = r.json().unwrap();
    assert_eq!(
        (body["active"].clone(), body["client_id"].clone()),
        (json!(true), json!(CLIENT))
    );
    let r = post(&gw, "revoke", &rust.sign(&claims(&gw)), &[("token", &token)]);
    assert_eq!(r.status(), 200);
    assert_eq!(gw.call("/api/x", &token), 401, "revoked");
    // A client_id in the form may name the client too.
    let r = post(
        &gw,
        "token",
        &rust.sign(&claims(&gw)),
        &[("grant_type", "client_credentials"), ("client_id", CLIENT)],
    );
    assert_eq!(r.status(), 200);
}

#[test]
fn hostile_assertions_and_wrong_methods_are_invalid_client_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = PyKey::new(dir.path(), "RSA", "py-rsa");
    let stranger = PyKey::new(dir.path(), "RSA", "py-stranger");
    let rust = RustKey::generate();
    let gw = start(dir, &[&rsa.public, &rust.public], "lockout_max_failures = 0");
    let endpoint = token_endpoint(&gw);
    let n = now();
    let mut sent = Vec::new();
    let mut refused = |assertion: String, what: &str| {
        assert_invalid_client(cc(&gw, &assertion), what);
        sent.push(assertion);
    };

    let body = B64.encode(claims(&gw).to_string());
    let head = B64.encode(json!({"alg": "none", "kid": "py-rsa"}).to_string());
    refused(format!("{head}.{body}."), "alg none");
    for secret in [rsa.public.to_string(), rsa.public["n"].as_str().unwrap().to_string()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("py-rsa".into());
        let forged = encode(&header, &claims(&gw), &EncodingKey::from_secret(secret.as_bytes())).unwrap();
        refused(forged, "HS256 keyed with the public key");
    }
    refused(
        rsa.sign("RS256", CLIENT, "https://elsewhere.example/oauth2/token"),
        "wrong aud",
    );
    refused(
        rsa.sign("RS256", CLIENT, &format!("{}/oauth2/revoke", gw.base)),
        "another endpoint as aud",
    );
    refused(stranger.sign("RS256", CLIENT, &endpoint), "a key not in the set");
    for (name, value, what) in [
        ("iss", json!("jwt-app"), "iss not the client"),
        ("exp", json!(n - 3600), "expired"),
        ("exp", Value::Null, "no exp"),
        ("exp", json!(n + 3600), "exp an hour ahead"),
        ("nbf", json!(n + 3600), "nbf in the future"),
        ("jti", Value::Null, "no jti"),
        ("aud", Value::Null, "no aud"),
    ] {
        refused(rust.sign(&with(claims(&gw), name, value)), what);
    }
    // A sub naming another client: that client (a secret client) cannot use an assertion.
    let other = with(with(claims(&gw), "sub", "jwt-app".into()), "iss", "jwt-app".into());
    refused(rust.sign(&other), "a secret client sending an assertion");
    // The form's client_id differs from the assertion's.
    let r = post(
        &gw,
        "token",
        &rust.sign(&claims(&gw)),
        &[("grant_type", "client_credentials"), ("client_id", "jwt-app")],
    );
    assert_invalid_client(r, "client_id differs from sub");
    // A replayed assertion: accepted once.
    let once = rsa.sign("RS256", CLIENT, &endpoint);
    token_ok(&gw, &once);
    refused(once, "replayed");
    // The private_key_jwt client has no secret to send; a secret client's Basic still works.
    let r = gw
        .http
        .post(&endpoint)
        .basic_auth(CLIENT, Some(common::SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_invalid_client(r, "private_key_jwt client sending a secret");
    gw.cc("jwt-app");
    // Two methods in one request.
    let r = gw
        .http
        .post(&endpoint)
        .basic_auth("jwt-app", Some(common::SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", TYPE),
            ("client_assertion", &rust.sign(&claims(&gw))),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "Basic and an assertion together");

    let log = gw.log();
    assert!(
        log.contains("client_assertion refused"),
        "the reasons are logged at debug"
    );
    for assertion in &sent {
        let signature = assertion.rsplit('.').next().unwrap();
        assert!(
            signature.is_empty() || !log.contains(signature),
            "an assertion reached the log"
        );
        assert!(!log.contains(assertion.as_str()));
    }
}

#[test]
fn failed_assertions_count_toward_the_lockout() {
    let dir = tempfile::tempdir().unwrap();
    let rust = RustKey::generate();
    let gw = start(dir, &[&rust.public], "lockout_max_failures = 3");
    for _ in 0..3 {
        let expired = with(claims(&gw), "exp", json!(now() - 3600));
        assert_invalid_client(cc(&gw, &rust.sign(&expired)), "expired");
    }
    let r = cc(&gw, &rust.sign(&claims(&gw)));
    assert_eq!(r.status(), 429, "locked out: a good assertion waits too");
}

#[test]
fn a_private_jwk_or_a_secret_beside_the_keys_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = PyKey::new(dir.path(), "RSA", "py-rsa");
    write_jwks(dir.path(), &[&rsa.private]);
    let path = dir.path().join("gateway.toml");
    write(&path, &config_text(common::free_port(), &setup("")));
    let check = || {
        Command::new(common::bin())
            .arg("--conf")
            .arg(&path)
            .arg("--check")
            .output()
            .unwrap()
    };
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("clients[0].jwks_file") && stderr.contains("private member \"d\""),
        "{stderr}"
    );
    write_jwks(dir.path(), &[&rsa.public]);
    assert_eq!(check().status.code(), Some(0));
    let text = config_text(common::free_port(), &setup("")).replace(
        "token_endpoint_auth_method = \"private_key_jwt\"\n",
        &format!(
            "token_endpoint_auth_method = \"private_key_jwt\"\nsecret_sha256 = \"{}\"\n",
            common::SECRET_SHA256
        ),
    );
    write(&path, &text);
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("clients[0].secret_sha256"), "{stderr}");
}

fn hangup(gw: &Gateway) {
    let status = Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_jwks_file_is_read_again_at_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let old = RustKey::generate();
    let new = RustKey::generate();
    let gw = start(dir, &[&old.public], "lockout_max_failures = 0");
    gw.eventually(5, "the SIGHUP handler", || gw.log().contains("SIGHUP also reloads"));
    let accepted = |key: &RustKey| cc(&gw, &key.sign(&claims(&gw))).status() == 200;
    assert!(accepted(&old));
    assert!(!accepted(&new), "not in the set yet");

    write_jwks(gw.dir.path(), &[&old.public, &new.public]);
    hangup(&gw);
    gw.eventually(5, "the added key accepted after the reload", || accepted(&new));
    assert!(accepted(&old));

    write_jwks(gw.dir.path(), &[&new.public]);
    hangup(&gw);
    gw.eventually(5, "the removed key refused after the reload", || !accepted(&old));
    assert!(accepted(&new));

    // A broken file refuses the reload, naming the key; the keys in force stay.
    write(&gw.dir.path().join(JWKS_FILE), "{\"keys\": [");
    hangup(&gw);
    gw.eventually(5, "the refused reload", || {
        let log = gw.log();
        log.contains("config reload (SIGHUP) refused") && log.contains("clients[0].jwks_file")
    });
    assert!(accepted(&new));
    assert!(!accepted(&old));
}

/// Cluster mode: an assertion accepted at one node is refused at another (each assertion's
/// digest is recorded in the database until it expires).
#[test]
fn an_assertion_used_at_one_node_is_refused_at_another() {
    use common::cluster::{Cluster, ISSUER};
    let key = RustKey::generate();
    let jwks = json!({ "keys": [key.public] }).to_string();
    let setup = Setup {
        oauth: String::new(),
        extra: format!(
            "[[clients]]\nid = \"{CLIENT}\"\ntoken_endpoint_auth_method = \"private_key_jwt\"\n\
             jwks = '{jwks}'\ngrant_types = [\"client_credentials\"]\nscopes = [\"a\"]\n"
        ),
    };
    let c = Cluster::start(2, setup);
    let n = now();
    let aud = format!("{ISSUER}/oauth2/token");
    let sign =
        |jti: &str| key.sign(&json!({"iss": CLIENT, "sub": CLIENT, "aud": aud, "iat": n, "exp": n + 60, "jti": jti}));
    let once = sign("once-in-the-cluster");
    token_ok(c.gw(0), &once);
    assert_invalid_client(cc(c.gw(1), &once), "replayed at another node");
    token_ok(c.gw(1), &sign("another"));
}
