//! Operations: the metrics and health listener, HTTPS on the gateway's listener, and the warning
//! about plain HTTP on a public address; the bounds on tokens held (`oauth.max_live_tokens`, `..._per_client`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{at, Gateway, Setup};

/// A gateway whose `[server]` also has `lines`.
fn start_with_server(setup: &Setup, lines: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = common::with_server_lines(&common::config_text(port, setup), lines);
    common::write(&dir.path().join("gateway.toml"), &text);
    Gateway::start_in(dir, port)
}

fn get(url: &str) -> (u16, String) {
    let r = reqwest::blocking::get(url).expect("GET");
    (r.status().as_u16(), r.text().expect("body"))
}

/// The value of one exact series (`name{labels}` as Prometheus renders it) in a scrape.
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series {series} in:\n{scrape}"))
        .parse()
        .unwrap()
}

fn issued(grant: &str, format: &str, mode: &str) -> String {
    format!(r#"tokengate_tokens_issued_total{{format="{format}",grant="{grant}",mode="{mode}"}}"#)
}

#[test]
fn metrics_count_what_the_gateway_did() {
    let mport = common::free_port();
    let setup = Setup::policy("enable = true\nmax_active_tokens = 2", "");
    let gw = start_with_server(&setup, &format!("metrics_listen = \"127.0.0.1:{mport}\""));
    let ops = format!("http://127.0.0.1:{mport}");
    gw.eventually(30, "the metrics listener", || {
        reqwest::blocking::get(format!("{ops}/healthz")).is_ok_and(|r| r.status() == 200)
    });
    assert_eq!(get(&format!("{ops}/healthz")), (200, "ok\n".to_string()));
    assert_eq!(get(&format!("{ops}/nope")).0, 404);
    let post = reqwest::blocking::Client::new()
        .post(format!("{ops}/metrics"))
        .send()
        .unwrap();
    assert_eq!(post.status(), 405);

    // JWT client_credentials is multi with a cap of 2: the third token revokes the first.
    let jwt: Vec<_> = (0..3).map(|_| gw.cc("jwt-app")).collect();
    // Opaque single: the second request gets the same token back.
    let o1 = gw.cc("opaque-app");
    gw.cc("opaque-app");
    // JWT password is single: the second token revokes the first.
    gw.password("jwt-app", "alice");
    let p2 = gw.password("jwt-app", "alice");
    let r2 = p2["refresh_token"].as_str().unwrap().to_string();
    gw.token_ok("jwt-app", &[("grant_type", "refresh_token"), ("refresh_token", &r2)]);
    let reuse = gw.token("jwt-app", &[("grant_type", "refresh_token"), ("refresh_token", &r2)]);
    assert_eq!(reuse.status(), 400);
    assert_eq!(gw.revoke("opaque-app", at(&o1)), 200);
    assert_eq!(
        gw.revoke("opaque-app", at(&o1)),
        200,
        "nothing left to revoke: not counted"
    );
    let wrong = gw
        .http
        .post(format!("{}/oauth2/token", gw.base))
        .basic_auth("jwt-app", Some("wrong-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // Validations.
    assert_eq!(gw.api(&jwt[2]), 200);
    assert_eq!(gw.api(&jwt[0]), 401);
    let narrow = gw.cc_scope("jwt-app", "a");
    assert_eq!(gw.call("/scoped/x", at(&narrow)), 403);
    assert_eq!(gw.call("/api/x", "a b"), 400);
    let missing = gw.http.get(format!("{}/api/x", gw.base)).send().unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        gw.http.get(format!("{}/public/x", gw.base)).send().unwrap().status(),
        200
    );

    let (status, m) = get(&format!("{ops}/metrics"));
    assert_eq!(status, 200);
    assert_eq!(value(&m, &issued("client_credentials", "jwt", "multi")), 4.0);
    assert_eq!(value(&m, &issued("client_credentials", "opaque", "single")), 1.0);
    assert_eq!(value(&m, &issued("client_credentials", "opaque", "reused")), 1.0);
    assert_eq!(value(&m, &issued("password", "jwt", "single")), 2.0);
    assert_eq!(value(&m, &issued("refresh_token", "jwt", "single")), 1.0);
    assert_eq!(value(&m, &issued("password", "opaque", "single")), 0.0);
    let revoked = |cause: &str| value(&m, &format!(r#"tokengate_tokens_revoked_total{{cause="{cause}"}}"#));
    assert_eq!(revoked("cap"), 1.0);
    assert_eq!(revoked("renewal"), 1.0);
    assert_eq!(revoked("refresh_reuse"), 1.0);
    assert_eq!(revoked("request"), 1.0);
    let validations = |result: &str| value(&m, &format!(r#"tokengate_validations_total{{result="{result}"}}"#));
    assert_eq!(validations("ok"), 1.0);
    assert_eq!(validations("invalid"), 1.0);
    assert_eq!(validations("insufficient_scope"), 1.0);
    assert_eq!(validations("malformed"), 1.0);
    assert_eq!(validations("missing"), 1.0, "the public route is not a validation");
    assert_eq!(
        value(&m, r#"tokengate_client_auth_failures_total{endpoint="token"}"#),
        1.0
    );
    assert_eq!(value(&m, r#"tokengate_config_reloads_total{result="ok"}"#), 0.0);
    // jwt[1], jwt[2] and narrow are live; the reuse revoked the refreshed password token too.
    assert_eq!(value(&m, "tokengate_active_tokens"), 3.0);
    assert!(value(&m, "tokengate_store_write_seconds_count") >= 8.0);
    assert!(m.contains("# TYPE tokengate_store_write_seconds histogram"));
}

#[test]
fn tokens_over_https() {
    let (gw, _) = Gateway::start_tls(&Setup::default());
    let port = gw.port;
    assert!(gw.base.starts_with("https://"));

    let t = gw.cc("jwt-app");
    assert_eq!(gw.api(&t), 200, "a token got over HTTPS opens the API over HTTPS");
    let p = gw.password("opaque-app", "alice");
    assert_eq!(gw.introspect("opaque-app", at(&p))["active"], true);
    let meta = gw.metadata();
    assert!(
        meta["token_endpoint"].as_str().unwrap().starts_with("https://"),
        "{meta}"
    );

    // Plain HTTP on the HTTPS port never gets an answer.
    let plain = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/oauth2/token"))
        .basic_auth("jwt-app", Some(common::SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send();
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
    let log = gw.log();
    assert!(log.contains("listening on https://"), "{log}");
    assert!(!log.contains("plain HTTP"), "{log}");
}

#[test]
fn plain_http_on_a_public_address_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = common::config_text(port, &Setup::default()).replacen(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("listen = \"0.0.0.0:{port}\""),
        1,
    );
    common::write(&dir.path().join("gateway.toml"), &text);
    let gw = Gateway::start_in(dir, port);
    let log = gw.log();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("plain HTTP on 0.0.0.0"), "{log}");

    let loopback = Gateway::start(Setup::default());
    assert!(!loopback.log().contains("plain HTTP"), "{}", loopback.log());
}

/// "Max open files" of a process: (soft, hard).
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let v: Vec<&str> = line.split_whitespace().collect();
    (v[3].to_string(), v[4].to_string())
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    common::write(
        &dir.path().join("gateway.toml"),
        &common::config_text(port, &Setup::default()),
    );
    let gw = Gateway::start_in_shell(dir, port, "ulimit -Sn 256;");
    let (soft, hard) = open_file_limits(gw.pid());
    assert_ne!(hard, "256", "the hard limit here is above the soft limit the test sets");
    assert_eq!(soft, hard, "log:\n{}", gw.log());
    assert!(gw.log().contains(&format!("open-file limit raised from 256 to {hard}")));
}

/// The sweeper's work shows in the metrics: a token that expires is dropped from the index and
/// its row from the store.
#[test]
fn metrics_count_what_the_sweeper_removed() {
    let mport = common::free_port();
    let setup = Setup {
        oauth: "access_token_ttl_secs = 1".into(),
        extra: "[store]\nsweep_interval_secs = 1\n".into(),
    };
    let gw = start_with_server(&setup, &format!("metrics_listen = \"127.0.0.1:{mport}\""));
    let ops = format!("http://127.0.0.1:{mport}");
    gw.eventually(30, "the metrics listener", || {
        reqwest::blocking::get(format!("{ops}/healthz")).is_ok_and(|r| r.status() == 200)
    });
    let scrape = get(&format!("{ops}/metrics")).1;
    assert_eq!(value(&scrape, r#"tokengate_tokens_expired_total{kind="access"}"#), 0.0);
    assert_eq!(value(&scrape, "tokengate_store_purged_rows_total"), 0.0);

    gw.cc("opaque-app");
    gw.eventually(30, "the token swept from memory and disk", || {
        let scrape = get(&format!("{ops}/metrics")).1;
        value(&scrape, r#"tokengate_tokens_expired_total{kind="access"}"#) == 1.0
            && value(&scrape, "tokengate_store_purged_rows_total") >= 1.0
    });
    assert_eq!(value(&get(&format!("{ops}/metrics")).1, "tokengate_active_tokens"), 0.0);
}

/// `oauth.max_live_tokens` bounds what clients looping on multi-mode issuance can make the
/// gateway hold: past it, 503 `temporarily_unavailable` with `Retry-After`, counted; and
/// `oauth.max_live_tokens_per_client` stops one client first (429), so another still gets
/// tokens; a client's own `max_live_tokens` replaces that default. Issued tokens keep working; a
/// reload moves the bounds live.
#[test]
fn the_token_bounds_answer_429_and_503_and_a_reload_moves_them() {
    let mport = common::free_port();
    let setup = |max: u32, per_client: u32| Setup {
        oauth: format!("max_live_tokens = {max}\nmax_live_tokens_per_client = {per_client}"),
        ..Setup::policy("enable = true", "enable = true")
    };
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = common::config_text(port, &setup(4, 2));
    let text = common::with_server_lines(&text, &format!("metrics_listen = \"127.0.0.1:{mport}\""));
    // jwt-app has a bound of its own: none.
    let text = text.replace("id = \"jwt-app\"\n", "id = \"jwt-app\"\nmax_live_tokens = 0\n");
    common::write(&dir.path().join("gateway.toml"), &text);
    let gw = Gateway::start_in(dir, port);
    let ops = format!("http://127.0.0.1:{mport}");
    let cc = &[("grant_type", "client_credentials")];
    let issued: Vec<_> = (0..2).map(|_| gw.cc("opaque-app")).collect();
    // The flooding client meets its own bound...
    let r = gw.token("opaque-app", cc);
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60", "the sweep interval");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // ...and the other client, past the default share thanks to its own bound, still gets
    // tokens up to the gateway's bound.
    for _ in 0..2 {
        assert_eq!(at(&gw.cc("jwt-app")).split('.').count(), 3);
    }
    let r = gw.token("jwt-app", cc);
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "60");
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(issued.iter().all(|t| gw.api(t) == 200), "issued tokens keep working");
    gw.eventually(30, "the metrics listener", || {
        reqwest::blocking::get(format!("{ops}/healthz")).is_ok_and(|r| r.status() == 200)
    });
    let scrape = get(&format!("{ops}/metrics")).1;
    assert_eq!(value(&scrape, r#"tokengate_tokens_refused_total{bound="client"}"#), 1.0);
    assert_eq!(
        value(&scrape, r#"tokengate_tokens_refused_total{bound="gateway"}"#),
        1.0
    );
    assert_eq!(
        value(&scrape, r#"tokengate_client_live_tokens{client_id="opaque-app"}"#),
        2.0
    );
    assert_eq!(
        value(&scrape, r#"tokengate_client_live_tokens{client_id="jwt-app"}"#),
        2.0
    );
    assert_eq!(value(&scrape, "tokengate_live_tokens"), 4.0);

    // Raised to 6, with no bound per client: opaque-app passes its old share.
    let text = common::config_text(gw.port, &setup(6, 0));
    let text = common::with_server_lines(&text, &format!("metrics_listen = \"127.0.0.1:{mport}\""));
    common::write(&gw.conf_path(), &text);
    gw.eventually(30, "the new bounds applied", || {
        gw.token("opaque-app", cc).status() == 200
    });
    assert_eq!(at(&gw.cc("jwt-app")).split('.').count(), 3);
    assert_eq!(gw.token("jwt-app", cc).status(), 503);
}
