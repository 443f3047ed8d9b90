//! Sign-in throttling: failed sign-ins are counted per account and per source address in fixed
//! windows; once a count reaches its limit, sign-in for that key is refused until the window
//! ends. A refusal always expires, so an attacker can slow the owner down but never lock them
//! out for good, and refusals look the same whether or not the account exists (the account key
//! is the typed user ID, existing or not).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Most keys each table holds; past it the oldest windows are dropped.
const KEYS_MAX: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

struct Table<K> {
    windows: Mutex<HashMap<K, Window>>,
    limit: u32,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(limit: u32) -> Table<K> {
        Table {
            windows: Mutex::new(HashMap::new()),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Window>> {
        // Every change is one insert or remove: a poisoned map is still consistent.
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long `key` must still wait, if it is at its limit.
    fn refused_for(&self, key: &K, now: Instant, length: Duration) -> Option<Duration> {
        let windows = self.lock();
        let window = windows.get(key)?;
        let ends = window.started + length;
        (window.failures >= self.limit && now < ends).then(|| ends - now)
    }

    fn fail(&self, key: K, now: Instant, length: Duration) {
        let mut windows = self.lock();
        if windows.len() >= KEYS_MAX && !windows.contains_key(&key) {
            windows.retain(|_, w| now < w.started + length);
            if windows.len() >= KEYS_MAX {
                let mut starts: Vec<Instant> = windows.values().map(|w| w.started).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                windows.retain(|_, w| w.started > cut);
            }
        }
        let window = windows.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now >= window.started + length {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// The per-account and per-source failure counts.
pub(crate) struct LoginThrottle {
    accounts: Table<String>,
    sources: Table<IpAddr>,
    window: Duration,
}

impl LoginThrottle {
    pub fn new(account_max: u32, source_max: u32, window: Duration) -> LoginThrottle {
        LoginThrottle {
            accounts: Table::new(account_max),
            sources: Table::new(source_max),
            window,
        }
    }

    /// `Err(wait)` if a sign-in as `account` from `source` must be refused now.
    pub fn check(&self, account: &str, source: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let by_account = self
            .accounts
            .refused_for(&account_key(account), now, self.window);
        let by_source =
            source.and_then(|s| self.sources.refused_for(&source_key(s), now, self.window));
        match by_account.max(by_source) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, account: &str, source: Option<IpAddr>) {
        let now = Instant::now();
        self.accounts.fail(account_key(account), now, self.window);
        if let Some(source) = source {
            self.sources.fail(source_key(source), now, self.window);
        }
    }

    /// A successful sign-in forgets the account's failures (not the source's: one's own account
    /// must not reset a guessing source's count).
    pub fn succeeded(&self, account: &str) {
        self.accounts.clear(&account_key(account));
    }
}

/// The typed user ID, as the sign-up rule would fold it, bounded in length.
fn account_key(typed: &str) -> String {
    typed
        .trim()
        .chars()
        .take(32)
        .collect::<String>()
        .to_lowercase()
}

/// IPv4 addresses count alone; IPv6 ones by /64, the least a subscriber usually gets.
fn source_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refusal_after_the_limit_expires_with_the_window() {
        let throttle = LoginThrottle::new(3, 100, Duration::from_secs(900));
        for _ in 0..3 {
            assert_eq!(throttle.check("Alice1", None), Ok(()));
            throttle.failed("alice1", None);
        }
        let wait = throttle.check("ALICE1", None).expect_err("at the limit");
        assert!(wait <= Duration::from_secs(900));
        assert_eq!(
            throttle.check("bob12", None),
            Ok(()),
            "other accounts unaffected"
        );
        tokio::time::advance(Duration::from_secs(900)).await;
        assert_eq!(throttle.check("alice1", None), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn sources_are_counted_by_v4_address_and_v6_prefix() {
        let throttle = LoginThrottle::new(100, 2, Duration::from_secs(60));
        let a: IpAddr = "2001:db8:1:2::10".parse().expect("literal");
        let b: IpAddr = "2001:db8:1:2::20".parse().expect("literal");
        let c: IpAddr = "2001:db8:1:3::20".parse().expect("literal");
        throttle.failed("x", Some(a));
        throttle.failed("y", Some(b));
        assert!(throttle.check("z", Some(a)).is_err());
        assert_eq!(throttle.check("z", Some(c)), Ok(()));
        assert_eq!(throttle.check("z", None), Ok(()));
    }
}
