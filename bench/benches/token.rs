//! ns per `TokenBook::open` (a valid token of a vendor without max age) and per `seal`, next to
//! a bare AES-256-GCM open of the same bytes, so the cost of decoding and checks shows as a ratio.
//!
//! `cargo bench -p ddns-bench --bench token`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use criterion::{Criterion, criterion_group, criterion_main};
use ddns_ingest::{TokenBook, VendorCredentials, VendorKey};

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const NOW: u64 = 1_700_000_000;
const MAC: &str = "E0:46:9A:B8:1B:FC";

fn book() -> TokenBook {
    TokenBook::new(vec![VendorCredentials {
        vendor: "acme".into(),
        keys: vec![VendorKey {
            id: 1,
            secret_hex: KEY.into(),
        }],
        max_age_secs: None,
    }])
    .unwrap()
}

/// The baseline: AES-256-GCM alone on a token's header, nonce, body and tag.
struct Bare {
    cipher: Aes256Gcm,
    header: [u8; 3],
    nonce: [u8; 12],
    body: Vec<u8>,
    tag: [u8; 16],
}

impl Bare {
    fn new() -> Bare {
        let cipher = Aes256Gcm::new_from_slice(&[7; 32]).unwrap();
        let (header, nonce) = ([1, 0, 1], [9; 12]);
        let mut body = [&[0u8; 8][..], MAC.as_bytes()].concat();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &header, &mut body)
            .unwrap();
        Bare {
            cipher,
            header,
            nonce,
            body,
            tag: tag.into(),
        }
    }

    fn open(&self) -> bool {
        let mut body = [0u8; 64];
        let body = &mut body[..self.body.len()];
        body.copy_from_slice(&self.body);
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&self.nonce),
                &self.header,
                body,
                Tag::from_slice(&self.tag),
            )
            .is_ok()
    }
}

fn token(c: &mut Criterion) {
    let book = book();
    let token = book.seal("acme", MAC, NOW).unwrap();
    assert_eq!(book.open(&token, NOW).unwrap().mac, MAC);
    let bare = Bare::new();
    assert!(bare.open());

    let mut group = c.benchmark_group("token");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    group.bench_function("open", |b| {
        b.iter(|| book.open(black_box(&token), NOW).unwrap())
    });
    group.bench_function("seal", |b| {
        b.iter(|| book.seal("acme", black_box(MAC), NOW).unwrap())
    });
    group.bench_function("bare_aes_gcm_open", |b| b.iter(|| black_box(&bare).open()));
    group.finish();

    // Ratios, from a plain timed loop (criterion reports absolute times only).
    let per_op = |f: &dyn Fn()| {
        let n = 200_000u32;
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(n)
    };
    let open = per_op(&|| {
        black_box(book.open(black_box(&token), NOW).unwrap());
    });
    let seal = per_op(&|| {
        black_box(book.seal("acme", black_box(MAC), NOW).unwrap());
    });
    let bare = per_op(&|| {
        black_box(black_box(&bare).open());
    });
    println!(
        "token ratios: open = {:.2}x bare AES-GCM open ({open:.0} ns vs {bare:.0} ns); \
         seal = {:.2}x open; one core opens {:.1}M tokens/s",
        open / bare,
        seal / open,
        1e3 / open
    );
}

criterion_group!(benches, token);
criterion_main!(benches);
