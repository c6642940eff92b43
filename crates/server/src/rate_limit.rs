//! Limits on failed password attempts, per account and per client address.
//!
//! Each key counts its failures in a fixed window. Once a key reaches its limit,
//! password checks for it are rejected without running Argon2 until the window
//! ends. A successful sign-in clears the account's count.
//!
//! NOTE: the counts live in memory, so they are per process and start again at
//! zero after a restart. Behind a reverse proxy every request comes from the
//! proxy's address, so the per-address limit then applies to all users together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Length of the window in which failures are counted.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed attempts for one account name within [`WINDOW`] before it is locked.
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 10;
/// Failed attempts from one address within [`WINDOW`] before it is locked.
pub const MAX_FAILURES_PER_ADDRESS: u32 = 30;

/// Counts beyond this many keys are pruned of expired windows on insert.
const PRUNE_THRESHOLD: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Default)]
struct Counters {
    accounts: HashMap<String, Window>,
    addresses: HashMap<IpAddr, Window>,
}

/// A password check that must not run yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// Time until the window ends.
    pub retry_after: Duration,
}

impl Locked {
    /// Returns the wait in whole minutes, rounded up, for messages.
    pub fn retry_after_minutes(&self) -> u64 {
        self.retry_after.as_secs().div_ceil(60).max(1)
    }
}

/// Failed-attempt counters shared by the token endpoint and the sign-in page.
#[derive(Default)]
pub struct PasswordAttempts {
    counters: Mutex<Counters>,
}

impl PasswordAttempts {
    /// Returns `Err` when `account` or `address` has used up its attempts.
    pub fn check(&self, account: &str, address: IpAddr) -> Result<(), Locked> {
        let now = Instant::now();
        let counters = self.lock();
        let account_lock = locked_until(
            counters.accounts.get(&account_key(account)),
            MAX_FAILURES_PER_ACCOUNT,
            now,
        );
        let address_lock = locked_until(
            counters.addresses.get(&address),
            MAX_FAILURES_PER_ADDRESS,
            now,
        );
        match account_lock.max(address_lock) {
            Some(retry_after) => Err(Locked { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a wrong password for `account` from `address`.
    pub fn record_failure(&self, account: &str, address: IpAddr) {
        let now = Instant::now();
        let mut counters = self.lock();
        count(&mut counters.accounts, account_key(account), now);
        count(&mut counters.addresses, address, now);
    }

    /// Clears the account's count after a correct password.
    pub fn record_success(&self, account: &str) {
        self.lock().accounts.remove(&account_key(account));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // The counters stay consistent even if a holder panicked: each update is
        // a single insert or remove.
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Account names are compared case-insensitively, so `Alice` and `alice` share
/// one count even though only one of them can exist.
fn account_key(account: &str) -> String {
    account.to_lowercase()
}

fn locked_until(window: Option<&Window>, max: u32, now: Instant) -> Option<Duration> {
    let window = window?;
    let elapsed = now.saturating_duration_since(window.started);
    if elapsed >= WINDOW || window.failures < max {
        return None;
    }
    Some(WINDOW - elapsed)
}

fn count<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Window>, key: K, now: Instant) {
    if map.len() >= PRUNE_THRESHOLD {
        map.retain(|_, window| now.saturating_duration_since(window.started) < WINDOW);
    }
    let window = map.entry(key).or_insert(Window {
        started: now,
        failures: 0,
    });
    if now.saturating_duration_since(window.started) >= WINDOW {
        *window = Window {
            started: now,
            failures: 0,
        };
    }
    window.failures = window.failures.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn account_locks_at_limit() {
        let attempts = PasswordAttempts::default();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT - 1 {
            attempts.record_failure("alice", HOME);
        }
        assert!(attempts.check("alice", HOME).is_ok());
        attempts.record_failure("ALICE", HOME);
        let locked = attempts.check("alice", HOME).unwrap_err();
        assert!(locked.retry_after <= WINDOW);
        assert_eq!(locked.retry_after_minutes(), 15);
    }

    #[test]
    fn other_account_stays_open() {
        let attempts = PasswordAttempts::default();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT {
            attempts.record_failure("alice", HOME);
        }
        assert!(attempts.check("bob", HOME).is_ok());
    }

    #[test]
    fn address_locks_across_accounts() {
        let attempts = PasswordAttempts::default();
        for index in 0..MAX_FAILURES_PER_ADDRESS {
            attempts.record_failure(&format!("user{index}"), HOME);
        }
        assert!(attempts.check("someone-else", HOME).is_err());
        let other_address: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(attempts.check("someone-else", other_address).is_ok());
    }

    #[test]
    fn success_clears_account_count() {
        let attempts = PasswordAttempts::default();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT - 1 {
            attempts.record_failure("alice", HOME);
        }
        attempts.record_success("alice");
        attempts.record_failure("alice", HOME);
        assert!(attempts.check("alice", HOME).is_ok());
    }
}
