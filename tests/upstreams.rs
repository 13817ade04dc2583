//! Routes with several servers, against the real binary and real upstreams that say which server
//! answered: round robin, health checks (a killed server leaves the rotation and comes back),
//! the retry of a refused connection, 502 when every server is down, consistent hashing by
//! client id, HTTPS upstreams (CA, wrong CA, client certificate, insecure_skip_verify), and a
//! reload that changes a route's servers and TLS under an in-flight request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod echo;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use common::{at, config_text, free_port, with_server_lines, write, Gateway, Setup};
use echo::{tls_echo, Echo, TestCa};
use serde_json::Value;

/// A gateway with `routes` (TOML `[[routes]]` tables) and a metrics listener; its address.
fn start(routes: &str) -> (Gateway, String) {
    start_in(tempfile::tempdir().unwrap(), routes)
}

fn start_in(dir: tempfile::TempDir, routes: &str) -> (Gateway, String) {
    let (port, metrics) = (free_port(), free_port());
    let setup = Setup {
        extra: routes.to_string(),
        ..Setup::default()
    };
    let text = with_server_lines(
        &config_text(port, &setup),
        &format!("metrics_listen = \"127.0.0.1:{metrics}\""),
    );
    write(&dir.path().join("gateway.toml"), &text);
    let gw = Gateway::start_in(dir, port);
    let ops = format!("http://127.0.0.1:{metrics}");
    gw.eventually(30, "the metrics listener", || {
        reqwest::blocking::get(format!("{ops}/healthz")).is_ok()
    });
    (gw, ops)
}

/// A public `[[routes]]` table for `prefix` with the servers `addrs` and the keys `more`.
fn route(prefix: &str, addrs: &[SocketAddr], more: &str) -> String {
    let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[[routes]]\npath_prefix = \"{prefix}\"\nupstreams = [{}]\nauth = false\n{more}\n",
        list.join(", ")
    )
}

/// GET `path`: the status and the body (the name of the server that answered).
fn get(gw: &Gateway, path: &str) -> (u16, String) {
    let r = gw.http.get(format!("{}{path}", gw.base)).send().expect("request");
    (r.status().as_u16(), r.text().unwrap())
}

/// `n` GETs of `path`, each of which must be 200; how many each server answered.
fn spread(gw: &Gateway, path: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let (status, server) = get(gw, path);
        assert_eq!(status, 200, "{path}: {server}\n{}", gw.log());
        *seen.entry(server).or_insert(0) += 1;
    }
    seen
}

/// The route `prefix` in `/healthz?detail`.
fn detail(ops: &str, prefix: &str) -> Value {
    let detail: Value = reqwest::blocking::get(format!("{ops}/healthz?detail"))
        .unwrap()
        .json()
        .unwrap();
    let routes = detail["routes"].as_array().unwrap();
    routes.iter().find(|r| r["path_prefix"] == prefix).unwrap().clone()
}

/// Each server of `prefix` (by address) and whether it is in the rotation.
fn rotation(ops: &str, prefix: &str) -> BTreeMap<String, bool> {
    detail(ops, prefix)["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["address"].as_str().unwrap().to_string(),
                s["healthy"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn requests_spread_over_two_and_three_servers_by_round_robin() {
    let servers: Vec<Echo> = ["a", "b", "c", "d", "e"].iter().map(|n| Echo::start(n)).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let (gw, ops) = start(&(route("/two", &addrs[..2], "") + &route("/three", &addrs[2..], "")));
    let two = spread(&gw, "/two/x", 10);
    assert_eq!(two, BTreeMap::from([("a".into(), 5), ("b".into(), 5)]));
    let three = spread(&gw, "/three/x", 9);
    assert_eq!(
        three,
        BTreeMap::from([("c".into(), 3), ("d".into(), 3), ("e".into(), 3)])
    );
    // Health per server, in the detail and in the metrics; plain /healthz stays as it was.
    assert!(rotation(&ops, "/three").values().all(|&up| up));
    assert_eq!(
        reqwest::blocking::get(format!("{ops}/healthz"))
            .unwrap()
            .text()
            .unwrap(),
        "ok\n"
    );
    let scrape = reqwest::blocking::get(format!("{ops}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let series = format!("tokengate_upstream_healthy{{route=\"/two\",server=\"{}\"}} 1", addrs[0]);
    assert!(scrape.contains(&series), "{series} in\n{scrape}");
}

#[test]
fn a_killed_server_leaves_the_rotation_and_comes_back() {
    let mut servers: Vec<Echo> = ["a", "b", "c"].iter().map(|n| Echo::start(n)).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let check = "health_check = { path = \"/healthz\", interval_secs = 1, timeout_ms = 500 }";
    let (gw, ops) = start(&route("/hc", &addrs, check));
    assert_eq!(spread(&gw, "/hc/x", 6).len(), 3);

    servers[1].kill();
    let b = addrs[1].to_string();
    // Even before the check notices, a refused connection is retried on another server.
    let before = spread(&gw, "/hc/x", 6);
    assert!(!before.contains_key("b"), "{before:?}");
    gw.eventually(10, "b failing its check", || {
        detail(&ops, "/hc")["servers"][1]["health_check_passes"] == false
    });
    let after = spread(&gw, "/hc/x", 30);
    assert_eq!(after.keys().collect::<Vec<_>>(), ["a", "c"], "{after:?}");
    let scrape = reqwest::blocking::get(format!("{ops}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(scrape.contains(&format!("tokengate_upstream_healthy{{route=\"/hc\",server=\"{b}\"}} 0")));

    servers[1].restart();
    gw.eventually(15, "b back in the rotation", || {
        spread(&gw, "/hc/x", 3).contains_key("b")
    });
    assert!(rotation(&ops, "/hc")[&b]);
}

#[test]
fn a_refused_connection_is_retried_once_on_another_server() {
    let mut servers: Vec<Echo> = ["a", "b"].iter().map(|n| Echo::start(n)).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let (gw, ops) = start(&route("/r", &addrs, ""));
    servers[0].kill();
    // No health check: every request that meets the dead server is retried on the other one,
    // whatever its method (nothing reached the upstream).
    assert_eq!(spread(&gw, "/r/x", 10), BTreeMap::from([("b".into(), 10)]));
    let post = gw.http.post(format!("{}/r/x", gw.base)).body("payload").send().unwrap();
    assert_eq!(post.status(), 200);
    assert_eq!(post.text().unwrap(), "b");
    // The refused server is skipped for the next requests.
    assert!(!rotation(&ops, "/r")[&addrs[0].to_string()]);
}

#[test]
fn a_route_whose_servers_are_all_down_answers_502() {
    let refusing = |n: usize| -> Vec<SocketAddr> {
        (0..n)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect()
    };
    let check = "health_check = { interval_secs = 1, timeout_ms = 200 }";
    let routes = route("/down", &refusing(2), "") + &route("/checked", &refusing(2), check);
    let (gw, ops) = start(&routes);
    for path in ["/down/x", "/checked/x"] {
        let r = gw.http.get(format!("{}{path}", gw.base)).send().unwrap();
        assert_eq!(r.status(), 502, "{path}");
        assert_eq!(r.json::<Value>().unwrap()["error"], "bad_gateway");
    }
    gw.eventually(10, "both checked servers failing their check", || {
        let servers = detail(&ops, "/checked")["servers"].as_array().unwrap().clone();
        servers.iter().all(|s| s["health_check_passes"] == false)
    });
    // Known to be down: answered without trying them.
    assert_eq!(get(&gw, "/checked/x").0, 502);
    // pingora logs the failure after the answer is written: wait for the line.
    gw.eventually(10, "the log line of the refusal", || {
        gw.log().contains("route /checked: no server is up")
    });
}

#[test]
fn consistent_hashing_keeps_a_client_on_one_server() {
    let servers: Vec<Echo> = ["a", "b", "c"].iter().map(|n| Echo::start(n)).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let routes = route("/sticky", &addrs, "load_balancing = \"consistent_hash\"").replace("auth = false\n", "");
    let (gw, _ops) = start(&routes);
    for client in ["jwt-app", "opaque-app", "other-app"] {
        let token = gw.cc(client);
        let mut seen = BTreeSet::new();
        for _ in 0..10 {
            let r = gw
                .http
                .get(format!("{}/sticky/x", gw.base))
                .bearer_auth(at(&token))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200);
            seen.insert(r.text().unwrap());
        }
        assert_eq!(seen.len(), 1, "{client} went to {seen:?}");
    }
}

#[test]
fn https_upstreams_are_verified_against_their_ca() {
    let ca = TestCa::new("test upstream CA");
    let other = TestCa::new("some other CA");
    let (cert, key) = ca.issue(&["127.0.0.1", "localhost"], false);
    let (gw_cert, gw_key) = ca.issue(&["gateway"], true);
    let server = tls_echo("tls", &cert, &key, None);
    let mutual = tls_echo("mtls", &cert, &key, Some(&ca.pem));
    let dir = tempfile::tempdir().unwrap();
    for (name, pem) in [
        ("ca.pem", &ca.pem),
        ("other-ca.pem", &other.pem),
        ("gw.pem", &gw_cert),
        ("gw-key.pem", &gw_key),
    ] {
        write(&dir.path().join(name), pem);
    }
    let tls = "upstream_tls = true\nupstream_ca = \"ca.pem\"";
    let routes = [
        route("/tls", &[server], tls),
        route("/sni", &[server], &format!("{tls}\nupstream_sni = \"localhost\"")),
        route(
            "/wrongca",
            &[server],
            "upstream_tls = true\nupstream_ca = \"other-ca.pem\"",
        ),
        route(
            "/insecure",
            &[server],
            "upstream_tls = true\nupstream_ca = \"other-ca.pem\"\ninsecure_skip_verify = true",
        ),
        route(
            "/mtls",
            &[mutual],
            &format!("{tls}\nupstream_client_cert = \"gw.pem\"\nupstream_client_key = \"gw-key.pem\""),
        ),
        route("/nocert", &[mutual], tls),
    ]
    .concat();
    let (gw, _ops) = start_in(dir, &routes);
    assert_eq!(get(&gw, "/tls/x"), (200, "tls".into()));
    assert_eq!(get(&gw, "/sni/x"), (200, "tls".into()));
    assert_eq!(get(&gw, "/mtls/x"), (200, "mtls".into()));
    assert_eq!(get(&gw, "/nocert/x").0, 502, "the server wants a client certificate");
    assert_eq!(get(&gw, "/wrongca/x").0, 502);
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("route /wrongca: TLS to upstream"))
        .expect("a TLS failure line");
    assert!(line.contains("certificate"), "{line}");
    assert_eq!(
        get(&gw, "/insecure/x"),
        (200, "tls".into()),
        "not verified: even a wrong CA passes"
    );
    let warning = log
        .lines()
        .find(|l| l.contains("insecure_skip_verify = true"))
        .expect("the warning");
    assert!(warning.contains("WARN"), "{warning}");
}

#[test]
fn a_saved_config_changes_servers_checks_and_tls_without_dropping_requests() {
    let old = Echo::start("old");
    let new = Echo::start("new");
    let ca = TestCa::new("reload CA");
    let (cert, key) = ca.issue(&["127.0.0.1"], false);
    let tls = tls_echo("tls", &cert, &key, None);
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("ca.pem"), &ca.pem);
    let (gw, ops) = start_in(dir, &route("/r", &[old.addr, dead], ""));
    let conf = gw.conf_path();
    let text = std::fs::read_to_string(&conf).unwrap();

    std::thread::scope(|s| {
        // A request held by the old server while the route moves elsewhere.
        let slow = s.spawn(|| get(&gw, "/r/slow"));
        gw.eventually(10, "the slow request at the old server", || old.gate.waiting() == 1);
        let moved = route(
            "/r",
            &[new.addr, dead],
            "health_check = { interval_secs = 1, timeout_ms = 200 }",
        );
        write(&conf, &text.replace(&route("/r", &[old.addr, dead], ""), &moved));
        gw.eventually(10, "the new server", || get(&gw, "/r/x") == (200, "new".into()));
        // The new config's check runs: the dead server leaves the rotation.
        gw.eventually(10, "the check of the new config", || {
            detail(&ops, "/r")["servers"][1]["health_check_passes"] == false
        });
        old.gate.open();
        assert_eq!(
            slow.join().unwrap(),
            (200, "old".into()),
            "the in-flight request finished"
        );
    });

    let to_tls = route("/r", &[tls], "upstream_tls = true\nupstream_ca = \"ca.pem\"");
    write(
        &conf,
        &(text.clone() + &to_tls).replace(&route("/r", &[old.addr, dead], ""), ""),
    );
    gw.eventually(10, "the HTTPS server", || get(&gw, "/r/x") == (200, "tls".into()));
}
