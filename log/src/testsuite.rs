//! The shared test suite every [`EventLog`] backend must pass (cargo feature `testsuite`).
//!
//! A backend's tests implement [`LogFactory`] and expand [`event_log_testsuite!`](crate::event_log_testsuite)
//! with it, which generates one `#[test]` per case:
//!
//! ```text
//! struct Factory;
//! #[async_trait::async_trait]
//! impl ddns_log::testsuite::LogFactory for Factory { /* … */ }
//! ddns_log::event_log_testsuite!(Factory);
//! ```
//!
//! Each case is also a public `async fn` taking `&dyn LogFactory`, for running one by hand.
//! Waits are bounded by [`DEADLINE`]; nothing sleeps.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;

use crate::{AppendError, EventLog, LogPosition, LogReader, LogRecord, ReadError, partition_for};

/// How long any single wait in the suite may take before the case fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Makes logs for the suite.
#[async_trait::async_trait]
pub trait LogFactory: Send + Sync {
    /// The most partitions [`LogFactory::create`] supports (1 for the embedded log).
    fn max_partitions(&self) -> u32;
    /// Whether a reopened store still holds what was appended (false for `MemLog`); the reopen
    /// cases are skipped if not.
    fn persistent(&self) -> bool;
    /// A new, empty store with `partitions` partitions (at most [`LogFactory::max_partitions`]).
    async fn create(&self, partitions: u32) -> Box<dyn LogStore>;
}

/// One log's storage (a directory, a topic), which can be opened repeatedly.
#[async_trait::async_trait]
pub trait LogStore: Send + Sync {
    /// Opens the log. The suite drops every handle of the previous opening before opening again.
    async fn open(&self) -> Arc<dyn EventLog>;
}

/// Runs a case on a multi-threaded tokio runtime (what the generated tests call).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime for the test")
        .block_on(future)
}

/// Awaits `future`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// Polls `future` once, without waiting.
pub fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// Reads exactly `n` records (fails if a batch would take it past `n`).
pub async fn read_n(reader: &mut dyn LogReader, n: usize) -> Vec<LogRecord> {
    let mut records = Vec::with_capacity(n);
    while records.len() < n {
        let want = n - records.len();
        let batch = within("records", reader.next_batch(want))
            .await
            .expect("next_batch");
        assert!(!batch.is_empty(), "next_batch returned an empty batch");
        assert!(
            batch.len() <= want,
            "next_batch returned {} records, max was {want}",
            batch.len()
        );
        records.extend(batch);
    }
    records
}

/// Appends one record, expecting success.
pub async fn append(log: &dyn EventLog, key: &str, payload: &str) -> crate::Appended {
    within(
        "append",
        log.append(key.as_bytes(), Bytes::copy_from_slice(payload.as_bytes())),
    )
    .await
    .expect("append")
}

/// Reads every record below the log's current end, from the start.
pub async fn read_all(log: &dyn EventLog) -> Vec<LogRecord> {
    let end = log.end().await.expect("end");
    let mut reader = log.reader(&LogPosition::default()).await.expect("reader");
    read_n(&mut *reader, end.total() as usize).await
}

/// A new store and the log opened on it. Keep the store as long as the log: it may own the
/// log's storage (a temporary directory).
pub async fn open_new(
    factory: &dyn LogFactory,
    partitions: u32,
) -> (Box<dyn LogStore>, Arc<dyn EventLog>) {
    let store = factory.create(partitions).await;
    let log = store.open().await;
    (store, log)
}

/// Records in order of (partition, offset).
fn sorted(mut records: Vec<LogRecord>) -> Vec<LogRecord> {
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// Records appended in order come back in order, with their keys and payloads, in the
/// partition `partition_for` names.
pub async fn append_then_read_in_order(factory: &dyn LogFactory) {
    let (_store, log) = open_new(factory, 1).await;
    let mut appended = Vec::new();
    for i in 0..50 {
        appended.push(append(&*log, &format!("host{}", i % 5), &format!("event {i}")).await);
    }
    let records = read_all(&*log).await;
    assert_eq!(records.len(), 50);
    for (i, (record, appended)) in records.iter().zip(&appended).enumerate() {
        assert_eq!(
            (record.partition, record.offset),
            (appended.partition, appended.offset)
        );
        assert_eq!(record.key, format!("host{}", i % 5).as_bytes());
        assert_eq!(record.payload, format!("event {i}").as_bytes());
    }
}

/// Offsets are 0, 1, 2, … in every partition.
pub async fn offsets_dense_from_zero(factory: &dyn LogFactory) {
    let partitions = factory.max_partitions().min(4);
    let (_store, log) = open_new(factory, partitions).await;
    assert_eq!(log.partitions(), partitions);
    let mut next = vec![0u64; partitions as usize];
    for i in 0..40 {
        let appended = append(&*log, &format!("k{i}"), "x").await;
        assert_eq!(
            appended.offset, next[appended.partition as usize],
            "append {i}"
        );
        next[appended.partition as usize] += 1;
    }
    let mut expected = vec![0u64; partitions as usize];
    for record in sorted(read_all(&*log).await) {
        assert_eq!(record.offset, expected[record.partition as usize]);
        expected[record.partition as usize] += 1;
    }
    assert_eq!(expected, next);
}

/// `end()` is the start of every partition on an empty log and moves with each append.
pub async fn end_tracks_appends(factory: &dyn LogFactory) {
    let partitions = factory.max_partitions().min(3);
    let (_store, log) = open_new(factory, partitions).await;
    assert_eq!(
        log.end().await.expect("end"),
        LogPosition::start(partitions)
    );
    let mut expected = LogPosition::start(partitions);
    for i in 0..20 {
        let appended = append(&*log, &format!("name{i}"), "e").await;
        expected.advance(appended.partition, appended.offset);
        assert_eq!(log.end().await.expect("end"), expected);
    }
    assert_eq!(expected.total(), 20);
}

/// A reader started at a middle position returns exactly the records from there on.
pub async fn read_from_middle_position(factory: &dyn LogFactory) {
    let (_store, log) = open_new(factory, 1).await;
    for i in 0..30 {
        append(&*log, "k", &format!("p{i}")).await;
    }
    for start in [0u64, 1, 13, 29, 30] {
        let mut reader = log
            .reader(&LogPosition::from_offsets(vec![start]))
            .await
            .expect("reader");
        let records = read_n(&mut *reader, (30 - start) as usize).await;
        let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (start..30).collect::<Vec<_>>());
        for record in &records {
            assert_eq!(record.payload, format!("p{}", record.offset).as_bytes());
        }
    }
}

/// `next_batch` waits while there is nothing new, and wakes when a record is appended.
pub async fn reader_waits_for_later_append(factory: &dyn LogFactory) {
    let (_store, log) = open_new(factory, 1).await;
    append(&*log, "k", "first").await;
    let mut reader = log
        .reader(&log.end().await.expect("end"))
        .await
        .expect("reader");
    let mut batch = Box::pin(async move { reader.next_batch(10).await });
    assert!(
        poll_once(&mut batch).is_pending(),
        "next_batch returned with nothing to read"
    );

    let waiting = tokio::spawn(batch);
    let appended = append(&*log, "k", "second").await;
    let records = within("the woken reader", waiting)
        .await
        .expect("reader task")
        .expect("batch");
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].offset, &records[0].payload[..]),
        (appended.offset, &b"second"[..])
    );
}

/// 256 concurrent appends are each acknowledged once, at distinct offsets, and each reads back.
pub async fn concurrent_appends_acknowledged_once(factory: &dyn LogFactory) {
    let partitions = factory.max_partitions().min(4);
    let (_store, log) = open_new(factory, partitions).await;
    let tasks: Vec<_> = (0..256)
        .map(|i| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let key = format!("device{}", i % 32);
                let appended = log
                    .append(key.as_bytes(), Bytes::from(format!("update {i}")))
                    .await
                    .expect("append");
                (appended, i)
            })
        })
        .collect();
    let mut acknowledged = HashMap::new();
    for task in tasks {
        let (appended, i) = within("an append", task).await.expect("append task");
        let previous = acknowledged.insert((appended.partition, appended.offset), i);
        assert!(
            previous.is_none(),
            "two appends acknowledged at {appended:?}"
        );
    }
    assert_eq!(acknowledged.len(), 256);
    let records = read_all(&*log).await;
    assert_eq!(records.len(), 256);
    for record in records {
        let i = acknowledged[&(record.partition, record.offset)];
        assert_eq!(record.payload, format!("update {i}").as_bytes());
        assert_eq!(record.key, format!("device{}", i % 32).as_bytes());
    }
}

/// Each key's records land in `partition_for(key)` and read back in the order they were
/// appended, while other keys append concurrently.
pub async fn per_partition_order(factory: &dyn LogFactory) {
    let partitions = factory.max_partitions().min(4);
    let (_store, log) = open_new(factory, partitions).await;
    let keys: Vec<String> = (0..8).map(|i| format!("cam{i}.view.example")).collect();
    let tasks: Vec<_> = keys
        .iter()
        .cloned()
        .map(|key| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for seq in 0..25 {
                    let appended = append(&*log, &key, &seq.to_string()).await;
                    assert_eq!(
                        appended.partition,
                        partition_for(key.as_bytes(), partitions)
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        within("a key's appends", task).await.expect("append task");
    }

    let mut seen: BTreeMap<Bytes, Vec<u32>> = BTreeMap::new();
    let mut last_offset: BTreeMap<u32, u64> = BTreeMap::new();
    for record in read_all(&*log).await {
        assert_eq!(record.partition, partition_for(&record.key, partitions));
        if let Some(&last) = last_offset.get(&record.partition) {
            assert!(
                record.offset > last,
                "partition {} out of order",
                record.partition
            );
        }
        last_offset.insert(record.partition, record.offset);
        let seq = std::str::from_utf8(&record.payload)
            .expect("utf8")
            .parse()
            .expect("seq");
        seen.entry(record.key).or_default().push(seq);
    }
    assert_eq!(seen.len(), keys.len());
    for (key, seqs) in seen {
        assert_eq!(seqs, (0..25).collect::<Vec<_>>(), "order of {key:?}");
    }
}

/// Appends report the partition `partition_for` gives, the same one the record is read from.
pub async fn appends_go_to_partition_for(factory: &dyn LogFactory) {
    let partitions = factory.max_partitions().min(8);
    let (_store, log) = open_new(factory, partitions).await;
    let mut used = BTreeSet::new();
    for i in 0..64 {
        let key = format!("h{i}");
        let appended = append(&*log, &key, "").await;
        assert_eq!(
            appended.partition,
            partition_for(key.as_bytes(), partitions)
        );
        used.insert(appended.partition);
    }
    assert_eq!(
        used.len(),
        partitions as usize,
        "64 keys should reach every partition"
    );
}

/// Everything appended is there after reopening, and offsets continue where they stopped.
pub async fn reopen_keeps_everything(factory: &dyn LogFactory) {
    if !factory.persistent() {
        return;
    }
    let partitions = factory.max_partitions().min(2);
    let store = factory.create(partitions).await;
    let log = store.open().await;
    for i in 0..40 {
        append(&*log, &format!("k{}", i % 3), &format!("v{i}")).await;
    }
    let before = sorted(read_all(&*log).await);
    let end = log.end().await.expect("end");
    drop(log);

    let log = store.open().await;
    assert_eq!(log.end().await.expect("end"), end);
    assert_eq!(sorted(read_all(&*log).await), before);
    let appended = append(&*log, "k0", "after reopen").await;
    assert_eq!(appended.offset, end.offset(appended.partition));
    drop(log);

    let log = store.open().await;
    let records = read_all(&*log).await;
    assert_eq!(records.len(), 41);
    assert!(records.iter().any(|r| r.payload == "after reopen"));
}

/// Each store has its own identity, which survives reopening: a position stored beside it can
/// tell which log it belongs to.
pub async fn identity_names_the_store(factory: &dyn LogFactory) {
    let (store, log) = open_new(factory, 1).await;
    let (_other_store, other) = open_new(factory, 1).await;
    let identity = log.identity().to_owned();
    assert!(!identity.is_empty(), "an identity is never empty");
    assert_ne!(identity, other.identity(), "two stores, two identities");
    if factory.persistent() {
        append(&*log, "k", "v").await;
        drop(log);
        assert_eq!(
            store.open().await.identity(),
            identity,
            "reopened, same identity"
        );
    }
}

/// A reader can't start past the end: that would silently skip records.
pub async fn reader_past_end_is_out_of_range(factory: &dyn LogFactory) {
    let (_store, log) = open_new(factory, 1).await;
    append(&*log, "k", "v").await;
    assert!(
        log.reader(&LogPosition::from_offsets(vec![1]))
            .await
            .is_ok()
    );
    assert!(log.reader(&LogPosition::start(1)).await.is_ok());
    assert!(matches!(
        log.reader(&LogPosition::from_offsets(vec![2])).await,
        Err(ReadError::OutOfRange {
            partition: 0,
            requested: 2,
            end: 1
        })
    ));
    let extra = log.partitions();
    let mut beyond = LogPosition::start(1);
    beyond.advance(extra, 0);
    assert!(matches!(
        log.reader(&beyond).await,
        Err(ReadError::OutOfRange {
            requested: 1,
            end: 0,
            ..
        })
    ));
}

/// `next_batch(max)` never returns more than `max`, and `max == 0` returns at once.
pub async fn next_batch_respects_max(factory: &dyn LogFactory) {
    let (_store, log) = open_new(factory, 1).await;
    for i in 0..10 {
        append(&*log, "k", &i.to_string()).await;
    }
    let mut reader = log.reader(&LogPosition::default()).await.expect("reader");
    assert!(
        within("max 0", reader.next_batch(0))
            .await
            .expect("batch")
            .is_empty()
    );
    let mut offsets = Vec::new();
    while offsets.len() < 10 {
        let batch = within("a batch", reader.next_batch(3))
            .await
            .expect("batch");
        assert!((1..=3).contains(&batch.len()), "batch of {}", batch.len());
        offsets.extend(batch.iter().map(|r| r.offset));
    }
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
}

/// Two readers each see every record.
pub async fn readers_are_independent(factory: &dyn LogFactory) {
    let (_store, log) = open_new(factory, 1).await;
    let mut a = log.reader(&LogPosition::default()).await.expect("reader");
    let mut b = log.reader(&LogPosition::default()).await.expect("reader");
    for i in 0..5 {
        append(&*log, "k", &i.to_string()).await;
    }
    let from_a = read_n(&mut *a, 5).await;
    let from_b = read_n(&mut *b, 5).await;
    assert_eq!(from_a, from_b);
}

/// Empty keys and payloads, and arbitrary bytes, round-trip.
pub async fn empty_and_binary_records(factory: &dyn LogFactory) {
    let (_store, log) = open_new(factory, 1).await;
    let binary: Vec<u8> = (0..=255).collect();
    log.append(b"", Bytes::new()).await.expect("append");
    log.append(&binary, Bytes::from(binary.clone()))
        .await
        .expect("append");
    let records = read_all(&*log).await;
    assert_eq!((records[0].key.len(), records[0].payload.len()), (0, 0));
    assert_eq!(
        (&records[1].key[..], &records[1].payload[..]),
        (&binary[..], &binary[..])
    );
}

/// A record over the backend's limit is refused (if the backend has a limit below 16 MiB) and
/// changes nothing.
pub async fn too_large_changes_nothing(factory: &dyn LogFactory) {
    let (_store, log) = open_new(factory, 1).await;
    append(&*log, "k", "before").await;
    let huge = Bytes::from(vec![7u8; 16 << 20]);
    match log.append(b"k", huge).await {
        Err(AppendError::TooLarge { .. }) => {
            assert_eq!(log.end().await.expect("end").total(), 1);
            append(&*log, "k", "after").await;
            let records = read_all(&*log).await;
            assert_eq!(records.len(), 2);
            assert_eq!(records[1].payload, "after");
        }
        Ok(_) => {} // A backend without a limit this low.
        Err(other) => panic!("expected TooLarge, got {other:?}"),
    }
}

/// Generates one `#[test]` per case of the shared suite, for the [`LogFactory`] that
/// `$factory` evaluates to (evaluated once per test).
///
/// [`LogFactory`]: crate::testsuite::LogFactory
#[macro_export]
macro_rules! event_log_testsuite {
    ($factory:expr) => {
        $crate::event_log_testsuite!(@cases $factory;
            append_then_read_in_order,
            offsets_dense_from_zero,
            end_tracks_appends,
            read_from_middle_position,
            reader_waits_for_later_append,
            concurrent_appends_acknowledged_once,
            per_partition_order,
            appends_go_to_partition_for,
            reopen_keeps_everything,
            identity_names_the_store,
            reader_past_end_is_out_of_range,
            next_batch_respects_max,
            readers_are_independent,
            empty_and_binary_records,
            too_large_changes_nothing,
        );
    };
    (@cases $factory:expr; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let factory = $factory;
                $crate::testsuite::block_on($crate::testsuite::$case(&factory));
            }
        )*
    };
}
