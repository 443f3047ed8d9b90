//! Nothing acknowledged is lost: acknowledged updates survive `kill -9`, and a torn log tail is
//! cut on the next start.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;

const DEVICES: usize = 40;
/// DVR hosts: each costs one argon2 run to create and one to verify first.
const DVRS: usize = 16;
const WRITERS: usize = 8;
const ACKED_BEFORE_KILL: usize = 1_000;

/// What each device was told and what might have landed without a reply.
#[derive(Clone, Debug, Default)]
struct DeviceLog {
    acked: Option<String>,
    in_flight: Option<String>,
}

#[test]
fn acknowledged_updates_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), ROOMY_QUOTAS);
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(&config));
    let tokens: Vec<String> = (0..DEVICES)
        .map(|d| server.token(&format!("00:00:00:00:00:{d:02X}"), &[]))
        .collect();
    for (d, token) in tokens.iter().enumerate() {
        assert_eq!(
            server.reply(&format!("/add.aspx?mac={token}&dm=dev{d}&myip=192.0.2.1")),
            format!("10|dev{d}.dyn.example")
        );
    }

    let update =
        move |d: usize, ip: &str| (format!("/update.aspx?mac={}&myip={ip}", tokens[d]), "09");
    let answers = kill_9_under_updates(server, DEVICES, update);
    let server = Server::start(&data, Some(&config));
    answers.check(&server, |d| format!("dev{d}.dyn.example"));
}

#[test]
fn acknowledged_dvr_updates_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), ROOMY_QUOTAS);
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(&config));
    let admin = |args: &[&str], stdin: &str| {
        let out = admin_command(&data, &config, args, stdin);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    admin(
        &["user", "add", "brian01", "--email", "b@x.example"],
        "a long pass phrase\n",
    );
    for d in 0..DVRS {
        let fqdn = format!("dvr{d}.brian.dyn.example");
        admin(
            &["host", "add", &fqdn, "--user", "brian01"],
            &format!("pw{d}\n"),
        );
        assert_eq!(
            server.reply(&format!("/dvr/update?host={fqdn}&pw=pw{d}&ip=192.0.2.1")),
            "ACT"
        );
    }
    let update = |d: usize, ip: &str| {
        (
            format!("/dvr/update?host=dvr{d}.brian.dyn.example&pw=pw{d}&ip={ip}"),
            "ACT",
        )
    };
    let answers = kill_9_under_updates(server, DVRS, update);
    let server = Server::start(&data, Some(&config));
    answers.check(&server, |d| format!("dvr{d}.brian.dyn.example"));
}

/// What every host was told (and what was in flight) when the server was killed.
struct Answers {
    logs: Vec<DeviceLog>,
    total_acked: usize,
}

impl Answers {
    /// Every host's DNS answer is its last acknowledged address, or the one in flight.
    fn check(&self, server: &Server, name: impl Fn(usize) -> String) {
        for (d, log) in self.logs.iter().enumerate() {
            let answer = server.dig_short(&[&name(d), "A"]);
            let allowed: Vec<&String> = log.acked.iter().chain(log.in_flight.iter()).collect();
            assert!(
                answer.len() == 1 && allowed.contains(&&answer[0]),
                "{}: DNS says {answer:?}, last acknowledged {:?} (in flight at the kill: {:?}); {} acks in all",
                name(d),
                log.acked,
                log.in_flight,
                self.total_acked
            );
        }
    }
}

/// Keeps `hosts` hosts updating (each at 192.0.2.1 to start with) through `update(host, ip)`
/// (a path and its success reply) from several writers, kills the server with SIGKILL once
/// enough updates were acknowledged, and returns what each host was told.
fn kill_9_under_updates(
    server: Server,
    hosts: usize,
    update: impl Fn(usize, &str) -> (String, &'static str) + Send + Sync + Clone + 'static,
) -> Answers {
    let http = server.http;
    let logs = Arc::new(Mutex::new(vec![
        DeviceLog {
            acked: Some("192.0.2.1".into()),
            in_flight: None
        };
        hosts
    ]));
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (update, logs, acked, stop) =
                (update.clone(), logs.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                write_until_refused(w, http, hosts, &update, &logs, &acked, &stop)
            })
        })
        .collect();
    // Wait (bounded) until enough updates were acknowledged, then kill mid-load.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < ACKED_BEFORE_KILL {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} acks in 120 s",
            acked.load(Ordering::SeqCst)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.join().expect("writer");
    }
    let total_acked = acked.load(Ordering::SeqCst);
    assert!(total_acked >= ACKED_BEFORE_KILL);
    let logs = logs.lock().expect("lock").clone();
    Answers { logs, total_acked }
}

/// Sends updates for the writer's hosts, one at a time per host, recording each reply, until
/// the server stops answering.
fn write_until_refused(
    writer: usize,
    http: SocketAddr,
    hosts: usize,
    update: &impl Fn(usize, &str) -> (String, &'static str),
    logs: &Mutex<Vec<DeviceLog>>,
    acked: &AtomicUsize,
    stop: &AtomicBool,
) {
    let mine: Vec<usize> = (writer..hosts).step_by(WRITERS).collect();
    let mut n: u32 = 0;
    // Bounded: at most 100k requests per writer even if the kill never comes.
    while !stop.load(Ordering::SeqCst) && n < 100_000 {
        let d = mine[n as usize % mine.len()];
        n += 1;
        let ip = format!(
            "10.{}.{}.{}",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            (n & 0xff).max(1)
        );
        logs.lock().expect("lock")[d].in_flight = Some(ip.clone());
        let (path, success) = update(d, &ip);
        let Some((status, body)) = try_get(http, &path) else {
            return;
        };
        let mut logs = logs.lock().expect("lock");
        assert_eq!(
            (status, body.as_str()),
            (200, success),
            "host {d} update to {ip}"
        );
        logs[d] = DeviceLog {
            acked: Some(ip),
            in_flight: None,
        };
        acked.fetch_add(1, Ordering::SeqCst);
    }
}

/// A GET that returns None when the server is gone (connection refused or cut).
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    std::panic::catch_unwind(|| http_get(addr, path, &[])).ok()
}

#[test]
fn a_torn_log_tail_is_cut_and_the_server_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, None);
    let mac = server.token("AA", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={mac}&dm=torn&myip=192.0.2.1")),
        "10|torn.dyn.example"
    );
    assert_eq!(
        server.reply(&format!("/update.aspx?mac={mac}&myip=192.0.2.2")),
        "09"
    );
    server.kill9();

    // A half-written record right after the last whole one, as a crash mid-write leaves it.
    let segment = newest_segment(&data.join("log"));
    let end = end_of_records(&std::fs::read(&segment).expect("segment"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("opens");
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(end)).expect("seeks");
    file.write_all(&[200, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .expect("torn frame written");
    drop(file);

    let mut server = Server::start(&data, None);
    let said = server.drain_log().join("\n");
    assert!(
        said.contains("torn") || said.contains("cut"),
        "the cut is reported: {said}"
    );
    assert_eq!(
        server.dig_short(&["torn.dyn.example", "A"]),
        ["192.0.2.2"],
        "acknowledged data kept"
    );
    assert_eq!(
        server.reply(&format!("/update.aspx?mac={mac}&myip=192.0.2.3")),
        "09",
        "the log appends again"
    );
    assert_eq!(server.dig_short(&["torn.dyn.example", "A"]), ["192.0.2.3"]);
}

/// Where the last whole record ends, walking the frames of log/README.md's segment format:
/// an 8-byte header, then `u32 LE body length | u32 crc | body`, zero-filled past the end.
fn end_of_records(segment: &[u8]) -> u64 {
    let mut pos = 8;
    while pos + 8 <= segment.len() {
        let body = u32::from_le_bytes(segment[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if body == 0 {
            break;
        }
        pos += 8 + body;
    }
    pos as u64
}

fn newest_segment(log_dir: &std::path::Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(log_dir)
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}
