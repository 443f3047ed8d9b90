//! Flood control: the governor quotas behind reply `911`.
//!
//! Two keyed GCRA limiters (governor's, on a `DashMap` so that checks on different keys rarely
//! contend):
//!
//! - **per source**: every request on every path is charged to its source address before the
//!   credential is even looked at, so a client cannot brute-force tokens or flood the server
//!   with junk. An IPv6 source is charged per **/64**, because one host commonly owns a whole
//!   /64 and could otherwise rotate through 2^64 addresses to get fresh quotas. An IPv4-mapped
//!   IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports for IPv4 clients) is
//!   charged as the IPv4 address, not lumped into the /64 that holds every IPv4 client. The
//!   address must be the client's, after trusted-proxy `X-Forwarded-For` handling. A carrier
//!   NAT puts many devices behind one IPv4 address: where a fleet sits behind one, raise
//!   `source_requests_per_minute` (the device quota still holds each device to its own rate).
//! - **per device**: every add/update/remove is charged to its device (vendor + MAC), so one
//!   misbehaving firmware cannot churn the log whatever addresses it comes from. A DVR's host
//!   is a device of its own here (its name is its key).
//! - **password guesses**: every host password that must be checked by argon2 (one not
//!   verified before: a wrong one, or a DVR's first after a restart) is charged to the host and
//!   to the source, so a 3-character password cannot be guessed at line rate and nobody can
//!   make the server run argon2 at will. A DVR that sends the password it sent before is
//!   answered from memory and charged nothing here.
//!
//! Each quota is "`N` per minute, with bursts of `B`": a key may spend `B` requests at once, and
//! gets one back every `60/N` seconds. A rate of 0 turns that quota off; a burst of 0 means 1.
//!
//! Keys stay in memory until their state is indistinguishable from a fresh key's (governor
//! waits one emission interval past a full refill); [`FloodGuard::prune`] drops those, so memory
//! is bounded by the keys active in the last `(B + 1) × 60/N` seconds (per-source defaults:
//! 12.1 s; per-device: 36 s) plus the prune period, rather than by every key ever seen. Device
//! keys are a 128-bit keyed hash of (vendor, MAC), so an entry is a fixed ~40 bytes whatever the
//! MAC's length, and no check allocates.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// The flood quotas, from the config file. Missing fields take their defaults.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FloodConfig {
    /// Sustained adds/updates/removes per device per minute (0: no limit). Default 10.
    pub device_updates_per_minute: u32,
    /// Requests a device may make at once before the rate applies. Default 5.
    pub device_burst: u32,
    /// Sustained requests per source address (IPv6: per /64) per minute (0: no limit).
    /// Default 600.
    pub source_requests_per_minute: u32,
    /// Requests a source may make at once before the rate applies. Default 120.
    pub source_burst: u32,
    /// Host passwords checked by argon2 per host per minute (bursts of half as many). Default 6.
    pub password_guesses_per_host_per_minute: u32,
    /// Host passwords checked by argon2 per source per minute (bursts of half as many).
    /// Default 60.
    pub password_guesses_per_source_per_minute: u32,
}

impl Default for FloodConfig {
    fn default() -> FloodConfig {
        FloodConfig {
            device_updates_per_minute: 10,
            device_burst: 5,
            source_requests_per_minute: 600,
            source_burst: 120,
            password_guesses_per_host_per_minute: 6,
            password_guesses_per_source_per_minute: 60,
        }
    }
}

type Limiter<K, C> = RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Shards of each limiter's map. [`FloodGuard::prune`] locks one shard at a time, and checks
/// of keys in that shard wait for it: after a surge a map holds a million keys, and with
/// DashMap's default (4 × cores: 8 here) one shard's pass took milliseconds.
const SHARDS: usize = 512;

/// The running quotas; share one per server (it is `Sync`).
///
/// `C` is governor's clock: the default reads a fast monotonic clock; tests pass
/// [`governor::clock::FakeRelativeClock`] to [`FloodGuard::with_clock`] and move time by hand.
pub struct FloodGuard<C: Clock = DefaultClock> {
    sources: Option<Limiter<IpAddr, C>>,
    devices: Option<Limiter<u128, C>>,
    host_guesses: Option<Limiter<u128, C>>,
    source_guesses: Option<Limiter<IpAddr, C>>,
    /// Two independent random SipHash keys: the device key is both hashes, 128 bits, so that
    /// collisions are out of reach even for someone choosing MACs.
    device_hashers: [RandomState; 2],
}

impl FloodGuard {
    /// Builds the quotas on the default clock.
    pub fn new(config: &FloodConfig) -> FloodGuard {
        FloodGuard::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> FloodGuard<C> {
    /// Builds the quotas on the given clock.
    pub fn with_clock(config: &FloodConfig, clock: C) -> FloodGuard<C> {
        FloodGuard {
            sources: limiter(
                config.source_requests_per_minute,
                config.source_burst,
                clock.clone(),
            ),
            devices: limiter(
                config.device_updates_per_minute,
                config.device_burst,
                clock.clone(),
            ),
            host_guesses: limiter(
                config.password_guesses_per_host_per_minute,
                config.password_guesses_per_host_per_minute / 2,
                clock.clone(),
            ),
            source_guesses: limiter(
                config.password_guesses_per_source_per_minute,
                config.password_guesses_per_source_per_minute / 2,
                clock,
            ),
            device_hashers: [RandomState::new(), RandomState::new()],
        }
    }
}

/// `per_minute` with bursts of `burst`; `None` (no limit) if the rate is 0.
fn limiter<K, C>(per_minute: u32, burst: u32, clock: C) -> Option<Limiter<K, C>>
where
    K: Hash + Eq + Clone,
    C: Clock,
{
    let per_minute = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::per_minute(per_minute).allow_burst(burst);
    let store = DashMapStateStore::<K>::with_shard_amount(SHARDS);
    Some(RateLimiter::new(quota, store, clock))
}

impl<C: Clock> FloodGuard<C> {
    /// Every request, including failed credentials, is charged to its source address (so tokens
    /// can't be brute-forced). IPv6 sources are charged per /64. `false` means reply `911`.
    pub fn allow_source(&self, source: IpAddr) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|limiter| limiter.check_key(&source_key(source)).is_ok())
    }

    /// Every add/update/remove is charged to the device (vendor + MAC, as the credential gave
    /// them). `false` means reply `911`.
    pub fn allow_device(&self, vendor: &str, mac: &str) -> bool {
        self.devices
            .as_ref()
            .is_none_or(|limiter| limiter.check_key(&self.device_key(vendor, mac)).is_ok())
    }

    /// Charges one argon2 check of `host`'s password to the host and to `source`. `false` means
    /// the guess is refused (flood) without checking it.
    pub fn allow_password_guess(&self, host: &str, source: IpAddr) -> bool {
        let host_ok = self
            .host_guesses
            .as_ref()
            .is_none_or(|limiter| limiter.check_key(&self.device_key("@host", host)).is_ok());
        host_ok
            && self
                .source_guesses
                .as_ref()
                .is_none_or(|limiter| limiter.check_key(&source_key(source)).is_ok())
    }

    /// Drops idle keys (call periodically, e.g. every 60 s) so memory stays bounded under a
    /// flood of distinct keys. A key is idle one emission interval (`60/N` s) after its burst
    /// has fully refilled; forgetting it then changes no answer.
    ///
    /// It walks every key (a million after a surge: tens of milliseconds), one shard locked
    /// at a time, so call it where blocking is fine (`spawn_blocking`), not on a runtime
    /// thread that serves requests. The maps give memory back only when most of it is unused.
    pub fn prune(&self) {
        for limiter in self.sources.iter().chain(&self.source_guesses) {
            prune(limiter);
        }
        for limiter in self.devices.iter().chain(&self.host_guesses) {
            prune(limiter);
        }
    }

    /// Source keys (addresses and /64s) currently held, for a gauge.
    pub fn tracked_sources(&self) -> usize {
        self.sources.as_ref().map_or(0, |l| l.len())
    }

    /// Device keys currently held, for a gauge.
    pub fn tracked_devices(&self) -> usize {
        self.devices.as_ref().map_or(0, |l| l.len())
    }

    fn device_key(&self, vendor: &str, mac: &str) -> u128 {
        let [high, low] = self.device_hashers.each_ref().map(|keys| {
            let mut h = keys.build_hasher();
            // `str`'s Hash ends each string with a marker, so ("ab", "c") ≠ ("a", "bc").
            vendor.hash(&mut h);
            mac.hash(&mut h);
            h.finish()
        });
        u128::from(high) << 64 | u128::from(low)
    }
}

fn prune<K: Hash + Eq + Clone, C: Clock>(limiter: &Limiter<K, C>) {
    let before = limiter.len();
    limiter.retain_recent();
    // Shrinking rebuilds every shard's table; worth it only once most keys are gone.
    if limiter.len() < before / 4 {
        limiter.shrink_to_fit();
    }
}

/// The key a source is charged to: an IPv4 address, or an IPv6 /64.
fn source_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(_) => source,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

impl<C: Clock> std::fmt::Debug for FloodGuard<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloodGuard")
            .field("tracked_sources", &self.tracked_sources())
            .field("tracked_devices", &self.tracked_devices())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use governor::clock::FakeRelativeClock;
    use serde::Deserialize;
    use serde::de::value::{Error, MapDeserializer};

    use super::*;

    fn guard() -> (FloodGuard<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            FloodGuard::with_clock(&FloodConfig::default(), clock.clone()),
            clock,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn device_burst_then_refused_then_refilled() {
        let (guard, clock) = guard();
        for i in 0..5 {
            assert!(guard.allow_device("acme", "AA:BB"), "request {i}");
        }
        assert!(!guard.allow_device("acme", "AA:BB"));
        // Others are unaffected while AA:BB floods: another MAC, the same MAC of another vendor.
        assert!(guard.allow_device("acme", "AA:BC"));
        assert!(guard.allow_device("other", "AA:BB"));
        // 10 per minute: one more every 6 s.
        clock.advance(Duration::from_secs(6));
        assert!(guard.allow_device("acme", "AA:BB"));
        assert!(!guard.allow_device("acme", "AA:BB"));
    }

    #[test]
    fn device_key_separates_vendor_from_mac() {
        let (guard, _) = guard();
        assert_ne!(guard.device_key("ab", "c"), guard.device_key("a", "bc"));
        assert_eq!(guard.device_key("a", "bc"), guard.device_key("a", "bc"));
    }

    #[test]
    fn source_burst_then_refused_others_unaffected() {
        let (guard, clock) = guard();
        for _ in 0..120 {
            assert!(guard.allow_source(ip("192.0.2.1")));
        }
        assert!(!guard.allow_source(ip("192.0.2.1")));
        assert!(guard.allow_source(ip("192.0.2.2")));
        assert!(guard.allow_source(ip("2001:db8::1")));
        clock.advance(Duration::from_millis(100));
        assert!(guard.allow_source(ip("192.0.2.1")));
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let (guard, _) = guard();
        for i in 0..120u32 {
            // A host rotating through its /64 draws on one quota.
            let addr = Ipv6Addr::from_bits(0x2001_0db8_0000_0001 << 64 | u128::from(i) << 32 | 7);
            assert!(guard.allow_source(IpAddr::V6(addr)));
        }
        assert!(!guard.allow_source(ip("2001:db8:0:1:ffff:ffff:ffff:ffff")));
        // The neighbouring /64 has its own.
        assert!(guard.allow_source(ip("2001:db8:0:2::1")));
        assert_eq!(guard.tracked_sources(), 2);
    }

    #[test]
    fn ipv4_mapped_sources_count_as_ipv4() {
        let (guard, _) = guard();
        for _ in 0..120 {
            assert!(guard.allow_source(ip("::ffff:198.51.100.1")));
        }
        assert!(!guard.allow_source(ip("198.51.100.1")));
        // Not one /64 for all IPv4 clients of a dual-stack socket.
        assert!(guard.allow_source(ip("::ffff:198.51.100.2")));
    }

    #[test]
    fn prune_drops_only_idle_keys() {
        let (guard, clock) = guard();
        for i in 0..1000u32 {
            assert!(guard.allow_source(IpAddr::V4(i.into())));
            assert!(guard.allow_device("acme", &i.to_string()));
        }
        for _ in 0..5 {
            guard.allow_device("acme", "busy");
        }
        assert_eq!(
            (guard.tracked_sources(), guard.tracked_devices()),
            (1000, 1001)
        );
        // Still refilling: nothing is idle yet.
        guard.prune();
        assert_eq!(
            (guard.tracked_sources(), guard.tracked_devices()),
            (1000, 1001)
        );
        // A request costs 100 ms of a source's quota and 6 s of a device's ("busy" spent 30 s);
        // governor forgets a key one interval after its burst has refilled.
        clock.advance(Duration::from_secs(13));
        guard.prune();
        assert_eq!((guard.tracked_sources(), guard.tracked_devices()), (0, 1));
        // A pruned key starts afresh with its full burst, exactly as if it had been kept.
        assert!((0..5).all(|_| guard.allow_device("acme", "0")));
        assert!(!guard.allow_device("acme", "0"));
        clock.advance(Duration::from_secs(37));
        guard.prune();
        assert_eq!(guard.tracked_devices(), 0);
    }

    #[test]
    fn zero_rate_turns_a_quota_off_and_zero_burst_means_one() {
        let config = FloodConfig {
            device_updates_per_minute: 0,
            source_burst: 0,
            ..FloodConfig::default()
        };
        let guard = FloodGuard::with_clock(&config, FakeRelativeClock::default());
        assert!((0..1000).all(|_| guard.allow_device("acme", "AA")));
        assert!(guard.allow_source(ip("192.0.2.1")));
        assert!(!guard.allow_source(ip("192.0.2.1")));
        assert_eq!(guard.tracked_devices(), 0);
    }

    #[test]
    fn real_clock_guard_works() {
        let guard = FloodGuard::new(&FloodConfig::default());
        assert!((0..120).all(|_| guard.allow_source(ip("192.0.2.1"))));
        assert!(!guard.allow_source(ip("192.0.2.1")));
    }

    #[test]
    fn config_fields_default_individually() {
        let fields = MapDeserializer::<_, Error>::new([("device_burst", 7u32)].into_iter());
        let config = FloodConfig::deserialize(fields).unwrap();
        assert_eq!(
            config,
            FloodConfig {
                device_burst: 7,
                ..FloodConfig::default()
            }
        );
        let typo = MapDeserializer::<_, Error>::new([("device_brust", 7u32)].into_iter());
        assert!(FloodConfig::deserialize(typo).is_err());
    }
}
