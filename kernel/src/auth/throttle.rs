//! Login throttling: how many password guesses anyone gets, per client address and per
//! account, such that nobody can aim a lockout at somebody else.
//!
//! Three counters, all in memory (a restart forgets them, which only shortens a lock):
//!
//! - **per account and address**: `PAIR_MAX_FAILURES` failures in a row for one user name
//!   from one client address lock that pair for `LOCKOUT_MS` after the last failure. The
//!   same account from another address is not affected: a guesser locks only themselves.
//! - **per address**: an address (an IPv6 client by its /64, which one machine can fill
//!   with addresses) that fails `ADDRESS_MAX_FAILURES` times within `ADDRESS_WINDOW_MS`,
//!   whatever the user names, is refused for `LOCKOUT_MS` — except for accounts that have
//!   logged in from it before (a colleague behind the same NAT still logs in).
//! - **per account, softly**: an account with `ACCOUNT_SLOW_AFTER` failures within
//!   `MEMORY_MS` from any addresses is under attack; from then on attempts for it from
//!   addresses it has not logged in from are let through at most one per
//!   `ACCOUNT_SLOW_MS` (the others get 429 with a short retry). That caps a botnet's guesses
//!   on one account without ever locking the owner out from an address they used before.
//!
//! An attempt is charged before its password is checked (and refunded when it succeeds), so
//! a burst of concurrent guesses cannot slip past a counter before the first one is
//! recorded. Every table is bounded (`MAX_ENTRIES` keys, user names at most
//! `MAX_LOGIN_NAME_BYTES`): when one is full, forgotten entries go first, then the oldest.
//!
//! This module never reads a clock (the caller passes `now`), never sees a password, and
//! never stores a user name longer than `MAX_LOGIN_NAME_BYTES`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::error::{KernelError, Result};

/// Failures in a row for one user name from one address after which that pair is locked.
pub const PAIR_MAX_FAILURES: u32 = 5;
/// How long a locked pair (or address) stays locked after its last failure.
pub const LOCKOUT_MS: i64 = 60_000;
/// Failures from one address (any user names) within `ADDRESS_WINDOW_MS` after which it is
/// refused for `LOCKOUT_MS`, but for accounts that logged in from it before.
pub const ADDRESS_MAX_FAILURES: u32 = 30;
/// The window the per-address failures are counted in.
pub const ADDRESS_WINDOW_MS: i64 = 60_000;
/// Failures for one account (from any addresses) within `MEMORY_MS` after which attempts
/// from addresses it never logged in from are slowed to one per `ACCOUNT_SLOW_MS`.
pub const ACCOUNT_SLOW_AFTER: u32 = 10;
/// While an account is slowed: the least time between two attempts for it from addresses
/// it never logged in from.
pub const ACCOUNT_SLOW_MS: i64 = 5_000;
/// A counter with no failure for this long is forgotten.
pub const MEMORY_MS: i64 = 15 * 60_000;
/// The most keys each table holds (pairs, addresses, accounts, known addresses).
pub const MAX_ENTRIES: usize = 10_000;
/// The longest user name a login may carry, in bytes: the longest user id there can be
/// (`resources::put_user`). A longer one is refused with the usual 401 and never stored.
pub const MAX_LOGIN_NAME_BYTES: usize = 100;
/// How many addresses an account remembers it logged in from (the newest ones).
pub const KNOWN_ADDRESSES: usize = 4;
/// How long an address an account logged in from counts as its usual one.
pub const KNOWN_FOR_MS: i64 = 30 * 24 * 3600 * 1000;

/// The client address as the throttle counts it: IPv4 as is (IPv4-mapped IPv6 too), IPv6
/// by its /64 network; `None` when the server does not know the peer (an embedding
/// application calling the router directly).
pub fn client_key(addr: Option<IpAddr>) -> Option<IpAddr> {
    addr.map(|a| match a {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    })
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    count: u32,
    first_ms: i64,
    last_ms: i64,
    /// Per account: the last attempt let through from an unusual address while slowed.
    slow_ms: Option<i64>,
}

/// A bounded map from keys to counters: full, it forgets what is stale, then the oldest.
#[derive(Debug)]
struct Table<K> {
    map: HashMap<K, Counter>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            cap,
        }
    }

    /// The live counter of `key` (a stale one reads as zero).
    fn get(&self, key: &K, now: i64) -> Counter {
        self.map
            .get(key)
            .copied()
            .filter(|c| now - c.last_ms < MEMORY_MS)
            .unwrap_or_default()
    }

    fn entry(&mut self, key: &K, now: i64) -> &mut Counter {
        if !self.map.contains_key(key) && self.map.len() >= self.cap {
            evict(&mut self.map, self.cap, now, |c| c.last_ms);
        }
        let c = self.map.entry(key.clone()).or_default();
        if now - c.last_ms >= MEMORY_MS {
            *c = Counter {
                first_ms: now,
                ..Counter::default()
            };
        }
        c
    }

    fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }
}

/// Makes room in a full map: drops entries older than `MEMORY_MS`, and if that is not a
/// tenth of it, the oldest tenth (amortised: one pass per `cap / 10` insertions).
fn evict<K: Hash + Eq, V>(map: &mut HashMap<K, V>, cap: usize, now: i64, at: impl Fn(&V) -> i64) {
    map.retain(|_, v| now - at(v) < MEMORY_MS);
    let room = (cap / 10).max(1);
    if map.len() + room <= cap {
        return;
    }
    let mut ages: Vec<i64> = map.values().map(&at).collect();
    let drop = (map.len() + room - cap).min(ages.len());
    if drop == 0 {
        return;
    }
    let (_, cutoff, _) = ages.select_nth_unstable(drop - 1);
    let cutoff = *cutoff;
    let mut dropped = 0;
    map.retain(|_, v| {
        if dropped < drop && at(v) <= cutoff {
            dropped += 1;
            false
        } else {
            true
        }
    });
}

#[derive(Debug)]
struct State {
    pairs: Table<(String, Option<IpAddr>)>,
    addresses: Table<Option<IpAddr>>,
    accounts: Table<String>,
    /// Per account: the addresses it logged in from, with when.
    known: HashMap<String, Vec<(Option<IpAddr>, i64)>>,
    cap: usize,
}

/// What the throttle remembers, for tests and health: how many entries, and roughly how
/// many bytes their keys take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Keys over every table.
    pub entries: usize,
    /// Bytes of the user names they hold (the variable part).
    pub name_bytes: usize,
}

/// The login throttle of a node (see the module's doc).
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<State>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }
}

fn retry_after(until_ms: i64, now: i64) -> KernelError {
    KernelError::TooManyAttempts {
        retry_after_s: ((until_ms - now).max(1) + 999) / 1000,
    }
}

impl Throttle {
    /// A throttle whose tables hold at most `cap` keys each.
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            state: Mutex::new(State {
                pairs: Table::new(cap),
                addresses: Table::new(cap),
                accounts: Table::new(cap),
                known: HashMap::new(),
                cap,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Lets a password check for `user` from `addr` go ahead, and charges it as a failure
    /// (refunded by `succeeded`); or refuses it with `TooManyAttempts`. A user name longer
    /// than `MAX_LOGIN_NAME_BYTES` is charged to the address alone and refused with
    /// `Unauthorized(bad_login)`: no such user can exist, and its name is not kept.
    pub fn begin(&self, user: &str, addr: Option<IpAddr>, now: i64, bad_login: &str) -> Result<()> {
        let addr = client_key(addr);
        let mut s = self.state();
        let address = s.addresses.get(&addr, now);
        let address_locked =
            address.count >= ADDRESS_MAX_FAILURES && now - address.last_ms < LOCKOUT_MS;
        if user.len() > MAX_LOGIN_NAME_BYTES {
            if address_locked {
                return Err(retry_after(address.last_ms + LOCKOUT_MS, now));
            }
            charge_address(&mut s, addr, now);
            return Err(KernelError::Unauthorized(bad_login.to_owned()));
        }
        let key = (user.to_owned(), addr);
        let pair = s.pairs.get(&key, now);
        if pair.count >= PAIR_MAX_FAILURES && now - pair.last_ms < LOCKOUT_MS {
            return Err(retry_after(pair.last_ms + LOCKOUT_MS, now));
        }
        let usual = s.known.get(user).is_some_and(|k| {
            k.iter()
                .any(|(a, at)| *a == addr && now - at < KNOWN_FOR_MS)
        });
        if !usual {
            if address_locked {
                return Err(retry_after(address.last_ms + LOCKOUT_MS, now));
            }
            let account = s.accounts.get(&user.to_owned(), now);
            if account.count >= ACCOUNT_SLOW_AFTER {
                if let Some(at) = account.slow_ms
                    && now - at < ACCOUNT_SLOW_MS
                {
                    return Err(retry_after(at + ACCOUNT_SLOW_MS, now));
                }
                s.accounts.entry(&user.to_owned(), now).slow_ms = Some(now);
            }
        }
        let p = s.pairs.entry(&key, now);
        p.count += 1;
        p.last_ms = now;
        let a = s.accounts.entry(&user.to_owned(), now);
        a.count += 1;
        a.last_ms = now;
        charge_address(&mut s, addr, now);
        Ok(())
    }

    /// The check `begin` let through failed: it stays charged. Logged once a pair locks.
    pub fn failed(&self, user: &str, addr: Option<IpAddr>, now: i64) {
        let addr = client_key(addr);
        let s = self.state();
        let pair = s.pairs.get(&(user.to_owned(), addr), now);
        if pair.count == PAIR_MAX_FAILURES {
            tracing::warn!(
                user,
                ?addr,
                "logins for this user from this address locked for a while"
            );
        }
        let account = s.accounts.get(&user.to_owned(), now);
        if account.count == ACCOUNT_SLOW_AFTER {
            tracing::warn!(
                user,
                "many failed logins for this user: unusual addresses are slowed"
            );
        }
    }

    /// The check `begin` let through succeeded: the pair's failures are forgotten, the
    /// account's and the address's charge for it refunded, and the address becomes one the
    /// account usually logs in from.
    pub fn succeeded(&self, user: &str, addr: Option<IpAddr>, now: i64) {
        let addr = client_key(addr);
        let mut guard = self.state();
        let s = &mut *guard;
        s.pairs.remove(&(user.to_owned(), addr));
        for c in [s.accounts.map.get_mut(user), s.addresses.map.get_mut(&addr)]
            .into_iter()
            .flatten()
        {
            c.count = c.count.saturating_sub(1);
        }
        let cap = s.cap;
        if !s.known.contains_key(user) && s.known.len() >= cap {
            evict(&mut s.known, cap, now, |v| {
                v.iter().map(|(_, at)| *at).max().unwrap_or(0)
            });
        }
        let list = s.known.entry(user.to_owned()).or_default();
        list.retain(|(a, at)| *a != addr && now - at < KNOWN_FOR_MS);
        list.push((addr, now));
        if list.len() > KNOWN_ADDRESSES {
            list.remove(0);
        }
    }

    /// How much the throttle holds now.
    pub fn footprint(&self) -> Footprint {
        let s = self.state();
        Footprint {
            entries: s.pairs.map.len()
                + s.addresses.map.len()
                + s.accounts.map.len()
                + s.known.len(),
            name_bytes: s.pairs.map.keys().map(|(u, _)| u.len()).sum::<usize>()
                + s.accounts.map.keys().map(String::len).sum::<usize>()
                + s.known.keys().map(String::len).sum::<usize>(),
        }
    }
}

fn charge_address(s: &mut State, addr: Option<IpAddr>, now: i64) {
    let a = s.addresses.entry(&addr, now);
    if now - a.first_ms >= ADDRESS_WINDOW_MS && a.count < ADDRESS_MAX_FAILURES {
        // A new window: the address was under the limit in the last one.
        *a = Counter {
            first_ms: now,
            ..Counter::default()
        };
    }
    a.count += 1;
    a.last_ms = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: &str = "bad login";

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn guess(t: &Throttle, user: &str, addr: Option<IpAddr>, now: i64) -> Result<()> {
        t.begin(user, addr, now, BAD)?;
        t.failed(user, addr, now);
        Ok(())
    }

    #[test]
    fn a_guesser_locks_only_their_own_address() {
        let t = Throttle::default();
        let (attacker, owner) = (ip("203.0.113.9"), ip("198.51.100.7"));
        t.begin("admin", owner, 0, BAD).ok();
        t.succeeded("admin", owner, 0);
        for i in 0..PAIR_MAX_FAILURES {
            assert!(guess(&t, "admin", attacker, i64::from(i)).is_ok());
        }
        assert!(matches!(
            t.begin("admin", attacker, 10, BAD),
            Err(KernelError::TooManyAttempts { retry_after_s: 60 })
        ));
        assert!(
            t.begin("admin", owner, 10, BAD).is_ok(),
            "the owner is not locked out"
        );
        t.succeeded("admin", owner, 10);
        assert!(
            t.begin("admin", attacker, LOCKOUT_MS + 5, BAD).is_ok(),
            "a lock ends"
        );
    }

    #[test]
    fn an_address_spraying_names_is_refused_but_for_its_known_accounts() {
        let t = Throttle::default();
        let office = ip("192.0.2.1");
        t.begin("xiaoli", office, 0, BAD).ok();
        t.succeeded("xiaoli", office, 0);
        for i in 0..ADDRESS_MAX_FAILURES {
            assert!(guess(&t, &format!("name{i}"), office, 1).is_ok());
        }
        assert!(t.begin("someone_else", office, 2, BAD).is_err());
        assert!(t.begin("xiaoli", office, 2, BAD).is_ok(), "known here");
        assert!(t.begin("someone_else", ip("192.0.2.2"), 2, BAD).is_ok());
    }

    #[test]
    fn an_account_under_attack_is_slowed_from_unusual_addresses_only() {
        let t = Throttle::default();
        let home = ip("2001:db8:1::5");
        t.begin("chenzong", home, 0, BAD).ok();
        t.succeeded("chenzong", home, 0);
        for i in 0..ACCOUNT_SLOW_AFTER {
            let bot = ip(&format!("203.0.113.{i}"));
            assert!(guess(&t, "chenzong", bot, 1).is_ok());
        }
        let bot = ip("198.51.100.200");
        assert!(t.begin("chenzong", bot, 2, BAD).is_ok(), "one let through");
        t.failed("chenzong", bot, 2);
        assert!(matches!(
            t.begin("chenzong", ip("198.51.100.201"), 3, BAD),
            Err(KernelError::TooManyAttempts { retry_after_s: 5 })
        ));
        assert!(
            t.begin("chenzong", ip("198.51.100.201"), 2 + ACCOUNT_SLOW_MS, BAD)
                .is_ok()
        );
        // The same /64 is the usual place.
        assert!(t.begin("chenzong", ip("2001:db8:1::77"), 4, BAD).is_ok());
    }

    #[test]
    fn long_names_are_never_kept_and_tables_stay_bounded() {
        let t = Throttle::with_capacity(100);
        let long = "x".repeat(MAX_LOGIN_NAME_BYTES + 1);
        assert!(matches!(
            t.begin(&long, None, 0, BAD),
            Err(KernelError::Unauthorized(m)) if m == BAD
        ));
        assert_eq!(t.footprint().name_bytes, 0);
        for i in 0..1_000u32 {
            let addr = Some(IpAddr::V4(std::net::Ipv4Addr::from(i)));
            let name = format!("{i:0>100}");
            guess(&t, &name, addr, i64::from(i)).ok();
        }
        let f = t.footprint();
        assert!(f.entries <= 3 * 100, "{f:?}");
        assert!(f.name_bytes <= 2 * 100 * MAX_LOGIN_NAME_BYTES, "{f:?}");
        // The newest are kept: the last guesser's pair is still counted.
        let last = Some(IpAddr::V4(std::net::Ipv4Addr::from(999u32)));
        let s = t.state();
        assert_eq!(
            s.pairs
                .get(&(format!("{:0>100}", 999), client_key(last)), 999)
                .count,
            1
        );
    }
}
