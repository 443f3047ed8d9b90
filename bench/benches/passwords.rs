//! What a host password costs the server: a DVR's repeated password checked from memory
//! (`VerifiedPasswords::remembers`, a keyed BLAKE2b and a compare) next to the argon2id run it
//! replaces (OWASP's m = 19 MiB, t = 2, p = 1), which is also what one portal sign-in costs.
//! Prints the ratio, and the sign-ins per second the machine's cores allow.
//!
//! `cargo bench -p ddns-bench --bench passwords`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ddns_ingest::{PasswordHasher, VerifiedPasswords};

const HOST: &str = "cam.brian.dyn.example";
const PASSWORD: &str = "abc";

fn passwords(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hasher = PasswordHasher::new();
    let hash = runtime.block_on(hasher.hash(PASSWORD.into())).unwrap();
    let verified = VerifiedPasswords::new(1 << 20);
    assert!(
        runtime
            .block_on(verified.verify(&hasher, HOST, &hash, PASSWORD))
            .unwrap()
    );

    let mut group = c.benchmark_group("host_password");
    group.bench_function("remembered", |b| {
        b.iter(|| assert!(verified.remembers(black_box(HOST), &hash, black_box(PASSWORD))))
    });
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("argon2id_owasp", |b| {
        b.iter(|| {
            let ok = runtime.block_on(hasher.verify(PASSWORD.into(), hash.clone()));
            assert!(ok.unwrap());
        })
    });
    group.finish();

    // The ratio, measured side by side here rather than read off two reports.
    let remembered = time(10_000, || {
        black_box(verified.remembers(HOST, &hash, PASSWORD));
    });
    let argon2 = time(5, || {
        black_box(
            runtime
                .block_on(hasher.verify(PASSWORD.into(), hash.clone()))
                .unwrap(),
        );
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "host password: remembered {:.2} µs, argon2id {:.1} ms: {:.0}× cheaper; \
         sign-ins at most {:.0}/s on {cores} cores",
        remembered.as_secs_f64() * 1e6,
        argon2.as_secs_f64() * 1e3,
        argon2.as_secs_f64() / remembered.as_secs_f64(),
        cores as f64 / argon2.as_secs_f64()
    );
}

/// The mean time of `f` over `n` runs.
fn time(n: u32, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed() / n
}

criterion_group!(benches, passwords);
criterion_main!(benches);
