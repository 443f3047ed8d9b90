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

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, StreamOwned};

use common::{KeyKind, Pki, Server, env, loadavg};

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
    let bin = common::ddnsd_bin();
    let dir = tempfile::tempdir().expect("temp dir");
    let key = match std::env::var("KEY").is_ok_and(|k| k == "rsa") {
        true => KeyKind::Rsa,
        false => KeyKind::Ec,
    };
    let pki = Pki::new(dir.path(), key);
    let server = Server::start(
        &bin,
        dir.path(),
        &format!(
            "https_listen = \"127.0.0.1:0\"\n{}\
             [ingest.flood]\nsource_requests_per_minute = 1000000000\nsource_burst = 100000000\n",
            pki.tls_table()
        ),
    );
    let (http, https) = (server.addr("http"), server.addr("https"));

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&pki.ca).expect("CA"))
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
        key.name(),
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
        let addr = if mode.tls() { https } else { http };
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
