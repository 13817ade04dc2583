//! The gateway on a PostgreSQL store (`store.url`), against a real server: `TOKENGATE_TEST_PG`
//! (a url), else the local one scripts/test.sh provides; each test in a database of its own
//! (tests/common/pg.rs). Tokens and revocations survive a SIGKILL, and a second gateway on the
//! same database (with the same keys) starts and shares them: cluster mode, whose own tests are
//! tests/cluster.rs. A server that cannot be reached fails the tests; they are never skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::pg::TestDb;
use common::{bin, config_text, free_port, write, Gateway, Setup};

/// A folder with a gateway config on `port` whose store is `db`. Every node names the same
/// issuer, as the nodes of a cluster must (tokens carry it as their default audience).
fn folder(db: &TestDb, port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::policy("enable = true", "enable = true");
    let text = config_text(port, &setup).replacen(
        &format!("issuer = \"http://127.0.0.1:{port}\""),
        "issuer = \"http://tokengate.test\"",
        1,
    );
    let config = format!("{text}\n[store]\nurl = \"{}\"\npool_size = 4\n", db.url);
    write(&dir.path().join("gateway.toml"), &config);
    dir
}

#[test]
fn tokens_and_revocations_survive_a_sigkill_and_a_second_node_shares_them() {
    let db = TestDb::create();
    let port = free_port();
    let gw = Gateway::start_in(folder(&db, port), port);
    let kept: Vec<String> = ["opaque-app", "jwt-app"]
        .iter()
        .flat_map(|c| [gw.cc(c), gw.password(c, "alice")])
        .map(|v| v["access_token"].as_str().unwrap().to_string())
        .collect();
    let revoked = gw.cc_scope("opaque-app", "b")["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(gw.revoke("opaque-app", &revoked), 200);
    assert_eq!(gw.call("/api/x", &revoked), 401);

    // A second gateway on the same database, with the first one's keys, starts and knows them.
    let other_port = free_port();
    let other = folder(&db, other_port);
    let keys = other.path().join("data");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for key in ["jwt-rs256.pem", "server.key"] {
        std::fs::copy(gw.dir.path().join("data").join(key), keys.join(key)).unwrap();
    }
    let second = Gateway::start_in(other, other_port);
    for t in &kept {
        assert_eq!(second.call("/api/x", t), 200, "a token issued at the first node");
    }
    assert_eq!(
        second.call("/api/x", &revoked),
        401,
        "a revocation made at the first node"
    );
    let second_log = second.log();
    drop(second);

    let log = gw.log();
    let gw = Gateway::start_in(gw.kill9(), port);
    for t in &kept {
        assert_eq!(gw.call("/api/x", t), 200, "a token issued before the SIGKILL");
    }
    assert_eq!(gw.call("/api/x", &revoked), 401, "a revocation made before the SIGKILL");
    assert!(gw.log().contains(&db.name), "the log names the database");
    if let Some(password) = db.password() {
        for text in [&log, &gw.log(), &second_log] {
            assert!(!text.contains(password), "a password in a log:\n{text}");
        }
    }
}

#[test]
fn check_accepts_a_postgres_store_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[store]\nurl = \"postgres://gw:secret@127.0.0.1:9/tokens\"\n",
        config_text(free_port(), &Setup::default())
    );
    write(&dir.path().join("gateway.toml"), &config);
    let out = Command::new(bin())
        .arg("--check")
        .arg("--conf")
        .arg(dir.path().join("gateway.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
