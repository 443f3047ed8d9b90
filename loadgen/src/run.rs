//! The driver: one task owns the fleet and the schedule, hands due requests to a fixed pool of
//! connection workers, and applies their replies.
//!
//! # Open loop
//!
//! A request is due when the fleet model says so, whatever happened to earlier requests. Due
//! requests wait in a FIFO for a free connection; that wait is part of their latency, which is
//! measured from the due time (no coordinated omission). A request handed over early — the
//! driver dispatches up to [`LEAD_US`] ahead, because tokio's timer wakes on whole
//! milliseconds — is measured from when it was handed over instead, so latency is never less
//! than the exchange itself. A device's next slot is its previous due time plus the interval,
//! never its reply time plus the interval, so slow replies cannot slow the offered load.
//!
//! # Closed loop
//!
//! The `updates` scenario is the exception: it measures the server's maximum rate, so each
//! connection is given the next device's update as soon as its previous reply is in, and the
//! offered rate is whatever the server sustains with `--connections` requests outstanding.
//! Its latency is each exchange's (due when sent). The `dvr` and `dyndns2` scenarios are the
//! same loop over hosts (`/dvr/update`, `/nic/update`), after an untimed setup (`dvr.rs`:
//! provisioning, and one update per host so that the server's one argon2 check of each is not
//! in the figures).
//!
//! # Bounds
//!
//! Nothing is scheduled after `--duration`; requests then still due or in flight get until
//! `--timeout` (plus a second) to finish, and whatever is left is counted as abandoned. Each
//! device has at most one request out, so the FIFO never holds more than the fleet.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

use crate::config::{ConfigError, LoadgenConfig, Scenario, Verify};
use crate::cpu::{CpuSampler, cpu_secs, machine_busy_secs, thread_delta, thread_secs};
use crate::dns::{ProbeRequest, ProberLimits, join_prober, spawn_prober, verify};
use crate::dvr::{SetupError, host_update};
use crate::fleet::{Expect, Fleet, HostProtocol, Kind, Naming, Outcome, Reply, Request, mac_of};
use crate::http::{Get, HttpConnection, Transport};
use crate::report::{Cpu, KindReport, Propagation, Report, RunInfo, ScheduleReport, ThreadCpu};
use crate::rng::{SplitMix64, derive};
use crate::stats::{Latency, SecondPoint, Stats, rate};
use crate::token::Sealer;

/// How far ahead of its due time a request may be handed to a connection: tokio's timer wakes
/// on whole milliseconds, and waking late would add up to 1 ms to every latency.
pub const LEAD_US: u64 = 1_000;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A socket or the prober thread could not be opened.
    #[error("loadgen I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The hosts (`dvr`, `dyndns2`) could not be provisioned.
    #[error("host setup: {0}")]
    Setup(#[from] SetupError),
    /// The `quic` scenario's fleet could not be registered, connected or moved.
    #[error("quic: {0}")]
    Quic(String),
}

/// What the progress display is shown, four times a second.
#[derive(Clone, Debug)]
pub struct Live {
    /// Since the start.
    pub elapsed: Duration,
    /// The scheduling window.
    pub duration: Duration,
    /// Requests finished so far.
    pub requests: u64,
    /// Errors so far.
    pub errors: u64,
    /// The last complete second.
    pub last_second: Option<SecondPoint>,
    /// Requests out on a connection.
    pub in_flight: usize,
    /// Requests due and waiting for a connection.
    pub backlog: usize,
    /// Past `--duration`, finishing what is out.
    pub draining: bool,
}

/// Receives [`Live`] figures while a run goes on.
pub trait Progress {
    /// Called about four times a second.
    fn update(&mut self, live: &Live);
}

/// A finished run: its report, and the fleet as the run left it (what each device last had
/// acknowledged), for checks of the server's state.
pub struct RunOutcome {
    /// What was measured.
    pub report: Report,
    /// The fleet model at the end.
    pub fleet: Fleet,
}

/// Runs the fleet against the real server: `connections` workers, each opening a connection
/// per request or keeping one alive ([`LoadgenConfig::keep_alive()`]), from each device's own
/// source or one ([`LoadgenConfig::sources()`]). The `dvr` and `dyndns2` scenarios first
/// provision and warm up their hosts (`dvr.rs`), untimed.
pub async fn run(
    config: &LoadgenConfig,
    progress: Option<&mut dyn Progress>,
) -> Result<RunOutcome, RunError> {
    config.validate()?;
    let dvr_setup = match config.scenario.hosts() {
        Some(protocol) => Some(crate::dvr::prepare(config, protocol).await?),
        None => None,
    };
    let opened = Arc::new(AtomicU64::new(0));
    let transports = (0..config.connections)
        .map(|_| {
            HttpConnection::new(
                config.http,
                &config.user_agent,
                config.timeout,
                opened.clone(),
            )
            .keep_alive(config.keep_alive())
        })
        .collect();
    let mut outcome = run_with(config, transports, opened, progress).await?;
    outcome.report.dvr_setup = dvr_setup;
    Ok(outcome)
}

/// Builds requests: seals a fresh token per request (a device keeps one, but sealing costs
/// ~1 µs and spares 60+ bytes per device of memory).
struct Wire {
    sealer: Sealer,
    naming: Naming,
    seed: u64,
    /// Each device sends from its WAN address, and so without `myip`.
    own_sources: bool,
}

impl Wire {
    fn request(&self, request: &Request, now_secs: u64) -> Get {
        let source = self.own_sources.then_some(IpAddr::V4(request.addr));
        self.target(request, now_secs).from(source)
    }

    fn target(&self, request: &Request, now_secs: u64) -> Get {
        // From its own source a device leaves its address to the server, which takes the
        // source when `myip` is absent (what `ipdetect` answered it).
        let myip = if self.own_sources {
            String::new()
        } else {
            format!("&myip={}", request.addr)
        };
        let token = || {
            self.sealer
                .seal(&mac_of(self.seed, request.device), now_secs)
        };
        let host = |protocol| {
            host_update(
                protocol,
                &self.naming,
                self.seed,
                request.device,
                request.addr,
            )
        };
        Get::plain(match request.kind {
            Kind::Ipdetect => "/ipdetect.aspx".to_owned(),
            Kind::Add => format!(
                "/add.aspx?mac={}&dm={}{myip}",
                token(),
                self.naming.label(request.device),
            ),
            Kind::Update => format!("/update.aspx?mac={}{myip}", token()),
            Kind::Remove => format!("/remove.aspx?mac={}", token()),
            Kind::Dvr => return host(HostProtocol::Dvr),
            Kind::Dyndns2 => return host(HostProtocol::Dyndns2),
        })
    }
}

struct Job {
    request: Request,
    sent_us: u64,
}

struct Done {
    conn: usize,
    request: Request,
    sent_us: u64,
    outcome: Outcome,
    at: Instant,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn us_between(start: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX)
}

/// A worker's share of the propagation sampling.
struct Sampler {
    probes: mpsc::Sender<ProbeRequest>,
    share: f64,
    rng: SplitMix64,
}

async fn worker<T: Transport>(
    conn: usize,
    mut transport: T,
    wire: Arc<Wire>,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Done>,
    mut sampler: Option<Sampler>,
) {
    while let Some(Job { request, sent_us }) = jobs.recv().await {
        let get = wire.request(&request, unix_secs());
        let outcome = transport
            .get(&get)
            .await
            .map(|body| Reply::parse(request.kind, &body));
        let at = Instant::now();
        // Straight from the worker to the prober's own thread, so that the driver's backlog
        // does not sit between the reply and the first DNS query.
        if let (Some(sampler), Ok(reply)) = (&mut sampler, &outcome) {
            let acked = match (request.kind, reply) {
                (Kind::Add, Reply::Created(fqdn)) => wire.naming.is_fqdn(request.device, fqdn),
                (Kind::Add | Kind::Update, Reply::Modified) | (Kind::Dvr, Reply::Act) => true,
                (Kind::Dyndns2, Reply::Good(addr)) => *addr == request.addr,
                _ => false,
            };
            if acked && sampler.rng.chance(sampler.share) {
                // A full queue drops the sample rather than delaying the device.
                let _ = sampler.probes.try_send(ProbeRequest {
                    name: wire.naming.fqdn(request.device),
                    expect: request.addr,
                    acked_at: at,
                });
            }
        }
        let finished = Done {
            conn,
            request,
            sent_us,
            outcome,
            at,
        };
        if done.send(finished).is_err() {
            return;
        }
    }
}

/// [`run`] over any transport, one per connection: the tests' slow fakes, or real connections.
/// `opened` is the count of TCP connections the transports made, for the report.
pub async fn run_with<T: Transport>(
    config: &LoadgenConfig,
    transports: Vec<T>,
    opened: Arc<AtomicU64>,
    mut progress: Option<&mut dyn Progress>,
) -> Result<RunOutcome, RunError> {
    config.validate()?;
    let naming = config.naming();
    let mut fleet = Fleet::new(config.fleet_config(), naming.clone());
    let wire = Arc::new(Wire {
        sealer: Sealer::new(&config.key, config.fresh_tokens),
        naming: naming.clone(),
        seed: config.seed,
        own_sources: config.fleet_config().own_sources,
    });
    let loadgen_cpu_start = cpu_secs(None);
    let server_cpu_start = config.server_pid.and_then(|pid| cpu_secs(Some(pid)));
    let machine_cpu_start = machine_busy_secs();
    let server_threads_start = config.server_pid.map(thread_secs);
    let mut cpu_sampler = CpuSampler::new(config.server_pid);
    let mut cpu_sampled = 0;

    // The prober runs on a thread of its own: its timing must not wait for the driver.
    let (probe_tx, prober) = if config.propagation_sample > 0.0 {
        let (tx, prober) = spawn_prober(config.dns, config.probe_timeout, ProberLimits::FLEET)?;
        (Some(tx), Some(prober))
    } else {
        (None, None)
    };

    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut jobs = Vec::with_capacity(transports.len());
    let mut workers = JoinSet::new();
    for (conn, transport) in transports.into_iter().enumerate() {
        let (job_tx, job_rx) = mpsc::channel(1);
        jobs.push(job_tx);
        let sampler = probe_tx.as_ref().map(|probes| Sampler {
            probes: probes.clone(),
            share: config.propagation_sample,
            rng: SplitMix64::new(derive(config.seed, u64::MAX - 2 - conn as u64)),
        });
        workers.spawn(worker(
            conn,
            transport,
            wire.clone(),
            job_rx,
            done_tx.clone(),
            sampler,
        ));
    }
    drop(done_tx);
    let connections = jobs.len();
    let mut idle: Vec<usize> = (0..connections).rev().collect();
    let mut out: Vec<Option<Request>> = vec![None; connections];

    drop(probe_tx);

    let closed_loop = config.fleet_config().closed_loop;
    let mut stats = Stats::new(config.fleet_config().boot_end_us());
    let mut pending: VecDeque<Request> = VecDeque::new();
    let mut backlog_max = 0;
    let start = Instant::now();
    let end = start + config.duration;
    let drain_end = end + config.timeout + Duration::from_secs(1);
    let mut tick = interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let sleep = sleep_until(start);
    tokio::pin!(sleep);

    let finished = loop {
        let now = Instant::now();
        let now_us = us_between(start, now);
        while let Some(request) = fleet.pop_due(now_us + LEAD_US) {
            pending.push_back(request);
        }
        // Closed loop: a request for every free connection, as soon as it is free.
        if closed_loop && now < end {
            while pending.len() < idle.len()
                && let Some(request) = fleet.next_closed(now_us)
            {
                pending.push_back(request);
            }
        }
        backlog_max = backlog_max.max(pending.len());
        while !pending.is_empty()
            && let Some(conn) = idle.pop()
        {
            let request = pending.pop_front().expect("not empty");
            stats
                .wait
                .saturating_record(now_us.saturating_sub(request.due_us).max(1));
            out[conn] = Some(request);
            jobs[conn]
                .try_send(Job {
                    request,
                    sent_us: now_us,
                })
                .expect("an idle worker's channel is empty");
        }
        let in_flight = connections - idle.len();
        if now >= end && pending.is_empty() && in_flight == 0 {
            break now;
        }
        if now >= drain_end {
            let left: Vec<Request> = pending
                .drain(..)
                .chain(out.iter().flatten().copied())
                .collect();
            for request in &left {
                fleet.abandon(request);
            }
            stats.errors.abandon(left.len() as u64);
            break now;
        }
        let wake = if now >= end {
            drain_end
        } else {
            fleet
                .next_due_us()
                .map_or(end, |us| {
                    start + Duration::from_micros(us.saturating_sub(LEAD_US))
                })
                .min(end)
        };
        sleep.as_mut().reset(wake);
        tokio::select! {
            biased;
            done = done_rx.recv() => {
                let Some(mut done) = done else {
                    unreachable!("the driver holds every worker's job sender");
                };
                loop {
                    idle.push(done.conn);
                    out[done.conn] = None;
                    let done_us = us_between(start, done.at);
                    let latency_us = done_us.saturating_sub(done.request.due_us.min(done.sent_us));
                    let completion = fleet.complete(&done.request, &done.outcome, done_us);
                    stats.record(
                        done.request.kind,
                        done.request.due_us,
                        &done.outcome,
                        completion.verdict,
                        latency_us,
                        done_us,
                    );
                    if let Some(follow_up) = completion.follow_up {
                        pending.push_back(follow_up);
                    }
                    match done_rx.try_recv() {
                        Ok(next) => done = next,
                        Err(_) => break,
                    }
                }
            }
            _ = &mut sleep => {}
            _ = tick.tick() => {
                stats.roll_to(now_us);
                if stats.timeline.len() > cpu_sampled {
                    let cores = cpu_sampler.sample();
                    for point in &mut stats.timeline[cpu_sampled..] {
                        point.loadgen_cores = cores.loadgen;
                        point.server_cores = cores.server;
                        point.machine_cores = cores.machine;
                    }
                    cpu_sampled = stats.timeline.len();
                }
                if let Some(progress) = progress.as_deref_mut() {
                    progress.update(&Live {
                        elapsed: now - start,
                        duration: config.duration,
                        requests: stats.requests(),
                        errors: stats.errors.total,
                        last_second: stats.last_second().cloned(),
                        in_flight,
                        backlog: pending.len(),
                        draining: now >= end,
                    });
                }
            }
        }
    };
    let elapsed_secs = (finished - start).as_secs_f64();
    stats.roll_to(us_between(start, finished) + 999_999);
    let loadgen_cpu = loadgen_cpu_start.zip(cpu_secs(None)).map(|(a, b)| b - a);
    let server_cpu = server_cpu_start
        .zip(config.server_pid.and_then(|pid| cpu_secs(Some(pid))))
        .map(|(a, b)| b - a);
    let machine_cpu = machine_cpu_start
        .zip(machine_busy_secs())
        .map(|(a, b)| b - a);
    let server_threads = match (config.server_pid, &server_threads_start) {
        (Some(pid), Some(start)) => thread_delta(start, &thread_secs(pid))
            .into_iter()
            .map(|(name, secs)| ThreadCpu { name, secs })
            .collect(),
        _ => Vec::new(),
    };
    drop(jobs);
    workers.abort_all();
    // Every worker (and so every sender to the prober) is gone once this ends.
    while workers.join_next().await.is_some() {}
    let probes = match prober {
        Some(prober) => Some(join_prober(prober).await?),
        None => None,
    };

    let verify_report = match config.verify {
        Verify::Off => None,
        choice => {
            let n = fleet.len();
            let picked: Box<dyn Iterator<Item = u32>> = match choice {
                Verify::Sample(k) if k < n => {
                    let k = u64::from(k.max(1));
                    Box::new((0..k).map(move |i| (i * u64::from(n) / k) as u32))
                }
                _ => Box::new(0..n),
            };
            let mut uncertain = 0;
            let mut targets = Vec::new();
            for device in picked {
                match fleet.expect(device) {
                    Expect::Unknown => uncertain += 1,
                    expect => targets.push((naming.fqdn(device), expect)),
                }
            }
            let mut report = verify(config.dns, targets).await?;
            report.uncertain = uncertain;
            Some(report)
        }
    };

    let requests = stats.requests();
    let kinds = Kind::ALL
        .iter()
        .map(|&kind| {
            let count = stats.kind_counts[kind.index()];
            (
                kind.name(),
                KindReport {
                    count,
                    per_sec: rate(count, elapsed_secs),
                    latency: Latency::of(&stats.kinds[kind.index()]),
                },
            )
        })
        .collect();
    let mut replies: BTreeMap<&'static str, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for (&(kind, code), &n) in &stats.codes {
        replies.entry(kind.name()).or_default().insert(code, n);
    }
    let counts = fleet.counts();
    let report = Report {
        dvr_setup: None,
        run: RunInfo {
            scenario: config.scenario.name().into(),
            devices: config.devices,
            connections,
            keep_alive: config.keep_alive(),
            sources: config.sources().name(),
            poll_interval_secs: config.poll_interval.as_secs_f64(),
            speedup: config.speedup,
            churn: config.churn(),
            reboot: config.reboot,
            decommission: config.decommission,
            surge_window_secs: (config.scenario == Scenario::Surge)
                .then_some(config.surge_window.as_secs_f64()),
            duration_secs: config.duration.as_secs_f64(),
            seed: config.seed,
            http: config.http.to_string(),
            dns: config.dns.to_string(),
        },
        elapsed_secs,
        requests,
        requests_per_sec: rate(requests, elapsed_secs),
        latency: Latency::of(&stats.all),
        latency_after_boot: Latency::of(&stats.after_boot),
        kinds,
        replies,
        errors: stats.errors.clone(),
        propagation: probes.map_or_else(Propagation::default, |p| Propagation {
            sample: config.propagation_sample,
            latency: Latency::of(&p.histogram),
            timeouts: p.timeouts,
            stale_answers: p.stale_answers,
            handover: Latency::of(&p.handover),
        }),
        schedule: ScheduleReport {
            wait: Latency::of(&stats.wait),
            backlog_max,
            skipped_busy: counts.skipped_busy,
            wan_changes: counts.wan_changes,
            reboots: counts.reboots,
            decommissions: counts.decommissions,
            registered_at_end: fleet.registered(),
            connections_opened: opened.load(Ordering::Relaxed),
        },
        verify: verify_report,
        cpu: Cpu {
            loadgen_secs: loadgen_cpu,
            server_secs: server_cpu,
            machine_secs: machine_cpu,
            loadgen_cores: loadgen_cpu.map(|s| s / elapsed_secs.max(1e-9)),
            server_cores: server_cpu.map(|s| s / elapsed_secs.max(1e-9)),
            machine_cores: machine_cpu.map(|s| s / elapsed_secs.max(1e-9)),
            server_threads,
        },
        timeline: std::mem::take(&mut stats.timeline),
    };
    Ok(RunOutcome { report, fleet })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::fleet::{CallError, Request};
    use crate::token::DeviceKey;

    /// A device API that answers every request correctly after `delay`, and logs when each
    /// request reached it.
    struct SlowFake {
        delay: Duration,
        log: Arc<Mutex<Vec<(Instant, String)>>>,
    }

    impl Transport for SlowFake {
        async fn get(&mut self, request: &Get) -> Result<String, CallError> {
            let target = request.target.as_str();
            self.log
                .lock()
                .expect("not poisoned")
                .push((Instant::now(), target.to_owned()));
            tokio::time::sleep(self.delay).await;
            let param = |name: &str| {
                target
                    .split(['?', '&'])
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_owned)
            };
            Ok(match target.split('?').next() {
                Some("/add.aspx") => format!("10|{}.dyn.example", param("dm").expect("dm")),
                Some("/update.aspx") => "09".into(),
                Some("/remove.aspx") => "15".into(),
                Some("/dvr/update") => "ACT".into(),
                Some("/nic/update") => {
                    let host = param("hostname").expect("hostname");
                    if request.authorization != Some(host_credentials(&host)) {
                        "badauth".into()
                    } else {
                        format!("good {}", param("myip").expect("myip"))
                    }
                }
                // ipdetect: the address the request came from.
                _ => request
                    .source
                    .map_or_else(|| "127.0.0.1".into(), |ip| ip.to_string()),
            })
        }
    }

    /// The Basic auth a host's own credentials make, computed apart from `dvr.rs`: `hN.…` has
    /// the password `host_password(1, N)`.
    fn host_credentials(fqdn: &str) -> String {
        use base64::Engine;
        let n: u32 = fqdn[1..fqdn.find('.').expect("a dot")].parse().expect("hN");
        let pair = format!("{fqdn}:{}", crate::dvr::host_password(1, n));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    fn config() -> LoadgenConfig {
        let mut c = LoadgenConfig::new(
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:1".parse().expect("addr"),
            DeviceKey {
                id: 1,
                secret: [7; 32],
            },
        );
        c.propagation_sample = 0.0;
        c.verify = Verify::Off;
        c.timeout = Duration::from_secs(30);
        c
    }

    async fn run_fake(config: &LoadgenConfig, delay: Duration) -> (RunOutcome, Vec<(u64, String)>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let fakes = (0..config.connections)
            .map(|_| SlowFake {
                delay,
                log: log.clone(),
            })
            .collect();
        let t0 = Instant::now();
        let outcome = run_with(config, fakes, Arc::new(AtomicU64::new(0)), None)
            .await
            .expect("runs");
        let sent = log
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(at, target)| (us_between(t0, *at), target.clone()))
            .collect();
        (outcome, sent)
    }

    /// Every due time the model produces when each reply is instant.
    fn twin_due_times(config: &LoadgenConfig) -> Vec<u64> {
        let mut twin = Fleet::new(config.fleet_config(), config.naming());
        let mut due = Vec::new();
        while let Some(request) = twin.pop_due(u64::MAX) {
            due.push(request.due_us);
            let reply = match request.kind {
                Kind::Add => Reply::Created(config.naming().fqdn(request.device)),
                _ => Reply::Detected(request.addr.into()),
            };
            let follow_up: Option<Request> = twin
                .complete(&request, &Ok(reply), request.due_us)
                .follow_up;
            assert_eq!(follow_up, None, "no churn: nothing follows");
        }
        due
    }

    #[tokio::test(start_paused = true)]
    async fn slow_replies_do_not_slow_the_schedule() {
        let mut c = config();
        c.devices = 50;
        c.poll_interval = Duration::from_secs(1);
        c.duration = Duration::from_secs(10);
        c.connections = 64;
        // Each reply takes 0.9 s: a closed loop (send, wait, wait an interval) would send about
        // half as many requests, each later than the last.
        let (outcome, sent) = run_fake(&c, Duration::from_millis(900)).await;
        let mut due = twin_due_times(&c);
        let mut sent_us: Vec<u64> = sent.iter().map(|(us, _)| *us).collect();
        due.sort_unstable();
        sent_us.sort_unstable();
        assert_eq!(sent_us.len(), 500, "every slot of every device");
        assert_eq!(due.len(), sent_us.len());
        for (due, sent) in due.iter().zip(&sent_us) {
            assert!(
                sent + LEAD_US >= *due && *sent <= due + 1_000,
                "sent at {sent} µs, due at {due} µs"
            );
        }
        let r = &outcome.report;
        assert_eq!(r.requests, 500);
        assert_eq!(r.errors.total, 0);
        assert_eq!(r.schedule.skipped_busy, 0);
        // Latency is the reply time, from the due time.
        assert!(
            (899_000..=902_000).contains(&r.latency.p50_us),
            "{:?}",
            r.latency
        );
        assert!(r.latency.max_us <= 902_000, "{:?}", r.latency);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_counts_the_wait_for_a_connection() {
        let mut c = config();
        c.devices = 10;
        c.scenario = Scenario::Surge;
        c.surge_window = Duration::from_millis(10);
        c.poll_interval = Duration::from_secs(1000);
        c.duration = Duration::from_secs(2);
        c.connections = 1;
        // Ten adds due within 10 ms, one connection, 100 ms each: the last waits ~900 ms for
        // the connection. A tool measuring from the send would report 100 ms for every one.
        let (outcome, sent) = run_fake(&c, Duration::from_millis(100)).await;
        assert_eq!(sent.len(), 10);
        let r = &outcome.report;
        assert_eq!(r.kinds["add"].count, 10);
        assert!(
            (980_000..=1_002_000).contains(&r.latency.max_us),
            "{:?}",
            r.latency
        );
        assert!(
            (480_000..=520_000).contains(&r.latency.p50_us),
            "{:?}",
            r.latency
        );
        assert!(
            (880_000..=902_000).contains(&r.schedule.wait.max_us),
            "{:?}",
            r.schedule.wait
        );
        assert_eq!(
            r.schedule.backlog_max, 9,
            "all but the one on the connection"
        );
        assert_eq!(r.replies["add"]["10"], 10);
        // Every acknowledged name is known to the model.
        for device in 0..10 {
            assert!(matches!(outcome.fleet.expect(device), Expect::Addr(_)));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_never_answers_cannot_keep_the_run_going() {
        let mut c = config();
        c.devices = 20;
        c.poll_interval = Duration::from_secs(1);
        c.duration = Duration::from_secs(3);
        c.connections = 4;
        c.timeout = Duration::from_secs(2);
        let t0 = Instant::now();
        let (outcome, sent) = run_fake(&c, Duration::from_secs(3600)).await;
        let r = &outcome.report;
        assert!(t0.elapsed() <= Duration::from_secs(3 + 2 + 1) + Duration::from_millis(5));
        assert_eq!(
            sent.len(),
            4,
            "four connections, each stuck on its first request"
        );
        // The four out, plus every device whose boot was due and still waiting.
        assert_eq!(r.errors.abandoned, 20);
        assert_eq!(r.requests, 0);
        for device in 0..20 {
            assert_eq!(outcome.fleet.expect(device), Expect::Unknown);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_closed_loop_keeps_every_connection_busy_until_the_end() {
        let mut c = config();
        c.scenario = Scenario::Updates;
        c.registered = true;
        c.devices = 100;
        c.connections = 4;
        c.duration = Duration::from_secs(1);
        // 10 ms a reply, 4 connections, 1 s: 400 updates, one after the other on each.
        let (outcome, sent) = run_fake(&c, Duration::from_millis(10)).await;
        let r = &outcome.report;
        assert_eq!(r.requests, 400, "{:?}", r.kinds);
        assert_eq!(sent.len(), 400);
        assert!(sent.iter().all(|(_, t)| t.starts_with("/update.aspx?")));
        assert_eq!(r.replies["update"]["09"], 400);
        assert_eq!(r.errors.total, 0);
        assert!(
            (10_000..=10_100).contains(&r.latency.max_us),
            "the exchange only: {:?}",
            r.latency
        );
        // Four devices at a time, in turn: every device got its update.
        for device in 0..100 {
            assert!(matches!(outcome.fleet.expect(device), Expect::Addr(_)));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_dvr_loop_updates_every_host_in_turn() {
        let mut c = config();
        c.scenario = Scenario::Dvr;
        c.devices = 10;
        c.connections = 2;
        c.duration = Duration::from_millis(100);
        // 5 ms a reply, 2 connections, 100 ms: 40 DVR updates, four per host.
        let (outcome, sent) = run_fake(&c, Duration::from_millis(5)).await;
        let r = &outcome.report;
        assert_eq!(r.replies["dvr"]["ACT"], 40, "{r}");
        assert_eq!(r.errors.total, 0);
        assert!(r.dvr_setup.is_none(), "run_with does no setup");
        for device in 0..10 {
            let host = format!("/dvr/update?host=h{device}.lg1.dyn.example&pw=");
            assert_eq!(sent.iter().filter(|(_, t)| t.starts_with(&host)).count(), 4);
            let Expect::Addr(addr) = outcome.fleet.expect(device) else {
                panic!("host {device} acknowledged");
            };
            let last = sent.iter().rev().find(|(_, t)| t.starts_with(&host));
            assert!(last.is_some_and(|(_, t)| t.ends_with(&format!("&ip={addr}"))));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_dyndns2_loop_updates_every_host_in_turn_with_its_own_credentials() {
        let mut c = config();
        c.scenario = Scenario::Dyndns2;
        c.devices = 10;
        c.connections = 2;
        c.duration = Duration::from_millis(100);
        // 5 ms a reply, 2 connections, 100 ms: 40 updates, four per host, each `good`.
        let (outcome, sent) = run_fake(&c, Duration::from_millis(5)).await;
        let r = &outcome.report;
        assert_eq!(r.replies["dyndns2"]["good"], 40, "{r}");
        assert_eq!(r.replies["dyndns2"].len(), 1, "{r}");
        assert_eq!(r.kinds["dyndns2"].count, 40);
        assert_eq!(r.kinds["dvr"].count + r.kinds["update"].count, 0);
        assert_eq!(r.errors.total, 0);
        for device in 0..10 {
            let host = format!("/nic/update?hostname=h{device}.lg1.dyn.example&myip=");
            assert_eq!(sent.iter().filter(|(_, t)| t.starts_with(&host)).count(), 4);
            let Expect::Addr(addr) = outcome.fleet.expect(device) else {
                panic!("host {device} acknowledged");
            };
            let last = sent.iter().rev().find(|(_, t)| t.starts_with(&host));
            assert!(last.is_some_and(|(_, t)| t.ends_with(&format!("&myip={addr}"))));
        }
    }

    #[test]
    fn targets_are_what_devices_send() {
        let c = config();
        let wire = Wire {
            sealer: Sealer::new(&c.key, false),
            naming: c.naming(),
            seed: 1,
            own_sources: false,
        };
        let request = |kind| Request {
            device: 42,
            kind,
            reason: crate::fleet::Reason::Poll,
            addr: [198, 18, 0, 9].into(),
            due_us: 0,
        };
        let add = wire.request(&request(Kind::Add), 0).target;
        assert!(add.starts_with("/add.aspx?mac="), "{add}");
        assert!(add.ends_with("&dm=lg1-42&myip=198.18.0.9"), "{add}");
        let token = &add["/add.aspx?mac=".len()..add.find("&dm").expect("dm")];
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "base64url needs no escaping: {token}"
        );
        let target = |kind| wire.request(&request(kind), 0).target;
        assert!(target(Kind::Update).ends_with("&myip=198.18.0.9"));
        assert!(target(Kind::Remove).starts_with("/remove.aspx?mac="));
        assert_eq!(target(Kind::Ipdetect), "/ipdetect.aspx");
        // Only dyndns2 sends credentials in a header.
        for kind in [
            Kind::Add,
            Kind::Update,
            Kind::Remove,
            Kind::Ipdetect,
            Kind::Dvr,
        ] {
            assert_eq!(
                wire.request(&request(kind), 0).authorization,
                None,
                "{kind:?}"
            );
        }
        let mut hosts = c.clone();
        hosts.scenario = Scenario::Dyndns2;
        let wire = Wire {
            naming: hosts.naming(),
            ..wire
        };
        let dyndns2 = wire.request(&request(Kind::Dyndns2), 0);
        assert_eq!(
            dyndns2.target,
            "/nic/update?hostname=h42.lg1.dyn.example&myip=198.18.0.9"
        );
        assert_eq!(
            dyndns2.authorization,
            Some(host_credentials("h42.lg1.dyn.example"))
        );
        assert_eq!(dyndns2.source, None, "one source: the system's choice");
    }

    #[test]
    fn from_its_own_source_a_device_sends_no_myip() {
        let c = config();
        assert!(c.fleet_config().own_sources, "the default");
        let wire = Wire {
            sealer: Sealer::new(&c.key, false),
            naming: c.naming(),
            seed: 1,
            own_sources: true,
        };
        let from = crate::fleet::source_addr(42);
        let request = |kind| Request {
            device: 42,
            kind,
            reason: crate::fleet::Reason::Poll,
            addr: from,
            due_us: 0,
        };
        for kind in [Kind::Add, Kind::Update, Kind::Remove, Kind::Ipdetect] {
            let get = wire.request(&request(kind), 0);
            assert_eq!(get.source, Some(IpAddr::V4(from)), "{kind:?}");
            assert!(!get.target.contains("myip"), "{}", get.target);
        }
        let add = wire.request(&request(Kind::Add), 0).target;
        assert!(add.ends_with("&dm=lg1-42"), "{add}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_of_own_sources_sends_each_device_from_its_address() {
        let mut c = config();
        c.devices = 20;
        c.poll_interval = Duration::from_secs(1);
        c.duration = Duration::from_secs(3);
        c.connections = 4;
        c.scenario = Scenario::Churn;
        c.churn = Some(0.5);
        let (outcome, sent) = run_fake(&c, Duration::from_millis(5)).await;
        let r = &outcome.report;
        assert_eq!(r.errors.total, 0, "{r}");
        assert_eq!(
            r.replies["ipdetect"]["ip"], r.kinds["ipdetect"].count,
            "{r}"
        );
        assert!(r.replies["update"]["09"] > 0, "{r}");
        assert!(sent.iter().all(|(_, t)| !t.contains("myip")));
        for device in 0..20 {
            // What DNS should show is the device's source now: its own, never another's.
            let Expect::Addr(addr) = outcome.fleet.expect(device) else {
                panic!("device {device} acknowledged");
            };
            assert_eq!(addr, outcome.fleet.wan(device));
            let index = crate::fleet::source_index(addr).expect("a source address");
            assert_eq!(index % 20, device);
        }
        assert_eq!(r.run.sources, "per-device");
        assert!(!r.run.keep_alive);
    }
}
