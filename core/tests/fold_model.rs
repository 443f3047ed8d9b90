//! Property tests: the fold against a deliberately simple model (a list searched linearly).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use ddns_core::{
    DeviceId, Event, EventBody, EventId, Fields, Fqdn, IMPORT_VENDOR, Label, Outcome, State,
    decode_device, encode_device,
};
use proptest::prelude::*;

/// One device as the model keeps it: everything the state keeps.
#[derive(Clone, Debug, PartialEq)]
struct ModelDevice {
    id: DeviceId,
    name: String,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    user_agent: String,
    fields: Fields,
    created_ms: u64,
    updated_ms: u64,
}

#[derive(Default)]
struct Model(Vec<ModelDevice>);

impl Model {
    /// The outcome and the changed names, as a set.
    fn apply(&mut self, event: &Event) -> (Outcome, Vec<String>) {
        let at = event.at_ms;
        match &event.body {
            EventBody::DeviceAdd {
                device,
                zone,
                label,
                addr,
                user_agent,
                fields,
            } => self.claim(
                device,
                format!("{label}.{zone}"),
                *addr,
                user_agent,
                fields,
                at,
            ),
            EventBody::HostImport { name, addr, .. } => self.claim(
                &ddns_core::import_owner(name),
                name.to_string(),
                *addr,
                "",
                &vec![],
                at,
            ),
            EventBody::DeviceUpdate {
                device,
                addr,
                user_agent,
                fields,
                ..
            } => match self.0.iter_mut().find(|d| d.id == *device) {
                Some(d) => {
                    let name = d.name.clone();
                    if refresh(d, *addr, user_agent, fields, at) {
                        (Outcome::Modified, vec![name])
                    } else {
                        (Outcome::NoChange, vec![])
                    }
                }
                None => (Outcome::NotFound, vec![]),
            },
            EventBody::DeviceRemove { device, .. } => {
                match self.0.iter().position(|d| d.id == *device) {
                    Some(i) => (Outcome::Removed, vec![self.0.remove(i).name]),
                    None => (Outcome::NotFound, vec![]),
                }
            }
            other => unreachable!("the model has devices only, not {other:?}"),
        }
    }

    fn claim(
        &mut self,
        device: &DeviceId,
        name: String,
        addr: IpAddr,
        user_agent: &str,
        fields: &Fields,
        at: u64,
    ) -> (Outcome, Vec<String>) {
        let created = Outcome::Created(Fqdn::parse(&name).expect("valid"));
        if self.0.iter().any(|d| d.name == name && d.id != *device) {
            return (Outcome::NameTaken, vec![]);
        }
        match self.0.iter_mut().find(|d| d.id == *device) {
            Some(d) if d.name == name => {
                if refresh(d, addr, user_agent, fields, at) {
                    (Outcome::Modified, vec![name])
                } else {
                    (Outcome::NoChange, vec![])
                }
            }
            Some(d) => {
                let old = std::mem::replace(&mut d.name, name.clone());
                refresh(d, addr, user_agent, fields, at);
                d.updated_ms = at;
                (created, vec![old, name])
            }
            None => {
                let mut d = ModelDevice {
                    id: device.clone(),
                    name: name.clone(),
                    v4: None,
                    v6: None,
                    user_agent: String::new(),
                    fields: vec![],
                    created_ms: at,
                    updated_ms: at,
                };
                refresh(&mut d, addr, user_agent, fields, at);
                self.0.push(d);
                (created, vec![name])
            }
        }
    }
}

fn refresh(d: &mut ModelDevice, addr: IpAddr, user_agent: &str, fields: &Fields, at: u64) -> bool {
    d.user_agent = user_agent.into();
    d.fields = fields.clone();
    let changed = match addr {
        IpAddr::V4(a) => d.v4.replace(a) != Some(a),
        IpAddr::V6(a) => d.v6.replace(a) != Some(a),
    };
    if changed {
        d.updated_ms = at;
    }
    changed
}

fn addr_strategy() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4).prop_map(|n| IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))),
        (0u16..3).prop_map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n))),
    ]
}

/// (kind, device among 6, label among 5, address, user agent among 3, fields among 3): small
/// pools so that names collide, and user agents and fields change, often.
type Op = (u8, u32, u8, IpAddr, u8, u8);

fn op_strategy() -> impl Strategy<Value = Op> {
    (0u8..4, 0u32..6, 0u8..5, addr_strategy(), 0u8..3, 0u8..3)
}

/// Device 5 is spelled like the owner of an imported `host0` (no vendor can be `@import`, but
/// the fold must not care), the others are ordinary.
fn model_device(n: u32) -> DeviceId {
    match n {
        5 => DeviceId {
            vendor: IMPORT_VENDOR.into(),
            mac: "host0.dyn.example".into(),
        },
        n => device(n),
    }
}

fn event_of(id: u128, (kind, dev, label, addr, agent, fields): Op) -> Event {
    let user_agent = ["", "Acme - Cam - 1", "Acme - Cam - 2"][usize::from(agent)].to_string();
    let fields: Fields = match fields {
        0 => vec![],
        1 => vec![("port".into(), "8080".into())],
        _ => vec![("port".into(), "8081".into()), ("fw".into(), "2.0".into())],
    };
    let device = model_device(dev);
    let body = match kind {
        0 => EventBody::DeviceAdd {
            device,
            zone: zone(),
            label: Label::parse(&format!("host{label}")).expect("valid"),
            addr,
            user_agent,
            fields,
        },
        1 => EventBody::DeviceUpdate {
            device,
            zone: zone(),
            addr,
            user_agent,
            fields,
        },
        2 => EventBody::DeviceRemove {
            device,
            zone: zone(),
        },
        _ => {
            // Sometimes a device's name, sometimes a deeper one.
            let name = match label {
                4 => "deep.host0.dyn.example".to_string(),
                label => format!("host{label}.dyn.example"),
            };
            EventBody::HostImport {
                zone: zone(),
                name: Fqdn::parse(&name).expect("valid"),
                addr,
            }
        }
    };
    Event {
        id: EventId(id),
        at_ms: id as u64 * 10,
        body,
    }
}

fn ours(state: &State) -> Vec<ModelDevice> {
    let mut ours: Vec<_> = state
        .devices()
        .map(|(id, d)| ModelDevice {
            id,
            name: d.fqdn.to_string(),
            v4: d.v4,
            v6: d.v6,
            user_agent: d.user_agent.into(),
            fields: d.fields.to_fields(),
            created_ms: d.created_ms,
            updated_ms: d.updated_ms,
        })
        .collect();
    ours.sort_by(|a, b| a.id.cmp(&b.id));
    ours
}

proptest! {
    #[test]
    fn fold_matches_the_model(ops in prop::collection::vec(op_strategy(), 1..200)) {
        let mut state = State::new();
        let mut model = Model::default();
        for (i, op) in ops.into_iter().enumerate() {
            let event = event_of(i as u128, op);
            let applied = state.apply(&event);
            let (outcome, mut names) = model.apply(&event);
            prop_assert_eq!(&applied.outcome, &outcome);
            let mut changed: Vec<_> = applied.changed_names.iter().map(|n| n.to_string()).collect();
            changed.sort();
            names.sort();
            prop_assert_eq!(changed, names);
            check_invariants(&state);
            let mut theirs = model.0.clone();
            theirs.sort_by(|a, b| a.id.cmp(&b.id));
            prop_assert_eq!(ours(&state), theirs);
            for d in &model.0 {
                let fqdn = Fqdn::parse(&d.name).expect("valid");
                prop_assert_eq!(state.owner(&fqdn), Some(d.id.clone()));
                prop_assert_eq!(state.host(&fqdn), state.device(&d.id));
            }
        }
        // The snapshot restores to an equal state.
        let mut restored = State::new();
        for (id, device) in state.devices() {
            let bytes = encode_device(&device.to_device()).expect("encodes");
            restored.restore(id, decode_device(&bytes).expect("decodes"));
        }
        prop_assert_eq!(&restored, &state);
        prop_assert_eq!(ours(&restored), ours(&state));
    }
}

#[test]
fn a_v6_update_keeps_the_a_record_apart() {
    let mut state = State::new();
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert!(matches!(
        state.apply(&add(1, 1, "cam", v4)).outcome,
        Outcome::Created(_)
    ));
    assert_eq!(state.apply(&update(2, 1, v6)).outcome, Outcome::Modified);
    assert_eq!(state.apply(&update(3, 1, v4)).outcome, Outcome::NoChange);
    let d = state.device(&device(1)).expect("present");
    assert_eq!(
        (d.v4, d.v6),
        (
            Some(Ipv4Addr::new(192, 0, 2, 1)),
            Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
        )
    );
    assert_eq!(d.updated_ms, 2, "a no-change update leaves the update time");
}

#[test]
fn a_rename_releases_the_old_name() {
    let mut state = State::new();
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    state.apply(&add(1, 1, "old", v4));
    let applied = state.apply(&add(2, 1, "new", v4));
    assert_eq!(
        applied.outcome,
        Outcome::Created(ddns_core::Fqdn::parse("new.dyn.example").expect("valid"))
    );
    assert_eq!(applied.changed_names.len(), 2);
    assert_eq!(
        state.apply(&add(3, 2, "old", v4)).outcome,
        Outcome::Created(ddns_core::Fqdn::parse("old.dyn.example").expect("valid"))
    );
    assert_eq!(
        state.apply(&add(4, 1, "old", v4)).outcome,
        Outcome::NameTaken
    );
}
