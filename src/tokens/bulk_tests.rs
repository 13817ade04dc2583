//! Listing and bulk revocation driven on the engine: on SQLite (the index holds every token),
//! and on PostgreSQL with two engines sharing one database, where the engine that revokes has
//! never seen the tokens another one issued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::domain::grant_type::{GrantSet, GrantType};
use crate::domain::key::ScopeSet;
use crate::domain::policy::RenewPolicy;
use crate::store::TokenStore;
use crate::tokens::opaque::OpaqueKind;
use crate::tokens::request::LiveLimits;
use crate::tokens::service::IssueParams;
use crate::tokens::test_engine::{engine, sqlite, valid};

fn params<'a>(client_id: &'a str, subject: &'a str, format: TokenFormat, refresh: bool) -> IssueParams<'a> {
    let grant = if subject.is_empty() {
        GrantType::ClientCredentials
    } else {
        GrantType::Password
    };
    IssueParams {
        client_id,
        format,
        grant,
        subject,
        scope: ScopeSet::parse("a b").unwrap(),
        audience: Default::default(),
        jkt: None,
        // Multi mode: every request adds a token.
        policy: RenewPolicy {
            enable: true,
            allowed_grant_types: GrantSet::of(&[GrantType::ClientCredentials, GrantType::Password]),
            max_active_tokens: 0,
        },
        access_ttl_secs: 3600,
        refresh_ttl_secs: refresh.then_some(7200),
        issuer: "http://gw",
        limits: LiveLimits::default(),
    }
}

fn allow_all(_: &TokenKey) -> Result<(), ServiceError> {
    Ok(())
}

fn of_client(client: &str) -> TokenFilter {
    TokenFilter {
        client_id: Some(client.into()),
        ..TokenFilter::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_listed_and_revoked_and_stays_revoked_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (leaked, kept, refresh) = {
        let e = engine(dir.path(), sqlite(dir.path()));
        let mut leaked = Vec::new();
        for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
            for subject in ["", "alice", "bob"] {
                leaked.push(
                    e.issue(params("app", subject, format, false))
                        .await
                        .unwrap()
                        .access_token,
                );
            }
        }
        let with_refresh = e.issue(params("app", "alice", TokenFormat::Jwt, true)).await.unwrap();
        leaked.push(with_refresh.access_token);
        let kept = e.issue(params("other", "alice", TokenFormat::Jwt, true)).await.unwrap();

        let listing = e.list_live(&of_client("app"), 100).await.unwrap();
        assert_eq!(listing.tokens.len(), 8, "7 access tokens and 1 refresh token");
        assert!(!listing.truncated);
        assert_eq!(listing.tokens.iter().filter(|t| t.refresh).count(), 1);
        assert!(listing.tokens.iter().all(|t| &*t.client_id == "app"));
        let alice = TokenFilter {
            subject: Some("alice".into()),
            ..of_client("app")
        };
        assert_eq!(e.list_live(&alice, 100).await.unwrap().tokens.len(), 4);
        let first_two = e.list_live(&of_client("app"), 2).await.unwrap();
        assert_eq!(first_two.tokens.len(), 2);
        assert!(first_two.truncated);

        assert_eq!(e.revoke_matching(&of_client("app")).await.unwrap(), 8);
        assert!(
            leaked.iter().all(|t| !valid(&e, t)),
            "every token of the client is refused"
        );
        assert!(valid(&e, &kept.access_token), "another client's token still passes");
        let refresh = e
            .refresh(
                &with_refresh.refresh_token.unwrap(),
                None,
                params("app", "", TokenFormat::Jwt, true),
                &allow_all,
            )
            .await;
        assert!(refresh.is_err(), "the client's refresh token is revoked too");
        assert!(e.list_live(&of_client("app"), 100).await.unwrap().tokens.is_empty());
        assert_eq!(e.revoke_matching(&of_client("app")).await.unwrap(), 0, "nothing left");
        (leaked, kept.access_token, kept.refresh_token.unwrap())
    };
    let e = engine(dir.path(), sqlite(dir.path()));
    e.restore().await.unwrap();
    assert!(leaked.iter().all(|t| !valid(&e, t)), "the revocation was durable");
    assert!(valid(&e, &kept));
    assert!(e
        .index()
        .refresh(&e.codec().parse(OpaqueKind::Refresh, &refresh).unwrap())
        .is_some());
}

#[tokio::test]
async fn a_token_id_or_an_instant_revokes_only_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let a = e
        .issue(params("app", "", TokenFormat::Jwt, false))
        .await
        .unwrap()
        .access_token;
    let b = e
        .issue(params("app", "", TokenFormat::Jwt, false))
        .await
        .unwrap()
        .access_token;
    let by_id = TokenFilter {
        token_id: Some(TokenId::of_jwt(&a)),
        ..TokenFilter::default()
    };
    let listed = e.list_live(&by_id, 10).await.unwrap().tokens;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, TokenId::of_jwt(&a));
    assert_eq!(e.revoke_matching(&by_id).await.unwrap(), 1);
    assert!(!valid(&e, &a) && valid(&e, &b));

    // `b` was issued at `iat`: "before iat" is not it, "before iat + 1 ms" is.
    let iat = e.list_live(&of_client("app"), 10).await.unwrap().tokens[0].issued_at_ms;
    let before = |ms| TokenFilter {
        issued_before_ms: Some(ms),
        ..TokenFilter::default()
    };
    assert_eq!(e.revoke_matching(&before(iat)).await.unwrap(), 0);
    assert!(valid(&e, &b));
    assert_eq!(e.revoke_matching(&before(iat + 1)).await.unwrap(), 1);
    assert!(!valid(&e, &b));
    assert_eq!(
        e.revoke_matching(&TokenFilter::default()).await.unwrap(),
        0,
        "no filter: nothing"
    );
}

#[tokio::test]
async fn a_refresh_token_id_revokes_its_family() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let issued = e
        .issue(params("app", "alice", TokenFormat::Opaque, true))
        .await
        .unwrap();
    let other = e
        .issue(params("app", "alice", TokenFormat::Opaque, true))
        .await
        .unwrap();
    let rid = e
        .codec()
        .parse(OpaqueKind::Refresh, issued.refresh_token.as_deref().unwrap())
        .unwrap();
    let by_refresh = TokenFilter {
        token_id: Some(rid),
        ..TokenFilter::default()
    };
    assert_eq!(
        e.revoke_matching(&by_refresh).await.unwrap(),
        2,
        "the refresh token and its access token"
    );
    assert!(!valid(&e, &issued.access_token));
    assert!(valid(&e, &other.access_token), "another grant of the same key stays");
}

/// Waits until `check` holds (the feed is asynchronous); panics after 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An engine on its own store of the cluster's database, following the change feed.
async fn node(dir: &std::path::Path, url: &str) -> Arc<TokenService> {
    let store: Arc<dyn TokenStore> = Arc::new(crate::store::postgres::PostgresStore::open(url, 2).unwrap());
    let e = engine(dir, store);
    e.restore().await.unwrap();
    let feed = Arc::clone(e.feed().unwrap());
    let weak = Arc::downgrade(&e);
    feed.subscribe(Box::new(move |changes| {
        if let Some(e) = weak.upgrade() {
            e.apply_changes(changes);
        }
    }));
    eventually("the feed catches up", || feed.caught_up_at_ms() != 0).await;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_a_client_is_revoked_from_a_node_that_never_saw_its_tokens() {
    let db = crate::store::postgres::tests::TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), &db.url).await;
    let b = node(dir.path(), &db.url).await;
    let mut leaked = Vec::new();
    for (subject, format) in [
        ("", TokenFormat::Jwt),
        ("alice", TokenFormat::Opaque),
        ("bob", TokenFormat::Jwt),
    ] {
        leaked.push(
            b.issue(params("app", subject, format, true))
                .await
                .unwrap()
                .access_token,
        );
    }
    let kept = b
        .issue(params("other", "", TokenFormat::Jwt, false))
        .await
        .unwrap()
        .access_token;
    assert!(leaked.iter().all(|t| valid(&b, t)));
    assert!(leaked.iter().all(|t| !valid(&a, t)), "node A has not looked them up");

    let listing = a.list_live(&of_client("app"), 100).await.unwrap();
    assert_eq!(
        listing.tokens.len(),
        6,
        "3 access and 3 refresh tokens, read from the database"
    );
    let by_key = TokenFilter {
        subject: Some("alice".into()),
        scope: Some(ScopeSet::parse("b a").unwrap()),
        ..of_client("app")
    };
    assert_eq!(a.list_live(&by_key, 100).await.unwrap().tokens.len(), 2);

    assert_eq!(a.revoke_matching(&of_client("app")).await.unwrap(), 6);
    eventually("node B refuses every token of the client", || {
        leaked.iter().all(|t| !valid(&b, t))
    })
    .await;
    assert!(valid(&b, &kept), "another client's token still passes at B");
    assert!(a.list_live(&of_client("app"), 100).await.unwrap().tokens.is_empty());
    assert_eq!(b.list_live(&of_client("other"), 100).await.unwrap().tokens.len(), 1);
}
