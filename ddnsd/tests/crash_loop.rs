//! The crash loop (issue 12, "Faults"), as RocksDB's crash tests run it: under a steady update
//! load, the server is killed with SIGKILL at a random moment, round after round. After every
//! kill, `ddnsd verify` must find the snapshot equal to a replay of the log up to the position
//! it stores; after every restart, DNS must answer every acknowledged update. Some rounds
//! first damage what a crash can damage:
//!
//! - the log's tail after the last record that was acknowledged (or folded into the snapshot),
//!   cut at a random point or overwritten with random bytes: what a crash before the `fsync`
//!   can leave;
//! - the snapshot's newest files removed (RocksDB's write-ahead log or newest table): a
//!   snapshot that lost its last writes, which the log must make up for.
//!
//! `DDNSD_CRASH_ROUNDS=100` runs the long mode (the test command runs a handful);
//! `DDNSD_CRASH_SEED=N` replays one run (a failure prints its seed).

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use common::updates::{Answers, HostLog, kill_9_under_updates};
use common::*;
use ddns_core::{EventBody, decode_event};

const DEVICES: usize = 24;
const ROUNDS: usize = 6;

/// A small xorshift generator: the rounds' randomness, replayable from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// What a round does to the data dir between the kill and the restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    None,
    CutLogTail,
    OverwriteLogTail,
    RemoveNewestSnapshotFiles,
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} is a number, not {v:?}"))
    })
}

#[test]
fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let rounds = env_number("DDNSD_CRASH_ROUNDS").map_or(ROUNDS, |n| n as usize);
    assert!((1..=250).contains(&rounds), "1 to 250 rounds");
    let seed = env_number("DDNSD_CRASH_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    eprintln!("crash loop: {rounds} rounds, DDNSD_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), ROOMY_QUOTAS);
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Some(&config));
    let tokens: Vec<String> = (0..DEVICES)
        .map(|d| server.token(&format!("00:00:00:00:01:{d:02X}"), &[]))
        .collect();
    for (d, token) in tokens.iter().enumerate() {
        assert_eq!(
            server.reply(&format!("/add.aspx?mac={token}&dm=crash{d}&myip=192.0.2.1")),
            format!("10|crash{d}.dyn.example")
        );
    }
    let name = |d: usize| format!("crash{d}.dyn.example");
    let update =
        move |d: usize, ip: &str| (format!("/update.aspx?mac={}&myip={ip}", tokens[d]), "09");
    let mut logs = vec![
        HostLog {
            acked: Some("192.0.2.1".into()),
            in_flight: None,
        };
        DEVICES
    ];
    let mut seen = Vec::new();
    for round in 1..=rounds {
        // A random moment: after 20 to 600 acknowledged updates.
        let acks = 20 + rng.below(580) as usize;
        let answers = kill_9_under_updates(server, logs, acks, round as u8, update.clone());
        let (ok, said) = verify(&data, Some(&config));
        assert!(ok, "round {round} (seed {seed}): after the kill, {said}");
        let folded = snapshot_records(&said);
        let damage = match rng.below(4) {
            0 => Damage::None,
            1 => Damage::CutLogTail,
            2 => Damage::OverwriteLogTail,
            _ => Damage::RemoveNewestSnapshotFiles,
        };
        match damage {
            Damage::None => {}
            Damage::CutLogTail | Damage::OverwriteLogTail => {
                damage_log_tail(&data, &answers, folded, damage, &mut rng);
            }
            Damage::RemoveNewestSnapshotFiles => remove_newest_snapshot_files(&data, &mut rng),
        }
        // A cut log is cut back to its last whole record when opened; a snapshot that lost its
        // write-ahead log is an older (state, position) pair. Either way the snapshot is still
        // the fold of the log. One that lost a table is refused by RocksDB: `verify` says so,
        // and the server sets it aside and rebuilds it from the log.
        let mut rebuilt = false;
        if damage != Damage::None {
            let (ok, said) = verify(&data, Some(&config));
            rebuilt = damage == Damage::RemoveNewestSnapshotFiles && said.contains("Corruption");
            assert!(
                ok || rebuilt,
                "round {round} (seed {seed}): after {damage:?}, {said}"
            );
        }
        server = Server::start(&data, Some(&config));
        if rebuilt {
            let said = server.drain_log().join("\n");
            assert!(said.contains("rebuilding it from the log"), "{said}");
        }
        logs = answers.check(&server, name);
        seen.push((damage, answers.acked, rebuilt));
    }
    eprintln!("crash loop: survived {rounds} rounds (damage, acks, snapshot rebuilt): {seen:?}");
}

/// The records the snapshot reflects, from `ddnsd verify`'s line.
fn snapshot_records(said: &str) -> u64 {
    said.split("replay of the log's first ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record count in {said:?}"))
}

/// Cuts the newest log segment at, or overwrites it from, a random point after every record
/// that was acknowledged or folded into the snapshot: only records no one was told about can
/// be lost, as in a crash before their `fsync`.
fn damage_log_tail(data: &Path, answers: &Answers, folded: u64, damage: Damage, rng: &mut Rng) {
    let segment = newest_segment(&data.join("log"));
    let bytes = std::fs::read(&segment).expect("segment");
    let frames = log_frames(&bytes);
    let acknowledged = |payload: &[u8]| match decode_event(payload).map(|e| e.body) {
        Ok(EventBody::DeviceUpdate { addr, .. }) => answers.acked_addrs.contains(&addr.to_string()),
        _ => true, // anything else was acknowledged before the load
    };
    let kept = frames
        .iter()
        .filter(|f| f.offset < folded || acknowledged(&f.payload))
        .map(|f| f.end)
        .max()
        .unwrap_or(8);
    let end = frames.last().map_or(8, |f| f.end);
    let at = kept + rng.below(end - kept + 1);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("opens");
    if damage == Damage::CutLogTail {
        file.set_len(at).expect("cut");
    } else {
        let garbage: Vec<u8> = (0..1 + rng.below(64))
            .map(|_| rng.below(256) as u8)
            .collect();
        file.seek(SeekFrom::Start(at)).expect("seeks");
        file.write_all(&garbage).expect("overwritten");
    }
}

/// Removes the newest one or two of the snapshot's write-ahead logs and tables.
fn remove_newest_snapshot_files(data: &Path, rng: &mut Rng) {
    let mut files: Vec<_> = std::fs::read_dir(data.join("snapshot"))
        .expect("snapshot dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "sst"))
        .map(|p| {
            let modified = p.metadata().and_then(|m| m.modified()).expect("mtime");
            (modified, p)
        })
        .collect();
    files.sort();
    for _ in 0..=rng.below(2) {
        if let Some((_, newest)) = files.pop() {
            std::fs::remove_file(&newest).expect("removed");
        }
    }
}
