//! Cluster mode: several gateway processes on one PostgreSQL database, each with its own folder,
//! listener and metrics listener, the same key files and the same issuer (tests/common/cluster.rs).
//! A token is valid at every node once its answer was sent, a revocation reaches every node
//! within milliseconds, the renewal policy and refresh rotation hold across nodes as on one, and
//! forged tokens are refused without harm. Keys are in tests/cluster_keys.rs, failures (database
//! gone, a node killed) in tests/cluster_failures.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::cluster::{forged_opaque, Cluster};
use common::{at, Gateway, Setup, SECRET};
use serde_json::Value;
use tokengate::tokens::opaque::{OpaqueCodec, OpaqueKind};

const MULTI: &str = "enable = true";

/// POST /oauth2/token as `client` at `gw`: status and JSON answer.
fn token(gw: &Gateway, client: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}/oauth2/token", gw.base))
        .basic_auth(client, Some(SECRET))
        .form(form)
        .send()
        .expect("token request");
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// `per_node` identical client_credentials requests as `client` at every node, all released at
/// once; every answer must be 200.
fn at_once(c: &Cluster, client: &str, per_node: usize) -> Vec<String> {
    let n = c.nodes.len() * per_node;
    let barrier = Barrier::new(n);
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (gw, barrier) = (c.gw(i % c.nodes.len()), &barrier);
                s.spawn(move || {
                    barrier.wait();
                    token(gw, client, &[("grant_type", "client_credentials")])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("request thread")).collect()
    });
    for (status, body) in &answers {
        assert_eq!(*status, 200, "a concurrent request failed: {body}; logs:\n{}", c.logs());
    }
    answers.iter().map(|(_, b)| at(b).to_string()).collect()
}

/// Waits until exactly `active` of `tokens` pass at every node and the others are refused at
/// every node; returns the active ones.
fn settles_to(c: &Cluster, tokens: &[String], active: usize) -> Vec<String> {
    let mut passing = Vec::new();
    c.eventually(
        10,
        &format!("exactly {active} of {} tokens active at every node", tokens.len()),
        || {
            let statuses: Vec<Vec<u16>> = tokens.iter().map(|t| c.statuses(t)).collect();
            passing = tokens
                .iter()
                .zip(&statuses)
                .filter(|(_, s)| s.iter().all(|&x| x == 200))
                .map(|(t, _)| t.clone())
                .collect();
            let refused = statuses.iter().filter(|s| s.iter().all(|&x| x == 401)).count();
            passing.len() == active && refused == tokens.len() - active
        },
    );
    passing
}

#[test]
fn a_token_issued_at_one_node_is_valid_at_every_node_at_once() {
    let c = Cluster::start(3, Setup::default());
    for (i, scope) in ["a", "b", "c"].iter().enumerate() {
        let issued = [
            c.gw(i).cc_scope("opaque-app", scope),
            c.gw(i).cc_scope("jwt-app", scope),
            c.gw(i).password("opaque-app", "alice"),
            c.gw(i).password("jwt-app", "bob"),
        ];
        for t in &issued {
            // No waiting: the answer was sent, so every node must know the token now.
            assert_eq!(
                c.statuses(at(t)),
                [200, 200, 200],
                "issued at node {i}; logs:\n{}",
                c.logs()
            );
        }
        let j = (i + 1) % 3;
        let client = ["opaque-app", "jwt-app"][i % 2];
        let fresh = c.gw(i).cc_scope(client, scope);
        let seen = c.gw(j).introspect(client, at(&fresh));
        assert_eq!(seen["active"], true, "introspected at node {j}: {seen}");
        assert_eq!(seen["scope"], *scope);
        // The other node knows the token's scope, not only that it exists.
        let scoped = if *scope == "c" { 200 } else { 403 };
        assert_eq!(c.gw(j).call("/scoped/x", at(&fresh)), scoped);
        // A refresh token issued at node i introspects as active at node j too.
        let pair = c.gw(i).password(client, "alice");
        let refresh = pair["refresh_token"].as_str().unwrap();
        let seen = c.gw(j).introspect(client, refresh);
        assert_eq!(seen["active"], true, "a refresh token introspected at node {j}: {seen}");
    }
}

#[test]
fn a_revocation_at_one_node_is_refused_at_every_node_within_milliseconds() {
    let c = Cluster::start(3, Setup::policy(MULTI, MULTI));
    let mut delays = Vec::new();
    for round in 0..8 {
        let client = ["opaque-app", "jwt-app"][round % 2];
        let (issuer, revoker) = (round % 3, (round + 1) % 3);
        let t = at(&c.gw(issuer).cc(client)).to_string();
        assert_eq!(c.statuses(&t), [200, 200, 200], "every node knows the token");
        assert_eq!(c.gw(revoker).revoke(client, &t), 200);
        let revoked = Instant::now();
        assert_eq!(c.gw(revoker).call("/api/x", &t), 401, "at the revoking node, at once");
        for other in (0..3).filter(|&n| n != revoker) {
            while c.gw(other).call("/api/x", &t) != 401 {
                assert!(
                    revoked.elapsed() < Duration::from_secs(3),
                    "node {other} still accepts a token revoked at node {revoker}; logs:\n{}",
                    c.logs()
                );
            }
        }
        delays.push(revoked.elapsed());
    }
    delays.sort();
    assert!(
        delays[delays.len() / 2] < Duration::from_millis(100),
        "revocations reach the other nodes by the change feed's notice, not its safety poll: {delays:?}"
    );

    // Revoking a refresh token at one node revokes its family at every node.
    let pair = c.gw(0).password("jwt-app", "alice");
    assert_eq!(c.statuses(at(&pair)), [200, 200, 200]);
    assert_eq!(c.gw(1).revoke("jwt-app", pair["refresh_token"].as_str().unwrap()), 200);
    c.eventually(3, "the family's access token refused everywhere", || {
        c.all(at(&pair), 401)
    });

    // A node that has never seen a token revokes it all the same, for its owner only.
    for client in ["opaque-app", "jwt-app"] {
        let t = at(&c.gw(0).cc(client)).to_string();
        let other = if client == "jwt-app" { "opaque-app" } else { "jwt-app" };
        let r = c.gw(2).http.post(format!("{}/oauth2/revoke", c.gw(2).base));
        let r = r
            .basic_auth(other, Some(SECRET))
            .form(&[("token", t.as_str())])
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            400,
            "another client's revocation at a node that had not seen it"
        );
        assert_eq!(c.statuses(&t), [200, 200, 200]);
        let t = at(&c.gw(0).cc(client)).to_string();
        assert_eq!(c.gw(2).revoke(client, &t), 200);
        assert_eq!(
            c.gw(2).call("/api/x", &t),
            401,
            "{client}: revoked at a node that had not seen it"
        );
        c.eventually(3, "a revocation by a node that had not seen the token", || {
            c.all(&t, 401)
        });
    }
}

#[test]
fn a_lookup_racing_a_revocation_never_brings_the_token_back() {
    let c = Cluster::start(2, Setup::policy(MULTI, MULTI));
    for round in 0..10 {
        let client = ["opaque-app", "jwt-app"][round % 2];
        // Node 1 has never seen this token: its first check looks it up in the database while
        // node 0 revokes it.
        let t = at(&c.gw(0).cc(client)).to_string();
        let done = AtomicBool::new(false);
        let after: Vec<u16> = std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(c.gw(0).revoke(client, &t), 200);
                done.store(true, Ordering::SeqCst);
            });
            let mut after = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(5);
            while after.iter().filter(|&&s| s == 401).count() < 30 && Instant::now() < deadline {
                let answered = done.load(Ordering::SeqCst);
                let status = c.gw(1).call("/api/x", &t);
                if answered {
                    after.push(status);
                }
            }
            after
        });
        let first = after.iter().position(|&s| s == 401);
        let first =
            first.unwrap_or_else(|| panic!("never refused after its revocation: {after:?}; logs:\n{}", c.logs()));
        assert!(
            after[first..].iter().all(|&s| s == 401),
            "round {round}: the token came back after it was refused: {after:?}"
        );
    }
}

#[test]
fn opaque_single_mode_hands_out_one_token_across_nodes() {
    let c = Cluster::start(3, Setup::default());
    let first = at_once(&c, "opaque-app", 6);
    let distinct: HashSet<&String> = first.iter().collect();
    assert_eq!(
        distinct.len(),
        1,
        "one token for the key, whichever node answered: {distinct:?}"
    );
    assert_eq!(c.statuses(&first[0]), [200, 200, 200]);
    let again = at_once(&c, "opaque-app", 2);
    assert!(
        again.iter().all(|t| *t == first[0]),
        "the same token again while it lives"
    );
}

#[test]
fn jwt_single_mode_leaves_exactly_one_active_token_across_nodes() {
    let c = Cluster::start(3, Setup::default());
    let tokens = at_once(&c, "jwt-app", 5);
    let distinct: HashSet<&String> = tokens.iter().collect();
    assert_eq!(distinct.len(), tokens.len(), "JWT single mode: a new token per request");
    let active = settles_to(&c, &tokens, 1);
    // And it stays so: nothing comes back to life.
    assert_eq!(settles_to(&c, &tokens, 1), active);
}

#[test]
fn max_active_tokens_holds_across_nodes() {
    let bounded = "enable = true\nmax_active_tokens = 2";
    let c = Cluster::start(3, Setup::policy(bounded, bounded));
    // One after the other, round robin over the nodes: the two newest stay.
    let tokens: Vec<String> = (0..6).map(|i| at(&c.gw(i % 3).cc("jwt-app")).to_string()).collect();
    assert_eq!(
        settles_to(&c, &tokens, 2),
        tokens[4..].to_vec(),
        "the oldest are revoked"
    );
    // All at once: any two stay.
    let tokens = at_once(&c, "opaque-app", 2);
    assert_eq!(
        tokens.iter().collect::<HashSet<_>>().len(),
        6,
        "multi mode: distinct tokens"
    );
    settles_to(&c, &tokens, 2);
}

#[test]
fn a_refresh_token_is_spent_once_across_the_cluster() {
    let c = Cluster::start(3, Setup::default());
    for client in ["jwt-app", "opaque-app"] {
        let pair = c.gw(0).password(client, "alice");
        let refresh = pair["refresh_token"].as_str().unwrap().to_string();
        let barrier = Barrier::new(3);
        let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    let (gw, barrier, refresh) = (c.gw(i), &barrier, &refresh);
                    s.spawn(move || {
                        barrier.wait();
                        token(
                            gw,
                            client,
                            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
        assert_eq!(winners.len(), 1, "{client}: exactly one refresh succeeds: {answers:?}");
        for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
            assert_eq!(
                (*status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "{body}"
            );
        }
        // The losers presented a spent refresh token: reuse, so the family is revoked everywhere.
        let new = winners[0];
        c.eventually(3, "the refreshed family revoked at every node", || c.all(at(new), 401));
        assert!(c.all(at(&pair), 401), "the refreshed access token is inactive");
        let again = new["refresh_token"].as_str().unwrap();
        let (status, _) = token(
            c.gw(2),
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", again)],
        );
        assert_eq!(status, 400, "the new refresh token went with its family");
    }
}

#[test]
fn refresh_token_reuse_at_another_node_revokes_the_family_everywhere() {
    let c = Cluster::start(3, Setup::default());
    let pair = c.gw(0).password("jwt-app", "bob");
    let old_refresh = pair["refresh_token"].as_str().unwrap();
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", old_refresh)];
    let (status, new) = token(c.gw(1), "jwt-app", &refresh);
    assert_eq!(status, 200, "{new}");
    assert_eq!(
        c.statuses(at(&new)),
        [200, 200, 200],
        "the refreshed token at once everywhere"
    );
    c.eventually(3, "the replaced access token refused everywhere", || {
        c.all(at(&pair), 401)
    });

    let (status, body) = token(c.gw(2), "jwt-app", &refresh);
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    c.eventually(3, "the family revoked at every node", || c.all(at(&new), 401));
    let next = [
        ("grant_type", "refresh_token"),
        ("refresh_token", new["refresh_token"].as_str().unwrap()),
    ];
    assert_eq!(token(c.gw(0), "jwt-app", &next).0, 400);
}

/// `jwt` with its payload's `jti` replaced and the original signature kept.
fn with_other_jti(jwt: &str) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["jti"] = B64.encode(rand::random::<u128>().to_be_bytes()).into();
    format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2])
}

#[test]
fn forged_tokens_are_refused_at_every_node_and_break_nothing() {
    let c = Cluster::start(2, Setup::default());
    let opaque = at(&c.gw(0).cc("opaque-app")).to_string();
    let jwt = at(&c.gw(0).cc("jwt-app")).to_string();
    // A flood of well-formed opaque tokens no key minted, at node 1 from several threads.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for t in forged_opaque(500) {
                    assert_eq!(c.gw(1).call("/api/x", &t), 401);
                }
            });
        }
    });
    // Tokens minted with the cluster's own server key that were never issued, and JWTs whose
    // claims were changed under a genuine signature: refused at every node.
    let codec = OpaqueCodec::load_or_create(&c.server_key()).unwrap();
    for _ in 0..20 {
        let (_, never_issued) = codec.mint(OpaqueKind::Access);
        assert_eq!(c.statuses(&never_issued), [401, 401]);
        assert_eq!(c.statuses(&with_other_jti(&jwt)), [401, 401]);
    }
    let mut flipped = jwt.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(c.statuses(&String::from_utf8(flipped).unwrap()), [401, 401]);

    // Nothing broke: the genuine tokens pass, node 1 issues, node 0 knows its token.
    assert_eq!(c.statuses(&opaque), [200, 200]);
    assert_eq!(c.statuses(&jwt), [200, 200]);
    let fresh = c.gw(1).cc_scope("opaque-app", "b");
    assert_eq!(c.statuses(at(&fresh)), [200, 200]);
    assert_eq!(c.nodes[1].healthz(), (200, "ok\n".to_string()));
}
