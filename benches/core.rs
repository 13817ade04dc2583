//! In-process benchmarks of the request-path pieces: index lookups and inserts at 1 M entries
//! (one and two threads), the whole bearer decision for a request header, the renewal policy
//! decision, minting opaque tokens and signing JWTs (RS256, ES256, EdDSA), and checking a DPoP
//! proof (ES256: what a DPoP-bound request costs beyond a bearer one).
//!
//!     cargo bench --bench core
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

/// The output of a future that is ready at its first poll (a token found in the index never
/// waits), polled in place as the gateway's runtime would.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("a bearer check in the index waited"),
    }
}
use pingora::protocols::{Digest, SocketDigest};
use tokengate::config::parse_str;
use tokengate::gateway::bearer;
use tokengate::gateway::last_token::{ConnectionMemory, NoMemory};
use tokengate::oauth::grant_type::GrantType;
use tokengate::oauth::policy::{decide, ActiveToken, Mode};
use tokengate::store::sqlite::SqliteStore;
use tokengate::tokens::format::TokenFormat;
use tokengate::tokens::index::{KeySlot, TokenIndex};
use tokengate::tokens::jwt::{AccessClaims, JwtAlgorithm, JwtSigner};
use tokengate::tokens::key::ScopeSet;
use tokengate::tokens::opaque::{OpaqueCodec, OpaqueKind};
use tokengate::tokens::record::{now_ms, AccessRecord, AtomicState, TokenId, TokenState};
use tokengate::tokens::service::TokenService;

const N: usize = 1_000_000;

fn record(id: TokenId, key: &Arc<KeySlot>) -> Arc<AccessRecord> {
    let now = now_ms();
    Arc::new(AccessRecord {
        id,
        key: Arc::clone(key),
        format: TokenFormat::Opaque,
        grant: GrantType::ClientCredentials,
        issued_at_ms: now,
        expires_at_ms: now + 3_600_000,
        refresh: None,
        state: AtomicState::new(TokenState::Active),
        durable: AtomicBool::new(true),
    })
}

fn key(index: &TokenIndex, i: usize) -> Arc<KeySlot> {
    let scope = ScopeSet::parse("orders:read").unwrap();
    index.key_slot(index.key(&format!("client-{}", i % 1000), "", &scope, &Default::default(), None))
}

fn filled_index(codec: &OpaqueCodec) -> (Arc<TokenIndex>, Vec<TokenId>) {
    let index = Arc::new(TokenIndex::new());
    let keys: Vec<_> = (0..1000).map(|i| key(&index, i)).collect();
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let (id, _) = codec.mint(OpaqueKind::Access);
        index.insert_access(record(id, &keys[i % 1000]));
        ids.push(id);
    }
    (index, ids)
}

fn index_benches(c: &mut Criterion) {
    let codec = OpaqueCodec::new(&[7u8; 32]);
    let (index, ids) = filled_index(&codec);
    let mut g = c.benchmark_group("index_1m");
    let mut i = 0usize;
    g.bench_function("lookup", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(index.with_access(&ids[i], |r| r.map(|r| r.expires_at_ms)))
        })
    });
    g.bench_function("lookup_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2usize {
                    let (index, ids) = (&index, &ids);
                    s.spawn(move || {
                        let mut j = t * 104_729;
                        for _ in 0..iters {
                            j = (j + 7919) % N;
                            black_box(index.with_access(&ids[j], |r| r.is_some()));
                        }
                    });
                }
            });
            // Time per lookup with two threads working at once.
            start.elapsed() / 2
        })
    });
    let k = key(&index, 1);
    g.bench_function("insert_remove", |b| {
        b.iter(|| {
            let (id, _) = codec.mint(OpaqueKind::Access);
            index.insert_access(record(id, &k));
            index.remove_access(&id);
        })
    });
    g.finish();
}

const CONFIG: &str = r#"
[[clients]]
id = "client-1"
secret_sha256 = "cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf"
grant_types = ["client_credentials"]
scopes = ["orders:read"]
[[routes]]
path_prefix = "/api"
upstream = "127.0.0.1:9"
scopes = ["orders:read"]
"#;

fn bearer_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = parse_str(CONFIG, dir.path()).unwrap();
    let route = Arc::clone(config.routes.find("/api/x").unwrap());
    let codec = OpaqueCodec::new(&[7u8; 32]);
    let signer = JwtSigner::load_or_generate(&dir.path().join("k.pem"), JwtAlgorithm::RS256).unwrap();
    let jwt = signer
        .sign(&AccessClaims {
            cnf: None,
            aud: None,
            iss: "http://gw",
            sub: "client-1",
            client_id: "client-1",
            scope: "orders:read",
            iat: 1,
            exp: 4_000_000_000,
            jti: "abcdefghijklmnopqrstuv",
        })
        .unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
    let (index, _) = filled_index(&codec);
    let service = TokenService::new(Arc::clone(&index), store, codec.clone(), signer);
    let k = key(&index, 1);
    let (oid, otext) = codec.mint(OpaqueKind::Access);
    index.insert_access(record(oid, &k));
    index.insert_access(record(TokenId::of_jwt(&jwt), &k));
    let opaque_header = format!("Bearer {otext}").into_bytes();
    let jwt_header = format!("Bearer {jwt}").into_bytes();
    let mut g = c.benchmark_group("bearer_decision");
    // A keep-alive connection that presented the token before: its memory holds the id.
    let digest = Digest {
        socket_digest: Some(Arc::new(SocketDigest::from_raw_fd(-1))),
        ..Default::default()
    };
    let remembered = ConnectionMemory::of(Some(&digest));
    for (name, header) in [("opaque_remembered", &opaque_header), ("jwt_remembered", &jwt_header)] {
        let decide = || {
            let header = Some(header.as_slice());
            let refuse_proof = |_: &AccessRecord, _: &str| Err(bearer::BearerError::Invalid);
            ready(bearer::authorize(
                &service,
                &config,
                &route,
                header,
                now_ms(),
                &remembered,
                refuse_proof,
            ))
            .is_ok()
        };
        assert!(decide());
        g.bench_function(name, |b| b.iter(|| black_box(decide())));
    }
    for (name, header) in [("opaque", &opaque_header), ("jwt_rs256", &jwt_header)] {
        assert!(ready(bearer::authorize(
            &service,
            &config,
            &route,
            Some(header),
            now_ms(),
            &NoMemory,
            |_, _| Err(bearer::BearerError::Invalid)
        ))
        .is_ok());
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    ready(bearer::authorize(
                        &service,
                        &config,
                        &route,
                        Some(header),
                        now_ms(),
                        &NoMemory,
                        |_, _| Err(bearer::BearerError::Invalid),
                    ))
                    .is_ok(),
                )
            })
        });
    }
    g.finish();
}

fn policy_benches(c: &mut Criterion) {
    let now = now_ms();
    let one = [ActiveToken {
        issued_at_ms: now,
        expires_at_ms: now + 3_600_000,
    }];
    let mut g = c.benchmark_group("policy");
    g.bench_function("jwt_single", |b| {
        b.iter(|| black_box(decide(TokenFormat::Jwt, Mode::Single, true, 0, black_box(&one), now)))
    });
    g.bench_function("opaque_single_reuse", |b| {
        b.iter(|| black_box(decide(TokenFormat::Opaque, Mode::Single, true, 0, black_box(&one), now)))
    });
    let many: Vec<_> = (0..10)
        .map(|i| ActiveToken {
            issued_at_ms: now + i,
            expires_at_ms: now + 3_600_000,
        })
        .collect();
    g.bench_function("multi_cap_10", |b| {
        b.iter(|| black_box(decide(TokenFormat::Jwt, Mode::Multi, true, 10, black_box(&many), now)))
    });
    g.finish();
}

fn issuance_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let codec = OpaqueCodec::new(&[7u8; 32]);
    let mut g = c.benchmark_group("mint");
    g.bench_function("opaque", |b| b.iter(|| black_box(codec.mint(OpaqueKind::Access))));
    for (name, alg) in [
        ("jwt_rs256", JwtAlgorithm::RS256),
        ("jwt_es256", JwtAlgorithm::ES256),
        ("jwt_eddsa", JwtAlgorithm::EdDSA),
    ] {
        let signer = JwtSigner::load_or_generate(&dir.path().join(format!("{name}.pem")), alg).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    signer
                        .sign(&AccessClaims {
                            cnf: None,
                            aud: None,
                            iss: "http://127.0.0.1:8080",
                            sub: "orders-app",
                            client_id: "orders-app",
                            scope: "orders:read orders:write",
                            iat: 1_800_000_000,
                            exp: 1_800_003_600,
                            jti: "abcdefghijklmnopqrstuv",
                        })
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
}

/// A DPoP proof's check (RFC 9449): one ES256 signature verification, the key's thumbprint,
/// `ath` and the replay cache. Each proof is checked once (a fresh cache for each pass over
/// the proofs made beforehand).
fn dpop_benches(c: &mut Criterion) {
    use tokengate::oauth::dpop::{self, Expected};
    use tokengate::oauth::dpop_client::{ProofClaims, ProofKey};
    use tokengate::oauth::replay::ReplayCache;

    let key = ProofKey::generate(JwtAlgorithm::ES256).unwrap();
    let url = "http://gw.example/api/x";
    let token = "tga_the-access-token";
    let now = now_ms() / 1000;
    let proofs: Vec<String> = (0..20_000)
        .map(|n| {
            let jti = n.to_string();
            let claims = ProofClaims {
                method: "GET",
                url,
                iat: now,
                jti: &jti,
                access_token: Some(token),
                nonce: None,
            };
            key.proof(&claims).unwrap()
        })
        .collect();
    let urls = [url.to_string()];
    let expected = Expected {
        method: "GET",
        urls: &urls,
        access_token: Some(token),
        now,
        max_age_secs: 3600,
        nonces: None,
    };
    let mut g = c.benchmark_group("dpop");
    g.bench_function("verify_es256_proof", |b| {
        b.iter_custom(|iters| {
            let mut cache = ReplayCache::new(proofs.len());
            let start = Instant::now();
            for i in 0..iters as usize {
                if i % proofs.len() == 0 && i > 0 {
                    cache = ReplayCache::new(proofs.len());
                }
                black_box(dpop::verify(&proofs[i % proofs.len()], &expected, &cache).unwrap());
            }
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = policy_benches, issuance_benches, bearer_benches, index_benches, dpop_benches
}
criterion_main!(benches);
