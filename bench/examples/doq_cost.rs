//! What DNS over QUIC costs per answer, beside UDP and TCP, in one run.
//!
//! Starts the real `ddnsd` (release build) with a test certificate made by `openssl` (ECDSA
//! P-256) and `doq_listen`, gives it one host (`cam42.dyn.example`, through the device API),
//! then for `DUR` seconds per mode keeps `INFLIGHT` queries for its A record in flight, each
//! client task sending its next query when the last is answered:
//!
//! - `udp`: one socket per task (the UDP workers' fast path answers).
//! - `tcp keep-alive`: one TCP connection per task, many queries on it.
//! - `tcp conn/query`: a new TCP connection per query (closed with RST: no TIME_WAIT pile-up).
//! - `doq keep-alive`: many queries per connection: `DOQ_CONNS` QUIC connections, each carrying
//!   `INFLIGHT / DOQ_CONNS` streams at once.
//! - `doq conn/query full`: a new QUIC connection per query, full handshake (no resumption).
//! - `doq conn/query 0-rtt`: a new QUIC connection per query that resumes the session and sends
//!   the query as 0-RTT data, as a stub resolver with a session cache does.
//!
//! Server CPU is utime+stime of the server process from `/proc`, before and after each mode, per
//! answer: the client shares the cores, so queries/s depends on how the scheduler splits them
//! and CPU per answer does not. Ratios are against UDP. Every reply is checked (QR, NOERROR, one
//! answer); a UDP query unanswered within a second is counted lost and sent again.
//!
//! ```sh
//! cargo build --release -p ddnsd
//! cargo run --release -p ddns-bench --example doq_cost          # DUR=5 INFLIGHT=32 DOQ_CONNS=4
//! ONLY=doq cargo run --release -p ddns-bench --example doq_cost # only modes whose name has `doq`
//! ```

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, Endpoint, VarInt};
use rustls::RootCertStore;
use rustls::client::Resumption;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use common::{KeyKind, Pki, Server, env, loadavg};

/// The name every query asks for (its A record).
const HOST: &str = "cam42.dyn.example";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Udp,
    TcpKeepAlive,
    TcpPerQuery,
    DoqKeepAlive,
    DoqPerQueryFull,
    DoqPerQuery0Rtt,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Udp => "udp",
            Mode::TcpKeepAlive => "tcp keep-alive",
            Mode::TcpPerQuery => "tcp conn/query",
            Mode::DoqKeepAlive => "doq keep-alive",
            Mode::DoqPerQueryFull => "doq conn/query full",
            Mode::DoqPerQuery0Rtt => "doq conn/query 0-rtt",
        }
    }
}

/// Where the server listens, and the clients' QUIC settings.
struct Target {
    dns: SocketAddr,
    doq: SocketAddr,
    /// The test CA, which each resuming client task trusts in a configuration of its own (so
    /// that its session cache holds the tickets of its own last connection).
    ca: PathBuf,
    /// A full handshake every time.
    full: quinn::ClientConfig,
}

/// What a mode's clients counted.
#[derive(Default)]
struct Counts {
    answers: AtomicU64,
    lost: AtomicU64,
    zero_rtt: AtomicU64,
    /// 0-RTT sent and refused by the server (the query then goes again after the handshake).
    rejected: AtomicU64,
}

fn main() {
    let dur = Duration::from_secs(env("DUR", 5));
    let inflight = env("INFLIGHT", 32) as usize;
    let doq_conns = (env("DOQ_CONNS", 4) as usize).clamp(1, inflight);
    let bin = common::ddnsd_bin();
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(dir.path(), KeyKind::Ec);
    let server = Server::start(
        &bin,
        dir.path(),
        &format!(
            "doq_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n{}",
            pki.tls_table()
        ),
    );
    add_host(&server);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let target = Arc::new(Target {
        dns: server.addr("dns"),
        doq: server.addr("doq"),
        full: quic_client(&pki.ca, false),
        ca: pki.ca,
    });

    println!(
        "ddnsd {}; {} certificate; `{HOST} A` on loopback; {inflight} queries in flight \
         ({doq_conns} QUIC connections for keep-alive); {} s per mode; {} cores; load {}",
        bin.display(),
        KeyKind::Ec.name(),
        dur.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!(
        "{:<21} {:>10} {:>15} {:>9} {:>9} {:>7} {:>12}",
        "mode", "queries/s", "server µs/ans", "qps ×", "cpu ×", "lost", "0-rtt ok/no"
    );
    let mut baseline: Option<(f64, f64)> = None;
    // ONLY=doq (say) runs the modes whose name holds it, for profiling one.
    let only = std::env::var("ONLY").unwrap_or_default();
    for mode in [
        Mode::Udp,
        Mode::TcpKeepAlive,
        Mode::TcpPerQuery,
        Mode::DoqKeepAlive,
        Mode::DoqPerQueryFull,
        Mode::DoqPerQuery0Rtt,
    ] {
        if !mode.name().contains(&only) {
            continue;
        }
        // A short warm-up (connections, session tickets, the server's allocator).
        runtime.block_on(run(
            mode,
            &target,
            inflight,
            doq_conns,
            Duration::from_millis(500),
        ));
        let cpu_before = server.cpu_secs();
        let started = Instant::now();
        let counts = runtime.block_on(run(mode, &target, inflight, doq_conns, dur));
        let secs = started.elapsed().as_secs_f64();
        let cpu = server.cpu_secs() - cpu_before;
        let answers = counts.answers.load(Ordering::Relaxed);
        assert!(answers > 0, "{}: no answers", mode.name());
        let rate = answers as f64 / secs;
        let cpu_us = cpu * 1e6 / answers as f64;
        let (base_rate, base_cpu) = *baseline.get_or_insert((rate, cpu_us));
        let zero_rtt = match mode {
            Mode::DoqPerQueryFull | Mode::DoqPerQuery0Rtt => format!(
                "{:.0}%/{:.0}%",
                100.0 * counts.zero_rtt.load(Ordering::Relaxed) as f64 / answers as f64,
                100.0 * counts.rejected.load(Ordering::Relaxed) as f64 / answers as f64
            ),
            _ => "-".into(),
        };
        println!(
            "{:<21} {:>10.0} {:>15.1} {:>9.2} {:>9.2} {:>7} {:>12}",
            mode.name(),
            rate,
            cpu_us,
            rate / base_rate,
            cpu_us / base_cpu,
            counts.lost.load(Ordering::Relaxed),
            zero_rtt
        );
    }
}

/// `inflight` client tasks querying in `mode` for `dur`.
async fn run(
    mode: Mode,
    target: &Arc<Target>,
    inflight: usize,
    doq_conns: usize,
    dur: Duration,
) -> Counts {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut tasks = tokio::task::JoinSet::new();
    match mode {
        Mode::DoqKeepAlive => {
            let mut endpoints = Vec::new();
            for conn in 0..doq_conns {
                let endpoint = quic_endpoint(&target.full);
                let connection = endpoint
                    .connect(target.doq, "localhost")
                    .expect("connect starts")
                    .await
                    .expect("connects");
                // This connection's share of the streams in flight.
                let streams = inflight / doq_conns + usize::from(conn < inflight % doq_conns);
                for _ in 0..streams {
                    let (connection, stop, counts) =
                        (connection.clone(), stop.clone(), counts.clone());
                    tasks.spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            doq_query(&connection).await;
                            counts.answers.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                endpoints.push(endpoint);
            }
            tokio::time::sleep(dur).await;
            stop.store(true, Ordering::Relaxed);
            while let Some(done) = tasks.join_next().await {
                done.expect("a client task");
            }
            for endpoint in endpoints {
                endpoint.close(VarInt::from_u32(0), b"");
                endpoint.wait_idle().await;
            }
            return Arc::into_inner(counts).expect("every task has ended");
        }
        _ => {
            for _ in 0..inflight {
                let (target, stop, counts) = (target.clone(), stop.clone(), counts.clone());
                tasks.spawn(async move { client(mode, &target, &stop, &counts).await });
            }
        }
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = tasks.join_next().await {
        done.expect("a client task");
    }
    Arc::into_inner(counts).expect("every task has ended")
}

/// One client task of a mode other than DoQ keep-alive, until `stop`.
async fn client(mode: Mode, target: &Target, stop: &AtomicBool, counts: &Counts) {
    let query = query_bytes();
    match mode {
        Mode::Udp => {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bound");
            socket.connect(target.dns).await.expect("connected");
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                socket.send(&query).await.expect("sent");
                match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
                    Ok(received) => {
                        check(&buf[..received.expect("received")]);
                        counts.answers.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        counts.lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Mode::TcpKeepAlive => {
            let mut tcp = TcpStream::connect(target.dns).await.expect("connects");
            tcp.set_nodelay(true).expect("nodelay");
            while !stop.load(Ordering::Relaxed) {
                tcp_query(&mut tcp, &query).await;
                counts.answers.fetch_add(1, Ordering::Relaxed);
            }
        }
        Mode::TcpPerQuery => {
            while !stop.load(Ordering::Relaxed) {
                let mut tcp = TcpStream::connect(target.dns).await.expect("connects");
                tcp.set_nodelay(true).expect("nodelay");
                // Close with RST: thousands of connections a second would fill the ephemeral
                // port range with TIME_WAIT otherwise.
                socket2::SockRef::from(&tcp)
                    .set_linger(Some(Duration::ZERO))
                    .expect("linger");
                tcp_query(&mut tcp, &query).await;
                counts.answers.fetch_add(1, Ordering::Relaxed);
            }
        }
        Mode::DoqPerQueryFull | Mode::DoqPerQuery0Rtt => {
            let endpoint = match mode {
                Mode::DoqPerQuery0Rtt => quic_endpoint(&quic_client(&target.ca, true)),
                _ => quic_endpoint(&target.full),
            };
            while !stop.load(Ordering::Relaxed) {
                let connecting = endpoint
                    .connect(target.doq, "localhost")
                    .expect("connect starts");
                let connection = match connecting.into_0rtt() {
                    Ok((connection, accepted)) => {
                        doq_query(&connection).await;
                        match accepted.await {
                            true => counts.zero_rtt.fetch_add(1, Ordering::Relaxed),
                            false => counts.rejected.fetch_add(1, Ordering::Relaxed),
                        };
                        connection
                    }
                    Err(connecting) => {
                        let connection = connecting.await.expect("connects");
                        doq_query(&connection).await;
                        connection
                    }
                };
                connection.close(VarInt::from_u32(0), b"");
                counts.answers.fetch_add(1, Ordering::Relaxed);
            }
            // Let the server hear of the last close before the next mode starts.
            endpoint.wait_idle().await;
        }
        Mode::DoqKeepAlive => unreachable!("served by its own tasks"),
    }
}

/// `HOST A`, message ID 0 (DoQ requires it; UDP and TCP do not mind), no RD.
fn query_bytes() -> Vec<u8> {
    let mut query = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in HOST.split('.') {
        query.push(u8::try_from(label.len()).expect("a short label"));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
}

/// A reply to [`query_bytes`]: QR, NOERROR, one answer.
fn check(reply: &[u8]) {
    assert!(
        reply.len() > 12 && reply[2] & 0x80 != 0 && reply[3] & 0x0f == 0 && reply[6..8] == [0, 1],
        "unexpected reply {reply:02x?}"
    );
}

async fn tcp_query(tcp: &mut TcpStream, query: &[u8]) {
    let mut framed = u16::try_from(query.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(query);
    tcp.write_all(&framed).await.expect("sent");
    let len = tcp.read_u16().await.expect("a length");
    let mut reply = vec![0; usize::from(len)];
    tcp.read_exact(&mut reply).await.expect("a reply");
    check(&reply);
}

/// One query on a new stream of `connection`: length prefix, message, FIN; the reply to FIN.
async fn doq_query(connection: &Connection) {
    let query = query_bytes();
    let mut framed = u16::try_from(query.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&query);
    let (mut send, mut recv) = connection.open_bi().await.expect("a stream");
    send.write_all(&framed).await.expect("sent");
    send.finish().expect("finished");
    let reply = recv.read_to_end(65_537).await.expect("a reply");
    check(&reply[2..]);
}

/// A client endpoint (its own UDP socket) with `config`.
fn quic_endpoint(config: &quinn::ClientConfig) -> Endpoint {
    let mut endpoint =
        Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("client socket");
    endpoint.set_default_client_config(config.clone());
    endpoint
}

/// A DoQ client configuration trusting `ca`; with `resume`, session tickets and 0-RTT.
fn quic_client(ca: &Path, resume: bool) -> quinn::ClientConfig {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("CA"))
        .expect("CA added");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"doq".to_vec()];
    if resume {
        tls.enable_early_data = true;
        // Each connection brings two single-use tickets and the next one takes one.
        tls.resumption = Resumption::in_memory_sessions(4);
    } else {
        tls.resumption = Resumption::disabled();
    }
    let crypto = QuicClientConfig::try_from(Arc::new(tls)).expect("a QUIC client config");
    quinn::ClientConfig::new(Arc::new(crypto))
}

/// `cam42.dyn.example` → 203.0.113.7, through the device API.
fn add_host(server: &Server) {
    let out = Command::new(&server.bin)
        .args(["cipher", "--mac", "E0:46:9A:B8:1B:FC", "--data-dir"])
        .arg(&server.data_dir)
        .arg("--config")
        .arg(&server.config)
        .output()
        .expect("ddnsd cipher runs");
    assert!(out.status.success(), "cipher failed");
    let token: String = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut http = StdTcpStream::connect(server.addr("http")).expect("connects");
    write!(
        http,
        "GET /add.aspx?mac={token}&dm=cam42&myip=203.0.113.7 HTTP/1.1\r\nHost: bench\r\n\
         User-Agent: bench\r\nConnection: close\r\n\r\n"
    )
    .expect("sent");
    let mut response = String::new();
    http.read_to_string(&mut response).expect("read");
    assert!(
        response.ends_with("10|cam42.dyn.example"),
        "add.aspx: {response}"
    );
}
