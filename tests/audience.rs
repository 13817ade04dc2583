//! Audience-bound tokens (RFC 8707 `resource`, RFC 9068 `aud`): what a client may ask for, what
//! the tokens carry, which routes take them, and real verifiers (Rust `jsonwebtoken`, Python
//! PyJWT) checking `aud` against the published keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{at, Gateway, Setup, SECRET_SHA256};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

const ORDERS: &str = "https://orders.example";
const BILLING: &str = "https://billing.example";

fn setup() -> Setup {
    let up = common::upstream();
    Setup {
        oauth: String::new(),
        extra: format!(
            "[[routes]]\npath_prefix = \"/orders\"\nupstream = \"{up}\"\naudience = \"{ORDERS}\"\n\
             [[routes]]\npath_prefix = \"/billing\"\nupstream = \"{up}\"\naudience = \"{BILLING}\"\n\
             [[clients]]\nid = \"narrow-app\"\nsecret_sha256 = \"{SECRET_SHA256}\"\n\
             grant_types = [\"client_credentials\"]\nscopes = [\"a\"]\naudiences = [\"{ORDERS}\"]\n"
        ),
    }
}

fn token_for(gw: &Gateway, client: &str, resources: &[&str]) -> reqwest::blocking::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend(resources.iter().map(|r| ("resource", *r)));
    gw.token(client, &form)
}

fn token_ok(gw: &Gateway, client: &str, resources: &[&str]) -> String {
    let r = token_for(gw, client, resources);
    assert_eq!(r.status(), 200);
    at(&r.json::<Value>().unwrap()).to_string()
}

/// The claims of `token` when `jsonwebtoken` accepts it for `audience`.
fn verify_for(gw: &Gateway, token: &str, audience: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let kid = decode_header(token).unwrap().kid.unwrap();
    let set = gw.jwks();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[gw.base.as_str()]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    decode::<Value>(token, &DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap(), &v).map(|d| d.claims)
}

/// What PyJWT says of `token` when asked to accept it for `audience`: "ok" or the error's name.
fn pyjwt_verdict(gw: &Gateway, token: &str, audience: &str) -> String {
    let kid = decode_header(token).unwrap().kid.unwrap();
    let jwk = serde_json::to_string(gw.jwks().find(&kid).unwrap()).unwrap();
    let script = r#"
import json, sys, jwt
token, jwk, audience, issuer = sys.argv[1:5]
key = jwt.PyJWK(json.loads(jwk)).key
try:
    jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=issuer,
               options={"require": ["exp", "iss", "aud"]})
    print("ok")
except jwt.PyJWTError as e:
    print(type(e).__name__)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, token, &jwk, audience, &gw.base])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "PyJWT is needed (scripts/test.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_token_for_a_resource_passes_its_route_and_no_other_audience_route() {
    let gw = Gateway::start(setup());
    let orders = token_ok(&gw, "jwt-app", &[ORDERS]);
    assert_eq!(gw.call("/orders/1", &orders), 200);
    assert_eq!(gw.call("/api/x", &orders), 200, "a route without an audience takes any");
    let r = gw
        .http
        .get(format!("{}/billing/1", gw.base))
        .bearer_auth(&orders)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // Without `resource`: the default audience (the issuer here), which no audience route takes.
    let plain = at(&gw.cc("other-app")).to_string();
    assert_eq!(gw.call("/api/x", &plain), 200);
    assert_eq!(gw.call("/orders/1", &plain), 401);
    assert_eq!(verify_for(&gw, &plain, &gw.base).unwrap()["aud"], gw.base.as_str());

    // Both resources: one token for both routes, `aud` an array.
    let both = token_ok(&gw, "opaque-app", &[BILLING, ORDERS]);
    assert_eq!(gw.call("/orders/1", &both), 200);
    assert_eq!(gw.call("/billing/1", &both), 200);
    let info = gw.introspect("opaque-app", &both);
    assert_eq!(info["aud"], serde_json::json!([BILLING, ORDERS]));
}

#[test]
fn real_verifiers_check_the_audience() {
    let gw = Gateway::start(setup());
    let orders = token_ok(&gw, "jwt-app", &[ORDERS]);
    let claims = verify_for(&gw, &orders, ORDERS).unwrap();
    assert_eq!(claims["aud"], ORDERS);
    let wrong = verify_for(&gw, &orders, BILLING).unwrap_err();
    assert_eq!(*wrong.kind(), jsonwebtoken::errors::ErrorKind::InvalidAudience);
    assert_eq!(pyjwt_verdict(&gw, &orders, ORDERS), "ok");
    assert_eq!(pyjwt_verdict(&gw, &orders, BILLING), "InvalidAudienceError");
    assert_eq!(gw.introspect("jwt-app", &orders)["aud"], ORDERS);
}

#[test]
fn resources_a_client_may_not_ask_for_are_invalid_target() {
    let gw = Gateway::start(setup());
    for (client, resources) in [
        ("narrow-app", &[BILLING][..]),
        ("narrow-app", &[ORDERS, BILLING]),
        ("jwt-app", &["https://elsewhere.example"]),
        ("jwt-app", &["orders"]),
        ("jwt-app", &["https://orders.example#x"]),
    ] {
        let r = token_for(&gw, client, resources);
        assert_eq!(r.status(), 400, "{client} {resources:?}");
        assert_eq!(
            r.json::<Value>().unwrap()["error"],
            "invalid_target",
            "{client} {resources:?}"
        );
    }
    // What it lists, and the default audience, it may.
    let orders = token_ok(&gw, "narrow-app", &[ORDERS]);
    assert_eq!(gw.call("/orders/1", &orders), 200);
    token_ok(&gw, "narrow-app", &[gw.base.as_str()]);
}

#[test]
fn the_audience_is_part_of_the_renewal_key() {
    let gw = Gateway::start(setup());
    // Opaque, single mode: one shared token per audience.
    let a = token_ok(&gw, "opaque-app", &[ORDERS]);
    let b = token_ok(&gw, "opaque-app", &[BILLING]);
    assert_ne!(a, b);
    assert_eq!(token_ok(&gw, "opaque-app", &[ORDERS]), a);
    // JWT, single mode: a new token for one audience leaves the other's active.
    let orders = token_ok(&gw, "jwt-app", &[ORDERS]);
    let billing = token_ok(&gw, "jwt-app", &[BILLING]);
    let orders_again = token_ok(&gw, "jwt-app", &[ORDERS]);
    assert_eq!(gw.call("/orders/1", &orders), 401, "revoked by its key's renewal");
    assert_eq!(gw.call("/billing/1", &billing), 200);
    assert_eq!(gw.call("/orders/1", &orders_again), 200);
}

#[test]
fn a_refresh_keeps_the_audience() {
    let gw = Gateway::start(setup());
    let first = gw.token_ok(
        "jwt-app",
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password"),
            ("resource", ORDERS),
        ],
    );
    let refresh = first["refresh_token"].as_str().unwrap();
    let r = gw.token(
        "jwt-app",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("resource", BILLING),
        ],
    );
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_target");
    let next = gw.token_ok(
        "jwt-app",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    );
    assert_eq!(gw.call("/orders/1", at(&next)), 200);
    assert_eq!(verify_for(&gw, at(&next), ORDERS).unwrap()["aud"], ORDERS);
}

/// Cluster mode: a node knows the audience of a token issued at another (read from the database),
/// and the renewal key with its audience is the same on every node.
#[test]
fn cluster_nodes_agree_on_audiences() {
    let c = common::cluster::Cluster::start(2, setup());
    let (a, b) = (c.gw(0), c.gw(1));
    let shared = token_ok(a, "opaque-app", &[ORDERS]);
    assert_eq!(b.call("/orders/1", &shared), 200);
    assert_eq!(b.call("/billing/1", &shared), 401);
    assert_eq!(token_ok(b, "opaque-app", &[ORDERS]), shared, "one shared token per key");
    assert_ne!(token_ok(b, "opaque-app", &[BILLING]), shared);

    let orders = token_ok(a, "jwt-app", &[ORDERS]);
    let billing = token_ok(b, "jwt-app", &[BILLING]);
    let orders_again = token_ok(b, "jwt-app", &[ORDERS]);
    c.eventually(5, "the renewal at node B reaches node A", || {
        a.call("/orders/1", &orders) == 401
    });
    assert_eq!(a.call("/billing/1", &billing), 200, "another audience's token stays");
    assert_eq!(a.call("/orders/1", &orders_again), 200);
}
