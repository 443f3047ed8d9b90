//! The QUIC device channel end to end: the real binary with `[tls]` and `quic_listen`, devices
//! from the reference client's library (`ddns-client`) in this process, DNS answers from the
//! real `dig`, and the log's records read from its segment file.
//!
//! - A device connected from 127.0.0.2 whose endpoint is rebound (quinn's `Endpoint::rebind`)
//!   to 127.0.0.3: DNS answers 127.0.0.3 within 5 s, the log holds exactly one new update
//!   event, the device is told with a PUSH; a rebind to another port appends nothing.
//! - One connection per address family: an IPv6 connection beside the IPv4 one publishes its
//!   address only when the device asks, and a newer IPv6 connection supersedes the older.
//! - Malformed, oversized, hostile and replayed control messages get their error and change
//!   nothing; bad credentials are refused; a flood of rebinds is held to the device's quota.
//! - A server restart with 1,000 connected devices (`DDNSD_QUIC_DEVICES` to change it; one
//!   endpoint, so one UDP socket and many connections): every device reconnects, none is
//!   lost, and the admission rate (sampled from the server's metrics) stays within
//!   `handshakes_per_second`. After a `kill -9` instead, devices learn of it from the
//!   stateless reset that answers their next keep-alive (the reset key outlives the process).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Pki, Server, http_get, metric, url_encode, write_config};
use ddns_client::wire::{self, Credential, Record, Request, ServerMessage, close};
use ddns_client::{Backoff, Device, DeviceConfig, DeviceEvent, Event};
use ddns_core::{EventBody, decode_event};
use ddns_ingest::{TokenBook, VendorCredentials, VendorKey};
use quinn::Endpoint;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The demo vendor's key, in the config file so that tests seal tokens themselves.
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// A second vendor, whose tokens are single-use (a replay is refused).
const FRESH_KEY_HEX: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

/// Quotas for the tests that are not about them.
const ROOMY: &str = "device_updates_per_minute = 1000000\ndevice_burst = 100000\n\
                     source_requests_per_minute = 1000000\nsource_burst = 100000\n";

const IP2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const IP3: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// A server with the channel on, and what the tests need to talk to it.
struct Channel {
    _dir: tempfile::TempDir,
    server: Server,
    config: PathBuf,
    config_text: String,
    data: PathBuf,
    quic: SocketAddr,
    metrics: SocketAddr,
    ca: PathBuf,
    tokens: TokenBook,
}

impl Channel {
    /// Starts a server with `flood` as its `[ingest.flood]` table and `quic` in its `[quic]`.
    fn start(flood: &str, quic: &str) -> Channel {
        Channel::start_listening("127.0.0.1:0", flood, quic)
    }

    /// [`Channel::start`] with the channel on `listen`.
    fn start_listening(listen: &str, flood: &str, quic: &str) -> Channel {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::new(dir.path());
        let (cert, key) = pki.issue("server", 1);
        let config_text = format!(
            "quic_listen = \"{listen}\"\nhttps_listen = \"127.0.0.1:0\"\n\
             metrics_listen = \"127.0.0.1:0\"\n\n\
             [[vendors]]\nname = \"demo\"\nzone = \"dyn.example\"\n\
             keys = [{{ id = 1, secret_hex = \"{KEY_HEX}\" }}]\n\n\
             [[vendors]]\nname = \"fresh\"\nzone = \"fresh.example\"\nmax_age_secs = 300\n\
             keys = [{{ id = 2, secret_hex = \"{FRESH_KEY_HEX}\" }}]\n\n\
             [tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n\n\
             [quic]\n{quic}\n\n[ingest.flood]\n{flood}\n"
        );
        let config = write_config(dir.path(), &config_text);
        let data = dir.path().join("data");
        let server = Server::start(&data, Some(&config));
        let tokens = TokenBook::new(vec![
            VendorCredentials {
                vendor: "demo".into(),
                keys: vec![VendorKey {
                    id: 1,
                    secret_hex: KEY_HEX.into(),
                }],
                max_age_secs: None,
            },
            VendorCredentials {
                vendor: "fresh".into(),
                keys: vec![VendorKey {
                    id: 2,
                    secret_hex: FRESH_KEY_HEX.into(),
                }],
                max_age_secs: Some(300),
            },
        ])
        .expect("valid keys");
        let quic = server.ready_field("quic");
        let metrics = server.metrics_addr();
        Channel {
            _dir: dir,
            server,
            config,
            config_text,
            data,
            quic,
            metrics,
            ca: pki.ca(),
            tokens,
        }
    }

    /// A token for `mac` of `vendor` (a new one each call: a fresh nonce and time).
    fn token(&self, vendor: &str, mac: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        self.tokens.seal(vendor, mac, now).expect("sealed")
    }

    /// Registers a demo device over HTTP: `add.aspx` with `label` and `ip`.
    fn add(&self, token: &str, label: &str, ip: &str) {
        let path = format!("/add.aspx?mac={}&dm={label}&myip={ip}", url_encode(token));
        assert_eq!(self.server.reply(&path), format!("10|{label}.dyn.example"));
    }

    /// The server as a device knows it.
    fn server_side(&self) -> ddns_client::Server {
        self.server_at(self.quic)
    }

    /// The server as a device that reaches it at `addr` knows it.
    fn server_at(&self, addr: SocketAddr) -> ddns_client::Server {
        ddns_client::Server {
            addr,
            name: "localhost".into(),
            tls: ddns_client::tls_config(
                ddns_client::roots_from_pem(&self.ca).expect("the test CA"),
            ),
        }
    }

    /// The events in the log, decoded, from its newest segment.
    fn events(&self) -> Vec<EventBody> {
        log_events(&self.data)
    }

    /// The sum of the `/metrics` series whose name and labels start with `prefix`.
    fn metric(&self, prefix: &str) -> u64 {
        metric(self.metrics, prefix)
    }

    fn dig_a(&self, name: &str) -> Vec<String> {
        self.server.dig_short(&[name, "A"])
    }
}

fn log_events(data: &std::path::Path) -> Vec<EventBody> {
    let segment = common::newest_segment(&data.join("log"));
    common::log_frames(&std::fs::read(segment).expect("segment"))
        .iter()
        .map(|frame| decode_event(&frame.payload).expect("an event").body)
        .collect()
}

/// Devices of this process (on a runtime of their own), and their events.
struct Devices {
    runtime: Runtime,
    events: mpsc::UnboundedReceiver<DeviceEvent>,
    sender: mpsc::UnboundedSender<DeviceEvent>,
    seen: Vec<DeviceEvent>,
}

impl Devices {
    fn new() -> Devices {
        let (sender, events) = mpsc::unbounded_channel();
        Devices {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime"),
            events,
            sender,
            seen: Vec::new(),
        }
    }

    /// An endpoint (one UDP socket, with room for a fleet's packets) on `ip`.
    fn endpoint(&self, ip: impl Into<IpAddr>) -> Endpoint {
        let _guard = self.runtime.enter();
        ddns_client::endpoint(SocketAddr::new(ip.into(), 0), 4 << 20).expect("bound")
    }

    fn spawn(
        &self,
        number: usize,
        endpoint: &Endpoint,
        channel: &Channel,
        config: DeviceConfig,
    ) -> Device {
        self.spawn_to(number, endpoint, channel.server_side(), config)
    }

    fn spawn_to(
        &self,
        number: usize,
        endpoint: &Endpoint,
        server: ddns_client::Server,
        config: DeviceConfig,
    ) -> Device {
        let _guard = self.runtime.enter();
        Device::spawn(
            number,
            endpoint.clone(),
            server,
            Arc::new(config),
            self.sender.clone(),
        )
    }

    /// A demo device registered as `label` at 127.0.0.2 over HTTP, then connected over QUIC
    /// as device 0 from a socket of its own there: the socket, the device, its `Connected`.
    fn connect_registered(
        &mut self,
        channel: &Channel,
        mac: &str,
        label: &str,
    ) -> (Endpoint, Device, DeviceEvent) {
        let token = channel.token("demo", mac);
        channel.add(&token, label, "127.0.0.2");
        let endpoint = self.endpoint(IP2);
        let device = self.spawn(
            0,
            &endpoint,
            channel,
            DeviceConfig::new(Credential::Device { token }),
        );
        let connected = self.wait(Duration::from_secs(10), |e| {
            matches!(e.event, Event::Connected(_))
        });
        (endpoint, device, connected)
    }

    /// The next event that `pick` takes, within `within`; panics with the last events seen.
    fn wait(&mut self, within: Duration, pick: impl Fn(&DeviceEvent) -> bool) -> DeviceEvent {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let events = &mut self.events;
            let event = self
                .runtime
                .block_on(async { tokio::time::timeout(left, events.recv()).await });
            match event {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if pick(&event) {
                        return event;
                    }
                }
                _ => panic!(
                    "no such event within {within:?}; the last events: {:#?}",
                    &self.seen[self.seen.len().saturating_sub(20)..]
                ),
            }
        }
    }

    /// Every event so far not yet seen.
    fn drain(&mut self) -> Vec<DeviceEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event.clone());
            out.push(event);
        }
        out
    }

    fn count(&self, pick: impl Fn(&Event) -> bool) -> usize {
        self.seen.iter().filter(|e| pick(&e.event)).count()
    }
}

/// The server started again on the data dir and config of a stopped one, with the channel on
/// the same address (where its devices reconnect).
fn start_again(
    config: &std::path::Path,
    config_text: &str,
    data: &std::path::Path,
    quic: SocketAddr,
) -> Server {
    let config_text = config_text.replace(
        "quic_listen = \"127.0.0.1:0\"",
        &format!("quic_listen = \"{quic}\""),
    );
    std::fs::write(config, config_text).expect("config written");
    Server::start(data, Some(config))
}

/// Binds a new socket on `ip` and moves `endpoint` to it: what a NAT or an ISP does to the
/// device's address.
fn rebind(devices: &Devices, endpoint: &Endpoint, ip: Ipv4Addr) {
    let socket = UdpSocket::bind(SocketAddr::from((ip, 0))).expect("bound");
    let _guard = devices.runtime.enter();
    endpoint.rebind(socket).expect("rebound");
}

fn connected_at(ip: Ipv4Addr) -> impl Fn(&DeviceEvent) -> bool {
    move |event| matches!(&event.event, Event::Connected(Some(record)) if record.v4 == Some(ip))
}

fn pushed(code: &'static str, ip: Ipv4Addr) -> impl Fn(&DeviceEvent) -> bool {
    move |event| match &event.event {
        Event::Pushed(c, Some(record)) => c == code && record.v4 == Some(ip),
        _ => false,
    }
}

/// Waits (at most `within`) until `done` holds, checking every 50 ms; how long it took.
fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[test]
fn a_rebind_to_a_new_ip_moves_the_record_and_a_new_port_does_not() {
    let channel = Channel::start(ROOMY, "");
    let mut devices = Devices::new();
    let (endpoint, _device, connected) =
        devices.connect_registered(&channel, "E0:46:9A:00:00:01", "cam");
    assert_eq!(
        connected.event,
        Event::Connected(Some(Record {
            name: "cam.dyn.example".into(),
            v4: Some(IP2),
            v6: None,
        }))
    );
    let before = channel.events().len();

    // The device's address changes under it: its packets now come from 127.0.0.3.
    rebind(&devices, &endpoint, IP3);
    let took = eventually(Duration::from_secs(5), "DNS answers 127.0.0.3", || {
        channel.dig_a("cam.dyn.example") == ["127.0.0.3"]
    });
    eprintln!("from the rebind to the DNS answer: {took:?}");
    devices.wait(Duration::from_secs(5), pushed("09", IP3));
    let events = channel.events();
    assert_eq!(events.len(), before + 1, "exactly one new event");
    match &events[before] {
        EventBody::DeviceUpdate {
            addr, user_agent, ..
        } => {
            assert_eq!(*addr, IP3);
            assert_eq!(user_agent, "", "the add's User-Agent (none) is kept");
        }
        other => panic!("not an update: {other:?}"),
    }

    // The same IP, another port: a NAT rebinding its mapping, nothing to publish.
    let port_series = "ddns_ingest_quic_address_changes_total{kind=\"port\"}";
    let port_changes = channel.metric(port_series);
    rebind(&devices, &endpoint, IP3);
    eventually(
        Duration::from_secs(5),
        "the server sees the new port",
        || channel.metric(port_series) > port_changes,
    );
    // Longer than a confirmation (1.2 s on loopback), to be sure nothing follows.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        channel.events().len(),
        before + 1,
        "a port change appends nothing"
    );
    assert_eq!(channel.dig_a("cam.dyn.example"), ["127.0.0.3"]);
    let later = devices.drain();
    assert!(
        later
            .iter()
            .all(|e| !matches!(e.event, Event::Pushed(..) | Event::Lost(_))),
        "{later:?}"
    );
    assert_eq!(
        devices.count(|e| matches!(e, Event::Connected(_))),
        1,
        "the connection migrated, it was not replaced"
    );
}

/// The `ddns-client` binary (built by a nested `cargo build`; cargo releases its lock while
/// tests run). Its path.
fn client_binary() -> PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "ddns-client",
            "--bin",
            "ddns-client",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p ddns-client: {status}");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ddnsd")).with_file_name("ddns-client");
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

/// The reference client as firmware runs it: a server given by name, the record printed, the
/// move to the device's own address pushed and printed, SIGINT a clean exit; a credential the
/// protocol cannot carry and a server without an address of the family are clear errors.
#[test]
fn the_ddns_client_binary_connects_by_name_and_prints_what_the_server_pushes() {
    let channel = Channel::start(ROOMY, "");
    let token = channel.token("demo", "E0:46:9A:00:00:07");
    channel.add(&token, "bin", "127.0.0.2");
    let bin = client_binary();
    let server = format!("localhost:{}", channel.quic.port());
    let ca = channel.ca.display().to_string();

    let mut child = std::process::Command::new(&bin)
        .args(["--server", &server, "--ca", &ca, "--token", &token])
        .args(["--bind", "127.0.0.4:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ddns-client starts");
    let (lines, printed) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        printed
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from ddns-client within 10 s")
    };
    // Connected from 127.0.0.4 while the record holds 127.0.0.2: the server moves it at once.
    assert_eq!(next(), "connected: bin.dyn.example A 127.0.0.2");
    assert_eq!(next(), "push 09: bin.dyn.example A 127.0.0.4");
    eventually(Duration::from_secs(5), "DNS answers 127.0.0.4", || {
        channel.dig_a("bin.dyn.example") == ["127.0.0.4"]
    });
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let output = child.wait_with_output().expect("ddns-client exits");
    assert!(output.status.success(), "{:?}", output.status);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(&token),
        "the token is never printed"
    );

    let refused = |args: &[&str], says: &str| {
        let output = std::process::Command::new(&bin)
            .args(["--ca", &ca])
            .args(args)
            .output()
            .expect("ddns-client runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    let long = "t".repeat(256);
    refused(&["--server", &server, "--token", &long], "1 to 255 bytes");
    refused(
        &[
            "--server",
            &channel.quic.to_string(),
            "--ipv6",
            "--token",
            &token,
        ],
        "has no IPv6 address",
    );
    refused(&["--server", "localhost", "--token", &token], "HOST:PORT");
}

/// One connection per address family, side by side; an IPv6 one's address is published only
/// when the device asks (a temporary privacy address must not end up in DNS unasked).
#[test]
fn an_ipv6_address_is_published_only_when_asked_beside_the_ipv4_connection() {
    let channel = Channel::start_listening("[::]:0", ROOMY, "");
    let port = channel.quic.port();
    let over_v4 = channel.server_at(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let over_v6 = channel.server_at(SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
    let mut devices = Devices::new();
    let token = channel.token("demo", "E0:46:9A:00:00:06");
    channel.add(&token, "dual", "127.0.0.2");
    let credential = || Credential::Device {
        token: token.clone(),
    };
    let dual = |v6| Record {
        name: "dual.dyn.example".into(),
        v4: Some(IP2),
        v6,
    };

    let v4_endpoint = devices.endpoint(IP2);
    let _v4 = devices.spawn_to(0, &v4_endpoint, over_v4, DeviceConfig::new(credential()));
    let connected = devices.wait(Duration::from_secs(10), |e| e.device == 0);
    assert_eq!(connected.event, Event::Connected(Some(dual(None))));
    let before = channel.events().len();

    // Over IPv6 without asking: connected, the record untouched.
    let private_endpoint = devices.endpoint(Ipv6Addr::LOCALHOST);
    let _private = devices.spawn_to(
        1,
        &private_endpoint,
        over_v6.clone(),
        DeviceConfig::new(credential()),
    );
    let connected = devices.wait(Duration::from_secs(10), |e| e.device == 1);
    assert_eq!(connected.event, Event::Connected(Some(dual(None))));
    // Longer than a confirmation (1.2 s on loopback), to be sure nothing follows.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        channel.events().len(),
        before,
        "an unasked IPv6 address appends nothing"
    );
    assert_eq!(
        channel.server.dig_short(&["dual.dyn.example", "AAAA"]),
        Vec::<String>::new()
    );

    // Over IPv6, asking: the address is published at once (the handshake validated it); the
    // older IPv6 connection is superseded, the IPv4 one is not.
    let public_endpoint = devices.endpoint(Ipv6Addr::LOCALHOST);
    let _public = devices.spawn_to(
        2,
        &public_endpoint,
        over_v6,
        DeviceConfig {
            publish_v6: true,
            ..DeviceConfig::new(credential())
        },
    );
    let pushed = devices.wait(Duration::from_secs(10), |e| {
        e.device == 2 && matches!(e.event, Event::Pushed(..))
    });
    assert_eq!(
        pushed.event,
        Event::Pushed("09".into(), Some(dual(Some(Ipv6Addr::LOCALHOST))))
    );
    eventually(Duration::from_secs(5), "DNS answers ::1", || {
        channel.server.dig_short(&["dual.dyn.example", "AAAA"]) == ["::1"]
    });
    assert_eq!(channel.dig_a("dual.dyn.example"), ["127.0.0.2"]);
    let events = channel.events();
    assert_eq!(events.len(), before + 1, "exactly one new event");
    assert!(
        matches!(&events[before], EventBody::DeviceUpdate { addr, .. } if *addr == IpAddr::from(Ipv6Addr::LOCALHOST)),
        "{:?}",
        events[before]
    );
    let superseded = |e: &DeviceEvent| {
        e.device == 1 && matches!(&e.event, Event::Stopped(why) if why.contains("newer connection"))
    };
    if !devices.seen.iter().any(superseded) {
        devices.wait(Duration::from_secs(5), superseded);
    }
    std::thread::sleep(Duration::from_millis(500));
    devices.drain();
    assert!(
        !devices.seen.iter().any(|e| e.device == 0
            && matches!(
                e.event,
                Event::Lost(_) | Event::Stopped(_) | Event::Pushed(..)
            )),
        "the IPv4 connection went on untouched: {:#?}",
        devices.seen
    );
}

#[test]
fn a_flood_of_rebinds_is_held_to_the_device_quota() {
    // Three writes at once, then one a minute: the add, and two moves.
    let channel = Channel::start(
        "device_updates_per_minute = 1\ndevice_burst = 3\n\
         source_requests_per_minute = 1000000\nsource_burst = 100000\n",
        "",
    );
    let mut devices = Devices::new();
    let (endpoint, _device, connected) =
        devices.connect_registered(&channel, "E0:46:9A:00:00:02", "flappy");
    assert!(connected_at(IP2)(&connected), "{connected:?}");
    let before = channel.events().len();

    // Ten addresses in two seconds: none holds long enough to be published but the last.
    let flapping: Vec<Ipv4Addr> = (10..20).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    for ip in &flapping {
        rebind(&devices, &endpoint, *ip);
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = *flapping.last().expect("ten");
    devices.wait(Duration::from_secs(5), pushed("09", last));
    assert_eq!(
        channel.events().len(),
        before + 1,
        "only the address that held"
    );

    // One more move: the quota's last write.
    let twenty = Ipv4Addr::new(127, 0, 0, 20);
    rebind(&devices, &endpoint, twenty);
    devices.wait(Duration::from_secs(5), pushed("09", twenty));
    // The quota is spent: the move is refused, the device told, the record stays.
    rebind(&devices, &endpoint, Ipv4Addr::new(127, 0, 0, 21));
    devices.wait(Duration::from_secs(5), pushed("911", twenty));
    assert_eq!(channel.events().len(), before + 2);
    assert_eq!(channel.dig_a("flappy.dyn.example"), ["127.0.0.20"]);
    assert_eq!(
        devices.count(|e| matches!(e, Event::Lost(_))),
        0,
        "the connection survived every rebind: {:?}",
        devices.seen
    );
}

/// A connection of the test's own, to send whatever it likes.
struct Raw {
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl Raw {
    async fn open(endpoint: &Endpoint, channel: &Channel) -> Raw {
        let server = channel.server_side();
        let config = quinn::ClientConfig::new(server.tls.clone());
        let connection = endpoint
            .connect_with(config, server.addr, &server.name)
            .expect("connecting")
            .await
            .expect("connected");
        Raw::on(connection).await
    }

    async fn on(connection: quinn::Connection) -> Raw {
        let (send, recv) = connection.open_bi().await.expect("a stream");
        Raw {
            connection,
            send,
            recv,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.expect("sent");
    }

    /// The next message from the server.
    async fn message(&mut self) -> ServerMessage {
        let mut prefix = [0; 2];
        self.recv.read_exact(&mut prefix).await.expect("a length");
        let len = wire::body_len(prefix).expect("a valid length");
        let mut body = vec![0; len];
        self.recv.read_exact(&mut body).await.expect("a body");
        ServerMessage::decode(&body).expect("a message")
    }

    async fn reply(&mut self) -> (String, Option<Record>) {
        match self.message().await {
            ServerMessage::Reply { code, record } => (code, record),
            push => panic!("not a reply: {push:?}"),
        }
    }

    /// The code and reason the server closed the connection with (within 15 s).
    async fn closed(&self) -> (u32, String) {
        let closed = tokio::time::timeout(Duration::from_secs(15), self.connection.closed());
        match closed.await.expect("closed in time") {
            quinn::ConnectionError::ApplicationClosed(close) => (
                u32::try_from(close.error_code.into_inner()).expect("a small code"),
                String::from_utf8_lossy(&close.reason).into_owned(),
            ),
            other => panic!("not closed by the server's application: {other}"),
        }
    }
}

fn hello(credential: Credential) -> Vec<u8> {
    Request::Hello {
        credential,
        publish_v6: false,
    }
    .encode()
}

#[test]
fn hostile_malformed_and_replayed_messages_get_their_error_and_change_nothing() {
    let channel = Channel::start(ROOMY, "");
    let devices = Devices::new();
    let token = channel.token("demo", "E0:46:9A:00:00:03");
    channel.add(&token, "target", "127.0.0.2");
    // A host of a portal account, for host credentials.
    let admin = |args: &[&str], stdin: &str| {
        let out = common::admin_command(&channel.data, &channel.config, args, stdin);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    admin(
        &["user", "add", "brian01", "--email", "b@x.example"],
        "a long pass phrase\n",
    );
    admin(
        &["host", "add", "nas.brian.dyn.example", "--user", "brian01"],
        "host-pw-1\n",
    );
    let before = channel.events().len();
    let endpoint = devices.endpoint(IP2);
    let device = Credential::Device {
        token: token.clone(),
    };

    devices.runtime.block_on(async {
        // Frames that are not messages: closed with PROTOCOL_ERROR, and why.
        let mut trailing = hello(device.clone());
        trailing[1] += 1;
        trailing.push(0);
        let mut reserved = hello(device.clone());
        reserved[3] = 0x80;
        let update_first = Request::Update(wire::Addr::Observed).encode();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![0, 0], "empty message"),
            (
                "oversized",
                vec![0x02, 0x01],
                "message of 513 bytes (at most 512)",
            ),
            (
                "huge",
                vec![0xff, 0xff, 1, 2, 3],
                "message of 65535 bytes (at most 512)",
            ),
            (
                "unknown type",
                vec![0, 1, 0x7f],
                "unknown message type 0x7f",
            ),
            (
                "the server's type",
                vec![0, 1, 0x81],
                "unknown message type 0x81",
            ),
            (
                "trailing bytes",
                trailing,
                "bytes after the message's last field",
            ),
            ("a reserved flag", reserved, "reserved bits set"),
            (
                "an update first",
                update_first,
                "the first message must be a HELLO",
            ),
            (
                "a space in a token",
                vec![0, 5, 0x01, 0, 2, b'A', b' '],
                "bad text field",
            ),
        ];
        for (case, bytes, reason) in cases {
            eprintln!("case: {case}");
            let mut raw = Raw::open(&endpoint, &channel).await;
            raw.send(&bytes).await;
            assert_eq!(
                raw.closed().await,
                (close::PROTOCOL_ERROR, reason.to_owned()),
                "{case}"
            );
        }

        // Credentials refused: REPLY with the code, closed REFUSED.
        let refusals = [
            (
                "not a token",
                Credential::Device {
                    token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
                },
                "02",
            ),
            (
                "a token of no registered device",
                Credential::Device {
                    token: channel.token("demo", "E0:46:9A:FF:FF:FF"),
                },
                "13",
            ),
            (
                "a wrong host password",
                Credential::Host {
                    host: "nas.brian.dyn.example".into(),
                    secret: "host-pw-2".into(),
                },
                "02",
            ),
            (
                "an unknown host",
                Credential::Host {
                    host: "nope.brian.dyn.example".into(),
                    secret: "host-pw-1".into(),
                },
                "02",
            ),
            (
                "a user ID where a host belongs",
                Credential::Host {
                    host: "brian01".into(),
                    secret: "a long pass phrase".into(),
                },
                "02",
            ),
        ];
        for (case, credential, code) in refusals {
            eprintln!("case: {case}");
            let mut raw = Raw::open(&endpoint, &channel).await;
            raw.send(&hello(credential)).await;
            assert_eq!(raw.reply().await, (code.to_owned(), None), "{case}");
            assert_eq!(
                raw.closed().await,
                (close::REFUSED, code.to_owned()),
                "{case}"
            );
        }

        // A good HELLO, then updates to addresses no record may hold (04), a QUERY (14), and
        // a second HELLO, a replay on the connection: PROTOCOL_ERROR.
        let mut raw = Raw::open(&endpoint, &channel).await;
        raw.send(&hello(device.clone())).await;
        let (code, record) = raw.reply().await;
        assert_eq!(code, "14");
        assert_eq!(record.expect("a record").v4, Some(IP2));
        for bad in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
            let update = Request::Update(wire::Addr::Ip(bad.parse().expect("an address")));
            raw.send(&update.encode()).await;
            assert_eq!(raw.reply().await.0, "04", "{bad}");
        }
        raw.send(&Request::Query.encode()).await;
        assert_eq!(raw.reply().await.0, "14");
        raw.send(&hello(device.clone())).await;
        assert_eq!(
            raw.closed().await,
            (close::PROTOCOL_ERROR, "a second HELLO".to_owned())
        );

        // A HELLO that never completes, a connection that never says HELLO, and a request
        // that never completes: each closed after 10 s. All at once.
        let mut slow = Raw::open(&endpoint, &channel).await;
        slow.send(&[0, 40, 0x01, 0]).await;
        let silent = Raw::open(&endpoint, &channel).await;
        let mut stalled = Raw::open(&endpoint, &channel).await;
        stalled.send(&hello(device.clone())).await;
        assert_eq!(stalled.reply().await.0, "14");
        stalled.send(&[0, 2, 0x03]).await;
        let (slow, silent, stalled) =
            tokio::join!(slow.closed(), silent.closed(), stalled.closed());
        assert_eq!(slow, (close::PROTOCOL_ERROR, "no HELLO in time".to_owned()));
        assert_eq!(
            silent,
            (close::PROTOCOL_ERROR, "no HELLO in time".to_owned())
        );
        assert_eq!(
            stalled,
            (
                close::PROTOCOL_ERROR,
                "message not complete in time".to_owned()
            )
        );

        // A newer connection of the same device takes over from the older one.
        let mut older = Raw::open(&endpoint, &channel).await;
        older.send(&hello(device.clone())).await;
        assert_eq!(older.reply().await.0, "14");
        let mut newer = Raw::open(&endpoint, &channel).await;
        newer.send(&hello(device.clone())).await;
        assert_eq!(newer.reply().await.0, "14");
        assert_eq!(older.closed().await.0, close::SUPERSEDED);
        newer.connection.close(0u32.into(), b"done");

        // A host's own credentials: its record, moved to where it connects from at once.
        let mut host = Raw::open(&endpoint, &channel).await;
        host.send(&hello(Credential::Host {
            host: "nas.brian.dyn.example".into(),
            secret: "host-pw-1".into(),
        }))
        .await;
        let (code, record) = host.reply().await;
        assert_eq!(code, "14");
        assert_eq!(record.expect("a record").v4, None, "no address yet");
        match host.message().await {
            ServerMessage::Push { code, record } => {
                assert_eq!(code, "09");
                assert_eq!(record.expect("a record").v4, Some(IP2));
            }
            other => panic!("{other:?}"),
        }
        // A host is removed on the portal, not by its device.
        host.send(&Request::Remove.encode()).await;
        assert_eq!(host.reply().await.0, "02");
    });
    let events = channel.events();
    assert_eq!(events.len(), before + 1, "only the host's first address");
    assert!(
        matches!(&events[before], EventBody::HostAddressSet { addr, .. } if *addr == IP2),
        "{:?}",
        events[before]
    );
    assert_eq!(channel.dig_a("target.dyn.example"), ["127.0.0.2"]);
    assert_eq!(channel.dig_a("nas.brian.dyn.example"), ["127.0.0.2"]);
}

#[test]
fn replayed_tokens_and_0rtt_are_refused() {
    let channel = Channel::start(ROOMY, "");
    let devices = Devices::new();
    // A vendor whose tokens are single-use: the add takes one, the channel another.
    let mac = "E0:46:9A:00:00:04";
    let path = format!(
        "/add.aspx?mac={}&dm=single&myip=127.0.0.2",
        url_encode(&channel.token("fresh", mac))
    );
    assert_eq!(channel.server.reply(&path), "10|single.fresh.example");
    let token = channel.token("fresh", mac);
    let endpoint = devices.endpoint(IP2);
    // A client that would send 0-RTT data if the server let it.
    let roots = ddns_client::roots_from_pem(&channel.ca).expect("the CA");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("TLS 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![wire::ALPN.to_vec()];
    tls.enable_early_data = true;
    let early =
        Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("a QUIC config"));
    devices.runtime.block_on(async {
        let connect = || {
            endpoint
                .connect_with(
                    quinn::ClientConfig::new(early.clone()),
                    channel.quic,
                    "localhost",
                )
                .expect("connecting")
        };
        let mut first = Raw::on(connect().await.expect("connected")).await;
        first
            .send(&hello(Credential::Device {
                token: token.clone(),
            }))
            .await;
        assert_eq!(first.reply().await.0, "14");
        // The same token on another connection: a replay, refused.
        let mut replay = Raw::open(&endpoint, &channel).await;
        replay
            .send(&hello(Credential::Device {
                token: token.clone(),
            }))
            .await;
        assert_eq!(replay.reply().await, ("02".to_owned(), None));
        // The first connection brought session tickets; they allow no early data.
        assert!(
            connect().into_0rtt().is_err(),
            "the server must not take 0-RTT"
        );
    });
}

/// `DDNSD_QUIC_DEVICES`, or 1,000.
fn fleet_size() -> usize {
    std::env::var("DDNSD_QUIC_DEVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// The server's admitted handshakes, sampled every 100 ms from `/metrics` until `stop`.
fn sample_admissions(metrics: SocketAddr, stop: &AtomicBool) -> Vec<(Instant, u64)> {
    let series = "ddns_ingest_quic_handshakes_total{result=\"admitted\"}";
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let (status, text) = http_get(metrics, "/metrics", &[]);
        assert_eq!(status, 200);
        let admitted = text
            .lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit_once(' '))
            .map_or(0, |(_, value)| {
                value.parse::<f64>().expect("a number") as u64
            });
        samples.push((Instant::now(), admitted));
        std::thread::sleep(Duration::from_millis(100));
    }
    samples
}

/// The most admissions between two samples at most `window` apart.
fn densest(samples: &[(Instant, u64)], window: Duration) -> u64 {
    let mut most = 0;
    for (i, (start, before)) in samples.iter().enumerate() {
        for (end, after) in &samples[i + 1..] {
            if *end - *start > window {
                break;
            }
            most = most.max(after - before);
        }
    }
    most
}

/// One address opening connections as fast as it can is held to its own request quota (once
/// the budget is contended, after a Retry has shown the address is its own), so the fleet's
/// handshake budget stays the fleet's.
#[test]
fn one_source_cannot_take_the_handshake_budget_from_the_fleet() {
    const SOURCE_PER_MINUTE: u64 = 60;
    // Room for the fleet's twenty HTTP adds, which all come from 127.0.0.1.
    const SOURCE_BURST: u64 = 30;
    const FLOOD: Duration = Duration::from_secs(6);
    const FLEET: usize = 20;
    let channel = Channel::start(
        &format!(
            "device_updates_per_minute = 1000000\ndevice_burst = 100000\n\
             source_requests_per_minute = {SOURCE_PER_MINUTE}\nsource_burst = {SOURCE_BURST}\n"
        ),
        "handshakes_per_second = 20",
    );
    let tokens: Vec<String> = (0..FLEET)
        .map(|i| {
            let token = channel.token("demo", &format!("02:00:00:00:01:{i:02X}"));
            // Each from its own address, as a fleet is: the HTTP adds are charged there too.
            channel.add(&token, &format!("f{i}"), &format!("127.0.1.{}", i + 1));
            token
        })
        .collect();
    let mut devices = Devices::new();

    // The flood: 16 attempts at a time from 127.0.0.9, each closed as soon as it is admitted.
    let server = channel.server_side();
    let attacker = devices.endpoint(Ipv4Addr::new(127, 0, 0, 9));
    let flood = {
        let attacker = attacker.clone();
        devices.runtime.spawn(async move {
            let admitted = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let attempts = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let until = tokio::time::Instant::now() + FLOOD;
            let workers: Vec<_> = (0..16)
                .map(|_| {
                    let (attacker, server) = (attacker.clone(), server.clone());
                    let (admitted, attempts) = (admitted.clone(), attempts.clone());
                    tokio::spawn(async move {
                        while tokio::time::Instant::now() < until {
                            attempts.fetch_add(1, Ordering::Relaxed);
                            let config = quinn::ClientConfig::new(server.tls.clone());
                            let connecting = attacker
                                .connect_with(config, server.addr, &server.name)
                                .expect("connecting");
                            if let Ok(connection) = connecting.await {
                                admitted.fetch_add(1, Ordering::Relaxed);
                                connection.close(0u32.into(), b"");
                            }
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.await.expect("a flood worker");
            }
            (
                attempts.load(Ordering::Relaxed),
                admitted.load(Ordering::Relaxed),
            )
        })
    };

    // A second into the flood, the fleet comes online, each device from its own address.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let endpoints: Vec<Endpoint> = (0..FLEET)
        .map(|i| devices.endpoint(Ipv4Addr::new(127, 0, 1, i as u8 + 1)))
        .collect();
    let _fleet: Vec<Device> = tokens
        .iter()
        .zip(&endpoints)
        .enumerate()
        .map(|(i, (token, endpoint))| {
            let config = DeviceConfig {
                backoff: Backoff {
                    initial: Duration::from_millis(250),
                    max: Duration::from_secs(2),
                },
                ..DeviceConfig::new(Credential::Device {
                    token: token.clone(),
                })
            };
            devices.spawn(i, endpoint, &channel, config)
        })
        .collect();
    let mut connected = HashSet::new();
    while connected.len() < FLEET {
        let left = Duration::from_secs(5).saturating_sub(started.elapsed());
        let event = devices.wait(left, |e| matches!(e.event, Event::Connected(_)));
        connected.insert(event.device);
    }
    eprintln!(
        "{FLEET} devices connected during the flood in {:?}",
        started.elapsed()
    );
    let (attempts, admitted) = devices.runtime.block_on(flood).expect("the flood");
    let refused = channel.metric("ddns_ingest_quic_handshakes_total{result=\"source\"}");
    let retried = channel.metric("ddns_ingest_quic_handshakes_total{result=\"retry\"}");
    eprintln!(
        "flood: {attempts} attempts, {admitted} admitted, {refused} refused for the source's quota, {retried} Retries in all"
    );
    // The source's quota: its burst and a second's worth per minute of flood, one refill of
    // slack; and between pressure windows (2 s after the last refusal for the budget), when
    // attempts are not charged before the handshake, the budget's burst (2) and a refill each.
    let bound = SOURCE_BURST + SOURCE_PER_MINUTE * (FLOOD.as_secs() + 1) / 60 + 1 + 3 * 4;
    assert!(
        admitted <= bound,
        "{admitted} of the flood's handshakes admitted, over the source's quota of {bound}"
    );
    assert!(
        attempts > 2 * bound,
        "the flood was a flood: {attempts} attempts"
    );
    assert!(
        refused > 0 && retried > 0,
        "the flood met Retries and its quota"
    );
}

#[test]
fn every_device_reconnects_after_a_restart_at_the_admission_rate() {
    // Below what a debug build on two shared cores handshakes per second (about 70, client
    // and server together), so that the limit, not the CPU, is what spreads the fleet.
    const RATE: u64 = 50;
    const BURST: u64 = 5;
    let n = fleet_size();
    let channel = Channel::start(ROOMY, &format!("handshakes_per_second = {RATE}"));
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            channel.token(
                "demo",
                &format!("02:00:00:00:{:02X}:{:02X}", i / 256, i % 256),
            )
        })
        .collect();
    // Registered over HTTP, eight at a time (their appends share fsyncs).
    let http = channel.server.http;
    std::thread::scope(|scope| {
        for (part, chunk) in tokens.chunks(n.div_ceil(8)).enumerate() {
            scope.spawn(move || {
                for (i, token) in chunk.iter().enumerate() {
                    let path = format!(
                        "/add.aspx?mac={}&dm=d{part}x{i}&myip=127.0.0.2",
                        url_encode(token)
                    );
                    let (status, body) = http_get(http, &path, &[]);
                    assert!(status == 200 && body.starts_with("10|"), "{body}");
                }
            });
        }
    });
    let events_before = channel.events().len();

    let mut devices = Devices::new();
    let endpoint = devices.endpoint(IP2);
    let fleet: Vec<Device> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let config = DeviceConfig {
                backoff: Backoff {
                    initial: Duration::from_secs(1),
                    max: Duration::from_secs(8),
                },
                ..DeviceConfig::new(Credential::Device {
                    token: token.clone(),
                })
            };
            devices.spawn(i, &endpoint, &channel, config)
        })
        .collect();
    // Waits until every device connected (again), sampling the server's admissions meanwhile.
    let connect_all = |devices: &mut Devices, metrics: SocketAddr, within: Duration| {
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let sampler = scope.spawn(|| sample_admissions(metrics, &stop));
            let mut connected = HashSet::new();
            let deadline = Instant::now() + within;
            while connected.len() < n {
                let left = deadline.saturating_duration_since(Instant::now());
                let event = devices.wait(left, |e| matches!(e.event, Event::Connected(_)));
                let Event::Connected(Some(record)) = &event.event else {
                    panic!("{event:?}");
                };
                assert_eq!(record.v4, Some(IP2), "{record:?}");
                connected.insert(event.device);
            }
            stop.store(true, Ordering::Relaxed);
            sampler.join().expect("the sampler")
        })
    };
    let started = Instant::now();
    let first = connect_all(&mut devices, channel.metrics, Duration::from_secs(120));
    let first_took = started.elapsed();

    // A graceful restart on the same address: the devices hear the close and come back.
    let Channel {
        server,
        config,
        config_text,
        data,
        quic,
        _dir,
        ..
    } = channel;
    let mut server = server;
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    let restart_at = Instant::now();
    eventually(Duration::from_secs(30), "the server stops", || {
        server
            .drain_log()
            .iter()
            .any(|l| l.contains("ddnsd stopped"))
    });
    drop(server);
    let server = start_again(&config, &config_text, &data, quic);
    let up_after = restart_at.elapsed();
    assert_eq!(server.ready_field("quic"), quic);
    let again = connect_all(
        &mut devices,
        server.metrics_addr(),
        Duration::from_secs(180),
    );
    let again_took = restart_at.elapsed();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for event in &devices.seen {
        if let Event::Lost(error) = &event.event {
            *reasons.entry(error.clone()).or_default() += 1;
        }
    }
    let one_second = Duration::from_secs(1);
    let (densest_first, densest_again) = (densest(&first, one_second), densest(&again, one_second));
    let admitted_again = again.last().map_or(0, |(_, n)| *n);
    eprintln!(
        "{n} devices at {RATE} handshakes/s (burst {BURST}): all connected in {first_took:.1?} \
         (most admitted in a second: {densest_first}); restarted, the server was up again \
         after {up_after:.1?} and every device back after {again_took:.1?} (most admitted in a \
         second: {densest_again}, {admitted_again} admitted in all); failed attempts by \
         reason: {reasons:?}"
    );
    // Admissions in any second: at most a burst and a second's rate (a tenth more for the
    // sampling's own jitter).
    let bound = ((BURST + RATE) as f64 * 1.1) as u64;
    assert!(densest_first <= bound, "{densest_first} > {bound}");
    assert!(densest_again <= bound, "{densest_again} > {bound}");
    // None lost: every device came back, from where it was, and nothing was appended.
    let back: HashSet<usize> = devices
        .seen
        .iter()
        .filter(|e| e.at >= restart_at && matches!(e.event, Event::Connected(_)))
        .map(|e| e.device)
        .collect();
    assert_eq!(back.len(), n, "none lost");
    assert_eq!(log_events(&data).len(), events_before);
    drop(fleet);
    drop(server);
}

#[test]
fn after_a_crash_devices_learn_of_it_from_a_stateless_reset() {
    const N: usize = 20;
    let channel = Channel::start(ROOMY, "");
    let mut devices = Devices::new();
    let endpoint = devices.endpoint(IP2);
    let fleet: Vec<Device> = (0..N)
        .map(|i| {
            let token = channel.token("demo", &format!("04:00:00:00:00:{i:02X}"));
            channel.add(&token, &format!("crash{i}"), "127.0.0.2");
            let config = DeviceConfig {
                // Keep-alives every 1-2 s (15-25 s in the field): the crash is noticed at the
                // next one, far sooner than the 60 s idle timeout.
                keep_alive: Duration::from_secs(1)..=Duration::from_secs(2),
                backoff: Backoff {
                    initial: Duration::from_millis(500),
                    max: Duration::from_secs(2),
                },
                ..DeviceConfig::new(Credential::Device { token })
            };
            devices.spawn(i, &endpoint, &channel, config)
        })
        .collect();
    for _ in 0..N {
        devices.wait(Duration::from_secs(30), connected_at(IP2));
    }
    let Channel {
        server,
        config,
        config_text,
        data,
        quic,
        _dir,
        ..
    } = channel;
    // No close reaches the devices: their connections just stop being answered.
    server.kill9();
    let crashed_at = Instant::now();
    let server = start_again(&config, &config_text, &data, quic);
    let mut back = HashSet::new();
    while back.len() < N {
        let event = devices.wait(Duration::from_secs(20), connected_at(IP2));
        back.insert(event.device);
    }
    let took = crashed_at.elapsed();
    let resets =
        devices.count(|e| matches!(e, Event::Lost(error) if error.contains("reset by peer")));
    eprintln!("{N} devices back {took:.1?} after a kill -9; {resets} learned of it by a reset");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(resets, N, "{:?}", devices.seen);
    drop(fleet);
    drop(server);
}

#[test]
fn the_channel_is_off_by_default_and_refused_without_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), None);
    let ready = server
        .log
        .iter()
        .find(|l| l.contains("ddnsd ready:"))
        .expect("a ready line");
    assert!(!ready.contains(" quic="), "{ready}");
    drop(server);
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--quic-listen", "127.0.0.1:0"])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
        ])
        .args(["--portal-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data2"))
        .env_remove("DDNSD_CONFIG")
        .output()
        .expect("ddnsd runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {stderr}");
    assert!(
        stderr.contains("quic_listen = 127.0.0.1:0 needs [tls]"),
        "{stderr}"
    );
}
