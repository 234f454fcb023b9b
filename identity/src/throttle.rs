//! Login throttling: password guessing is slowed per account and per client
//! address, and a throttled attempt is refused before any hashing.
//!
//! Each key (an account, a client address) counts failed attempts. Past
//! the key's limit, every further failure locks the key for a backoff that
//! doubles from [`ThrottleConfig::base_lockout`] up to
//! [`ThrottleConfig::max_lockout`]; failures older than
//! [`ThrottleConfig::forget_after`] are forgotten, and a successful login
//! clears its account's count. An attempt is counted as a failure when it
//! *starts* and refunded if it succeeds: otherwise a burst of concurrent
//! guesses would all pass the check before the first one failed.
//!
//! The state is in memory, per node: behind a load balancer an attacker
//! gets each node's allowance. Memory is bounded: each map keeps at most
//! [`ThrottleConfig::max_keys`] keys in two generations, the older dropped
//! whole when the newer fills, so rotating usernames or addresses evicts
//! old entries instead of growing the map.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{IdentityError, Result};

/// Limits of login throttling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed logins of one account before it is locked out.
    pub account_failures: u32,
    /// Failed logins from one client address (an IPv6 /64) before it is
    /// locked out.
    pub address_failures: u32,
    /// The first lockout; each further failure doubles it.
    pub base_lockout: Duration,
    /// The longest lockout.
    pub max_lockout: Duration,
    /// Failures older than this are forgotten.
    pub forget_after: Duration,
    /// Most keys remembered per kind (accounts, addresses).
    pub max_keys: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            account_failures: 5,
            address_failures: 20,
            base_lockout: Duration::from_secs(2),
            max_lockout: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(15 * 60),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// A bounded map in two generations: lookups promote entries from the
/// previous generation; when the current one holds half the bound, it
/// becomes the previous one and the old previous one is dropped.
#[derive(Debug)]
struct Keys {
    current: HashMap<String, Entry>,
    previous: HashMap<String, Entry>,
    half: usize,
}

impl Keys {
    fn new(max_keys: usize) -> Keys {
        Keys {
            current: HashMap::new(),
            previous: HashMap::new(),
            half: (max_keys / 2).max(1),
        }
    }

    fn peek(&self, key: &str) -> Option<&Entry> {
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    fn entry(&mut self, key: &str, now: Instant) -> &mut Entry {
        let mut promoted = None;
        if !self.current.contains_key(key) {
            if self.current.len() >= self.half {
                self.previous = std::mem::take(&mut self.current);
            }
            promoted = self.previous.remove(key);
        }
        self.current
            .entry(key.to_owned())
            .or_insert(promoted.unwrap_or(Entry {
                failures: 0,
                last: now,
                locked_until: None,
            }))
    }

    fn peek_mut(&mut self, key: &str) -> Option<&mut Entry> {
        match self.current.get_mut(key) {
            Some(entry) => Some(entry),
            None => self.previous.get_mut(key),
        }
    }

    fn remove(&mut self, key: &str) {
        self.current.remove(key);
        self.previous.remove(key);
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// Login throttling state of one node.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    accounts: Mutex<Keys>,
    addresses: Mutex<Keys>,
}

/// An attempt let through: a failure unless settled otherwise. Dropping it
/// (a wrong password, an error) leaves the failure counted.
#[derive(Debug)]
#[must_use = "an attempt is a failure unless it is settled"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: String,
    address: Option<String>,
}

impl LoginThrottle {
    /// Empty state with these limits.
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            accounts: Mutex::new(Keys::new(config.max_keys)),
            addresses: Mutex::new(Keys::new(config.max_keys)),
            config,
        }
    }

    /// The limits.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Lets an attempt on `account` from `client` through, counted as a
    /// failure until settled, or refuses it with
    /// [`IdentityError::Throttled`] while either key is locked out.
    /// `account` is any stable name of the account (its id, or the
    /// normalized login when there is no such account).
    pub fn begin(&self, account: &str, client: Option<IpAddr>) -> Result<Attempt<'_>> {
        let now = Instant::now();
        let account = account_key(account);
        let address = client.map(address_key);
        let mut accounts = lock(&self.accounts);
        let mut addresses = lock(&self.addresses);
        let wait = [
            locked_for(accounts.peek(&account), now),
            address
                .as_deref()
                .and_then(|a| locked_for(addresses.peek(a), now)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(IdentityError::throttled(whole_seconds(wait)));
        }
        self.count(accounts.entry(&account, now), self.config.account_failures, now);
        if let Some(address) = &address {
            self.count(addresses.entry(address, now), self.config.address_failures, now);
        }
        Ok(Attempt {
            throttle: self,
            account,
            address,
        })
    }

    fn count(&self, entry: &mut Entry, limit: u32, now: Instant) {
        if now.saturating_duration_since(entry.last) > self.config.forget_after {
            entry.failures = 0;
            entry.locked_until = None;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        if entry.failures >= limit.max(1) {
            let doublings = (entry.failures - limit.max(1)).min(30);
            let lockout = self
                .config
                .base_lockout
                .saturating_mul(1u32 << doublings)
                .min(self.config.max_lockout);
            entry.locked_until = Some(now + lockout);
        }
    }

    /// Takes one counted failure back from a key.
    fn refund(keys: &Mutex<Keys>, key: &str, limit: u32) {
        let mut keys = lock(keys);
        if let Some(entry) = keys.peek_mut(key) {
            entry.failures = entry.failures.saturating_sub(1);
            if entry.failures < limit.max(1) {
                entry.locked_until = None;
            }
        }
    }

    /// Number of keys remembered (accounts and addresses).
    pub fn tracked_keys(&self) -> usize {
        lock(&self.accounts).len() + lock(&self.addresses).len()
    }
}

impl Attempt<'_> {
    /// The credential was right: the account's failures are forgotten and
    /// the address's count is refunded.
    pub fn succeeded(self) {
        lock(&self.throttle.accounts).remove(&self.account);
        if let Some(address) = &self.address {
            LoginThrottle::refund(
                &self.throttle.addresses,
                address,
                self.throttle.config.address_failures,
            );
        }
    }

    /// The credential was never checked (the password threads were busy):
    /// nothing was guessed, so nothing is counted.
    pub fn abandoned(self) {
        let config = &self.throttle.config;
        LoginThrottle::refund(&self.throttle.accounts, &self.account, config.account_failures);
        if let Some(address) = &self.address {
            LoginThrottle::refund(&self.throttle.addresses, address, config.address_failures);
        }
    }
}

fn lock(keys: &Mutex<Keys>) -> std::sync::MutexGuard<'_, Keys> {
    // The maps stay consistent whatever panicked while holding the lock.
    keys.lock().unwrap_or_else(|e| e.into_inner())
}

fn locked_for(entry: Option<&Entry>, now: Instant) -> Option<Duration> {
    entry
        .and_then(|e| e.locked_until)
        .filter(|until| *until > now)
        .map(|until| until - now)
}

/// A wait as whole seconds for `Retry-After`, rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Accounts are keyed by a digest: fixed size whatever the client sent.
fn account_key(account: &str) -> String {
    crate::secret::hash_secret(&account.trim().to_lowercase())
}

/// Addresses are keyed by IPv4 address or IPv6 /64 (one subscriber's
/// allocation, so rotating within it gains nothing).
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            account_failures: 3,
            address_failures: 5,
            base_lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(600),
            forget_after: Duration::from_secs(600),
            max_keys: 8,
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn an_account_locks_after_its_failures_and_success_clears_it() {
        let t = LoginThrottle::new(config());
        for _ in 0..3 {
            drop(t.begin("ada", ip("10.0.0.1")).expect("allowed"));
        }
        let refused = t.begin("ADA ", ip("10.0.0.2")).expect_err("locked");
        assert!(
            matches!(
                refused,
                IdentityError::Throttled {
                    retry_after_secs: 60,
                    ..
                }
            ),
            "{refused:?}"
        );
        // Another account from the same address is still allowed.
        t.begin("bob", ip("10.0.0.1")).expect("other account").succeeded();
        let t = LoginThrottle::new(config());
        drop(t.begin("ada", None).expect("allowed"));
        t.begin("ada", None).expect("allowed").succeeded();
        for _ in 0..2 {
            drop(t.begin("ada", None).expect("count was reset"));
        }
    }

    #[test]
    fn an_address_locks_across_accounts_and_ipv6_counts_per_64() {
        let t = LoginThrottle::new(config());
        for n in 0..5 {
            drop(
                t.begin(&format!("user{n}"), ip("2001:db8:1:2::1"))
                    .expect("allowed"),
            );
        }
        assert!(
            t.begin("someone", ip("2001:db8:1:2:ffff::9")).is_err(),
            "same /64"
        );
        t.begin("someone", ip("2001:db8:1:3::1"))
            .expect("other /64")
            .succeeded();
        assert!(t.begin("x", ip("::ffff:10.1.1.1")).is_ok());
    }

    #[test]
    fn concurrent_attempts_count_before_they_finish() {
        let t = LoginThrottle::new(config());
        let held: Vec<_> = (0..3).map(|_| t.begin("ada", None).expect("allowed")).collect();
        assert!(t.begin("ada", None).is_err(), "the fourth in flight is refused");
        for attempt in held {
            attempt.abandoned();
        }
        t.begin("ada", None).expect("refunded").succeeded();
    }

    #[test]
    fn lockouts_double_up_to_the_cap() {
        let t = LoginThrottle::new(ThrottleConfig {
            base_lockout: Duration::ZERO,
            ..config()
        });
        for _ in 0..40 {
            drop(t.begin("ada", None).expect("no lockout with a zero base"));
        }
        let mut entry = lock(&t.accounts)
            .peek(&account_key("ada"))
            .copied()
            .expect("tracked");
        let now = Instant::now();
        let t = LoginThrottle::new(config());
        t.count(&mut entry, 3, now);
        assert_eq!(locked_for(Some(&entry), now), Some(Duration::from_secs(600)));
    }

    #[test]
    fn memory_is_bounded_when_keys_rotate() {
        let t = LoginThrottle::new(config());
        for n in 0..10_000 {
            drop(t.begin(
                &format!("user{n}"),
                Some(IpAddr::from([10, 0, (n / 256) as u8, n as u8])),
            ));
        }
        assert!(t.tracked_keys() <= 16, "{}", t.tracked_keys());
    }
}
