//! The scale-out setup end to end: `deploy/local-cluster.sh` starts a real Kafka-protocol broker
//! (tansu), two ingest nodes and two dns nodes of the real binary on loopback; devices talk
//! HTTP to the ingest nodes, `dig` asks the dns nodes, `kcat` reads the topic.
//!
//! These tests fail (never skip) when tansu or kcat's librdkafka is missing: `scripts/test.sh`
//! installs both (`scripts/tansu.sh install`, `scripts/kcat.sh install`).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use ddns_core::{EventBody, decode_event};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local-cluster.sh");
const KCAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kcat.sh");
const TOPIC: &str = "ddnsd-events";

/// A cluster started by the script, stopped (by the script) when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    broker: SocketAddr,
    ingest: Vec<SocketAddr>,
    dns: Vec<SocketAddr>,
    cipher: Vec<String>,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// Starts a cluster with extra variables for the script (`DDNSD_CLUSTER_PARTITIONS`).
    fn start_with(env: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = script_with(&["start", &dir.path().display().to_string()], env);
        let mut cluster = Cluster {
            dir,
            broker: "0.0.0.0:0".parse().expect("valid"),
            ingest: Vec::new(),
            dns: Vec::new(),
            cipher: Vec::new(),
        };
        for line in out.lines() {
            match line.split_once(' ') {
                Some(("broker", addr)) => cluster.broker = field(addr, "kafka"),
                Some(("cipher", args)) => {
                    cluster.cipher = args.split(' ').map(str::to_owned).collect();
                }
                Some((name, addr)) if name.starts_with("ingest") => {
                    cluster.ingest.push(field(addr, "http"));
                }
                Some((name, addr)) if name.starts_with("dns") => {
                    cluster.dns.push(field(addr, "dns"));
                }
                _ => panic!("unexpected line from local-cluster.sh: {line:?}"),
            }
        }
        assert_eq!((cluster.ingest.len(), cluster.dns.len()), (2, 2), "{out}");
        assert!(
            cluster.broker.port() != 0 && !cluster.cipher.is_empty(),
            "{out}"
        );
        cluster
    }

    /// The last lines of every dns node's log (for a failure's message).
    fn dns_logs(&self) -> String {
        let mut logs = String::new();
        for name in ["dns1", "dns2"] {
            let path = self.dir.path().join(format!("{name}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("({e})"));
            let lines: Vec<&str> = text.lines().collect();
            logs += &format!("--- {}, last 30 lines:\n", path.display());
            logs += &lines[lines.len().saturating_sub(30)..].join("\n");
            logs.push('\n');
        }
        logs
    }

    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// A URL-encoded device token, made with the arguments the script printed.
    fn token(&self, mac: &str) -> String {
        let out = Command::new(BIN)
            .arg("cipher")
            .args(&self.cipher)
            .args(["--mac", mac])
            .output()
            .expect("ddnsd cipher runs");
        assert!(out.status.success(), "{out:?}");
        url_encode(String::from_utf8(out.stdout).expect("utf-8").trim())
    }

    /// The body of `GET path` on ingest node `node`, which must be a 200.
    fn reply(&self, node: usize, path: &str) -> String {
        let (status, body) = http_get(self.ingest[node], path, &[]);
        assert_eq!(status, 200, "GET {path:.80} on ingest{}: {body}", node + 1);
        body
    }

    /// Runs an operator's command (`user add …`) on node `name` through its admin socket, with
    /// `stdin` as its input: its output, or its error.
    fn admin(&self, name: &str, args: &[&str], stdin: &str) -> Result<String, String> {
        let dir = self.dir.path();
        let out = admin_command(&dir.join(name), &dir.join("cluster.toml"), args, stdin);
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// SIGKILLs `name` (`dns1`, `broker`, …).
    fn kill(&self, name: &str) {
        script(&["kill", &self.path(), name]);
    }

    /// Starts `name` again; returns the address it printed and its ready line.
    fn restart(&mut self, name: &str) -> (SocketAddr, String) {
        let out = script(&["restart", &self.path(), name]);
        let (_, addr) = out.trim().split_once(' ').expect("NAME kind=ADDR");
        let kind = addr.split('=').next().expect("kind");
        let addr = field(addr, kind);
        let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
            .unwrap_or_default();
        let ready = log
            .lines()
            .find(|l| l.contains("ddnsd ready:"))
            .unwrap_or_default()
            .to_owned();
        (addr, ready)
    }

    /// Every record of the topic, read by kcat from the beginning: (key, payload).
    fn topic_records(&self) -> Vec<(String, Vec<u8>)> {
        self.topic_records_by_partition()
            .into_iter()
            .map(|(_, key, payload)| (key, payload))
            .collect()
    }

    /// Every record of the topic, read by kcat from the beginning: (partition, key, payload).
    fn topic_records_by_partition(&self) -> Vec<(u32, String, Vec<u8>)> {
        // Per record: a text header "partition offset key payload-length\n", then the payload's
        // bytes (binary), then "\n".
        let out = Command::new("bash")
            .args([
                KCAT,
                "-C",
                "-b",
                &self.broker.to_string(),
                "-t",
                TOPIC,
                "-e",
                "-q",
            ])
            .args(["-f", "%p %o %k %S\n%s\n"])
            .output()
            .expect("kcat runs");
        assert!(
            out.status.success(),
            "kcat failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut records = Vec::new();
        let mut rest = &out.stdout[..];
        while !rest.is_empty() {
            let newline = rest.iter().position(|&b| b == b'\n').expect("a header");
            let header = std::str::from_utf8(&rest[..newline]).expect("text header");
            let fields: Vec<&str> = header.split(' ').collect();
            assert_eq!(fields.len(), 4, "header {header:?}");
            let len: usize = fields[3].parse().expect("length");
            let payload = rest[newline + 1..newline + 1 + len].to_vec();
            assert_eq!(rest[newline + 1 + len], b'\n');
            let partition = fields[0].parse().expect("a partition number");
            records.push((partition, fields[2].to_owned(), payload));
            rest = &rest[newline + 2 + len..];
        }
        records
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([SCRIPT, "stop", &self.path()])
            .output();
    }
}

fn script(args: &[&str]) -> String {
    script_with(args, &[])
}

fn script_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .envs(env.iter().copied())
        .env("DDNSD_BIN", BIN)
        .env("RUST_LOG", "info")
        // The tests send many requests from 127.0.0.1.
        .env("DDNSD_INGEST__FLOOD__DEVICE_UPDATES_PER_MINUTE", "1000000")
        .env("DDNSD_INGEST__FLOOD__DEVICE_BURST", "100000")
        .env("DDNSD_INGEST__FLOOD__SOURCE_REQUESTS_PER_MINUTE", "1000000")
        .env("DDNSD_INGEST__FLOOD__SOURCE_BURST", "100000")
        .output()
        .expect("bash runs the script");
    assert!(
        out.status.success(),
        "local-cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `kind=ADDR` → ADDR.
fn field(text: &str, kind: &str) -> SocketAddr {
    text.strip_prefix(&format!("{kind}="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("expected {kind}=ADDR, got {text:?}"))
}

/// The A answer of `name` at `dns` (empty when none), via the real dig.
fn a_record(dns: SocketAddr, name: &str) -> Vec<String> {
    try_a_record(dns, name).unwrap_or_else(|why| panic!("dig {name} A at {dns}: {why}"))
}

/// [`a_record`], or why dig got no answer.
fn try_a_record(dns: SocketAddr, name: &str) -> Result<Vec<String>, String> {
    Ok(try_dig(dns, &[name, "A", "+short"])?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Waits (at most 20 s) until every dns node answers `name` with `want` (empty: no address).
fn converges(cluster: &Cluster, name: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for dns in &cluster.dns {
        loop {
            let got = a_record(*dns, name);
            if got == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{dns} answers {name} with {got:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn an_update_through_one_ingest_node_is_answered_by_every_dns_node() {
    let cluster = Cluster::start();
    let mac = cluster.token("00:11:22:33:44:01");
    assert_eq!(
        cluster.reply(0, &format!("/add.aspx?mac={mac}&dm=cam1&myip=203.0.113.1")),
        "10|cam1.dyn.example"
    );
    converges(&cluster, "cam1.dyn.example", &["203.0.113.1"]);
    // The other ingest node knows the device (its projector folded the same log).
    assert_eq!(
        cluster.reply(1, &format!("/ipcheck.aspx?mac={mac}")),
        "14|203.0.113.1"
    );
    assert_eq!(
        cluster.reply(1, &format!("/update.aspx?mac={mac}&myip=203.0.113.2")),
        "09"
    );
    converges(&cluster, "cam1.dyn.example", &["203.0.113.2"]);
    // Back to the first address through the other node, at once: that node must not answer
    // "no change" (08) from a state that has not seen the update just acknowledged by the first.
    for round in 0..10 {
        let (first, second) = (round % 2, 1 - round % 2);
        let there = format!("203.0.113.{}", 10 + round);
        assert_eq!(
            cluster.reply(first, &format!("/update.aspx?mac={mac}&myip={there}")),
            "09"
        );
        assert_eq!(
            cluster.reply(second, &format!("/update.aspx?mac={mac}&myip=203.0.113.2")),
            "09",
            "round {round}"
        );
    }
    converges(&cluster, "cam1.dyn.example", &["203.0.113.2"]);
    assert_eq!(cluster.reply(0, &format!("/remove.aspx?mac={mac}")), "15");
    // A remove right after, through the other node: the device is gone there too.
    assert_eq!(cluster.reply(1, &format!("/remove.aspx?mac={mac}")), "13");
    converges(&cluster, "cam1.dyn.example", &[]);
    for dns in &cluster.dns {
        let answer = dig(*dns, &["cam1.dyn.example", "A"]);
        assert_eq!(status(&answer), "NXDOMAIN", "{answer}");
    }
}

#[test]
fn devices_racing_through_two_nodes_get_one_winner_per_name_and_one_name_per_device() {
    const ROUNDS: usize = 12;
    let cluster = Arc::new(Cluster::start());

    // Two devices, one name, one request through each ingest node at the same moment.
    let mut winners = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("race{round}");
        let tokens = [0, 1].map(|d| cluster.token(&format!("00:00:00:00:{round:02X}:{d:02X}")));
        let barrier = Arc::new(Barrier::new(2));
        let replies: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|d| {
                    let (cluster, barrier, token, name) =
                        (&cluster, barrier.clone(), &tokens[d], &name);
                    s.spawn(move || {
                        barrier.wait();
                        cluster.reply(
                            d,
                            &format!("/add.aspx?mac={token}&dm={name}&myip=192.0.2.{}", d + 1),
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("request"))
                .collect()
        });
        let fqdn = format!("{name}.dyn.example");
        let won: Vec<usize> = (0..2)
            .filter(|&d| replies[d] == format!("10|{fqdn}"))
            .collect();
        let lost: Vec<usize> = (0..2).filter(|&d| replies[d] == "07").collect();
        assert_eq!(
            (won.len(), lost.len()),
            (1, 1),
            "round {round}: replies {replies:?}"
        );
        winners.push((fqdn, format!("192.0.2.{}", won[0] + 1)));
    }
    for (fqdn, addr) in &winners {
        converges(&cluster, fqdn, &[addr]);
    }

    // One device, two names, one request through each node at once: it ends with one of them,
    // the same on every node.
    for round in 0..ROUNDS {
        let token = cluster.token(&format!("00:00:00:01:{round:02X}:00"));
        let names = [format!("left{round}"), format!("right{round}")];
        let barrier = Arc::new(Barrier::new(2));
        let replies: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|node| {
                    let (cluster, barrier, token, name) =
                        (&cluster, barrier.clone(), &token, &names[node]);
                    s.spawn(move || {
                        barrier.wait();
                        cluster.reply(
                            node,
                            &format!("/add.aspx?mac={token}&dm={name}&myip=198.51.100.7"),
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("request"))
                .collect()
        });
        // Both adds succeed in log order: the later one renames the device.
        for (node, reply) in replies.iter().enumerate() {
            assert_eq!(reply, &format!("10|{}.dyn.example", names[node]));
        }
        // Which name it kept depends on the log's order; dns1 settles on one, then every node
        // must agree.
        let deadline = Instant::now() + Duration::from_secs(20);
        let kept = loop {
            let now: Vec<&String> = names
                .iter()
                .filter(|n| !a_record(cluster.dns[0], &format!("{n}.dyn.example")).is_empty())
                .collect();
            if now.len() == 1 {
                break now[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: dns1 answers for {now:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let dropped = names.iter().find(|n| **n != kept).expect("two names");
        converges(&cluster, &format!("{kept}.dyn.example"), &["198.51.100.7"]);
        converges(&cluster, &format!("{dropped}.dyn.example"), &[]);
    }

    // In the topic, keyed by the zone: every winner's add and both adds of each device race
    // (a rename is a change); a race's loser appends too unless its node had already folded
    // the winner and answered `07` without an event.
    let records = cluster.topic_records();
    assert!(
        (ROUNDS * 3..=ROUNDS * 4).contains(&records.len()),
        "{} records",
        records.len()
    );
    assert!(records.iter().all(|(key, _)| key == "dyn.example"));
}

/// What one device was told, in order.
struct Sent {
    acked: Option<String>,
    unacked_since: Vec<String>,
    /// When updates were acknowledged (`09`).
    acked_at: Vec<Instant>,
}

#[test]
fn a_broker_killed_during_updates_loses_nothing_acknowledged_and_duplicates_nothing() {
    writes_survive(|cluster| {
        cluster.kill("broker");
        std::thread::sleep(Duration::from_millis(1500));
        cluster.restart("broker");
    });
}

/// Issue 12's Kafka faults: the broker frozen (SIGSTOP) for 45 s, then hard-bounced five
/// times, during writes through both ingest nodes.
#[test]
fn a_broker_frozen_for_45_s_and_bounced_five_times_loses_and_duplicates_nothing() {
    writes_survive(|cluster| {
        let pid = std::fs::read_to_string(cluster.dir.path().join("broker/tansu.pid"))
            .expect("the broker's pid");
        let signal = |name: &str| {
            let status = Command::new("kill")
                .args([name, pid.trim()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill {name} {pid}");
        };
        signal("-STOP");
        std::thread::sleep(Duration::from_secs(45));
        signal("-CONT");
        std::thread::sleep(Duration::from_secs(2));
        for _ in 0..5 {
            cluster.kill("broker");
            std::thread::sleep(Duration::from_millis(800));
            cluster.restart("broker");
            std::thread::sleep(Duration::from_millis(1500));
        }
    });
}

/// Eight devices update one at a time through the two ingest nodes (each device pinned to one,
/// so its updates stay in order) while `faults` runs; then every dns node answers each device's
/// last acknowledged update (or a later unacknowledged one that landed), and the topic holds
/// every event once.
fn writes_survive(faults: impl FnOnce(&mut Cluster)) {
    const DEVICES: usize = 8;
    /// At most this many updates per device, whatever the faults take.
    const MOST_UPDATES: usize = 5_000;
    let mut cluster = Cluster::start();
    let tokens: Vec<String> = (0..DEVICES)
        .map(|d| cluster.token(&format!("00:00:00:02:00:{d:02X}")))
        .collect();
    for (d, token) in tokens.iter().enumerate() {
        assert_eq!(
            cluster.reply(
                d % 2,
                &format!("/add.aspx?mac={token}&dm=k{d}&myip=10.0.0.1")
            ),
            format!("10|k{d}.dyn.example")
        );
    }

    let ingest = cluster.ingest.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(d, token)| {
            let (token, http, stop) = (token.clone(), ingest[d % 2], stop.clone());
            std::thread::spawn(move || {
                let mut sent = Sent {
                    acked: Some("10.0.0.1".into()),
                    unacked_since: Vec::new(),
                    acked_at: Vec::new(),
                };
                for n in 1..=MOST_UPDATES {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let ip = format!("10.{d}.{}.{}", n / 250, n % 250 + 1);
                    let (status, body) =
                        http_get(http, &format!("/update.aspx?mac={token}&myip={ip}"), &[]);
                    match (status, body.as_str()) {
                        (200, "09") => {
                            sent.acked = Some(ip);
                            sent.unacked_since.clear();
                            sent.acked_at.push(Instant::now());
                        }
                        // Outcome unknown (the broker was away): it may still be applied.
                        (200, "12") => sent.unacked_since.push(ip),
                        other => panic!("device {d}: unexpected reply {other:?}"),
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let faulted = Instant::now();
    faults(&mut cluster);
    let recovered = Instant::now();
    // Writes go on for a while after the last fault.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent: Vec<Sent> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    // The stream really spanned the faults: updates were acknowledged before the first and
    // after the last.
    let acked_at: Vec<Instant> = sent.iter().flat_map(|s| s.acked_at.clone()).collect();
    assert!(
        acked_at.iter().any(|&t| t < faulted),
        "nothing acknowledged before the faults"
    );
    assert!(
        acked_at.iter().any(|&t| t > recovered),
        "nothing acknowledged after the faults"
    );

    for (d, sent) in sent.iter().enumerate() {
        let name = format!("k{d}.dyn.example");
        let mut allowed: Vec<&String> = sent.acked.iter().collect();
        allowed.extend(&sent.unacked_since);
        let deadline = Instant::now() + Duration::from_secs(30);
        for dns in &cluster.dns {
            loop {
                // What this test asks is durability, not DNS during the faults: a dig that got no
                // answer is retried until the deadline (said on stderr, with the nodes' logs if
                // the deadline passes).
                let got = match try_a_record(*dns, &name) {
                    Ok(got) => got,
                    Err(why) => {
                        eprintln!("{name} at {dns}: no answer: {why}");
                        assert!(
                            Instant::now() < deadline,
                            "{name} at {dns}: {why}\n{}",
                            cluster.dns_logs()
                        );
                        continue;
                    }
                };
                // Unacknowledged appends may land late (the producer retries them): wait for the
                // device's last one, acknowledged or not.
                let last = sent.unacked_since.last().or(sent.acked.as_ref());
                if got.len() == 1 && Some(&got[0]) == last {
                    break;
                }
                // Or settle on one the device was allowed to see once the producer gave up.
                if got.len() == 1
                    && allowed.contains(&&got[0])
                    && Instant::now() + Duration::from_secs(20) > deadline
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} at {dns}: {got:?}; acknowledged {:?}, unacknowledged after it {:?}",
                    sent.acked,
                    sent.unacked_since
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(allowed.iter().any(|a| **a == a_record(*dns, &name)[0]));
        }
    }

    // In the log, every event id once: the idempotent producer retried through the faults
    // without writing anything twice.
    let records = cluster.topic_records();
    let mut ids = HashSet::new();
    for (_, payload) in &records {
        let event = decode_event(payload).expect("every record decodes");
        assert!(
            ids.insert(event.id),
            "event {:?} is in the topic twice",
            event.id
        );
    }
    assert!(records.len() > DEVICES, "{} records", records.len());
}

#[test]
fn a_restarted_dns_node_resumes_from_its_snapshot() {
    let mut cluster = Cluster::start();
    let add = |cluster: &Cluster, i: usize| {
        let token = cluster.token(&format!("00:00:00:03:00:{i:02X}"));
        assert_eq!(
            cluster.reply(
                i % 2,
                &format!("/add.aspx?mac={token}&dm=s{i}&myip=192.0.2.9")
            ),
            format!("10|s{i}.dyn.example")
        );
    };
    for i in 0..30 {
        add(&cluster, i);
    }
    converges(&cluster, "s29.dyn.example", &["192.0.2.9"]);
    cluster.kill("dns1");
    for i in 30..40 {
        add(&cluster, i);
    }
    let (dns1, ready) = cluster.restart("dns1");
    cluster.dns[0] = dns1;
    // It resumed from its snapshot: it read the 10 events appended while it was down, and at
    // most the few before them that its snapshot writer (which runs behind the fold) had not
    // yet written at the kill, never the log from 0.
    let replayed: u64 = ready
        .split("replayed=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no replayed= in the ready line: {ready}"));
    assert!((10..40).contains(&replayed), "replayed {replayed}: {ready}");
    for i in 0..40 {
        assert_eq!(a_record(dns1, &format!("s{i}.dyn.example")), ["192.0.2.9"]);
    }
}

#[test]
fn kcat_reads_the_topic_and_its_records_decode_as_documented() {
    let cluster = Cluster::start();
    let mac = cluster.token("00:00:00:04:00:01");
    assert_eq!(
        cluster.reply(0, &format!("/add.aspx?mac={mac}&dm=doc&myip=192.0.2.44")),
        "10|doc.dyn.example"
    );
    assert_eq!(
        cluster.reply(1, &format!("/update.aspx?mac={mac}&myip=2001:db8::44")),
        "09"
    );
    assert_eq!(cluster.reply(0, &format!("/remove.aspx?mac={mac}")), "15");

    let records = cluster.topic_records();
    let kinds: Vec<(String, &'static str)> = records
        .iter()
        .map(|(key, payload)| {
            // deploy/README.md: key = the zone, value = core's v1 event encoding (version 1).
            assert_eq!(payload[0], 1, "format version");
            let event = decode_event(payload).expect("decodes");
            let kind = match &event.body {
                EventBody::DeviceAdd { label, addr, .. } => {
                    assert_eq!(
                        (label.as_str(), addr.to_string().as_str()),
                        ("doc", "192.0.2.44")
                    );
                    "add"
                }
                EventBody::DeviceUpdate { addr, .. } => {
                    assert_eq!(addr.to_string(), "2001:db8::44");
                    "update"
                }
                EventBody::DeviceRemove { .. } => "remove",
                other => panic!("unexpected {other:?}"),
            };
            (key.clone(), kind)
        })
        .collect();
    let zone = || "dyn.example".to_owned();
    assert_eq!(
        kinds,
        [(zone(), "add"), (zone(), "update"), (zone(), "remove")]
    );
}

#[test]
fn a_zone_file_imported_into_the_topic_is_served_by_every_dns_node_at_once() {
    let cluster = Cluster::start();
    let file = cluster.dir.path().join("dyn.example.zone");
    let mut zone = String::from("$ORIGIN dyn.example.\n$TTL 300\n");
    for i in 0..500 {
        zone.push_str(&format!("imp{i} IN A 198.51.100.{}\n", i % 250 + 1));
    }
    std::fs::write(&file, zone).expect("written");
    // Against a running cluster: the nodes fold the imported events as they arrive.
    let config_at = cluster.cipher.iter().position(|a| a == "--config");
    let config = &cluster.cipher[config_at.expect("--config in the cipher args") + 1];
    let out = Command::new(BIN)
        .args(["import", "--config", config])
        .arg(&file)
        .output()
        .expect("ddnsd import runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("imported 500 records (500 A, 0 AAAA)"),
        "{said}"
    );
    converges(&cluster, "imp0.dyn.example", &["198.51.100.1"]);
    converges(&cluster, "imp499.dyn.example", &["198.51.100.250"]);
    // Imported names belong to no device: a device cannot claim one through either node.
    let mac = cluster.token("00:00:00:05:00:01");
    assert_eq!(
        cluster.reply(1, &format!("/add.aspx?mac={mac}&dm=imp7&myip=192.0.2.1")),
        "07"
    );
    assert_eq!(cluster.topic_records().len(), 500);
}

/// Runs `each(0)` and `each(1)` at the same moment on two threads; their results in order.
fn race<T: Send>(each: impl Fn(usize) -> T + Sync) -> [T; 2] {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let runs = [0, 1].map(|i| {
            let (barrier, each) = (&barrier, &each);
            scope.spawn(move || {
                barrier.wait();
                each(i)
            })
        });
        runs.map(|run| run.join().expect("no panic"))
    })
}

#[test]
fn accounts_racing_through_two_nodes_agree_on_every_node() {
    // Two partitions: account events in one, the zone's in the other.
    let cluster = Cluster::start_with(&[("DDNSD_CLUSTER_PARTITIONS", "2")]);
    let ingest = ["ingest1", "ingest2"];

    // One user ID, signed up through both ingest nodes at once: one account.
    let [a, b] = race(|i| {
        let email = format!("racer{i}@x.example");
        let args = ["user", "add", "racer01", "--email", &email];
        cluster.admin(ingest[i], &args, "a long pass phrase\n")
    });
    let (won, lost) = if a.is_ok() { (a, b) } else { (b, a) };
    assert!(won.is_ok(), "{won:?}");
    assert!(
        lost.as_ref()
            .is_err_and(|e| e.contains("USER ID Duplicate Error")),
        "{lost:?}"
    );

    // One e-mail, two user IDs: one account.
    let [a, b] = race(|i| {
        let user = format!("mailer0{i}");
        let args = ["user", "add", &user, "--email", "same@x.example"];
        cluster.admin(ingest[i], &args, "a long pass phrase\n")
    });
    let (won, lost) = if a.is_ok() { (a, b) } else { (b, a) };
    assert!(won.is_ok(), "{won:?}");
    assert!(
        lost.as_ref()
            .is_err_and(|e| e.contains("USER EMAIL Duplicate Error")),
        "{lost:?}"
    );

    // A host created through one node while its account is removed through the other.
    for round in 0..3 {
        let user = format!("victim{round}");
        let email = format!("{user}@x.example");
        cluster
            .admin(
                "ingest1",
                &["user", "add", &user, "--email", &email],
                "a long pass phrase\n",
            )
            .expect("signed up");
        let host = format!("cam{round}.dyn.example");
        // The host may or may not be created first; the removal always succeeds.
        let [_host_added, removed] = race(|i| match i {
            0 => cluster.admin(
                ingest[0],
                &["host", "add", &host, "--user", &user, "--generate"],
                "",
            ),
            _ => cluster.admin(ingest[1], &["user", "remove", &user], ""),
        });
        assert!(removed.is_ok(), "{removed:?}");
    }

    // Every node, ingest and dns, ends with the same accounts and hosts, and no host of a
    // removed account.
    let nodes = ["ingest1", "ingest2", "dns1", "dns2"];
    let deadline = Instant::now() + Duration::from_secs(30);
    let lists = loop {
        let lists: Vec<(String, String)> = nodes
            .iter()
            .map(|node| {
                let users = cluster
                    .admin(node, &["user", "list"], "")
                    .expect("user list");
                let hosts = cluster
                    .admin(node, &["host", "list"], "")
                    .expect("host list");
                (users, hosts)
            })
            .collect();
        if lists.iter().all(|l| *l == lists[0]) {
            break lists;
        }
        assert!(Instant::now() < deadline, "nodes disagree: {lists:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (users, hosts) = &lists[0];
    assert!(
        users.contains("racer01") && !users.contains("victim"),
        "{users}"
    );
    assert_eq!(users.matches("mailer0").count(), 1, "{users}");
    assert!(
        !hosts.contains("cam"),
        "a removed account's host survived: {hosts}"
    );

    // The account events and the zone's events are in different partitions.
    let records = cluster.topic_records_by_partition();
    let partitions_of = |key: &str| -> HashSet<u32> {
        records
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(p, _, _)| *p)
            .collect()
    };
    let (accounts, zone) = (partitions_of("@accounts"), partitions_of("dyn.example"));
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert!(
        !zone.is_empty() && accounts.is_disjoint(&zone),
        "{accounts:?} {zone:?}"
    );
}
