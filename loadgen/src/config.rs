//! What a run is told: the target, the fleet, the scenario and the bounds.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::fleet::{DEVICES_MAX, FleetConfig, HostProtocol, Naming, SOURCES_MAX, Surge};
use crate::token::DeviceKey;

/// What the fleet does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Devices boot over one interval, then poll; addresses change only with `--churn`.
    Steady,
    /// Steady, with `--churn` (default 0.05) of the devices changing address every interval.
    Churn,
    /// Every device re-registers (`add`) within `--surge-window`, at `--surge-at`.
    Surge,
    /// Closed loop at the server's max rate: each connection sends the next device's `update`
    /// (with a new address) as soon as its previous reply is in; no polls. A device not yet
    /// registered (without `--registered`) sends `add` first.
    Updates,
    /// The same closed loop over DVR hosts: each connection sends the next host's
    /// `/dvr/update` (host name, host password, a new address). The hosts are provisioned
    /// before the run (`admin_socket`), and each is sent one untimed update first, its one
    /// argon2 check; the timed part then measures remembered passwords.
    Dvr,
    /// The same as `Dvr` over the same hosts, in dyndns2: each connection sends the next
    /// host's `/nic/update` (its name, a new address; Basic auth with its name and password).
    Dyndns2,
    /// The QUIC device channel against HTTP polling, in one run (`quic.rs`): the fleet idles
    /// on QUIC connections (the server's memory and keep-alive CPU), some of its devices move
    /// (rebind → DNS answer), and the same number of devices poll `ipdetect` every
    /// `--poll-interval` over HTTP, a connection per poll. Options: [`QuicOptions`].
    Quic,
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Churn => "churn",
            Scenario::Surge => "surge",
            Scenario::Updates => "updates",
            Scenario::Dvr => "dvr",
            Scenario::Dyndns2 => "dyndns2",
            Scenario::Quic => "quic",
        }
    }

    /// The protocol of a scenario over provisioned hosts (`dvr`, `dyndns2`); `None` for the
    /// device API's scenarios.
    pub fn hosts(self) -> Option<HostProtocol> {
        match self {
            Scenario::Dvr => Some(HostProtocol::Dvr),
            Scenario::Dyndns2 => Some(HostProtocol::Dyndns2),
            Scenario::Steady
            | Scenario::Churn
            | Scenario::Surge
            | Scenario::Updates
            | Scenario::Quic => None,
        }
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Scenario, String> {
        match s {
            "steady" => Ok(Scenario::Steady),
            "churn" => Ok(Scenario::Churn),
            "surge" => Ok(Scenario::Surge),
            "updates" => Ok(Scenario::Updates),
            "dvr" => Ok(Scenario::Dvr),
            "dyndns2" => Ok(Scenario::Dyndns2),
            "quic" => Ok(Scenario::Quic),
            other => Err(format!(
                "unknown scenario {other:?} (steady, churn, surge, updates, dvr, dyndns2 or quic)"
            )),
        }
    }
}

/// Where the fleet's requests come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sources {
    /// Each device from its own address in 127.0.0.0/8 (`fleet::source_addr`), which is its
    /// WAN address: `ipdetect` answers it and writes carry no `myip`, and the server's
    /// per-source quota applies to each device alone, as it does in the field.
    PerDevice,
    /// The whole fleet from the system's choice of address (127.0.0.1 against a local
    /// server), with simulated WAN addresses sent as `myip`: the server's per-source quota must
    /// be raised for it.
    Single,
}

impl Sources {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Sources::PerDevice => "per-device",
            Sources::Single => "single",
        }
    }
}

/// Which devices the final check asks DNS about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// None.
    Off,
    /// An evenly spread sample of this many devices.
    Sample(u32),
    /// Every device.
    All,
}

impl FromStr for Verify {
    type Err = String;

    fn from_str(s: &str) -> Result<Verify, String> {
        match s {
            "all" => Ok(Verify::All),
            "none" | "off" | "0" => Ok(Verify::Off),
            n => n
                .parse()
                .map(Verify::Sample)
                .map_err(|_| format!("--verify takes a count, `all` or `none`, not {n:?}")),
        }
    }
}

/// Parses `250ms`, `30s`, `5m`, `1h` or a bare number of seconds (fractions allowed).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 300s, 5m or 250ms"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
}

/// The `quic` scenario's own settings (its fleet is `devices` idle devices plus `movers`).
#[derive(Clone, Debug)]
pub struct QuicOptions {
    /// The server's `quic_listen` address (the ready line's `quic=`).
    pub server: Option<SocketAddr>,
    /// The name the server's certificate is checked against.
    pub server_name: String,
    /// PEM file of the CA (or certificate) the devices trust.
    pub ca: Option<PathBuf>,
    /// Client UDP sockets the idle devices share (`127.0.1.1`, `127.0.1.2`, …); 0: one per
    /// [`QuicOptions::DEVICES_PER_ENDPOINT`] devices ([`QuicOptions::endpoints`]).
    pub endpoints: u32,
    /// Idle devices started per second (a fleet that came online over time; the server
    /// admits `[quic] handshakes_per_second`).
    pub ramp_per_sec: u32,
    /// How long the server's own idle CPU is measured, before any fleet, to subtract it.
    pub baseline: Duration,
    /// After the last device connected, before the server's RSS is read: handshakes' buffers
    /// freed, the last session tickets sent.
    pub settle: Duration,
    /// How long the connected fleet idles while the server's CPU is measured.
    pub idle: Duration,
    /// Devices that move, each on a socket of its own, after the idle window.
    pub movers: u32,
    /// Rebinds per mover, one per `rebind_every`, each at a random moment of its first second.
    pub rebinds: u32,
    /// A mover's rebinds are this far apart (more than a move takes to reach DNS, ~2.3 s).
    pub rebind_every: Duration,
    /// How long the polling fleet runs (real time; its polls are `poll_interval` apart).
    pub poll_window: Duration,
    /// The run stops if the loadgen's own RSS passes this many MiB (the devices' side of
    /// 100,000 connections is ~3.5 GiB).
    pub max_rss_mib: u64,
}

impl QuicOptions {
    /// Devices per client socket when `endpoints` is 0. The server charges each handshake to
    /// its source address's request quota (`source_requests_per_minute`, default 600 a minute
    /// in bursts of 120), as in the field, where each device has an address of its own: 100
    /// devices behind one address all connect within its burst.
    pub const DEVICES_PER_ENDPOINT: u32 = 100;

    /// The client sockets `devices` idle devices share.
    pub fn endpoints(&self, devices: u32) -> u32 {
        match self.endpoints {
            0 => devices.div_ceil(Self::DEVICES_PER_ENDPOINT).max(1),
            n => n,
        }
    }
}

impl Default for QuicOptions {
    fn default() -> QuicOptions {
        QuicOptions {
            server: None,
            server_name: "localhost".into(),
            ca: None,
            endpoints: 0,
            ramp_per_sec: 300,
            baseline: Duration::from_secs(20),
            settle: Duration::from_secs(5),
            idle: Duration::from_secs(60),
            movers: 100,
            rebinds: 10,
            rebind_every: Duration::from_secs(4),
            poll_window: Duration::from_secs(60),
            max_rss_mib: 8192,
        }
    }
}

/// A configuration that cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Everything a run needs. Times of the model (poll interval, surge) are simulated time,
/// divided by `speedup` to get real time; `duration` and the timeouts are real time.
#[derive(Clone, Debug)]
pub struct LoadgenConfig {
    /// The device API.
    pub http: SocketAddr,
    /// The DNS server (UDP).
    pub dns: SocketAddr,
    /// The vendor key that seals device tokens.
    pub key: DeviceKey,
    /// Stamp tokens with the time (for vendors with `max_age_secs`).
    pub fresh_tokens: bool,
    /// The vendor's name, for the report.
    pub vendor: String,
    /// The vendor's zone: device names are `<label>.<zone>`.
    pub zone: String,
    /// Device labels are this prefix and the device's index (default `lg<seed>-`; hosts of
    /// the `dvr` and `dyndns2` scenarios `h`).
    pub label_prefix: Option<String>,
    /// The hosts' group (`dvr`, `dyndns2`): hosts are `<prefix><index>.<group>.<zone>`
    /// (default `lg<seed>`).
    pub dvr_group: Option<String>,
    /// The portal user who owns the hosts (created if missing when provisioning).
    pub dvr_user: String,
    /// Provision the hosts (`dvr`, `dyndns2`) that do not exist yet through the server's admin socket
    /// (`DATA_DIR/admin.sock`) before the run; `None`: they exist already.
    pub admin_socket: Option<PathBuf>,
    /// Admin requests at once while provisioning (each host costs the server one argon2 hash).
    pub provision_concurrency: usize,
    /// Fleet size.
    pub devices: u32,
    /// What the fleet does.
    pub scenario: Scenario,
    /// How often a device polls `ipdetect` (simulated time).
    pub poll_interval: Duration,
    /// Simulated seconds per real second.
    pub speedup: f64,
    /// Share of devices whose address changes per interval (default 0.05 for `churn`, else 0).
    pub churn: Option<f64>,
    /// Share of devices that reboot per interval.
    pub reboot: f64,
    /// Share of devices decommissioned per interval.
    pub decommission: f64,
    /// When the surge starts (simulated; 0: the surge is the boot).
    pub surge_at: Duration,
    /// How long the surge lasts (simulated).
    pub surge_window: Duration,
    /// The fleet was registered by an earlier run with the same seed: boot with `update`.
    pub registered: bool,
    /// With `registered`: the fleet is up already, so its first slots are polls, not boots
    /// (`FleetConfig::booted`; the `quic` scenario's polling fleet).
    pub booted: bool,
    /// Requests in flight at most: connection workers, each with one request out.
    pub connections: usize,
    /// Keep each worker's connection open across requests (`None`: the scenario's default, a
    /// new connection per request sent with `Connection: close` for `steady`, `churn` and
    /// `surge`, as devices that poll every few minutes do, and keep-alive for the closed
    /// loops, which measure the server's write path at its maximum rate).
    pub keep_alive: Option<bool>,
    /// Where requests come from (`None`: the scenario's default, a source per device for
    /// `steady`, `churn` and `surge`, one source for the closed loops).
    pub sources: Option<Sources>,
    /// How long requests are scheduled (real time); the run then drains and stops.
    pub duration: Duration,
    /// Per request, from when it is sent.
    pub timeout: Duration,
    /// Share of acknowledged changes whose propagation to DNS is measured.
    pub propagation_sample: f64,
    /// How long a probe waits for DNS to answer the new address.
    pub probe_timeout: Duration,
    /// The final check against DNS.
    pub verify: Verify,
    /// Seeds identities, addresses, phases and rolls.
    pub seed: u64,
    /// `Company - Device - Version`, as the seed asks devices to send.
    pub user_agent: String,
    /// The server's pid, to report its CPU time.
    pub server_pid: Option<u32>,
    /// When the run was configured (ns since the Unix epoch): mixed into the `updates`
    /// scenario's addresses.
    pub started_ns: u64,
    /// The `quic` scenario's settings.
    pub quic: QuicOptions,
}

impl LoadgenConfig {
    /// The defaults, against `http` and `dns` with `key`.
    pub fn new(http: SocketAddr, dns: SocketAddr, key: DeviceKey) -> LoadgenConfig {
        LoadgenConfig {
            http,
            dns,
            key,
            fresh_tokens: false,
            vendor: "demo".into(),
            zone: "dyn.example".into(),
            label_prefix: None,
            dvr_group: None,
            dvr_user: "loadgen".into(),
            admin_socket: None,
            provision_concurrency: 4,
            devices: 30_000,
            scenario: Scenario::Steady,
            poll_interval: Duration::from_secs(300),
            speedup: 1.0,
            churn: None,
            reboot: 0.0,
            decommission: 0.0,
            surge_at: Duration::ZERO,
            surge_window: Duration::from_secs(60),
            registered: false,
            booted: false,
            connections: 128,
            keep_alive: None,
            sources: None,
            duration: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            propagation_sample: 0.1,
            probe_timeout: Duration::from_secs(5),
            verify: Verify::Sample(10_000),
            seed: 1,
            user_agent: "ddns-loadgen - SimCam - 1.0".into(),
            server_pid: None,
            started_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            quic: QuicOptions::default(),
        }
    }

    /// The churn in effect.
    pub fn churn(&self) -> f64 {
        self.churn.unwrap_or(match self.scenario {
            Scenario::Churn => 0.05,
            Scenario::Steady
            | Scenario::Surge
            | Scenario::Updates
            | Scenario::Dvr
            | Scenario::Dyndns2
            | Scenario::Quic => 0.0,
        })
    }

    /// Whether connections are kept open across requests (see the field `keep_alive`).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
            .unwrap_or_else(|| self.fleet_is_closed_loop())
    }

    /// Where requests come from (see the field `sources`).
    pub fn sources(&self) -> Sources {
        self.sources.unwrap_or(if self.fleet_is_closed_loop() {
            Sources::Single
        } else {
            Sources::PerDevice
        })
    }

    /// The hosts' group label.
    pub fn dvr_group(&self) -> String {
        self.dvr_group
            .clone()
            .unwrap_or_else(|| format!("lg{}", self.seed))
    }

    /// How devices are named (hosts, in both their protocols: `h<index>.<group>.<zone>`).
    pub fn naming(&self) -> Naming {
        let zone = self.zone.trim_end_matches('.').to_ascii_lowercase();
        match self.scenario.hosts() {
            Some(_) => Naming {
                prefix: self.label_prefix.clone().unwrap_or_else(|| "h".into()),
                zone: format!("{}.{zone}", self.dvr_group()),
            },
            None => Naming {
                prefix: self
                    .label_prefix
                    .clone()
                    .unwrap_or_else(|| format!("lg{}-", self.seed)),
                zone,
            },
        }
    }

    fn fleet_is_closed_loop(&self) -> bool {
        self.scenario == Scenario::Updates || self.scenario.hosts().is_some()
    }

    /// Simulated time to real µs.
    fn real_us(&self, simulated: Duration) -> u64 {
        (simulated.as_secs_f64() / self.speedup * 1e6).round() as u64
    }

    /// The model's parameters in real µs.
    pub fn fleet_config(&self) -> FleetConfig {
        FleetConfig {
            devices: self.devices,
            interval_us: self.real_us(self.poll_interval).max(1),
            churn: self.churn(),
            reboot: self.reboot,
            decommission: self.decommission,
            surge: (self.scenario == Scenario::Surge).then(|| Surge {
                at_us: self.real_us(self.surge_at),
                window_us: self.real_us(self.surge_window).max(1),
            }),
            // Hosts exist before the run (provisioned), so they never `add`.
            registered: self.registered || self.scenario.hosts().is_some(),
            booted: self.booted,
            closed_loop: self.fleet_is_closed_loop(),
            hosts: self.scenario.hosts(),
            own_sources: self.sources() == Sources::PerDevice,
            // Updates against a fleet an earlier run updated must not repeat its addresses
            // (they would be `08`s, `nochg`s, or `ACT`s answered from memory: no writes).
            roll_seed: if self.fleet_is_closed_loop() {
                self.seed ^ self.started_ns
            } else {
                self.seed
            },
            end_us: self.duration.as_micros() as u64,
            seed: self.seed,
        }
    }

    /// Refuses what cannot run.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.devices == 0 || self.devices > DEVICES_MAX {
            return fail(format!("--devices must be 1 to {DEVICES_MAX}"));
        }
        if self.connections == 0 || self.connections > 65_536 {
            return fail("--connections must be 1 to 65536".into());
        }
        if !(self.speedup.is_finite() && self.speedup > 0.0) {
            return fail("--speedup must be positive".into());
        }
        if self.poll_interval.is_zero() || self.duration.is_zero() || self.timeout.is_zero() {
            return fail("--poll-interval, --duration and --timeout must be positive".into());
        }
        for (name, share) in [
            ("--churn", self.churn()),
            ("--reboot", self.reboot),
            ("--decommission", self.decommission),
            ("--propagation-sample", self.propagation_sample),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return fail(format!("{name} is a share from 0 to 1, not {share}"));
            }
        }
        if self.sources() == Sources::PerDevice {
            if !(self.http.ip().is_loopback() && self.http.is_ipv4()) {
                return fail(format!(
                    "a source per device comes from 127.0.0.0/8, which reaches only a server on \
                     the loopback (--http {}): use --single-source",
                    self.http
                ));
            }
            if self.scenario.hosts().is_some() {
                return fail(format!(
                    "--scenario {} sends each host's address in the request: use --single-source",
                    self.scenario.name()
                ));
            }
            if self.devices > SOURCES_MAX {
                return fail(format!(
                    "a source per device: at most {SOURCES_MAX} devices (127/8 without .0 and \
                     .255 octets)"
                ));
            }
            // A new address is a new source from the device's own share of 127/8.
            let changes = self.churn() > 0.0 || self.fleet_is_closed_loop();
            if changes && self.devices > SOURCES_MAX / 2 {
                return fail(format!(
                    "address changes with a source per device: at most {} devices",
                    SOURCES_MAX / 2
                ));
            }
        }
        if self.scenario == Scenario::Quic {
            self.validate_quic()?;
        }
        let naming = self.naming();
        let ldh = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if naming.prefix.is_empty()
            || naming.prefix.len() > 50
            || !ldh(&naming.prefix)
            || naming.prefix.starts_with('-')
        {
            return fail(format!(
                "label prefix {:?}: 1-50 of a-z, 0-9 and -, not starting with -",
                naming.prefix
            ));
        }
        if naming.zone.is_empty() || !naming.zone.split('.').all(|l| !l.is_empty() && ldh(l)) {
            return fail(format!("--zone {:?} is not a domain name", self.zone));
        }
        if self.scenario.hosts().is_some() {
            let group = self.dvr_group();
            if group.is_empty()
                || group.len() > 63
                || !ldh(&group)
                || group.starts_with('-')
                || group.ends_with('-')
            {
                return fail(format!("--dvr-group {group:?} is not a DNS label"));
            }
            if !(5..=20).contains(&self.dvr_user.len())
                || !self.dvr_user.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return fail(format!(
                    "--dvr-user {:?}: 5 to 20 letters or digits",
                    self.dvr_user
                ));
            }
            if self.provision_concurrency == 0 {
                return fail("the provisioning concurrency must be at least 1".into());
            }
        }
        Ok(())
    }

    fn validate_quic(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        let q = &self.quic;
        if q.server.is_none() || q.ca.is_none() {
            return fail(
                "--scenario quic needs --quic (the server's quic_listen) and --quic-ca".into(),
            );
        }
        if self.server_pid.is_none() {
            return fail("--scenario quic measures the server: give --server-pid".into());
        }
        if q.endpoints(self.devices) > 254 * 254 {
            return fail(format!("--quic-endpoints: at most {}", 254 * 254));
        }
        if q.ramp_per_sec == 0 {
            return fail("--ramp must be at least 1 device per second".into());
        }
        if q.movers > 0 && (q.rebinds == 0 || q.rebind_every < Duration::from_secs(1)) {
            return fail("movers need --rebinds of at least 1, at least 1 s apart".into());
        }
        // Every device registers from its own source; mover m's k-th address is the source
        // of index `m + k × (devices + movers)`: its own share of 127/8.
        let total = u64::from(self.devices) + u64::from(q.movers);
        if total * (u64::from(q.rebinds) + 1) > u64::from(SOURCES_MAX) {
            return fail(format!(
                "{total} devices with {} rebinds each need more than 127/8's {SOURCES_MAX} \
                 source addresses",
                q.rebinds
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoadgenConfig {
        let key = DeviceKey {
            id: 1,
            secret: [0; 32],
        };
        LoadgenConfig::new(
            "127.0.0.1:8080".parse().expect("addr"),
            "127.0.0.1:5353".parse().expect("addr"),
            key,
        )
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn speedup_compresses_the_model_not_the_run() {
        let mut c = config();
        c.poll_interval = Duration::from_secs(300);
        c.speedup = 60.0;
        c.scenario = Scenario::Surge;
        c.surge_window = Duration::from_secs(60);
        c.duration = Duration::from_secs(20);
        let f = c.fleet_config();
        assert_eq!(f.interval_us, 5_000_000);
        assert_eq!(f.surge.map(|s| s.window_us), Some(1_000_000));
        assert_eq!(f.end_us, 20_000_000);
    }

    #[test]
    fn dvr_hosts_are_named_in_their_group_and_provisioned_before_the_run() {
        let mut c = config();
        c.scenario = Scenario::Dvr;
        c.seed = 7;
        assert_eq!(c.naming().fqdn(12), "h12.lg7.dyn.example");
        let f = c.fleet_config();
        assert!(f.closed_loop && f.registered, "{f:?}");
        assert_eq!(f.hosts, Some(HostProtocol::Dvr));
        assert_eq!(c.validate(), Ok(()));
        // dyndns2 updates the same hosts, by the same names.
        c.scenario = Scenario::Dyndns2;
        let f = c.fleet_config();
        assert!(f.closed_loop && f.registered, "{f:?}");
        assert_eq!(f.hosts, Some(HostProtocol::Dyndns2));
        assert_eq!(f.roll_seed, c.seed ^ c.started_ns, "new addresses each run");
        assert_eq!(c.naming().fqdn(12), "h12.lg7.dyn.example");
        c.scenario = Scenario::Dvr;
        c.dvr_group = Some("Bad_group".into());
        assert!(c.validate().is_err());
        c.dvr_group = Some("cams".into());
        assert_eq!(c.naming().fqdn(0), "h0.cams.dyn.example");
        c.dvr_user = "lg".into();
        assert!(c.validate().is_err(), "user IDs are 5 to 20 characters");
    }

    #[test]
    fn the_fleet_connects_per_request_from_its_own_sources_and_the_closed_loops_keep_alive() {
        let mut c = config();
        for scenario in [Scenario::Steady, Scenario::Churn, Scenario::Surge] {
            c.scenario = scenario;
            assert!(!c.keep_alive(), "{scenario:?}");
            assert_eq!(c.sources(), Sources::PerDevice, "{scenario:?}");
            assert!(c.fleet_config().own_sources);
            assert_eq!(c.validate(), Ok(()));
        }
        for scenario in [Scenario::Updates, Scenario::Dvr, Scenario::Dyndns2] {
            c.scenario = scenario;
            assert!(c.keep_alive(), "{scenario:?}");
            assert_eq!(c.sources(), Sources::Single, "{scenario:?}");
            assert!(!c.fleet_config().own_sources);
        }
        c.scenario = Scenario::Steady;
        c.keep_alive = Some(true);
        c.sources = Some(Sources::Single);
        assert!(c.keep_alive() && !c.fleet_config().own_sources);
        // The closed loop of device updates may come from the devices' own sources too.
        c.scenario = Scenario::Updates;
        c.sources = Some(Sources::PerDevice);
        assert!(c.fleet_config().own_sources);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn own_sources_need_a_loopback_server_and_room_in_127_8() {
        let mut c = config();
        assert_eq!(c.validate(), Ok(()));
        c.http = "192.0.2.1:8080".parse().expect("addr");
        assert!(c.validate().is_err(), "127/8 reaches only the loopback");
        c.sources = Some(Sources::Single);
        assert_eq!(c.validate(), Ok(()));
        let mut c = config();
        c.devices = SOURCES_MAX;
        assert_eq!(c.validate(), Ok(()), "one address each, no changes");
        c.devices = SOURCES_MAX + 1;
        assert!(c.validate().is_err());
        c.devices = SOURCES_MAX / 2 + 1;
        c.churn = Some(0.01);
        assert!(c.validate().is_err(), "a change needs a second address");
        c.devices = SOURCES_MAX / 2;
        assert_eq!(c.validate(), Ok(()));
        c.scenario = Scenario::Dvr;
        c.sources = Some(Sources::PerDevice);
        c.devices = 10;
        assert!(c.validate().is_err(), "hosts send their address");
    }

    #[test]
    fn churn_defaults_by_scenario() {
        let mut c = config();
        assert_eq!(c.churn(), 0.0);
        c.scenario = Scenario::Churn;
        assert_eq!(c.churn(), 0.05);
        c.churn = Some(0.2);
        assert_eq!(c.churn(), 0.2);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert_eq!(config().validate(), Ok(()));
        let bad: [fn(&mut LoadgenConfig); 6] = [
            |c| c.devices = 0,
            |c| c.connections = 0,
            |c| c.speedup = 0.0,
            |c| c.churn = Some(1.5),
            |c| c.label_prefix = Some("Bad_".into()),
            |c| c.zone = "a..b".into(),
        ];
        for change in bad {
            let mut c = config();
            change(&mut c);
            assert!(c.validate().is_err(), "{c:?}");
        }
        assert_eq!("surge".parse(), Ok(Scenario::Surge));
        assert_eq!("updates".parse(), Ok(Scenario::Updates));
        assert_eq!("dvr".parse(), Ok(Scenario::Dvr));
        assert_eq!("dyndns2".parse(), Ok(Scenario::Dyndns2));
        assert_eq!(Scenario::Dyndns2.name(), "dyndns2");
        assert!("dyndns".parse::<Scenario>().is_err());
        assert_eq!("all".parse(), Ok(Verify::All));
        assert_eq!("100".parse(), Ok(Verify::Sample(100)));
    }
}
