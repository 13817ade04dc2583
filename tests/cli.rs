//! The command line of docs/operations.md: --check, hash-secret, hash-password, --version, --help.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Setup;
use sha2::{Digest, Sha256};

fn tokengate(args: &[&str]) -> Output {
    Command::new(common::bin()).args(args).output().unwrap()
}

fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(common::bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn check(path: &Path) -> Output {
    Command::new(common::bin())
        .arg("--conf")
        .arg(path)
        .arg("--check")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_and_help() {
    let v = tokengate(&["--version"]);
    assert!(v.status.success());
    assert_eq!(
        text(&v.stdout).trim(),
        format!("tokengate {}", env!("CARGO_PKG_VERSION"))
    );
    let h = tokengate(&["--help"]);
    assert!(h.status.success());
    let help = text(&h.stdout);
    for word in ["--conf", "--check", "--version", "hash-secret", "hash-password"] {
        assert!(help.contains(word), "--help does not mention {word}:\n{help}");
    }
    for sub in ["hash-secret", "hash-password"] {
        let h = tokengate(&[sub, "--help"]);
        assert!(h.status.success());
        let help = text(&h.stdout);
        assert!(
            !help.contains("--conf"),
            "{sub} --help shows an option it does not use:\n{help}"
        );
    }
}

#[test]
fn check_accepts_a_good_file_and_names_what_is_wrong_in_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    common::write(&good, &common::config_text(common::free_port(), &Setup::default()));
    let ok = check(&good);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("ok"));

    let bad = dir.path().join("bad.toml");
    common::write(&bad, "[server]\nlisten = \"127.0.0.1:8080\"\nlisten_backlog = 5\n");
    let out = check(&bad);
    assert_eq!(out.status.code(), Some(1));
    let reason = text(&out.stderr);
    assert!(reason.contains("listen_backlog"), "{reason}");
    assert!(reason.contains("bad.toml"), "the reason names the file: {reason}");

    let missing = check(&dir.path().join("nope.toml"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("nope.toml"));
}

#[test]
fn check_refuses_unusable_tls_files_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let base = common::config_text(common::free_port(), &Setup::default());
    common::write(
        &path,
        &common::with_server_lines(&base, "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\""),
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("server.tls_cert"), "{}", text(&out.stderr));

    common::write(&dir.path().join("cert.pem"), "not a certificate\n");
    common::write(&dir.path().join("key.pem"), "not a key\n");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no PEM certificate"),
        "{}",
        text(&out.stderr)
    );

    let (cert, key) = common::self_signed();
    common::write(&dir.path().join("cert.pem"), &cert);
    common::write(&dir.path().join("key.pem"), &key);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // The gateway itself refuses to start on the same problem, with the same reason.
    common::write(&dir.path().join("key.pem"), "not a key\n");
    let run = Command::new(common::bin()).arg("--conf").arg(&path).output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(text(&run.stderr).contains("server.tls_key"), "{}", text(&run.stderr));
}

#[test]
fn check_and_start_refuse_an_unusable_previous_jwt_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let setup = Setup {
        oauth: "jwt_previous_keys = [\"old.pem\"]".into(),
        ..Setup::default()
    };
    common::write(&path, &common::config_text(common::free_port(), &setup));
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let reason = text(&out.stderr);
    assert!(
        reason.contains("oauth.jwt_previous_keys") && reason.contains("old.pem"),
        "{reason}"
    );

    common::write(&dir.path().join("old.pem"), "not a key\n");
    for out in [
        check(&path),
        Command::new(common::bin()).arg("--conf").arg(&path).output().unwrap(),
    ] {
        assert_eq!(out.status.code(), Some(1));
        let reason = text(&out.stderr);
        assert!(
            reason.contains("oauth.jwt_previous_keys") && reason.contains("old.pem"),
            "{reason}"
        );
    }
}

#[test]
fn every_bundled_config_passes_check() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut seen = 0;
    for entry in std::fs::read_dir(&conf).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = check(&path);
            assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), text(&out.stderr));
            seen += 1;
        }
    }
    assert!(seen >= 2, "conf/gateway.toml and conf/docker.toml at least");
}

#[test]
fn hash_secret_prints_the_hex_sha256_of_stdin() {
    let out = with_stdin(&["hash-secret"], "demo-secret\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert_eq!(printed.trim(), hex::encode(Sha256::digest(b"demo-secret")));
    assert_eq!(printed.trim(), common::SECRET_SHA256);
    // CRLF line ends are not part of the secret.
    let crlf = with_stdin(&["hash-secret"], "demo-secret\r\n");
    assert_eq!(text(&crlf.stdout).trim(), common::SECRET_SHA256);

    let empty = with_stdin(&["hash-secret"], "");
    assert_eq!(empty.status.code(), Some(1));
    assert!(empty.stdout.is_empty());
}

#[test]
fn hash_password_prints_an_argon2id_phc_string() {
    let out = with_stdin(&["hash-password"], "correct horse battery staple\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = text(&out.stdout).trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(tokengate::oauth::passwords::verify_password(
        "correct horse battery staple",
        &hash
    ));
    assert!(!tokengate::oauth::passwords::verify_password("wrong", &hash));
    assert!(
        !text(&out.stderr).contains("correct horse"),
        "the password is not echoed"
    );
}
