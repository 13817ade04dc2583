use super::*;

fn trusted(nets: &[&str]) -> TrustedProxies {
    TrustedProxies::parse(&nets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn req(headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/api/x", None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn header(r: &RequestHeader, name: &str) -> Option<String> {
    let all: Vec<&str> = r.headers.get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
    (!all.is_empty()).then(|| all.join(" | "))
}

#[test]
fn trusted_proxies_parse_addresses_and_networks() {
    let t = trusted(&["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1"]);
    assert!(t.contains(ip("10.1.2.3")));
    assert!(t.contains(ip("192.168.1.7")));
    assert!(!t.contains(ip("192.168.1.8")));
    assert!(t.contains(ip("fd12::1")));
    assert!(t.contains(ip("::1")));
    assert!(t.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped IPv6 is read as IPv4");
    assert!(!t.contains(ip("11.0.0.1")));
    // Host bits are cleared rather than refused: "10.1.2.3/8" is 10.0.0.0/8.
    assert!(trusted(&["10.1.2.3/8"]).contains(ip("10.200.0.1")));
    for bad in ["10.0.0.0/33", "example.com", "", "10.0.0.1:80", "1.2.3"] {
        let e = TrustedProxies::parse(&[bad.to_string()]).unwrap_err();
        assert!(e.contains("not an IP"), "{bad}: {e}");
    }
    assert!(TrustedProxies::default().is_empty());
}

#[test]
fn without_trusted_proxies_the_client_is_the_peer_whatever_it_claims() {
    let r = req(&[("X-Forwarded-For", "6.6.6.6"), ("X-Real-IP", "7.7.7.7")]);
    let none = TrustedProxies::default();
    assert_eq!(client_addr(&r, ip("203.0.113.5"), &none), ip("203.0.113.5"));
    // A peer outside the trusted networks is not believed either.
    let t = trusted(&["10.0.0.0/8"]);
    assert_eq!(client_addr(&r, ip("203.0.113.5"), &t), ip("203.0.113.5"));
}

#[test]
fn behind_trusted_proxies_the_client_is_the_rightmost_untrusted_entry() {
    let t = trusted(&["10.0.0.0/8"]);
    // client 198.51.100.9 -> proxy 10.0.0.2 -> proxy 10.0.0.1 -> gateway
    let r = req(&[("X-Forwarded-For", "6.6.6.6, 198.51.100.9, 10.0.0.2")]);
    assert_eq!(client_addr(&r, ip("10.0.0.1"), &t), ip("198.51.100.9"));
    // Several header lines read as one list, in order.
    let r = req(&[
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-For", "198.51.100.9,10.0.0.2"),
    ]);
    assert_eq!(client_addr(&r, ip("10.0.0.1"), &t), ip("198.51.100.9"));
    // An unreadable entry stops at the proxy that passed it on.
    let r = req(&[("X-Forwarded-For", "198.51.100.9, garbage, 10.0.0.2")]);
    assert_eq!(client_addr(&r, ip("10.0.0.1"), &t), ip("10.0.0.2"));
    let r = req(&[("X-Forwarded-For", "[2001:db8::1]:443")]);
    assert_eq!(client_addr(&r, ip("10.0.0.1"), &t), ip("10.0.0.1"));
    // Every entry trusted: the leftmost one is as far as anything is known.
    let r = req(&[("X-Forwarded-For", "10.0.0.3, 10.0.0.2")]);
    assert_eq!(client_addr(&r, ip("10.0.0.1"), &t), ip("10.0.0.3"));
    // No header: the proxy itself.
    assert_eq!(client_addr(&req(&[]), ip("10.0.0.1"), &t), ip("10.0.0.1"));
    // IPv6 entries, and a mapped peer.
    let r = req(&[("X-Forwarded-For", "2001:db8::7")]);
    assert_eq!(client_addr(&r, ip("::ffff:10.0.0.1"), &t), ip("2001:db8::7"));
}

#[test]
fn an_edge_gateway_replaces_what_the_client_claims() {
    let mut r = req(&[
        ("Host", "api.example.com"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-For", "7.7.7.7"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "for=6.6.6.6;proto=https"),
    ]);
    set_upstream_headers(&mut r, Some(ip("203.0.113.5")), false, &TrustedProxies::default()).unwrap();
    assert_eq!(
        header(&r, "x-forwarded-for").unwrap(),
        "6.6.6.6, 7.7.7.7, 203.0.113.5",
        "one line"
    );
    assert_eq!(header(&r, "x-real-ip").unwrap(), "203.0.113.5");
    assert_eq!(
        header(&r, "x-forwarded-proto"),
        None,
        "plain HTTP: none (absent means http)"
    );
    assert_eq!(header(&r, "x-forwarded-host"), None, "the upstream gets Host itself");
    assert_eq!(header(&r, "host").unwrap(), "api.example.com");
    assert_eq!(header(&r, "forwarded"), None);

    let mut r = req(&[
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-For", " 1.1.1.1 , 2.2.2.2 "),
    ]);
    set_upstream_headers(&mut r, Some(ip("::ffff:203.0.113.5")), true, &TrustedProxies::default()).unwrap();
    assert_eq!(header(&r, "x-forwarded-for").unwrap(), "1.1.1.1 , 2.2.2.2, 203.0.113.5");
    assert_eq!(header(&r, "x-real-ip").unwrap(), "203.0.113.5");
    assert_eq!(header(&r, "x-forwarded-proto").unwrap(), "https");
}

#[test]
fn a_trusted_proxy_keeps_its_forwarding_headers() {
    let t = trusted(&["10.0.0.0/8"]);
    let mut r = req(&[
        ("Host", "internal:8080"),
        ("X-Forwarded-For", "198.51.100.9"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "api.example.com"),
        ("Forwarded", "for=198.51.100.9;proto=https"),
    ]);
    set_upstream_headers(&mut r, Some(ip("10.0.0.1")), false, &t).unwrap();
    assert_eq!(header(&r, "x-forwarded-for").unwrap(), "198.51.100.9, 10.0.0.1");
    assert_eq!(
        header(&r, "x-real-ip").unwrap(),
        "198.51.100.9",
        "replaced by the walk's answer"
    );
    assert_eq!(header(&r, "x-forwarded-proto").unwrap(), "https");
    assert_eq!(header(&r, "x-forwarded-host").unwrap(), "api.example.com");
    assert_eq!(header(&r, "forwarded").unwrap(), "for=198.51.100.9;proto=https");
    // A trusted proxy that sends none gets the gateway's own.
    let mut r = req(&[("Host", "internal:8080")]);
    set_upstream_headers(&mut r, Some(ip("10.0.0.1")), true, &t).unwrap();
    assert_eq!(header(&r, "x-forwarded-proto").unwrap(), "https");
    assert_eq!(header(&r, "x-forwarded-host"), None);
    assert_eq!(header(&r, "x-forwarded-for").unwrap(), "10.0.0.1");
    assert_eq!(header(&r, "x-real-ip").unwrap(), "10.0.0.1");
}

#[test]
fn without_a_peer_address_nothing_is_claimed() {
    let mut r = req(&[
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Real-IP", "6.6.6.6"),
        ("Forwarded", "for=x"),
    ]);
    set_upstream_headers(&mut r, None, false, &trusted(&["10.0.0.0/8"])).unwrap();
    for h in [
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    ] {
        assert_eq!(header(&r, h), None, "{h}");
    }
}
