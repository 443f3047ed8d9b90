//! Shared by the fold's property tests and the fleet simulation.
#![allow(dead_code, missing_docs)]

use std::net::IpAddr;

use ddns_core::{
    DeviceId, Event, EventBody, EventId, Fqdn, Label, State, encode_device, encode_people_entry,
    encode_people_key,
};

pub fn zone() -> Fqdn {
    Fqdn::parse("dyn.example").expect("valid zone")
}

/// Device `n`, its MAC in one of the forms devices use (the state stores MACs in their usual
/// forms as octets, others as text).
pub fn device(n: u32) -> DeviceId {
    let [a, b, c, d] = n.to_be_bytes();
    let mac = match n % 3 {
        0 => format!("02:00:{a:02X}:{b:02X}:{c:02X}:{d:02X}"),
        1 => format!("0200{a:02X}{b:02X}{c:02X}{d:02X}"),
        _ => format!("SN-{n:08}"),
    };
    DeviceId {
        vendor: "acme".into(),
        mac,
    }
}

pub fn add(id: u128, dev: u32, label: &str, addr: IpAddr) -> Event {
    Event {
        id: EventId(id),
        at_ms: id as u64,
        body: EventBody::DeviceAdd {
            device: device(dev),
            zone: zone(),
            label: Label::parse(label).expect("valid label"),
            addr,
            user_agent: "Acme - Cam - 1".into(),
            fields: vec![],
        },
    }
}

pub fn update(id: u128, dev: u32, addr: IpAddr) -> Event {
    Event {
        id: EventId(id),
        at_ms: id as u64,
        body: EventBody::DeviceUpdate {
            device: device(dev),
            zone: zone(),
            addr,
            user_agent: "Acme - Cam - 1".into(),
            fields: vec![],
        },
    }
}

pub fn import(id: u128, name: &str, addr: IpAddr) -> Event {
    Event {
        id: EventId(id),
        at_ms: id as u64,
        body: EventBody::HostImport {
            zone: zone(),
            name: Fqdn::parse(name).expect("valid name"),
            addr,
        },
    }
}

pub fn remove(id: u128, dev: u32) -> Event {
    Event {
        id: EventId(id),
        at_ms: id as u64,
        body: EventBody::DeviceRemove {
            device: device(dev),
            zone: zone(),
        },
    }
}

/// The state as the projector would persist it: device records and people's entries sorted by
/// key, encoded.
pub fn snapshot_bytes(state: &State) -> Vec<u8> {
    let mut rows: Vec<_> = state
        .devices()
        .map(|(id, d)| {
            (
                format!("d{}\0{}", id.vendor, id.mac).into_bytes(),
                encode_device(&d.to_device()).expect("encodes"),
            )
        })
        .chain(state.people_entries().map(|(key, entry)| {
            let mut k = b"q".to_vec();
            k.extend(encode_people_key(&key));
            (k, encode_people_entry(&entry).expect("encodes"))
        }))
        .collect();
    rows.sort();
    rows.into_iter()
        .flat_map(|(k, v)| k.into_iter().chain(v))
        .collect()
}

/// Checks every invariant the fold promises.
pub fn check_invariants(state: &State) {
    for (id, device) in state.devices() {
        assert_eq!(
            state.owner(&device.fqdn.to_fqdn()),
            Some(id),
            "owner of {} is not its device",
            device.fqdn
        );
        assert!(
            device.v4.is_some() || device.v6.is_some(),
            "{} has no address",
            device.fqdn
        );
        assert!(device.fqdn.is_within(&zone()));
    }
    // Every name has one owner and every device one name: the counts agree only if owners
    // map names to devices one to one (the loop above showed each device's name maps back).
    let names: std::collections::HashSet<_> =
        state.devices().map(|(_, d)| d.fqdn.to_fqdn()).collect();
    assert_eq!(names.len(), state.len(), "two devices share a name");
}
