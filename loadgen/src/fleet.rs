//! The fleet model: every device's state, the schedule of when each acts next, and the client
//! rules of the seed (002_d0ce967169475bae.txt) that decide what it sends.
//!
//! # The rules a device follows
//!
//! - On its first boot it registers (`add`) unless it was registered before (`--registered`),
//!   in which case it sends an `update` anyway: "send an IP update upon reset/reboot even if an
//!   update is not needed".
//! - Every poll interval it asks `ipdetect` for its WAN address and, if that differs from the
//!   address the server last acknowledged, sends an `update`.
//! - Where its traffic comes from ([`FleetConfig::own_sources`]): by default each device sends
//!   from an address of its own in `127.0.0.0/8` ([`source_addr`]), which is its WAN address.
//!   `ipdetect` must then answer exactly that address, and `add`/`update` carry no `myip`: the
//!   server takes the source, as it does for a device behind a home router. With one source
//!   for the whole fleet (the old mode), the WAN address is simulated (198.18.0.0/15), sent as
//!   `myip`, and the `ipdetect` answer (the loadgen's own address) is only load.
//! - Each interval, a share of devices get a new WAN address (churn: with their own sources, a
//!   new source address, never another device's), a share reboot, and a share are
//!   decommissioned (`remove`, then silent).
//! - In a surge every device sends `add` once within a window, as a region's devices do when
//!   their links come back.
//! - A device is one sequential client: while its request is in flight it sends nothing else,
//!   and a slot that finds it busy is counted as skipped.
//!
//! # Memory
//!
//! A device is 9 bytes of state (WAN address, acknowledged address, flags) plus one or two
//! 16-byte entries in the schedule, a binary heap keyed by due time: no task or timer per
//! device, so a million devices take about 30 MB. Times are microseconds of real time since the
//! run started.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};

use crate::rng::{SplitMix64, derive};

/// Simulated WAN addresses of a single-source fleet come from 198.18.0.0/15 (RFC 2544, for
/// benchmarks): they are only record data, never a traffic target.
const ADDR_BASE: u32 = 0xC612_0000;
const ADDR_SPAN: u64 = 1 << 17;

/// Addresses devices send from ([`source_addr`]): `127.a.b.c` with each of `a`, `b`, `c` in
/// 1..=254, so that none is 127.0.0.1 (the server's address, and a single-source fleet's) or has
/// the form of a subnet's network (`.0`) or broadcast (`.255`) address. Linux routes all of
/// 127.0.0.0/8 to `lo` and binds any of it without configuration.
pub const SOURCES_MAX: u32 = 254 * 254 * 254;

/// The `index`th address of [`SOURCES_MAX`], in order from 127.1.1.1: device `d` starts at
/// the `d`th. Panics past the last.
pub fn source_addr(index: u32) -> Ipv4Addr {
    assert!(
        index < SOURCES_MAX,
        "127/8 holds {SOURCES_MAX} source addresses"
    );
    let octet = |i: u32| (i % 254 + 1) as u8;
    Ipv4Addr::new(
        127,
        octet(index / (254 * 254)),
        octet(index / 254),
        octet(index),
    )
}

/// The inverse of [`source_addr`]: `None` for an address it never gives.
pub fn source_index(addr: Ipv4Addr) -> Option<u32> {
    let [net, a, b, c] = addr.octets();
    let ok = |o: u8| (1..=254).contains(&o);
    (net == 127 && ok(a) && ok(b) && ok(c))
        .then(|| (u32::from(a) - 1) * 254 * 254 + (u32::from(b) - 1) * 254 + u32::from(c) - 1)
}

/// A request path of the device API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `/add.aspx`
    Add,
    /// `/update.aspx`
    Update,
    /// `/remove.aspx`
    Remove,
    /// `/ipdetect.aspx`
    Ipdetect,
    /// `/dvr/update` (a DVR's host name and host password: the DVR protocol)
    Dvr,
    /// `/nic/update` (dyndns2: a host name and host password in HTTP Basic auth)
    Dyndns2,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 6] = [
        Kind::Add,
        Kind::Update,
        Kind::Remove,
        Kind::Ipdetect,
        Kind::Dvr,
        Kind::Dyndns2,
    ];

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Add => "add",
            Kind::Update => "update",
            Kind::Remove => "remove",
            Kind::Ipdetect => "ipdetect",
            Kind::Dvr => "dvr",
            Kind::Dyndns2 => "dyndns2",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How a host (a name and a host password, created on the portal or through the admin socket)
/// is updated: the two protocols that authenticate with a host's own password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostProtocol {
    /// `GET /dvr/update?host=…&pw=…&ip=…`, answered `ACT` or `ERR 0x8000800N`.
    Dvr,
    /// `GET /nic/update?hostname=…&myip=…` with Basic auth `FQDN:password`, answered `good
    /// ADDR`, `nochg ADDR` or a word.
    Dyndns2,
}

impl HostProtocol {
    /// The request kind its updates are counted under.
    pub fn kind(self) -> Kind {
        match self {
            HostProtocol::Dvr => Kind::Dvr,
            HostProtocol::Dyndns2 => Kind::Dyndns2,
        }
    }
}

/// Why a device sends a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// First boot of a new device: `add`.
    Boot,
    /// A reboot (or the first boot of a registered device): `update` even without a change.
    Reboot,
    /// Re-registration in a surge: `add`.
    Surge,
    /// The regular `ipdetect` poll.
    Poll,
    /// `ipdetect` showed a WAN address the server does not have: `update`.
    Change,
    /// The device is taken out of service: `remove`.
    Decommission,
}

/// One request a device sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The device's index in the fleet.
    pub device: u32,
    /// Which path.
    pub kind: Kind,
    /// Why the device sends it.
    pub reason: Reason,
    /// The device's WAN address: the source it sends from (its own sources), or `myip` of
    /// its `add` and `update` (a single source).
    pub addr: Ipv4Addr,
    /// When it is due, in µs since the run started. Latency is measured from here.
    pub due_us: u64,
}

/// A reply body, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `10|fqdn`
    Created(String),
    /// `09`
    Modified,
    /// `08`
    NoChange,
    /// `07`
    NameTaken,
    /// `13`
    NotFound,
    /// `15`
    Deleted,
    /// `16`
    DeleteFailed,
    /// `14|ip`
    Registered(IpAddr),
    /// The body of `ipdetect`.
    Detected(IpAddr),
    /// `911`
    Flood,
    /// `12`
    ServerError,
    /// `01`
    InvalidHostname,
    /// `02`
    InvalidMac,
    /// `04`
    InvalidIp,
    /// `ACT`: a DVR's address was set, or was already current.
    Act,
    /// `ERR 0x8000800N`: the DVR protocol's refusals.
    DvrError(DvrError),
    /// `good ADDR`: a dyndns2 host's address changed (the first address of the line).
    Good(IpAddr),
    /// `nochg ADDR`: a dyndns2 host's address was already current.
    Nochg(IpAddr),
    /// A dyndns2 refusal other than `911` (which is [`Reply::Flood`]).
    Dyndns2Error(Dyndns2Error),
    /// Anything else.
    Other(String),
}

impl Reply {
    /// Parses a reply body to a request of `kind`.
    pub fn parse(kind: Kind, body: &str) -> Reply {
        let body = body.trim();
        if kind == Kind::Dyndns2 {
            return Reply::parse_dyndns2(body);
        }
        match body {
            "01" => return Reply::InvalidHostname,
            "02" => return Reply::InvalidMac,
            "04" => return Reply::InvalidIp,
            "07" => return Reply::NameTaken,
            "08" => return Reply::NoChange,
            "09" => return Reply::Modified,
            "12" => return Reply::ServerError,
            "13" => return Reply::NotFound,
            "15" => return Reply::Deleted,
            "16" => return Reply::DeleteFailed,
            "911" => return Reply::Flood,
            "ACT" => return Reply::Act,
            _ => {}
        }
        if let Some(error) = DvrError::parse(body) {
            return Reply::DvrError(error);
        }
        if let Some(fqdn) = body.strip_prefix("10|") {
            return Reply::Created(fqdn.to_owned());
        }
        if let Some(ip) = body.strip_prefix("14|").and_then(|ip| ip.parse().ok()) {
            return Reply::Registered(ip);
        }
        if kind == Kind::Ipdetect
            && let Ok(ip) = body.parse()
        {
            return Reply::Detected(ip);
        }
        Reply::Other(body.chars().take(64).collect())
    }

    /// A dyndns2 reply (one hostname per request, so one line), by its first word: `good`
    /// and `nochg` must name an address, and an error word must stand alone.
    fn parse_dyndns2(body: &str) -> Reply {
        let line = body.lines().next().unwrap_or_default().trim();
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        // `good A,AAAA` when both families were sent; the loadgen sends only IPv4.
        let addr = || rest.trim().split(',').next()?.parse().ok();
        let reply = match word {
            "good" => addr().map(Reply::Good),
            "nochg" => addr().map(Reply::Nochg),
            "911" if rest.is_empty() => Some(Reply::Flood),
            _ if rest.is_empty() => Dyndns2Error::parse(word).map(Reply::Dyndns2Error),
            _ => None,
        };
        reply.unwrap_or_else(|| Reply::Other(body.chars().take(64).collect()))
    }

    /// The reply code as counted in reports (`ip` for an `ipdetect` address; a dyndns2
    /// reply's first word).
    pub fn code(&self) -> &'static str {
        match self {
            Reply::Created(_) => "10",
            Reply::Modified => "09",
            Reply::NoChange => "08",
            Reply::NameTaken => "07",
            Reply::NotFound => "13",
            Reply::Deleted => "15",
            Reply::DeleteFailed => "16",
            Reply::Registered(_) => "14",
            Reply::Detected(_) => "ip",
            Reply::Flood => "911",
            Reply::ServerError => "12",
            Reply::InvalidHostname => "01",
            Reply::InvalidMac => "02",
            Reply::InvalidIp => "04",
            Reply::Act => "ACT",
            Reply::DvrError(error) => error.text(),
            Reply::Good(_) => "good",
            Reply::Nochg(_) => "nochg",
            Reply::Dyndns2Error(error) => error.word(),
            Reply::Other(_) => "other",
        }
    }
}

/// A DVR protocol refusal, `ERR 0x8000800N` (README.md, "The DVR protocol").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DvrError {
    /// `ERR 0x80008001`: no such host.
    NoSuchHost,
    /// `ERR 0x80008002`: wrong host password.
    WrongPassword,
    /// `ERR 0x80008003`: invalid IP address.
    InvalidIp,
    /// `ERR 0x80008004`: flood (source, host write quota, or password guesses).
    Flood,
    /// `ERR 0x80008005`: server error; nothing was acknowledged.
    ServerError,
}

impl DvrError {
    const ALL: [DvrError; 5] = [
        DvrError::NoSuchHost,
        DvrError::WrongPassword,
        DvrError::InvalidIp,
        DvrError::Flood,
        DvrError::ServerError,
    ];

    /// The reply's text on the wire, as counted in reports.
    pub fn text(self) -> &'static str {
        match self {
            DvrError::NoSuchHost => "ERR 0x80008001",
            DvrError::WrongPassword => "ERR 0x80008002",
            DvrError::InvalidIp => "ERR 0x80008003",
            DvrError::Flood => "ERR 0x80008004",
            DvrError::ServerError => "ERR 0x80008005",
        }
    }

    fn parse(body: &str) -> Option<DvrError> {
        DvrError::ALL.into_iter().find(|e| e.text() == body)
    }
}

/// A dyndns2 refusal (README.md, "dyndns2"), other than `911`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dyndns2Error {
    /// `badauth`: wrong or unknown credentials.
    BadAuth,
    /// `notfqdn`: the hostname is not a domain name.
    NotFqdn,
    /// `nohost`: not a host these credentials may update.
    NoHost,
    /// `numhost`: too many hostnames.
    NumHost,
    /// `abuse`: the host is marked abusive (too many updates in a row that changed nothing).
    Abuse,
    /// `badagent`: no User-Agent.
    BadAgent,
    /// `dnserr`: a bad address, or the change could not be made durable (nothing acknowledged).
    DnsErr,
}

impl Dyndns2Error {
    const ALL: [Dyndns2Error; 7] = [
        Dyndns2Error::BadAuth,
        Dyndns2Error::NotFqdn,
        Dyndns2Error::NoHost,
        Dyndns2Error::NumHost,
        Dyndns2Error::Abuse,
        Dyndns2Error::BadAgent,
        Dyndns2Error::DnsErr,
    ];

    /// The word on the wire, as counted in reports.
    pub fn word(self) -> &'static str {
        match self {
            Dyndns2Error::BadAuth => "badauth",
            Dyndns2Error::NotFqdn => "notfqdn",
            Dyndns2Error::NoHost => "nohost",
            Dyndns2Error::NumHost => "numhost",
            Dyndns2Error::Abuse => "abuse",
            Dyndns2Error::BadAgent => "badagent",
            Dyndns2Error::DnsErr => "dnserr",
        }
    }

    fn parse(word: &str) -> Option<Dyndns2Error> {
        Dyndns2Error::ALL.into_iter().find(|e| e.word() == word)
    }
}

/// Why a request got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallError {
    /// The connection could not be made: the request was never sent.
    Connect,
    /// No complete reply within the timeout.
    Timeout,
    /// The connection broke while the request was out.
    Io,
    /// Something that is not an HTTP 200 with a body.
    Http,
}

impl CallError {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            CallError::Connect => "connect",
            CallError::Timeout => "timeout",
            CallError::Io => "io",
            CallError::Http => "http",
        }
    }
}

/// What a request came to: a reply, or why there was none.
pub type Outcome = Result<Reply, CallError>;

/// How a finished request counts in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A reply a well-behaved device expects.
    Ok,
    /// `911`.
    Flood,
    /// `12` or `16`: the server could not do it.
    Server,
    /// A reply the device's state rules out (`13` to a registered device, `07`, `02`, …).
    Unexpected,
    /// No reply.
    Failed(CallError),
}

/// What the model did with a finished request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// How it counts.
    pub verdict: Verdict,
    /// A request the device sends right away (an `update` after `ipdetect` saw a change).
    pub follow_up: Option<Request>,
    /// The address the server acknowledged setting (`10|…` or `09`): a propagation candidate.
    pub acked_change: Option<Ipv4Addr>,
}

/// What DNS should answer for a device once the run is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The address the server last acknowledged.
    Addr(Ipv4Addr),
    /// Removed, acknowledged with `15`: NXDOMAIN.
    Absent,
    /// Not known: never acknowledged, or the last write's outcome is unknown (timeout, `12`).
    Unknown,
}

/// The outage surge: every device sends `add` once in `[at_us, at_us + window_us)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Surge {
    /// When the window opens, µs after the start. At 0 the surge is the fleet's boot.
    pub at_us: u64,
    /// How long it is; each device picks a uniformly random moment in it (the jitter).
    pub window_us: u64,
}

/// The model's parameters, with every time in real µs (already divided by the speedup).
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// Number of devices.
    pub devices: u32,
    /// The poll interval.
    pub interval_us: u64,
    /// Share of devices whose WAN address changes per interval.
    pub churn: f64,
    /// Share of devices that reboot per interval.
    pub reboot: f64,
    /// Share of devices decommissioned per interval.
    pub decommission: f64,
    /// The outage surge, if any.
    pub surge: Option<Surge>,
    /// The devices were registered by an earlier run with the same seed: boot with `update`.
    pub registered: bool,
    /// With `registered`: the fleet is already up (registered, booted, its addresses
    /// acknowledged), so each device's first slot, at a random phase of the first interval, is
    /// an ordinary poll: the steady state of a fleet polling `ipdetect`, without the boot's
    /// `update`s (the `quic` scenario's polling fleet).
    pub booted: bool,
    /// No schedule: the driver asks [`Fleet::next_closed`] for a request whenever a
    /// connection is free (the `updates` scenario).
    pub closed_loop: bool,
    /// The closed loop sends host updates in this protocol (`/dvr/update` or `/nic/update`:
    /// the `dvr` and `dyndns2` scenarios) instead of the device API's `update`.
    pub hosts: Option<HostProtocol>,
    /// Each device sends from its own address ([`source_addr`] of its index at first), which
    /// is its WAN address; a new WAN address is a new source, drawn from the device's own
    /// share of 127/8 (the indices `device + k × devices`), so two devices never share one.
    /// `false`: the whole fleet sends from one address and simulates WAN addresses as `myip`.
    pub own_sources: bool,
    /// Seeds the rolls and the new addresses (the seed itself, unless a run must not repeat
    /// an earlier run's addresses: the `updates` scenario mixes in the time).
    pub roll_seed: u64,
    /// Nothing is scheduled at or after this time.
    pub end_us: u64,
    /// Seeds the device identities, initial addresses, phases and rolls.
    pub seed: u64,
}

impl FleetConfig {
    /// When every device's first slot (its boot, or the surge that is its boot) has come due.
    pub fn boot_end_us(&self) -> u64 {
        if self.closed_loop || (self.registered && self.booted) {
            return 0;
        }
        match self.surge {
            Some(Surge {
                at_us: 0,
                window_us,
            }) => window_us,
            _ => self.interval_us,
        }
    }
}

/// How devices are named: the label is `prefix` + index, under `zone`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    /// Label prefix, e.g. `lg1-`.
    pub prefix: String,
    /// The vendor's zone, e.g. `dyn.example`.
    pub zone: String,
}

impl Naming {
    /// The `dm` label of a device.
    pub fn label(&self, device: u32) -> String {
        format!("{}{device}", self.prefix)
    }

    /// The device's full name.
    pub fn fqdn(&self, device: u32) -> String {
        format!("{}{device}.{}", self.prefix, self.zone)
    }

    /// Whether `fqdn` (from a `10|…` reply) is this device's name, without allocating.
    pub fn is_fqdn(&self, device: u32, fqdn: &str) -> bool {
        let Some(rest) = strip_prefix_ignore_case(fqdn, &self.prefix) else {
            return false;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        rest[..digits].parse() == Ok(device)
            && rest[digits..]
                .strip_prefix('.')
                .is_some_and(|zone| zone.trim_end_matches('.').eq_ignore_ascii_case(&self.zone))
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The MAC a device's token carries: locally administered (`02:…`), two bytes from the seed and
/// three from the index, so runs with different seeds are different devices (up to a 1 in 65,536
/// collision) and at most 2^24 devices are told apart.
pub fn mac_of(seed: u64, device: u32) -> String {
    let s = (derive(seed, u64::MAX) & 0xFFFF) as u16;
    let [_, a, b, c] = device.to_be_bytes();
    format!("02:{:02X}:{:02X}:{a:02X}:{b:02X}:{c:02X}", s >> 8, s & 0xFF)
}

/// Most devices a fleet can have (the MAC carries 24 bits of index).
pub const DEVICES_MAX: u32 = 1 << 24;

const REGISTERED: u8 = 1;
const REMOVED: u8 = 2;
const BUSY: u8 = 4;
const UNCERTAIN: u8 = 8;
const BOOTED: u8 = 16;
const DECOMMISSIONING: u8 = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    due_us: u64,
    device: u32,
    /// A one-off surge `add` (not rescheduled), as opposed to the device's regular slot.
    surge: bool,
}

/// Counters of what the schedule did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScheduleCounts {
    /// Slots that found their device still waiting for a reply, so it sent nothing.
    pub skipped_busy: u64,
    /// WAN address changes simulated.
    pub wan_changes: u64,
    /// Reboots simulated.
    pub reboots: u64,
    /// Decommissions simulated.
    pub decommissions: u64,
}

/// The fleet: per-device state and the schedule.
pub struct Fleet {
    config: FleetConfig,
    naming: Naming,
    wan: Vec<u32>,
    stored: Vec<u32>,
    flags: Vec<u8>,
    schedule: BinaryHeap<Reverse<Slot>>,
    rng: SplitMix64,
    counts: ScheduleCounts,
    /// The next device [`Fleet::next_closed`] looks at.
    cursor: u32,
}

impl Fleet {
    /// Builds the fleet and schedules every device's first slot.
    pub fn new(config: FleetConfig, naming: Naming) -> Fleet {
        assert!(config.devices <= DEVICES_MAX, "at most 2^24 devices");
        assert!(config.interval_us > 0, "the poll interval is positive");
        assert!(
            !config.own_sources || config.devices <= SOURCES_MAX,
            "at most {SOURCES_MAX} devices with their own sources"
        );
        let n = config.devices as usize;
        let scheduled = if config.closed_loop {
            0
        } else {
            config.devices
        };
        let mut schedule =
            BinaryHeap::with_capacity(if config.surge.is_some_and(|s| s.at_us > 0) {
                2 * n
            } else {
                n
            });
        let mut rng = SplitMix64::new(derive(config.roll_seed, u64::MAX - 1));
        let wan: Vec<u32> = (0..config.devices)
            .map(|d| {
                if config.own_sources {
                    source_addr(d).into()
                } else {
                    initial_addr(config.seed, d)
                }
            })
            .collect();
        // The boot of each device: spread over one interval, or over the surge window when the
        // surge is the boot.
        let (boot_at, boot_span) = match config.surge {
            Some(Surge {
                at_us: 0,
                window_us,
            }) => (0, window_us.max(1)),
            _ => (0, config.interval_us),
        };
        for device in 0..scheduled {
            schedule.push(Reverse(Slot {
                due_us: boot_at + rng.below(boot_span),
                device,
                surge: false,
            }));
            if let Some(surge) = config.surge.filter(|s| s.at_us > 0) {
                schedule.push(Reverse(Slot {
                    due_us: surge.at_us + rng.below(surge.window_us.max(1)),
                    device,
                    surge: true,
                }));
            }
        }
        // A fleet already up has its addresses acknowledged: a poll that finds the same
        // address sends nothing more.
        let up = config.registered && config.booted;
        let stored = if up { wan.clone() } else { vec![0; n] };
        let flags = match (config.registered, up) {
            (_, true) => REGISTERED | BOOTED,
            (true, false) => REGISTERED,
            (false, false) => 0,
        };
        Fleet {
            wan,
            stored,
            flags: vec![flags; n],
            schedule,
            rng,
            counts: ScheduleCounts::default(),
            cursor: 0,
            naming,
            config,
        }
    }

    /// The closed loop's next request, due `now_us`: the next idle device in turn gets a new
    /// WAN address and sends `update` (or `add`, if it is not registered yet; a host was
    /// provisioned before the run and sends its protocol's update). `None` once every device
    /// is busy or removed.
    pub fn next_closed(&mut self, now_us: u64) -> Option<Request> {
        for _ in 0..self.config.devices {
            let device = self.cursor;
            self.cursor = (self.cursor + 1) % self.config.devices;
            let d = device as usize;
            if self.flags[d] & (BUSY | REMOVED) != 0 {
                continue;
            }
            self.flags[d] |= BOOTED;
            if self.flags[d] & REGISTERED == 0 {
                return Some(self.issue(device, Kind::Add, Reason::Boot, now_us));
            }
            self.change_wan(d);
            let kind = self.config.hosts.map_or(Kind::Update, HostProtocol::kind);
            return Some(self.issue(device, kind, Reason::Change, now_us));
        }
        None
    }

    /// The naming the fleet was built with.
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    /// Number of devices.
    pub fn len(&self) -> u32 {
        self.config.devices
    }

    /// Whether the fleet has no devices.
    pub fn is_empty(&self) -> bool {
        self.config.devices == 0
    }

    /// When the next slot is due (µs), if any is left before the end.
    pub fn next_due_us(&self) -> Option<u64> {
        self.schedule
            .peek()
            .map(|Reverse(slot)| slot.due_us)
            .filter(|&due| due < self.config.end_us)
    }

    /// The next request due at or before `now_us`, running the rules of every slot on the
    /// way (slots whose device is busy or gone send nothing).
    pub fn pop_due(&mut self, now_us: u64) -> Option<Request> {
        while let Some(due) = self.next_due_us().filter(|&due| due <= now_us) {
            let Reverse(slot) = self.schedule.pop().expect("peeked");
            debug_assert_eq!(slot.due_us, due);
            if let Some(request) = self.run_slot(slot) {
                return Some(request);
            }
        }
        None
    }

    fn run_slot(&mut self, slot: Slot) -> Option<Request> {
        let d = slot.device as usize;
        if self.flags[d] & REMOVED != 0 {
            return None;
        }
        if !slot.surge {
            // Rescheduled from the due time, never from when it ran: no drift.
            self.schedule.push(Reverse(Slot {
                due_us: slot.due_us + self.config.interval_us,
                ..slot
            }));
        }
        if self.flags[d] & BUSY != 0 {
            self.counts.skipped_busy += 1;
            return None;
        }
        let booted = self.flags[d] & BOOTED != 0;
        self.flags[d] |= BOOTED;
        let surge =
            slot.surge || (!booted && matches!(self.config.surge, Some(Surge { at_us: 0, .. })));
        // A surge is an outage's end: addresses may change with it as in any interval.
        if (booted || surge) && self.rng.chance(self.config.churn) {
            self.change_wan(d);
        }
        let (kind, reason) = if surge {
            (Kind::Add, Reason::Surge)
        } else if self.flags[d] & REGISTERED == 0 {
            (Kind::Add, Reason::Boot)
        } else if !booted {
            (Kind::Update, Reason::Reboot)
        } else if self.flags[d] & DECOMMISSIONING != 0 {
            (Kind::Remove, Reason::Decommission)
        } else if self.rng.chance(self.config.decommission) {
            self.counts.decommissions += 1;
            self.flags[d] |= DECOMMISSIONING;
            (Kind::Remove, Reason::Decommission)
        } else if self.rng.chance(self.config.reboot) {
            self.counts.reboots += 1;
            (Kind::Update, Reason::Reboot)
        } else {
            (Kind::Ipdetect, Reason::Poll)
        };
        Some(self.issue(slot.device, kind, reason, slot.due_us))
    }

    fn issue(&mut self, device: u32, kind: Kind, reason: Reason, due_us: u64) -> Request {
        let d = device as usize;
        self.flags[d] |= BUSY;
        Request {
            device,
            kind,
            reason,
            addr: Ipv4Addr::from(self.wan[d]),
            due_us,
        }
    }

    fn change_wan(&mut self, d: usize) {
        let old = self.wan[d];
        let new = if self.config.own_sources {
            // Device d's sources are the indices d + k × devices: another round k, at random.
            let devices = self.config.devices;
            let rounds = SOURCES_MAX / devices;
            assert!(
                rounds >= 2,
                "a new source for each device needs at most {} devices",
                SOURCES_MAX / 2
            );
            let round = source_index(Ipv4Addr::from(old)).expect("a source address") / devices;
            let next = (round + 1 + self.rng.below(u64::from(rounds - 1)) as u32) % rounds;
            source_addr(next * devices + d as u32).into()
        } else {
            let mut new = old;
            while new == old {
                new = ADDR_BASE + self.rng.below(ADDR_SPAN) as u32;
            }
            new
        };
        self.wan[d] = new;
        self.counts.wan_changes += 1;
    }

    /// Applies what came of `request`, answered (or failed) at `now_us`.
    pub fn complete(&mut self, request: &Request, outcome: &Outcome, now_us: u64) -> Completion {
        let d = request.device as usize;
        debug_assert!(self.flags[d] & BUSY != 0, "a completion for an idle device");
        self.flags[d] &= !BUSY;
        let write = request.kind != Kind::Ipdetect;
        let mut done = Completion {
            verdict: Verdict::Ok,
            follow_up: None,
            acked_change: None,
        };
        let reply = match outcome {
            Err(error) => {
                // Not sent at all cannot have changed anything; anything else might have.
                if write && *error != CallError::Connect {
                    self.flags[d] |= UNCERTAIN;
                }
                done.verdict = Verdict::Failed(*error);
                return done;
            }
            Ok(reply) => reply,
        };
        match (request.kind, reply) {
            (_, Reply::Flood | Reply::DvrError(DvrError::Flood)) => done.verdict = Verdict::Flood,
            (
                _,
                Reply::ServerError
                | Reply::DeleteFailed
                | Reply::DvrError(DvrError::ServerError)
                | Reply::Dyndns2Error(Dyndns2Error::DnsErr),
            ) => {
                // `12` acknowledges nothing, but a change may still land after the timeout
                // (every request carries a valid address, so `dnserr` is the durable path's).
                if write {
                    self.flags[d] |= UNCERTAIN;
                }
                done.verdict = Verdict::Server;
            }
            (Kind::Add, Reply::Created(fqdn)) if self.naming.is_fqdn(request.device, fqdn) => {
                self.acked(d, request.addr);
                done.acked_change = Some(request.addr);
            }
            (Kind::Add | Kind::Update, Reply::Modified) => {
                self.acked(d, request.addr);
                done.acked_change = Some(request.addr);
            }
            (Kind::Add | Kind::Update, Reply::NoChange) => self.acked(d, request.addr),
            // `ACT` does not say whether anything changed; every closed-loop request carries a
            // new address, so it is counted as a change.
            (Kind::Dvr, Reply::Act) => {
                self.acked(d, request.addr);
                done.acked_change = Some(request.addr);
            }
            // dyndns2 says which: `good` a change, `nochg` none (a new address the server
            // happened to have). Either must name the address sent.
            (Kind::Dyndns2, Reply::Good(addr)) if *addr == request.addr => {
                self.acked(d, request.addr);
                done.acked_change = Some(request.addr);
            }
            (Kind::Dyndns2, Reply::Nochg(addr)) if *addr == request.addr => {
                self.acked(d, request.addr);
            }
            (Kind::Update, Reply::NotFound) => {
                // The server does not know a device that thought it was registered: it
                // registers again, as a new device would.
                self.flags[d] &= !(REGISTERED | UNCERTAIN);
                self.stored[d] = 0;
                done.verdict = Verdict::Unexpected;
                done.follow_up = Some(self.issue(request.device, Kind::Add, Reason::Boot, now_us));
            }
            (Kind::Remove, Reply::Deleted) => self.removed(d),
            (Kind::Remove, Reply::NotFound) => {
                self.removed(d);
                done.verdict = Verdict::Unexpected;
            }
            // From its own source, the answer must be that source: the address the server
            // would store for an update without `myip`.
            (Kind::Ipdetect, Reply::Detected(seen))
                if self.config.own_sources && seen.to_canonical() != IpAddr::V4(request.addr) =>
            {
                done.verdict = Verdict::Unexpected;
            }
            (Kind::Ipdetect, Reply::Detected(_)) => {
                if self.flags[d] & REGISTERED != 0 && self.wan[d] != self.stored[d] {
                    done.follow_up =
                        Some(self.issue(request.device, Kind::Update, Reason::Change, now_us));
                }
            }
            _ => done.verdict = Verdict::Unexpected,
        }
        done
    }

    fn acked(&mut self, d: usize, addr: Ipv4Addr) {
        self.stored[d] = addr.into();
        self.flags[d] = (self.flags[d] | REGISTERED) & !UNCERTAIN;
    }

    fn removed(&mut self, d: usize) {
        self.stored[d] = 0;
        self.flags[d] = (self.flags[d] | REMOVED) & !(REGISTERED | UNCERTAIN | DECOMMISSIONING);
    }

    /// Marks a request that will never complete (abandoned when the run ended).
    pub fn abandon(&mut self, request: &Request) {
        let d = request.device as usize;
        self.flags[d] &= !BUSY;
        if request.kind != Kind::Ipdetect {
            self.flags[d] |= UNCERTAIN;
        }
    }

    /// What DNS should answer for `device`.
    pub fn expect(&self, device: u32) -> Expect {
        let d = device as usize;
        let flags = self.flags[d];
        if flags & (BUSY | UNCERTAIN) != 0 {
            Expect::Unknown
        } else if flags & REMOVED != 0 {
            Expect::Absent
        } else if flags & REGISTERED != 0 && self.stored[d] != 0 {
            Expect::Addr(Ipv4Addr::from(self.stored[d]))
        } else {
            Expect::Unknown
        }
    }

    /// The device's current simulated WAN address.
    pub fn wan(&self, device: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.wan[device as usize])
    }

    /// What the schedule did so far.
    pub fn counts(&self) -> ScheduleCounts {
        self.counts
    }

    /// Devices registered (acknowledged) now.
    pub fn registered(&self) -> u32 {
        self.flags.iter().filter(|&&f| f & REGISTERED != 0).count() as u32
    }
}

/// A device's first WAN address: fixed by the seed, so a later run with `--registered` starts
/// from the addresses an earlier run registered.
pub(crate) fn initial_addr(seed: u64, device: u32) -> u32 {
    ADDR_BASE + (derive(seed, u64::from(device)) % ADDR_SPAN) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;

    fn config(devices: u32) -> FleetConfig {
        FleetConfig {
            devices,
            interval_us: 10 * SEC,
            churn: 0.0,
            reboot: 0.0,
            decommission: 0.0,
            surge: None,
            registered: false,
            booted: false,
            closed_loop: false,
            hosts: None,
            own_sources: false,
            roll_seed: 1,
            end_us: 1000 * SEC,
            seed: 1,
        }
    }

    fn naming() -> Naming {
        Naming {
            prefix: "lg1-".into(),
            zone: "dyn.example".into(),
        }
    }

    fn fleet(config: FleetConfig) -> Fleet {
        Fleet::new(config, naming())
    }

    fn ack(kind: Kind, device: u32) -> Reply {
        match kind {
            Kind::Add => Reply::Created(naming().fqdn(device)),
            Kind::Update => Reply::Modified,
            Kind::Remove => Reply::Deleted,
            Kind::Ipdetect => Reply::Detected(IpAddr::from([127, 0, 0, 1])),
            Kind::Dvr => Reply::Act,
            Kind::Dyndns2 => unreachable!("a dyndns2 ack names the address sent"),
        }
    }

    /// Every request due up to `until_us`, answered at once with `answer`.
    fn run(
        fleet: &mut Fleet,
        until_us: u64,
        mut answer: impl FnMut(&Request) -> Reply,
    ) -> Vec<Request> {
        let mut sent = Vec::new();
        while let Some(request) = fleet.pop_due(until_us) {
            let mut next = Some(request);
            while let Some(request) = next {
                sent.push(request);
                let reply = answer(&request);
                next = fleet
                    .complete(&request, &Ok(reply), request.due_us)
                    .follow_up;
            }
        }
        sent
    }

    #[test]
    fn a_new_device_adds_once_then_only_polls() {
        let mut f = fleet(config(1));
        let sent = run(&mut f, 50 * SEC, |r| ack(r.kind, r.device));
        let kinds: Vec<Kind> = sent.iter().map(|r| r.kind).collect();
        assert_eq!(kinds[0], Kind::Add);
        assert!(kinds[1..].iter().all(|&k| k == Kind::Ipdetect), "{kinds:?}");
        assert_eq!(kinds.len(), 5, "one slot per 10 s interval in 50 s");
        assert_eq!(f.expect(0), Expect::Addr(f.wan(0)));
    }

    #[test]
    fn updates_only_when_the_wan_address_changed() {
        let mut f = fleet(config(1));
        run(&mut f, 10 * SEC - 1, |r| ack(r.kind, r.device));
        f.change_wan(0);
        let changed = f.wan(0);
        let sent = run(&mut f, 30 * SEC - 1, |r| ack(r.kind, r.device));
        let kinds: Vec<(Kind, Reason)> = sent.iter().map(|r| (r.kind, r.reason)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Ipdetect, Reason::Poll),
                (Kind::Update, Reason::Change),
                (Kind::Ipdetect, Reason::Poll),
            ]
        );
        assert_eq!(sent[1].addr, changed);
        assert_eq!(
            sent[1].due_us, sent[0].due_us,
            "the update follows the reply at once"
        );
        assert_eq!(f.expect(0), Expect::Addr(changed));
    }

    #[test]
    fn a_refused_update_is_retried_at_the_next_poll() {
        let mut f = fleet(config(1));
        run(&mut f, 10 * SEC - 1, |r| ack(r.kind, r.device));
        let first = f.wan(0);
        f.change_wan(0);
        let sent = run(&mut f, 20 * SEC - 1, |r| match r.kind {
            Kind::Update => Reply::Flood,
            kind => ack(kind, r.device),
        });
        assert_eq!(sent.len(), 2);
        assert_eq!(f.expect(0), Expect::Addr(first), "911 changed nothing");
        let sent = run(&mut f, 30 * SEC - 1, |r| ack(r.kind, r.device));
        assert_eq!(sent[1].kind, Kind::Update);
        assert_eq!(f.expect(0), Expect::Addr(f.wan(0)));
    }

    #[test]
    fn a_reboot_updates_without_a_change() {
        let mut f = fleet(FleetConfig {
            reboot: 1.0,
            ..config(1)
        });
        let sent = run(&mut f, 30 * SEC - 1, |r| match r.kind {
            Kind::Update => Reply::NoChange,
            kind => ack(kind, r.device),
        });
        let kinds: Vec<(Kind, Reason)> = sent.iter().map(|r| (r.kind, r.reason)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Add, Reason::Boot),
                (Kind::Update, Reason::Reboot),
                (Kind::Update, Reason::Reboot),
            ]
        );
        assert!(sent.iter().all(|r| r.addr == sent[0].addr));
        assert_eq!(f.counts().reboots, 2);
    }

    #[test]
    fn a_registered_fleet_boots_with_an_update() {
        let mut f = fleet(FleetConfig {
            registered: true,
            ..config(3)
        });
        let sent = run(&mut f, 10 * SEC - 1, |_| Reply::NoChange);
        assert_eq!(sent.len(), 3);
        assert!(
            sent.iter()
                .all(|r| r.kind == Kind::Update && r.reason == Reason::Reboot)
        );
        // The same seed gives the same addresses as the run that registered them.
        let mut earlier = fleet(config(3));
        let adds = run(&mut earlier, 10 * SEC - 1, |r| ack(r.kind, r.device));
        let mut by_device: Vec<_> = sent.iter().map(|r| (r.device, r.addr)).collect();
        let mut added: Vec<_> = adds.iter().map(|r| (r.device, r.addr)).collect();
        by_device.sort();
        added.sort();
        assert_eq!(by_device, added);
    }

    #[test]
    fn a_fleet_already_up_only_polls() {
        let mut f = fleet(FleetConfig {
            registered: true,
            booted: true,
            own_sources: true,
            ..config(3)
        });
        assert_eq!(f.config.boot_end_us(), 0, "no boot to leave out");
        // Two intervals: each device polls twice, finds the address the server holds, and
        // sends nothing else.
        let sent = run(&mut f, 20 * SEC - 1, |r| Reply::Detected(r.addr.into()));
        assert_eq!(sent.len(), 6, "{sent:?}");
        assert!(
            sent.iter()
                .all(|r| r.kind == Kind::Ipdetect && r.reason == Reason::Poll)
        );
        for device in 0..3 {
            assert_eq!(f.expect(device), Expect::Addr(source_addr(device)));
        }
        // Without `registered`, `booted` means nothing: the fleet registers first.
        let mut f = fleet(FleetConfig {
            booted: true,
            ..config(3)
        });
        let sent = run(&mut f, 10 * SEC - 1, |r| ack(r.kind, r.device));
        assert!(sent.iter().all(|r| r.kind == Kind::Add), "{sent:?}");
    }

    #[test]
    fn a_decommissioned_device_removes_itself_and_goes_silent() {
        let mut f = fleet(FleetConfig {
            decommission: 1.0,
            ..config(1)
        });
        let sent = run(&mut f, 100 * SEC, |r| ack(r.kind, r.device));
        let kinds: Vec<Kind> = sent.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Kind::Add, Kind::Remove]);
        assert_eq!(f.expect(0), Expect::Absent);
        assert_eq!(
            f.next_due_us(),
            None,
            "a removed device leaves the schedule"
        );
    }

    #[test]
    fn a_failed_remove_is_retried() {
        let mut f = fleet(FleetConfig {
            decommission: 1.0,
            ..config(1)
        });
        let mut first = true;
        let sent = run(&mut f, 100 * SEC, |r| match r.kind {
            Kind::Remove if std::mem::take(&mut first) => Reply::Flood,
            kind => ack(kind, r.device),
        });
        let kinds: Vec<Kind> = sent.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Kind::Add, Kind::Remove, Kind::Remove]);
        assert_eq!(f.counts().decommissions, 1);
    }

    #[test]
    fn a_busy_device_skips_its_slot_and_keeps_its_phase() {
        let mut f = fleet(config(1));
        let boot = f.pop_due(10 * SEC).expect("boot");
        // No reply for 25 s: the two slots in between find it busy.
        assert_eq!(f.pop_due(boot.due_us + 25 * SEC), None);
        assert_eq!(f.counts().skipped_busy, 2);
        f.complete(&boot, &Ok(ack(Kind::Add, 0)), boot.due_us + 25 * SEC);
        let next = f.pop_due(100 * SEC).expect("a poll");
        assert_eq!(next.due_us, boot.due_us + 30 * SEC, "no drift");
    }

    #[test]
    fn unknown_outcomes_make_the_expectation_unknown_until_the_next_ack() {
        let mut f = fleet(config(1));
        let add = f.pop_due(10 * SEC).expect("boot");
        f.complete(&add, &Err(CallError::Timeout), add.due_us);
        assert_eq!(f.expect(0), Expect::Unknown);
        let again = f.pop_due(20 * SEC).expect("re-add");
        assert_eq!(again.kind, Kind::Add);
        f.complete(&again, &Ok(Reply::NoChange), again.due_us);
        assert_eq!(f.expect(0), Expect::Addr(again.addr));
        // A refused connection sent nothing, so it leaves what is known as it was.
        f.change_wan(0);
        let poll = f.pop_due(30 * SEC).expect("poll");
        let update = f
            .complete(&poll, &Ok(ack(Kind::Ipdetect, 0)), poll.due_us)
            .follow_up
            .expect("update");
        f.complete(&update, &Err(CallError::Connect), update.due_us);
        assert_eq!(f.expect(0), Expect::Addr(again.addr));
    }

    #[test]
    fn replies_are_judged_by_what_the_device_knows() {
        let mut f = fleet(config(1));
        let add = f.pop_due(10 * SEC).expect("boot");
        let wrong = f.complete(&add, &Ok(Reply::Created("lg1-7.dyn.example".into())), 0);
        assert_eq!(wrong.verdict, Verdict::Unexpected, "someone else's name");
        let add = f.pop_due(20 * SEC).expect("re-add");
        let right = f.complete(&add, &Ok(Reply::Created("LG1-0.Dyn.Example".into())), 0);
        assert_eq!(right.verdict, Verdict::Ok);
        assert_eq!(right.acked_change, Some(add.addr));
        f.change_wan(0);
        let poll = f.pop_due(30 * SEC).expect("poll");
        let update = f
            .complete(&poll, &Ok(ack(Kind::Ipdetect, 0)), 0)
            .follow_up
            .expect("update");
        let gone = f.complete(&update, &Ok(Reply::NotFound), 5);
        assert_eq!(gone.verdict, Verdict::Unexpected);
        let readd = gone.follow_up.expect("registers again");
        assert_eq!((readd.kind, readd.due_us), (Kind::Add, 5));
        assert_eq!(
            f.complete(&readd, &Ok(Reply::ServerError), 6).verdict,
            Verdict::Server
        );
        assert_eq!(f.expect(0), Expect::Unknown);
    }

    #[test]
    fn churn_changes_about_its_share_of_addresses_per_interval() {
        let mut f = fleet(FleetConfig {
            churn: 0.05,
            ..config(10_000)
        });
        // Boot, then ten intervals.
        let sent = run(&mut f, 110 * SEC - 1, |r| ack(r.kind, r.device));
        let updates = sent.iter().filter(|r| r.kind == Kind::Update).count();
        assert!((4_000..6_000).contains(&updates), "{updates}");
        assert_eq!(updates as u64, f.counts().wan_changes);
    }

    #[test]
    fn a_surge_re_adds_every_device_within_its_window() {
        let mut f = fleet(FleetConfig {
            surge: Some(Surge {
                at_us: 20 * SEC,
                window_us: 5 * SEC,
            }),
            ..config(1000)
        });
        let sent = run(&mut f, 40 * SEC - 1, |r| match r.kind {
            Kind::Add if r.reason == Reason::Surge => Reply::NoChange,
            kind => ack(kind, r.device),
        });
        let surge: Vec<&Request> = sent.iter().filter(|r| r.reason == Reason::Surge).collect();
        assert!(surge.iter().all(|r| r.kind == Kind::Add));
        assert!(
            surge
                .iter()
                .all(|r| (20 * SEC..25 * SEC).contains(&r.due_us))
        );
        // Every device either re-added or was busy polling right then.
        assert_eq!(surge.len() as u64 + f.counts().skipped_busy, 1000);
    }

    #[test]
    fn a_surge_at_the_start_is_the_boot() {
        let mut f = fleet(FleetConfig {
            surge: Some(Surge {
                at_us: 0,
                window_us: 2 * SEC,
            }),
            registered: true,
            ..config(500)
        });
        let sent = run(&mut f, 2 * SEC, |_| Reply::NoChange);
        assert_eq!(sent.len(), 500);
        assert!(
            sent.iter()
                .all(|r| r.kind == Kind::Add && r.due_us < 2 * SEC)
        );
        assert_eq!(
            f.pop_due(10 * SEC - 1),
            None,
            "then polls, an interval later"
        );
    }

    #[test]
    fn nothing_is_scheduled_past_the_end() {
        let mut f = fleet(FleetConfig {
            end_us: 15 * SEC,
            ..config(100)
        });
        let sent = run(&mut f, u64::MAX, |r| ack(r.kind, r.device));
        assert!(sent.iter().all(|r| r.due_us < 15 * SEC));
        assert_eq!(f.next_due_us(), None);
    }

    #[test]
    fn the_closed_loop_adds_each_device_once_then_only_updates_with_new_addresses() {
        let mut f = fleet(FleetConfig {
            closed_loop: true,
            ..config(3)
        });
        assert_eq!(f.next_due_us(), None, "nothing is scheduled");
        let mut sent = Vec::new();
        for now in 0..9 {
            let request = f.next_closed(now).expect("an idle device");
            assert_eq!(request.due_us, now);
            let reply = ack(request.kind, request.device);
            assert!(f.complete(&request, &Ok(reply), now).follow_up.is_none());
            sent.push(request);
        }
        let kinds: Vec<(u32, Kind)> = sent.iter().map(|r| (r.device, r.kind)).collect();
        assert_eq!(kinds[..3], [(0, Kind::Add), (1, Kind::Add), (2, Kind::Add)]);
        assert!(kinds[3..].iter().all(|&(_, kind)| kind == Kind::Update));
        // Each update moves its device to a new address, which is then what DNS should show.
        assert_ne!(sent[3].addr, sent[0].addr);
        assert_ne!(sent[6].addr, sent[3].addr);
        assert_eq!(f.expect(0), Expect::Addr(sent[6].addr));
        // Busy devices are passed over; with all of them busy there is nothing to send.
        let busy: Vec<Request> = (0..3).filter_map(|_| f.next_closed(10)).collect();
        assert_eq!(busy.len(), 3);
        assert_eq!(f.next_closed(10), None);
        f.complete(&busy[1], &Ok(Reply::Modified), 11);
        assert_eq!(f.next_closed(11).map(|r| r.device), Some(busy[1].device));
    }

    #[test]
    fn the_dvr_loop_sends_only_dvr_updates_and_judges_their_replies() {
        let mut f = fleet(FleetConfig {
            closed_loop: true,
            hosts: Some(HostProtocol::Dvr),
            registered: true,
            ..config(2)
        });
        let first = f.next_closed(0).expect("an idle host");
        assert_eq!((first.device, first.kind), (0, Kind::Dvr));
        let acted = f.complete(&first, &Ok(Reply::Act), 1);
        assert_eq!(acted.verdict, Verdict::Ok);
        assert_eq!(acted.acked_change, Some(first.addr));
        assert_eq!(f.expect(0), Expect::Addr(first.addr));
        let verdict = |f: &mut Fleet, reply| {
            let r = f.next_closed(2).expect("an idle host");
            assert_eq!(r.kind, Kind::Dvr);
            f.complete(&r, &Ok(Reply::DvrError(reply)), 3).verdict
        };
        assert_eq!(verdict(&mut f, DvrError::Flood), Verdict::Flood);
        assert_eq!(f.expect(1), Expect::Unknown, "never acknowledged");
        assert_eq!(verdict(&mut f, DvrError::ServerError), Verdict::Server);
        assert_eq!(
            f.expect(0),
            Expect::Unknown,
            "a server error leaves it unknown"
        );
        for error in [DvrError::NoSuchHost, DvrError::WrongPassword] {
            assert_eq!(verdict(&mut f, error), Verdict::Unexpected);
        }
        let again = f.next_closed(4).expect("an idle host");
        assert_ne!(again.addr, first.addr, "each update a new address");
    }

    #[test]
    fn the_dyndns2_loop_acknowledges_only_the_address_it_sent() {
        let mut f = fleet(FleetConfig {
            closed_loop: true,
            hosts: Some(HostProtocol::Dyndns2),
            registered: true,
            ..config(4)
        });
        let next = |f: &mut Fleet| {
            let r = f.next_closed(0).expect("an idle host");
            assert_eq!(r.kind, Kind::Dyndns2);
            r
        };
        // `good` with the address sent: a change, which DNS should then show.
        let r = next(&mut f);
        let done = f.complete(&r, &Ok(Reply::Good(r.addr.into())), 1);
        assert_eq!(
            (done.verdict, done.acked_change),
            (Verdict::Ok, Some(r.addr))
        );
        assert_eq!(f.expect(r.device), Expect::Addr(r.addr));
        // `nochg` with it: acknowledged, but not a change to follow to DNS.
        let r = next(&mut f);
        let done = f.complete(&r, &Ok(Reply::Nochg(r.addr.into())), 1);
        assert_eq!((done.verdict, done.acked_change), (Verdict::Ok, None));
        assert_eq!(f.expect(r.device), Expect::Addr(r.addr));
        // `good` naming another address is not this update's acknowledgement.
        let r = next(&mut f);
        let other = IpAddr::from([192, 0, 2, 1]);
        let done = f.complete(&r, &Ok(Reply::Good(other)), 1);
        assert_eq!(
            (done.verdict, done.acked_change),
            (Verdict::Unexpected, None)
        );
        assert_eq!(f.expect(r.device), Expect::Unknown);
        let verdict = |f: &mut Fleet, reply: Reply| {
            let r = f.next_closed(0).expect("an idle host");
            f.complete(&r, &Ok(reply), 1).verdict
        };
        assert_eq!(verdict(&mut f, Reply::Flood), Verdict::Flood);
        let dnserr = Reply::Dyndns2Error(Dyndns2Error::DnsErr);
        assert_eq!(verdict(&mut f, dnserr), Verdict::Server);
        assert_eq!(f.expect(0), Expect::Unknown, "dnserr may still land");
        for error in [
            Dyndns2Error::BadAuth,
            Dyndns2Error::NoHost,
            Dyndns2Error::Abuse,
            Dyndns2Error::BadAgent,
        ] {
            assert_eq!(
                verdict(&mut f, Reply::Dyndns2Error(error)),
                Verdict::Unexpected
            );
        }
        // A device API code to a dyndns2 request is not an acknowledgement either.
        assert_eq!(verdict(&mut f, Reply::Act), Verdict::Unexpected);
    }

    #[test]
    fn dyndns2_replies_are_counted_by_their_first_word() {
        let parse = |body: &str| Reply::parse(Kind::Dyndns2, body);
        let addr = IpAddr::from([198, 18, 0, 9]);
        assert_eq!(parse("good 198.18.0.9\n"), Reply::Good(addr));
        assert_eq!(parse("nochg 198.18.0.9"), Reply::Nochg(addr));
        assert_eq!(parse("good 198.18.0.9,2001:db8::1"), Reply::Good(addr));
        assert_eq!(parse("good 198.18.0.9").code(), "good");
        assert_eq!(parse("nochg 198.18.0.9").code(), "nochg");
        for word in [
            "badauth", "notfqdn", "nohost", "numhost", "abuse", "badagent", "dnserr",
        ] {
            let reply = parse(&format!("{word}\n"));
            assert!(matches!(reply, Reply::Dyndns2Error(_)), "{word}: {reply:?}");
            assert_eq!(reply.code(), word);
        }
        assert_eq!(parse("911\n"), Reply::Flood);
        assert_eq!(parse("911").code(), "911");
        // The device API's and the DVR protocol's codes mean nothing here.
        assert_eq!(parse("09").code(), "other");
        assert_eq!(parse("ACT").code(), "other");
        // `good` must name an address; words are whole and exact.
        assert_eq!(parse("good").code(), "other");
        assert_eq!(parse("good banana").code(), "other");
        assert_eq!(parse("goodish 198.18.0.9").code(), "other");
        assert_eq!(parse("Good 198.18.0.9").code(), "other");
        assert_eq!(parse("abuse 198.18.0.9").code(), "other");
        // And outside dyndns2, `good` is not a reply.
        assert_eq!(Reply::parse(Kind::Dvr, "good 198.18.0.9").code(), "other");
    }

    #[test]
    fn replies_parse() {
        assert_eq!(
            Reply::parse(Kind::Add, "10|a.dyn.example"),
            Reply::Created("a.dyn.example".into())
        );
        assert_eq!(Reply::parse(Kind::Update, "09\r\n"), Reply::Modified);
        assert_eq!(
            Reply::parse(Kind::Ipdetect, "127.0.0.1"),
            Reply::Detected(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(
            Reply::parse(Kind::Add, "127.0.0.1"),
            Reply::Other("127.0.0.1".into())
        );
        assert_eq!(Reply::parse(Kind::Ipdetect, "911"), Reply::Flood);
        assert_eq!(Reply::parse(Kind::Remove, "15").code(), "15");
        assert_eq!(Reply::parse(Kind::Dvr, "ACT"), Reply::Act);
        let refused = Reply::parse(Kind::Dvr, "ERR 0x80008004\r\n");
        assert_eq!(refused, Reply::DvrError(DvrError::Flood));
        assert_eq!(refused.code(), "ERR 0x80008004");
        assert_eq!(Reply::parse(Kind::Dvr, "ERR 0x80008009").code(), "other");
    }

    #[test]
    fn source_addresses_are_distinct_loopback_and_never_network_broadcast_or_127_0_0_1() {
        assert_eq!(source_addr(0), Ipv4Addr::new(127, 1, 1, 1));
        assert_eq!(source_addr(253), Ipv4Addr::new(127, 1, 1, 254));
        assert_eq!(source_addr(254), Ipv4Addr::new(127, 1, 2, 1));
        assert_eq!(source_addr(254 * 254), Ipv4Addr::new(127, 2, 1, 1));
        assert_eq!(
            source_addr(SOURCES_MAX - 1),
            Ipv4Addr::new(127, 254, 254, 254)
        );
        // Every one of them: in 127/8, no octet 0 or 255 (so never 127.0.0.1), and the inverse
        // gives the index back, so no two indices share an address.
        let mut seen = vec![0u64; (1 << 24) / 64];
        for index in 0..SOURCES_MAX {
            let addr = source_addr(index);
            let [net, a, b, c] = addr.octets();
            assert!(addr.is_loopback() && net == 127, "{addr}");
            assert!(![a, b, c].iter().any(|&o| o == 0 || o == 255), "{addr}");
            assert_eq!(source_index(addr), Some(index), "{addr}");
            let bit = u32::from(addr) & 0xFF_FFFF;
            let (word, mask) = (bit as usize / 64, 1u64 << (bit % 64));
            assert_eq!(seen[word] & mask, 0, "{addr} twice");
            seen[word] |= mask;
        }
        for outside in [
            [127, 0, 0, 1],
            [127, 1, 1, 0],
            [127, 1, 1, 255],
            [127, 255, 1, 1],
            [127, 1, 0, 1],
            [128, 1, 1, 1],
            [198, 18, 0, 1],
        ] {
            assert_eq!(source_index(Ipv4Addr::from(outside)), None, "{outside:?}");
        }
    }

    fn own(devices: u32) -> FleetConfig {
        FleetConfig {
            own_sources: true,
            ..config(devices)
        }
    }

    #[test]
    fn devices_with_their_own_sources_start_at_their_index_and_change_within_their_share() {
        let mut f = fleet(own(1000));
        for d in 0..1000 {
            assert_eq!(f.wan(d), source_addr(d));
        }
        // Many changes: each a new address, never another device's, always one of the device's
        // own (index ≡ device mod devices).
        for round in 0..20 {
            for d in 0..1000 {
                let old = f.wan(d);
                f.change_wan(d as usize);
                assert_ne!(f.wan(d), old, "round {round}");
                let index = source_index(f.wan(d)).expect("a source address");
                assert_eq!(index % 1000, d);
            }
            let mut now: Vec<Ipv4Addr> = (0..1000).map(|d| f.wan(d)).collect();
            now.sort_unstable();
            now.dedup();
            assert_eq!(now.len(), 1000, "round {round}: two devices share a source");
        }
        // With just two addresses each, a change alternates between them.
        let mut f = fleet(own(SOURCES_MAX / 2));
        let first = f.wan(7);
        f.change_wan(7);
        assert_eq!(f.wan(7), source_addr(SOURCES_MAX / 2 + 7));
        f.change_wan(7);
        assert_eq!(f.wan(7), first);
    }

    #[test]
    fn from_its_own_source_a_device_checks_the_ipdetect_answer_and_updates_without_myip() {
        let mut f = fleet(own(1));
        let add = f.pop_due(u64::MAX).expect("boot");
        assert_eq!(add.addr, source_addr(0), "adds from its own source");
        f.complete(&add, &Ok(ack(Kind::Add, 0)), add.due_us);
        assert_eq!(f.expect(0), Expect::Addr(source_addr(0)));
        // The answer is the address it sent from: nothing to do.
        let poll = f.pop_due(u64::MAX).expect("poll");
        assert_eq!(poll.addr, source_addr(0));
        let seen = Reply::Detected(source_addr(0).into());
        let done = f.complete(&poll, &Ok(seen), poll.due_us);
        assert_eq!((done.verdict, done.follow_up), (Verdict::Ok, None));
        // An answer naming any other address (127.0.0.1: the server saw no per-device source)
        // is unexpected.
        let poll = f.pop_due(u64::MAX).expect("poll");
        let wrong = Reply::Detected(IpAddr::from([127, 0, 0, 1]));
        let done = f.complete(&poll, &Ok(wrong), poll.due_us);
        assert_eq!(done.verdict, Verdict::Unexpected);
        // A new source: the poll comes from it, and so does the update that follows.
        f.change_wan(0);
        let moved = f.wan(0);
        let poll = f.pop_due(u64::MAX).expect("poll");
        assert_eq!(poll.addr, moved);
        let update = f
            .complete(&poll, &Ok(Reply::Detected(moved.into())), poll.due_us)
            .follow_up
            .expect("an update");
        assert_eq!((update.kind, update.addr), (Kind::Update, moved));
        f.complete(&update, &Ok(Reply::Modified), update.due_us);
        assert_eq!(
            f.expect(0),
            Expect::Addr(moved),
            "DNS should show the new source"
        );
    }

    #[test]
    fn macs_and_names_are_per_seed() {
        assert_eq!(mac_of(1, 0x01_02_03).len(), 17);
        assert!(mac_of(1, 0x01_02_03).ends_with(":01:02:03"));
        assert_ne!(mac_of(1, 5), mac_of(2, 5));
        let n = naming();
        assert_eq!(n.fqdn(42), "lg1-42.dyn.example");
        assert!(n.is_fqdn(42, "lg1-42.dyn.example."));
        assert!(!n.is_fqdn(42, "lg1-420.dyn.example"));
        assert!(!n.is_fqdn(42, "lg1-42.dyn.example.org"));
    }
}
