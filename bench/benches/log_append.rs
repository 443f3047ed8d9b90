//! Appends per second to the event log: the embedded `LocalLog` (fdatasync'd, group commit) with
//! 1, 16 and 256 concurrent writers, and `MemLog` with 16 as the reference peer (the same API with
//! no disk). With group commit, `LocalLog`'s rate should grow with writers (fsync rate × batch
//! size) rather than stay at one append per fsync.
//!
//! Run: `cargo bench -p ddns-bench --bench log_append`. The log lives in a temporary directory
//! under the target directory (a tmpfs `/tmp` would make fsync free); set `DDNS_BENCH_DIR` to
//! measure another disk. Prints appends/s, fsyncs and ratios after the criterion output.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ddns_log::{EventLog, LocalLog, LocalLogConfig, MemLog};
use tokio::runtime::Runtime;

/// A payload the size of a typical encoded event (an IP change with its metadata).
const PAYLOAD_BYTES: usize = 160;

/// Appends `iters` records split over `writers` concurrent tasks; returns the wall time.
fn append_concurrently(
    rt: &Runtime,
    log: &Arc<dyn EventLog>,
    writers: u64,
    iters: u64,
) -> Duration {
    let payload = Bytes::from(vec![b'e'; PAYLOAD_BYTES]);
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let log = Arc::clone(log);
                let payload = payload.clone();
                let n = iters / writers + u64::from(w < iters % writers);
                tokio::spawn(async move {
                    let key = format!("cam{w}.view.example");
                    for _ in 0..n {
                        log.append(key.as_bytes(), payload.clone())
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("writer task");
        }
        start.elapsed()
    })
}

/// Appends and time measured per case, for the summary.
type Totals = Mutex<BTreeMap<String, (u64, Duration)>>;

fn measure(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    totals: &Totals,
    name: &str,
    writers: u64,
    log: &Arc<dyn EventLog>,
) {
    c.bench_function(BenchmarkId::new(name, writers), |b| {
        b.iter_custom(|iters| {
            let elapsed = append_concurrently(rt, log, writers, iters);
            let mut totals = totals.lock().expect("totals");
            let total = totals.entry(format!("{name}/{writers}")).or_default();
            total.0 += iters;
            total.1 += elapsed;
            elapsed
        })
    });
}

fn log_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let root = std::env::var_os("DDNS_BENCH_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    std::fs::create_dir_all(&root).expect("bench dir");
    let totals = Totals::default();
    let mut fsyncs = BTreeMap::new();

    let mut group = c.benchmark_group("log_append");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for writers in [1, 16, 256] {
        let dir = tempfile::tempdir_in(&root).expect("tempdir");
        let local = Arc::new(LocalLog::open(dir.path(), LocalLogConfig::default()).expect("open"));
        let log: Arc<dyn EventLog> = local.clone();
        measure(&mut group, &rt, &totals, "local", writers, &log);
        let stats = local.stats();
        fsyncs.insert(writers, (stats.appends, stats.fsyncs));
    }
    let mem: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    measure(&mut group, &rt, &totals, "mem", 16, &mem);
    group.finish();

    // Ratios, so a run on another machine can be compared with this one.
    let totals = totals.into_inner().expect("totals");
    let rate = |case: &str| {
        totals.get(case).map_or(0.0, |&(n, t)| {
            n as f64 / t.as_secs_f64().max(f64::MIN_POSITIVE)
        })
    };
    let base = rate("local/1");
    println!("\nlog_append summary (appends/s over every run, warm-up included):");
    for writers in [1, 16, 256] {
        let case = format!("local/{writers}");
        let (appends, syncs) = fsyncs[&writers];
        println!(
            "  {case:<10} {:>12.0}/s  {:>6.1}× local/1  {:>7.1} appends per fsync",
            rate(&case),
            rate(&case) / base,
            appends as f64 / syncs.max(1) as f64,
        );
    }
    println!(
        "  mem/16     {:>12.0}/s  {:>6.1}× local/1  (no disk: the ceiling of the API itself)",
        rate("mem/16"),
        rate("mem/16") / base
    );
}

criterion_group!(benches, log_append);
criterion_main!(benches);
