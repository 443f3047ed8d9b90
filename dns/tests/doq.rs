//! DNS over QUIC end to end: the real listener on 127.0.0.1:0 and a quinn client, with a test
//! CA and certificates made by Debian's `openssl`.
//!
//! What RFC 9250 asks of a server (protocol errors, message ID 0, many streams per connection,
//! 0-RTT, limits), and that a DoQ reply is byte for byte the TCP listener's reply to the same
//! query (a property test over names, types and EDNS).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::{BOTH_V4, CAM_V4, zone};
use ddns_dns::{DOQ_ALPN, DOQ_PROTOCOL_ERROR, DnsServer, DoqConfig, DoqServer};
use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{DNSClass, Name, RData, RecordType};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, ConnectionError, Endpoint, TransportErrorCode, VarInt};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// How long any one step may take before the test fails.
const STEP: Duration = Duration::from_secs(10);

/// A test CA and server certificates for `localhost` and 127.0.0.1, made by `openssl`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        pki.openssl(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
             -out ca.pem -days 2 -subj /CN=ddnsd-doq-test-CA",
        );
        std::fs::write(
            pki.dir.path().join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("written");
        pki
    }

    fn openssl(&self, args: &str) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(self.dir.path())
            .output()
            .expect("openssl runs (bash scripts/setup.sh --tests installs it)");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new key and certificate: `name.pem`, `name.key`.
    fn issue(&self, name: &str, serial: u32) -> (PathBuf, PathBuf) {
        self.openssl(&format!(
            "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {name}.key \
             -out {name}.csr -subj /CN=localhost"
        ));
        self.openssl(&format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -set_serial {serial} -days 1 \
             -extfile server.ext -out {name}.pem"
        ));
        let dir = self.dir.path();
        (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        )
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified_key(cert: &Path, key: &Path) -> Arc<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .expect("certificate read")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate parses");
    let key = PrivateKeyDer::from_pem_file(key).expect("key read");
    let key = provider()
        .key_provider
        .load_private_key(key)
        .expect("key loads");
    Arc::new(CertifiedKey::new(chain, key))
}

/// A certificate that can be swapped, as ddnsd's `TlsCertificate` is on SIGHUP.
#[derive(Debug)]
struct Swappable(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Swappable {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().expect("not poisoned").clone())
    }
}

/// A DoQ server for `zone()` with `config`, its certificate, and the PKI that made it.
struct Fixture {
    pki: Pki,
    certificate: Arc<Swappable>,
    server: DoqServer,
}

async fn serve(config: DoqConfig) -> Fixture {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 1);
    let certificate = Arc::new(Swappable(RwLock::new(certified_key(&cert, &key))));
    let server = DoqServer::bind(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        zone(),
        certificate.clone(),
        &config,
    )
    .await
    .expect("binds 127.0.0.1:0");
    Fixture {
        pki,
        certificate,
        server,
    }
}

/// A quinn client endpoint that trusts `ca`, offers `alpn`, and sends 0-RTT when it can.
fn client(ca: &Path, alpn: &[u8]) -> Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA read") {
        roots.add(cert.expect("CA parses")).expect("CA added");
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls.enable_early_data = true;
    let crypto = QuicClientConfig::try_from(Arc::new(tls)).expect("a QUIC client config");
    let mut endpoint =
        Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("client socket");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

async fn connect(endpoint: &Endpoint, server: SocketAddr) -> Result<Connection, ConnectionError> {
    let connecting = endpoint
        .connect(server, "localhost")
        .expect("connect starts");
    tokio::time::timeout(STEP, connecting)
        .await
        .expect("the handshake ends in time")
}

/// A query with message ID 0, as DoQ sends it.
fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut message = Message::new(0, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).expect("valid"), qtype));
    message.to_vec().expect("encodes")
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut stream = u16::try_from(message.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    stream.extend_from_slice(message);
    stream
}

/// Any client-side error, to print.
type ClientResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Sends `stream` on a new bidirectional stream with FIN and returns the reply without its
/// length prefix, checking the prefix.
async fn exchange(connection: &Connection, stream: &[u8]) -> ClientResult<Vec<u8>> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(stream).await?;
    send.finish()?;
    let reply = tokio::time::timeout(STEP, recv.read_to_end(70_000)).await??;
    let (prefix, message) = reply
        .split_first_chunk::<2>()
        .ok_or("a reply shorter than its prefix")?;
    if usize::from(u16::from_be_bytes(*prefix)) != message.len() {
        return Err("the reply's length prefix is wrong".into());
    }
    Ok(message.to_vec())
}

async fn ask(connection: &Connection, name: &str, qtype: RecordType) -> Message {
    let reply = exchange(connection, &framed(&query(name, qtype)))
        .await
        .unwrap_or_else(|error| panic!("{name} {qtype}: {error}"));
    Message::from_vec(&reply).expect("the reply decodes")
}

/// Waits for the server to close `connection` and returns the application error code.
async fn closed_with(connection: &Connection) -> u64 {
    match tokio::time::timeout(STEP, connection.closed()).await {
        Ok(ConnectionError::ApplicationClosed(close)) => close.error_code.into_inner(),
        Ok(other) => panic!("closed otherwise: {other}"),
        Err(_) => panic!("the connection stayed open"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_answered_from_the_zone() {
    let fixture = serve(DoqConfig::default()).await;
    let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
    let connection = connect(&endpoint, fixture.server.local_addr())
        .await
        .expect("connects");

    let reply = ask(&connection, "cam.dyn.example.", RecordType::A).await;
    assert_eq!(reply.metadata.id, 0);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].data, RData::A(A(CAM_V4)));

    let reply = ask(&connection, "nope.dyn.example.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(reply.authorities.len(), 1, "the SOA");

    // The whole NS set of big.test (over 512 bytes): never truncated, as over TCP.
    let reply = ask(&connection, "big.test.", RecordType::NS).await;
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_streams_close_the_connection_with_a_protocol_error() {
    let fixture = serve(DoqConfig::default()).await;
    let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
    let server = fixture.server.local_addr();
    let good = framed(&query("cam.dyn.example.", RecordType::A));
    let mut short = good.clone();
    short.truncate(good.len() - 3);
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0, 0]);
    let mut with_id = good.clone();
    with_id[2..4].copy_from_slice(&0x1234u16.to_be_bytes());
    let cases: [(&str, Vec<u8>); 6] = [
        ("short of its length", short),
        ("trailing bytes", trailing),
        ("a lone octet", vec![0]),
        ("an empty stream", Vec::new()),
        ("a non-zero message ID", with_id),
        ("a message shorter than a header", framed(&[0; 5])),
    ];
    for (what, stream) in cases {
        let connection = connect(&endpoint, server).await.expect("connects");
        // A good query first: the connection works until the bad stream.
        assert_eq!(
            ask(&connection, "cam.dyn.example.", RecordType::A)
                .await
                .metadata
                .response_code,
            ResponseCode::NoError
        );
        assert!(
            exchange(&connection, &stream).await.is_err(),
            "{what}: answered"
        );
        assert_eq!(
            closed_with(&connection).await,
            u64::from(DOQ_PROTOCOL_ERROR),
            "{what}"
        );
    }

    // A unidirectional stream: DoQ has no use for one.
    let connection = connect(&endpoint, server).await.expect("connects");
    let mut uni = connection.open_uni().await.expect("a stream");
    uni.write_all(&good).await.expect("sent");
    uni.finish().expect("finished");
    assert_eq!(
        closed_with(&connection).await,
        u64::from(DOQ_PROTOCOL_ERROR)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_one_connection_are_served_concurrently() {
    let fixture = serve(DoqConfig::default()).await;
    let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
    let connection = connect(&endpoint, fixture.server.local_addr())
        .await
        .expect("connects");

    // A stream whose query is not complete yet (no FIN) ...
    let good = framed(&query("both.dyn.example.", RecordType::A));
    let (mut slow_send, mut slow_recv) = connection.open_bi().await.expect("a stream");
    slow_send.write_all(&good[..5]).await.expect("sent");

    // ... holds up none of the 99 others the connection may have open beside it, all in flight
    // at once.
    let mut queries = JoinSet::new();
    for i in 0..99 {
        let connection = connection.clone();
        queries.spawn(async move {
            let (name, expected) = match i % 2 {
                0 => ("cam.dyn.example.", CAM_V4),
                _ => ("both.dyn.example.", BOTH_V4),
            };
            let reply = ask(&connection, name, RecordType::A).await;
            assert_eq!(reply.answers[0].data, RData::A(A(expected)));
        });
    }
    let answered = tokio::time::timeout(STEP, queries.join_all())
        .await
        .expect("answered while a stream waits");
    assert_eq!(answered.len(), 99);

    // The slow stream, finished, is answered too.
    slow_send.write_all(&good[5..]).await.expect("sent");
    slow_send.finish().expect("finished");
    let reply = tokio::time::timeout(STEP, slow_recv.read_to_end(70_000))
        .await
        .expect("in time")
        .expect("a reply");
    let reply = Message::from_vec(&reply[2..]).expect("decodes");
    assert_eq!(reply.answers[0].data, RData::A(A(BOTH_V4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_client_is_answered_in_0_rtt() {
    let fixture = serve(DoqConfig::default()).await;
    let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
    let server = fixture.server.local_addr();
    // The first connection gets a session ticket (sent once the handshake is done); a query's
    // round trip gives it time to arrive. Tickets are single-use, so each attempt takes one.
    let mut zero_rtt = None;
    for _ in 0..5 {
        let connecting = endpoint
            .connect(server, "localhost")
            .expect("connect starts");
        match connecting.into_0rtt() {
            Ok(pair) => {
                zero_rtt = Some(pair);
                break;
            }
            Err(connecting) => {
                let connection = tokio::time::timeout(STEP, connecting)
                    .await
                    .expect("in time")
                    .expect("connects");
                ask(&connection, "cam.dyn.example.", RecordType::A).await;
                connection.close(VarInt::from_u32(0), b"done");
            }
        }
    }
    let (connection, accepted) = zero_rtt.expect("a session ticket within 5 connections");
    // Sent before the handshake completes: in 0-RTT packets.
    let reply = ask(&connection, "cam.dyn.example.", RecordType::A).await;
    assert_eq!(reply.answers[0].data, RData::A(A(CAM_V4)));
    assert!(accepted.await, "the server accepted the 0-RTT data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_are_refused() {
    let fixture = serve(DoqConfig {
        max_connections: 2,
        ..DoqConfig::default()
    })
    .await;
    let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
    let server = fixture.server.local_addr();
    let first = connect(&endpoint, server).await.expect("connects");
    let second = connect(&endpoint, server).await.expect("connects");
    ask(&second, "cam.dyn.example.", RecordType::A).await;
    match connect(&endpoint, server).await {
        Err(ConnectionError::ConnectionClosed(close)) => {
            assert_eq!(close.error_code, TransportErrorCode::CONNECTION_REFUSED);
        }
        other => panic!("a third connection: {other:?}"),
    }
    // Once one closes, its place is free again (the server hears of the close a moment later).
    first.close(VarInt::from_u32(0), b"done");
    let deadline = Instant::now() + STEP;
    loop {
        match connect(&endpoint, server).await {
            Ok(third) => {
                ask(&third, "cam.dyn.example.", RecordType::A).await;
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("no place freed: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let fixture = serve(DoqConfig {
        idle_timeout_secs: 1,
        ..DoqConfig::default()
    })
    .await;
    let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
    let connection = connect(&endpoint, fixture.server.local_addr())
        .await
        .expect("connects");
    ask(&connection, "cam.dyn.example.", RecordType::A).await;
    let started = Instant::now();
    match tokio::time::timeout(STEP, connection.closed()).await {
        Ok(ConnectionError::TimedOut) => {}
        other => panic!("expected an idle timeout, got {other:?}"),
    }
    // The client's own timeout is 30 s: the server's 1 s is what applied.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Forwards what clients send to `server` and drops what comes back: each client's handshake
/// starts on the server and never finishes. `forwarded` counts the packets passed on.
async fn black_hole(server: SocketAddr, forwarded: Arc<AtomicUsize>) -> SocketAddr {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bound");
    let addr = socket.local_addr().expect("an address");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            if from != server && socket.send_to(&buf[..len], server).await.is_ok() {
                forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_that_never_finish_stall_nobody() {
    let fixture = serve(DoqConfig::default()).await;
    let server = fixture.server.local_addr();
    let forwarded = Arc::new(AtomicUsize::new(0));
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
        let connecting = endpoint
            .connect(black_hole(server, forwarded.clone()).await, "localhost")
            .expect("connect starts");
        stalled.push((endpoint, connecting));
    }
    // Every stalled client's Initial has reached the server before the real client starts.
    let deadline = Instant::now() + STEP;
    while forwarded.load(Ordering::Relaxed) < 20 {
        assert!(Instant::now() < deadline, "the Initials were not forwarded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
    let started = Instant::now();
    let connection = connect(&endpoint, server).await.expect("connects");
    let reply = ask(&connection, "cam.dyn.example.", RecordType::A).await;
    assert_eq!(reply.answers[0].data, RData::A(A(CAM_V4)));
    // hickory's DoQ listener would wait out each stalled handshake (5 s apiece) first.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} beside 20 stalled handshakes",
        started.elapsed()
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_other_than_doq_is_refused() {
    let fixture = serve(DoqConfig::default()).await;
    let endpoint = client(&fixture.pki.ca(), b"dot");
    assert!(
        connect(&endpoint, fixture.server.local_addr())
            .await
            .is_err()
    );
}

fn peer_certificate(connection: &Connection) -> CertificateDer<'static> {
    let identity = connection.peer_identity().expect("a peer identity");
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .expect("rustls's certificate chain");
    chain[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_handshake_presents_the_certificate_resolved_then() {
    let fixture = serve(DoqConfig::default()).await;
    let server = fixture.server.local_addr();
    let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
    let kept = connect(&endpoint, server).await.expect("connects");
    let first = peer_certificate(&kept);

    let (cert, key) = fixture.pki.issue("renewed", 2);
    *fixture.certificate.0.write().expect("not poisoned") = certified_key(&cert, &key);
    // A new client (no session to resume, so a full handshake).
    let fresh = connect(&client(&fixture.pki.ca(), DOQ_ALPN), server)
        .await
        .expect("connects");
    let renewed = CertificateDer::from_pem_file(&cert).expect("a certificate");
    assert_eq!(peer_certificate(&fresh), renewed);
    assert_ne!(first, renewed);
    // The open connection goes on.
    ask(&kept, "cam.dyn.example.", RecordType::A).await;
}

/// One generated query: a name (from the zone, near it, or elsewhere, in mixed case), a type,
/// a class, and optional EDNS.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    qtype: RecordType,
    class: DNSClass,
    recursion_desired: bool,
    edns: Option<(u16, bool)>,
}

impl Case {
    fn bytes(&self) -> Vec<u8> {
        let mut message = Message::new(0, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = self.recursion_desired;
        // From raw labels: any octets are a label on the wire, leading hyphens included.
        let labels = self.name.split('.').filter(|label| !label.is_empty());
        let name = Name::from_labels(labels.map(str::as_bytes)).expect("under 255 octets");
        let mut question = Query::query(name, self.qtype);
        question.set_query_class(self.class);
        message.add_query(question);
        if let Some((payload, dnssec_ok)) = self.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(payload);
            edns.set_dnssec_ok(dnssec_ok);
            message.set_edns(edns);
        }
        message.to_vec().expect("encodes")
    }
}

fn case() -> impl Strategy<Value = Case> {
    let base = prop::sample::select(vec![
        "cam.dyn.example.",
        "both.dyn.example.",
        "nope.dyn.example.",
        "dyn.example.",
        "x.cam.dyn.example.",
        // Its NS set is over 512 bytes: what UDP would truncate and DoQ must not.
        "big.test.",
        "big.test.",
        "big.test.",
        "ns-with-a-rather-long-name-01.big.test.",
        "example.org.",
        ".",
    ]);
    let prefix = prop::option::weighted(0.3, "[a-z0-9_-]{1,20}");
    let name = (base, prefix, any::<u64>()).prop_map(|(base, prefix, case_bits)| {
        let name = match prefix {
            Some(label) if base != "." => format!("{label}.{base}"),
            _ => base.to_owned(),
        };
        // DNS 0x20: the reply echoes the question's case, so mix it.
        name.chars()
            .enumerate()
            .map(|(i, c)| match case_bits >> (i % 64) & 1 {
                1 => c.to_ascii_uppercase(),
                _ => c,
            })
            .collect::<String>()
    });
    let qtype = prop::sample::select(vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::SOA,
        RecordType::NS,
        RecordType::NS,
        RecordType::ANY,
        RecordType::MX,
        RecordType::TXT,
        RecordType::CNAME,
        RecordType::PTR,
        RecordType::CAA,
        RecordType::SRV,
        RecordType::AXFR,
        RecordType::Unknown(65280),
    ]);
    let class = prop::sample::select(vec![DNSClass::IN, DNSClass::IN, DNSClass::IN, DNSClass::CH]);
    let edns = prop::option::of((512u16..=4096, any::<bool>()));
    (name, qtype, class, any::<bool>(), edns).prop_map(
        |(name, qtype, class, recursion_desired, edns)| Case {
            name,
            qtype,
            class,
            recursion_desired,
            edns,
        },
    )
}

/// The TCP listener's reply to `message` (ID 0 like the DoQ one), on a new connection.
async fn over_tcp(server: SocketAddr, message: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tcp = TcpStream::connect(server).await?;
    tcp.write_all(&framed(message)).await?;
    let len = tcp.read_u16().await?;
    let mut reply = vec![0; usize::from(len)];
    tcp.read_exact(&mut reply).await?;
    Ok(reply)
}

/// Byte compatibility with the TCP path: for generated queries with ID 0, the DoQ listener's
/// reply is byte for byte what hickory's TCP listener sends for the same zone.
#[test]
fn doq_replies_are_the_tcp_replies() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (fixture, tcp, connection) = runtime.block_on(async {
        let fixture = serve(DoqConfig::default()).await;
        let tcp = DnsServer::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), zone())
            .await
            .expect("binds");
        let endpoint = client(&fixture.pki.ca(), DOQ_ALPN);
        let connection = connect(&endpoint, fixture.server.local_addr())
            .await
            .expect("connects");
        (fixture, tcp, connection)
    });
    let tcp_addr = tcp.local_addr();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&case(), |case| {
        runtime.block_on(async {
            let message = case.bytes();
            let over_quic = exchange(&connection, &framed(&message))
                .await
                .map_err(|error| TestCaseError::fail(format!("DoQ: {error}")))?;
            let over_tcp = over_tcp(tcp_addr, &message)
                .await
                .map_err(|error| TestCaseError::fail(format!("TCP: {error}")))?;
            prop_assert_eq!(over_quic, over_tcp, "{:?}", case);
            Ok::<(), TestCaseError>(())
        })
    });
    runtime.block_on(async {
        fixture.server.shutdown().await;
        tcp.shutdown().await;
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}
