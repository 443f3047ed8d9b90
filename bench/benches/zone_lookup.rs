//! ns per `LiveZone::lookup_wire` (hit and miss, the name in wire form as both DNS paths pass it)
//! on a zone of 1M hosts, and ns per whole answer for an A hit and an NXDOMAIN, through
//! `FastPath::answer` (the UDP path: parse, look up, write the reply in place) and through
//! `Responder::respond` (hickory: decode, look up, build, encode), so the cost of each DNS layer
//! over the lookup shows as a ratio.
//!
//! `cargo bench -p ddns-bench --bench zone_lookup`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ddns_core::{Fqdn, HostAddrs, LiveZone, ZoneApex};
use ddns_dns::{Fast, FastPath, Responder, Transport};

const HOSTS: u32 = 1_000_000;
/// Distinct names each benchmark cycles through, so that one hot entry does not flatter it.
const PROBES: usize = 4096;

fn zone() -> Arc<LiveZone> {
    let start = Instant::now();
    let origin = Fqdn::parse("dyn.example").unwrap();
    let zone = LiveZone::new(vec![ZoneApex::with_defaults(origin, 60)]);
    for i in 0..HOSTS {
        let host = Fqdn::parse(&format!("host{i}.dyn.example")).unwrap();
        zone.set(
            &host,
            HostAddrs {
                v4: Some(Ipv4Addr::from(0x0a00_0000 + i)),
                v6: None,
            },
        );
    }
    println!(
        "zone of {} hosts built in {:.1?}",
        zone.len(),
        start.elapsed()
    );
    Arc::new(zone)
}

/// Hosts spread over the zone (a multiplicative hash of 0..PROBES), and names that are not in it.
fn probes() -> (Vec<String>, Vec<String>) {
    let hits = (0..PROBES as u32)
        .map(|i| format!("host{}.dyn.example", i.wrapping_mul(2_654_435_761) % HOSTS))
        .collect();
    let misses = (0..PROBES)
        .map(|i| format!("missing{i}.dyn.example"))
        .collect();
    (hits, misses)
}

/// `name` in wire form, root label included.
fn wire(name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for label in name.split('.') {
        bytes.push(label.len() as u8);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.push(0);
    bytes
}

/// A query for `name`/A as a resolver sends it: RD clear, one question, an OPT for 1232 bytes.
fn query(name: &str) -> Vec<u8> {
    let mut bytes = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        bytes.push(label.len() as u8);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.extend_from_slice(&[0, 0, 1, 0, 1]);
    bytes.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    bytes
}

/// (RCODE, ANCOUNT) of a reply.
fn rcode_and_answers(reply: &[u8]) -> (u8, u16) {
    (reply[3] & 0x0f, u16::from_be_bytes([reply[6], reply[7]]))
}

fn zone_lookup(c: &mut Criterion) {
    let zone = zone();
    let responder = Responder::new(zone.clone());
    let (hits, misses) = probes();
    let hit_queries: Vec<Vec<u8>> = hits.iter().map(|name| query(name)).collect();
    let miss_queries: Vec<Vec<u8>> = misses.iter().map(|name| query(name)).collect();
    let hits: Vec<Vec<u8>> = hits.iter().map(|name| wire(name)).collect();
    let misses: Vec<Vec<u8>> = misses.iter().map(|name| wire(name)).collect();
    let respond = |query: &[u8]| responder.respond(query, Transport::Udp).unwrap();
    assert_eq!(rcode_and_answers(&respond(&hit_queries[0])), (0, 1));
    assert_eq!(rcode_and_answers(&respond(&miss_queries[0])), (3, 0));
    let fast = FastPath::new(zone.clone());
    let mut buf = vec![0u8; 4096];
    let mut fast_answer = |query: &[u8]| {
        buf[..query.len()].copy_from_slice(query);
        let Fast::Reply(len) = fast.answer(&mut buf, query.len()) else {
            panic!("the fast path answers a plain A query");
        };
        rcode_and_answers(&buf[..len])
    };
    assert_eq!(fast_answer(&hit_queries[0]), (0, 1));
    assert_eq!(fast_answer(&miss_queries[0]), (3, 0));

    let mut group = c.benchmark_group("zone_lookup");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    let mut i = 0;
    group.bench_function("lookup_hit", |b| {
        b.iter(|| {
            i = (i + 1) % PROBES;
            black_box(zone.lookup_wire(black_box(&hits[i])));
        })
    });
    group.bench_function("lookup_miss", |b| {
        b.iter(|| {
            i = (i + 1) % PROBES;
            black_box(zone.lookup_wire(black_box(&misses[i])));
        })
    });
    group.bench_function("fast_a_hit", |b| {
        b.iter(|| {
            i = (i + 1) % PROBES;
            fast_answer(black_box(&hit_queries[i]))
        })
    });
    group.bench_function("fast_nxdomain", |b| {
        b.iter(|| {
            i = (i + 1) % PROBES;
            fast_answer(black_box(&miss_queries[i]))
        })
    });
    group.bench_function("answer_a_hit", |b| {
        b.iter(|| {
            i = (i + 1) % PROBES;
            respond(black_box(&hit_queries[i]))
        })
    });
    group.bench_function("answer_nxdomain", |b| {
        b.iter(|| {
            i = (i + 1) % PROBES;
            respond(black_box(&miss_queries[i]))
        })
    });
    group.finish();

    // Ratios, from a plain timed loop (criterion reports absolute times only).
    let per_op = |f: &mut dyn FnMut(usize)| {
        let n = 400_000;
        let start = Instant::now();
        for k in 0..n {
            f(k % PROBES);
        }
        start.elapsed().as_nanos() as f64 / n as f64
    };
    let lookup_hit = per_op(&mut |k| {
        black_box(zone.lookup_wire(black_box(&hits[k])));
    });
    let lookup_miss = per_op(&mut |k| {
        black_box(zone.lookup_wire(black_box(&misses[k])));
    });
    let fast_hit = per_op(&mut |k| {
        black_box(fast_answer(black_box(&hit_queries[k])));
    });
    let fast_miss = per_op(&mut |k| {
        black_box(fast_answer(black_box(&miss_queries[k])));
    });
    let answer_hit = per_op(&mut |k| {
        black_box(respond(black_box(&hit_queries[k])));
    });
    let answer_miss = per_op(&mut |k| {
        black_box(respond(black_box(&miss_queries[k])));
    });
    println!(
        "zone_lookup ratios: fast A answer = {:.1}x lookup hit ({fast_hit:.0} ns vs {lookup_hit:.0} ns), \
         fast NXDOMAIN = {:.1}x lookup miss ({fast_miss:.0} ns vs {lookup_miss:.0} ns); \
         Responder A answer = {:.1}x the fast one ({answer_hit:.0} ns), NXDOMAIN {:.1}x ({answer_miss:.0} ns); \
         one core answers {:.2}M A queries/s on the fast path before sockets",
        fast_hit / lookup_hit,
        fast_miss / lookup_miss,
        answer_hit / fast_hit,
        answer_miss / fast_miss,
        1e3 / fast_hit
    );
}

criterion_group!(benches, zone_lookup);
criterion_main!(benches);
