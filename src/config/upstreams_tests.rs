//! The upstream keys of `[[routes]]`: every key read, defaults, and bad values refused with a
//! message naming the key.

use super::*;
use crate::config::{parse_str, Config};

fn parse_in(dir: &Path, route: &str) -> Result<Config, ConfigError> {
    parse_str(&format!("[[routes]]\npath_prefix = \"/a\"\n{route}\n"), dir)
}

fn settings(route: &str) -> UpstreamSettings {
    let config = parse_in(Path::new("/base"), route).unwrap();
    let route = config.routes.find("/a").unwrap();
    route.upstream.settings().clone()
}

/// The error for `route`: it must name `key`.
fn refused(dir: &Path, route: &str, key: &str) {
    let e = parse_in(dir, route).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{key}: ")), "{route}\n-> {e}\n(wanted {key})");
}

fn write_pair(dir: &Path, name: &str) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), c.cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-key.pem")), c.signing_key.serialize_pem()).unwrap();
}

#[test]
fn one_upstream_keeps_the_old_meaning() {
    let s = settings("upstream = \"127.0.0.1:9000\"");
    assert_eq!(s.servers.len(), 1);
    assert_eq!(s.servers[0].name, "127.0.0.1:9000");
    assert_eq!(s.servers[0].host, "127.0.0.1");
    assert_eq!(s.servers[0].addr, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(s.balancing, Balancing::RoundRobin);
    assert_eq!(s.health_check, None);
    assert_eq!(s.tls, None);
    assert_eq!(s.resolve_interval, None);
}

#[test]
fn every_key_is_read() {
    let s = settings(
        "upstreams = [\"127.0.0.1:9001\", \"[::1]:9002\", \"localhost:9003\"]\n\
         load_balancing = \"consistent_hash\"\n\
         health_check = { path = \"/healthz?full=1\", interval_secs = 7, timeout_ms = 250 }\n\
         resolve_interval_secs = 30",
    );
    let names: Vec<&str> = s.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["127.0.0.1:9001", "[::1]:9002", "localhost:9003"]);
    assert_eq!(s.servers[1].host, "::1");
    assert_eq!(s.servers[2].host, "localhost");
    assert_eq!(s.servers[2].port, 9003);
    assert_eq!(s.balancing, Balancing::ConsistentHash);
    assert_eq!(
        s.health_check,
        Some(HealthCheck {
            path: Some("/healthz?full=1".into()),
            interval: Duration::from_secs(7),
            timeout: Duration::from_millis(250),
        })
    );
    assert_eq!(s.resolve_interval, Some(Duration::from_secs(30)));
    assert_eq!(
        settings("upstream = \"127.0.0.1:1\"\nload_balancing = \"random\"").balancing,
        Balancing::Random
    );
    let tcp = settings("upstream = \"127.0.0.1:1\"\nhealth_check = {}")
        .health_check
        .unwrap();
    assert_eq!(tcp.path, None, "no path: a TCP check");
    assert_eq!(
        (tcp.interval, tcp.timeout),
        (DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT)
    );
}

#[test]
fn tls_keys_are_read_and_files_resolve_from_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), "ca");
    write_pair(dir.path(), "gw");
    let c = parse_in(
        dir.path(),
        "upstream = \"127.0.0.1:8443\"\nupstream_tls = true\nupstream_sni = \"orders.internal\"\n\
         upstream_ca = \"ca.pem\"\nupstream_client_cert = \"gw.pem\"\nupstream_client_key = \"gw-key.pem\"",
    )
    .unwrap();
    let tls = c.routes.find("/a").unwrap().upstream.tls().cloned().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("orders.internal"));
    assert_eq!(tls.ca.as_ref().map(|c| c.len()), Some(1));
    assert!(tls.client.is_some());
    assert!(!tls.insecure_skip_verify);
    let plain = parse_in(dir.path(), "upstream = \"127.0.0.1:8443\"\nupstream_tls = true").unwrap();
    let tls = plain.routes.find("/a").unwrap().upstream.tls().cloned().unwrap();
    assert_eq!(tls.sni_for("127.0.0.1"), "127.0.0.1", "default SNI: the host part");
    assert!(tls.ca.is_none() && tls.client.is_none());
    let insecure = "upstream = \"127.0.0.1:8443\"\nupstream_tls = true\ninsecure_skip_verify = true";
    let tls = parse_in(dir.path(), insecure)
        .unwrap()
        .routes
        .find("/a")
        .unwrap()
        .upstream
        .tls()
        .cloned();
    assert!(tls.unwrap().insecure_skip_verify);
}

#[test]
fn bad_servers_are_refused_with_their_key() {
    let dir = Path::new("/base");
    for (route, key) in [
        ("", "routes[0].upstream"),
        (
            "upstream = \"127.0.0.1:1\"\nupstreams = [\"127.0.0.1:2\"]",
            "routes[0].upstreams",
        ),
        ("upstreams = []", "routes[0].upstreams"),
        ("upstreams = [\"127.0.0.1:1\", \"nohost\"]", "routes[0].upstreams[1]"),
        (
            "upstreams = [\"127.0.0.1:1\", \"127.0.0.1:0\"]",
            "routes[0].upstreams[1]",
        ),
        (
            "upstreams = [\"127.0.0.1:1\", \"127.0.0.1:1\"]",
            "routes[0].upstreams[1]",
        ),
        ("upstream = \"127.0.0.1\"", "routes[0].upstream"),
        (
            "upstream = \"127.0.0.1:1\"\nload_balancing = \"least_conn\"",
            "routes[0].load_balancing",
        ),
        (
            "upstream = \"127.0.0.1:1\"\nresolve_interval_secs = 0",
            "routes[0].resolve_interval_secs",
        ),
    ] {
        refused(dir, route, key);
    }
}

#[test]
fn bad_health_checks_are_refused_with_their_key() {
    let dir = Path::new("/base");
    let up = "upstream = \"127.0.0.1:1\"\n";
    for (check, key) in [
        ("{ path = \"healthz\" }", "routes[0].health_check.path"),
        ("{ path = \"/a b\" }", "routes[0].health_check.path"),
        ("{ interval_secs = 0 }", "routes[0].health_check.interval_secs"),
        ("{ interval_secs = 3601 }", "routes[0].health_check.interval_secs"),
        ("{ timeout_ms = 0 }", "routes[0].health_check.timeout_ms"),
        ("{ timeout_ms = 60001 }", "routes[0].health_check.timeout_ms"),
    ] {
        refused(dir, &format!("{up}health_check = {check}"), key);
    }
    let typo = parse_in(dir, &format!("{up}health_check = {{ pth = \"/x\" }}")).unwrap_err();
    assert!(typo.to_string().contains("pth"), "{typo}");
}

#[test]
fn bad_tls_settings_are_refused_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), "gw");
    let d = dir.path();
    let up = "upstream = \"127.0.0.1:1\"\n";
    let tls = "upstream = \"127.0.0.1:1\"\nupstream_tls = true\n";
    for key in [
        "upstream_sni = \"x\"",
        "upstream_ca = \"gw.pem\"",
        "insecure_skip_verify = true",
    ] {
        let name = key.split(' ').next().unwrap();
        refused(d, &format!("{up}{key}"), &format!("routes[0].{name}"));
    }
    refused(
        d,
        &format!("{up}upstream_tls = false\nupstream_client_cert = \"gw.pem\""),
        "routes[0].upstream_client_cert",
    );
    let default = parse_in(d, &format!("{up}insecure_skip_verify = false"));
    assert!(default.is_ok(), "the default, said aloud: {default:?}");
    refused(
        d,
        &format!("{tls}upstream_sni = \"bad name!\""),
        "routes[0].upstream_sni",
    );
    refused(d, &format!("{tls}upstream_sni = \"\""), "routes[0].upstream_sni");
    refused(
        d,
        &format!("{tls}upstream_ca = \"missing.pem\""),
        "routes[0].upstream_ca",
    );
    refused(
        d,
        &format!("{tls}upstream_ca = \"gw-key.pem\""),
        "routes[0].upstream_ca",
    );
    refused(
        d,
        &format!("{tls}upstream_client_cert = \"gw.pem\""),
        "routes[0].upstream_client_key",
    );
    refused(
        d,
        &format!("{tls}upstream_client_key = \"gw-key.pem\""),
        "routes[0].upstream_client_cert",
    );
    refused(
        d,
        &format!("{tls}upstream_client_cert = \"gw.pem\"\nupstream_client_key = \"gw.pem\""),
        "routes[0].upstream_client_key",
    );
    refused(
        d,
        &format!("{tls}upstream_client_cert = \"gw-key.pem\"\nupstream_client_key = \"gw-key.pem\""),
        "routes[0].upstream_client_cert",
    );
}
