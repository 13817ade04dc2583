//! The HTTP surface of docs/http-api.md against the real binary: RFC 6749 answers and errors,
//! RFC 6750 at the gateway, identity headers, RFC 7009/7662/8414/7517, RFC 9068 JWTs, and a
//! real OAuth2 client library.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{at, Gateway, Setup, SECRET};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, ClientSecret, RefreshToken, ResourceOwnerPassword, ResourceOwnerUsername, Scope, TokenResponse, TokenUrl,
};
use serde_json::Value;

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn a_real_oauth2_client_gets_refreshes_and_uses_tokens() {
    let gw = Gateway::start(Setup::default());
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let client = BasicClient::new(ClientId::new("jwt-app".into()))
        .set_client_secret(ClientSecret::new(SECRET.into()))
        .set_token_uri(TokenUrl::new(format!("{}/oauth2/token", gw.base)).unwrap());

    let cc = client
        .exchange_client_credentials()
        .add_scope(Scope::new("a".into()))
        .request(&http)
        .unwrap();
    assert_eq!(cc.scopes().unwrap()[0].as_str(), "a");
    assert!(cc.refresh_token().is_none());
    assert_eq!(gw.call("/api/x", cc.access_token().secret()), 200);

    let pw = client
        .exchange_password(
            &ResourceOwnerUsername::new("alice".into()),
            &ResourceOwnerPassword::new("alice-password".into()),
        )
        .request(&http)
        .unwrap();
    let refreshed = client
        .exchange_refresh_token(pw.refresh_token().unwrap())
        .request(&http)
        .unwrap();
    assert_eq!(gw.call("/api/x", pw.access_token().secret()), 401);
    assert_eq!(gw.call("/api/x", refreshed.access_token().secret()), 200);
    let spent = RefreshToken::new(pw.refresh_token().unwrap().secret().clone());
    assert!(
        client.exchange_refresh_token(&spent).request(&http).is_err(),
        "a spent refresh token is refused"
    );
}

#[test]
fn token_answers_follow_rfc6749() {
    let gw = Gateway::start(Setup::default());
    let r = gw.token("jwt-app", &[("grant_type", "client_credentials"), ("scope", "a b")]);
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert!(header(&r, "content-type").starts_with("application/json"));
    let body: Value = r.json().unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "a b");

    // Credentials in the form work as well as HTTP Basic.
    let r = gw
        .http
        .post(format!("{}/oauth2/token", gw.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "opaque-app"),
            ("client_secret", SECRET),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let token: Value = r.json().unwrap();
    assert!(at(&token).starts_with("tga_"));
    assert!(at(&token).len() >= 43);
}

fn error_of(r: reqwest::blocking::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap();
    (status, body["error"].as_str().unwrap().to_string())
}

#[test]
fn token_errors_follow_rfc6749() {
    let gw = Gateway::start(Setup::default());
    let url = format!("{}/oauth2/token", gw.base);
    let bad_secret = gw
        .http
        .post(&url)
        .basic_auth("jwt-app", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send();
    let r = bad_secret.unwrap();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").starts_with("Basic"));
    assert_eq!(error_of(r), (401, "invalid_client".into()));
    let unknown = gw
        .http
        .post(&url)
        .basic_auth("nobody", Some(SECRET))
        .form(&[("grant_type", "password")])
        .send();
    assert_eq!(error_of(unknown.unwrap()), (401, "invalid_client".into()));
    let none = gw
        .http
        .post(&url)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(error_of(none), (401, "invalid_client".into()));

    let cases: Vec<(&[(&str, &str)], &str)> = vec![
        (&[("grant_type", "authorization_code")], "unsupported_grant_type"),
        (&[("scope", "a")], "invalid_request"),
        (
            &[("grant_type", "client_credentials"), ("scope", "a nope")],
            "invalid_scope",
        ),
        (
            &[("grant_type", "client_credentials"), ("scope", "a\"b")],
            "invalid_scope",
        ),
        (&[("grant_type", "password"), ("username", "alice")], "invalid_request"),
        (
            &[("grant_type", "password"), ("username", "alice"), ("password", "wrong")],
            "invalid_grant",
        ),
        (
            &[("grant_type", "password"), ("username", "mallory"), ("password", "x")],
            "invalid_grant",
        ),
        (
            &[("grant_type", "refresh_token"), ("refresh_token", "tgr_bogus")],
            "invalid_grant",
        ),
        (&[("grant_type", "refresh_token")], "invalid_request"),
    ];
    for (form, code) in cases {
        assert_eq!(error_of(gw.token("jwt-app", form)), (400, code.to_string()), "{form:?}");
    }
    // A client may only use its listed grant types.
    let dir_setup = Setup {
        extra: format!(
            "[[clients]]\nid = \"cc-only\"\nsecret_sha256 = \"{}\"\ngrant_types = [\"client_credentials\"]\n",
            common::SECRET_SHA256
        ),
        ..Setup::default()
    };
    let gw2 = Gateway::start(dir_setup);
    let r = gw2.token(
        "cc-only",
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password"),
        ],
    );
    assert_eq!(error_of(r), (400, "unauthorized_client".into()));
}

#[test]
fn gateway_answers_follow_rfc6750_and_pass_identity_headers() {
    let gw = Gateway::start(Setup::default());
    let url = format!("{}/api/orders", gw.base);
    let r = gw.http.get(&url).send().unwrap();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").starts_with("Bearer"));
    let r = gw.http.get(&url).bearer_auth("tga_nope").send().unwrap();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").contains("error=\"invalid_token\""));
    let t = gw.cc_scope("jwt-app", "a");
    let r = gw
        .http
        .get(format!("{}/scoped/x", gw.base))
        .bearer_auth(at(&t))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(header(&r, "www-authenticate").contains("insufficient_scope"));
    assert_eq!(
        gw.http.get(format!("{}/nowhere", gw.base)).send().unwrap().status(),
        404
    );
    assert_eq!(
        gw.http.get(format!("{}/public/x", gw.base)).send().unwrap().status(),
        200
    );

    let user = gw.password("jwt-app", "alice");
    let echo: Value = gw
        .http
        .get(format!("{}/scoped/orders?id=1", gw.base))
        .bearer_auth(at(&user))
        .header("X-Client-Id", "forged")
        .header("X-Subject", "root")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        echo["authorization_seen"], false,
        "the upstream never sees the bearer token"
    );
    assert_eq!(echo["x-client-id"], "jwt-app");
    assert_eq!(echo["x-subject"], "alice");
    assert_eq!(echo["x-scope"], "a b c orders:read");
    assert_eq!(echo["path"], "/scoped/orders?id=1");

    let cc = gw.cc("opaque-app");
    let echo: Value = gw
        .http
        .get(&url)
        .bearer_auth(at(&cc))
        .header("x-client-id", "forged")
        .header("X-SUBJECT", "root")
        .header("X-Scope", "admin")
        .header("X-Scope", "admin2")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(echo["x-client-id"], "opaque-app", "no forged copy beside it");
    assert_eq!(echo["x-subject"], Value::Null, "client_credentials has no subject");
    assert_eq!(echo["x-scope"], "a b c orders:read", "the forged scopes are gone");
    let echo: Value = gw
        .http
        .get(format!("{}/public/x", gw.base))
        .header("X-Client-Id", "forged")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        echo["x-client-id"],
        Value::Null,
        "client-sent identity headers are dropped"
    );
}

fn verify_jwt(gw: &Gateway, token: &str, alg: Algorithm) -> Value {
    let header = decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, alg);
    let jwks: JwkSet = gw
        .http
        .get(format!("{}/oauth2/jwks", gw.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("kid is published");
    let mut v = Validation::new(alg);
    v.set_issuer(&[gw.base.as_str()]);
    // Without `resource` the audience is the issuer (no `oauth.default_audience` here).
    v.set_audience(&[gw.base.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}

#[test]
fn jwts_follow_rfc9068_and_verify_against_the_jwks() {
    let gw = Gateway::start(Setup::default());
    let t = gw.password("jwt-app", "alice");
    let claims = verify_jwt(&gw, at(&t), Algorithm::RS256);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "jwt-app");
    assert_eq!(claims["scope"], "a b c orders:read");
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
    let cc = gw.cc("jwt-app");
    assert_eq!(
        verify_jwt(&gw, at(&cc), Algorithm::RS256)["sub"],
        "jwt-app",
        "sub is the client for client_credentials"
    );

    for (name, alg) in [("ES256", Algorithm::ES256), ("EdDSA", Algorithm::EdDSA)] {
        let gw = Gateway::start(Setup {
            oauth: format!("jwt_algorithm = \"{name}\""),
            ..Setup::default()
        });
        let t = gw.cc("jwt-app");
        verify_jwt(&gw, at(&t), alg);
        assert_eq!(gw.api(&t), 200);
    }
}

#[test]
fn signing_key_is_generated_once_and_reused_after_restart() {
    let gw = Gateway::start(Setup::default());
    let kid = decode_header(at(&gw.cc("jwt-app"))).unwrap().kid;
    let key_file = gw.dir.path().join("data/jwt-rs256.pem");
    assert!(key_file.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let port = gw.port;
    let dir = gw.kill9();
    let gw = Gateway::start_in(dir, port);
    assert_eq!(decode_header(at(&gw.cc("jwt-app"))).unwrap().kid, kid);
}

#[test]
fn introspection_revocation_and_metadata() {
    let gw = Gateway::start(Setup::default());
    let t = gw.password("jwt-app", "alice");
    let info = gw.introspect("other-app", at(&t));
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], "jwt-app");
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["scope"], "a b c orders:read");
    assert_eq!(info["token_type"], "Bearer");
    assert!(info["exp"].as_u64().unwrap() > info["iat"].as_u64().unwrap());
    assert_eq!(gw.introspect("other-app", "garbage")["active"], false);
    let r = gw
        .http
        .post(format!("{}/oauth2/introspect", gw.base))
        .form(&[("token", at(&t))])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "introspection needs client authentication");

    assert_eq!(gw.revoke("other-app", at(&t)), 400, "only the owner may revoke");
    assert_eq!(gw.api(&t), 200);
    // Revoking the refresh token revokes its family's access token too.
    assert_eq!(gw.revoke("jwt-app", t["refresh_token"].as_str().unwrap()), 200);
    assert_eq!(gw.api(&t), 401);

    let meta = gw.metadata();
    assert_eq!(meta["issuer"], gw.base);
    assert_eq!(meta["token_endpoint"], format!("{}/oauth2/token", gw.base));
    assert_eq!(meta["jwks_uri"], format!("{}/oauth2/jwks", gw.base));
    assert_eq!(
        gw.http
            .get(format!("{}/oauth2/token", gw.base))
            .send()
            .unwrap()
            .status(),
        405
    );
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_in_seconds() {
    let mut gw = Gateway::start(Setup::default());
    let pid = gw.pid();
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    // pingora's default grace period is 300 s; ours is configured down to seconds.
    let exited = gw.wait_exit(std::time::Duration::from_secs(20));
    assert!(exited.is_some(), "tokengate did not exit within 20 s of SIGTERM");
}
