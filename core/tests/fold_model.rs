//! Property tests: the fold against a deliberately simple model (a list searched linearly).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use ddns_core::{Event, EventBody, Outcome, State};
use proptest::prelude::*;

/// One device as the model keeps it.
#[derive(Clone, Debug, PartialEq)]
struct ModelDevice {
    dev: String,
    name: String,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
}

#[derive(Default)]
struct Model(Vec<ModelDevice>);

impl Model {
    fn apply(&mut self, event: &Event) -> Outcome {
        let set = |d: &mut ModelDevice, addr: IpAddr| match addr {
            IpAddr::V4(a) => d.v4.replace(a) != Some(a),
            IpAddr::V6(a) => d.v6.replace(a) != Some(a),
        };
        match &event.body {
            EventBody::DeviceAdd {
                device,
                zone,
                label,
                addr,
                ..
            } => {
                let name = format!("{label}.{zone}");
                if self.0.iter().any(|d| d.name == name && d.dev != device.mac) {
                    return Outcome::NameTaken;
                }
                match self.0.iter_mut().find(|d| d.dev == device.mac) {
                    Some(d) if d.name == name => {
                        if set(d, *addr) {
                            Outcome::Modified
                        } else {
                            Outcome::NoChange
                        }
                    }
                    Some(d) => {
                        d.name = name.clone();
                        set(d, *addr);
                        Outcome::Created(ddns_core::Fqdn::parse(&name).expect("valid"))
                    }
                    None => {
                        let mut d = ModelDevice {
                            dev: device.mac.clone(),
                            name: name.clone(),
                            v4: None,
                            v6: None,
                        };
                        set(&mut d, *addr);
                        self.0.push(d);
                        Outcome::Created(ddns_core::Fqdn::parse(&name).expect("valid"))
                    }
                }
            }
            EventBody::DeviceUpdate { device, addr, .. } => {
                match self.0.iter_mut().find(|d| d.dev == device.mac) {
                    Some(d) => {
                        if set(d, *addr) {
                            Outcome::Modified
                        } else {
                            Outcome::NoChange
                        }
                    }
                    None => Outcome::NotFound,
                }
            }
            EventBody::HostImport { .. } => unreachable!("the strategy generates no imports"),
            EventBody::DeviceRemove { device, .. } => {
                match self.0.iter().position(|d| d.dev == device.mac) {
                    Some(i) => {
                        self.0.remove(i);
                        Outcome::Removed
                    }
                    None => Outcome::NotFound,
                }
            }
        }
    }
}

fn addr_strategy() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4).prop_map(|n| IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))),
        (0u16..3).prop_map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n))),
    ]
}

fn event_strategy() -> impl Strategy<Value = (u8, u32, u8, IpAddr)> {
    // (kind, device among 6, label among 5, address): small pools so names collide often.
    (0u8..3, 0u32..6, 0u8..5, addr_strategy())
}

proptest! {
    #[test]
    fn fold_matches_the_model(ops in prop::collection::vec(event_strategy(), 1..200)) {
        let mut state = State::new();
        let mut model = Model::default();
        for (i, (kind, dev, label, addr)) in ops.into_iter().enumerate() {
            let id = i as u128;
            let event = match kind {
                0 => add(id, dev, &format!("host{label}"), addr),
                1 => update(id, dev, addr),
                _ => remove(id, dev),
            };
            let applied = state.apply(&event);
            prop_assert_eq!(&applied.outcome, &model.apply(&event));
            // The changed names are exactly the ones whose records differ now.
            if matches!(applied.outcome, Outcome::NoChange | Outcome::NameTaken | Outcome::NotFound) {
                prop_assert!(applied.changed_names.is_empty());
            } else {
                prop_assert!(!applied.changed_names.is_empty());
            }
            check_invariants(&state);
            let mut ours: Vec<_> = state.devices().map(|(id, d)| ModelDevice {
                dev: id.mac.clone(), name: d.fqdn.to_string(), v4: d.v4, v6: d.v6,
            }).collect();
            let mut theirs = model.0.clone();
            ours.sort_by(|a, b| a.dev.cmp(&b.dev));
            theirs.sort_by(|a, b| a.dev.cmp(&b.dev));
            prop_assert_eq!(ours, theirs);
        }
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
