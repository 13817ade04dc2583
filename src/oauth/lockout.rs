//! Brute-force lockout of the OAuth endpoints. Failed client authentications are counted per
//! client address and per (address, client id) pair, failed password logins per (address,
//! username) pair; a key that collects `max_failures` failures within one window is answered 429
//! (`Retry-After`) for `duration`, before any secret is checked.
//!
//! A client id or a username alone is never locked: a count per id would let anyone who knows a
//! client's id (it is not a secret) lock that client out from every address, the real one
//! included, by sending wrong secrets. The price: an attacker with many addresses gets
//! `max_failures` guesses per address per window. Client secrets are random and long, so that
//! buys nothing against them; for passwords it is why each check costs an argon2id hash and a
//! permit of a bounded pool, and why users' passwords must be strong.
//!
//! The window is fixed and starts at a key's first failure; when it has passed, the count starts
//! again. A success resets nothing: otherwise an attacker holding one valid credential could wipe
//! the count of the address it guesses from.
//!
//! Plain Rust with the clock passed in (`now`), so tests need no sleeping. One [`Lockout`] lives
//! in the app state, outside the swapped config: a reload changes the numbers (read from the live
//! config on every call) without forgetting who is locked out.
//!
//! Memory is bounded: each table holds at most its capacity of keys. When one is full, windows
//! that have ended are dropped; if it is still full, only the lockouts in force are kept (a full
//! table costs an attacker `capacity` fresh keys, and buys it `max_failures - 1` more guesses per
//! key at most); if even those fill it, new keys go uncounted until some expire. Sweeps of a full
//! table run at most once a second so a flood cannot make every request pay for one.

use std::borrow::Borrow;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::errors::OAuthError;
use crate::config::model::LockoutSettings;

/// Most keys one table (client ids, addresses or usernames) tracks.
pub const DEFAULT_CAPACITY: usize = 50_000;
/// Least time between two sweeps of a full table.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What a failure is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A configured client id as presented from one address (none when the address is unknown).
    /// Unknown ids are counted against the address only: they can never succeed, and tracking
    /// them would let anyone fill the table with made-up ids.
    Client(&'a str, Option<IpAddr>),
    /// A client address; IPv6 addresses count by /64, the block one host usually holds.
    Address(IpAddr),
    /// A password-grant username, known or not (so that a lockout does not tell which exist), as
    /// presented from one address.
    User(&'a str, Option<IpAddr>),
}

/// The key a name presented from an address counts under.
type Pair = (IpAddr, String);

fn pair(name: &str, from: Option<IpAddr>) -> Pair {
    let address = from.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), address_key);
    (address, name.to_string())
}

/// The failures of one key.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            start: now,
            failures: 0,
            locked_until: None,
        }
    }

    /// Time left of a lockout in force.
    fn locked_for(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .map(|until| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Whether the window still matters: a lockout in force, or a count whose window is open.
    fn is_live(&self, now: Instant, limits: &LockoutSettings) -> bool {
        match self.locked_until {
            Some(_) => self.locked_for(now).is_some(),
            None => now.saturating_duration_since(self.start) < limits.window,
        }
    }
}

/// One kind of key with its windows.
struct Table<K> {
    windows: DashMap<K, Window>,
    capacity: usize,
    last_sweep: Mutex<Option<Instant>>,
    /// The table's time origin, for [`Table::lock_ends`].
    base: Instant,
    /// The latest end of any lockout set in this table, in nanoseconds after `base` (0: none).
    /// Once it has passed no lockout is in force, and a check needs no lookup (and no hashing):
    /// the common case of every request to the OAuth endpoints.
    lock_ends: AtomicU64,
}

/// Nanoseconds from `base` to `t`; `None` when `t` is earlier.
fn nanos_after(base: Instant, t: Instant) -> Option<u64> {
    t.checked_duration_since(base)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(capacity: usize) -> Table<K> {
        Table {
            windows: DashMap::new(),
            capacity,
            last_sweep: Mutex::new(None),
            base: Instant::now(),
            lock_ends: AtomicU64::new(0),
        }
    }

    /// Whether some lockout of this table may be in force at `now` (when not, no key needs
    /// building or looking up).
    fn may_be_locked(&self, now: Instant) -> bool {
        // (An instant before `base` cannot be placed: look it up.)
        nanos_after(self.base, now).is_none_or(|n| n < self.lock_ends.load(Ordering::Acquire))
    }

    fn locked_for<Q>(&self, key: &Q, now: Instant) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.may_be_locked(now) {
            return None;
        }
        self.windows.get(key).and_then(|w| w.locked_for(now))
    }

    fn fail<Q>(&self, key: &Q, limits: &LockoutSettings, now: Instant)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.windows.contains_key(key) && self.windows.len() >= self.capacity && !self.make_room(limits, now) {
            return;
        }
        let mut w = self.windows.entry(key.to_owned()).or_insert_with(|| Window::new(now));
        if w.locked_for(now).is_some() {
            return;
        }
        if w.locked_until.is_some() || now.saturating_duration_since(w.start) >= limits.window {
            *w = Window::new(now);
        }
        w.failures = w.failures.saturating_add(1);
        if w.failures >= limits.max_failures {
            // The duration is capped by the config loader, so the addition cannot overflow.
            w.locked_until = now.checked_add(limits.duration);
            if let Some(end) = w.locked_until.and_then(|until| nanos_after(self.base, until)) {
                self.lock_ends.fetch_max(end, Ordering::Release);
            }
        }
    }

    /// Frees space in a full table; false when there is none to be had now.
    fn make_room(&self, limits: &LockoutSettings, now: Instant) -> bool {
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return false;
        };
        if last.is_some_and(|t| now.saturating_duration_since(t) < SWEEP_INTERVAL) {
            return false;
        }
        *last = Some(now);
        self.windows.retain(|_, w| w.is_live(now, limits));
        if self.windows.len() >= self.capacity {
            self.windows.retain(|_, w| w.locked_for(now).is_some());
        }
        let room = self.windows.len() < self.capacity;
        if !room {
            log::warn!(
                "lockout table full of {} lockouts in force; new keys go uncounted",
                self.capacity
            );
        }
        room
    }
}

/// The failure counters of one gateway.
pub struct Lockout {
    clients: Table<Pair>,
    addresses: Table<IpAddr>,
    users: Table<Pair>,
}

impl Default for Lockout {
    fn default() -> Lockout {
        Lockout::with_capacity(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for Lockout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockout").field("tracked", &self.tracked()).finish()
    }
}

/// The key an address counts under: IPv4 (also when mapped into IPv6) as is, IPv6 by /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// Whole seconds until `left` has passed, at least 1.
fn retry_after(left: Duration) -> OAuthError {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    OAuthError::TooManyRequests {
        retry_after_secs: secs.max(1),
    }
}

impl Lockout {
    /// Counters holding at most `capacity` keys of each kind.
    pub fn with_capacity(capacity: usize) -> Lockout {
        Lockout {
            clients: Table::new(capacity),
            addresses: Table::new(capacity),
            users: Table::new(capacity),
        }
    }

    /// Refuses a subject that is locked out now.
    pub fn check(&self, limits: &LockoutSettings, subject: Subject<'_>, now: Instant) -> Result<(), OAuthError> {
        if limits.max_failures == 0 {
            return Ok(());
        }
        let left = match subject {
            Subject::Client(id, from) if self.clients.may_be_locked(now) => {
                self.clients.locked_for(&pair(id, from), now)
            }
            Subject::Address(ip) if limits.by_address => self.addresses.locked_for(&address_key(ip), now),
            Subject::User(name, from) if self.users.may_be_locked(now) => self.users.locked_for(&pair(name, from), now),
            _ => None,
        };
        left.map_or(Ok(()), |left| Err(retry_after(left)))
    }

    /// Counts one failure against a subject.
    pub fn record_failure(&self, limits: &LockoutSettings, subject: Subject<'_>, now: Instant) {
        if limits.max_failures == 0 {
            return;
        }
        match subject {
            Subject::Client(id, from) => self.clients.fail(&pair(id, from), limits, now),
            Subject::Address(ip) if limits.by_address => self.addresses.fail(&address_key(ip), limits, now),
            Subject::Address(_) => {}
            Subject::User(name, from) => self.users.fail(&pair(name, from), limits, now),
        }
    }

    /// Keys tracked now, of all kinds.
    pub fn tracked(&self) -> usize {
        self.clients.windows.len() + self.addresses.windows.len() + self.users.windows.len()
    }
}

#[cfg(test)]
#[path = "lockout_tests.rs"]
mod tests;
