//! The `quic` scenario: what the QUIC device channel costs a node and what it buys, against the
//! same number of devices polling `ipdetect` over HTTP, in one run against one server.
//!
//! Devices are the reference client's ([`ddns_client::Device`]), in this process, sharing
//! `--quic-endpoints` UDP sockets. Phases, in order, each bounded in count and time:
//!
//! 1. **Registration** (untimed; skipped with `--registered`): the loadgen's own `surge`
//!    (`run.rs`): every device, idle ones and movers, `add`s from its own 127/8 source.
//! 2. **Baseline**: the server alone for `baseline`: its own idle CPU (projector, log, DNS
//!    workers), subtracted from both fleets' figures.
//! 3. **Polling**: the `devices` poll `ipdetect` every `--poll-interval` (real time: `N/300`
//!    requests/s at 300 s), a connection per poll from each device's own address, for
//!    `poll_window`: the loadgen's `steady` fleet, already up (`booted`: no boot `update`s).
//! 4. **Connect**: the same `devices` connect over QUIC, `ramp_per_sec` a second (a fleet that
//!    came online over time), each with its `mac` token; then `settle` (5 s), and the server's
//!    RSS before and after: bytes per connection (and this process's, the devices' side).
//! 5. **Idle**: `idle` with every device connected and idle, keeping alive every 15–25 s as in
//!    the field: the server's CPU per device per hour, the UDP datagrams per second.
//! 6. **Rebinds**: `movers` more devices, each on a socket of its own on its registered
//!    address, rebound (`quinn::Endpoint::rebind`) `rebinds` times to a new address of their
//!    own share of 127/8, one every `rebind_every` at a random moment of its first second (the
//!    server's address walk runs once a second): the time until the server's DNS answers the
//!    new address (the propagation prober of `dns.rs`), and until the device hears its PUSH.
//!
//! A mover's writes are charged to its quota like any device's (`[ingest.flood]
//! device_updates_per_minute`, default 10): more than ~15 rebinds a minute need it raised.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ddns_client::{Credential, Device, DeviceConfig, DeviceEvent, Event};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use crate::config::{LoadgenConfig, Scenario, Sources, Verify};
use crate::cpu::{cpu_secs, rss_bytes, udp_datagrams};
use crate::dns::{ProbeRequest, ProberLimits, join_prober, spawn_prober};
use crate::fleet::{mac_of, source_addr};
use crate::report::Report;
use crate::rng::{SplitMix64, derive};
use crate::run::{RunError, run};
use crate::stats::{Latency, new_histogram};
use crate::token::Sealer;

/// How long past its ramp the fleet may take to connect (retries after refusals included).
const CONNECT_GRACE: Duration = Duration::from_secs(120);
/// The mean of the client's keep-alive interval (15–25 s, `DeviceConfig::new`).
const KEEP_ALIVE_MEAN_SECS: f64 = 20.0;

/// What the `quic` scenario measured, and the polling fleet beside it.
#[derive(Clone, Debug, Serialize)]
pub struct QuicReport {
    /// Idle QUIC devices, and as many polling devices.
    pub devices: u32,
    /// Devices that moved (besides `devices`).
    pub movers: u32,
    /// Client UDP sockets the idle devices shared.
    pub endpoints: u32,
    /// Idle devices started per second.
    pub ramp_per_sec: u32,
    /// The polling fleet's interval, seconds.
    pub poll_interval_secs: f64,
    /// How long registering every device took (`None` with `--registered`).
    pub registration_secs: Option<f64>,
    /// The server's own CPU with no fleet, in cores; subtracted below.
    pub server_base_cores: f64,
    /// Connecting the idle fleet, and what it holds in memory.
    pub connect: QuicConnect,
    /// The connected fleet, idle.
    pub idle: QuicIdle,
    /// Moves and how long they took to show.
    pub rebinds: QuicRebinds,
    /// The same number of devices polling `ipdetect` over HTTP.
    pub polling: Polling,
    /// The polling fleet's whole report.
    pub polling_run: Report,
}

/// Connecting the idle fleet.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QuicConnect {
    /// Devices that said HELLO and got their record.
    pub connected: u32,
    /// From the first device started to the last connected.
    pub secs: f64,
    /// Connections lost (each retried after a pause).
    pub lost: u64,
    /// Why, as the client said it, and how often.
    pub lost_reasons: BTreeMap<String, u64>,
    /// HELLOs refused (each retried after the longest pause).
    pub refused: u64,
    /// Connections whose record was not the device's name.
    pub unexpected_records: u64,
    /// The server's RSS before the first device started.
    pub server_rss_before_bytes: u64,
    /// The server's RSS with every device connected and settled.
    pub server_rss_after_bytes: u64,
    /// `(after - before) / connected`.
    pub server_bytes_per_connection: f64,
    /// The same for this process: the devices' side.
    pub loadgen_bytes_per_connection: f64,
}

/// The connected fleet, idle.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QuicIdle {
    /// The window.
    pub secs: f64,
    /// The server's CPU over the window, all of it.
    pub server_cpu_secs: f64,
    /// The server's CPU over its own idle, in cores.
    pub server_cores: f64,
    /// The same per device per hour, ms.
    pub server_ms_per_device_hour: f64,
    /// The same per keep-alive (one per device every ~20 s), µs.
    pub server_us_per_keep_alive: f64,
    /// UDP datagrams of both directions per second (all of this network namespace's).
    pub udp_datagrams_per_sec: Option<f64>,
    /// This process (the devices' side), in cores.
    pub loadgen_cores: f64,
    /// Connections lost in the window.
    pub lost: u64,
}

/// Moves and how long they took to show.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QuicRebinds {
    /// Rebinds made.
    pub count: u64,
    /// Rebind → the server's DNS answers the new address, µs.
    pub dns: Latency,
    /// Rebinds DNS did not show within `--probe-timeout`.
    pub timeouts: u64,
    /// DNS answers that still held the old address (asked again).
    pub stale_answers: u64,
    /// Rebind → the device read its PUSH `09` with the new address, µs.
    pub push: Latency,
    /// PUSH codes the movers heard.
    pub push_codes: BTreeMap<String, u64>,
}

/// The polling fleet, as the QUIC fleet's figures are given.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Polling {
    /// The run, seconds.
    pub secs: f64,
    /// Requests (each a TCP connection).
    pub requests: u64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Failed requests.
    pub errors: u64,
    /// `ipdetect` answers that were not the device's own address.
    pub unexpected: u64,
    /// Due → reply.
    pub latency: Latency,
    /// The server's CPU over the run, all of it.
    pub server_cpu_secs: f64,
    /// The server's CPU over its own idle, in cores.
    pub server_cores: f64,
    /// The same per device per hour, ms.
    pub server_ms_per_device_hour: f64,
    /// The same per request, µs.
    pub server_us_per_request: f64,
    /// The server's RSS after the run minus before, per device.
    pub server_bytes_per_device: f64,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fail(message: String) -> RunError {
    RunError::Quic(message)
}

/// The server's CPU seconds so far (the scenario needs them: `validate` asks for the pid).
fn server_cpu(pid: u32) -> Result<f64, RunError> {
    cpu_secs(Some(pid)).ok_or_else(|| fail(format!("no CPU time for the server (pid {pid})")))
}

fn server_rss(pid: u32) -> Result<u64, RunError> {
    rss_bytes(Some(pid)).ok_or_else(|| fail(format!("no RSS for the server (pid {pid})")))
}

/// Runs the `quic` scenario (module docs); `notes` hears a line as each phase ends.
pub async fn run_quic(
    config: &LoadgenConfig,
    notes: &mut dyn FnMut(&str),
) -> Result<QuicReport, RunError> {
    config.validate()?;
    if config.scenario != Scenario::Quic {
        return Err(fail(format!(
            "run_quic runs --scenario quic, not {}",
            config.scenario.name()
        )));
    }
    let q = &config.quic;
    let pid = config.server_pid.expect("validated");
    let ca = q.ca.as_ref().expect("validated");
    let roots = ddns_client::roots_from_pem(ca).map_err(|e| fail(format!("--quic-ca: {e:#}")))?;
    let target = ddns_client::Server {
        addr: q.server.expect("validated"),
        name: q.server_name.clone(),
        tls: ddns_client::tls_config(roots),
    };
    let n = config.devices;
    let total = n + q.movers;
    let naming = config.naming();

    // 1. Registration: every device `add`s from its own source.
    let registration_secs = if config.registered {
        None
    } else {
        let mut c = config.clone();
        c.scenario = Scenario::Surge;
        c.devices = total;
        // 5,000 adds a second with a connection each: well inside what one node takes.
        c.surge_window = Duration::from_secs_f64((f64::from(total) / 5000.0).max(1.0));
        c.speedup = 1.0;
        c.poll_interval = Duration::from_secs(24 * 3600);
        c.duration = c.surge_window;
        c.timeout = Duration::from_secs(60);
        c.connections = 256;
        c.keep_alive = Some(false);
        c.sources = Some(Sources::PerDevice);
        c.propagation_sample = 0.0;
        c.verify = Verify::Off;
        let started = Instant::now();
        let outcome = run(&c, None).await?;
        let acked = outcome
            .report
            .replies
            .get("add")
            .and_then(|codes| codes.get("10"))
            .copied()
            .unwrap_or(0);
        if acked != u64::from(total) {
            return Err(fail(format!(
                "registration: {acked} of {total} devices acknowledged (10); a fresh server, or \
                 --registered if an earlier run with --seed {} registered them: {:?}",
                config.seed, outcome.report.replies
            )));
        }
        let secs = started.elapsed().as_secs_f64();
        notes(&format!(
            "registered {total} devices over HTTP in {secs:.1} s"
        ));
        Some(secs)
    };

    // 2. The server alone.
    let cpu_before = server_cpu(pid)?;
    let started = Instant::now();
    sleep(q.baseline).await;
    let server_base_cores =
        (server_cpu(pid)? - cpu_before) / started.elapsed().as_secs_f64().max(1e-3);
    notes(&format!(
        "the server alone: {:.2}% of a core",
        100.0 * server_base_cores
    ));

    // 3. The polling fleet.
    let mut c = config.clone();
    c.scenario = Scenario::Steady;
    c.registered = true;
    c.booted = true;
    c.speedup = 1.0;
    c.duration = q.poll_window;
    c.churn = Some(0.0);
    c.reboot = 0.0;
    c.decommission = 0.0;
    c.keep_alive = Some(false);
    c.sources = Some(Sources::PerDevice);
    c.propagation_sample = 0.0;
    c.verify = Verify::Off;
    let rss_before = server_rss(pid)?;
    let polling_run = run(&c, None).await?.report;
    let polling = polling_summary(
        &polling_run,
        server_base_cores,
        n,
        rss_before,
        server_rss(pid)?,
    );
    notes(&format!(
        "polling: {} ipdetect requests in {:.1} s ({:.1}/s), {} errors",
        polling.requests, polling.secs, polling.requests_per_sec, polling.errors
    ));

    // 4. Connect the idle fleet.
    let (events_tx, mut events) = mpsc::unbounded_channel::<DeviceEvent>();
    let endpoint_count = q.endpoints(n);
    // Room for a burst of packets (every connection's close when the server stops), shared.
    let buffer_bytes = ((64usize << 20) / endpoint_count as usize).clamp(256 << 10, 8 << 20);
    let endpoints = (0..endpoint_count)
        .map(|e| {
            // 127.0.x.y: no device's source (those have no 0 octet).
            let ip = Ipv4Addr::new(127, 0, (1 + e / 254) as u8, (1 + e % 254) as u8);
            ddns_client::endpoint(SocketAddr::from((ip, 0)), buffer_bytes)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let sealer = Sealer::new(&config.key, config.fresh_tokens);
    let device_config = |device: u32| {
        Arc::new(DeviceConfig::new(Credential::Device {
            token: sealer.seal(&mac_of(config.seed, device), unix_secs()),
        }))
    };
    let mut tally = Tally::new(total as usize, &naming, n);
    let server_rss_before = server_rss(pid)?;
    let own_before = rss_bytes(None).unwrap_or(0);
    let max_rss = q.max_rss_mib << 20;
    let ramp = f64::from(q.ramp_per_sec);
    let batch = (q.ramp_per_sec / 10).max(1);
    let started = Instant::now();
    let mut fleet: Vec<Device> = Vec::with_capacity(n as usize);
    for device in 0..n {
        if device % batch == 0 {
            sleep_until(started + Duration::from_secs_f64(f64::from(device) / ramp)).await;
            while let Ok(event) = events.try_recv() {
                tally.note(&event);
            }
            let own = rss_bytes(None).unwrap_or(0);
            if own > max_rss {
                return Err(fail(format!(
                    "{} MiB of loadgen RSS with {} devices connected: past --max-rss-mib",
                    own >> 20,
                    tally.connected
                )));
            }
        }
        let endpoint = endpoints[(device % endpoint_count) as usize].clone();
        fleet.push(Device::spawn(
            device as usize,
            endpoint,
            target.clone(),
            device_config(device),
            events_tx.clone(),
        ));
    }
    let deadline = started + Duration::from_secs_f64(f64::from(n) / ramp) + CONNECT_GRACE;
    while tally.connected < n {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => tally.note(&event),
            Ok(None) => unreachable!("this task holds a sender"),
            Err(_) => {
                return Err(fail(format!(
                    "only {} of {n} devices connected within {:.0} s ({} lost, {} refused: {:?})",
                    tally.connected,
                    started.elapsed().as_secs_f64(),
                    tally.lost,
                    tally.refused,
                    tally.last_failure
                )));
            }
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tally.drain_for(&mut events, q.settle).await;
    let server_rss_after = server_rss(pid)?;
    let own_after = rss_bytes(None).unwrap_or(0);
    let connect = QuicConnect {
        connected: tally.connected,
        secs: connect_secs,
        lost: tally.lost,
        lost_reasons: tally.lost_reasons.clone(),
        refused: tally.refused,
        unexpected_records: tally.unexpected_records,
        server_rss_before_bytes: server_rss_before,
        server_rss_after_bytes: server_rss_after,
        server_bytes_per_connection: (server_rss_after as f64 - server_rss_before as f64)
            / f64::from(n),
        loadgen_bytes_per_connection: (own_after as f64 - own_before as f64) / f64::from(n),
    };
    notes(&format!(
        "connected {n} devices in {connect_secs:.1} s: {:.1} KiB of server RSS each",
        connect.server_bytes_per_connection / 1024.0
    ));

    // 5. Idle.
    let lost_before = tally.lost;
    let cpu_before = server_cpu(pid)?;
    let own_cpu_before = cpu_secs(None).unwrap_or(0.0);
    let udp_before = udp_datagrams();
    let started = Instant::now();
    tally.drain_for(&mut events, q.idle).await;
    let secs = started.elapsed().as_secs_f64();
    let server_cpu_secs = server_cpu(pid)? - cpu_before;
    let server_cores = (server_cpu_secs / secs - server_base_cores).max(0.0);
    let per_device_hour = server_cores * 3600.0 / f64::from(n);
    let idle = QuicIdle {
        secs,
        server_cpu_secs,
        server_cores,
        server_ms_per_device_hour: per_device_hour * 1e3,
        server_us_per_keep_alive: per_device_hour * 1e6 / (3600.0 / KEEP_ALIVE_MEAN_SECS),
        udp_datagrams_per_sec: udp_before
            .zip(udp_datagrams())
            .map(|(a, b)| (b - a) as f64 / secs),
        loadgen_cores: (cpu_secs(None).unwrap_or(0.0) - own_cpu_before) / secs,
        lost: tally.lost - lost_before,
    };
    notes(&format!(
        "idle {secs:.0} s: {:.1}% of a core over the server's own",
        100.0 * server_cores
    ));

    // 6. Rebinds.
    let rebinds = if q.movers == 0 {
        QuicRebinds::default()
    } else {
        let mut movers = Vec::with_capacity(q.movers as usize);
        for m in 0..q.movers {
            let device = n + m;
            let endpoint = ddns_client::endpoint(SocketAddr::from((source_addr(device), 0)), 0)?;
            let handle = Device::spawn(
                device as usize,
                endpoint.clone(),
                target.clone(),
                device_config(device),
                events_tx.clone(),
            );
            movers.push((endpoint, handle));
        }
        let deadline =
            Instant::now() + Duration::from_secs_f64(f64::from(q.movers) / ramp) + CONNECT_GRACE;
        while tally.connected < total {
            match timeout_at(deadline, events.recv()).await {
                Ok(Some(event)) => tally.note(&event),
                Ok(None) => unreachable!("this task holds a sender"),
                Err(_) => {
                    return Err(fail(format!(
                        "only {} of {} movers connected in time ({:?})",
                        tally.connected - n,
                        q.movers,
                        tally.last_failure
                    )));
                }
            }
        }
        let rebinds = move_them(config, &movers, &mut events, &mut tally, total).await?;
        notes(&format!(
            "{} rebinds: DNS answered after p50 {} ms, p99 {} ms",
            rebinds.count,
            rebinds.dns.p50_us / 1000,
            rebinds.dns.p99_us / 1000
        ));
        drop(movers);
        rebinds
    };
    drop(fleet);
    for endpoint in &endpoints {
        endpoint.close(0u32.into(), b"done");
    }

    Ok(QuicReport {
        devices: n,
        movers: q.movers,
        endpoints: endpoint_count,
        ramp_per_sec: q.ramp_per_sec,
        poll_interval_secs: config.poll_interval.as_secs_f64(),
        registration_secs,
        server_base_cores,
        connect,
        idle,
        rebinds,
        polling,
        polling_run,
    })
}

/// The movers' rounds: each mover rebinds `rebinds` times, one every `rebind_every`, and each
/// rebind is followed to DNS by the prober; the PUSHes are read from `events` meanwhile.
async fn move_them(
    config: &LoadgenConfig,
    movers: &[(quinn::Endpoint, Device)],
    events: &mut mpsc::UnboundedReceiver<DeviceEvent>,
    tally: &mut Tally,
    total: u32,
) -> Result<QuicRebinds, RunError> {
    let q = &config.quic;
    let n = config.devices;
    let naming = config.naming();
    // Every mover's move followed, each asked every 20 ms: a move takes over a second.
    let limits = ProberLimits {
        in_flight_max: (q.movers as usize).max(ProberLimits::FLEET.in_flight_max),
        immediate_retries_max: 0,
    };
    let (probes, prober) = spawn_prober(config.dns, config.probe_timeout, limits)?;
    let first = Instant::now() + Duration::from_millis(100);
    let mut tasks = JoinSet::new();
    for (m, (endpoint, _)) in movers.iter().enumerate() {
        let m = m as u32;
        let (endpoint, probes, rebound) = (endpoint.clone(), probes.clone(), tally.rebound.clone());
        let name = naming.fqdn(n + m);
        let mut rng = SplitMix64::new(derive(config.seed ^ config.started_ns, u64::from(m)));
        let (rebinds, every) = (q.rebinds, q.rebind_every);
        tasks.spawn(async move {
            for k in 1..=rebinds {
                let at = first + every * (k - 1) + Duration::from_micros(rng.below(1_000_000));
                sleep_until(at).await;
                let ip = source_addr(n + m + k * total);
                let socket = std::net::UdpSocket::bind((ip, 0))?;
                endpoint.rebind(socket)?;
                let now = Instant::now();
                rebound.lock().expect("not poisoned")[m as usize] = Some((now.into_std(), ip));
                let probe = ProbeRequest {
                    name: name.clone(),
                    expect: ip,
                    acked_at: now,
                };
                if probes.send(probe).await.is_err() {
                    return Err(std::io::Error::other("the prober stopped"));
                }
            }
            Ok::<(), std::io::Error>(())
        });
    }
    drop(probes);
    let mut count = 0;
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(Ok(Ok(()))) => count += u64::from(q.rebinds),
                Some(Ok(Err(e))) => return Err(fail(format!("a rebind: {e}"))),
                Some(Err(e)) => return Err(fail(format!("a mover: {e}"))),
                None => break,
            },
            Some(event) = events.recv() => tally.note(&event),
        }
    }
    // The last probes wait for DNS up to --probe-timeout; PUSHes keep arriving meanwhile.
    let join = join_prober(prober);
    tokio::pin!(join);
    let results = loop {
        tokio::select! {
            results = &mut join => break results?,
            Some(event) = events.recv() => tally.note(&event),
        }
    };
    // A PUSH may trail DNS by a round trip.
    tally.drain_for(events, Duration::from_millis(500)).await;
    Ok(QuicRebinds {
        count,
        dns: Latency::of(&results.histogram),
        timeouts: results.timeouts,
        stale_answers: results.stale_answers,
        push: Latency::of(&tally.push),
        push_codes: std::mem::take(&mut tally.push_codes),
    })
}

fn polling_summary(
    report: &Report,
    base_cores: f64,
    devices: u32,
    rss_before: u64,
    rss_after: u64,
) -> Polling {
    let secs = report.elapsed_secs.max(1e-3);
    let server_cpu_secs = report.cpu.server_secs.unwrap_or(0.0);
    let server_cores = (server_cpu_secs / secs - base_cores).max(0.0);
    Polling {
        secs,
        requests: report.requests,
        requests_per_sec: report.requests_per_sec,
        errors: report.errors.total,
        unexpected: report.errors.unexpected,
        latency: report.latency.clone(),
        server_cpu_secs,
        server_cores,
        server_ms_per_device_hour: server_cores * 3600.0 / f64::from(devices) * 1e3,
        server_us_per_request: server_cores * secs / report.requests.max(1) as f64 * 1e6,
        server_bytes_per_device: (rss_after as f64 - rss_before as f64) / f64::from(devices),
    }
}

/// Per mover, its last rebind: when, and to which address (written by the mover's task).
type Rebound = Arc<Mutex<Vec<Option<(std::time::Instant, Ipv4Addr)>>>>;

/// What the devices' events said.
struct Tally {
    /// Whether each device has connected once.
    seen: Vec<bool>,
    connected: u32,
    lost: u64,
    lost_reasons: BTreeMap<String, u64>,
    refused: u64,
    unexpected_records: u64,
    last_failure: Option<String>,
    /// Each device's name, to check its record against.
    names: Vec<String>,
    /// The first mover's device number.
    first_mover: usize,
    /// Per mover, its last rebind: when, and to which address.
    rebound: Rebound,
    /// Rebind → PUSH `09` with the new address, µs.
    push: Histogram<u64>,
    push_codes: BTreeMap<String, u64>,
}

impl Tally {
    fn new(total: usize, naming: &crate::fleet::Naming, first_mover: u32) -> Tally {
        Tally {
            seen: vec![false; total],
            connected: 0,
            lost: 0,
            lost_reasons: BTreeMap::new(),
            refused: 0,
            unexpected_records: 0,
            last_failure: None,
            names: (0..total as u32).map(|d| naming.fqdn(d)).collect(),
            first_mover: first_mover as usize,
            rebound: Arc::new(Mutex::new(vec![None; total - first_mover as usize])),
            push: new_histogram(),
            push_codes: BTreeMap::new(),
        }
    }

    fn note(&mut self, event: &DeviceEvent) {
        let d = event.device;
        match &event.event {
            Event::Connected(record) => {
                let name = record.as_ref().map(|r| r.name.trim_end_matches('.'));
                if !name.is_some_and(|name| name.eq_ignore_ascii_case(&self.names[d])) {
                    self.unexpected_records += 1;
                }
                if !std::mem::replace(&mut self.seen[d], true) {
                    self.connected += 1;
                }
            }
            Event::Lost(why) => {
                self.lost += 1;
                *self.lost_reasons.entry(why.clone()).or_default() += 1;
                self.last_failure = Some(why.clone());
            }
            Event::Refused(code) => {
                self.refused += 1;
                self.last_failure = Some(format!("refused {code}"));
            }
            Event::Pushed(code, record) if d >= self.first_mover => {
                *self.push_codes.entry(code.clone()).or_default() += 1;
                let last = self.rebound.lock().expect("not poisoned")[d - self.first_mover];
                if let Some((at, ip)) = last
                    && code == "09"
                    && record.as_ref().and_then(|r| r.v4) == Some(ip)
                    && event.at >= at
                {
                    let us = (event.at - at).as_micros();
                    self.push
                        .saturating_record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                }
            }
            Event::Pushed(..) | Event::Stopped(_) => {}
        }
    }

    /// Notes every event for `window`.
    async fn drain_for(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<DeviceEvent>,
        window: Duration,
    ) {
        let end = Instant::now() + window;
        while let Ok(Some(event)) = timeout_at(end, events.recv()).await {
            self.note(&event);
        }
    }
}

/// `a / b` as a ratio, with the precision its size needs.
fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 || !a.is_finite() || !b.is_finite() {
        return "–".into();
    }
    let r = a / b;
    if r >= 10.0 {
        format!("{r:.0}×")
    } else if r >= 1.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.3}×")
    }
}

impl fmt::Display for QuicReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, i, r, p) = (&self.connect, &self.idle, &self.rebinds, &self.polling);
        let n = f64::from(self.devices);
        writeln!(
            out,
            "ddns-loadgen: quic · {} devices (+{} movers) on {} client sockets · ramp {}/s · \
             beside ipdetect every {} s over HTTP",
            self.devices, self.movers, self.endpoints, self.ramp_per_sec, self.poll_interval_secs
        )?;
        if let Some(secs) = self.registration_secs {
            writeln!(
                out,
                "registration: {} devices over HTTP in {secs:.1} s (untimed)",
                self.devices + self.movers
            )?;
        }
        writeln!(
            out,
            "server alone: {:.2}% of a core (subtracted below)",
            100.0 * self.server_base_cores
        )?;
        writeln!(
            out,
            "connect:  {} devices in {:.1} s ({:.0}/s); {} lost, {} refused, {} unexpected \
             records; server RSS {} → {} MiB: {:.1} KiB per connection (the devices' side, this \
             process: {:.1} KiB)",
            c.connected,
            c.secs,
            f64::from(c.connected) / c.secs.max(1e-3),
            c.lost,
            c.refused,
            c.unexpected_records,
            c.server_rss_before_bytes >> 20,
            c.server_rss_after_bytes >> 20,
            c.server_bytes_per_connection / 1024.0,
            c.loadgen_bytes_per_connection / 1024.0
        )?;
        for (why, count) in &c.lost_reasons {
            writeln!(out, "          lost ×{count}: {why}")?;
        }
        writeln!(
            out,
            "idle:     {:.0} s: server CPU {:.2} s, {:.1}% of a core over its own → {:.2} ms per \
             device-hour, {:.1} µs per keep-alive (one every ~{KEEP_ALIVE_MEAN_SECS} s); {} UDP \
             datagrams/s both ways; loadgen {:.2} cores; {} connections lost",
            i.secs,
            i.server_cpu_secs,
            100.0 * i.server_cores,
            i.server_ms_per_device_hour,
            i.server_us_per_keep_alive,
            i.udp_datagrams_per_sec
                .map_or_else(|| "?".into(), |d| format!("{d:.0}")),
            i.loadgen_cores,
            i.lost
        )?;
        writeln!(
            out,
            "rebinds:  {} ({} movers): DNS answered the new address after p50 {:.0} ms, p99 {:.0} \
             ms, max {:.0} ms ({} not in time, {} stale answers); PUSH 09 after p50 {:.0} ms, p99 \
             {:.0} ms ({} pushes: {:?})",
            r.count,
            self.movers,
            r.dns.p50_us as f64 / 1e3,
            r.dns.p99_us as f64 / 1e3,
            r.dns.max_us as f64 / 1e3,
            r.timeouts,
            r.stale_answers,
            r.push.p50_us as f64 / 1e3,
            r.push.p99_us as f64 / 1e3,
            r.push.count,
            r.push_codes
        )?;
        writeln!(
            out,
            "polling:  {:.0} s, {} requests ({:.1}/s, a connection each), p50 {:.2} ms, p99 {:.2} \
             ms, {} errors ({} unexpected); server CPU {:.2} s, {:.2}% of a core over its own → \
             {:.1} µs per request",
            p.secs,
            p.requests,
            p.requests_per_sec,
            p.latency.p50_us as f64 / 1e3,
            p.latency.p99_us as f64 / 1e3,
            p.errors,
            p.unexpected,
            p.server_cpu_secs,
            100.0 * p.server_cores,
            p.server_us_per_request
        )?;
        let interval = self.poll_interval_secs;
        let rows: [(&str, String, String, String); 6] = [
            (
                "requests/s",
                "0".into(),
                format!("{:.1}", p.requests_per_sec),
                "–".into(),
            ),
            (
                "packets/s (UDP both ways; TCP connections)",
                i.udp_datagrams_per_sec
                    .map_or_else(|| "?".into(), |d| format!("{d:.0}")),
                format!("{:.1} connections", p.requests_per_sec),
                i.udp_datagrams_per_sec
                    .map_or_else(|| "–".into(), |d| ratio(d, p.requests_per_sec)),
            ),
            (
                "server CPU over its own idle, cores",
                format!("{:.4}", i.server_cores),
                format!("{:.4}", p.server_cores),
                ratio(i.server_cores, p.server_cores),
            ),
            (
                "server CPU per device-hour, ms",
                format!("{:.3}", i.server_ms_per_device_hour),
                format!("{:.3}", p.server_ms_per_device_hour),
                ratio(i.server_ms_per_device_hour, p.server_ms_per_device_hour),
            ),
            (
                "server RSS per device, KiB",
                format!("{:.1}", c.server_bytes_per_connection / 1024.0),
                format!("{:.2}", p.server_bytes_per_device / 1024.0),
                // The polling fleet holds nothing between polls: its RSS change is noise.
                if p.server_bytes_per_device >= 64.0 {
                    ratio(c.server_bytes_per_connection, p.server_bytes_per_device)
                } else {
                    "–".into()
                },
            ),
            (
                "new address in DNS after, p50 / p99 s",
                format!(
                    "{:.2} / {:.2}",
                    r.dns.p50_us as f64 / 1e6,
                    r.dns.p99_us as f64 / 1e6
                ),
                format!("{:.0} / {:.0} (next poll)", interval / 2.0, interval * 0.99),
                format!(
                    "{} / {}",
                    ratio(r.dns.p50_us as f64 / 1e6, interval / 2.0),
                    ratio(r.dns.p99_us as f64 / 1e6, interval * 0.99)
                ),
            ),
        ];
        writeln!(
            out,
            "\n{:<44} {:>18} {:>24} {:>14}",
            format!("{} devices", self.devices),
            "QUIC, kept alive",
            format!("HTTP ipdetect / {interval} s"),
            "QUIC / HTTP"
        )?;
        for (what, quic, http, ratio) in rows {
            writeln!(out, "{what:<44} {quic:>18} {http:>24} {ratio:>14}")?;
        }
        let million = 1_000_000.0 / n.max(1.0);
        writeln!(
            out,
            "per 1,000,000 devices: server cores {:.2} (QUIC) vs {:.2} (HTTP); server RSS {:.1} \
             GiB (QUIC); {:.0} keep-alives/s vs {:.0} polls/s",
            i.server_cores * million,
            p.server_cores * million,
            c.server_bytes_per_connection * 1e6 / f64::from(1u32 << 30),
            1e6 / KEEP_ALIVE_MEAN_SECS,
            1e6 / interval
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_keep_their_precision() {
        assert_eq!(ratio(24.4, 1.0), "24×");
        assert_eq!(ratio(2.44, 1.0), "2.4×");
        assert_eq!(ratio(1.75, 150.0), "0.012×");
        assert_eq!(ratio(1.0, 0.0), "–");
    }

    #[test]
    fn pushes_count_only_the_movers_new_address() {
        let naming = crate::fleet::Naming {
            prefix: "lg1-".into(),
            zone: "dyn.example".into(),
        };
        let mut tally = Tally::new(3, &naming, 2);
        let at = std::time::Instant::now();
        let event = |device, event| DeviceEvent {
            device,
            at: at + Duration::from_millis(1500),
            event,
        };
        let record = |device: u32, ip: [u8; 4]| ddns_client::Record {
            name: naming.fqdn(device),
            v4: Some(ip.into()),
            v6: None,
        };
        tally.note(&event(0, Event::Connected(Some(record(0, [127, 0, 1, 1])))));
        tally.note(&event(0, Event::Connected(Some(record(0, [127, 0, 1, 1])))));
        tally.note(&event(1, Event::Connected(Some(record(0, [127, 0, 1, 1])))));
        assert_eq!((tally.connected, tally.unexpected_records), (2, 1));
        tally.rebound.lock().expect("not poisoned")[0] = Some((at, [127, 9, 9, 9].into()));
        // An old address, a refusal, then the new one: only the last is a move's PUSH.
        tally.note(&event(
            2,
            Event::Pushed("09".into(), Some(record(2, [127, 1, 1, 3]))),
        ));
        tally.note(&event(
            2,
            Event::Pushed("911".into(), Some(record(2, [127, 9, 9, 9]))),
        ));
        tally.note(&event(
            2,
            Event::Pushed("09".into(), Some(record(2, [127, 9, 9, 9]))),
        ));
        assert_eq!(tally.push.len(), 1);
        assert!((1_499_000..=1_501_000).contains(&tally.push.max()));
        assert_eq!(tally.push_codes["09"], 2);
        assert_eq!(tally.push_codes["911"], 1);
    }
}
