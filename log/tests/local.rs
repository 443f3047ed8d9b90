//! `LocalLog`-specific tests: recovery from torn tails, refusal on older corruption, segments,
//! group commit, limits, locking.

use std::{
    fs::{self, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use ddns_log::{
    AppendError, EventLog, LocalLog, LocalLogConfig, LogPosition, OpenError, ReadError,
    testsuite::{block_on, poll_once, read_all, within},
};

/// Bytes on disk of a record with key `"k"` and an 8-byte payload: prefix 8 + fixed 12 + 9.
const FRAME: u64 = 29;
/// Bytes of a segment header.
const HEADER: u64 = 8;

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("{i:08}"))
}

fn open(dir: &Path) -> LocalLog {
    LocalLog::open(dir, LocalLogConfig::default()).expect("open")
}

fn open_with(dir: &Path, segment_bytes: u64) -> LocalLog {
    LocalLog::open(
        dir,
        LocalLogConfig {
            segment_bytes,
            ..Default::default()
        },
    )
    .expect("open")
}

/// Appends records `from..to` one by one, checking their offsets.
async fn append_range(log: &LocalLog, from: u64, to: u64) {
    for i in from..to {
        let appended = log.append(b"k", payload(i)).await.expect("append");
        assert_eq!(appended.offset, i);
    }
}

/// Asserts the log holds exactly records `0..n` as `append_range` writes them.
async fn assert_holds(log: &LocalLog, n: u64) {
    assert_eq!(
        log.end().await.expect("end"),
        LogPosition::from_offsets(vec![n])
    );
    let records = read_all(log).await;
    assert_eq!(records.len() as u64, n);
    for (i, record) in (0..).zip(&records) {
        assert_eq!((record.offset, &record.key[..]), (i, &b"k"[..]));
        assert_eq!(record.payload, payload(i));
    }
}

/// Segment files, ascending.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn last_segment(dir: &Path) -> PathBuf {
    segments(dir).pop().expect("a segment")
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

fn write_at(path: &Path, pos: u64, bytes: &[u8]) {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment");
    file.write_all_at(bytes, pos).expect("write");
}

fn flip_byte(path: &Path, pos: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open segment");
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, pos).expect("read");
    file.write_all_at(&[byte[0] ^ 0x40], pos).expect("write");
}

/// What reopening should find after the damage.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A torn tail after record `survivors - 1`: everything from there to the end of the file is
    /// cut.
    Cut,
    /// Only zeros after the records: the writer's zero-filled space, nothing to cut.
    Clean,
}

/// Writes 10 records, damages the last segment with `damage`, reopens, and checks that the log
/// holds `survivors` records, cut (or kept) what `expect` says, and continues at the next offset.
fn torn_tail_case(damage: impl FnOnce(&Path), survivors: u64, expect: Expect) {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let log = open(dir.path());
        append_range(&log, 0, 10).await;
        drop(log);
        damage(&last_segment(dir.path()));
        let damaged_len = file_len(&last_segment(dir.path()));
        let records_end = HEADER + survivors * FRAME;

        let log = open(dir.path());
        let (cut, len_after) = match expect {
            Expect::Cut => (damaged_len - records_end, records_end),
            Expect::Clean => (0, damaged_len),
        };
        assert_eq!(log.stats().torn_bytes_cut_on_open, cut);
        assert_eq!(file_len(&last_segment(dir.path())), len_after);
        assert_holds(&log, survivors).await;
        append_range(&log, survivors, survivors + 3).await;
        drop(log);

        let log = open(dir.path());
        assert_eq!(log.stats().torn_bytes_cut_on_open, 0);
        assert_holds(&log, survivors + 3).await;
    });
}

fn set_len(path: &Path, len: u64) {
    let file = OpenOptions::new().write(true).open(path).expect("open");
    file.set_len(len).expect("set_len");
}

#[test]
fn the_writer_zero_fills_ahead_of_its_records() {
    torn_tail_case(
        |path| assert!(file_len(path) > HEADER + 10 * FRAME),
        10,
        Expect::Clean,
    );
}

#[test]
fn torn_tail_truncated_mid_record_is_cut() {
    torn_tail_case(
        |path| set_len(path, HEADER + 9 * FRAME + 11),
        9,
        Expect::Cut,
    );
}

#[test]
fn torn_tail_truncated_inside_a_prefix_is_cut() {
    torn_tail_case(|path| set_len(path, HEADER + 9 * FRAME + 3), 9, Expect::Cut);
}

#[test]
fn torn_tail_followed_by_zero_fill_is_cut() {
    // The first bytes of a frame reached the disk, the rest is still the zero-filled space.
    torn_tail_case(
        |path| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .expect("open");
            file.write_all_at(&[0; FRAME as usize - 9], HEADER + 9 * FRAME + 9)
                .expect("write");
        },
        9,
        Expect::Cut,
    );
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    let garbage: Vec<u8> = (0..37u8)
        .map(|b| b.wrapping_mul(97).wrapping_add(13))
        .collect();
    torn_tail_case(
        |path| write_at(path, HEADER + 10 * FRAME, &garbage),
        10,
        Expect::Cut,
    );
}

#[test]
fn garbage_past_the_end_of_the_file_is_cut() {
    torn_tail_case(
        |path| {
            set_len(path, HEADER + 10 * FRAME);
            write_at(path, HEADER + 10 * FRAME, b"garbage");
        },
        10,
        Expect::Cut,
    );
}

#[test]
fn zeros_past_the_end_of_the_file_are_clean() {
    // What a crash leaves when the file size reached the disk but the data did not.
    torn_tail_case(
        |path| {
            set_len(path, HEADER + 10 * FRAME);
            write_at(path, HEADER + 10 * FRAME, &[0; 4096]);
        },
        10,
        Expect::Clean,
    );
}

#[test]
fn bad_crc_in_the_last_record_is_cut() {
    // Byte 4 of a frame is the first byte of its CRC.
    torn_tail_case(
        |path| flip_byte(path, HEADER + 9 * FRAME + 4),
        9,
        Expect::Cut,
    );
}

#[test]
fn damaged_payload_in_the_last_record_is_cut() {
    torn_tail_case(
        |path| flip_byte(path, HEADER + 10 * FRAME - 1),
        9,
        Expect::Cut,
    );
}

#[test]
fn damage_cuts_everything_after_it_in_the_last_segment() {
    torn_tail_case(
        |path| flip_byte(path, HEADER + 6 * FRAME + 20),
        6,
        Expect::Cut,
    );
}

#[test]
fn record_with_an_out_of_sequence_offset_is_cut() {
    // A whole, valid frame repeating the last record's offset.
    torn_tail_case(
        |path| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .expect("open");
            let mut frame = vec![0u8; FRAME as usize];
            file.read_exact_at(&mut frame, HEADER + 9 * FRAME)
                .expect("read");
            file.write_all_at(&frame, HEADER + 10 * FRAME)
                .expect("write");
        },
        10,
        Expect::Cut,
    );
}

#[test]
fn impossible_length_in_the_last_record_is_cut() {
    torn_tail_case(
        |path| write_at(path, HEADER + 9 * FRAME, &3u32.to_le_bytes()),
        9,
        Expect::Cut,
    );
}

/// Writes 40 records into segments of 4 records each (10 segments).
fn ten_segments(dir: &Path) {
    block_on(async {
        let log = open_with(dir, HEADER + 4 * FRAME);
        append_range(&log, 0, 40).await;
    });
    assert_eq!(segments(dir).len(), 10);
}

fn assert_corrupt(dir: &Path, expected_segment: &Path) {
    match LocalLog::open(dir, LocalLogConfig::default()) {
        Err(OpenError::Corrupt { segment, .. }) => assert_eq!(segment, expected_segment),
        other => panic!("expected OpenError::Corrupt, got {other:?}"),
    }
}

#[test]
fn bad_crc_in_an_older_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    ten_segments(dir.path());
    let third = segments(dir.path())[2].clone();
    flip_byte(&third, HEADER + FRAME + 20);
    let before: Vec<u64> = segments(dir.path()).iter().map(|p| file_len(p)).collect();
    assert_corrupt(dir.path(), &third);
    // Nothing was cut.
    let after: Vec<u64> = segments(dir.path()).iter().map(|p| file_len(p)).collect();
    assert_eq!(before, after);
}

#[test]
fn truncated_older_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    ten_segments(dir.path());
    let first = segments(dir.path())[0].clone();
    OpenOptions::new()
        .write(true)
        .open(&first)
        .and_then(|f| f.set_len(HEADER + 2 * FRAME + 5))
        .expect("truncate");
    // Detected as the next segment not following on, or as a short record: either way, refused.
    assert!(matches!(
        LocalLog::open(dir.path(), LocalLogConfig::default()),
        Err(OpenError::Corrupt { .. })
    ));
}

#[test]
fn missing_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    ten_segments(dir.path());
    let files = segments(dir.path());
    fs::remove_file(&files[4]).expect("remove");
    assert_corrupt(dir.path(), &files[5]);
    fs::remove_file(&files[0]).expect("remove");
    assert_corrupt(dir.path(), &files[1]);
}

#[test]
fn bad_header_in_an_older_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    ten_segments(dir.path());
    let second = segments(dir.path())[1].clone();
    flip_byte(&second, 0);
    assert_corrupt(dir.path(), &second);
}

#[test]
fn new_segment_with_torn_header_is_reset() {
    for contents in [&b""[..], &b"DDN"[..], &[0u8; 8][..], &[0u8; 100][..]] {
        let dir = tempfile::tempdir().expect("tempdir");
        ten_segments(dir.path());
        // A rollover that crashed before its header reached the disk.
        fs::write(dir.path().join("00000000000000000040.log"), contents).expect("write");
        block_on(async {
            let log = open(dir.path());
            assert_eq!(log.stats().torn_bytes_cut_on_open, contents.len() as u64);
            assert_holds(&log, 40).await;
            append_range(&log, 40, 41).await;
            drop(log);
            assert_holds(&open(dir.path()), 41).await;
        });
    }
}

#[test]
fn last_segment_with_a_foreign_header_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    ten_segments(dir.path());
    let path = dir.path().join("00000000000000000040.log");
    fs::write(&path, b"NOTALOG!and some data").expect("write");
    assert_corrupt(dir.path(), &path);
}

#[test]
fn segments_roll_over_and_reads_cross_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segment_bytes = 256;
    block_on(async {
        let log = open_with(dir.path(), segment_bytes);
        append_range(&log, 0, 100).await;
        let files = segments(dir.path());
        // 8 records of 29 bytes fit after the header.
        assert_eq!(files.len(), 13);
        for (i, file) in files.iter().enumerate() {
            assert!(file_len(file) <= segment_bytes);
            let name = format!("{:020}.log", i * 8);
            assert_eq!(
                file.file_name().and_then(|n| n.to_str()),
                Some(name.as_str())
            );
        }
        for start in 0..100u64 {
            let mut reader = log
                .reader(&LogPosition::from_offsets(vec![start]))
                .await
                .expect("reader");
            let mut next = start;
            while next < 100 {
                let batch = within("batch", reader.next_batch(17)).await.expect("batch");
                for record in batch {
                    assert_eq!(
                        (record.offset, record.payload.clone()),
                        (next, payload(next))
                    );
                    next += 1;
                }
            }
        }
        drop(log);
        let log = open_with(dir.path(), segment_bytes);
        assert_holds(&log, 100).await;
        append_range(&log, 100, 110).await;
        assert_holds(&log, 110).await;
    });
}

#[test]
fn record_larger_than_a_segment_gets_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let log = open_with(dir.path(), 100);
        append_range(&log, 0, 2).await;
        let big = Bytes::from(vec![9u8; 500]);
        assert_eq!(
            log.append(b"big", big.clone())
                .await
                .expect("append")
                .offset,
            2
        );
        append_range(&log, 3, 4).await;
        let records = read_all(&log).await;
        assert_eq!(records[2].payload, big);
        assert_eq!(records[3].payload, payload(3));
        let lens: Vec<u64> = segments(dir.path()).iter().map(|p| file_len(p)).collect();
        // Closed segments end with their last record; the last one is zero-filled up to
        // segment_bytes.
        assert_eq!(lens, vec![HEADER + 2 * FRAME, HEADER + 20 + 3 + 500, 100]);
    });
}

#[test]
fn group_commit_shares_fsyncs_between_concurrent_appends() {
    // On the real disk the target directory is on (a tmpfs /tmp would make fsync free).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    block_on(async {
        let log = Arc::new(open(dir.path()));
        let tasks: Vec<_> = (0..256u64)
            .map(|i| {
                let log = Arc::clone(&log);
                tokio::spawn(async move { log.append(b"k", payload(i)).await.expect("append") })
            })
            .collect();
        for task in tasks {
            within("append", task).await.expect("task");
        }
        let stats = log.stats();
        eprintln!("256 concurrent appends: {stats:?}");
        assert_eq!(stats.appends, 256);
        assert!(stats.fsyncs >= 1);
        // Batching comes from appends queueing while a sync is in flight; where syncs cost
        // nothing (tmpfs) there is little to queue behind, so only "fewer than one each" holds.
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        let statfs = rustix::fs::statfs(dir.path()).expect("statfs");
        let max_fsyncs = if statfs.f_type as i64 == TMPFS_MAGIC {
            255
        } else {
            64
        };
        assert!(
            stats.fsyncs <= max_fsyncs,
            "{} fsyncs for 256 concurrent appends",
            stats.fsyncs
        );
    });
}

#[test]
fn sequential_appends_sync_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let log = open(dir.path());
        append_range(&log, 0, 5).await;
        assert_eq!(
            log.stats(),
            ddns_log::LocalLogStats {
                appends: 5,
                fsyncs: 5,
                torn_bytes_cut_on_open: 0
            }
        );
    });
}

#[test]
fn too_large_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LocalLogConfig {
        max_record_bytes: 100,
        ..Default::default()
    };
    block_on(async {
        let log = LocalLog::open(dir.path(), config.clone()).expect("open");
        append_range(&log, 0, 2).await;
        let len = file_len(&last_segment(dir.path()));
        let stats = log.stats();
        let err = log
            .append(b"key", Bytes::from(vec![0; 98]))
            .await
            .expect_err("too large");
        assert!(
            matches!(
                err,
                AppendError::TooLarge {
                    size: 101,
                    max: 100
                }
            ),
            "{err:?}"
        );
        assert_eq!(file_len(&last_segment(dir.path())), len);
        assert_eq!(log.stats(), stats);
        assert_holds(&log, 2).await;
        // Exactly the limit is fine.
        assert_eq!(
            log.append(b"key", Bytes::from(vec![0; 97]))
                .await
                .expect("append")
                .offset,
            2
        );
        drop(log);

        // A lower limit later never makes existing records unreadable.
        let config = LocalLogConfig {
            max_record_bytes: 10,
            ..config
        };
        let log = LocalLog::open(dir.path(), config).expect("reopen");
        assert_eq!(read_all(&log).await[2].payload.len(), 97);
    });
}

#[test]
fn a_directory_is_opened_by_one_log_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    assert!(matches!(
        LocalLog::open(dir.path(), LocalLogConfig::default()),
        Err(OpenError::Locked { .. })
    ));
    drop(log);
    drop(open(dir.path()));
}

#[test]
fn invalid_config_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for config in [
        LocalLogConfig {
            segment_bytes: 10,
            ..Default::default()
        },
        LocalLogConfig {
            max_record_bytes: u32::MAX,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            LocalLog::open(dir.path(), config),
            Err(OpenError::InvalidConfig(_))
        ));
    }
}

#[test]
fn open_creates_missing_directories_and_ignores_other_files() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("a/b/log");
    block_on(async {
        let log = open(&dir);
        append_range(&log, 0, 3).await;
        drop(log);
        fs::write(dir.join("README"), "not a segment").expect("write");
        fs::write(dir.join("123.log"), "not a segment name").expect("write");
        assert_holds(&open(&dir), 3).await;
    });
}

#[test]
fn readers_drain_then_close_when_the_log_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let log = open(dir.path());
        append_range(&log, 0, 3).await;
        let mut reader = log.reader(&LogPosition::default()).await.expect("reader");
        let mut idle = log
            .reader(&log.end().await.expect("end"))
            .await
            .expect("reader");
        let mut waiting = Box::pin(async move { idle.next_batch(1).await });
        assert!(poll_once(&mut waiting).is_pending());
        drop(log);
        assert!(matches!(
            within("closed", waiting).await,
            Err(ReadError::Closed)
        ));
        assert_eq!(
            within("batch", reader.next_batch(10))
                .await
                .expect("batch")
                .len(),
            3
        );
        assert!(matches!(
            within("closed", reader.next_batch(10)).await,
            Err(ReadError::Closed)
        ));
    });
}

#[test]
fn a_reader_created_before_appends_sees_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let log = Arc::new(open_with(dir.path(), 128));
        let mut reader = log.reader(&LogPosition::default()).await.expect("reader");
        let writer = {
            let log = Arc::clone(&log);
            tokio::spawn(async move { append_range(&log, 0, 200).await })
        };
        let mut next = 0;
        while next < 200 {
            for record in within("batch", reader.next_batch(64)).await.expect("batch") {
                assert_eq!((record.offset, record.payload), (next, payload(next)));
                next += 1;
            }
        }
        within("writer", writer).await.expect("writer");
    });
}

#[test]
fn damage_found_while_reading_is_an_error_not_a_skip() {
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let log = open_with(dir.path(), HEADER + 4 * FRAME);
        append_range(&log, 0, 12).await;
        // Bit rot in a closed segment after the open scan.
        flip_byte(&segments(dir.path())[1], HEADER + FRAME + 25);
        let mut reader = log.reader(&LogPosition::default()).await.expect("reader");
        let mut read = Vec::new();
        let error = loop {
            match within("batch", reader.next_batch(100)).await {
                Ok(batch) => read.extend(batch.into_iter().map(|r| r.offset)),
                Err(error) => break error,
            }
        };
        assert!(
            matches!(
                error,
                ReadError::Corrupt {
                    partition: 0,
                    offset: 5,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(read, (0..5).collect::<Vec<_>>());
        // The reader stays before the damaged record.
        assert!(matches!(
            within("batch", reader.next_batch(100)).await,
            Err(ReadError::Corrupt { offset: 5, .. })
        ));
    });
}
