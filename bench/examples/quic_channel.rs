//! What the QUIC device channel costs, and what it buys, in one run against the real `ddnsd`
//! (release build), with devices from the reference client's library in this process.
//!
//! 1. **Idle devices**: registers `N` devices over HTTP, connects them all over QUIC (spread
//!    over `ENDPOINTS` client sockets), and reads the server's RSS before and after: bytes per
//!    connection (and this process's, the devices' side).
//! 2. **Keep-alive CPU**: the server's CPU (utime + stime from `/proc`) over `IDLE_SECS` with
//!    every device idle, keeping alive every 15–25 s as in the field: CPU per device per hour
//!    (the once-a-second address walk included).
//! 3. **Rebind to DNS answer**: `MOVERS` more devices, each on a socket of its own, rebound
//!    `ROUNDS` times to a new loopback IP (quinn's `Endpoint::rebind`, at a random moment of
//!    each round); the time until the server's DNS answers the new IP, p50/p99/max.
//! 4. **Against polling**: the server's CPU per `GET /ipdetect.aspx` on a new TCP connection
//!    (what a polling device does), then the fleet's arithmetic: `N` devices polling every 5
//!    minutes against `N` devices keeping a connection alive.
//!
//! Every phase is bounded in count and time.
//!
//! Devices come online at `RAMP` per second (default 300, below what client and server
//! handshake together on 2 cores); the server admits `HANDSHAKES_PER_SECOND` (default 2,000).
//! This process stops if its RSS passes `MAX_RSS_MIB` (default 8,192).
//!
//! ```sh
//! cargo build --release -p ddnsd
//! N=10000 cargo run --release -p ddns-bench --example quic_channel
//! N=50000 IDLE_SECS=60 MOVERS=100 ROUNDS=10 cargo run --release -p ddns-bench --example quic_channel
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ddns_client::{Credential, Device, DeviceConfig, DeviceEvent, Event};
use ddns_ingest::{TokenBook, VendorCredentials, VendorKey};
use tokio::sync::mpsc;

/// Kernel clock ticks per second (`getconf CLK_TCK`), what `/proc/PID/stat` counts CPU in.
const TICKS_PER_SEC: f64 = 100.0;

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The polling interval the fleet is compared against.
const POLL_SECS: f64 = 300.0;

fn main() {
    let n = env("N", 10_000) as usize;
    let endpoints = (env("ENDPOINTS", 8) as usize).max(1);
    let idle_secs = env("IDLE_SECS", 60);
    let movers = env("MOVERS", 100) as usize;
    let rounds = env("ROUNDS", 10) as usize;
    let rate = env("HANDSHAKES_PER_SECOND", 2000);
    let bin = std::env::var("DDNSD_BIN").map_or_else(
        |_| {
            let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
            PathBuf::from(target).join("release/ddnsd")
        },
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "{} not found: cargo build --release -p ddnsd",
        bin.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = make_pki(dir.path());
    let server = Server::start(&bin, dir.path(), &cert, &key, n + movers, rate);
    let tokens = TokenBook::new(vec![VendorCredentials {
        vendor: "demo".into(),
        keys: vec![VendorKey {
            id: 1,
            secret_hex: KEY_HEX.into(),
        }],
        max_age_secs: None,
    }])
    .expect("a key");
    println!(
        "ddnsd {} (pid {}); {n} idle devices on {endpoints} client sockets, {movers} movers × \
         {rounds} rebinds, {idle_secs} s idle window; {} cores; load {}",
        bin.display(),
        server.child.id(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );

    // Registration over HTTP: `add.aspx` on keep-alive connections, 8 at a time.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let token_of = |i: usize| {
        let mac = format!(
            "06:{:02X}:{:02X}:{:02X}:00:01",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        );
        tokens.seal("demo", &mac, now).expect("sealed")
    };
    let all: Vec<(String, String)> = (0..n + movers)
        .map(|i| (token_of(i), format!("q{i}")))
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in all.chunks((n + movers).div_ceil(8)) {
            let http = server.http;
            scope.spawn(move || {
                let mut client = KeepAlive::connect(http);
                for (token, label) in chunk {
                    let body = client.get(&format!(
                        "/add.aspx?mac={}&dm={label}&myip=127.0.0.1",
                        url_encode(token)
                    ));
                    assert!(body.starts_with("10|"), "add.aspx: {body}");
                }
            });
        }
    });
    println!(
        "registered {} devices over HTTP in {:.1?}",
        n + movers,
        started.elapsed()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let _guard = runtime.enter();
    let target = ddns_client::Server {
        addr: server.quic,
        name: "localhost".into(),
        tls: ddns_client::tls_config(ddns_client::roots_from_pem(&ca).expect("the CA")),
    };
    let (sender, mut events) = mpsc::unbounded_channel::<DeviceEvent>();

    // The server's own idle CPU (projector, log, DNS workers), to subtract from the devices'.
    let base_window = Duration::from_secs(idle_secs.min(20));
    let cpu_before = server.cpu_secs();
    std::thread::sleep(base_window);
    let base_cpu_per_sec = (server.cpu_secs() - cpu_before) / base_window.as_secs_f64();

    // 1. Idle devices: memory.
    let rss_before = server.rss_bytes();
    let own_before = rss_of("self");
    let sockets: Vec<quinn::Endpoint> = (0..endpoints)
        .map(|i| {
            let ip = Ipv4Addr::new(127, 0, 1, i as u8 + 1);
            ddns_client::endpoint(SocketAddr::from((ip, 0)), 8 << 20).expect("bound")
        })
        .collect();
    // The field's settings: keep-alive every 15-25 s, backoff from 1 s to 5 minutes.
    let config = |token: &str| {
        DeviceConfig::new(Credential::Device {
            token: token.to_owned(),
        })
    };
    // Devices come online at RAMP per second (a fleet that connected over time; a restart's
    // storm is the test's subject, not this one's).
    let ramp = env("RAMP", 300).max(1) as usize;
    let started = Instant::now();
    let mut fleet: Vec<Device> = Vec::with_capacity(n);
    for (i, (token, _)) in all[..n].iter().enumerate() {
        if i.is_multiple_of((ramp / 10).max(1)) {
            let due = started + Duration::from_secs_f64(i as f64 / ramp as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        fleet.push(Device::spawn(
            i,
            sockets[i % endpoints].clone(),
            target.clone(),
            Arc::new(config(token)),
            sender.clone(),
        ));
    }
    let mut connected = vec![false; n + movers];
    let mut count = 0;
    let max_rss = env("MAX_RSS_MIB", 8192) << 20;
    let mut seen = 0u64;
    let deadline = started + Duration::from_secs(120 + n as u64 / 100);
    while count < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = runtime
            .block_on(async { tokio::time::timeout(left, events.recv()).await })
            .unwrap_or_else(|_| panic!("only {count} of {n} devices connected in time"))
            .expect("events");
        seen += 1;
        if seen.is_multiple_of(1000) {
            let rss = rss_of("self");
            assert!(
                rss < max_rss,
                "{} MiB of RSS with {count} devices connected: stopping",
                rss >> 20
            );
        }
        if let Event::Connected(_) = event.event
            && !std::mem::replace(&mut connected[event.device], true)
        {
            count += 1;
        }
    }
    let connect_took = started.elapsed();
    // Let the allocator settle: handshakes' buffers freed, the last tickets sent.
    std::thread::sleep(Duration::from_secs(5));
    let rss_after = server.rss_bytes();
    let own_after = rss_of("self");
    let per_conn = (rss_after as f64 - rss_before as f64) / n as f64;
    let own_per_conn = (own_after as f64 - own_before as f64) / n as f64;
    println!(
        "1. {n} devices connected in {connect_took:.1?} ({:.0} handshakes/s); server RSS {} → {} \
         MiB: {:.1} KiB per connection (the devices' side, this process: {:.1} KiB); at this \
         rate 100,000 devices need {:.2} GiB",
        n as f64 / connect_took.as_secs_f64(),
        rss_before >> 20,
        rss_after >> 20,
        per_conn / 1024.0,
        own_per_conn / 1024.0,
        per_conn * 100_000.0 / f64::from(1u32 << 30)
    );

    // 2. Keep-alive CPU, every device idle.
    let cpu_before = server.cpu_secs();
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let window = window.elapsed().as_secs_f64();
    let total_cpu = server.cpu_secs() - cpu_before;
    let idle_cpu = (total_cpu - base_cpu_per_sec * window).max(0.0);
    let lost = drain(&mut events)
        .iter()
        .filter(|e| matches!(e.event, Event::Lost(_)))
        .count();
    // Per device per hour, and the fleet's share of a core.
    let cpu_per_device_hour = idle_cpu / n as f64 * 3600.0 / window;
    println!(
        "2. idle for {window:.0} s: server CPU {total_cpu:.2} s, {idle_cpu:.2} s over the server's \
         own idle {:.2}% of a core ({:.2}% of a core for the devices): {:.2} ms per device per \
         hour ({:.1} µs per keep-alive at one every 20 s); {lost} connections lost",
        100.0 * base_cpu_per_sec,
        100.0 * idle_cpu / window,
        cpu_per_device_hour * 1e3,
        cpu_per_device_hour * 1e6 / (3600.0 / 20.0),
    );

    // 3. Rebind to DNS answer.
    let mut moving: Vec<(quinn::Endpoint, Device, String)> = Vec::new();
    for (i, (token, label)) in all[n..].iter().enumerate() {
        let endpoint =
            ddns_client::endpoint(SocketAddr::from((mover_ip(i, 0), 0)), 0).expect("bound");
        let device = Device::spawn(
            n + i,
            endpoint.clone(),
            target.clone(),
            Arc::new(config(token)),
            sender.clone(),
        );
        moving.push((endpoint, device, format!("{label}.dyn.example")));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = 0;
    while ready < movers {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = runtime
            .block_on(async { tokio::time::timeout(left, events.recv()).await })
            .expect("the movers connected in time")
            .expect("events");
        if let Event::Connected(_) = event.event
            && event.device >= n
            && !std::mem::replace(&mut connected[event.device], true)
        {
            ready += 1;
        }
    }
    let dns = server.dns;
    let mut latencies: Vec<Duration> = Vec::with_capacity(movers * rounds);
    let mut pushes: Vec<Duration> = Vec::new();
    let mut timeouts = 0;
    for round in 1..=rounds {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (endpoint, _, name)) in moving.iter().enumerate() {
            let (endpoint, name) = (endpoint.clone(), name.clone());
            let ip = mover_ip(i, round);
            tasks.spawn(async move {
                // A random moment of the round: the address walk runs once a second.
                tokio::time::sleep(Duration::from_millis(rand_below(1000))).await;
                let socket = std::net::UdpSocket::bind((ip, 0)).expect("bound");
                endpoint.rebind(socket).expect("rebound");
                let rebound = Instant::now();
                let answered = wait_for_answer(dns, &name, ip, Duration::from_secs(15)).await;
                (i, rebound, answered.then(|| rebound.elapsed()))
            });
        }
        let mut rebound_at = HashMap::new();
        while let Some(done) = runtime.block_on(tasks.join_next()) {
            let (i, at, took) = done.expect("a mover");
            rebound_at.insert(n + i, at);
            match took {
                Some(took) => latencies.push(took),
                None => timeouts += 1,
            }
        }
        for event in drain(&mut events) {
            if let (Event::Pushed(code, _), Some(at)) =
                (&event.event, rebound_at.get(&event.device))
                && code == "09"
                && event.at > *at
            {
                pushes.push(event.at - *at);
            }
        }
    }
    latencies.sort();
    pushes.sort();
    println!(
        "3. {} rebinds to a new IP: DNS answered the new IP after p50 {} ms, p99 {} ms, max {} \
         ms ({timeouts} not within 15 s); the device heard its PUSH after p50 {} ms, p99 {} ms \
         ({} pushes)",
        latencies.len(),
        percentile(&latencies, 0.50).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
        latencies.last().copied().unwrap_or_default().as_millis(),
        percentile(&pushes, 0.50).as_millis(),
        percentile(&pushes, 0.99).as_millis(),
        pushes.len(),
    );

    // 4. Against polling: ipdetect on a new TCP connection per request.
    let polls = env("POLLS", 20_000) as usize;
    let cpu_before = server.cpu_secs();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let http = server.http;
            scope.spawn(move || {
                for _ in 0..polls / 4 {
                    let mut tcp = TcpStream::connect(http).expect("connects");
                    tcp.write_all(
                        b"GET /ipdetect.aspx HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n",
                    )
                    .expect("sent");
                    let mut response = String::new();
                    tcp.read_to_string(&mut response).expect("read");
                    assert!(response.ends_with("127.0.0.1"), "{response}");
                }
            });
        }
    });
    let poll_cpu = (server.cpu_secs() - cpu_before) / polls as f64;
    let poll_rate = polls as f64 / started.elapsed().as_secs_f64();
    let million = 1_000_000.0;
    let quic_core = cpu_per_device_hour * million / 3600.0;
    let poll_core = poll_cpu * million / POLL_SECS;
    println!(
        "4. ipdetect on a new connection: {:.1} µs of server CPU per request ({poll_rate:.0}/s \
         from 4 threads). A fleet of 1,000,000: polling every 5 min is {:.0} requests/s, {:.3} \
         cores, and finds a new address after 150 s on average; kept alive over QUIC it is 0 \
         requests/s ({:.0} keep-alive packets/s, acknowledged), {:.3} cores, {:.1} GiB of \
         server memory, and a new address is in DNS after p50 {} ms",
        poll_cpu * 1e6,
        million / POLL_SECS,
        poll_core,
        million / 20.0,
        quic_core,
        per_conn * million / f64::from(1u32 << 30),
        percentile(&latencies, 0.50).as_millis(),
    );
    drop(moving);
    drop(fleet);
}

/// The loopback address of mover `i` in round `round` (127.2.x.y, 127.3.x.y, …).
fn mover_ip(i: usize, round: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 2 + round as u8, (i / 250) as u8, (i % 250) as u8 + 1)
}

/// A pseudo-random number below `n` (the rebinds' moments; no need for quality).
fn rand_below(n: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(nanos) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x % n.max(1)
}

/// Asks `dns` for `name`'s A record every 20 ms until it is `ip`; false after `within`.
async fn wait_for_answer(dns: SocketAddr, name: &str, ip: Ipv4Addr, within: Duration) -> bool {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bound");
    socket.connect(dns).await.expect("connected");
    let query = a_query(name);
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        socket.send(&query).await.expect("sent");
        if let Ok(Ok(len)) =
            tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await
            && answer_a(&buf[..len]) == Some(ip)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A query for `name`'s A record (ID 0x4242, no recursion).
fn a_query(name: &str) -> Vec<u8> {
    let mut query = vec![0x42, 0x42, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
}

/// The address of the first answer of a reply, if it is an A record.
fn answer_a(reply: &[u8]) -> Option<Ipv4Addr> {
    if reply.len() < 12 || reply[3] & 0x0f != 0 || u16::from_be_bytes([reply[6], reply[7]]) == 0 {
        return None;
    }
    // Skips a name (labels, or a compression pointer that ends it).
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *reply.get(at)?;
            match len {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => return Some(at + 2),
                l => at += 1 + usize::from(l),
            }
        }
    };
    let answer = skip_name(12)? + 4;
    let at = skip_name(answer)?;
    let rtype = u16::from_be_bytes([*reply.get(at)?, *reply.get(at + 1)?]);
    let rdlen = u16::from_be_bytes([*reply.get(at + 8)?, *reply.get(at + 9)?]);
    let rdata = reply.get(at + 10..at + 14)?;
    (rtype == 1 && rdlen == 4).then(|| Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        len => sorted[((len - 1) as f64 * p).round() as usize],
    }
}

fn drain(events: &mut mpsc::UnboundedReceiver<DeviceEvent>) -> Vec<DeviceEvent> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// VmRSS of `/proc/<pid>/status`, in bytes.
fn rss_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// An HTTP/1.1 client on one keep-alive connection (the registration's).
struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> KeepAlive {
        let tcp = TcpStream::connect(addr).expect("connects");
        tcp.set_nodelay(true).expect("nodelay");
        KeepAlive {
            reader: BufReader::new(tcp),
        }
    }

    /// The body of `GET path` (which must be a 200).
    fn get(&mut self, path: &str) -> String {
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n"
        )
        .expect("sent");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        assert!(line.contains(" 200 "), "{line}");
        let mut len = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("a header");
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                len = value.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).expect("a body");
        String::from_utf8(body).expect("utf-8")
    }
}

/// A CA and a server certificate for `localhost` it signs: (ca.pem, server.pem, server.key).
fn make_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &str| {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-CA"
    ));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("written");
    openssl(&format!(
        "req {ec} -keyout server.key -out server.csr -subj /CN=localhost"
    ));
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 1 \
         -extfile server.ext -out server.pem",
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

struct Server {
    child: Child,
    http: SocketAddr,
    dns: SocketAddr,
    quic: SocketAddr,
}

impl Server {
    /// The release binary with the channel on, room for `devices`, and quotas that leave
    /// registration and reconnects alone.
    fn start(bin: &Path, dir: &Path, cert: &Path, key: &Path, devices: usize, rate: u64) -> Server {
        let config = dir.join("ddnsd.toml");
        std::fs::write(
            &config,
            format!(
                "quic_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n\n\
                 [[vendors]]\nname = \"demo\"\nzone = \"dyn.example\"\n\
                 keys = [{{ id = 1, secret_hex = \"{KEY_HEX}\" }}]\n\n\
                 [tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n\n\
                 [quic]\nmax_connections = {}\nhandshakes_per_second = {rate}\n\n\
                 [ingest.flood]\ndevice_updates_per_minute = 1000000\ndevice_burst = 100000\n\
                 source_requests_per_minute = 100000000\nsource_burst = 10000000\n",
                devices + 1000
            ),
        )
        .expect("config written");
        let mut child = Command::new(bin)
            .args(["serve", "--http-listen", "127.0.0.1:0"])
            .args([
                "--dns-listen",
                "127.0.0.1:0",
                "--portal-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("DDNSD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ddnsd starts");
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut lines = stderr.lines();
        let ready = loop {
            let line = lines
                .next()
                .expect("ddnsd said it was ready")
                .expect("stderr");
            if let Some(rest) = line.split("ddnsd ready:").nth(1) {
                break rest.to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let field = |name: &str| -> SocketAddr {
            ready
                .split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {name}= in the ready line: {ready}"))
        };
        Server {
            http: field("http"),
            dns: field("dns"),
            quic: field("quic"),
            child,
        }
    }

    fn rss_bytes(&self) -> u64 {
        rss_of(&self.child.id().to_string())
    }

    /// utime + stime of the server so far, in seconds.
    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/PID/stat");
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("stat format")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        ticks as f64 / TICKS_PER_SEC
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
