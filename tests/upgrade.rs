//! Zero downtime under load: while clients keep requesting tokens and calling a bearer route
//! over HTTPS, the certificate is renewed (files rewritten, SIGHUP), the JWT signing key is
//! rotated (config saved with a new key, the old one in `jwt_previous_keys`) and the gateway is
//! replaced by a new process (`--upgrade`, then SIGQUIT to the old one). No request fails: no
//! refused or reset connection, no answer but 2xx; tokens issued before each step stay valid.
//!
//! The load's clients are HTTP/1.1 with keep-alive; some reuse one connection, some open one
//! per request (so connections arrive while the listener changes hands). A client that gets
//! `Connection: close` opens a new connection: that is how a server ends a keep-alive
//! connection without a race, and no failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{at, write, Gateway, Setup, SECRET};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::blocking::Client;
use serde_json::Value;

/// A client over HTTP/1.1 that trusts the certificates `pems`; `reuse`: keep-alive (else a new
/// connection per request).
fn client(pems: &[&str], reuse: bool) -> Client {
    let mut b = Client::builder()
        .https_only(true)
        .http1_only()
        .timeout(Duration::from_secs(120));
    for pem in pems {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    b = if reuse {
        b.pool_max_idle_per_host(1)
    } else {
        b.pool_max_idle_per_host(0)
    };
    b.build().unwrap()
}

/// The gateway's config: HTTPS on `port`, metrics on `metrics`, a grace period long enough for
/// the old process's connections to end with an answer, and `oauth` lines.
fn config(port: u16, metrics: u16, oauth: &str) -> String {
    let setup = Setup {
        oauth: oauth.into(),
        ..Setup::default()
    };
    let text = common::config_text(port, &setup)
        .replace("issuer = \"http://", "issuer = \"https://")
        .replace("grace_period_secs = 0", "grace_period_secs = 60");
    common::with_server_lines(
        &text,
        &format!("tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\nmetrics_listen = \"127.0.0.1:{metrics}\""),
    )
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }

    /// Waits until `more` requests succeeded after this call (the load goes on through a step);
    /// panics with the failures when it does not within two minutes.
    fn wait_for_more(&self, more: u64, step: &str) {
        let target = self.ok.load(Ordering::SeqCst) + more;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.ok.load(Ordering::SeqCst) < target {
            assert!(
                Instant::now() < deadline,
                "the load made no progress {step}; failures: {:?}",
                self.failures.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One load client until `stop`: a token (its own key, so single mode revokes only its own
/// earlier token), then a bearer call with it, again and again.
fn load(
    base: String,
    http: Client,
    client_id: &'static str,
    scope: &'static str,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    while !stop.load(Ordering::SeqCst) {
        let answer = http
            .post(format!("{base}/oauth2/token"))
            .basic_auth(client_id, Some(SECRET))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send();
        let token = match answer {
            Ok(r) if r.status() == 200 => match r.json::<Value>() {
                Ok(v) => v["access_token"].as_str().unwrap().to_string(),
                Err(e) => {
                    tally.fail(format!("token answer of {client_id}: {e:?}"));
                    continue;
                }
            },
            Ok(r) => {
                tally.fail(format!("token request of {client_id}: {}", r.status()));
                continue;
            }
            Err(e) => {
                tally.fail(format!("token request of {client_id}: {e:?}"));
                continue;
            }
        };
        tally.ok.fetch_add(1, Ordering::SeqCst);
        match http.get(format!("{base}/api/load")).bearer_auth(&token).send() {
            Ok(r) if r.status() == 200 => match r.bytes() {
                Ok(_) => {
                    tally.ok.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => tally.fail(format!("api answer of {client_id}: {e:?}")),
            },
            Ok(r) => tally.fail(format!("api call of {client_id}: {}", r.status())),
            Err(e) => tally.fail(format!("api call of {client_id}: {e:?}")),
        }
    }
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
struct Replacement(Child);

impl Drop for Replacement {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn certificate_swap_key_rotation_and_upgrade_under_load_fail_no_request() {
    let (old_cert, old_key) = common::self_signed();
    let (new_cert, new_key) = common::self_signed();
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("cert.pem"), &old_cert);
    write(&dir.path().join("key.pem"), &old_key);
    let (port, metrics) = (common::free_port(), common::free_port());
    write(&dir.path().join("gateway.toml"), &config(port, metrics, ""));
    let mut gw = Gateway::start_in_tls(dir, port, &old_cert);
    let base = gw.base.clone();
    // Only the load holds keep-alive connections: the test's own requests each open one, so
    // none waits idle when the old process drains (an idle one would keep it for the grace
    // period, and be closed when that ends).
    gw.http = client(&[&old_cert], false);
    let both = client(&[&old_cert, &new_cert], false);

    // Tokens from before every step, on keys the load does not touch.
    let before_all_jwt = token(&both, &base, "jwt-app");
    let old_kid = verify(&both, &base, &before_all_jwt, Algorithm::RS256);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: [(&str, &str, bool); 6] = [
        ("jwt-app", "a", true),
        ("jwt-app", "b", true),
        ("opaque-app", "a", true),
        ("other-app", "c", true),
        ("jwt-app", "c", false),
        ("opaque-app", "b", false),
    ];
    let threads: Vec<_> = clients
        .into_iter()
        .map(|(client_id, scope, reuse)| {
            let (base, http) = (base.clone(), client(&[&old_cert, &new_cert], reuse));
            let (stop, tally) = (stop.clone(), tally.clone());
            std::thread::spawn(move || load(base, http, client_id, scope, stop, tally))
        })
        .collect();
    tally.wait_for_more(50, "at the start");

    // (a) The certificate renewed: new connections get the new one.
    write(&gw.dir.path().join("cert.pem"), &new_cert);
    write(&gw.dir.path().join("key.pem"), &new_key);
    signal(gw.pid(), "HUP");
    let only_new = client(&[&new_cert], false);
    let metadata_url = format!("{base}/.well-known/oauth-authorization-server");
    gw.eventually(30, "the new certificate served", || {
        only_new.get(&metadata_url).send().is_ok_and(|r| r.status() == 200)
    });
    tally.wait_for_more(50, "after the certificate swap");

    // (b) The JWT signing key rotated: a new ES256 key, the old one listed as previous.
    let old_file = gw.dir.path().join("data/jwt-rs256.pem");
    let rotated = format!(
        "jwt_algorithm = \"ES256\"\njwt_signing_key = \"new-es256.pem\"\njwt_previous_keys = [\"{}\"]",
        old_file.display()
    );
    write(&gw.conf_path(), &config(port, metrics, &rotated));
    gw.eventually(30, "the JWKS publishing both keys", || {
        jwks(&both, &base).keys.len() == 2
    });
    tally.wait_for_more(50, "after the key rotation");
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

    // (c) The graceful upgrade: a new process takes the listening sockets, the old one gets
    // SIGQUIT, finishes its requests and exits; the new one loads the store after that.
    let new_log = gw.dir.path().join("new.log");
    let child = Command::new(common::bin())
        .arg("--conf")
        .arg(gw.conf_path())
        .arg("--upgrade")
        .env("RUST_LOG", "tokengate=debug,pingora_core=info,warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&new_log).unwrap())
        .spawn()
        .unwrap();
    let mut new = Replacement(child);
    let new_log_text = || std::fs::read_to_string(&new_log).unwrap_or_default();
    gw.eventually(30, "the new process waiting for the sockets", || {
        new_log_text().contains("waiting on")
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
        "the old process exited once drained; log:\n{}",
        gw.log()
    );
    tally.wait_for_more(100, "after the upgrade");
    assert!(
        new.0.try_wait().unwrap().is_none(),
        "the new process serves; its log:\n{}",
        new_log_text()
    );

    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let failures = tally.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests (of {} good): {failures:#?}\nold log:\n{}\nnew log:\n{}",
        failures.len(),
        tally.ok.load(Ordering::SeqCst),
        gw.log(),
        new_log_text()
    );

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
    assert!(new.0.try_wait().unwrap().is_none());
}
