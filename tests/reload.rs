//! Hot reload against the real binary: saving `gateway.toml` applies under traffic, a broken file
//! changes nothing. Every test polls for the new behaviour; none sleeps a fixed time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{at, config_text, write, Gateway, Setup};

const MULTI: &str = "enable = true";
/// Polling budget for a save to apply (it applies within a second).
const APPLY_SECS: u64 = 5;

/// JWT multi mode is in force: two requests on a fresh key leave the first token active.
fn jwt_multi(gw: &Gateway, scope: &str) -> bool {
    let a = gw.cc_scope("jwt-app", scope);
    let _b = gw.cc_scope("jwt-app", scope);
    gw.api(&a) == 200
}

/// Opaque multi mode is in force: two requests on a key get two tokens.
fn opaque_multi(gw: &Gateway, scope: &str) -> bool {
    at(&gw.cc_scope("opaque-app", scope)) != at(&gw.cc_scope("opaque-app", scope))
}

/// The config text with the `[[clients]]` entry of `id` taken out.
fn without_client(text: &str, id: &str) -> String {
    let start = text.find(&format!("[[clients]]\nid = \"{id}\"")).unwrap();
    let len = text[start + 2..].find("[[").unwrap() + 2;
    format!("{}{}", &text[..start], &text[start + len..])
}

/// GET `path` with a bearer token, without panicking on transport errors (traffic threads).
fn status(gw: &Gateway, path: &str, token: &str) -> u16 {
    gw.http
        .get(format!("{}{path}", gw.base))
        .bearer_auth(token)
        .send()
        .map_or(0, |r| r.status().as_u16())
}

/// A token request that answers 2xx, or `None`.
fn try_cc(gw: &Gateway, client: &str, scope: &str) -> Option<String> {
    let r = gw
        .http
        .post(format!("{}/oauth2/token", gw.base))
        .basic_auth(client, Some(common::SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: serde_json::Value = r.json().ok()?;
    v["access_token"].as_str().map(str::to_string)
}

/// Stops the traffic threads when the test body ends, panics included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Checklist item 15 (docs/renewal-policy.md, section 3): each request follows the policy in force when it
/// arrives; tokens issued before a switch stay as they are; traffic sees no error meanwhile.
#[test]
fn single_multi_single_under_concurrent_traffic() {
    let gw = Gateway::start(Setup::default());
    let single = config_text(gw.port, &Setup::default());
    let multi = config_text(gw.port, &Setup::policy(MULTI, MULTI));
    let steady = gw.cc("other-app");
    let stop = AtomicBool::new(false);
    let (requests, failures) = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let traffic: Vec<_> = (0..3)
            .map(|i| {
                let (gw, stop, steady) = (&gw, &stop, at(&steady));
                s.spawn(move || {
                    let (mut n, mut bad) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let ok = match i {
                            // API traffic with a token issued before every switch.
                            0 => status(gw, "/api/t", steady) == 200,
                            // Token traffic on keys of their own, then a call with the answer:
                            // in either mode the token just issued is active.
                            1 => try_cc(gw, "opaque-app", "b").is_some_and(|t| status(gw, "/api/t", &t) == 200),
                            _ => try_cc(gw, "jwt-app", "c").is_some_and(|t| status(gw, "/api/t", &t) == 200),
                        };
                        n += 1;
                        bad += u64::from(!ok);
                    }
                    (n, bad)
                })
            })
            .collect();

        for _round in 0..2 {
            write(&gw.conf_path(), &multi);
            gw.eventually(APPLY_SECS, "multi mode", || jwt_multi(&gw, "a"));
            assert!(opaque_multi(&gw, "a"), "one file, one swap: opaque is multi too");
            let m: Vec<_> = (0..3).map(|_| gw.cc("jwt-app")).collect();
            assert!(m.iter().all(|t| gw.api(t) == 200), "multi: every JWT stays active");
            let o1 = gw.cc("opaque-app");
            let o2 = gw.cc("opaque-app");
            assert_ne!(at(&o1), at(&o2), "multi: a new opaque token each time");

            write(&gw.conf_path(), &single);
            gw.eventually(APPLY_SECS, "single mode", || !jwt_multi(&gw, "a"));
            assert!(!opaque_multi(&gw, "a"), "one file, one swap: opaque is single too");
            assert!(
                m.iter().all(|t| gw.api(t) == 200),
                "tokens issued under multi stay as they are until the key's next request"
            );
            assert_eq!(gw.api(&o1), 200);
            let next = gw.cc("jwt-app");
            assert!(
                m.iter().all(|t| gw.api(t) == 401),
                "the next JWT request revokes them all"
            );
            assert_eq!(gw.api(&next), 200);
            let got = gw.cc("opaque-app");
            assert_eq!(at(&got), at(&o2), "the next opaque request returns the newest");
        }
        stop.store(true, Ordering::Relaxed);
        traffic
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |(n, b), (n2, b2)| (n + n2, b + b2))
    });
    assert!(requests > 0, "the traffic threads ran");
    assert_eq!(
        failures, 0,
        "{failures} of {requests} requests failed across the reloads"
    );
}

/// The `--check` message for the file now at `gw.conf_path()`.
fn check_message(gw: &Gateway) -> String {
    let out = std::process::Command::new(common::bin())
        .arg("--conf")
        .arg(gw.conf_path())
        .arg("--check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "--check refuses the file");
    let msg = String::from_utf8(out.stderr).unwrap();
    msg.trim_end().strip_prefix("tokengate: ").unwrap().to_string()
}

/// The text without leading spaces on its lines (the logger indents continuation lines).
fn unindent(text: &str) -> String {
    text.lines().map(str::trim_start).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_broken_file_changes_nothing_and_logs_the_check_message() {
    let gw = Gateway::start(Setup::policy(MULTI, ""));
    let good = config_text(gw.port, &Setup::policy(MULTI, ""));
    let t = gw.cc("jwt-app");
    let wso2_paste = Setup::policy(
        "enable = true\nallowed_grant_types = [“client_credentials”, “password”]",
        "",
    );
    let cases = [
        (format!("{good}\n[oauth\n"), "TOML parse error at line"),
        (good.replace(MULTI, "enabled = true"), "unknown field `enabled`"),
        (
            config_text(
                gw.port,
                &Setup::policy("enable = true\nallowed_grant_types = [\"implicit\"]", ""),
            ),
            "oauth.jwt.renew_token_without_revoking_existing.allowed_grant_types",
        ),
        (
            good.replace("path_prefix = \"/public\"", "path_prefix = \"public\""),
            "routes[2].path_prefix",
        ),
        (config_text(gw.port, &wso2_paste), "needs straight quotes"),
    ];
    for (text, expected) in &cases {
        write(&gw.conf_path(), text);
        let msg = check_message(&gw);
        assert!(msg.contains(expected), "--check: {expected}: {msg}");
        let logged = unindent(&format!("refused, the config in force stays: {msg}"));
        gw.eventually(APPLY_SECS, expected, || unindent(&gw.log()).contains(&logged));
        assert!(jwt_multi(&gw, "a"), "the old policy is still in force");
        assert_eq!(gw.api(&t), 200);
    }
    write(&gw.conf_path(), &config_text(gw.port, &Setup::default()));
    gw.eventually(APPLY_SECS, "the fixed file in force", || !jwt_multi(&gw, "a"));
}

/// Mounts `text` as Kubernetes mounts a ConfigMap key: `gateway.toml -> ..data/gateway.toml`,
/// `..data -> ..<version>`; a later call swaps `..data` to a new folder the way the kubelet's
/// atomic writer does (a new folder, a new symlink, renamed over `..data`, the old folder gone).
fn mount_configmap(dir: &std::path::Path, version: &str, text: &str) {
    let folder = dir.join(format!("..{version}"));
    std::fs::create_dir(&folder).unwrap();
    write(&folder.join("gateway.toml"), text);
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::os::unix::fs::symlink(format!("..{version}"), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    match old {
        Some(old) => std::fs::remove_dir_all(dir.join(old)).unwrap(),
        None => std::os::unix::fs::symlink("..data/gateway.toml", dir.join("gateway.toml")).unwrap(),
    }
}

#[test]
fn a_kubernetes_configmap_update_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = config_text(port, &Setup::default());
    mount_configmap(dir.path(), "2026_12_02_09_00_00.1", &text);
    let gw = Gateway::start_in(dir, port);
    let t = gw.cc_scope("jwt-app", "a");
    assert_eq!(gw.call("/scoped/x", at(&t)), 403, "the route needs scope c");
    mount_configmap(
        gw.dir.path(),
        "2026_12_02_09_05_00.2",
        &text.replace("scopes = [\"c\"]\n", "scopes = [\"a\"]\n"),
    );
    gw.eventually(APPLY_SECS, "the swapped ConfigMap in force", || {
        gw.call("/scoped/x", at(&t)) == 200
    });
}

#[test]
fn a_symlinked_config_edited_at_its_target_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = config_text(port, &Setup::default());
    let target = elsewhere.path().join("tokengate-v1.toml");
    write(&target, &text);
    std::os::unix::fs::symlink(&target, dir.path().join("gateway.toml")).unwrap();
    let gw = Gateway::start_in(dir, port);
    let t = gw.cc_scope("jwt-app", "a");
    assert_eq!(gw.call("/scoped/x", at(&t)), 403, "the route needs scope c");
    write(&target, &text.replace("scopes = [\"c\"]\n", "scopes = [\"a\"]\n"));
    gw.eventually(APPLY_SECS, "the edited target in force", || {
        gw.call("/scoped/x", at(&t)) == 200
    });
}

#[test]
fn editor_saves_by_rename_and_by_recreating_are_seen() {
    let gw = Gateway::start(Setup::default());
    let text = config_text(gw.port, &Setup::default());
    let t = gw.cc_scope("jwt-app", "a");
    assert_eq!(gw.call("/scoped/x", at(&t)), 403, "the route needs scope c");
    // Write a temporary file beside it, then rename it over the config (atomic save).
    let dir = gw.dir.path();
    let tmp = dir.join(".gateway.toml.swp");
    write(&tmp, &text.replace("scopes = [\"c\"]\n", "scopes = [\"a\"]\n"));
    std::fs::rename(&tmp, gw.conf_path()).unwrap();
    gw.eventually(APPLY_SECS, "the route's new scope", || {
        gw.call("/scoped/x", at(&t)) == 200
    });
    // Move the file away as a backup, then write a new one (a new inode at the same name).
    assert_eq!(gw.call("/v2/x", at(&t)), 404);
    std::fs::rename(gw.conf_path(), dir.join("gateway.toml~")).unwrap();
    let upstream = common::upstream();
    write(
        &gw.conf_path(),
        &format!("{text}[[routes]]\npath_prefix = \"/v2\"\nupstream = \"{upstream}\"\n"),
    );
    gw.eventually(APPLY_SECS, "the new route", || gw.call("/v2/x", at(&t)) == 200);
    assert_eq!(gw.call("/scoped/x", at(&t)), 403, "the whole file applies");
}

#[test]
fn a_client_removed_from_the_file_can_no_longer_use_its_tokens() {
    let gw = Gateway::start(Setup::default());
    let text = config_text(gw.port, &Setup::default());
    let gone = gw.cc("other-app");
    let gone_user = gw.password("other-app", "alice");
    let kept = gw.cc("jwt-app");
    write(&gw.conf_path(), &without_client(&text, "other-app"));
    gw.eventually(APPLY_SECS, "other-app's token refused", || gw.api(&gone) == 401);
    assert_eq!(gw.api(&gone_user), 401);
    assert_eq!(gw.introspect("jwt-app", at(&gone))["active"], false);
    let refresh = gone_user["refresh_token"].as_str().unwrap();
    let r = gw.token(
        "other-app",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    );
    assert_eq!(r.status(), 401, "the removed client cannot refresh either");
    assert_eq!(
        gw.token("other-app", &[("grant_type", "client_credentials")]).status(),
        401
    );
    assert_eq!(gw.api(&kept), 200, "other clients are untouched");
}

#[test]
fn sighup_reloads_and_start_only_changes_ask_for_a_restart() {
    let gw = Gateway::start(Setup::default());
    gw.eventually(APPLY_SECS, "the watcher and SIGHUP handler", || {
        gw.log().contains("SIGHUP also reloads")
    });
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    gw.eventually(APPLY_SECS, "a reload on SIGHUP", || gw.log().contains("(SIGHUP)"));

    let other_port = common::free_port();
    let text = config_text(gw.port, &Setup::policy(MULTI, ""))
        .replace(
            &format!("listen = \"127.0.0.1:{}\"", gw.port),
            &format!("listen = \"127.0.0.1:{other_port}\""),
        )
        .replace("threads = 2", "threads = 3");
    write(&gw.conf_path(), &text);
    gw.eventually(APPLY_SECS, "the restart notice", || {
        gw.log()
            .contains("server.listen, server.threads changed; this needs a restart")
    });
    assert!(jwt_multi(&gw, "a"), "the rest of the file applies");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", other_port)).is_err(),
        "still on the old port"
    );
}

#[test]
fn a_user_removed_from_the_file_can_no_longer_use_their_tokens() {
    let gw = Gateway::start(Setup::default());
    let text = config_text(gw.port, &Setup::default());
    let alice = gw.password("jwt-app", "alice");
    let bob = gw.password("jwt-app", "bob");
    let without_bob = text.replace(
        &format!(
            "[[users]]\nusername = \"bob\"\npassword_hash = \"{}\"\n",
            common::BOB_HASH
        ),
        "",
    );
    assert_ne!(without_bob, text);
    write(&gw.conf_path(), &without_bob);
    gw.eventually(APPLY_SECS, "bob's token refused", || gw.api(&bob) == 401);
    assert_eq!(gw.introspect("jwt-app", at(&bob))["active"], false);
    assert_eq!(gw.api(&alice), 200, "other users are untouched");
    let refresh = |answer: &serde_json::Value| {
        let token = answer["refresh_token"].as_str().unwrap();
        gw.token("jwt-app", &[("grant_type", "refresh_token"), ("refresh_token", token)])
    };
    let r = refresh(&bob);
    assert_eq!(r.status(), 400, "no new token for a removed user");
    assert_eq!(r.json::<serde_json::Value>().unwrap()["error"], "invalid_grant");
    assert_eq!(refresh(&alice).status(), 200);
}

#[test]
fn a_scope_taken_from_a_client_stops_its_wider_tokens_and_refreshes() {
    let gw = Gateway::start(Setup::default());
    let text = config_text(gw.port, &Setup::default());
    let wide = gw.token_ok(
        "jwt-app",
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password"),
            ("scope", "a b"),
        ],
    );
    let narrow = gw.cc_scope("jwt-app", "a");
    // jwt-app may ask for a, c and orders:read only: b is taken away.
    let narrowed = text.replacen(
        "scopes = [\"a\", \"b\", \"c\", \"orders:read\"]",
        "scopes = [\"a\", \"c\", \"orders:read\"]",
        1,
    );
    assert_ne!(narrowed, text);
    write(&gw.conf_path(), &narrowed);
    gw.eventually(APPLY_SECS, "the wider token refused", || gw.api(&wide) == 401);
    assert_eq!(gw.introspect("jwt-app", at(&wide))["active"], false);
    assert_eq!(gw.api(&narrow), 200, "a token within the scopes left is untouched");
    let token = wide["refresh_token"].as_str().unwrap();
    let r = gw.token("jwt-app", &[("grant_type", "refresh_token"), ("refresh_token", token)]);
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["error"], "invalid_scope");
    // Given back, the refresh token was not spent by the refusal.
    write(&gw.conf_path(), &text);
    gw.eventually(APPLY_SECS, "the scope back", || gw.api(&wide) == 200);
    let r = gw.token("jwt-app", &[("grant_type", "refresh_token"), ("refresh_token", token)]);
    assert_eq!(r.status(), 200);
}

#[test]
fn a_file_restored_after_a_refused_reload_is_logged_as_good_again() {
    let gw = Gateway::start(Setup::default());
    let good = config_text(gw.port, &Setup::default());
    write(&gw.conf_path(), &format!("{good}\n[oauth\n"));
    gw.eventually(APPLY_SECS, "the refusal", || {
        gw.log().contains("refused, the config in force stays")
    });
    write(&gw.conf_path(), &good);
    gw.eventually(APPLY_SECS, "the all-clear", || {
        gw.log().contains("is valid again and holds the config in force")
    });
}
