//! A bounded storm (issue 12, "Floods") against the real binary with its default quotas:
//! flooders from many source addresses in 127.0.0.0/8, a connection per request, send bad
//! device tokens, wrong DVR host passwords and a valid device's updates far too often, while a
//! well-behaved device and a DVR keep updating from 127.0.0.1. The well-behaved ones are answered
//! `09` and `ACT` every time with a p99 under 1 s; the flooders get their errors (`02`, `911`,
//! `ERR 0x80008002`, `ERR 0x80008004`); the server's peak memory is printed and bounded.
//!
//! The test command runs it for 15 s from 20,000 sources; `DDNSD_STORM_SECS=600
//! DDNSD_STORM_SOURCES=100000` is the long mode. (The rate is what the test's threads get out
//! of a debug build on this machine; `loadgen/` drives release builds harder.)

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const FLOODERS: usize = 6;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} is a number, not {v:?}"))
    })
}

/// `GET path` on a new connection from `source`: the status and body, or `None` if the
/// server closed or refused the connection.
fn get_from(source: Ipv4Addr, server: SocketAddr, path: &str) -> Option<(u16, String)> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket
        .bind(&SocketAddr::new(IpAddr::V4(source), 0).into())
        .ok()?;
    socket
        .connect_timeout(&server.into(), Duration::from_secs(5))
        .ok()?;
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// The server's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn well_behaved_devices_are_served_through_a_storm_from_many_sources() {
    let secs = env_number("DDNSD_STORM_SECS", 15);
    let sources = env_number("DDNSD_STORM_SOURCES", 20_000) as usize;
    assert!(secs <= 600 && (1..=1 << 20).contains(&sources), "bounded");

    let dir = tempfile::tempdir().expect("tempdir");
    // The default quotas: only the metrics listener is configured.
    let config = write_config(dir.path(), "metrics_listen = \"127.0.0.1:0\"\n");
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
    admin(
        &["host", "add", "dvr.brian.dyn.example", "--user", "brian01"],
        "dvr-pw\n",
    );
    assert_eq!(
        server.reply("/dvr/update?host=dvr.brian.dyn.example&pw=dvr-pw&ip=192.0.2.1"),
        "ACT"
    );
    let good = server.token("00:00:00:00:04:01", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={good}&dm=good&myip=192.0.2.1")),
        "10|good.dyn.example"
    );
    let hasty = server.token("00:00:00:00:04:02", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={hasty}&dm=hasty&myip=192.0.2.1")),
        "10|hasty.dyn.example"
    );

    let http = server.http;
    let stop = Arc::new(AtomicBool::new(false));
    let replies: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|f| {
            let (stop, replies, hasty) = (stop.clone(), replies.clone(), hasty.clone());
            std::thread::spawn(move || {
                let mut n = f;
                while !stop.load(Ordering::Relaxed) {
                    let s = n % sources;
                    let source =
                        Ipv4Addr::new(127, 2 + (s >> 16) as u8, (s >> 8) as u8, s as u8 | 1);
                    let (kind, path) = match n % 3 {
                        0 => (
                            "bad token",
                            "/update.aspx?mac=bm90LWEtdG9rZW4&myip=192.0.2.9".to_owned(),
                        ),
                        1 => (
                            "wrong DVR password",
                            format!(
                                "/dvr/update?host=dvr.brian.dyn.example&pw=guess{n}&ip=192.0.2.9"
                            ),
                        ),
                        _ => (
                            "hasty device",
                            format!(
                                "/update.aspx?mac={hasty}&myip=10.9.{}.{}",
                                (n >> 8) & 0xff,
                                n & 0xff
                            ),
                        ),
                    };
                    let reply = match get_from(source, http, &path) {
                        Some((200, body)) => body,
                        Some((status, _)) => format!("HTTP {status}"),
                        None => "no answer".into(),
                    };
                    *replies
                        .lock()
                        .expect("lock")
                        .entry(format!("{kind}: {reply}"))
                        .or_default() += 1;
                    n += FLOODERS;
                }
            })
        })
        .collect();

    // The well-behaved, each request timed: the device polls ipdetect every 500 ms and updates
    // every 8 s, the DVR updates every 8 s (a new address each time; within their quota of 10
    // writes a minute).
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut round = 0u32;
    while Instant::now() < deadline {
        round += 1;
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        if round % 16 == 8 {
            let ip = format!("192.0.2.{}", 2 + round / 16 % 250);
            let path = format!("/dvr/update?host=dvr.brian.dyn.example&pw=dvr-pw&ip={ip}");
            let reply = get_from(Ipv4Addr::LOCALHOST, http, &path);
            latencies.push(started.elapsed());
            assert_eq!(reply, Some((200, "ACT".into())), "the DVR at round {round}");
        }
        let started = Instant::now();
        let reply = if round.is_multiple_of(16) {
            let ip = format!("198.51.100.{}", 1 + round / 16 % 250);
            get_from(
                Ipv4Addr::LOCALHOST,
                http,
                &format!("/update.aspx?mac={good}&myip={ip}"),
            )
            .map(|(s, b)| (s, b, "09"))
        } else {
            get_from(Ipv4Addr::LOCALHOST, http, "/ipdetect.aspx").map(|(s, b)| (s, b, "127.0.0.1"))
        };
        latencies.push(started.elapsed());
        let (status, body, want) = reply.expect("the device is answered");
        assert_eq!(
            (status, body.as_str()),
            (200, want),
            "the device at round {round}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.join().expect("flooder");
    }
    let peak_kib = peak_rss_kib(server.pid());

    latencies.sort();
    let p99 = latencies[(latencies.len() - 1) * 99 / 100];
    let replies = replies.lock().expect("lock").clone();
    let flood_total: u64 = replies.values().sum();
    eprintln!(
        "storm: {secs} s from {sources} sources, {flood_total} flood requests ({:.0}/s); \
         well-behaved p99 {p99:?} over {} requests; server peak RSS {} MiB; replies: {replies:#?}",
        flood_total as f64 / secs as f64,
        latencies.len(),
        peak_kib / 1024
    );
    assert!(p99 < Duration::from_secs(1), "well-behaved p99 {p99:?}");
    // Every flooder got an error, never a success.
    for (what, count) in &replies {
        let allowed = [
            "bad token: 02",
            "bad token: 911",
            "wrong DVR password: ERR 0x80008002",
            "wrong DVR password: ERR 0x80008004",
            "hasty device: 911",
        ];
        // The hasty device's updates within its quota (a burst of 5, then 10 a minute) are
        // served; the rest are `911`.
        let hasty_ok = what == "hasty device: 09" && *count <= 5 + secs / 6 + 1;
        assert!(
            allowed.contains(&what.as_str()) || hasty_ok,
            "{what} ×{count}"
        );
    }
    assert!(
        flood_total > 1_000,
        "the storm was a storm: {flood_total} requests"
    );
    assert!(peak_kib < 512 * 1024, "peak RSS {} MiB", peak_kib / 1024);
}
