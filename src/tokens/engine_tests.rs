//! The token engine driven directly, without HTTP: concurrency invariants (docs/renewal-policy.md, section 6),
//! restart, sweeping, and what happens when the store fails.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::index::TokenIndex;
use super::jwt::{JwtAlgorithm, JwtSigner};
use super::lifecycle::Revoked;
use super::opaque::OpaqueCodec;
use super::request::LiveLimits;
use super::service::{IssueParams, Outcome, ServiceError, TokenService};
use super::test_engine::{allow_all, engine, params, sqlite, valid};
use crate::domain::format::TokenFormat;

use crate::domain::key::{ScopeSet, TokenKey};
use crate::domain::policy::Mode;
use crate::store::{Ack, Snapshot, StoreError, StoreOp, TokenStore};

async fn burst(e: &Arc<TokenService>, format: TokenFormat, enable: bool, n: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let e = Arc::clone(e);
            tokio::spawn(async move { e.issue(params(format, enable)).await.map(|i| i.access_token) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().expect("no request fails because of another one"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_requests_keep_the_invariants() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let opaque = burst(&e, TokenFormat::Opaque, false, 100).await;
    assert_eq!(
        opaque.iter().collect::<HashSet<_>>().len(),
        1,
        "opaque single: one token for all"
    );
    let jwt = burst(&e, TokenFormat::Jwt, false, 100).await;
    assert_eq!(jwt.iter().collect::<HashSet<_>>().len(), 100);
    assert_eq!(
        jwt.iter().filter(|t| valid(&e, t)).count(),
        1,
        "JWT single: exactly one active"
    );
    for format in [TokenFormat::Opaque, TokenFormat::Jwt] {
        let multi = burst(&e, format, true, 100).await;
        assert_eq!(multi.iter().collect::<HashSet<_>>().len(), 100);
        assert!(multi.iter().all(|t| valid(&e, t)), "multi: all active");
    }
}

#[tokio::test]
async fn a_restart_restores_the_index_and_opaque_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let (t, revoked) = {
        let e = engine(dir.path(), sqlite(dir.path()));
        let t = e.issue(params(TokenFormat::Opaque, false)).await.unwrap();
        let r = e.issue(params(TokenFormat::Jwt, true)).await.unwrap();
        assert_eq!(e.revoke("app", &r.access_token).await.unwrap(), Revoked::Access);
        (t.access_token, r.access_token)
    };
    let e = engine(dir.path(), sqlite(dir.path()));
    assert_eq!(e.restore().await.unwrap(), (1, 0));
    assert!(valid(&e, &t));
    assert!(!valid(&e, &revoked));
    let again = e.issue(params(TokenFormat::Opaque, false)).await.unwrap();
    assert_eq!(again.access_token, t);
    assert_eq!(again.outcome, Outcome::Reused);
}

#[tokio::test]
async fn sweeping_drops_expired_tokens_from_memory_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let mut p = params(TokenFormat::Opaque, true);
    p.access_ttl_secs = 1;
    let t = e.issue(p).await.unwrap();
    assert_eq!((e.index().access_len(), e.index().client_len("app")), (1, 1));
    // Issued at a whole second with a 1 s lifetime: expired within 2 s of now.
    let report = loop {
        let r = e.sweep().await.unwrap();
        if r.expired_access == 1 {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(report.purged_rows, 1);
    assert_eq!(e.index().access_len(), 0);
    assert_eq!(e.index().client_len("app"), 0, "the client has its room back");
    assert_eq!(e.index().key_len(), 0, "an idle, empty key leaves the index");
    assert!(!valid(&e, &t.access_token));
}

/// A store whose disk is gone: every write fails.
struct BrokenStore {
    fail: AtomicBool,
    inner: Arc<dyn TokenStore>,
}

#[async_trait]
impl TokenStore for BrokenStore {
    fn submit(&self, ops: Vec<StoreOp>) -> Ack {
        if self.fail.load(Ordering::SeqCst) && !ops.is_empty() {
            return Box::pin(async { Err(StoreError::Db("disk I/O error".into())) });
        }
        self.inner.submit(ops)
    }
    async fn load(&self, now_ms: u64, sink: &mut (dyn FnMut(Snapshot) + Send)) -> Result<(), StoreError> {
        self.inner.load(now_ms, sink).await
    }
    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.inner.purge(now_ms).await
    }
}

#[tokio::test]
async fn a_failing_store_withdraws_new_tokens_and_keeps_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BrokenStore {
        fail: AtomicBool::new(false),
        inner: sqlite(dir.path()),
    });
    let e = engine(dir.path(), store.clone());
    let kept = e.issue(params(TokenFormat::Jwt, true)).await.unwrap();
    store.fail.store(true, Ordering::SeqCst);

    let err = e.issue(params(TokenFormat::Jwt, true)).await.unwrap_err();
    assert!(matches!(err, ServiceError::Store(_)));
    assert_eq!(e.index().access_len(), 1, "the unacknowledged token is withdrawn");

    // Revocation fails closed: rejected at once even though it could not be made durable.
    assert!(e.revoke("app", &kept.access_token).await.is_err());
    assert!(!valid(&e, &kept.access_token));

    store.fail.store(false, Ordering::SeqCst);
    let after = e.issue(params(TokenFormat::Jwt, false)).await.unwrap();
    assert!(valid(&e, &after.access_token));
    assert_eq!(after.outcome, Outcome::New(Mode::Single));
}

#[tokio::test]
async fn at_max_live_tokens_only_requests_that_replace_a_token_pass() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let bounded = |format, enable, scope| IssueParams {
        limits: LiveLimits {
            total: 2,
            per_client: 0,
        },
        scope: ScopeSet::parse(scope).unwrap(),
        ..params(format, enable)
    };
    let first = e.issue(bounded(TokenFormat::Opaque, true, "a b")).await.unwrap();
    e.issue(bounded(TokenFormat::Opaque, true, "a b")).await.unwrap();
    let refused = e.issue(bounded(TokenFormat::Opaque, true, "a b")).await.unwrap_err();
    assert!(matches!(refused, ServiceError::Full), "{refused:?}");
    assert_eq!(e.index().access_len(), 2, "the refused request added nothing");
    assert!(valid(&e, &first.access_token), "tokens already issued keep working");
    // Another key's first token would add one too.
    let other = e.issue(bounded(TokenFormat::Jwt, false, "a")).await.unwrap_err();
    assert!(matches!(other, ServiceError::Full), "{other:?}");

    // Opaque reuse and JWT renewal replace, so they pass at the bound.
    let reused = e.issue(bounded(TokenFormat::Opaque, false, "a b")).await.unwrap();
    assert_eq!(reused.outcome, Outcome::Reused);
    let renewed = e.issue(bounded(TokenFormat::Jwt, false, "a b")).await.unwrap();
    assert_eq!(renewed.outcome, Outcome::New(Mode::Single));
    assert!(!valid(&e, &first.access_token) && valid(&e, &renewed.access_token));

    // The renewal left room for the other key; a revocation makes room too.
    let other = e.issue(bounded(TokenFormat::Jwt, false, "a")).await.unwrap();
    let keys = e.index().key_len();
    assert!(matches!(
        e.issue(bounded(TokenFormat::Jwt, true, "b")).await.unwrap_err(),
        ServiceError::Full
    ));
    assert_eq!(
        e.index().key_len(),
        keys,
        "multi mode is refused before its key is made"
    );
    assert_eq!(e.revoke("app", &other.access_token).await.unwrap(), Revoked::Access);
    e.issue(bounded(TokenFormat::Opaque, true, "b")).await.unwrap();

    // 0 = no limit.
    let before = e.index().access_len();
    for _ in 0..3 {
        e.issue(params(TokenFormat::Opaque, true)).await.unwrap();
    }
    assert_eq!(e.index().access_len(), before + 3);
}

#[tokio::test]
async fn a_refresh_refused_at_max_live_tokens_spends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let with_refresh = |max| IssueParams {
        refresh_ttl_secs: Some(3600),
        limits: LiveLimits {
            total: max,
            per_client: 0,
        },
        ..params(TokenFormat::Opaque, false)
    };
    let pair = e.issue(with_refresh(2)).await.unwrap();
    let refresh = pair.refresh_token.unwrap();
    // Access and refresh count together: 2 held, and a refresh would keep its spent token.
    let refused = e
        .refresh(&refresh, None, with_refresh(2), &allow_all)
        .await
        .unwrap_err();
    assert!(matches!(refused, ServiceError::Full), "{refused:?}");
    assert!(valid(&e, &pair.access_token), "the old pair is untouched");
    let renewed = e.refresh(&refresh, None, with_refresh(3), &allow_all).await.unwrap();
    assert!(valid(&e, &renewed.access_token) && !valid(&e, &pair.access_token));
}

/// A client at `max_live_tokens_per_client` is refused (and only it: the others still get
/// tokens); its replacements pass, a refresh is refused before anything is spent, and the count
/// follows revocations, sweeps and a restart.
#[tokio::test]
async fn a_client_at_its_own_bound_is_refused_and_the_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let of = |client_id, format, enable| IssueParams {
        client_id,
        limits: LiveLimits {
            total: 100,
            per_client: 2,
        },
        ..params(format, enable)
    };
    let first = e.issue(of("app", TokenFormat::Opaque, true)).await.unwrap();
    e.issue(of("app", TokenFormat::Opaque, true)).await.unwrap();
    let refused = e.issue(of("app", TokenFormat::Opaque, true)).await.unwrap_err();
    assert!(matches!(refused, ServiceError::ClientFull), "{refused:?}");
    assert_eq!((e.index().client_len("app"), e.index().access_len()), (2, 2));
    assert!(valid(&e, &first.access_token), "its tokens keep working");

    // Another client is not held back by this one.
    let other = e.issue(of("other", TokenFormat::Opaque, true)).await.unwrap();
    assert!(valid(&e, &other.access_token));
    assert_eq!(e.index().client_len("other"), 1);

    // A JWT single-mode renewal replaces app's two tokens: it passes.
    let renewed = e.issue(of("app", TokenFormat::Jwt, false)).await.unwrap();
    assert_eq!(e.index().client_len("app"), 1);
    // A revocation makes room again, and the count follows it.
    assert_eq!(e.revoke("app", &renewed.access_token).await.unwrap(), Revoked::Access);
    assert_eq!(e.index().client_len("app"), 0);

    // An access and a refresh token count as two; a refresh would keep its spent token.
    let pair = e
        .issue(IssueParams {
            refresh_ttl_secs: Some(3600),
            ..of("app", TokenFormat::Opaque, false)
        })
        .await
        .unwrap();
    assert_eq!(e.index().client_len("app"), 2);
    let again = IssueParams {
        refresh_ttl_secs: Some(3600),
        ..of("app", TokenFormat::Opaque, false)
    };
    let refresh = pair.refresh_token.unwrap();
    let refused = e.refresh(&refresh, None, again.clone(), &allow_all).await.unwrap_err();
    assert!(matches!(refused, ServiceError::ClientFull), "{refused:?}");
    assert!(valid(&e, &pair.access_token), "nothing was spent");

    // After a restart on the same store the counts are rebuilt from what was loaded.
    let store = e.store().clone();
    drop(e);
    let e = engine(dir.path(), store);
    e.restore().await.unwrap();
    assert_eq!((e.index().client_len("app"), e.index().client_len("other")), (2, 1));
    assert!(matches!(
        e.issue(of("app", TokenFormat::Opaque, true)).await.unwrap_err(),
        ServiceError::ClientFull
    ));
    e.refresh(
        &refresh,
        None,
        IssueParams {
            limits: LiveLimits::default(),
            ..again
        },
        &allow_all,
    )
    .await
    .unwrap();
    assert_eq!(
        e.index().client_len("app"),
        3,
        "the spent refresh token stays until it expires"
    );
}

/// RSA signatures take permits (two per core) and give every one back: after a burst larger than
/// the bound, and after a request dropped while it waited for its signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_signatures_are_bounded_and_give_their_permits_back() {
    let dir = tempfile::tempdir().unwrap();
    let signer = JwtSigner::load_or_generate(&dir.path().join("rsa.pem"), JwtAlgorithm::RS256).unwrap();
    let e = Arc::new(TokenService::new(
        Arc::new(TokenIndex::new()),
        sqlite(dir.path()),
        OpaqueCodec::new(&[1u8; 32]),
        signer,
    ));
    let all = super::service::signing_permits();
    assert_eq!(e.free_signing_permits(), all);
    let burst: Vec<_> = (0..3 * all)
        .map(|_| {
            let e = Arc::clone(&e);
            tokio::spawn(async move { e.issue(params(TokenFormat::Jwt, true)).await.map(|t| t.access_token) })
        })
        .collect();
    let mut tokens = HashSet::new();
    for t in burst {
        assert!(tokens.insert(t.await.unwrap().unwrap()));
    }
    assert_eq!(e.free_signing_permits(), all, "every permit came back");
    assert!(tokens.iter().all(|t| valid(&e, t)));

    // A request dropped mid-way: its signature still ends, and its permit comes back then.
    let dropped = {
        let e = Arc::clone(&e);
        tokio::spawn(async move { e.issue(params(TokenFormat::Jwt, true)).await })
    };
    dropped.abort();
    let _ = dropped.await;
    let mut waited = 0;
    while e.free_signing_permits() != all {
        assert!(waited < 500, "a permit was lost");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 1;
    }
}

/// A configuration that still allows every refresh.

#[tokio::test]
async fn a_refresh_the_config_no_longer_allows_spends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), sqlite(dir.path()));
    let with_refresh = IssueParams {
        refresh_ttl_secs: Some(3600),
        ..params(TokenFormat::Opaque, false)
    };
    let pair = e.issue(with_refresh.clone()).await.unwrap();
    let refresh = pair.refresh_token.unwrap();
    let refuse = |_: &TokenKey| Err(ServiceError::InvalidScope("narrowed"));
    let refused = e
        .refresh(&refresh, None, with_refresh.clone(), &refuse)
        .await
        .unwrap_err();
    assert!(matches!(refused, ServiceError::InvalidScope("narrowed")), "{refused:?}");
    assert!(valid(&e, &pair.access_token), "nothing was spent");
    // Not taken for a reuse either: the same refresh token still works once allowed.
    let renewed = e.refresh(&refresh, None, with_refresh, &allow_all).await.unwrap();
    assert!(valid(&e, &renewed.access_token));
}
