//! The reference device client in C (`ingest/device/ddns_client.c`) against the real binary.
//!
//! The client is compiled with `cc` (like `ingest/tests/device_c.rs` compiles the sealer) and
//! run in its test mode, where every wait is in milliseconds. Its requests go through a tiny
//! NAT in the test: a proxy that tells the server (a trusted proxy) the device's WAN address in
//! `X-Forwarded-For` and records every request, so the test can change the WAN address while
//! the client runs. What happened is asserted through the server: its metrics, its DNS
//! answers, and the requests the NAT forwarded. Over HTTPS the client connects directly, with
//! `--bind` choosing its source address (any 127.0.0.0/8 address works on loopback).
//!
//! Needs a C compiler, libcurl's and OpenSSL's headers (`libcurl4-openssl-dev`, `libssl-dev`)
//! and `openssl`: without them the tests fail, they never skip.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Pki, Server, metric, write_config};

const KEY_ID: u16 = 7;
const KEY_HEX: &str = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100";
const MAC: &str = "E0:46:9A:B8:1B:FC";
const FQDN: &str = "cam7.dyn.example";
/// The longest a client or a condition is waited for.
const DEADLINE: Duration = Duration::from_secs(30);

/// A vendor that requires fresh tokens (each accepted once), so a client that reused a token
/// would be answered `02`; and the NAT trusted for `X-Forwarded-For`.
fn config(dir: &Path, extra_top: &str, flood: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "metrics_listen = \"127.0.0.1:0\"\n{extra_top}\n\
             [[vendors]]\nname = \"acme\"\nzone = \"dyn.example\"\n\
             keys = [{{ id = {KEY_ID}, secret_hex = \"{KEY_HEX}\" }}]\nmax_age_secs = 300\n\
             [ingest]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
             [ingest.flood]\nsource_requests_per_minute = 1000000\nsource_burst = 100000\n{flood}"
        ),
    )
}

/// Compiles the client with the flags it promises to be clean under.
fn build_client(dir: &Path) -> PathBuf {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/device");
    let bin = dir.join("ddns_client");
    let out = Command::new(&cc)
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-O2",
        ])
        .arg(src.join("ddns_client.c"))
        .arg(src.join("ddns_token.c"))
        .arg("-o")
        .arg(&bin)
        .args(["-lcurl", "-lcrypto"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(
        out.status.success(),
        "compiling ddns_client.c failed (libcurl4-openssl-dev, libssl-dev?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// A running client; its stderr goes to a file.
struct Client {
    child: Child,
    log: PathBuf,
}

impl Client {
    fn start(bin: &Path, dir: &Path, name: &str, args: &[&str]) -> Client {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(bin)
            .args(args)
            .args(["--test", "--mac", MAC])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the client starts");
        Client { child, log }
    }

    /// Waits for the client to exit (it must, before the deadline); its status and log.
    fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(&self.log).expect("client log");
                return (status, log);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the client did not stop:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, which the client takes as "stop after this step", then [`Client::finish`].
    fn stop(self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.finish()
    }
}

/// Runs the client to its end (`--max-polls`).
fn run(bin: &Path, dir: &Path, name: &str, args: &[&str]) -> (ExitStatus, String) {
    Client::start(bin, dir, name, args).finish()
}

/// A request the NAT forwarded: its path (without the query) and the WAN address it claimed.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    wan: String,
    at: Instant,
}

#[derive(Default)]
struct NatState {
    wan: String,
    seen: Vec<Seen>,
}

/// A NAT in front of the server: each request is forwarded, one per connection, with
/// `X-Forwarded-For: <the WAN address>` (the server trusts 127.0.0.1 as a proxy).
struct Nat {
    addr: SocketAddr,
    state: Arc<Mutex<NatState>>,
}

impl Nat {
    fn start(upstream: SocketAddr, wan: &str) -> Nat {
        let listener = TcpListener::bind("127.0.0.1:0").expect("NAT binds");
        let addr = listener.local_addr().expect("bound");
        let state = Arc::new(Mutex::new(NatState {
            wan: wan.to_owned(),
            seen: Vec::new(),
        }));
        let shared = state.clone();
        // Detached: it ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                forward(stream, upstream, &shared);
            }
        });
        Nat { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_wan(&self, wan: &str) {
        self.state.lock().expect("NAT state").wan = wan.to_owned();
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("NAT state").seen.clone()
    }

    /// Requests to `path` after the first `from`.
    fn count(&self, from: usize, path: &str) -> usize {
        self.seen()[from..]
            .iter()
            .filter(|s| s.path == path)
            .count()
    }
}

fn forward(mut client: TcpStream, upstream: SocketAddr, state: &Mutex<NatState>) {
    let timeout = Some(Duration::from_secs(10));
    client.set_read_timeout(timeout).expect("timeout");
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        assert!(head.len() < 16 * 1024, "a device request head is small");
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let wan = {
        let mut state = state.lock().expect("NAT state");
        let wan = state.wan.clone();
        state.seen.push(Seen {
            path,
            wan: wan.clone(),
            at: Instant::now(),
        });
        wan
    };
    let mut request = format!("{request_line}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name != "connection" && name != "x-forwarded-for" {
            request.push_str(line);
            request.push_str("\r\n");
        }
    }
    request.push_str(&format!(
        "X-Forwarded-For: {wan}\r\nConnection: close\r\n\r\n"
    ));
    let mut server = TcpStream::connect(upstream).expect("the server accepts");
    server.set_read_timeout(timeout).expect("timeout");
    server.write_all(request.as_bytes()).expect("forwarded");
    let mut response = Vec::new();
    server
        .read_to_end(&mut response)
        .expect("the server answers");
    let _ = client.write_all(&response);
}

/// Device API replies for `path` (`update`, `add`, `ipdetect`), optionally with one `code`.
fn replies(metrics: SocketAddr, path: &str, code: Option<&str>) -> u64 {
    let prefix = match code {
        Some(code) => format!("ddns_ingest_replies_total{{path=\"{path}\",code=\"{code}\"}}"),
        None => format!("ddns_ingest_replies_total{{path=\"{path}\","),
    };
    metric(metrics, &prefix)
}

/// Waits (at most [`DEADLINE`]) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn state_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn lines_with<'a>(log: &'a str, text: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(text)).collect()
}

const DETECT: &str = "/ipdetect.aspx";
const UPDATE: &str = "/update.aspx";
const ADD: &str = "/add.aspx";

#[test]
fn c_client_updates_on_boot_then_only_when_the_address_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = build_client(dir.path());
    let config = config(dir.path(), "", "");
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let metrics = server.metrics_addr();
    let nat = Nat::start(server.http, "203.0.113.10");
    let key_file = dir.path().join("acme.key");
    std::fs::write(&key_file, format!("{KEY_ID} {KEY_HEX}\n")).expect("key file");
    let state = dir.path().join("state");
    let (url, key, state_arg) = (
        nat.url(),
        key_file.to_str().expect("utf-8"),
        state.to_str().expect("utf-8"),
    );
    let base = [
        "--server",
        url.as_str(),
        "--key-file",
        key,
        "--state",
        state_arg,
        "--label",
        "cam7",
    ];

    // First boot, no state: one add, then polls that send nothing.
    let (status, log) = run(
        &bin,
        dir.path(),
        "first",
        &[&base[..], &["--interval", "50", "--max-polls", "5"]].concat(),
    );
    assert!(status.success(), "{log}");
    let paths: Vec<String> = nat.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [DETECT, ADD, DETECT, DETECT, DETECT, DETECT],
        "{log}"
    );
    assert_eq!(replies(metrics, "add", Some("10")), 1);
    assert_eq!(replies(metrics, "update", None), 0);
    assert_eq!(replies(metrics, "ipdetect", None), 5);
    assert_eq!(server.dig_short(&[FQDN, "A"]), ["203.0.113.10"]);
    assert_eq!(state_of(&state), "203.0.113.10");

    // A restart with the same address: the boot update (08), then nothing but polls.
    let from = nat.seen().len();
    let (status, log) = run(
        &bin,
        dir.path(),
        "second",
        &[&base[..], &["--interval", "50", "--max-polls", "5"]].concat(),
    );
    assert!(status.success(), "{log}");
    assert_eq!(nat.count(from, UPDATE), 1, "{log}");
    assert_eq!(nat.count(from, DETECT), 5, "{log}");
    assert_eq!(replies(metrics, "update", Some("08")), 1);
    assert_eq!(replies(metrics, "add", None), 1);
    assert_eq!(lines_with(&log, "(boot) -> 08").len(), 1, "{log}");

    // The WAN address changes while it runs: exactly one update, at the first poll after.
    let from = nat.seen().len();
    let client = Client::start(
        &bin,
        dir.path(),
        "third",
        &[&base[..], &["--interval", "50", "--max-polls", "400"]].concat(),
    );
    wait_until("the boot update and two polls", || {
        nat.count(from, UPDATE) == 1 && nat.count(from, DETECT) >= 3
    });
    let changed = nat.seen().len();
    nat.set_wan("203.0.113.11");
    wait_until("the update and three polls after it", || {
        let after = &nat.seen()[changed..];
        after
            .iter()
            .position(|s| s.path == UPDATE)
            .is_some_and(|i| after[i..].iter().filter(|s| s.path == DETECT).count() >= 3)
    });
    let (status, log) = client.stop();
    assert!(status.success(), "{log}");
    let after: Vec<Seen> = nat.seen()[changed..].to_vec();
    assert_eq!(after[0].path, DETECT, "{after:?}");
    assert_eq!(
        (after[1].path.as_str(), after[1].wan.as_str()),
        (UPDATE, "203.0.113.11")
    );
    assert!(after[2..].iter().all(|s| s.path == DETECT), "{after:?}");
    assert_eq!(nat.count(from, UPDATE), 2, "boot and change only:\n{log}");
    assert_eq!(replies(metrics, "update", Some("09")), 1);
    assert_eq!(replies(metrics, "update", Some("08")), 2);
    assert_eq!(
        replies(metrics, "update", None),
        3,
        "no 02: every token was fresh"
    );
    assert_eq!(lines_with(&log, "(changed) -> 09").len(), 1, "{log}");
    assert_eq!(server.dig_short(&[FQDN, "A"]), ["203.0.113.11"]);
    assert_eq!(state_of(&state), "203.0.113.11");
}

#[test]
fn c_client_backs_off_exponentially_on_flood() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = build_client(dir.path());
    // One write per device per minute: the registration spends it, the next update is 911.
    let config = config(
        dir.path(),
        "",
        "device_updates_per_minute = 1\ndevice_burst = 1\n",
    );
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let metrics = server.metrics_addr();
    let nat = Nat::start(server.http, "203.0.113.20");
    let state = dir.path().join("state");
    let (url, key_id, state_arg) = (
        nat.url(),
        KEY_ID.to_string(),
        state.to_str().expect("utf-8"),
    );
    let client = Client::start(
        &bin,
        dir.path(),
        "flooded",
        &[
            "--server",
            &url,
            "--key-id",
            &key_id,
            "--key",
            KEY_HEX,
            "--state",
            state_arg,
            "--label",
            "cam7",
            "--interval",
            "100",
            "--max-polls",
            "200",
        ],
    );
    wait_until("the registration", || state_of(&state) == "203.0.113.20");
    nat.set_wan("203.0.113.21");
    let client_log = client.log.clone();
    wait_until("four refused updates", || {
        let log = std::fs::read_to_string(&client_log).unwrap_or_default();
        lines_with(&log, "backing off").len() >= 4
    });
    let (status, log) = client.stop();
    assert!(!status.success(), "it stopped out of sync:\n{log}");

    // Every update after the registration was 911, and each came after one poll only: the
    // client polls nothing while it backs off.
    let updates = nat.count(0, UPDATE) as u64;
    assert_eq!(replies(metrics, "update", Some("911")), updates, "{log}");
    assert_eq!(replies(metrics, "update", None), updates);
    let seen = nat.seen();
    let changed = seen
        .iter()
        .position(|s| s.wan == "203.0.113.21")
        .expect("a request after the change");
    let pairs: Vec<&str> = seen[changed..].iter().map(|s| s.path.as_str()).collect();
    for (i, pair) in pairs.chunks(2).enumerate() {
        if pair.len() == 2 {
            assert_eq!(pair, [DETECT, UPDATE], "request pair {i}: {pairs:?}");
        }
    }

    // The waits double (within [d/2, d] for d = 100 ms · 2^n): the server sees the gaps grow.
    let waits: Vec<u64> = lines_with(&log, "backing off")
        .iter()
        .map(|l| {
            l.split("backing off ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a wait in {l}"))
        })
        .collect();
    assert_eq!(waits.len() as u64, updates, "{log}");
    assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
    assert!(waits[0] >= 100 && waits[2] >= 2 * waits[0], "{waits:?}");
    let update_times: Vec<Instant> = seen
        .iter()
        .filter(|s| s.path == UPDATE)
        .map(|s| s.at)
        .collect();
    for (n, gap) in update_times.windows(2).enumerate() {
        let floor = Duration::from_millis(100 << n);
        assert!(gap[1] - gap[0] >= floor, "gap {n}: {:?}", gap[1] - gap[0]);
    }

    // Nothing unacknowledged was stored, and DNS still has the registered address.
    assert_eq!(state_of(&state), "203.0.113.20");
    assert_eq!(server.dig_short(&[FQDN, "A"]), ["203.0.113.20"]);

    // A wrong key is refused (02), and refusals back off the same way.
    let wrong_key = KEY_HEX.replace('f', "e");
    let other_state = dir.path().join("other-state");
    let (status, log) = run(
        &bin,
        dir.path(),
        "wrong-key",
        &[
            "--server",
            &url,
            "--key-id",
            &key_id,
            "--key",
            &wrong_key,
            "--state",
            other_state.to_str().expect("utf-8"),
            "--label",
            "other",
            "--interval",
            "20",
            "--max-polls",
            "3",
        ],
    );
    assert!(!status.success(), "{log}");
    assert_eq!(replies(metrics, "add", Some("02")), 3, "{log}");
    let refusals = lines_with(&log, "refused (check the key, MAC, label): backing off");
    assert_eq!(refusals.len(), 3, "{log}");
    assert!(!other_state.exists());
}

#[test]
fn c_client_over_https_checks_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = build_client(dir.path());
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.issue("tls", 1);
    let ca = pki.ca();
    let config = config(
        dir.path(),
        &format!(
            "https_listen = \"127.0.0.1:0\"\n[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ),
        "",
    );
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let metrics = server.metrics_addr();
    let url = format!("https://{}", server.ready_field("https"));
    let state = dir.path().join("state");
    let (key_id, ca, state_arg) = (
        KEY_ID.to_string(),
        ca.to_str().expect("utf-8"),
        state.to_str().expect("utf-8"),
    );
    let base = [
        "--server",
        url.as_str(),
        "--key-id",
        &key_id,
        "--key",
        KEY_HEX,
        "--state",
        state_arg,
        "--label",
        "cam7",
        "--interval",
        "50",
    ];

    // Without the private CA the client stops at the certificate: nothing reaches the API.
    let (status, log) = run(
        &bin,
        dir.path(),
        "untrusted",
        &[&base[..], &["--bind", "127.0.0.2", "--max-polls", "2"]].concat(),
    );
    assert!(!status.success(), "{log}");
    assert_eq!(lines_with(&log, "network error").len(), 2, "{log}");
    assert_eq!(replies(metrics, "ipdetect", None), 0);
    assert_eq!(replies(metrics, "add", None), 0);
    assert!(!state.exists());

    // With it: registration on boot, polls that send nothing.
    let (status, log) = run(
        &bin,
        dir.path(),
        "https-first",
        &[
            &base[..],
            &["--cacert", ca, "--bind", "127.0.0.2", "--max-polls", "4"],
        ]
        .concat(),
    );
    assert!(status.success(), "{log}");
    assert_eq!(replies(metrics, "add", Some("10")), 1);
    assert_eq!(replies(metrics, "update", None), 0);
    assert_eq!(replies(metrics, "ipdetect", None), 4);
    assert_eq!(server.dig_short(&[FQDN, "A"]), ["127.0.0.2"]);

    // From another source address (a new WAN address after a reboot): one update, 09.
    let (status, log) = run(
        &bin,
        dir.path(),
        "https-moved",
        &[
            &base[..],
            &["--cacert", ca, "--bind", "127.0.0.3", "--max-polls", "4"],
        ]
        .concat(),
    );
    assert!(status.success(), "{log}");
    assert_eq!(replies(metrics, "update", Some("09")), 1);
    assert_eq!(replies(metrics, "update", None), 1);
    assert_eq!(replies(metrics, "ipdetect", None), 8);
    assert_eq!(server.dig_short(&[FQDN, "A"]), ["127.0.0.3"]);
    assert_eq!(state_of(&state), "127.0.0.3");
}
