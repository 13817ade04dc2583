//! The admin API (`server.admin_listen`) on the real gateway: refused without the admin
//! credential; a client's, a token id's and an instant's tokens listed (never their text) and
//! revoked, durably; the `tokengate admin` command driving it; the credential following a
//! reload; and in a cluster, a client revoked at one node refused at the node that issued its
//! tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::cluster::{Cluster, NodeOptions};
use common::{at, bin, config_text, free_port, with_server_lines, write, Gateway, Setup};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ADMIN_TOKEN: &str = "admin-token-of-the-tests-0123456789abcdef";

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Multi mode for both formats (every request adds a token) and the admin credential.
fn setup() -> Setup {
    let mut setup = Setup::policy("enable = true", "enable = true");
    setup.extra = format!(
        "{}\n[admin]\ntoken_sha256 = \"{}\"\n",
        setup.extra,
        sha256_hex(ADMIN_TOKEN)
    );
    setup
}

/// A gateway with the admin API and metrics on ports of their own: it, the admin url and the
/// metrics url.
fn start() -> (Gateway, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (port, aport, mport) = (free_port(), free_port(), free_port());
    let text = with_server_lines(
        &config_text(port, &setup()),
        &format!("admin_listen = \"127.0.0.1:{aport}\"\nmetrics_listen = \"127.0.0.1:{mport}\""),
    );
    write(&dir.path().join("gateway.toml"), &text);
    (
        Gateway::start_in(dir, port),
        format!("http://127.0.0.1:{aport}"),
        format!("http://127.0.0.1:{mport}"),
    )
}

/// `GET /admin/tokens?query` with `token`: status and body.
fn list(gw: &Gateway, admin: &str, query: &str, token: Option<&str>) -> (u16, String) {
    let mut r = gw.http.get(format!("{admin}/admin/tokens?{query}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// The tokens a listing as the admin answers.
fn listed(gw: &Gateway, admin: &str, query: &str) -> Vec<Value> {
    let (status, body) = list(gw, admin, query, Some(ADMIN_TOKEN));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["tokens"].as_array().unwrap().clone()
}

/// `POST /admin/revoke` as the admin: status and JSON answer.
fn revoke(gw: &Gateway, admin: &str, body: &Value) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{admin}/admin/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// `tokengate admin --url <admin> <args>` with the admin token in the environment and `stdin`.
fn cli(admin: &str, conf: &std::path::Path, args: &[&str], token: &str, stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .arg("--conf")
        .arg(conf)
        .arg("admin")
        .arg("--url")
        .arg(admin)
        .args(args)
        .env("TOKENGATE_ADMIN_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn without_the_admin_credential_nothing_is_answered() {
    let (gw, admin, _) = start();
    let token = at(&gw.cc("jwt-app")).to_string();
    for credential in [None, Some("wrong"), Some("")] {
        let (status, body) = list(&gw, &admin, "client_id=jwt-app", credential);
        assert_eq!(status, 401, "{credential:?}: {body}");
        assert!(!body.contains("jwt-app"), "{body}");
    }
    let r = gw
        .http
        .post(format!("{admin}/admin/revoke"))
        .json(&json!({"client_id": "jwt-app"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(gw.call("/api/x", &token), 200, "nothing was revoked");
    // The credential is the admin's, not a client's token.
    assert_eq!(list(&gw, &admin, "", Some(&token)).0, 401);

    // With it: bad requests are 400 with a JSON error, other paths 404.
    for body in [json!({}), json!({"client": "jwt-app"}), json!({"token_id": "abc"})] {
        let (status, answer) = revoke(&gw, &admin, &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"], "invalid_request");
    }
    let r = gw
        .http
        .post(format!("{admin}/admin/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .body("not json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        list(&gw, &admin, "client=jwt-app", Some(ADMIN_TOKEN)).0,
        400,
        "a typo lists nothing"
    );
    let r = gw
        .http
        .get(format!("{admin}/admin/other"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(!gw.log().contains(ADMIN_TOKEN));
}

#[test]
fn a_leaked_client_is_revoked_durably_and_the_others_keep_their_tokens() {
    let (gw, admin, metrics) = start();
    let mut leaked: Vec<String> = (0..3).map(|_| at(&gw.cc("jwt-app")).to_string()).collect();
    let alice = gw.password("jwt-app", "alice");
    leaked.push(at(&alice).to_string());
    let kept = [
        at(&gw.cc("other-app")).to_string(),
        at(&gw.cc("opaque-app")).to_string(),
    ];

    let (status, body) = list(&gw, &admin, "client_id=jwt-app", Some(ADMIN_TOKEN));
    assert_eq!(status, 200, "{body}");
    for token in leaked
        .iter()
        .chain([alice["refresh_token"].as_str().unwrap().to_string()].iter())
    {
        assert!(!body.contains(token.as_str()), "a token's text in the listing: {body}");
    }
    let tokens: Vec<Value> = serde_json::from_str::<Value>(&body).unwrap()["tokens"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(tokens.len(), 5, "4 access tokens and alice's refresh token: {body}");
    let ids: Vec<&str> = tokens.iter().map(|t| t["id"].as_str().unwrap()).collect();
    for token in &leaked {
        assert!(ids.contains(&sha256_hex(token).as_str()), "a JWT's id is its SHA-256");
    }
    // The listing is in order of issue, and tokens issued in one second may come in any order.
    let first_id = sha256_hex(&leaked[0]);
    let first = tokens.iter().find(|t| t["id"] == first_id.as_str()).unwrap();
    assert_eq!(first["format"], "jwt");
    assert_eq!(first["client_id"], "jwt-app");
    assert_eq!(first["sub"], Value::Null, "a client_credentials token has no user");
    assert_eq!(first["aud"], gw.base.as_str(), "the default audience: the issuer");
    assert!(first["exp"].as_u64().unwrap() > first["iat"].as_u64().unwrap());
    let of_alice = listed(&gw, &admin, "client_id=jwt-app&subject=alice");
    assert_eq!(of_alice.len(), 2);
    assert!(of_alice.iter().all(|t| t["sub"] == "alice"));
    assert!(of_alice.iter().any(|t| t["token_type"] == "refresh_token"));

    let (status, answer) = revoke(&gw, &admin, &json!({"client_id": "jwt-app"}));
    assert_eq!((status, &answer), (200, &json!({"revoked": 5})));
    for token in &leaked {
        assert_eq!(gw.call("/api/x", token), 401, "a revoked token still passes");
    }
    for token in &kept {
        assert_eq!(gw.call("/api/x", token), 200, "another client's token was revoked");
    }
    let refresh = gw.token(
        "jwt-app",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", alice["refresh_token"].as_str().unwrap()),
        ],
    );
    assert_eq!(refresh.status(), 400, "the refresh token is revoked too");
    assert!(listed(&gw, &admin, "client_id=jwt-app").is_empty());

    let text = gw
        .http
        .get(format!("{metrics}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.contains(r#"tokengate_admin_revocations_total{filter="client_id"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tokengate_tokens_revoked_total{cause="admin"} 5"#),
        "{text}"
    );
    let log = gw.log();
    let fingerprint = &sha256_hex(ADMIN_TOKEN)[..8];
    assert!(
        log.contains(&format!(
            "admin token {fingerprint} revoked 5 tokens by client_id=\"jwt-app\""
        )),
        "{log}"
    );
    assert!(!log.contains(ADMIN_TOKEN));

    // Killed at once: the answer was sent after the revocation was on disk.
    let port = gw.port;
    let dir = gw.kill9();
    let gw = Gateway::start_in(dir, port);
    for token in &leaked {
        assert_eq!(gw.call("/api/x", token), 401, "a revocation lost in a restart");
    }
    for token in &kept {
        assert_eq!(gw.call("/api/x", token), 200);
    }
}

#[test]
fn the_cli_revokes_a_token_by_its_id_and_tokens_issued_before_an_instant() {
    let (gw, admin, _) = start();
    let conf = gw.conf_path();
    let opaque = at(&gw.cc("opaque-app")).to_string();
    let second = at(&gw.cc("opaque-app")).to_string();
    let jwt = at(&gw.cc("jwt-app")).to_string();

    // The id of a token the operator holds, without sending the token anywhere.
    let out = cli(&admin, &conf, &["token-id"], "", &format!("{opaque}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let listing = stdout_json(&cli(
        &admin,
        &conf,
        &["tokens", "--client-id", "opaque-app"],
        ADMIN_TOKEN,
        "",
    ));
    let ids: Vec<&str> = listing["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&id.as_str()), "token-id gives the id the listing shows");
    let out = cli(&admin, &conf, &["token-id"], "", &format!("{jwt}\n"));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), sha256_hex(&jwt));

    let answer = stdout_json(&cli(&admin, &conf, &["revoke", "--token-id", &id], ADMIN_TOKEN, ""));
    assert_eq!(answer, json!({"revoked": 1}));
    assert_eq!(gw.call("/api/x", &opaque), 401);
    assert_eq!(gw.call("/api/x", &second), 200, "only the token named");

    // Issued before the instant of `second`'s `iat`: not it; one second later: it and the JWT.
    let iat = listed(&gw, &admin, "client_id=opaque-app")[0]["iat"].as_u64().unwrap();
    let jwt_iat = listed(&gw, &admin, "client_id=jwt-app")[0]["iat"].as_u64().unwrap();
    let before = iat.min(jwt_iat).to_string();
    let answer = stdout_json(&cli(
        &admin,
        &conf,
        &["revoke", "--issued-before", &before],
        ADMIN_TOKEN,
        "",
    ));
    assert_eq!(answer, json!({"revoked": 0}));
    assert_eq!(gw.call("/api/x", &second), 200);
    let after = (iat.max(jwt_iat) + 1).to_string();
    let answer = stdout_json(&cli(
        &admin,
        &conf,
        &["revoke", "--issued-before", &after],
        ADMIN_TOKEN,
        "",
    ));
    assert_eq!(answer, json!({"revoked": 2}));
    assert_eq!(gw.call("/api/x", &second), 401);
    assert_eq!(gw.call("/api/x", &jwt), 401);

    // A wrong credential: the 401 is printed and the command fails.
    let out = cli(&admin, &conf, &["tokens", "--client-id", "jwt-app"], "wrong", "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("invalid_token"));
    let out = cli(&admin, &conf, &["revoke"], ADMIN_TOKEN, "");
    assert!(!out.status.success(), "a revocation must name its tokens");
}

#[test]
fn the_admin_credential_follows_a_reload() {
    let (gw, admin, _) = start();
    let conf = gw.conf_path();
    let text = std::fs::read_to_string(&conf).unwrap();
    let next = "the-next-admin-token";
    write(&conf, &text.replace(&sha256_hex(ADMIN_TOKEN), &sha256_hex(next)));
    gw.eventually(10, "the new admin token accepted", || {
        list(&gw, &admin, "", Some(next)).0 == 200
    });
    assert_eq!(
        list(&gw, &admin, "", Some(ADMIN_TOKEN)).0,
        401,
        "the old one is refused"
    );
}

#[test]
fn a_client_revoked_at_one_node_is_refused_at_the_node_that_issued_its_tokens() {
    let aport = free_port();
    let with_admin = NodeOptions {
        server: format!("admin_listen = \"127.0.0.1:{aport}\""),
        ..NodeOptions::default()
    };
    let c = Cluster::start_with(setup(), &[with_admin, NodeOptions::default()]);
    let admin = format!("http://127.0.0.1:{aport}");
    let (a, b) = (c.gw(0), c.gw(1));
    let mut leaked: Vec<String> = (0..3).map(|_| at(&b.cc("jwt-app")).to_string()).collect();
    leaked.push(at(&b.password("jwt-app", "alice")).to_string());
    leaked.push(at(&b.cc("jwt-app")).to_string());
    let kept = at(&b.cc("other-app")).to_string();

    assert_eq!(listed(a, &admin, "client_id=jwt-app").len(), 6, "A lists what B issued");
    let (status, answer) = revoke(a, &admin, &json!({"client_id": "jwt-app"}));
    assert_eq!((status, &answer), (200, &json!({"revoked": 6})), "{}", c.logs());
    c.eventually(10, "B refuses every token of the revoked client", || {
        leaked.iter().all(|t| b.call("/api/x", t) == 401)
    });
    assert!(leaked.iter().all(|t| a.call("/api/x", t) == 401));
    assert_eq!(b.call("/api/x", &kept), 200, "another client's token at B");
    assert_eq!(a.call("/api/x", &kept), 200);
}

#[test]
fn a_gateway_whose_admin_port_is_taken_refuses_to_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let aport = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text = with_server_lines(
        &config_text(free_port(), &setup()),
        &format!("admin_listen = \"127.0.0.1:{aport}\""),
    );
    let conf = dir.path().join("gateway.toml");
    write(&conf, &text);
    let out = Command::new(bin())
        .arg("--conf")
        .arg(&conf)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.admin_listen: cannot listen on"), "{stderr}");
    // Without its credential the config is refused, naming the key.
    let admin_table = format!("[admin]\ntoken_sha256 = \"{}\"", sha256_hex(ADMIN_TOKEN));
    assert!(text.contains(&admin_table));
    write(&conf, &text.replace(&admin_table, ""));
    let out = Command::new(bin())
        .arg("--conf")
        .arg(&conf)
        .arg("--check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("admin.token_sha256: is required"), "{stderr}");
}
