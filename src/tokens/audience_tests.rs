//! The audience in the engine: part of the renewal key, carried by JWTs, kept across a restart
//! and a refresh.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

use super::service::{IssueParams, Outcome, ServiceError};
use super::test_engine::{allow_all, engine, params, sqlite, valid};
use crate::domain::audience::AudienceSet;
use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantType;

fn aimed(format: TokenFormat, uri: &str) -> IssueParams<'static> {
    IssueParams {
        audience: AudienceSet::one(uri).unwrap(),
        ..params(format, false)
    }
}

fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn two_audiences_are_two_keys() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    // JWT, single mode: a new token revokes the key's previous one, and only that key's.
    let orders = e
        .issue(aimed(TokenFormat::Jwt, "https://orders.example"))
        .await
        .unwrap();
    let billing = e
        .issue(aimed(TokenFormat::Jwt, "https://billing.example"))
        .await
        .unwrap();
    assert!(valid(&e, &orders.access_token) && valid(&e, &billing.access_token));
    let orders_again = e
        .issue(aimed(TokenFormat::Jwt, "https://orders.example"))
        .await
        .unwrap();
    assert!(
        !valid(&e, &orders.access_token),
        "the same key's previous token is revoked"
    );
    assert!(valid(&e, &billing.access_token), "another audience's token is not");
    assert!(valid(&e, &orders_again.access_token));
    // Opaque, single mode: one shared token per audience.
    let a = e
        .issue(aimed(TokenFormat::Opaque, "https://orders.example"))
        .await
        .unwrap();
    let b = e
        .issue(aimed(TokenFormat::Opaque, "https://billing.example"))
        .await
        .unwrap();
    assert_ne!(a.access_token, b.access_token);
    let a_again = e
        .issue(aimed(TokenFormat::Opaque, "https://orders.example"))
        .await
        .unwrap();
    assert_eq!(a_again.access_token, a.access_token);
    assert_eq!(a_again.outcome, Outcome::Reused);
}

#[tokio::test]
async fn a_jwt_carries_its_audience() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let one = e
        .issue(aimed(TokenFormat::Jwt, "https://orders.example"))
        .await
        .unwrap();
    assert_eq!(claims(&one.access_token)["aud"], "https://orders.example");
    let two = IssueParams {
        audience: AudienceSet::from_uris(["https://orders.example", "https://billing.example"]).unwrap(),
        ..params(TokenFormat::Jwt, false)
    };
    let two = e.issue(two).await.unwrap();
    assert_eq!(
        claims(&two.access_token)["aud"],
        serde_json::json!(["https://billing.example", "https://orders.example"])
    );
}

#[tokio::test]
async fn the_audience_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let token = {
        let e = engine(dir.path(), sqlite(dir.path()));
        e.issue(aimed(TokenFormat::Opaque, "https://orders.example"))
            .await
            .unwrap()
            .access_token
    };
    let e = engine(dir.path(), sqlite(dir.path()));
    e.restore().await.unwrap();
    let rec = e.index().access(&e.access_id(&token).unwrap()).unwrap();
    assert_eq!(rec.key.audience().as_str(), "https://orders.example");
    let again = e
        .issue(aimed(TokenFormat::Opaque, "https://orders.example"))
        .await
        .unwrap();
    assert_eq!(again.access_token, token, "the restored key is the same key");
}

#[tokio::test]
async fn a_refresh_keeps_the_audience_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let with_refresh = |uri: &str| IssueParams {
        refresh_ttl_secs: Some(3600),
        ..aimed(TokenFormat::Jwt, uri)
    };
    let first = e.issue(with_refresh("https://orders.example")).await.unwrap();
    let refresh = first.refresh_token.unwrap();
    let elsewhere = IssueParams {
        grant: GrantType::RefreshToken,
        ..with_refresh("https://billing.example")
    };
    let refused = e.refresh(&refresh, None, elsewhere, &allow_all).await;
    assert!(matches!(refused, Err(ServiceError::InvalidTarget(_))), "{refused:?}");
    let unasked = IssueParams {
        audience: AudienceSet::default(),
        ..with_refresh("https://orders.example")
    };
    let next = e.refresh(&refresh, None, unasked, &allow_all).await.unwrap();
    assert_eq!(claims(&next.access_token)["aud"], "https://orders.example");
}
