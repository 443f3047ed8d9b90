//! A real crash: a child process appends under load and is killed with SIGKILL; every append it
//! reported as acknowledged must be in the log afterwards, with its payload.
//!
//! The child is this test binary again, running the ignored test `crash_child` with
//! `CRASH_CHILD_DIR` set.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use bytes::Bytes;
use ddns_log::{
    EventLog, LocalLog, LocalLogConfig,
    testsuite::{block_on, read_all},
};

const CHILD_DIR_ENV: &str = "CRASH_CHILD_DIR";
/// Small segments, so the kill also lands around rollovers.
const SEGMENT_BYTES: u64 = 32 * 1024;
const WRITERS: u64 = 16;
/// Acknowledgements to see before each kill.
const ACKS_BEFORE_KILL: usize = 1500;
const DEADLINE: Duration = Duration::from_secs(60);

fn config() -> LocalLogConfig {
    LocalLogConfig {
        segment_bytes: SEGMENT_BYTES,
        ..Default::default()
    }
}

fn payload(writer: u64, seq: u64) -> String {
    format!("{writer}:{seq}:{}", "x".repeat((seq % 97) as usize))
}

/// The child: appends from several tasks until killed, printing `ack OFFSET WRITER SEQ` after
/// each acknowledgement.
#[test]
#[ignore = "run as a child process by sigkill_mid_load_loses_no_acknowledged_append"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    block_on(async move {
        let log = Arc::new(LocalLog::open(Path::new(&dir), config()).expect("child: open"));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    for seq in 0.. {
                        let appended = log
                            .append(b"device", Bytes::from(payload(writer, seq)))
                            .await
                            .expect("child: append");
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ack {} {writer} {seq}", appended.offset).expect("stdout");
                        out.flush().expect("stdout");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("child task");
        }
    });
}

/// Records an `ack` line; false for other output (the test harness's own lines).
fn record_ack(line: String, acknowledged: &mut BTreeMap<u64, (u64, u64)>) -> bool {
    let Some(ack) = line.strip_prefix("ack ") else {
        return false;
    };
    let fields: Vec<u64> = ack
        .split(' ')
        .map(|f| f.parse().expect("ack field"))
        .collect();
    let previous = acknowledged.insert(fields[0], (fields[1], fields[2]));
    assert!(
        previous.is_none(),
        "offset {} acknowledged twice",
        fields[0]
    );
    true
}

#[test]
fn sigkill_mid_load_loses_no_acknowledged_append() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut acknowledged: BTreeMap<u64, (u64, u64)> = BTreeMap::new();

    // Several crashes on the same directory: recovery after recovery.
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        let deadline = Instant::now() + DEADLINE;
        let mut seen = 0;
        while seen < ACKS_BEFORE_KILL {
            let timeout = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(timeout).unwrap_or_else(|error| {
                let _ = child.kill();
                panic!("round {round}: child stopped acknowledging after {seen} appends: {error}")
            });
            if record_ack(line, &mut acknowledged) {
                seen += 1;
            }
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("wait for child");
        assert!(!status.success(), "the child was killed");
        // Acknowledgements printed before the kill are still in the pipe.
        reader.join().expect("stdout reader");
        for line in lines.try_iter() {
            record_ack(line, &mut acknowledged);
        }

        block_on(async {
            let log = LocalLog::open(dir.path(), config()).expect("reopen after SIGKILL");
            let records = read_all(&log).await;
            let last_acked = *acknowledged.keys().next_back().expect("some acks");
            assert!(
                records.len() as u64 > last_acked,
                "acknowledged offset {last_acked} lost"
            );
            for (&offset, &(writer, seq)) in &acknowledged {
                let record = &records[offset as usize];
                assert_eq!(record.offset, offset);
                assert_eq!(
                    record.payload,
                    payload(writer, seq).as_bytes(),
                    "offset {offset}"
                );
            }
            eprintln!(
                "round {round}: {} acknowledged so far, {} records after reopen, {} torn bytes cut",
                acknowledged.len(),
                records.len(),
                log.stats().torn_bytes_cut_on_open
            );
            assert_eq!(log.end().await.expect("end").total(), records.len() as u64);
        });
    }
}
