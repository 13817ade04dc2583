//! Cluster mode's keys: every node must sign and mint with the same `oauth.jwt_signing_key` and
//! `oauth.server_key` (the database keeps their fingerprints); a node with another key refuses
//! to start, naming the setting, and the cluster goes on. Rotating the JWT key: a node with the
//! new key and the old one in `jwt_previous_keys` moves the cluster to the new key; done in two
//! rounds over the nodes (first the new key as a previous one, then as the signing key), every
//! token stays valid at every node throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::cluster::{Cluster, NodeOptions};
use common::{at, Setup};
use tokengate::tokens::jwt::{JwtAlgorithm, JwtSigner};

/// The cluster's key lines with one of them replaced.
fn keys_with(jwt: &Path, server: &Path) -> NodeOptions {
    NodeOptions {
        keys: Some(format!(
            "jwt_signing_key = \"{}\"\nserver_key = \"{}\"",
            jwt.display(),
            server.display()
        )),
        ..NodeOptions::default()
    }
}

/// A node on `options` refuses to start, naming `setting`; the cluster goes on.
fn refused_naming(c: &mut Cluster, options: &NodeOptions, setting: &str) {
    let (status, log) = c.start_refused(options);
    assert!(
        status.is_some(),
        "a node whose {setting} differs started and served; log:\n{log}"
    );
    assert!(!status.unwrap().success(), "it exited 0; log:\n{log}");
    assert!(log.contains(setting), "the refusal does not name {setting}:\n{log}");
    let t = c.gw(0).cc("jwt-app");
    let i = c.add(&NodeOptions::default());
    assert_eq!(
        c.gw(i).api(&t),
        200,
        "a node with the cluster's keys still starts and serves"
    );
}

#[test]
fn a_node_with_another_jwt_signing_key_refuses_to_start() {
    let mut c = Cluster::start(1, Setup::default());
    let elsewhere = tempfile::tempdir().unwrap();
    // Absent, so the node generates a key of its own: the usual "forgot to copy the key".
    let options = keys_with(&elsewhere.path().join("jwt.pem"), &c.server_key());
    refused_naming(&mut c, &options, "oauth.jwt_signing_key");
}

#[test]
fn a_node_with_another_server_key_refuses_to_start() {
    let mut c = Cluster::start(1, Setup::default());
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path().join("server.key");
    common::write(
        &other,
        &format!("{:032x}{:032x}\n", rand::random::<u128>(), rand::random::<u128>()),
    );
    let options = keys_with(&c.jwt_key(), &other);
    refused_naming(&mut c, &options, "oauth.server_key");
}

#[test]
fn rotating_the_jwt_key_moves_the_cluster_to_the_new_key() {
    let mut c = Cluster::start(1, Setup::default());
    let old = c.gw(0).cc("jwt-app");
    let new_key = c.keys.path().join("jwt-next.pem");
    let rotated = NodeOptions {
        keys: Some(format!(
            "jwt_signing_key = \"{}\"\njwt_previous_keys = [\"{}\"]\nserver_key = \"{}\"",
            new_key.display(),
            c.jwt_key().display(),
            c.server_key().display()
        )),
        ..NodeOptions::default()
    };
    let i = c.add(&rotated);
    assert_eq!(c.gw(i).api(&old), 200, "a token signed with the previous key");
    let fresh = c.gw(i).cc_scope("jwt-app", "a");
    assert_eq!(c.gw(i).api(&fresh), 200);
    // The recorded key is now the new one: a node still on the old key alone is refused.
    let (status, log) = c.start_refused(&NodeOptions::default());
    assert!(
        status.is_some_and(|s| !s.success()),
        "a node on the rotated-out key started:\n{log}"
    );
    assert!(log.contains("oauth.jwt_signing_key"), "{log}");
    let j = c.add(&rotated);
    assert_eq!(c.gw(j).api(&fresh), 200, "the next node on the new key");
}

/// Key lines signing with `current`, with `previous` in `jwt_previous_keys`.
fn signing(c: &Cluster, current: &Path, previous: &Path) -> NodeOptions {
    NodeOptions {
        keys: Some(format!(
            "jwt_signing_key = \"{}\"\njwt_previous_keys = [\"{}\"]\nserver_key = \"{}\"",
            current.display(),
            previous.display(),
            c.server_key().display()
        )),
        ..NodeOptions::default()
    }
}

#[test]
fn rotating_the_jwt_key_in_two_rounds_keeps_every_token_valid_at_every_node() {
    let mut c = Cluster::start(1, Setup::default());
    let before = c.gw(0).cc_scope("jwt-app", "a");
    let (old, new) = (c.jwt_key(), c.keys.path().join("jwt-next.pem"));
    JwtSigner::load_or_generate(&new, JwtAlgorithm::RS256).unwrap();
    // Round 1: each node restarted still signing with the old key, the new one listed as previous.
    c.add(&signing(&c, &old, &new));
    drop(c.nodes.remove(0));
    // Round 2: each node restarted signing with the new key, the old one listed as previous.
    // Node 0 is still in round 1: the two kinds of node serve side by side for a while.
    let (first, second) = (0, c.add(&signing(&c, &new, &old)));
    let signed_old = c.gw(first).cc_scope("jwt-app", "b");
    let signed_new = c.gw(second).cc_scope("jwt-app", "c");
    let seen: Vec<(&str, Vec<u16>)> = [("before", &before), ("old", &signed_old), ("new", &signed_new)]
        .into_iter()
        .map(|(what, t)| (what, c.statuses(at(t))))
        .collect();
    assert!(
        seen.iter().all(|(_, s)| *s == [200, 200]),
        "tokens signed before the rotation, with the old key and with the new key, at [round-1 node, \
         round-2 node]: {seen:?}; logs:\n{}",
        c.logs()
    );
    // The recorded key is the new one now: a node on the old key alone is refused.
    let (status, log) = c.start_refused(&NodeOptions::default());
    assert!(
        status.is_some_and(|s| !s.success()),
        "a node on the rotated-out key started:\n{log}"
    );
}
