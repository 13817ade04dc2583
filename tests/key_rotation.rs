//! JWT signing key rotation: after a restart on a new key, with the old one listed in
//! `oauth.jwt_previous_keys`, the JWKS publishes both, so tokens signed before the rotation still
//! verify at resource servers (and still pass the gateway) until they expire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{at, Gateway, Setup};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Verifies `token` against the gateway's JWKS, by its `kid`; returns that `kid`.
fn verify(gw: &Gateway, token: &str, alg: Algorithm) -> String {
    let kid = decode_header(token).unwrap().kid.unwrap();
    let set = gw.jwks();
    let jwk = set.find(&kid).unwrap_or_else(|| panic!("kid {kid} is not published"));
    let mut v = Validation::new(alg);
    v.set_issuer(&[gw.base.as_str()]);
    v.set_audience(&[gw.base.as_str()]);
    decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    kid
}

#[test]
fn a_rotated_key_stays_published_and_its_tokens_keep_working() {
    let gw = Gateway::start(Setup::default());
    let old_token = gw.cc("jwt-app");
    let old_kid = verify(&gw, at(&old_token), Algorithm::RS256);
    assert_eq!(gw.jwks().keys.len(), 1);
    let port = gw.port;
    let dir = gw.kill9();

    // The operator moves the RS256 key aside, switches to ES256 (a new key is generated at
    // start) and lists the old file as a previous key.
    std::fs::rename(
        dir.path().join("data/jwt-rs256.pem"),
        dir.path().join("retired-rs256.pem"),
    )
    .unwrap();
    let setup = Setup {
        oauth: "jwt_algorithm = \"ES256\"\njwt_previous_keys = [\"retired-rs256.pem\"]".into(),
        ..Setup::default()
    };
    common::write(&dir.path().join("gateway.toml"), &common::config_text(port, &setup));
    let gw = Gateway::start_in(dir, port);

    let set = gw.jwks();
    assert_eq!(set.keys.len(), 2, "the new key and the previous one");
    // Another client: a second JWT for jwt-app would revoke the first (single mode).
    let new_token = gw.cc("other-app");
    let new_kid = verify(&gw, at(&new_token), Algorithm::ES256);
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        set.keys[0].common.key_id.as_deref(),
        Some(new_kid.as_str()),
        "the signing key first"
    );
    assert_eq!(verify(&gw, at(&old_token), Algorithm::RS256), old_kid);
    assert_eq!(gw.api(&old_token), 200, "a token from before the rotation still passes");
    assert_eq!(gw.api(&new_token), 200);
    let served = gw
        .http
        .get(format!("{}/oauth2/jwks", gw.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for private in ["\"d\"", "\"p\"", "\"q\""] {
        assert!(
            !served.contains(private),
            "private member {private} published: {served}"
        );
    }
}

/// The same rotation without a restart: the config saved with a new `jwt_signing_key` and the
/// old file in `jwt_previous_keys` signs new tokens with the new key at once, the JWKS publishes
/// both, and tokens from before keep working. A key file that cannot be used refuses the whole
/// reload and leaves the key in use.
#[test]
fn a_key_rotated_by_a_reload_applies_without_a_restart() {
    let gw = Gateway::start(Setup::default());
    let old_token = gw.cc("jwt-app");
    let old_kid = verify(&gw, at(&old_token), Algorithm::RS256);
    let old_file = gw.dir.path().join("data/jwt-rs256.pem");

    // A broken new key first: nothing changes.
    common::write(&gw.dir.path().join("broken.pem"), "not a key");
    let broken = Setup {
        oauth: format!(
            "jwt_signing_key = \"broken.pem\"\njwt_previous_keys = [\"{}\"]",
            old_file.display()
        ),
        ..Setup::default()
    };
    common::write(&gw.conf_path(), &common::config_text(gw.port, &broken));
    gw.eventually(5, "the refused reload logged", || gw.log().contains("broken.pem"));
    assert_eq!(gw.jwks().keys.len(), 1);
    assert_eq!(verify(&gw, at(&gw.cc("other-app")), Algorithm::RS256), old_kid);

    // The rotation: a new ES256 key generated at the new path, the old one listed.
    let rotated = Setup {
        oauth: format!(
            "jwt_algorithm = \"ES256\"\njwt_signing_key = \"new-es256.pem\"\njwt_previous_keys = [\"{}\"]",
            old_file.display()
        ),
        ..Setup::default()
    };
    common::write(&gw.conf_path(), &common::config_text(gw.port, &rotated));
    gw.eventually(5, "the JWKS publishing both keys", || gw.jwks().keys.len() == 2);
    let new_token = gw.cc("other-app");
    let new_kid = verify(&gw, at(&new_token), Algorithm::ES256);
    assert_ne!(new_kid, old_kid);
    assert_eq!(gw.jwks().keys[0].common.key_id.as_deref(), Some(new_kid.as_str()));
    assert_eq!(verify(&gw, at(&old_token), Algorithm::RS256), old_kid);
    assert_eq!(gw.api(&old_token), 200, "a token from before the rotation still passes");
    assert_eq!(gw.api(&new_token), 200);
    assert!(
        !gw.log().contains("restart"),
        "the rotation needed no restart: {}",
        gw.log()
    );
}
