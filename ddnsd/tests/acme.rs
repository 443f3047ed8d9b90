//! ACME DNS-01 with the real ACME stack from Debian: `pebble` (Let's Encrypt's test CA, told to
//! resolve through ddnsd's DNS) and `lego` with its `httpreq` provider obtain a certificate for
//! a host and its wildcard; afterwards `dig TXT` shows nothing left behind. Then the time from a
//! `present` reply to DNS answering the value is measured over many rounds (and the value must
//! be answered by the very first query after the reply).
//!
//! Needs `pebble`, `lego`, `openssl` and `dig` (`scripts/setup.sh --tests`): without them the
//! test fails, it never skips.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const USER: &str = "brian01";
const PASSWORD: &str = "a long pass phrase";
const HOST: &str = "cam.brian01.dyn.example";
const CHALLENGE: &str = "_acme-challenge.cam.brian01.dyn.example";
/// Rounds of the present → answer measurement.
const ROUNDS: usize = 200;

/// A pebble process, killed when dropped.
struct Pebble {
    child: Child,
    directory: String,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback TCP port (free when asked: pebble may lose it to a race, then it is retried).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("address").port()
}

/// Starts pebble with its TLS certificate from the test PKI, resolving through `dns`, and
/// waits until it listens.
fn start_pebble(dir: &Path, pki: &Pki, dns: SocketAddr) -> Pebble {
    let (cert, key) = pki.issue("pebble", 2);
    for _ in 0..3 {
        let [listen, management, http, tls] = [(); 4].map(|()| free_port());
        let config = dir.join("pebble.json");
        let text = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(&config, text.to_string()).expect("written");
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &dns.to_string()])
            // No random sleeps before validating; no nonces refused at random (a test of the
            // client's retries, not of ours).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble runs (apt-get install pebble)");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let listening = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("ACME directory available at"));
        if listening {
            // Keep reading its log so it never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Pebble {
                child,
                directory: format!("https://127.0.0.1:{listen}/dir"),
            };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("pebble did not start");
}

/// A TXT query for `name` (id `id`, no EDNS), as a resolver sends it.
fn txt_query(id: u16, name: &str) -> Vec<u8> {
    let mut query = id.to_be_bytes().to_vec();
    query.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 16, 0, 1]);
    query
}

/// True if the reply to `id` has an answer whose data holds `value`.
fn answers_value(reply: &[u8], id: u16, value: &str) -> bool {
    reply.len() > 12
        && reply[..2] == id.to_be_bytes()
        && u16::from_be_bytes([reply[6], reply[7]]) > 0
        && reply.windows(value.len()).any(|w| w == value.as_bytes())
}

#[test]
fn lego_gets_a_certificate_through_httpreq_and_pebble_validates_with_our_dns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!("metrics_listen = \"127.0.0.1:0\"\n{ROOMY_QUOTAS}"),
    );
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(&config));
    let admin = |args: &[&str], stdin: &str| {
        let out = admin_command(&data, &config, args, stdin);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    admin(
        &["user", "add", USER, "--email", "b@x.example"],
        &format!("{PASSWORD}\n"),
    );
    admin(&["host", "add", HOST, "--user", USER], "host-pw\n");

    let pki = Pki::new(dir.path());
    let pebble = start_pebble(dir.path(), &pki, server.dns);

    // A certificate for the host and its wildcard: two challenge values at once.
    let started = Instant::now();
    let output = Command::new("lego")
        .args(["--server", &pebble.directory])
        .args(["--email", "b@x.example", "--accept-tos"])
        .arg("--path")
        .arg(dir.path().join("lego"))
        .args(["--domains", HOST, "--domains", &format!("*.{HOST}")])
        .args(["--dns", "httpreq"])
        // lego's own propagation check asks the zone's NS names on port 53; pebble's
        // validation is the check that matters here, and it asks ddnsd.
        .arg("--dns.disable-cp")
        .args(["--dns.resolvers", &server.dns.to_string()])
        .arg("run")
        .env("LEGO_CA_CERTIFICATES", pki.ca())
        .env("HTTPREQ_ENDPOINT", format!("http://{}", server.http))
        .env("HTTPREQ_USERNAME", USER)
        .env("HTTPREQ_PASSWORD", PASSWORD)
        .env("HTTPREQ_POLLING_INTERVAL", "1")
        .env("HTTPREQ_PROPAGATION_TIMEOUT", "30")
        .stdin(Stdio::null())
        .output()
        .expect("lego runs (apt-get install lego)");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "lego failed:\n{log}");
    assert_eq!(
        log.matches("The server validated our request").count(),
        2,
        "pebble validated both names through our DNS:\n{log}"
    );
    eprintln!("lego obtained the certificate in {:?}", started.elapsed());
    let cert = dir.path().join(format!("lego/certificates/{HOST}.crt"));
    let names = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl runs");
    let names = String::from_utf8_lossy(&names.stdout);
    assert!(
        names.contains(&format!("DNS:{HOST}")) && names.contains(&format!("DNS:*.{HOST}")),
        "{names}"
    );
    drop(pebble);

    // lego cleaned up: nothing is left behind.
    let after = server.dig(&["TXT", CHALLENGE]);
    assert_eq!(status(&after), "NXDOMAIN", "{after}");

    // The time from a present reply to DNS answering the value, which must be answered by the
    // first query sent after the reply. (lego sent Basic auth; these send the credentials as
    // URL parameters, the other way the device listener takes them.)
    let credentials = format!("user={USER}&pass={}", url_encode(PASSWORD));
    let (present, cleanup) = (
        format!("/present?{credentials}"),
        format!("/cleanup?{credentials}"),
    );
    let headers = [("content-type", "application/json")];
    let socket = UdpSocket::bind("127.0.0.1:0").expect("binds");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut waits = Vec::with_capacity(ROUNDS);
    let mut buf = [0u8; 1500];
    for round in 0..ROUNDS {
        let value = format!("round-{round}-value");
        let body = serde_json::json!({ "fqdn": format!("{CHALLENGE}."), "value": value });
        let (status, reply) =
            http_request(server.http, "POST", &present, &headers, &body.to_string());
        assert_eq!(status, 200, "{reply}");
        let replied = Instant::now();
        let id = round as u16;
        socket
            .send_to(&txt_query(id, CHALLENGE), server.dns)
            .expect("sends");
        let len = socket.recv(&mut buf).expect("DNS answers");
        waits.push(replied.elapsed());
        assert!(
            answers_value(&buf[..len], id, &value),
            "round {round}: the first query after the reply did not see the value"
        );
        let (status, reply) =
            http_request(server.http, "POST", &cleanup, &headers, &body.to_string());
        assert_eq!(status, 200, "{reply}");
    }
    waits.sort();
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
    eprintln!(
        "present reply -> TXT answered, {ROUNDS} rounds: p50 {:?}, p99 {:?}, max {:?} \
         (one UDP query each, all answered on the first try)",
        at(0.5),
        at(0.99),
        waits[waits.len() - 1]
    );
    let after = server.dig(&["TXT", CHALLENGE]);
    assert_eq!(status(&after), "NXDOMAIN", "{after}");
}
