//! The token, revoke and introspect endpoints driven directly with their narrow dependencies: an
//! engine on an in-memory store and an in-memory key, the lockout, the metrics and a config made
//! from text. No socket, no file.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::super::deps::OAuthDeps;
use super::super::errors::OAuthError;
use super::super::lockout::Lockout;
use super::super::passwords::PasswordChecker;
use super::super::replay::ReplayCache;
use super::super::token_endpoint::{token, EndpointRequest};
use super::{introspect, revoke};
use crate::config::{parse_str, Config};
use crate::domain::format::JwtAlgorithm;
use crate::metrics::Metrics;
use crate::store::memory::MemoryStore;
use crate::tokens::index::TokenIndex;
use crate::tokens::jwt::JwtSigner;
use crate::tokens::lifecycle::Revoked;
use crate::tokens::opaque::OpaqueCodec;
use crate::tokens::service::TokenService;

/// Two clients: `app` (opaque, with refresh tokens, scopes `app_scopes`) and `other` (JWT).
fn config_text(app_scopes: &str) -> String {
    let hash = crate::oauth::client_auth::hash_secret("s3cret");
    format!(
        "[[clients]]\nid = \"app\"\nsecret_sha256 = \"{hash}\"\ntoken_type = \"opaque\"\n\
         grant_types = [\"client_credentials\", \"refresh_token\"]\nscopes = [{app_scopes}]\n\
         refresh_tokens_for_client_credentials = true\n\
         [[clients]]\nid = \"other\"\nsecret_sha256 = \"{hash}\"\ntoken_type = \"jwt\"\n\
         grant_types = [\"client_credentials\"]\nscopes = [\"a\"]\n"
    )
}

struct Fixture {
    tokens: TokenService,
    lockout: Lockout,
    metrics: Metrics,
    passwords: PasswordChecker,
    proofs: crate::oauth::replay::ReplayCache,
    nonces: crate::oauth::dpop_nonce::Nonces,
    replay: ReplayCache,
    config: Config,
}

impl Fixture {
    fn new() -> Fixture {
        let signer = JwtSigner::generate(JwtAlgorithm::EdDSA).unwrap();
        Fixture {
            tokens: TokenService::new(
                Arc::new(TokenIndex::new()),
                Arc::new(MemoryStore::default()),
                OpaqueCodec::new(&[7u8; 32]),
                signer,
            ),
            lockout: Lockout::default(),
            metrics: Metrics::new().unwrap(),
            passwords: PasswordChecker::new(1).unwrap(),
            proofs: crate::oauth::replay::ReplayCache::new(100),
            nonces: crate::oauth::dpop_nonce::Nonces::new(&[3; 32]),
            replay: ReplayCache::default(),
            config: parse_str(&config_text("\"a\", \"b\""), Path::new("/nowhere")).unwrap(),
        }
    }

    fn deps(&self) -> OAuthDeps<'_> {
        OAuthDeps {
            tokens: &self.tokens,
            lockout: &self.lockout,
            metrics: &self.metrics,
            passwords: &self.passwords,
            proofs: &self.proofs,
            nonces: &self.nonces,
            replay: &self.replay,
        }
    }
}

fn basic(client: &str, secret: &str) -> Vec<u8> {
    format!("Basic {}", STANDARD.encode(format!("{client}:{secret}"))).into_bytes()
}

fn request<'a>(authorization: &'a [u8], body: &'a str, peer: &str) -> EndpointRequest<'a> {
    EndpointRequest {
        authorization: Some(authorization),
        content_type: Some(b"application/x-www-form-urlencoded"),
        body: body.as_bytes(),
        peer: Some(peer.parse::<IpAddr>().unwrap()),
        ..EndpointRequest::default()
    }
}

const CC: &str = "grant_type=client_credentials";

#[tokio::test]
async fn the_token_endpoint_issues_and_counts() {
    let f = Fixture::new();
    let auth = basic("app", "s3cret");
    let issued = token(f.deps(), &f.config, request(&auth, CC, "192.0.2.1"))
        .await
        .unwrap();
    assert!(issued.refresh_token.is_some());
    assert_eq!(issued.scope, "a b");
    let again = token(f.deps(), &f.config, request(&auth, CC, "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(
        again.access_token, issued.access_token,
        "opaque single mode hands the same token out"
    );
    let counted = |mode: &str| {
        f.metrics
            .tokens_issued
            .with_label_values(&["client_credentials", "opaque", mode])
            .get()
    };
    assert_eq!((counted("single"), counted("reused")), (1, 1));
}

#[tokio::test]
async fn wrong_secrets_are_invalid_client_then_locked_out_from_that_address_only() {
    let f = Fixture::new();
    let wrong = basic("app", "nope");
    for _ in 0..10 {
        let e = token(f.deps(), &f.config, request(&wrong, CC, "192.0.2.66"))
            .await
            .unwrap_err();
        assert_eq!(e, OAuthError::InvalidClient);
    }
    let right = basic("app", "s3cret");
    let locked = token(f.deps(), &f.config, request(&right, CC, "192.0.2.66"))
        .await
        .unwrap_err();
    assert!(matches!(locked, OAuthError::TooManyRequests { .. }), "{locked:?}");
    assert!(token(f.deps(), &f.config, request(&right, CC, "198.51.100.7"))
        .await
        .is_ok());
    let failures = f.metrics.client_auth_failures.with_label_values(&["token"]).get();
    assert_eq!(failures, 10);
}

#[tokio::test]
async fn revoke_takes_only_the_owners_tokens_and_introspect_follows() {
    let f = Fixture::new();
    let (app, other) = (basic("app", "s3cret"), basic("other", "s3cret"));
    let issued = token(f.deps(), &f.config, request(&app, CC, "192.0.2.1"))
        .await
        .unwrap();
    let body = format!("token={}", issued.access_token);
    let active = introspect(f.deps(), &f.config, request(&other, &body, "192.0.2.1"))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&active.body).unwrap();
    assert_eq!(
        (v["active"].as_bool(), v["client_id"].as_str()),
        (Some(true), Some("app"))
    );

    let refused = revoke(f.deps(), &f.config, request(&other, &body, "192.0.2.1"))
        .await
        .unwrap_err();
    assert!(matches!(refused, OAuthError::UnauthorizedClient(_)), "{refused:?}");
    let (reply, what) = revoke(f.deps(), &f.config, request(&app, &body, "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!((reply.status, what), (200, Revoked::Access));
    let gone = introspect(f.deps(), &f.config, request(&app, &body, "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(&gone.body[..], br#"{"active":false}"#);
    let (reply, what) = revoke(f.deps(), &f.config, request(&app, "token=unknown", "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(
        (reply.status, what),
        (200, Revoked::Nothing),
        "an unknown token is a 200 too"
    );
}

#[tokio::test]
async fn a_refresh_follows_the_config_it_is_given() {
    let f = Fixture::new();
    let auth = basic("app", "s3cret");
    let issued = token(f.deps(), &f.config, request(&auth, CC, "192.0.2.1"))
        .await
        .unwrap();
    let refresh = format!(
        "grant_type=refresh_token&refresh_token={}",
        issued.refresh_token.unwrap()
    );
    // The same engine under a config where the client lost scope "b".
    let narrowed = parse_str(&config_text("\"a\""), Path::new("/nowhere")).unwrap();
    let e = token(f.deps(), &narrowed, request(&auth, &refresh, "192.0.2.1"))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::InvalidScope(_)), "{e:?}");
    let body = format!("token={}", issued.access_token);
    let inactive = introspect(f.deps(), &narrowed, request(&auth, &body, "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(
        &inactive.body[..],
        br#"{"active":false}"#,
        "wider than the client's scopes now"
    );
    // Under the config that allows it, the same refresh token still works: nothing was spent.
    assert!(token(f.deps(), &f.config, request(&auth, &refresh, "192.0.2.1"))
        .await
        .is_ok());
}
