//! Nothing acknowledged is lost: acknowledged updates survive `kill -9`, and a torn log tail is
//! cut on the next start.

mod common;

use std::io::Write;

use common::updates::{HostLog, kill_9_under_updates};
use common::*;

const DEVICES: usize = 40;
/// DVR hosts: each costs one argon2 run to create and one to verify first.
const DVRS: usize = 16;
const ACKED_BEFORE_KILL: usize = 1_000;

/// Every host at 192.0.2.1, as the tests start them.
fn at_start(hosts: usize) -> Vec<HostLog> {
    let log = HostLog {
        acked: Some("192.0.2.1".into()),
        in_flight: None,
    };
    vec![log; hosts]
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
    let answers = kill_9_under_updates(server, at_start(DEVICES), ACKED_BEFORE_KILL, 0, update);
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
    let answers = kill_9_under_updates(server, at_start(DVRS), ACKED_BEFORE_KILL, 0, update);
    let server = Server::start(&data, Some(&config));
    answers.check(&server, |d| format!("dvr{d}.brian.dyn.example"));
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
    let frames = log_frames(&std::fs::read(&segment).expect("segment"));
    let end = frames.last().expect("records").end;
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
