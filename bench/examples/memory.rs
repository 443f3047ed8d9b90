//! Bytes per host of what a node keeps in memory, measured as the growth of the process's RSS
//! while 1M hosts (as `ddnsd import` would make them, then as devices would register them) are
//! folded into a `State` and set in a `LiveZone`, and as many people's hosts (accounts, groups,
//! host passwords). Run:
//! `cargo run --release -p ddns-bench --example memory [N]`.
//!
//! The headline `LiveZone` figure is for names like `h123456.dyn.example` with an A address, whose
//! slot holds both inline; the next line shows what spills (see `core/src/zone/table.rs`): names
//! over 10 characters, and AAAA addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ddns_core::{
    AccountId, DeviceId, Event, EventBody, EventId, Fqdn, HostAddrs, Label, LiveZone, State,
    ZoneApex,
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

    // The same names registered by devices, with the values a device typically sends.
    let before = rss_bytes();
    let mut devices = State::new();
    for i in 0..n {
        let m = i.to_be_bytes();
        let body = EventBody::DeviceAdd {
            device: DeviceId {
                vendor: "demo".into(),
                mac: format!("00:11:{:02X}:{:02X}:{:02X}:{:02X}", m[0], m[1], m[2], m[3]),
            },
            zone: zone.clone(),
            label: Label::parse(&format!("h{i}")).expect("valid"),
            addr: addr(i),
            user_agent: "Company - Device - 1.0".into(),
            fields: vec![("port".into(), "8080".into())],
        };
        devices.apply(&Event {
            id: EventId(i.into()),
            at_ms: 1_700_000_000_000 + u64::from(i),
            body,
        });
    }
    let devices_bytes = rss_bytes() - before;

    // The same count of people's hosts: accounts of ten hosts each, in one group per account,
    // with an argon2id PHC string of the usual length and an address set by the DVR.
    let before = rss_bytes();
    let mut people = State::new();
    let hash = format!(
        "$argon2id$v=19$m=19456,t=2,p=1${}${}",
        "s".repeat(22),
        "h".repeat(43)
    );
    for a in 0..n.div_ceil(10) {
        let account = AccountId(u128::from(a));
        let ev = |id: u32, body| Event {
            id: EventId(u128::from(id) << 32 | u128::from(a)),
            at_ms: 1_700_000_000_000,
            body,
        };
        people.apply(&ev(
            0,
            EventBody::AccountCreated {
                user_id: format!("user{a}"),
                email: format!("user{a}@example.net"),
                password_hash: hash.clone(),
            },
        ));
        let group = Label::parse(&format!("g{a}")).expect("valid");
        people.apply(&ev(
            1,
            EventBody::GroupCreated {
                zone: zone.clone(),
                account,
                group: group.clone(),
            },
        ));
        for h in 0..10.min(n - a * 10) {
            let created = people.apply(&ev(
                2 + 2 * h,
                EventBody::HostCreated {
                    zone: zone.clone(),
                    account,
                    group: Some(group.clone()),
                    host: Label::parse(&format!("dvr{h}")).expect("valid"),
                    password_hash: hash.clone(),
                    port: Some(8080),
                },
            ));
            let ddns_core::Outcome::Created(fqdn) = created.outcome else {
                panic!("{created:?}")
            };
            people.apply(&ev(
                3 + 2 * h,
                EventBody::HostAddressSet {
                    zone: zone.clone(),
                    fqdn,
                    addr: addr(a * 10 + h),
                    account: None,
                },
            ));
        }
    }
    let people_bytes = rss_bytes() - before;

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
    println!(
        "LiveZone, spilled: {:.0} B/host for device-0000123.dyn.example (A), {:.0} B/host for \
         h123.dyn.example with A and AAAA",
        per(zone_long),
        per(zone_both)
    );
    println!(
        "State of {n} hosts registered by devices (vendor demo, a MAC, a User-Agent, one field): \
         {:.0} B/host",
        per(devices_bytes)
    );
    println!(
        "State of {n} account hosts (10 per account and group, an argon2id hash each, an \
         address): {:.0} B/host with its share of account and group",
        per(people_bytes)
    );
    // Where the State's bytes go (see core/src/fold/mod.rs for the layout).
    for (what, state) in [("imported", &state), ("device", &devices)] {
        let f = state.footprint();
        let per = |bytes: usize| bytes as f64 / f64::from(n);
        println!(
            "State, {what} hosts: slots {:.1} + records {:.1} + indexes {:.1} + shared strings \
             {:.4} B/host",
            per(f.slots),
            per(f.records),
            per(f.indexes),
            per(f.strings)
        );
    }
    std::hint::black_box((&state, &devices, &people));
}
