//! Zero downtime under load: while clients keep requesting tokens and calling a bearer route
//! over HTTPS, the certificate is renewed (files rewritten, SIGHUP), the JWT signing key is
//! rotated (config saved with a new key, the old one in `jwt_previous_keys`) and the gateway is
//! replaced by a new process (`--upgrade`, then SIGQUIT to the old one). No request fails: no
//! refused or reset connection, no answer but 2xx; tokens issued before each step stay valid.
//! The same upgrade on a PostgreSQL store (cluster mode).
//!
//! The load's clients are HTTP/1.1 with keep-alive; some reuse one connection, some open one
//! per request (so connections arrive while the listener changes hands); one speaks HTTP/2. A
//! client that gets `Connection: close` (HTTP/1.1) or a GOAWAY (HTTP/2) opens a new connection:
//! that is how a server ends a keep-alive connection without a race, and no failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::load::{client, client_h2, Load, LoadClient, Tally};
use common::{at, write, Gateway, Setup, SECRET};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::blocking::Client;
use serde_json::Value;

/// The gateway's config on `port` with metrics on `metrics`, `oauth` lines and a grace period
/// long enough for the old process's connections to end with an answer (it exits as soon as
/// they have); with `tls`, HTTPS from `cert.pem` and `key.pem`.
fn config(port: u16, metrics: u16, oauth: &str, tls: bool) -> String {
    let setup = Setup {
        oauth: oauth.into(),
        ..Setup::default()
    };
    let mut text = common::config_text(port, &setup).replace("grace_period_secs = 0", "grace_period_secs = 60");
    let mut server = format!("metrics_listen = \"127.0.0.1:{metrics}\"");
    if tls {
        text = text.replace("issuer = \"http://", "issuer = \"https://");
        server.push_str("\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"");
    }
    common::with_server_lines(&text, &server)
}

fn jwks(http: &Client, base: &str) -> JwkSet {
    http.get(format!("{base}/oauth2/jwks")).send().unwrap().json().unwrap()
}

/// Verifies `token`'s signature against the JWKS served now; returns its `kid`.
fn verify(http: &Client, base: &str, token: &str, alg: Algorithm) -> String {
    let kid = decode_header(token).unwrap().kid.unwrap();
    let set = jwks(http, base);
    let jwk = set.find(&kid).unwrap_or_else(|| panic!("kid {kid} is not published"));
    let mut v = Validation::new(alg);
    v.set_issuer(&[base]);
    // Without `resource` the audience is the issuer.
    v.set_audience(&[base]);
    decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    kid
}

/// A token for `client_id` on a key the load does not use.
fn token(http: &Client, base: &str, client_id: &str) -> String {
    let r = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(client_id, Some(SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "orders:read")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    at(&r.json::<Value>().unwrap()).to_string()
}

fn api(http: &Client, base: &str, token: &str) -> u16 {
    http.get(format!("{base}/api/x"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// The new process; killed when the test ends.
struct Replacement {
    child: Child,
    log: std::path::PathBuf,
}

impl Replacement {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Replacement {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The graceful upgrade, as an operator runs it: a new process on the same config with
/// `--upgrade`, then SIGQUIT to the old one, which finishes its requests and exits; the new one
/// takes its listening sockets and loads the store after that. Returns once the old process
/// has exited and the load went on at the new one.
fn upgrade(gw: &mut Gateway, load: &Tally) -> Replacement {
    let log = gw.dir.path().join("new.log");
    let child = Command::new(common::bin())
        .arg("--conf")
        .arg(gw.conf_path())
        .arg("--upgrade")
        .env("RUST_LOG", "tokengate=debug,pingora_core=info,warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut new = Replacement { child, log };
    gw.eventually(30, "the new process waiting for the sockets", || {
        new.log().contains("waiting on")
    });
    signal(gw.pid(), "QUIT");
    let status = gw.wait_exit(Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "the old process did not exit cleanly ({status:?}); log:\n{}",
        gw.log()
    );
    assert!(
        gw.log().contains("shut down: every client connection is closed"),
        "the old process exited once drained, not at the end of its grace period; log:\n{}",
        gw.log()
    );
    load.wait_for_more(100, "after the upgrade");
    assert!(new.running(), "the new process serves; its log:\n{}", new.log());
    new
}

/// Stops the load; fails the test with the failed requests and both logs.
fn no_failures(load: Load, gw: &Gateway, new: &Replacement) {
    let (failures, ok) = load.stop();
    assert!(
        failures.is_empty(),
        "{} failed requests (of {ok} good): {failures:#?}\nold log:\n{}\nnew log:\n{}",
        failures.len(),
        gw.log(),
        new.log()
    );
}

#[test]
fn certificate_swap_key_rotation_and_upgrade_under_load_fail_no_request() {
    let (old_cert, old_key) = common::self_signed();
    let (new_cert, new_key) = common::self_signed();
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("cert.pem"), &old_cert);
    write(&dir.path().join("key.pem"), &old_key);
    let (port, metrics) = (common::free_port(), common::free_port());
    write(&dir.path().join("gateway.toml"), &config(port, metrics, "", true));
    let mut gw = Gateway::start_in_tls(dir, port, &old_cert);
    let base = gw.base.clone();
    // Only the load holds keep-alive connections: the test's own requests each open one, so
    // none waits idle when the old process drains (an idle one would keep it for the grace
    // period, and be closed when that ends).
    gw.http = client(&[&old_cert], false);
    let both = client(&[&old_cert, &new_cert], false);

    // A token from before every step, on a key the load does not touch.
    let before_all_jwt = token(&both, &base, "jwt-app");
    let old_kid = verify(&both, &base, &before_all_jwt, Algorithm::RS256);

    let load_client = |client_id, scope, reuse| LoadClient {
        client_id,
        scope,
        http: client(&[&old_cert, &new_cert], reuse),
    };
    let h2 = client_h2(&[&old_cert, &new_cert]);
    let r = h2
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let load = Load::start(
        &base,
        vec![
            load_client("jwt-app", "a", true),
            load_client("jwt-app", "b", true),
            load_client("opaque-app", "a", true),
            load_client("other-app", "c", true),
            load_client("jwt-app", "c", false),
            load_client("opaque-app", "b", false),
            LoadClient {
                client_id: "other-app",
                scope: "a",
                http: h2,
            },
        ],
    );
    load.tally.wait_for_more(50, "at the start");

    // (a) The certificate renewed: new connections get the new one.
    write(&gw.dir.path().join("cert.pem"), &new_cert);
    write(&gw.dir.path().join("key.pem"), &new_key);
    signal(gw.pid(), "HUP");
    let only_new = client(&[&new_cert], false);
    let metadata_url = format!("{base}/.well-known/oauth-authorization-server");
    gw.eventually(30, "the new certificate served", || {
        only_new.get(&metadata_url).send().is_ok_and(|r| r.status() == 200)
    });
    load.tally.wait_for_more(50, "after the certificate swap");

    // (b) The JWT signing key rotated: a new ES256 key, the old one listed as previous.
    let old_file = gw.dir.path().join("data/jwt-rs256.pem");
    let rotated = format!(
        "jwt_algorithm = \"ES256\"\njwt_signing_key = \"new-es256.pem\"\njwt_previous_keys = [\"{}\"]",
        old_file.display()
    );
    write(&gw.conf_path(), &config(port, metrics, &rotated, true));
    gw.eventually(30, "the JWKS publishing both keys", || {
        jwks(&both, &base).keys.len() == 2
    });
    load.tally.wait_for_more(50, "after the key rotation");
    let rotated_jwt = token(&both, &base, "other-app");
    let new_kid = verify(&both, &base, &rotated_jwt, Algorithm::ES256);
    assert_ne!(new_kid, old_kid);
    assert_eq!(verify(&both, &base, &before_all_jwt, Algorithm::RS256), old_kid);
    assert_eq!(
        api(&both, &base, &before_all_jwt),
        200,
        "a token signed with the old key passes"
    );
    let before_upgrade_opaque = token(&both, &base, "opaque-app");

    // (c) The graceful upgrade.
    let new = upgrade(&mut gw, &load.tally);
    no_failures(load, &gw, &new);

    // The new process knows what the old one issued, publishes both keys, presents the new
    // certificate, and serves the metrics listener the old one handed over.
    assert_eq!(api(&both, &base, &before_all_jwt), 200);
    assert_eq!(api(&both, &base, &rotated_jwt), 200);
    assert_eq!(api(&both, &base, &before_upgrade_opaque), 200);
    assert_eq!(verify(&both, &base, &before_all_jwt, Algorithm::RS256), old_kid);
    assert_eq!(verify(&both, &base, &rotated_jwt, Algorithm::ES256), new_kid);
    assert_eq!(only_new.get(&metadata_url).send().unwrap().status(), 200);
    let health = reqwest::blocking::get(format!("http://127.0.0.1:{metrics}/healthz")).unwrap();
    assert_eq!(health.status(), 200);
}

/// Cluster mode: on a PostgreSQL store the same upgrade loses no request, and the new process
/// knows the tokens the old one issued and revoked.
#[test]
fn an_upgrade_on_a_postgres_store_fails_no_request() {
    let db = common::pg::TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics) = (common::free_port(), common::free_port());
    let text = format!(
        "{}\n[store]\nurl = \"{}\"\npool_size = 4\n",
        config(port, metrics, "", false),
        db.url
    );
    write(&dir.path().join("gateway.toml"), &text);
    let mut gw = Gateway::start_in(dir, port);
    gw.http = client(&[], false);
    let base = gw.base.clone();
    let kept = token(&gw.http, &base, "opaque-app");
    let revoked = token(&gw.http, &base, "jwt-app");
    assert_eq!(gw.revoke("jwt-app", &revoked), 200);

    let load_client = |client_id, scope, reuse| LoadClient {
        client_id,
        scope,
        http: client(&[], reuse),
    };
    let load = Load::start(
        &base,
        vec![
            load_client("jwt-app", "a", true),
            load_client("opaque-app", "a", true),
            load_client("other-app", "c", false),
        ],
    );
    load.tally.wait_for_more(50, "at the start");
    let new = upgrade(&mut gw, &load.tally);
    no_failures(load, &gw, &new);

    assert_eq!(api(&gw.http, &base, &kept), 200);
    assert_eq!(api(&gw.http, &base, &revoked), 401);
    let health = reqwest::blocking::get(format!("http://127.0.0.1:{metrics}/healthz")).unwrap();
    assert_eq!(health.status(), 200, "the new process is in touch with the database");
}

/// `--upgrade` with no gateway handing over its sockets exits non-zero before it opens the store;
/// an upgrade socket path too long for a Unix socket is refused, naming the setting.
#[test]
fn an_upgrade_with_nothing_to_take_over_exits_without_opening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("gateway.toml");
    let text = common::config_text(common::free_port(), &Setup::default());
    let run = || {
        Command::new(common::bin())
            .arg("--conf")
            .arg(&conf)
            .arg("--upgrade")
            .env("RUST_LOG", "tokengate=info,warn")
            .output()
            .unwrap()
    };

    let long = format!("upgrade_sock = \"{}\"", "s".repeat(120));
    write(&conf, &common::with_server_lines(&text, &long));
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("server.upgrade_sock: ") && stderr.contains("longer than"),
        "{stderr}"
    );

    // The data folder of a gateway that ran before, none running now.
    std::fs::create_dir(dir.path().join("data")).unwrap();
    write(&conf, &text);
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("waiting on"), "{stderr}");
    assert!(
        !dir.path().join("data/tokens.db").exists(),
        "the store was opened before the sockets came"
    );
}
