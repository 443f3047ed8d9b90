//! What TLS costs the device API per request, beside plain HTTP, in one run.
//!
//! Starts the real `ddnsd` (release build) with a test certificate made by `openssl` (ECDSA
//! P-256, or RSA-2048 with `KEY=rsa`: a full handshake signs with it) on loopback, then for `DUR` seconds per mode has `CONNS` client threads send
//! `GET /ipdetect.aspx` as fast as the server answers:
//!
//! - `http keep-alive`: plain HTTP, one connection per thread.
//! - `http conn/req`: plain HTTP, a new TCP connection per request (`connection: close`).
//! - `https keep-alive`: TLS, one connection per thread (handshake cost amortized away).
//! - `https resumed/req`: a new TLS connection per request that resumes a session (a ticket
//!   from the previous one), as a device that polls with a TLS session cache does.
//! - `https full/req`: a new TLS connection per request with a full handshake (no resumption),
//!   as a device without a session cache does.
//!
//! Server CPU is utime+stime of the server process from `/proc`, before and after each mode,
//! per request: the client shares the cores, so requests/s depends on how the scheduler splits
//! them and CPU per request does not. Ratios are against plain HTTP keep-alive.
//!
//! ```sh
//! cargo build --release -p ddnsd
//! cargo run --release -p ddns-bench --example tls_cost             # DUR=5 CONNS=4 KEY=ec
//! KEY=rsa cargo run --release -p ddns-bench --example tls_cost
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, StreamOwned};

/// Kernel clock ticks per second (`getconf CLK_TCK`), what `/proc/PID/stat` counts CPU in.
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    HttpKeepAlive,
    HttpPerRequest,
    HttpsKeepAlive,
    HttpsResumed,
    HttpsFull,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::HttpKeepAlive => "http keep-alive",
            Mode::HttpPerRequest => "http conn/req",
            Mode::HttpsKeepAlive => "https keep-alive",
            Mode::HttpsResumed => "https resumed/req",
            Mode::HttpsFull => "https full/req",
        }
    }

    fn tls(self) -> bool {
        matches!(
            self,
            Mode::HttpsKeepAlive | Mode::HttpsResumed | Mode::HttpsFull
        )
    }

    fn keep_alive(self) -> bool {
        matches!(self, Mode::HttpKeepAlive | Mode::HttpsKeepAlive)
    }
}

fn main() {
    let dur = Duration::from_secs(env("DUR", 5));
    let conns = env("CONNS", 4) as usize;
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
    let rsa = std::env::var("KEY").is_ok_and(|k| k == "rsa");
    let (ca, cert, key) = make_pki(dir.path(), rsa);
    let server = Server::start(&bin, dir.path(), &cert, &key);

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&ca).expect("CA"))
        .expect("CA added");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resuming = Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut full = (*resuming).clone();
    full.resumption = Resumption::disabled();
    let full = Arc::new(full);

    println!(
        "ddnsd {}; {} certificate; GET /ipdetect.aspx on loopback; {conns} client threads, {} s per mode; {} cores; load {}",
        bin.display(),
        if rsa { "RSA-2048" } else { "ECDSA P-256" },
        dur.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!(
        "{:<18} {:>10} {:>14} {:>10} {:>10} {:>9}",
        "mode", "req/s", "server µs/req", "req/s ×", "cpu ×", "resumed"
    );
    let mut baseline: Option<(f64, f64)> = None;
    for mode in [
        Mode::HttpKeepAlive,
        Mode::HttpPerRequest,
        Mode::HttpsKeepAlive,
        Mode::HttpsResumed,
        Mode::HttpsFull,
    ] {
        let config = match mode {
            Mode::HttpsFull => full.clone(),
            _ => resuming.clone(),
        };
        let addr = if mode.tls() {
            server.https
        } else {
            server.http
        };
        // A short warm-up (connections, session caches, the server's allocator).
        run(mode, addr, &config, conns, Duration::from_millis(500));
        let cpu_before = server.cpu_secs();
        let started = Instant::now();
        let (requests, resumed) = run(mode, addr, &config, conns, dur);
        let secs = started.elapsed().as_secs_f64();
        let cpu = server.cpu_secs() - cpu_before;
        let rate = requests as f64 / secs;
        let cpu_us = cpu * 1e6 / requests as f64;
        let (base_rate, base_cpu) = *baseline.get_or_insert((rate, cpu_us));
        let resumed = match mode {
            Mode::HttpsResumed | Mode::HttpsFull => {
                format!("{:.0}%", 100.0 * resumed as f64 / requests as f64)
            }
            _ => "-".into(),
        };
        println!(
            "{:<18} {:>10.0} {:>14.1} {:>10.2} {:>10.2} {:>9}",
            mode.name(),
            rate,
            cpu_us,
            rate / base_rate,
            cpu_us / base_cpu,
            resumed
        );
    }
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

/// `conns` threads sending requests in `mode` for `dur`: (requests answered, resumed
/// handshakes).
fn run(
    mode: Mode,
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    conns: usize,
    dur: Duration,
) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (stop, requests, resumed) = (stop.clone(), requests.clone(), resumed.clone());
            let config = config.clone();
            std::thread::spawn(move || {
                let mut conn: Option<Conn> = None;
                while !stop.load(Ordering::Relaxed) {
                    let c = match &mut conn {
                        Some(c) => c,
                        None => {
                            let c = Conn::open(mode, addr, &config);
                            if c.resumed() {
                                resumed.fetch_add(1, Ordering::Relaxed);
                            }
                            conn.insert(c)
                        }
                    };
                    c.request(mode.keep_alive());
                    requests.fetch_add(1, Ordering::Relaxed);
                    if !mode.keep_alive() {
                        conn = None;
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("client thread");
    }
    (
        requests.load(Ordering::Relaxed),
        resumed.load(Ordering::Relaxed),
    )
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    fn open(mode: Mode, addr: SocketAddr, config: &Arc<ClientConfig>) -> Conn {
        let tcp = TcpStream::connect(addr).expect("connects");
        tcp.set_nodelay(true).expect("nodelay");
        if !mode.tls() {
            return Conn::Plain(tcp);
        }
        let name = ServerName::try_from("localhost").expect("a name");
        let conn = ClientConnection::new(config.clone(), name).expect("client");
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("handshake");
        }
        Conn::Tls(Box::new(tls))
    }

    fn resumed(&self) -> bool {
        match self {
            Conn::Plain(_) => false,
            Conn::Tls(tls) => tls.conn.handshake_kind() == Some(HandshakeKind::Resumed),
        }
    }

    /// One request, its whole reply read (by its content-length).
    fn request(&mut self, keep_alive: bool) {
        let request: &[u8] = match keep_alive {
            true => b"GET /ipdetect.aspx HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n\r\n",
            false => b"GET /ipdetect.aspx HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nConnection: close\r\n\r\n",
        };
        let stream: &mut dyn ReadWrite = match self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(tls) => tls.as_mut(),
        };
        stream.write_all(request).expect("sends");
        stream.flush().expect("flushed");
        let mut reply = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).expect("reads");
            assert!(n > 0, "closed before the reply ended");
            reply.extend_from_slice(&chunk[..n]);
            if let Some(head_end) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&reply[..head_end]).expect("ASCII head");
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.parse().ok())
                    .expect("content-length");
                if reply.len() >= head_end + 4 + len {
                    return;
                }
            }
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A CA and a server certificate for `localhost` it signs: (ca.pem, server.pem, server.key).
fn make_pki(dir: &Path, rsa: bool) -> (PathBuf, PathBuf, PathBuf) {
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
    let server_key = match rsa {
        true => "-newkey rsa:2048 -nodes",
        false => ec,
    };
    openssl(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-CA"
    ));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("written");
    openssl(&format!(
        "req {server_key} -keyout server.key -out server.csr -subj /CN=localhost"
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
    https: SocketAddr,
}

impl Server {
    fn start(bin: &Path, dir: &Path, cert: &Path, key: &Path) -> Server {
        let config = dir.join("ddnsd.toml");
        std::fs::write(
            &config,
            format!(
                "https_listen = \"127.0.0.1:0\"\n\
                 [tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n\
                 [ingest.flood]\nsource_requests_per_minute = 1000000000\nsource_burst = 100000000\n"
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
            https: field("https"),
            child,
        }
    }

    /// utime + stime of the server so far, in seconds.
    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/PID/stat");
        // Fields after the command name (which may hold spaces, in parentheses).
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
