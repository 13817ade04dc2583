//! Nothing acknowledged is lost: SIGKILL in the middle of a burst of token requests and
//! revocations, restart on the same store, and every 200 still holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{Gateway, Setup, SECRET};

#[derive(Default)]
struct Acked {
    issued: Vec<String>,
    revoked: Vec<String>,
    /// Revocations sent without an answer: their outcome is unknown.
    uncertain: Vec<String>,
}

#[test]
fn sigkill_mid_burst_loses_no_acknowledged_token_or_revocation() {
    let gw = Gateway::start(Setup::policy("enable = true", "enable = true"));
    let acked = Mutex::new(Acked::default());
    let ops = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let token_url = format!("{}/oauth2/token", gw.base);
    let revoke_url = format!("{}/oauth2/revoke", gw.base);

    let dir = std::thread::scope(|s| {
        for worker in 0..6 {
            let (acked, ops, stop, http, token_url, revoke_url) = (&acked, &ops, &stop, &http, &token_url, &revoke_url);
            s.spawn(move || {
                let client = if worker % 2 == 0 { "opaque-app" } else { "jwt-app" };
                let mut mine: Vec<String> = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if n.is_multiple_of(3) && !mine.is_empty() {
                        let victim = mine.remove(0);
                        let r = http
                            .post(revoke_url)
                            .basic_auth(client, Some(SECRET))
                            .form(&[("token", &victim)])
                            .send();
                        let mut a = acked.lock().unwrap();
                        match r {
                            Ok(r) if r.status() == 200 => a.revoked.push(victim),
                            Ok(_) => a.uncertain.push(victim),
                            // The gateway is gone: this worker's burst is over.
                            Err(_) => {
                                a.uncertain.push(victim);
                                break;
                            }
                        }
                    } else {
                        let r = http
                            .post(token_url)
                            .basic_auth(client, Some(SECRET))
                            .form(&[("grant_type", "client_credentials")])
                            .send();
                        let Ok(r) = r else {
                            break; // the gateway is gone
                        };
                        if r.status() == 200 {
                            let v: serde_json::Value = match r.json() {
                                Ok(v) => v,
                                Err(_) => continue,
                            };
                            let t = v["access_token"].as_str().unwrap().to_string();
                            acked.lock().unwrap().issued.push(t.clone());
                            mine.push(t);
                        }
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Kill while the workers are still firing.
        while ops.load(Ordering::Relaxed) < 300 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let port = gw.port;
        let dir = gw.kill9();
        stop.store(true, Ordering::Relaxed);
        (dir, port)
    });

    let (dir, port) = dir;
    let acked = acked.into_inner().unwrap();
    assert!(
        acked.issued.len() > 100,
        "the burst issued {} tokens",
        acked.issued.len()
    );
    assert!(!acked.revoked.is_empty());
    let gw = Gateway::start_in(dir, port);
    let revoked: HashSet<&String> = acked.revoked.iter().collect();
    let uncertain: HashSet<&String> = acked.uncertain.iter().collect();
    let mut checked = 0;
    for t in &acked.issued {
        if uncertain.contains(t) {
            continue;
        }
        let expected = if revoked.contains(t) { 401 } else { 200 };
        assert_eq!(
            gw.call("/api/x", t),
            expected,
            "token acknowledged before the crash (revoked: {})",
            expected == 401
        );
        checked += 1;
    }
    assert!(checked > 100);
}

#[test]
fn opaque_single_mode_returns_the_same_token_after_a_restart() {
    let gw = Gateway::start(Setup::default());
    let t1 = gw.cc("opaque-app");
    let port = gw.port;
    let gw = Gateway::start_in(gw.kill9(), port);
    let t2 = gw.cc("opaque-app");
    assert_eq!(t1["access_token"], t2["access_token"]);
    assert_eq!(gw.api(&t2), 200);
}

#[test]
fn the_store_holds_no_usable_token_text() {
    let gw = Gateway::start(Setup::policy("enable = true", "enable = true"));
    let tokens: Vec<String> = ["opaque-app", "jwt-app"]
        .iter()
        .flat_map(|c| [gw.cc(c), gw.password(c, "alice")])
        .flat_map(|v| {
            let mut out = vec![v["access_token"].as_str().unwrap().to_string()];
            if let Some(r) = v["refresh_token"].as_str() {
                out.push(r.to_string());
            }
            out
        })
        .collect();
    let port = gw.port;
    let dir = gw.kill9();
    let mut raw = Vec::new();
    for f in ["tokens.db", "tokens.db-wal"] {
        if let Ok(b) = std::fs::read(dir.path().join("data").join(f)) {
            raw.extend(b);
        }
    }
    assert!(!raw.is_empty());
    let text = String::from_utf8_lossy(&raw);
    for t in &tokens {
        // Neither the text nor its distinctive tail (the HMAC tag / signature) is at rest.
        assert!(!text.contains(t.as_str()), "token text found in the store");
        assert!(!text.contains(&t[t.len() - 24..]), "token tail found in the store");
    }
    let _ = Gateway::start_in(dir, port);
}
