//! An idle-connection flood (issue 12, "Floods"): more connections than the server's process
//! may have files, from many source addresses, none sending anything, while a device keeps
//! polling (and now and then updating). Each new connection past the cap (or past the file
//! limit) closes the connection that has waited longest for a request, so the device is still
//! answered on every poll.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// The server's open-file limit for this test (soft and hard).
const FILE_LIMIT: u32 = 256;
/// Idle connections opened: well past the limit.
const FLOOD: usize = 1_000;

/// Connects to `server` from `source` (any address in 127.0.0.0/8 is this host's).
fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(source), 0).into())?;
    socket.connect_timeout(&server.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

#[test]
fn a_device_is_answered_through_an_idle_flood_past_the_file_limit() {
    // The default cap: three quarters of the file limit.
    idle_flood("");
}

#[test]
fn with_a_cap_above_the_file_limit_running_out_of_files_makes_room_too() {
    idle_flood("[ingest]\nmax_connections = 100000\n");
}

fn idle_flood(settings: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!("metrics_listen = \"127.0.0.1:0\"\n{settings}"),
    );
    let data = dir.path().join("data");
    let limit = format!("--nofile={FILE_LIMIT}:{FILE_LIMIT}");
    let server = Server::start_wrapped(&["prlimit", &limit], &data, Some(&config), &[]);
    let mac = server.token("00:00:00:00:03:01", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={mac}&dm=poller&myip=192.0.2.1")),
        "10|poller.dyn.example"
    );

    let started = Instant::now();
    let mut flood = Vec::with_capacity(FLOOD);
    let mut polls = 0;
    let mut updated = 0;
    for i in 0..FLOOD {
        // Sources 127.1.x.y: many addresses, each within the default per-source quota.
        let source = Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
        if let Ok(stream) = connect_from(source, server.http) {
            flood.push(stream);
        }
        // The device polls every 100 connections, each time on a new connection.
        if i % 100 == 99 {
            polls += 1;
            let (status, body) = http_get(server.http, "/ipdetect.aspx", &[]);
            assert_eq!(
                (status, body.as_str()),
                (200, "127.0.0.1"),
                "poll {polls} after {i} connections"
            );
            // An update only now and then, as a device whose address changes (the per-device
            // write quota allows a burst of 5).
            if polls % 3 == 0 {
                updated = polls;
                let update = format!("/update.aspx?mac={mac}&myip=192.0.2.{}", polls + 1);
                assert_eq!(server.reply(&update), "09", "update at poll {polls}");
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(120), "bounded");
    assert!(
        flood.len() > FILE_LIMIT as usize,
        "the flood got past the file limit: {} connections",
        flood.len()
    );
    // The server made room by closing idle connections: most of the flood is gone.
    let closed = closed_count(&mut flood);
    assert!(
        closed >= FLOOD - FILE_LIMIT as usize,
        "only {closed} of {} idle connections were closed",
        flood.len()
    );
    assert_eq!(
        server.dig_short(&["poller.dyn.example", "A"]),
        [format!("192.0.2.{}", updated + 1)]
    );
}

/// How many of `streams` the server has closed (a read returns end-of-stream or an error).
fn closed_count(streams: &mut [TcpStream]) -> usize {
    use std::io::Read;
    let mut closed = 0;
    for stream in streams {
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => closed += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Ok(_) | Err(_) => closed += 1,
        }
    }
    closed
}
