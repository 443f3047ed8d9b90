//! DNS over QUIC end to end: the real binary with `[tls]` and `doq_listen`, and two DoQ clients
//! nobody here wrote, `kdig +quic` (Debian's knot-dnsutils) and dnspython over aioquic (a venv
//! made by `scripts/doq-venv.sh`), whose answers must be `dig`'s over UDP. Both are required:
//! a missing one fails the test, naming what installs it.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Pki, ROOMY_QUOTAS, Server, metric, write_config};

/// What a DNS client printed, reduced to what must agree: the status and the answer and
/// authority sections, one record per line with single spaces.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: String,
    answer: Vec<String>,
    authority: Vec<String>,
}

/// Parses dig's and kdig's output (and the same shape printed by the Python client).
fn parse(output: &str) -> Answer {
    let status = output
        .split("status: ")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect()
        })
        .unwrap_or_else(|| panic!("no status in:\n{output}"));
    let mut answer = Vec::new();
    let mut authority = Vec::new();
    let mut section: Option<&mut Vec<String>> = None;
    for line in output.lines() {
        if line.ends_with("ANSWER SECTION:") {
            section = Some(&mut answer);
        } else if line.ends_with("AUTHORITY SECTION:") {
            section = Some(&mut authority);
        } else if line.trim().is_empty() || line.starts_with(';') {
            section = None;
        } else if let Some(records) = section.as_mut() {
            records.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    Answer {
        status,
        answer,
        authority,
    }
}

/// `dig` over UDP, the reference.
fn dig(server: &Server, name: &str, qtype: &str) -> Answer {
    parse(&server.dig(&[name, qtype]))
}

/// `kdig +quic`, verifying the certificate against `ca` for the name `localhost`. Err holds
/// kdig's output when it got no answer.
fn kdig(doq: SocketAddr, ca: &Path, name: &str, qtype: &str) -> Result<Answer, String> {
    let out = Command::new("kdig")
        .arg(format!("@{}", doq.ip()))
        .args(["-p", &doq.port().to_string()])
        .args(["+norec", "+timeout=5", "+retry=1"])
        .arg(format!("+tls-ca={}", ca.display()))
        .arg("+tls-hostname=localhost")
        // After the TLS options: kdig takes the last transport named.
        .arg("+quic")
        .args([name, qtype])
        .output()
        .expect("kdig runs (bash scripts/setup.sh --tests installs knot-dnsutils)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains(";; QUIC session") {
        return Err(format!("kdig {name} {qtype}: {stdout}{stderr}"));
    }
    assert!(stdout.contains("(UDP)"), "not over QUIC: {stdout}");
    Ok(parse(&stdout))
}

/// The venv's python, which must exist.
fn venv_python() -> PathBuf {
    let tools = std::env::var_os("DDNSD_TOOLS").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/ddnsd-tools")
        },
        PathBuf::from,
    );
    let python = tools.join("doq-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash scripts/setup.sh --tests` (or scripts/doq-venv.sh) to make \
         the dnspython + aioquic venv",
        python.display()
    );
    python
}

/// dnspython's `dns.query.quic` for each query, in one process, printed the way dig prints.
const DNSPYTHON_CLIENT: &str = r#"
import sys
import dns.flags, dns.message, dns.query, dns.rcode
port, ca = int(sys.argv[1]), sys.argv[2]
for query in sys.argv[3:]:
    name, qtype = query.split("/")
    q = dns.message.make_query(name, qtype)
    q.flags &= ~dns.flags.RD
    # dns.query.quic sets the message ID to 0 itself (RFC 9250).
    r = dns.query.quic(q, "127.0.0.1", port=port, timeout=10, verify=ca, hostname="localhost")
    print(f"=== {query}")
    print(f"status: {dns.rcode.to_text(r.rcode())},")
    for title, section in (("ANSWER", r.answer), ("AUTHORITY", r.authority)):
        print(f";; {title} SECTION:")
        for rrset in section:
            print(rrset.to_text())
        print()
"#;

/// dnspython over aioquic: one answer per `(name, type)`.
fn dnspython(doq: SocketAddr, ca: &Path, queries: &[(&str, &str)]) -> Vec<Answer> {
    let out = Command::new(venv_python())
        .args(["-c", DNSPYTHON_CLIENT])
        .arg(doq.port().to_string())
        .arg(ca)
        .args(
            queries
                .iter()
                .map(|(name, qtype)| format!("{name}/{qtype}")),
        )
        .output()
        .expect("the venv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dnspython: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Answer> = stdout.split("=== ").skip(1).map(parse).collect();
    assert_eq!(answers.len(), queries.len(), "{stdout}");
    answers
}

fn tls_config(dir: &Path, cert: &Path, key: &Path, extra: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "doq_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n{extra}\n\
             [tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n{ROOMY_QUOTAS}"
        ),
    )
}

#[test]
fn kdig_and_dnspython_over_quic_answer_as_dig_over_udp() {
    let retries = kdig_and_dnspython_answer_as_dig("");
    assert_eq!(retries, 0, "no Retry below retry_above_handshakes");
}

/// The same, with every new connection sent a QUIC Retry first (what a flood of handshakes
/// turns on): both clients follow it and get the same answers.
#[test]
fn kdig_and_dnspython_follow_a_retry_and_answer_as_dig_over_udp() {
    let retries = kdig_and_dnspython_answer_as_dig("[doq]\nretry_above_handshakes = 0\n");
    // One connection per kdig run (5) and one for dnspython's queries, at the least.
    assert!(retries >= 6, "every connection was sent a Retry: {retries}");
}

/// kdig and dnspython over QUIC against dig over UDP for A, AAAA, NXDOMAIN, NODATA and SOA,
/// on a server configured with `extra`; the Retries it sent.
fn kdig_and_dnspython_answer_as_dig(extra: &str) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.issue("server", 1);
    let config = tls_config(
        dir.path(),
        &cert,
        &key,
        &format!("metrics_listen = \"127.0.0.1:0\"\n{extra}"),
    );
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let doq = server.ready_field("doq");
    assert_ne!(doq.port(), 0);

    // cam42 with an A and an AAAA record; dvr7 with an A only.
    let cam = server.token("E0:46:9A:B8:1B:FC", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={cam}&dm=cam42&myip=203.0.113.7")),
        "10|cam42.dyn.example"
    );
    assert_eq!(
        server.reply(&format!("/update.aspx?mac={cam}&myip=2001:db8::42")),
        "09"
    );
    let dvr = server.token("E0:46:9A:B8:1B:FD", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={dvr}&dm=dvr7&myip=198.51.100.7")),
        "10|dvr7.dyn.example"
    );

    let queries = [
        ("cam42.dyn.example", "A"),
        ("cam42.dyn.example", "AAAA"),
        ("nope.dyn.example", "A"),    // NXDOMAIN
        ("dvr7.dyn.example", "AAAA"), // NODATA
        ("dyn.example", "SOA"),
    ];
    let expected: Vec<Answer> = queries
        .iter()
        .map(|(name, qtype)| dig(&server, name, qtype))
        .collect();
    // What dig saw is what the cases are meant to be.
    let statuses: Vec<&str> = expected.iter().map(|a| a.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["NOERROR", "NOERROR", "NXDOMAIN", "NOERROR", "NOERROR"]
    );
    assert_eq!(
        expected[0].answer,
        ["cam42.dyn.example. 60 IN A 203.0.113.7"]
    );
    assert_eq!(
        expected[1].answer,
        ["cam42.dyn.example. 60 IN AAAA 2001:db8::42"]
    );
    assert!(expected[3].answer.is_empty() && expected[3].authority.len() == 1);
    assert_eq!(expected[4].answer.len(), 1);

    let ca = pki.ca();
    for ((name, qtype), expected) in queries.iter().zip(&expected) {
        let got = kdig(doq, &ca, name, qtype).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&got, expected, "kdig +quic {name} {qtype}");
    }
    let got = dnspython(doq, &ca, &queries);
    for (((name, qtype), got), expected) in queries.iter().zip(&got).zip(&expected) {
        assert_eq!(got, expected, "dnspython {name} {qtype}");
    }
    metric(server.metrics_addr(), "ddns_dns_doq_retries_total")
}

/// Waits (at most 30 s) for a log line containing `text`, after the first `seen` lines.
fn wait_for_log(server: &mut Server, seen: usize, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if server.drain_log()[seen..].iter().any(|l| l.contains(text)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no {text:?} in the log:\n{}", server.log.join("\n"));
}

#[test]
fn sighup_gives_new_doq_handshakes_the_new_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first_dir, second_dir) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::create_dir_all(&first_dir).expect("made");
    std::fs::create_dir_all(&second_dir).expect("made");
    // Two CAs: a client that trusts only one of them tells which certificate it was shown.
    let (first, second) = (Pki::new(&first_dir), Pki::new(&second_dir));
    let (first_cert, first_key) = first.issue("server", 1);
    let (second_cert, second_key) = second.issue("server", 2);
    let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    std::fs::copy(&first_cert, &cert).expect("copied");
    std::fs::copy(&first_key, &key).expect("copied");
    let config = tls_config(dir.path(), &cert, &key, "");
    let mut server = Server::start(&dir.path().join("data"), Some(&config));
    let doq = server.ready_field("doq");

    let soa = dig(&server, "dyn.example", "SOA");
    assert_eq!(kdig(doq, &first.ca(), "dyn.example", "SOA"), Ok(soa));
    assert!(kdig(doq, &second.ca(), "dyn.example", "SOA").is_err());

    std::fs::copy(&second_cert, &cert).expect("copied");
    std::fs::copy(&second_key, &key).expect("copied");
    let seen = server.drain_log().len();
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    wait_for_log(&mut server, seen, "reloaded the TLS certificate");

    let soa = dig(&server, "dyn.example", "SOA");
    assert_eq!(kdig(doq, &second.ca(), "dyn.example", "SOA"), Ok(soa));
    assert!(kdig(doq, &first.ca(), "dyn.example", "SOA").is_err());
}

#[test]
fn doq_is_off_by_default_and_refused_without_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.issue("server", 1);
    // [tls] alone: HTTPS, but no DoQ listener and no `doq=` in the ready line.
    let config = write_config(
        dir.path(),
        &format!(
            "https_listen = \"127.0.0.1:0\"\n[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ),
    );
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let ready = server
        .log
        .iter()
        .find(|l| l.contains("ddnsd ready:"))
        .expect("a ready line");
    assert!(
        ready.contains(" https=") && !ready.contains(" doq="),
        "{ready}"
    );
    drop(server);

    // --doq-listen without a certificate: the start stops, saying why.
    let out = Command::new(common::BIN)
        .args(["serve", "--doq-listen", "127.0.0.1:0"])
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
        stderr.contains("doq_listen = 127.0.0.1:0 needs [tls]"),
        "{stderr}"
    );

    // A [doq] limit out of range stops it too.
    let config = tls_config(dir.path(), &cert, &key, "[doq]\nmax_connections = 0");
    let out = Command::new(common::BIN)
        .args([
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
        ])
        .args(["--portal-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data3"))
        .arg("--config")
        .arg(&config)
        .env_remove("DDNSD_CONFIG")
        .output()
        .expect("ddnsd runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {stderr}");
    assert!(stderr.contains("max_connections"), "{stderr}");
}
