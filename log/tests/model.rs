//! Property test: random sequences of appends, reopens and tail damage against a model.
//!
//! The model is the list of records; damage to the last segment removes exactly the records
//! whose frames it touches, and the log must report cutting exactly the damaged bytes.

use std::{
    fs::{self, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use ddns_log::{EventLog, LocalLog, LocalLogConfig, LogPosition, testsuite::read_all};
use proptest::prelude::*;

const SEGMENT_BYTES: u64 = 512;
const HEADER: u64 = 8;

#[derive(Clone, Debug)]
enum Op {
    Append {
        key_len: usize,
        payload_len: usize,
    },
    Reopen,
    /// Cut this many bytes off the end of the last segment (a torn write).
    Truncate {
        cut: u64,
    },
    /// Append these bytes to the last segment (a write whose data is garbage).
    Garbage {
        bytes: Vec<u8>,
    },
    /// Flip a bit inside the last record of the last segment (picked by `at` modulo its size).
    FlipInLastRecord {
        at: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..12, prop_oneof![9 => 0usize..200, 1 => 400usize..700])
            .prop_map(|(key_len, payload_len)| Op::Append { key_len, payload_len }),
        1 => Just(Op::Reopen),
        1 => (0u64..300).prop_map(|cut| Op::Truncate { cut }),
        1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(|bytes| Op::Garbage { bytes }),
        1 => any::<usize>().prop_map(|at| Op::FlipInLastRecord { at }),
    ]
}

fn frame_len(record: &(Bytes, Bytes)) -> u64 {
    20 + record.0.len() as u64 + record.1.len() as u64
}

/// The last segment file and its base offset.
fn last_segment(dir: &Path) -> (PathBuf, u64) {
    fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| {
            let base = p
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((p, base))
        })
        .max_by_key(|&(_, base)| base)
        .expect("a segment")
}

/// Byte ranges `[start, end)` of the records of the last segment, per the model.
fn last_segment_frames(model: &[(Bytes, Bytes)], base: u64) -> Vec<(u64, u64)> {
    let mut pos = HEADER;
    model[base as usize..]
        .iter()
        .map(|r| {
            let start = pos;
            pos += frame_len(r);
            (start, pos)
        })
        .collect()
}

fn open(dir: &Path) -> LocalLog {
    let config = LocalLogConfig {
        segment_bytes: SEGMENT_BYTES,
        ..Default::default()
    };
    LocalLog::open(dir, config).expect("open")
}

async fn check(log: &LocalLog, model: &[(Bytes, Bytes)]) {
    assert_eq!(
        log.end().await.expect("end"),
        LogPosition::from_offsets(vec![model.len() as u64])
    );
    let records = read_all(log).await;
    assert_eq!(records.len(), model.len());
    for (i, (record, (key, payload))) in records.iter().zip(model).enumerate() {
        assert_eq!(record.offset, i as u64);
        assert_eq!((&record.key, &record.payload), (key, payload), "record {i}");
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut model: Vec<(Bytes, Bytes)> = Vec::new();
        let mut log = Some(open(dir.path()));
        for (n, op) in ops.into_iter().enumerate() {
            // Damage is done to a closed log; every op but Append reopens.
            if !matches!(op, Op::Append { .. }) {
                drop(log.take());
            }
            let (path, base) = last_segment(dir.path());
            let frames = last_segment_frames(&model, base);
            // Where the last segment's records end; zero-filled space may follow.
            let records_end = frames.last().map_or(HEADER, |f| f.1);
            // Where the records that survive the damage end (None: the header is torn).
            let mut kept_end = Some(records_end);
            match op {
                Op::Append {
                    key_len,
                    payload_len,
                } => {
                    let key = Bytes::from(vec![b'k'; key_len]);
                    let payload = Bytes::from(vec![(n % 251) as u8; payload_len]);
                    let log = log.as_ref().expect("open");
                    let appended = log.append(&key, payload.clone()).await.expect("append");
                    assert_eq!(appended.offset, model.len() as u64);
                    model.push((key, payload));
                }
                Op::Reopen => {}
                Op::Truncate { cut } => {
                    let new_len = records_end.saturating_sub(cut);
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(new_len))
                        .expect("truncate");
                    if new_len < HEADER {
                        kept_end = None;
                        model.truncate(base as usize);
                    } else {
                        let whole = frames
                            .iter()
                            .take_while(|&&(_, end)| end <= new_len)
                            .count();
                        kept_end = Some(frames.get(whole.wrapping_sub(1)).map_or(HEADER, |f| f.1));
                        model.truncate(base as usize + whole);
                    }
                }
                Op::Garbage { bytes } => {
                    let file = OpenOptions::new().write(true).open(&path).expect("open");
                    file.write_all_at(&bytes, records_end).expect("write");
                }
                Op::FlipInLastRecord { at } => {
                    if let Some(&(start, end)) = frames.last() {
                        let pos = start + (at as u64 % (end - start));
                        let file = OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(&path)
                            .expect("open");
                        let mut byte = [0u8];
                        file.read_exact_at(&mut byte, pos).expect("read");
                        file.write_all_at(&[byte[0] ^ (1 << (at % 8))], pos)
                            .expect("write");
                        kept_end = Some(start);
                        model.pop();
                    }
                }
            }
            // What the log must report cutting: a torn header resets the whole file; otherwise
            // everything after the surviving records, unless that is only zeros (zero-filled
            // space, which is kept).
            let contents = fs::read(&path).expect("read segment");
            let expected_cut = match kept_end {
                None => contents.len() as u64,
                Some(end) if contents[end as usize..].iter().all(|&b| b == 0) => 0,
                Some(end) => contents.len() as u64 - end,
            };
            if log.is_none() {
                let reopened = open(dir.path());
                assert_eq!(
                    reopened.stats().torn_bytes_cut_on_open,
                    expected_cut,
                    "op {n}"
                );
                log = Some(reopened);
            }
            check(log.as_ref().expect("open"), &model).await;
        }
        drop(log);
        check(&open(dir.path()), &model).await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        // Relative to the package root, where `cargo test` runs.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/model.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
