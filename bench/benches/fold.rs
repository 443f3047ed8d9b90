//! Events folded per second, and the event codec, on a realistic mix: a fleet of 100k devices,
//! mostly address changes, some adds and removes. Prints the fold's rate as a ratio against
//! decoding alone (the fold's peer on the projector's path).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ddns_core::{
    DeviceId, Event, EventBody, EventId, Fqdn, Label, State, decode_event, encode_event,
};

const DEVICES: u32 = 100_000;
const EVENTS: usize = 200_000;

fn events() -> Vec<Event> {
    let zone = Fqdn::parse("dyn.example").expect("valid");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(EVENTS + DEVICES as usize);
    // Register the fleet, then churn it.
    for d in 0..DEVICES {
        out.push(add(&zone, d, d, IpAddr::V4(Ipv4Addr::from(d))));
    }
    for i in 0..EVENTS {
        let r = next();
        let d = (r % u64::from(DEVICES)) as u32;
        let addr = IpAddr::V4(Ipv4Addr::from((r >> 32) as u32));
        let device = DeviceId {
            vendor: "acme".into(),
            mac: format!("{d:012X}"),
        };
        let body = match r % 100 {
            0..=89 => EventBody::DeviceUpdate {
                device,
                zone: zone.clone(),
                addr,
                user_agent: "Acme - Cam - 1".into(),
                fields: vec![],
            },
            90..=94 => add(&zone, d, (r >> 40) as u32 % DEVICES, addr).body,
            _ => EventBody::DeviceRemove {
                device,
                zone: zone.clone(),
            },
        };
        out.push(Event {
            id: EventId(i as u128),
            at_ms: i as u64,
            body,
        });
    }
    out
}

fn add(zone: &Fqdn, d: u32, label: u32, addr: IpAddr) -> Event {
    Event {
        id: EventId(u128::from(d) << 64),
        at_ms: 0,
        body: EventBody::DeviceAdd {
            device: DeviceId {
                vendor: "acme".into(),
                mac: format!("{d:012X}"),
            },
            zone: zone.clone(),
            label: Label::parse(&format!("cam{label}")).expect("valid"),
            addr,
            user_agent: "Acme - Cam - 1".into(),
            fields: vec![("port".into(), "8080".into())],
        },
    }
}

fn bench(c: &mut Criterion) {
    let events = events();
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|e| encode_event(e).expect("encodes"))
        .collect();

    let mut group = c.benchmark_group("fold");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("apply 300k events, 100k devices", |b| {
        b.iter_batched(
            State::new,
            |mut state| {
                for event in &events {
                    std::hint::black_box(state.apply(event));
                }
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode+apply 300k events", |b| {
        b.iter_batched(
            State::new,
            |mut state| {
                for bytes in &encoded {
                    std::hint::black_box(state.apply(&decode_event(bytes).expect("decodes")));
                }
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    let update = &events[DEVICES as usize];
    let update_bytes = encode_event(update).expect("encodes");
    group.bench_function("encode update", |b| {
        b.iter(|| encode_event(std::hint::black_box(update)))
    });
    group.bench_function("decode update", |b| {
        b.iter(|| decode_event(std::hint::black_box(&update_bytes)))
    });
    group.finish();

    // Ratio against the codec alone, timed in this run.
    let started = Instant::now();
    for bytes in &encoded {
        std::hint::black_box(decode_event(bytes).expect("decodes"));
    }
    let decode_only = started.elapsed();
    let mut state = State::new();
    let started = Instant::now();
    for event in &events {
        std::hint::black_box(state.apply(event));
    }
    let fold_only = started.elapsed();
    let rate = events.len() as f64 / fold_only.as_secs_f64();
    println!(
        "fold: {:.2} M events/s; fold costs {:.2}x a decode of the same events",
        rate / 1e6,
        fold_only.as_secs_f64() / decode_only.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
