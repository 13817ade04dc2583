//! Cluster mode when something fails. The database goes away from one node through a relay the
//! test cuts (tests/common/relay.rs: black-holed, refused, or frozen mid-stream) while the other
//! nodes keep it: writes answer 503 `temporarily_unavailable` within seconds, bearer checks go on
//! from the index until `store.stale_after_secs`, health says so, and once the database is back
//! the node catches up before it serves writes again. A node killed mid-burst loses nothing it
//! acknowledged, and a node does not start without its database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::cluster::{forged_opaque, Cluster, Node, NodeOptions};
use common::pg::{probe, TestDb};
use common::relay::{Cut, Relay};
use common::{at, Setup, SECRET};
use serde_json::Value;

#[test]
fn the_relay_cuts_and_restores_the_way_the_tests_need() {
    let db = TestDb::create();
    let relay = Relay::start(db.server_addr());
    let url = db.url_via(relay.addr);
    let limit = Duration::from_secs(2);
    probe(&url, limit).unwrap();
    relay.cut(Cut::Refuse);
    let refused = Instant::now();
    assert!(probe(&url, limit).is_err());
    assert!(refused.elapsed() < Duration::from_secs(1), "refused at once");
    relay.restore();
    probe(&url, limit).unwrap();
    relay.cut(Cut::BlackHole);
    assert_eq!(probe(&url, limit), Err(format!("no answer within {limit:?}")));
    relay.restore();
    probe(&url, limit).unwrap();
    relay.cut(Cut::Freeze);
    assert_eq!(probe(&url, limit), Err(format!("no answer within {limit:?}")));
    relay.restore();
    probe(&url, limit).unwrap();
    assert!(relay.relayed() >= 4);

    // Connections open at the cut: frozen ones hang and resume, the others are closed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config: tokio_postgres::Config = url.parse().unwrap();
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        relay.cut(Cut::Freeze);
        let query = client.simple_query("SELECT 1");
        let frozen = tokio::time::timeout(limit, query).await;
        assert!(frozen.is_err(), "a query on a frozen connection is not answered");
        relay.restore();
        client.simple_query("SELECT 1").await.unwrap();
        relay.cut(Cut::BlackHole);
        assert!(client.simple_query("SELECT 1").await.is_err(), "closed at the cut");
        relay.restore();
    });
}

/// The longest a write may take to fail while the database is unreachable.
const WRITE_FAILS_WITHIN: Duration = Duration::from_secs(9);

/// POST `path` at `node` as `client`: status, JSON answer, `Retry-After`, and how long it took.
fn post(node: &Node, path: &str, client: &str, form: &[(&str, &str)]) -> (u16, Value, Option<String>, Duration) {
    let started = Instant::now();
    let r = node
        .gw
        .http
        .post(format!("{}{path}", node.gw.base))
        .basic_auth(client, Some(SECRET))
        .form(form)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap_or_else(|e| panic!("POST {path} had no answer within 30 s: {e}"));
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let body = r.json().unwrap_or(Value::Null);
    (status, body, retry, started.elapsed())
}

fn is_temporarily_unavailable(what: &str, answer: &(u16, Value, Option<String>, Duration)) {
    let (status, body, retry, took) = answer;
    assert_eq!(*status, 503, "{what}: {body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(retry.is_some(), "{what}: no Retry-After");
    assert!(*took < WRITE_FAILS_WITHIN, "{what} took {took:?}");
}

/// Node 0 loses the database (`how`) while node 1 keeps it, then gets it back.
fn outage(how: Cut) {
    let c = Cluster::start_with(Setup::default(), &[NodeOptions::relayed(""), NodeOptions::default()]);
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let known = [a.gw.cc_scope("opaque-app", "a"), a.gw.cc_scope("jwt-app", "a")];
    let victim = at(&a.gw.cc_scope("opaque-app", "b")).to_string();
    let pair = a.gw.password("jwt-app", "alice");
    let revoked_meanwhile = at(&b.gw.cc_scope("opaque-app", "c")).to_string();
    assert_eq!(
        a.gw.call("/api/x", &revoked_meanwhile),
        200,
        "node 0 knows node 1's token"
    );
    assert_eq!(a.store_health()["state"], "ok", "{}", c.logs());
    assert_eq!(a.healthz(), (200, "ok\n".to_string()));

    a.relay().cut(how);
    // Writes at node 0 fail fast and say so, all three kinds at once.
    let refresh = pair["refresh_token"].as_str().unwrap();
    let answers = std::thread::scope(|s| {
        let issue = s.spawn(|| {
            post(
                a,
                "/oauth2/token",
                "jwt-app",
                &[("grant_type", "client_credentials"), ("scope", "b")],
            )
        });
        let revoke = s.spawn(|| post(a, "/oauth2/revoke", "opaque-app", &[("token", &victim)]));
        let renew = s.spawn(|| {
            post(
                a,
                "/oauth2/token",
                "jwt-app",
                &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            )
        });
        [issue.join().unwrap(), revoke.join().unwrap(), renew.join().unwrap()]
    });
    for (what, answer) in ["issue", "revoke", "refresh"].iter().zip(&answers) {
        is_temporarily_unavailable(&format!("{how:?}: {what}"), answer);
    }
    // Bearer checks go on from the index; health says the store is unreachable.
    for t in &known {
        assert_eq!(a.gw.api(t), 200, "{how:?}: a known token while the database is away");
    }
    assert_eq!(
        b.gw.call("/api/x", &victim),
        200,
        "the failed revocation revoked nothing"
    );
    let (status, body) = a.healthz();
    assert!(
        status == 200 && body.starts_with("degraded"),
        "{how:?}: /healthz {status} {body}"
    );
    assert_eq!(a.store_health()["state"], "unreachable", "{how:?}");
    // Forged tokens cost no query: refused at once, though the database cannot answer.
    let flood = Instant::now();
    for t in forged_opaque(200) {
        assert_eq!(a.gw.call("/api/x", &t), 401);
    }
    assert!(
        flood.elapsed() < Duration::from_secs(5),
        "200 forged tokens took {:?}",
        flood.elapsed()
    );

    // Meanwhile node 1 works on: a revocation and a token node 0 cannot hear about.
    assert_eq!(b.gw.revoke("opaque-app", &revoked_meanwhile), 200);
    let issued_meanwhile = b.gw.cc_scope("jwt-app", "c");
    let status = a.gw.api(&issued_meanwhile);
    assert_eq!(status, 503, "{how:?}: a token node 0 cannot look up");

    a.relay().restore();
    // Node 0 catches up before its first write succeeds: then the revocation made meanwhile holds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body, ..) = post(
            a,
            "/oauth2/token",
            "opaque-app",
            &[("grant_type", "client_credentials")],
        );
        if status == 200 {
            assert_eq!(a.gw.api(&body), 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{how:?}: no write succeeded after the database came back: {status} {body}; logs:\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        a.gw.call("/api/x", &revoked_meanwhile),
        401,
        "{how:?}: caught up before writing"
    );
    assert_eq!(a.gw.api(&issued_meanwhile), 200);
    // What was answered 503 did not happen later either (a frozen connection's bytes arrive late).
    assert_eq!(c.statuses(&victim), [200, 200], "{how:?}: a revocation answered 503");
    c.eventually(10, "the store healthy again", || {
        a.store_health()["state"] == "ok" && a.healthz() == (200, "ok\n".to_string())
    });
    let (status, renewed, ..) = post(
        a,
        "/oauth2/token",
        "jwt-app",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    );
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(c.statuses(at(&renewed)), [200, 200]);
    assert_eq!(a.gw.revoke("opaque-app", &victim), 200);
    c.eventually(3, "node 0's revocation at node 1", || {
        b.gw.call("/api/x", &victim) == 401
    });
}

#[test]
fn database_black_holed_writes_answer_503_and_checks_go_on() {
    outage(Cut::BlackHole);
}

#[test]
fn database_refusing_connections_writes_answer_503_and_checks_go_on() {
    outage(Cut::Refuse);
}

#[test]
fn network_frozen_mid_stream_writes_answer_503_and_checks_go_on() {
    outage(Cut::Freeze);
}

#[test]
fn bearer_checks_stop_after_stale_after_secs_and_resume_once_caught_up() {
    let c = Cluster::start_with(
        Setup::default(),
        &[NodeOptions::relayed("stale_after_secs = 2"), NodeOptions::default()],
    );
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let known = a.gw.cc_scope("jwt-app", "a");
    let revoked_meanwhile = at(&b.gw.cc_scope("opaque-app", "b")).to_string();
    assert_eq!(a.gw.call("/api/x", &revoked_meanwhile), 200);

    a.relay().cut(Cut::BlackHole);
    assert_eq!(a.gw.api(&known), 200, "within stale_after_secs of the last catch-up");
    c.eventually(10, "bearer checks answer 503 once stale", || a.gw.api(&known) == 503);
    assert_eq!(a.healthz().0, 503, "/healthz once stale");
    assert_eq!(a.store_health()["state"], "stale");
    let metrics =
        a.gw.http
            .get(format!("{}/metrics", a.ops))
            .send()
            .unwrap()
            .text()
            .unwrap();
    let unavailable = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tokengate_validations_total{result=\"unavailable\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        unavailable.is_some_and(|n| n >= 1.0),
        "the 503s are counted: {unavailable:?}"
    );
    assert_eq!(b.gw.revoke("opaque-app", &revoked_meanwhile), 200);

    a.relay().restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.gw.api(&known) != 200 {
        assert!(Instant::now() < deadline, "checks never resumed; logs:\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Serving again means caught up: the revocation made meanwhile at node 1 holds at once.
    assert_eq!(a.gw.call("/api/x", &revoked_meanwhile), 401);
    c.eventually(10, "healthy again", || a.healthz() == (200, "ok\n".to_string()));
    assert_eq!(a.store_health()["state"], "ok");
}

#[test]
fn a_node_does_not_start_without_its_database_and_says_so() {
    let c = Cluster::start(1, Setup::default());
    let relay = Relay::start(c.db.server_addr());
    relay.cut(Cut::Refuse);
    let dir = tempfile::tempdir().unwrap();
    let (port, mport) = (common::free_port(), common::free_port());
    let text = c.config(port, mport, &c.db.url_via(relay.addr), &NodeOptions::default());
    common::write(&dir.path().join("gateway.toml"), &text);
    let out = std::process::Command::new(common::bin())
        .arg("--conf")
        .arg(dir.path().join("gateway.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without its database: {stderr}");
    assert!(stderr.contains(&c.db.name), "the refusal names the database: {stderr}");
    assert!(!stderr.contains(common::pg::PASSWORD), "never the password: {stderr}");
}

#[derive(Default)]
struct Acked {
    issued: Vec<String>,
    revoked: Vec<String>,
    /// Revocations sent without an answer: their outcome is unknown.
    uncertain: Vec<String>,
}

#[test]
fn a_node_killed_mid_burst_loses_nothing_it_acknowledged() {
    let mut c = Cluster::start(3, Setup::policy("enable = true", "enable = true"));
    let acked = Mutex::new(Acked::default());
    let (ops, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = c.gw(0).base.clone();
    std::thread::scope(|s| {
        for worker in 0..6 {
            let (acked, ops, stop, http, base) = (&acked, &ops, &stop, &http, &base);
            s.spawn(move || {
                let client = ["opaque-app", "jwt-app"][worker % 2];
                let mut mine: Vec<String> = Vec::new();
                for n in 1u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let revoking = n.is_multiple_of(3) && !mine.is_empty();
                    let r = if revoking {
                        let form = [("token", mine[0].as_str())];
                        http.post(format!("{base}/oauth2/revoke"))
                            .basic_auth(client, Some(SECRET))
                            .form(&form)
                            .send()
                    } else {
                        let form = [("grant_type", "client_credentials")];
                        http.post(format!("{base}/oauth2/token"))
                            .basic_auth(client, Some(SECRET))
                            .form(&form)
                            .send()
                    };
                    let ok = r.as_ref().is_ok_and(|r| r.status() == 200);
                    if revoking {
                        let victim = mine.remove(0);
                        let mut a = acked.lock().unwrap();
                        if ok {
                            a.revoked.push(victim)
                        } else {
                            a.uncertain.push(victim)
                        }
                    } else if let Some(v) = r.ok().filter(|_| ok).and_then(|r| r.json::<Value>().ok()) {
                        let t = at(&v).to_string();
                        acked.lock().unwrap().issued.push(t.clone());
                        mine.push(t);
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Kill node 0 while the workers are still firing at it.
        while ops.load(Ordering::Relaxed) < 300 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = c.nodes.remove(0).gw.kill9();
        stop.store(true, Ordering::Relaxed);
    });

    let acked = acked.into_inner().unwrap();
    assert!(
        acked.issued.len() > 100,
        "the burst issued {} tokens",
        acked.issued.len()
    );
    assert!(!acked.revoked.is_empty());
    let revoked: HashSet<&String> = acked.revoked.iter().collect();
    let uncertain: HashSet<&String> = acked.uncertain.iter().collect();
    for t in acked
        .issued
        .iter()
        .filter(|t| !revoked.contains(t) && !uncertain.contains(t))
    {
        assert_eq!(
            c.statuses(t),
            [200, 200],
            "a token the killed node acknowledged; logs:\n{}",
            c.logs()
        );
    }
    c.eventually(5, "every acknowledged revocation refused at the other nodes", || {
        acked.revoked.iter().all(|t| c.all(t, 401))
    });
}
