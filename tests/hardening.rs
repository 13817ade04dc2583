//! Attacks found by trying the gateway as an attacker would, with raw sockets against the real
//! binary: request targets that are not origin-form, `;` path parameters, identity headers forged
//! with underscores, a `Content-Length` list, held idle connections, log flooding and credentials
//! in debug logs. Each test failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod raw_http;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{at, Gateway, Setup};
use raw_http::{exchange, send, Answer};

/// An upstream that answers every request with 200 and, as its body, the request head exactly as
/// it arrived (request line and headers), so a test sees what the gateway forwarded.
fn head_echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let length = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.to_string())
                    })
                    .and_then(|v| v.split(',').next()?.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                let _ = stream.read_exact(&mut body);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            });
        }
    });
    addr
}

/// A gateway with a public `/` route and a protected `/api` route, both to a head-echo upstream.
fn gateway_with_echo() -> Gateway {
    let echo = head_echo_upstream();
    let extra = format!(
        "{}[[routes]]\npath_prefix = \"/secret\"\nupstream = \"{echo}\"\n",
        common::public_route("/", echo)
    );
    Gateway::start(Setup {
        extra,
        ..Setup::default()
    })
}

fn raw_get(target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}Connection: close\r\n\r\n").into_bytes()
}

fn status_of(port: u16, request: &[u8]) -> u16 {
    match send(port, request) {
        Answer::Status { status, .. } => status,
        Answer::Closed => 0,
    }
}

/// The request head the echo upstream saw (the body of a 200 answer).
fn forwarded_head(port: u16, request: &[u8]) -> String {
    let answer = exchange(port, request).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[test]
fn targets_that_are_not_origin_or_absolute_form_are_refused() {
    let gw = gateway_with_echo();
    let port = gw.port;
    for target in [
        "secret/1".to_string(),
        "x/../secret/1".to_string(),
        format!("127.0.0.1:{port}"),
        "?x".to_string(),
        "*".to_string(),
        "https://127.0.0.1/secret/1".to_string(),
    ] {
        assert_eq!(status_of(port, &raw_get(&target, "")), 400, "{target}");
    }
    // Absolute-form is routed by its path, and the upstream gets that path in origin-form. (Its
    // authority must be the Host header's: pingora refuses a mismatch.)
    let absolute = raw_get("http://127.0.0.1/secret/1", "");
    assert_eq!(
        status_of(port, &absolute),
        401,
        "the protected route's token check applies"
    );
    let head = forwarded_head(port, &raw_get("http://127.0.0.1/open/../x?q=1", ""));
    assert!(head.starts_with("GET /x?q=1 HTTP/1.1\r\n"), "{head}");
    // And a token still lets an origin-form request through, with the path it was checked by.
    let token = gw.cc("jwt-app");
    let bearer = format!("Authorization: Bearer {}\r\n", at(&token));
    let head = forwarded_head(port, &raw_get("/open/%2e%2e/secret/1", &bearer));
    assert!(head.starts_with("GET /secret/1 HTTP/1.1\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-client-id: jwt-app"), "{head}");
}

#[test]
fn path_parameters_are_refused() {
    let gw = gateway_with_echo();
    for target in [
        "/open/..;/secret/1",
        "/secret/..;/admin/1",
        "/secret;jsessionid=1/x",
        "/x;",
    ] {
        assert_eq!(status_of(gw.port, &raw_get(target, "")), 400, "{target}");
    }
}

#[test]
fn identity_headers_forged_with_underscores_do_not_reach_the_upstream() {
    let gw = gateway_with_echo();
    let forged = "X_Subject: admin\r\nX_Client_Id: admin-app\r\nX_Scope: all\r\nX_Real_IP: 10.9.9.9\r\n\
                  X_Forwarded_For: 10.9.9.9\r\nX_Unrelated: kept\r\n";
    for extra in [
        String::new(),
        format!("Authorization: Bearer {}\r\n", at(&gw.cc("jwt-app"))),
    ] {
        let target = if extra.is_empty() { "/open" } else { "/secret" };
        let head = forwarded_head(gw.port, &raw_get(target, &format!("{extra}{forged}"))).to_ascii_lowercase();
        for name in ["x_subject", "x_client_id", "x_scope", "x_real_ip", "x_forwarded_for"] {
            assert!(!head.contains(name), "{name} reached the upstream:\n{head}");
        }
        assert!(head.contains("x_unrelated: kept"), "{head}");
        assert!(!head.contains("admin"), "{head}");
    }
}

#[test]
fn a_content_length_list_of_one_value_is_forwarded_as_that_value() {
    let gw = gateway_with_echo();
    let request = b"POST /open HTTP/1.1\r\nHost: gw\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello";
    let head = forwarded_head(gw.port, request).to_ascii_lowercase();
    assert!(head.contains("content-length: 5\r\n"), "{head}");
    assert!(!head.contains("5, 5"), "{head}");
}

/// Sends one keep-alive request on `s` and reads its whole answer (up to the body's length).
fn keepalive_request(s: &mut TcpStream) -> String {
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: gw\r\n\r\n").unwrap();
    let (head, body) = raw_http::read_answer(s);
    format!("{head}\r\n\r\n{body}")
}

/// Whether the gateway closes `s` (reads end) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0))
        || matches!(s.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

fn gateway_with_server_lines(lines: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let text = common::with_server_lines(&common::config_text(port, &Setup::default()), lines);
    common::write(&dir.path().join("gateway.toml"), &text);
    Gateway::start_in(dir, port)
}

#[test]
fn idle_keepalive_connections_are_closed_after_the_timeout() {
    let gw = gateway_with_server_lines("keepalive_timeout_secs = 1");
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    assert!(keepalive_request(&mut s).starts_with("HTTP/1.1 200"));
    assert!(
        keepalive_request(&mut s).starts_with("HTTP/1.1 200"),
        "kept alive between requests"
    );
    let idle = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(30)),
        "the idle connection was closed"
    );
    assert!(idle.elapsed() >= Duration::from_millis(900), "not before the timeout");
}

#[test]
fn past_max_connections_a_client_gets_503_and_gets_in_once_idle_ones_are_closed() {
    let gw = gateway_with_server_lines("keepalive_timeout_secs = 2\nmax_connections = 3");
    // Hold connections until one is refused (the test client's own pooled one may hold a slot).
    let mut held = Vec::new();
    let refusal = loop {
        assert!(held.len() <= 3, "never refused with {} connections held", held.len());
        let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.write_all(b"GET /public/x HTTP/1.1\r\nHost: gw\r\n\r\n").unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).unwrap();
        if &first == b"HTTP/1.1 503" {
            let mut rest = String::new();
            let _ = s.read_to_string(&mut rest);
            break rest;
        }
        // Drain the rest of the 200 answer so the connection sits idle.
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        held.push(s);
    };
    assert!(refusal.contains("temporarily_unavailable"), "{refusal}");
    assert!(refusal.contains("Retry-After: 1"), "{refusal}");
    // The held ones go idle and are closed; a new client then gets through.
    for s in &mut held {
        assert!(closed_within(s, Duration::from_secs(30)));
    }
    gw.eventually(30, "a new client served", || {
        let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        keepalive_request(&mut s).starts_with("HTTP/1.1 200")
    });
}

#[test]
fn clients_hanging_up_mid_head_do_not_flood_the_error_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    common::write(
        &dir.path().join("gateway.toml"),
        &common::config_text(port, &Setup::default()),
    );
    let gw = Gateway::start_in_logging(dir, port, "tokengate=info,warn");
    for _ in 0..50 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /public/x HTTP/1.1\r\nHost: gw\r\nX-Half: ").unwrap();
    }
    // A request after them all, on a fresh connection: by its answer the others were handled.
    assert_eq!(status_of(port, &raw_get("/public/x", "")), 200);
    let log = gw.log();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!log.contains("Fail to proxy"), "{log}");
}

#[test]
fn a_malformed_head_with_a_token_is_not_logged_at_debug() {
    const CANARY: &str = "canary-token-4f9e2b7a";
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    common::write(
        &dir.path().join("gateway.toml"),
        &common::config_text(port, &Setup::default()),
    );
    let gw = Gateway::start_in_logging(dir, port, "debug");
    for request in [
        format!("GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {CANARY}\r\nBad Header\r\n\r\n"),
        format!("GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {CANARY}\r\nConnection: close\r\n\r\n"),
        format!("GET /api/x HTTP/9.9\r\nAuthorization: Bearer {CANARY}\r\n\r\n"),
    ] {
        let _ = exchange(port, request.as_bytes());
    }
    assert_eq!(status_of(port, &raw_get("/public/end", "")), 200);
    let log = gw.log();
    assert!(log.contains("DEBUG"), "debug logging was on:\n{log}");
    if let Some(line) = log.lines().find(|l| l.contains(CANARY)) {
        panic!("a token reached the log: {line}");
    }
}

/// Runs the binary on `conf` and waits for it to exit by itself: its status and stderr.
fn run_to_exit(conf: &std::path::Path) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(common::bin())
        .arg("--conf")
        .arg(conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second gateway did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn a_second_gateway_on_the_same_data_or_port_refuses_to_start() {
    let gw = Gateway::start(Setup::default());
    let token = gw.cc("opaque-app");
    // The same config: the same data folder (and port).
    let (status, stderr) = run_to_exit(&gw.conf_path());
    assert!(!status.success());
    assert!(
        stderr.contains("another tokengate is running on the data folder"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
    // Its own data folder but the same port.
    let other = tempfile::tempdir().unwrap();
    let conf = other.path().join("gateway.toml");
    common::write(&conf, &common::config_text(gw.port, &Setup::default()));
    let (status, stderr) = run_to_exit(&conf);
    assert!(!status.success());
    assert!(stderr.contains("server.listen: cannot listen on"), "{stderr}");
    assert_eq!(gw.api(&token), 200, "the first one serves on");
}

#[cfg(unix)]
#[test]
fn the_data_folder_and_store_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let gw = Gateway::start(Setup::default());
    gw.cc("opaque-app");
    let data = gw.dir.path().join("data");
    let mode = |name: &str| std::fs::metadata(data.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    for file in ["tokens.db", "tokens.db-wal", "tokens.db-shm"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
}

#[test]
fn two_sigints_in_a_row_stop_the_gateway_without_a_log_flood() {
    let metrics = format!("metrics_listen = \"127.0.0.1:{}\"", common::free_port());
    let mut gw = gateway_with_server_lines(&metrics);
    // Back to back, as a shell's built-in kill sends them (a supervisor's double Ctrl-C).
    let sent = std::process::Command::new("sh")
        .args(["-c", "kill -INT $0; kill -INT $0", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = gw.wait_exit(Duration::from_secs(30));
    let lines = gw.log().lines().count();
    assert!(status.is_some(), "still running after two SIGINTs; {lines} log lines");
    assert!(lines < 1000, "{lines} log lines");
}
