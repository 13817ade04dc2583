//! docs/renewal-policy.md, section 8 (the checklist), against the real binary with a real upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{at, Gateway, Setup};
use std::collections::HashSet;

const MULTI: &str = "enable = true";

#[test]
fn c01_jwt_single_revokes_the_previous_token() {
    let gw = Gateway::start(Setup::default());
    let t1 = gw.cc("jwt-app");
    let t2 = gw.cc("jwt-app");
    assert_ne!(at(&t1), at(&t2));
    assert_eq!(gw.api(&t1), 401);
    assert_eq!(gw.introspect("jwt-app", at(&t1))["active"], false);
    assert_eq!(gw.api(&t2), 200);
    assert_eq!(gw.introspect("jwt-app", at(&t2))["active"], true);
}

#[test]
fn c02_jwt_multi_keeps_all_tokens() {
    let gw = Gateway::start(Setup::policy(MULTI, ""));
    let ts: Vec<_> = (0..3).map(|_| gw.cc("jwt-app")).collect();
    let distinct: HashSet<&str> = ts.iter().map(at).collect();
    assert_eq!(distinct.len(), 3);
    for t in &ts {
        assert_eq!(gw.api(t), 200);
    }
}

#[test]
fn c03_jwt_multi_does_not_cover_unlisted_password_grant() {
    let gw = Gateway::start(Setup::policy(MULTI, ""));
    let t1 = gw.password("jwt-app", "alice");
    let t2 = gw.password("jwt-app", "alice");
    assert_eq!(gw.api(&t1), 401);
    assert_eq!(gw.api(&t2), 200);
}

#[test]
fn c04_given_list_replaces_the_default() {
    let gw = Gateway::start(Setup::policy("enable = true\nallowed_grant_types = [\"password\"]", ""));
    let c1 = gw.cc("jwt-app");
    let c2 = gw.cc("jwt-app");
    assert_eq!(gw.api(&c1), 401, "client_credentials is back to single mode");
    assert_eq!(gw.api(&c2), 200);
    let p1 = gw.password("jwt-app", "alice");
    let p2 = gw.password("jwt-app", "alice");
    assert_eq!(gw.api(&p1), 200, "password is multi now");
    assert_eq!(gw.api(&p2), 200);
}

#[test]
fn c05_opaque_single_returns_the_same_token() {
    let gw = Gateway::start(Setup::default());
    let t1 = gw.cc("opaque-app");
    let t2 = gw.cc("opaque-app");
    assert_eq!(at(&t1), at(&t2));
    assert!(t2["expires_in"].as_u64().unwrap() <= t1["expires_in"].as_u64().unwrap());
    assert_eq!(gw.api(&t2), 200);
}

#[test]
fn c06_opaque_single_near_or_past_expiry_issues_a_new_token() {
    let gw = Gateway::start(Setup {
        oauth: "access_token_ttl_secs = 1".into(),
        ..Setup::default()
    });
    // A 1 s token never has more than 1 s left: the next request gets a new one.
    let t1 = gw.cc("opaque-app");
    let t2 = gw.cc("opaque-app");
    assert_ne!(at(&t1), at(&t2));
    assert_eq!(gw.api(&t1), 401, "the replaced token is expired");
    // Once t2 has expired by time, the next request also gets a new token.
    gw.eventually(10, "t2 to expire", || gw.api(&t2) == 401);
    let t3 = gw.cc("opaque-app");
    assert_ne!(at(&t3), at(&t2));
}

#[test]
fn c07_opaque_multi_issues_another_token() {
    let gw = Gateway::start(Setup::policy("", MULTI));
    let t1 = gw.cc("opaque-app");
    let t2 = gw.cc("opaque-app");
    assert_ne!(at(&t1), at(&t2));
    assert_eq!(gw.api(&t1), 200);
    assert_eq!(gw.api(&t2), 200);
}

#[test]
fn c08_scope_sets_are_keys() {
    let gw = Gateway::start(Setup::default());
    let t1 = gw.cc_scope("opaque-app", "b a");
    let t2 = gw.cc_scope("opaque-app", "a b");
    assert_eq!(at(&t1), at(&t2), "\"b a\" and \"a b\" are the same key");
    assert_eq!(t2["scope"], "a b");
    let j1 = gw.cc_scope("jwt-app", "a");
    let j2 = gw.cc_scope("jwt-app", "a b");
    assert_eq!(gw.api(&j1), 200, "\"a\" and \"a b\" are different keys");
    assert_eq!(gw.api(&j2), 200);
    let j3 = gw.cc_scope("jwt-app", "b a");
    assert_eq!(gw.api(&j2), 401, "\"b a\" replaced \"a b\"");
    assert_eq!(gw.api(&j3), 200);
}

#[test]
fn c09_users_are_keys() {
    let gw = Gateway::start(Setup::default());
    let a = gw.password("jwt-app", "alice");
    let b = gw.password("jwt-app", "bob");
    assert_eq!(gw.api(&a), 200);
    assert_eq!(gw.api(&b), 200);
    let other = gw.cc("other-app");
    let mine = gw.cc("jwt-app");
    assert_eq!(gw.api(&other), 200, "another client is another key");
    assert_eq!(gw.api(&mine), 200);
}

#[test]
fn c10_revoking_one_multi_token_leaves_its_siblings() {
    let gw = Gateway::start(Setup::policy(MULTI, ""));
    let ts: Vec<_> = (0..3).map(|_| gw.cc("jwt-app")).collect();
    assert_eq!(gw.revoke("jwt-app", at(&ts[1])), 200);
    assert_eq!(gw.api(&ts[0]), 200);
    assert_eq!(gw.api(&ts[1]), 401);
    assert_eq!(gw.api(&ts[2]), 200);
    assert_eq!(gw.introspect("jwt-app", at(&ts[1]))["active"], false);
}

#[test]
fn c11_revoking_unknown_or_revoked_tokens_is_200_and_changes_nothing() {
    let gw = Gateway::start(Setup::default());
    let t = gw.cc("jwt-app");
    assert_eq!(gw.revoke("jwt-app", "no-such-token"), 200);
    assert_eq!(gw.revoke("jwt-app", "tga_AAAA"), 200);
    assert_eq!(gw.api(&t), 200);
    assert_eq!(gw.revoke("jwt-app", at(&t)), 200);
    assert_eq!(gw.revoke("jwt-app", at(&t)), 200);
    assert_eq!(gw.api(&t), 401);
    let o = gw.cc("opaque-app");
    assert_eq!(gw.revoke("opaque-app", at(&t)), 200);
    assert_eq!(gw.api(&o), 200);
}

#[test]
fn c12_client_credentials_has_no_refresh_token_by_default() {
    let gw = Gateway::start(Setup::default());
    assert!(gw.cc("jwt-app").get("refresh_token").is_none());
    assert!(gw.cc("opaque-app").get("refresh_token").is_none());
    assert!(gw.password("jwt-app", "alice").get("refresh_token").is_some());
}

#[test]
fn c13_refresh_rotates_and_detects_reuse() {
    let gw = Gateway::start(Setup::default());
    let t1 = gw.password("jwt-app", "alice");
    let r1 = t1["refresh_token"].as_str().unwrap().to_string();
    let t2 = gw.token_ok("jwt-app", &[("grant_type", "refresh_token"), ("refresh_token", &r1)]);
    let r2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(at(&t1), at(&t2));
    assert_ne!(r1, r2, "the refresh token is rotated");
    assert_eq!(gw.api(&t1), 401, "the old access token is inactive");
    assert_eq!(gw.api(&t2), 200);
    let reuse = gw.token("jwt-app", &[("grant_type", "refresh_token"), ("refresh_token", &r1)]);
    assert_eq!(reuse.status(), 400);
    assert_eq!(reuse.json::<serde_json::Value>().unwrap()["error"], "invalid_grant");
    assert_eq!(gw.api(&t2), 401, "reuse revoked the family");
    let r = gw.token("jwt-app", &[("grant_type", "refresh_token"), ("refresh_token", &r2)]);
    assert_eq!(r.status(), 400, "the family's refresh token is revoked too");
    // Another family of the same key is untouched.
    let b = gw.password("jwt-app", "bob");
    let rb = b["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        gw.token("jwt-app", &[("grant_type", "refresh_token"), ("refresh_token", &rb)])
            .status(),
        200
    );
    // Another client cannot use the refresh token.
    let t = gw.password("jwt-app", "alice");
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        gw.token("other-app", &[("grant_type", "refresh_token"), ("refresh_token", &rt)])
            .status(),
        400
    );
    assert_eq!(gw.api(&t), 200);
}

#[test]
fn c13b_opaque_single_reuse_returns_the_same_refresh_token() {
    let gw = Gateway::start(Setup::default());
    let t1 = gw.password("opaque-app", "alice");
    let t2 = gw.password("opaque-app", "alice");
    assert_eq!(at(&t1), at(&t2));
    assert_eq!(t1["refresh_token"], t2["refresh_token"]);
}

#[test]
fn c14_max_active_tokens_revokes_the_oldest() {
    let gw = Gateway::start(Setup::policy("enable = true\nmax_active_tokens = 2", ""));
    let ts: Vec<_> = (0..3).map(|_| gw.cc("jwt-app")).collect();
    assert_eq!(gw.api(&ts[0]), 401);
    assert_eq!(gw.api(&ts[1]), 200);
    assert_eq!(gw.api(&ts[2]), 200);
}

fn concurrent(gw: &Gateway, client: &str, n: usize) -> Vec<serde_json::Value> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(|| gw.cc(client))).collect();
        handles.into_iter().map(|h| h.join().expect("request thread")).collect()
    })
}

#[test]
fn c16_concurrent_identical_requests_keep_the_invariants() {
    let gw = Gateway::start(Setup::default());
    let opaque = concurrent(&gw, "opaque-app", 100);
    let distinct: HashSet<&str> = opaque.iter().map(at).collect();
    assert_eq!(distinct.len(), 1, "opaque single: all answers carry the same token");
    let jwt = concurrent(&gw, "jwt-app", 100);
    let distinct: HashSet<&str> = jwt.iter().map(at).collect();
    assert_eq!(distinct.len(), 100, "JWT single: N distinct tokens");
    let active = jwt.iter().filter(|t| gw.api(t) == 200).count();
    assert_eq!(active, 1, "JWT single: exactly one stays active");

    let gw = Gateway::start(Setup::policy(MULTI, MULTI));
    for client in ["opaque-app", "jwt-app"] {
        let ts = concurrent(&gw, client, 100);
        let distinct: HashSet<&str> = ts.iter().map(at).collect();
        assert_eq!(distinct.len(), 100, "{client} multi: N distinct tokens");
        assert!(ts.iter().all(|t| gw.api(t) == 200), "{client} multi: all active");
    }
}

#[test]
fn c17_unknown_grant_type_refuses_the_config_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let setup = Setup::policy(
        "enable = true\nallowed_grant_types = [\"client_credentials\", \"implicit\"]",
        "",
    );
    let path = dir.path().join("gateway.toml");
    common::write(&path, &common::config_text(port, &setup));
    let check = std::process::Command::new(common::bin())
        .arg("--conf")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&check.stderr);
    assert!(
        msg.contains("oauth.jwt.renew_token_without_revoking_existing.allowed_grant_types"),
        "{msg}"
    );
    assert!(msg.contains("implicit"), "{msg}");
    let run = std::process::Command::new(common::bin())
        .arg("--conf")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!run.status.success(), "the gateway must not start on a refused config");
    assert!(String::from_utf8_lossy(&run.stderr).contains("allowed_grant_types"));
}
