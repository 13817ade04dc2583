use super::*;
use crate::upstream::settings::UpstreamSettings;
use std::io::{Read, Write};
use std::net::TcpListener;

/// A server that answers every request with `status` and closes.
fn answering(status: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    addr
}

fn closed() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn check(addrs: &[SocketAddr], path: Option<&str>) -> (Balancer, RouteCheck) {
    let balancer = Balancer::new("/api", UpstreamSettings::plain(addrs)).unwrap();
    let settings = CheckSettings {
        path: path.map(str::to_string),
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
    };
    let check = RouteCheck::new(&balancer, &settings).unwrap();
    (balancer, check)
}

fn backend(addr: SocketAddr) -> Backend {
    Backend::new(&addr.to_string()).unwrap()
}

#[tokio::test]
async fn the_tcp_check_passes_a_listening_server_only() {
    let (up, down) = (answering("200 OK"), closed());
    let (_b, check) = check(&[up, down], None);
    assert!(check.check(&backend(up)).await.is_ok());
    assert!(check.check(&backend(down)).await.is_err());
}

#[tokio::test]
async fn the_http_check_wants_a_200_on_its_path() {
    let (ok, failing, down) = (answering("200 OK"), answering("503 Service Unavailable"), closed());
    let (_b, check) = check(&[ok, failing, down], Some("/healthz"));
    assert!(check.check(&backend(ok)).await.is_ok());
    assert!(check.check(&backend(failing)).await.is_err());
    assert!(check.check(&backend(down)).await.is_err());
    assert!(check
        .backend_summary(&backend(ok))
        .starts_with("route /api: upstream 127.0.0.1:"));
}

#[tokio::test]
async fn a_silent_server_fails_within_the_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (_b, check) = check(&[addr], Some("/healthz"));
    // Accepted by the kernel, never answered: the route's timeout ends the check.
    assert!(check.check(&backend(addr)).await.is_err());
    drop(silent);
}

#[tokio::test]
async fn tasks_follow_the_routes_of_the_live_config() {
    let (a, b) = (answering("200 OK"), answering("200 OK"));
    let table = |routes: &str| {
        crate::config::parse_str(routes, std::path::Path::new("/base"))
            .unwrap()
            .routes
    };
    let checked = |prefix: &str, addr: SocketAddr| {
        format!(
            "[[routes]]\npath_prefix = \"{prefix}\"\nupstream = \"{addr}\"\nhealth_check = {{ interval_secs = 1 }}\n"
        )
    };
    let mut running = Vec::new();
    let first = table(&(checked("/a", a) + &checked("/b", b)));
    follow(&mut running, &first);
    assert_eq!(running.len(), 2);
    let stop_b = running
        .iter()
        .find(|r| &**r.balancer.route() == "/b")
        .unwrap()
        .stop
        .subscribe();
    let stop_a = running
        .iter()
        .find(|r| &**r.balancer.route() == "/a")
        .unwrap()
        .stop
        .subscribe();

    // A reload keeps /a as it was, changes /b's server and adds /c.
    let mut next = table(&(checked("/a", a) + &checked("/b", a) + &checked("/c", b)));
    next.keep_balancers(&first);
    follow(&mut running, &next);
    assert_eq!(running.len(), 3);
    assert!(*stop_b.borrow(), "the tasks of the old /b are told to stop");
    assert!(!*stop_a.borrow(), "the tasks of the unchanged /a run on");
    running.clear();
    assert!(*stop_a.borrow(), "and stop with the service");
}
