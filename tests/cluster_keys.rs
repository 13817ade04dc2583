//! Cluster mode's keys: every node must sign and mint with the same `oauth.jwt_signing_key` and
//! `oauth.server_key` (the database keeps their fingerprints); a node with another key refuses
//! to start, naming the setting, and the cluster goes on. Rotating the JWT key: a node with the
//! new key and the old one in `jwt_previous_keys` moves the cluster to the new key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::cluster::{Cluster, NodeOptions};
use common::Setup;

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
