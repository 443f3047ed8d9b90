//! Bytes per host of what a node keeps in memory, measured as the growth of the process's RSS
//! while 1M hosts (as `ddnsd import` would make them) are folded into a `State` and set in a
//! `LiveZone`. Run: `cargo run --release -p ddns-bench --example memory [N]`.
//!
//! The headline `LiveZone` figure is for names like `h123456.dyn.example` with an A address, whose
//! slot holds both inline; the next line shows what spills (see `core/src/zone/table.rs`): names
//! over 10 characters, and AAAA addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ddns_core::{
    Device, DeviceId, Event, EventBody, EventId, Fqdn, HostAddrs, LiveZone, State, ZoneApex,
};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("linux");
    let pages: u64 = statm
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("rss pages");
    pages * 4096
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let zone = Fqdn::parse("dyn.example").expect("valid");
    let names: Vec<Fqdn> = (0..n)
        .map(|i| Fqdn::parse(&format!("h{i}.dyn.example")).expect("valid"))
        .collect();
    let addr = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i));

    let before = rss_bytes();
    let mut state = State::new();
    for (i, name) in names.iter().enumerate() {
        let body = EventBody::HostImport {
            zone: zone.clone(),
            name: name.clone(),
            addr: addr(i as u32),
        };
        state.apply(&Event {
            id: EventId(i as u128),
            at_ms: 0,
            body,
        });
    }
    let state_bytes = rss_bytes() - before;

    let zone_bytes = |name: &dyn Fn(u32) -> Fqdn, with_v6: bool| {
        let names: Vec<Fqdn> = (0..n).map(name).collect();
        let before = rss_bytes();
        let live = Arc::new(LiveZone::new(vec![ZoneApex::with_defaults(
            zone.clone(),
            60,
        )]));
        for (i, name) in names.iter().enumerate() {
            let IpAddr::V4(v4) = addr(i as u32) else {
                unreachable!()
            };
            let v6 = with_v6.then(|| Ipv6Addr::from(0x2001_0db8_u128 << 96 | i as u128));
            live.set(name, HostAddrs { v4: Some(v4), v6 });
        }
        let bytes = rss_bytes() - before;
        // Kept, so that the next zone's growth is not its freed memory.
        std::mem::forget(live);
        bytes
    };
    let short = |i: u32| names[i as usize].clone();
    let long = |i: u32| Fqdn::parse(&format!("device-{i:07}.dyn.example")).expect("valid");
    let zone_a = zone_bytes(&short, false);
    let zone_long = zone_bytes(&long, false);
    let zone_both = zone_bytes(&short, true);

    let per = |bytes: u64| bytes as f64 / f64::from(n);
    println!(
        "{n} hosts: State {:.0} B/host, LiveZone {:.0} B/host, together {:.0} MB",
        per(state_bytes),
        per(zone_a),
        (state_bytes + zone_a) as f64 / 1e6
    );
    // Where the State's bytes go: its slot array, and what each slot owns on the heap.
    let slot = size_of::<DeviceId>() + size_of::<Device>();
    println!(
        "State: {slot} B/host its slots (DeviceId {} + Device {}), {:.0} B/host the rest: three \
         heap strings per host (vendor, owner id and name, each at least a 32-byte malloc chunk) \
         and two tables of slot numbers",
        size_of::<DeviceId>(),
        size_of::<Device>(),
        per(state_bytes) - slot as f64
    );
    println!(
        "LiveZone, spilled: {:.0} B/host for device-0000123.dyn.example (A), {:.0} B/host for \
         h123.dyn.example with A and AAAA",
        per(zone_long),
        per(zone_both)
    );
    std::hint::black_box(&state);
}
