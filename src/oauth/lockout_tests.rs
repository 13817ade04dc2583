//! Unit tests of the lockout with an injected clock: `t0 + secs(n)` stands for "n seconds later".

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn limits(max_failures: u32) -> LockoutSettings {
    LockoutSettings {
        max_failures,
        window: secs(60),
        duration: secs(30),
        by_address: true,
    }
}

fn retry(r: Result<(), OAuthError>) -> Option<u64> {
    match r {
        Ok(()) => None,
        Err(OAuthError::TooManyRequests { retry_after_secs }) => Some(retry_after_secs),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

const APP: Subject<'static> = Subject::Client("app", None);

#[test]
fn locks_after_max_failures_within_the_window_and_unlocks_after_the_duration() {
    let (l, lim, t0) = (Lockout::default(), limits(3), Instant::now());
    for i in 0..2 {
        l.record_failure(&lim, APP, t0 + secs(i));
        assert_eq!(
            retry(l.check(&lim, APP, t0 + secs(i))),
            None,
            "failure {i} is under the limit"
        );
    }
    l.record_failure(&lim, APP, t0 + secs(10));
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(10))), Some(30));
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(39))), Some(1));
    assert_eq!(
        retry(l.check(&lim, APP, t0 + Duration::from_millis(39_001))),
        Some(1),
        "rounds up"
    );
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(40))), None, "the lockout is over");
    // Counting starts again from zero.
    l.record_failure(&lim, APP, t0 + secs(41));
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(41))), None);
}

#[test]
fn failures_while_locked_do_not_extend_the_lockout() {
    let (l, lim, t0) = (Lockout::default(), limits(1), Instant::now());
    l.record_failure(&lim, APP, t0);
    l.record_failure(&lim, APP, t0 + secs(20));
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(20))), Some(10));
}

#[test]
fn failures_spread_over_more_than_a_window_do_not_lock() {
    let (l, lim, t0) = (Lockout::default(), limits(3), Instant::now());
    l.record_failure(&lim, APP, t0);
    l.record_failure(&lim, APP, t0 + secs(59));
    l.record_failure(&lim, APP, t0 + secs(60)); // a new window starts here
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(60))), None);
    l.record_failure(&lim, APP, t0 + secs(61));
    l.record_failure(&lim, APP, t0 + secs(62));
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(62))), Some(30));
}

#[test]
fn subjects_are_counted_apart() {
    let (l, lim, t0) = (Lockout::default(), limits(2), Instant::now());
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    for _ in 0..2 {
        l.record_failure(&lim, APP, t0);
    }
    assert!(l.check(&lim, APP, t0).is_err());
    for other in [
        Subject::Client("other", None),
        Subject::User("app", None),
        Subject::Address(ip),
    ] {
        assert_eq!(retry(l.check(&lim, other, t0)), None, "{other:?}");
    }
    for _ in 0..2 {
        l.record_failure(&lim, Subject::Address(ip), t0);
    }
    assert!(l.check(&lim, Subject::Address(ip), t0).is_err());
    let neighbour: IpAddr = "192.0.2.2".parse().unwrap();
    assert_eq!(retry(l.check(&lim, Subject::Address(neighbour), t0)), None);
}

#[test]
fn zero_max_failures_turns_everything_off_and_the_live_numbers_apply() {
    let (l, t0) = (Lockout::default(), Instant::now());
    for _ in 0..5 {
        l.record_failure(&limits(0), APP, t0);
    }
    assert_eq!(l.tracked(), 0);
    l.record_failure(&limits(1), APP, t0);
    assert!(l.check(&limits(1), APP, t0).is_err());
    // A reload that turns the lockout off lets the key through at once...
    assert!(l.check(&limits(0), APP, t0).is_ok());
    // ...and one that keeps it on keeps the lockout.
    assert!(l.check(&limits(5), APP, t0).is_err());
}

#[test]
fn addresses_can_be_left_out() {
    let (l, t0) = (Lockout::default(), Instant::now());
    let lim = LockoutSettings {
        by_address: false,
        ..limits(1)
    };
    let ip = Subject::Address("192.0.2.1".parse().unwrap());
    l.record_failure(&lim, ip, t0);
    assert!(l.check(&lim, ip, t0).is_ok());
    assert_eq!(l.tracked(), 0);
}

#[test]
fn ipv6_counts_by_64_block_and_mapped_ipv4_as_ipv4() {
    let (l, lim, t0) = (Lockout::default(), limits(2), Instant::now());
    let a = Subject::Address("2001:db8:1:2::1".parse().unwrap());
    let b = Subject::Address("2001:db8:1:2:ffff::9".parse().unwrap());
    let other_block = Subject::Address("2001:db8:1:3::1".parse().unwrap());
    l.record_failure(&lim, a, t0);
    l.record_failure(&lim, b, t0);
    assert!(l.check(&lim, a, t0).is_err());
    assert!(l.check(&lim, other_block, t0).is_ok());
    let mapped = Subject::Address("::ffff:192.0.2.7".parse().unwrap());
    let v4 = Subject::Address("192.0.2.7".parse().unwrap());
    l.record_failure(&lim, mapped, t0);
    l.record_failure(&lim, v4, t0);
    assert!(l.check(&lim, v4, t0).is_err());
}

#[test]
fn memory_is_bounded_and_ended_windows_make_room() {
    let (l, lim, t0) = (Lockout::with_capacity(4), limits(2), Instant::now());
    for i in 0..10 {
        l.record_failure(&lim, Subject::User(&format!("u{i}"), None), t0);
    }
    assert_eq!(l.tracked(), 4, "the table stops at its capacity");
    // Later, when the windows have ended, a new key evicts them.
    l.record_failure(&lim, Subject::User("late", None), t0 + secs(61));
    assert_eq!(l.tracked(), 1);
}

#[test]
fn a_full_table_keeps_its_lockouts_in_force() {
    let (l, lim, t0) = (Lockout::with_capacity(4), limits(2), Instant::now());
    let name = |i: usize| format!("u{i}");
    // Two locked keys and two partial counts.
    for i in 0..4 {
        for _ in 0..(if i < 2 { 2 } else { 1 }) {
            l.record_failure(&lim, Subject::User(&name(i), None), t0);
        }
    }
    l.record_failure(&lim, Subject::User("new", None), t0 + secs(1));
    assert!(l.check(&lim, Subject::User(&name(0), None), t0 + secs(1)).is_err());
    assert!(l.check(&lim, Subject::User(&name(1), None), t0 + secs(1)).is_err());
    assert_eq!(l.tracked(), 3, "partial counts made room for the new key");
}

#[test]
fn a_table_full_of_lockouts_leaves_new_keys_uncounted_and_sweeps_at_most_once_a_second() {
    let (l, lim, t0) = (Lockout::with_capacity(2), limits(1), Instant::now());
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let c = Subject::User("c", None);
    l.record_failure(&lim, Subject::User("a", None), t0);
    l.record_failure(&lim, Subject::User("b", None), t0);
    // Both lockouts hold until t0 + 30 s: no room for c.
    l.record_failure(&lim, c, ms(29_500));
    assert!(l.check(&lim, c, ms(29_500)).is_ok());
    // They have ended, but the last sweep was under a second ago: c still goes uncounted.
    l.record_failure(&lim, c, ms(30_200));
    assert!(l.check(&lim, c, ms(30_200)).is_ok());
    // A second later the sweep runs and c is counted (and locked: max_failures is 1).
    l.record_failure(&lim, c, ms(30_600));
    assert!(l.check(&lim, c, ms(30_600)).is_err());
    assert!(l.check(&lim, Subject::User("a", None), ms(30_600)).is_ok());
    assert_eq!(l.tracked(), 1);
}

#[test]
fn the_no_lockout_shortcut_never_hides_one_in_force() {
    // A check skips the table lookup once every lockout set in the table has ended.
    let (l, lim) = (Lockout::default(), limits(1));
    let t0 = Instant::now();
    let other = Subject::Client("other", None);
    assert_eq!(retry(l.check(&lim, APP, t0)), None);
    l.record_failure(&lim, APP, t0);
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(1))), Some(29));
    assert_eq!(retry(l.check(&lim, other, t0 + secs(1))), None);
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(31))), None);
    // A lockout set after the last one ended still counts.
    l.record_failure(&lim, other, t0 + secs(40));
    assert_eq!(retry(l.check(&lim, other, t0 + secs(41))), Some(29));
    assert_eq!(retry(l.check(&lim, APP, t0 + secs(41))), None, "APP's lockout is over");

    // Clock readings from before the table existed are looked up, never assumed clear.
    let l = Lockout::default();
    let early = Instant::now()
        .checked_sub(secs(60))
        .expect("the machine has been up for a minute");
    l.record_failure(&lim, APP, early);
    assert_eq!(retry(l.check(&lim, APP, early + secs(20))), Some(10));
    assert_eq!(retry(l.check(&lim, APP, early + secs(31))), None);
}

#[test]
fn a_client_id_or_username_is_locked_from_one_address_only() {
    let (l, lim, t0) = (Lockout::default(), limits(2), Instant::now());
    let attacker: IpAddr = "192.0.2.66".parse().unwrap();
    let owner: IpAddr = "198.51.100.7".parse().unwrap();
    for _ in 0..2 {
        l.record_failure(&lim, Subject::Client("app", Some(attacker)), t0);
        l.record_failure(&lim, Subject::User("alice", Some(attacker)), t0);
    }
    assert!(l.check(&lim, Subject::Client("app", Some(attacker)), t0).is_err());
    assert!(l.check(&lim, Subject::User("alice", Some(attacker)), t0).is_err());
    assert_eq!(retry(l.check(&lim, Subject::Client("app", Some(owner)), t0)), None);
    assert_eq!(retry(l.check(&lim, Subject::User("alice", Some(owner)), t0)), None);
    // The attacker's /64 neighbours share its key, as for addresses.
    let v6: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let v6_neighbour: IpAddr = "2001:db8:1:2::9".parse().unwrap();
    for _ in 0..2 {
        l.record_failure(&lim, Subject::Client("app", Some(v6)), t0);
    }
    assert!(l.check(&lim, Subject::Client("app", Some(v6_neighbour)), t0).is_err());
}
