//! ns per `FloodGuard::allow_source` / `allow_device` on a warm limiter holding 100k keys of
//! each kind, next to a plain `DashMap` lookup over the same keys, so governor's cost shows as a
//! ratio; and the refused path, which a flood hits.
//!
//! `cargo bench -p ddns-bench --bench flood`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dashmap::DashMap;
use ddns_ingest::{FloodConfig, FloodGuard};

const KEYS: usize = 100_000;

fn flood(c: &mut Criterion) {
    // Quotas high enough that the cycling checks below are always allowed: the common path.
    let guard = FloodGuard::new(&FloodConfig {
        device_updates_per_minute: u32::MAX,
        device_burst: u32::MAX,
        source_requests_per_minute: u32::MAX,
        source_burst: u32::MAX,
        ..FloodConfig::default()
    });
    let sources: Vec<IpAddr> = (0..KEYS as u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    let macs: Vec<String> = (0..KEYS)
        .map(|i| {
            format!(
                "E0:46:9A:{:02X}:{:02X}:{:02X}",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff
            )
        })
        .collect();
    for (source, mac) in sources.iter().zip(&macs) {
        assert!(guard.allow_source(*source));
        assert!(guard.allow_device("acme", mac));
    }
    assert_eq!(
        (guard.tracked_sources(), guard.tracked_devices()),
        (KEYS, KEYS)
    );
    let baseline: DashMap<IpAddr, u64> = sources.iter().map(|s| (*s, 0)).collect();

    // A flooded source: the refused path (one in 100 ms gets through as its quota refills).
    let strict = FloodGuard::new(&FloodConfig::default());
    let flooder = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    while strict.allow_source(flooder) {}

    let mut group = c.benchmark_group("flood");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    let mut i = 0;
    group.bench_function("allow_source_100k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            assert!(guard.allow_source(black_box(sources[i])));
        })
    });
    group.bench_function("allow_device_100k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            assert!(guard.allow_device("acme", black_box(&macs[i])));
        })
    });
    group.bench_function("allow_source_refused", |b| {
        b.iter(|| black_box(strict.allow_source(black_box(flooder))))
    });
    group.bench_function("dashmap_get_100k_keys_baseline", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(baseline.get(black_box(&sources[i])).map(|v| *v));
        })
    });
    group.finish();

    let mut per_op = |f: &mut dyn FnMut(usize)| {
        let n = 1_000_000;
        let start = Instant::now();
        for _ in 0..n {
            i = (i + 1) % KEYS;
            f(i);
        }
        start.elapsed().as_nanos() as f64 / n as f64
    };
    let source = per_op(&mut |i| assert!(guard.allow_source(black_box(sources[i]))));
    let device = per_op(&mut |i| assert!(guard.allow_device("acme", black_box(&macs[i]))));
    let lookup = per_op(&mut |i| {
        black_box(baseline.get(black_box(&sources[i])).map(|v| *v));
    });
    println!(
        "flood ratios: allow_source = {:.2}x a DashMap get ({source:.0} ns vs {lookup:.0} ns); \
         allow_device = {:.2}x allow_source",
        source / lookup,
        device / source
    );
}

criterion_group!(benches, flood);
criterion_main!(benches);
