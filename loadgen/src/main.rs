//! `ddns-loadgen`: parses flags, runs the fleet with a progress display, prints the report and
//! writes `--json` and `--plot`. See loadgen/README.md.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ddns_loadgen::{
    DeviceKey, Live, LoadgenConfig, Progress, QuicOptions, Scenario, Sources, Verify,
    parse_duration, plot_svg,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Simulates a fleet of DDNS devices against a running ddnsd: open-loop, with latency from each
/// request's due time, update-to-DNS propagation, and a final check of DNS against every
/// acknowledged reply.
#[derive(Parser, Debug)]
#[command(name = "ddns-loadgen", version, args_override_self = true)]
struct Args {
    /// The device API (host:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    /// The DNS server (host:port, UDP).
    #[arg(long, default_value = "127.0.0.1:5353")]
    dns: String,
    /// Fleet size (at most 16,777,216).
    #[arg(long, default_value_t = 30_000)]
    devices: u32,
    /// steady, churn, surge, updates (closed loop at max rate: only updates, no polls), dvr
    /// (the same closed loop of DVR updates, `/dvr/update`, over provisioned hosts), dyndns2
    /// (the same over the same hosts, `/nic/update` with Basic auth) or quic (devices on the
    /// QUIC device channel, idle and moving, beside the same fleet polling over HTTP).
    #[arg(long, default_value = "steady")]
    scenario: Scenario,
    /// How often each device polls ipdetect (simulated time).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    poll_interval: Duration,
    /// Simulated seconds per real second (--poll-interval 300s --speedup 60: a poll every 5 s).
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// Share of devices whose WAN address changes per interval [default: 0.05 for churn, else 0].
    #[arg(long)]
    churn: Option<f64>,
    /// Share of devices that reboot per interval (each sends an update even without a change).
    #[arg(long, default_value_t = 0.0)]
    reboot: f64,
    /// Share of devices decommissioned per interval (remove, then silent).
    #[arg(long, default_value_t = 0.0)]
    decommission: f64,
    /// When the surge starts (simulated); 0 makes the surge the fleet's boot.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    surge_at: Duration,
    /// The surge window (simulated): every device re-registers at a random moment in it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    surge_window: Duration,
    /// The fleet was registered by an earlier run with the same --seed: boot with update.
    #[arg(long)]
    registered: bool,
    /// Requests in flight at most: connection workers, each with one request out at a time.
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// Keep each worker's connection open across requests [default for updates, dvr, dyndns2]
    /// instead of a new connection per request with `Connection: close` [default for steady,
    /// churn, surge: devices that poll every few minutes reconnect each time].
    #[arg(long, overrides_with = "connection_per_request")]
    keep_alive: bool,
    /// A new connection for every request (`Connection: close`), as devices open one per poll.
    #[arg(long, overrides_with = "keep_alive")]
    connection_per_request: bool,
    /// Send everything from one address (the system's choice: 127.0.0.1 against a local
    /// server), with simulated WAN addresses as `myip`: the server's per-source flood quota
    /// must then be raised [default for updates, dvr, dyndns2].
    #[arg(long, overrides_with = "per_device_source")]
    single_source: bool,
    /// Each device sends from its own address in 127.0.0.0/8 (127.a.b.c, no 0 or 255 octet),
    /// which is its WAN address: ipdetect answers it and add/update carry no myip; the server
    /// can keep its default per-source quota [default for steady, churn, surge; loopback
    /// servers only].
    #[arg(long, overrides_with = "single_source")]
    per_device_source: bool,
    /// How long requests are scheduled (real time); then the run drains and stops.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Per request, from when it is sent.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// The vendor whose key seals device tokens.
    #[arg(long, default_value = "demo")]
    vendor: String,
    /// The vendor's key file, `ID HEX` [default: ./data/keys/<vendor>.key].
    #[arg(long, conflicts_with_all = ["key_id", "key_hex"])]
    key_file: Option<PathBuf>,
    /// The vendor key's id (with --key-hex).
    #[arg(long, requires = "key_hex")]
    key_id: Option<u16>,
    /// The vendor key, 64 hex digits (with --key-id).
    #[arg(long, requires = "key_id")]
    key_hex: Option<String>,
    /// Stamp tokens with the time, for vendors with max_age_secs.
    #[arg(long)]
    fresh_tokens: bool,
    /// The vendor's zone.
    #[arg(long, default_value = "dyn.example")]
    zone: String,
    /// Device labels are this prefix and the device's index [default: lg<seed>-; dvr and
    /// dyndns2: h].
    #[arg(long)]
    label_prefix: Option<String>,
    /// dvr, dyndns2: the hosts' group; hosts are h<N>.<group>.<zone> [default: lg<seed>].
    #[arg(long)]
    dvr_group: Option<String>,
    /// dvr, dyndns2: the portal user who owns the hosts (created by --provision if missing).
    #[arg(long, default_value = "loadgen")]
    dvr_user: String,
    /// dvr, dyndns2: before the run, create the --devices hosts the user does not have yet through the
    /// server's admin socket (one argon2 hash each on the server, tens of ms of a core).
    #[arg(long)]
    provision: bool,
    /// The server's admin socket, for --provision [default: ./data/admin.sock].
    #[arg(long, requires = "provision")]
    admin_socket: Option<PathBuf>,
    /// Admin requests at once while provisioning.
    #[arg(long, default_value_t = 4)]
    provision_concurrency: usize,
    /// Share of acknowledged changes followed to DNS (0 turns the prober off).
    #[arg(long, default_value_t = 0.1)]
    propagation_sample: f64,
    /// How long a probe waits for DNS to show the new address.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    probe_timeout: Duration,
    /// After the run, ask DNS about this many devices (spread over the fleet), `all` or `none`.
    #[arg(long, default_value = "10000")]
    verify: Verify,
    /// Seeds device identities, addresses, phases and rolls.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runtime worker threads. 1 keeps the loadgen on one core, but at 1M devices one thread
    /// sealing and sending 16.7k requests/s fell behind in bursts (p99 1.4 s instead of 66 ms).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The server's pid, to report its CPU time beside the loadgen's.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Sent as User-Agent (`Company - Device - Version`).
    #[arg(long, default_value = "ddns-loadgen - SimCam - 1.0")]
    user_agent: String,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw latency and throughput over time as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
    /// quic: the server's QUIC device channel (`quic_listen`, the ready line's `quic=`).
    #[arg(long)]
    quic: Option<String>,
    /// quic: the PEM file of the CA that issued the server's certificate.
    #[arg(long)]
    quic_ca: Option<PathBuf>,
    /// quic: the name the server's certificate is checked against.
    #[arg(long, default_value = "localhost")]
    quic_server_name: String,
    /// quic: client UDP sockets the idle devices share (127.0.1.1, 127.0.1.2, …); 0: one per
    /// 100 devices, which the server's default per-source quota lets connect at once.
    #[arg(long, default_value_t = 0)]
    quic_endpoints: u32,
    /// quic: idle devices started per second.
    #[arg(long, default_value_t = 300)]
    ramp: u32,
    /// quic: how long the server's own idle CPU is measured first (subtracted from both fleets).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    baseline: Duration,
    /// quic: how long the connected fleet idles while the server's CPU is measured.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    idle: Duration,
    /// quic: devices that move (besides --devices), each on a socket of its own.
    #[arg(long, default_value_t = 100)]
    movers: u32,
    /// quic: rebinds per mover (to a new 127/8 address each time).
    #[arg(long, default_value_t = 10)]
    rebinds: u32,
    /// quic: how far apart a mover's rebinds are.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    rebind_every: Duration,
    /// quic: how long the polling fleet runs (its devices poll every --poll-interval, real
    /// time).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    poll_window: Duration,
    /// quic: stop if this process's RSS passes this many MiB.
    #[arg(long, default_value_t = 8192)]
    max_rss_mib: u64,
}

fn resolve(what: &str, addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("--{what} {addr}"))?
        .next()
        .with_context(|| format!("--{what} {addr}: no address"))
}

fn key(args: &Args) -> anyhow::Result<DeviceKey> {
    if let (Some(id), Some(hex)) = (args.key_id, &args.key_hex) {
        return DeviceKey::from_hex(id, hex).context("--key-hex");
    }
    let path = args.key_file.clone().unwrap_or_else(|| {
        PathBuf::from("data")
            .join("keys")
            .join(format!("{}.key", args.vendor))
    });
    // Hosts' clients have no vendor key: any will do when none is at hand.
    if args.scenario.hosts().is_some() && args.key_file.is_none() && !path.exists() {
        return Ok(DeviceKey {
            id: 0,
            secret: [0; 32],
        });
    }
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the vendor key {} (give --key-file, or --key-id and --key-hex)",
            path.display()
        )
    })?;
    DeviceKey::from_key_file(&text).with_context(|| path.display().to_string())
}

fn config(args: &Args) -> anyhow::Result<LoadgenConfig> {
    let mut c = LoadgenConfig::new(
        resolve("http", &args.http)?,
        resolve("dns", &args.dns)?,
        key(args)?,
    );
    c.fresh_tokens = args.fresh_tokens;
    c.vendor = args.vendor.clone();
    c.zone = args.zone.clone();
    c.label_prefix = args.label_prefix.clone();
    c.dvr_group = args.dvr_group.clone();
    c.dvr_user = args.dvr_user.clone();
    c.provision_concurrency = args.provision_concurrency;
    if args.provision {
        if args.scenario.hosts().is_none() {
            bail!("--provision is for --scenario dvr or dyndns2");
        }
        c.admin_socket = Some(
            args.admin_socket
                .clone()
                .unwrap_or_else(|| PathBuf::from("data").join("admin.sock")),
        );
    }
    c.devices = args.devices;
    c.scenario = args.scenario;
    c.poll_interval = args.poll_interval;
    c.speedup = args.speedup;
    c.churn = args.churn;
    c.reboot = args.reboot;
    c.decommission = args.decommission;
    c.surge_at = args.surge_at;
    c.surge_window = args.surge_window;
    c.registered = args.registered;
    c.connections = args.connections;
    c.keep_alive = match (args.keep_alive, args.connection_per_request) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    c.sources = match (args.single_source, args.per_device_source) {
        (true, _) => Some(Sources::Single),
        (_, true) => Some(Sources::PerDevice),
        _ => None,
    };
    c.duration = args.duration;
    c.timeout = args.timeout;
    c.propagation_sample = args.propagation_sample;
    c.probe_timeout = args.probe_timeout;
    c.verify = args.verify;
    c.seed = args.seed;
    c.user_agent = args.user_agent.clone();
    c.server_pid = args.server_pid;
    c.quic = QuicOptions {
        server: args
            .quic
            .as_deref()
            .map(|addr| resolve("quic", addr))
            .transpose()?,
        server_name: args.quic_server_name.clone(),
        ca: args.quic_ca.clone(),
        endpoints: args.quic_endpoints,
        ramp_per_sec: args.ramp,
        baseline: args.baseline,
        settle: QuicOptions::default().settle,
        idle: args.idle,
        movers: args.movers,
        rebinds: args.rebinds,
        rebind_every: args.rebind_every,
        poll_window: args.poll_window,
        max_rss_mib: args.max_rss_mib,
    };
    c.validate()?;
    Ok(c)
}

fn summary(live: &Live) -> String {
    let (rate, p99) = live
        .last_second
        .as_ref()
        .map_or((0, 0.0), |s| (s.requests, s.p99_us as f64 / 1000.0));
    format!(
        "{} req · {rate}/s · p99 {p99:.2} ms · errors {} · out {} · due {}{}",
        live.requests,
        live.errors,
        live.in_flight,
        live.backlog,
        if live.draining { " · draining" } else { "" }
    )
}

/// An indicatif bar on a terminal.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn update(&mut self, live: &Live) {
        self.0.set_position(live.elapsed.as_millis() as u64);
        self.0.set_message(summary(live));
    }
}

/// A line every ten seconds when stderr is not a terminal (logs of long benchmarks).
struct Lines(Instant);

impl Progress for Lines {
    fn update(&mut self, live: &Live) {
        if self.0.elapsed() >= Duration::from_secs(10) {
            self.0 = Instant::now();
            eprintln!("[{:>5.0} s] {}", live.elapsed.as_secs_f64(), summary(live));
        }
    }
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ddns-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let config = config(&args)?;
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };

    if config.scenario == Scenario::Quic {
        let quiet = args.quiet;
        let mut notes = |line: &str| {
            if !quiet {
                eprintln!("ddns-loadgen: {line}");
            }
        };
        let report = runtime.block_on(ddns_loadgen::run_quic(&config, &mut notes))?;
        print!("{report}");
        if let Some(path) = &args.json {
            let json = serde_json::to_string_pretty(&report)?;
            std::fs::write(path, json + "\n").with_context(|| path.display().to_string())?;
        }
        // The plot is the polling fleet's: the QUIC fleet sends no requests.
        if let Some(path) = &args.plot {
            std::fs::write(path, plot_svg(&report.polling_run))
                .with_context(|| path.display().to_string())?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    let mut bar = None;
    let mut lines = None;
    let progress: Option<&mut dyn Progress> = if args.quiet {
        None
    } else if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(config.duration.as_millis() as u64);
        pb.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:24}] {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        Some(bar.insert(Bar(pb)))
    } else {
        Some(lines.insert(Lines(Instant::now())))
    };

    if config.scenario.hosts().is_some() && !args.quiet {
        eprintln!(
            "ddns-loadgen: {}: {}{} hosts, then one untimed update of each (the server's argon2 \
             check, tens of ms of a core each unless it remembers the host)",
            config.scenario.name(),
            if config.admin_socket.is_some() {
                "provisioning any missing of "
            } else {
                ""
            },
            config.devices
        );
    }
    let outcome = runtime.block_on(ddns_loadgen::run(&config, progress))?;
    if let Some(Bar(pb)) = &bar {
        pb.finish_and_clear();
    }
    let report = &outcome.report;
    print!("{report}");
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(report)?;
        std::fs::write(path, json + "\n").with_context(|| path.display().to_string())?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, plot_svg(report)).with_context(|| path.display().to_string())?;
    }
    // Lost acknowledged updates are a failure of the server, not of the measurement.
    if report.verify.as_ref().is_some_and(|v| v.mismatched > 0) {
        eprintln!("ddns-loadgen: DNS does not show some acknowledged updates (see verify)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
