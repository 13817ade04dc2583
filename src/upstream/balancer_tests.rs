use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn balancer(ports: &[u16], balancing: Balancing) -> Balancer {
    let addrs: Vec<SocketAddr> = ports.iter().map(|&p| addr(p)).collect();
    let mut settings = UpstreamSettings::plain(&addrs);
    settings.balancing = balancing;
    Balancer::new("/api", settings).unwrap()
}

#[test]
fn round_robin_takes_each_server_in_turn() {
    let b = balancer(&[1, 2, 3], Balancing::RoundRobin);
    let picks: Vec<u16> = (0..6).map(|_| b.select(b"", None).unwrap().port()).collect();
    assert_eq!(picks[..3], picks[3..], "{picks:?}");
    let mut first: Vec<u16> = picks[..3].to_vec();
    first.sort_unstable();
    assert_eq!(first, [1, 2, 3], "{picks:?}");
}

#[test]
fn consistent_hashing_keeps_a_key_on_one_server() {
    let b = balancer(&[1, 2, 3], Balancing::ConsistentHash);
    for key in [b"client-a".as_slice(), b"client-b", b"client-c"] {
        let first = b.select(key, None).unwrap();
        for _ in 0..20 {
            assert_eq!(b.select(key, None), Some(first));
        }
    }
    let random = balancer(&[1, 2], Balancing::Random);
    assert!(random.select(b"", None).is_some());
}

#[test]
fn a_retry_goes_to_another_server() {
    let b = balancer(&[1, 2], Balancing::ConsistentHash);
    let first = b.select(b"k", None).unwrap();
    for _ in 0..10 {
        let other = b.select(b"k", Some(first)).unwrap();
        assert_ne!(other, first);
    }
    assert!(b.has_other_than(first));
    let single = balancer(&[1], Balancing::RoundRobin);
    assert_eq!(single.select(b"", Some(addr(1))), None, "no other server: no retry");
    assert!(!single.has_other_than(addr(1)));
}

#[test]
fn a_skipped_server_gets_no_requests_while_another_is_up() {
    let b = balancer(&[1, 2], Balancing::RoundRobin);
    b.skip(addr(1));
    for _ in 0..10 {
        assert_eq!(b.select(b"", None), Some(addr(2)));
    }
    let health = b.health();
    assert_eq!(health.len(), 2);
    assert!(!health[0].healthy() && health[0].checked_up && health[0].skipped);
    assert!(health[1].healthy());
    // Every server skipped: one is still tried rather than failing without trying.
    b.skip(addr(2));
    assert!(b.select(b"", None).is_some());
}

#[test]
fn equal_settings_make_equal_balancers() {
    assert_eq!(
        balancer(&[1, 2], Balancing::RoundRobin),
        balancer(&[1, 2], Balancing::RoundRobin)
    );
    assert_ne!(
        balancer(&[1, 2], Balancing::RoundRobin),
        balancer(&[1, 2], Balancing::Random)
    );
    assert_ne!(
        balancer(&[1, 2], Balancing::RoundRobin),
        balancer(&[1], Balancing::RoundRobin)
    );
}
