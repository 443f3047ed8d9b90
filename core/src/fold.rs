//! The fold: `apply(state, event) → outcome`, a pure function that every replica runs over the
//! log in order. No I/O, no clock, no randomness: what it needs is in the state or the event.
//!
//! Invariants the fold keeps (and the simulation in `tests/` checks):
//! - a name has at most one owner, and a device at most one name;
//! - `owners[d.fqdn] == id` for every device `(id, d)`, and every owner entry has its device;
//! - a device always has at least one address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::{DeviceId, Event, EventBody, Fields, import_owner};
use crate::names::Fqdn;
use crate::zone::HostAddrs;

/// A registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its host name.
    pub fqdn: Fqdn,
    /// Its A record.
    pub v4: Option<Ipv4Addr>,
    /// Its AAAA record.
    pub v6: Option<Ipv6Addr>,
    /// The User-Agent of its last add or update.
    pub user_agent: String,
    /// Vendor-configured fields from its last add or update.
    pub fields: Fields,
    /// When it was added (ms since the Unix epoch, from the event).
    pub created_ms: u64,
    /// When an address last changed (ms since the Unix epoch, from the event).
    pub updated_ms: u64,
}

impl Device {
    /// Its DNS records.
    pub fn addrs(&self) -> HostAddrs {
        HostAddrs {
            v4: self.v4,
            v6: self.v6,
        }
    }

    /// The address of `addr`'s family, if the device has one.
    pub fn addr_of_family(&self, addr: IpAddr) -> Option<IpAddr> {
        match addr {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }

    /// Records an add or update: the request's User-Agent and fields, and `addr` in its
    /// family's record; true (and the update time moved) if the address changed.
    fn refresh(&mut self, addr: IpAddr, user_agent: &str, fields: &Fields, at_ms: u64) -> bool {
        user_agent.clone_into(&mut self.user_agent);
        self.fields.clone_from(fields);
        let changed = match addr {
            IpAddr::V4(v4) => self.v4.replace(v4) != Some(v4),
            IpAddr::V6(v6) => self.v6.replace(v6) != Some(v6),
        };
        if changed {
            self.updated_ms = at_ms;
        }
        changed
    }
}

/// What an event did: the answer its request gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The device now owns this new name (added, or renamed from another name).
    Created(Fqdn),
    /// The device's address changed.
    Modified,
    /// The address was already current.
    NoChange,
    /// Another device owns the name.
    NameTaken,
    /// The device has no record.
    NotFound,
    /// The device and its name are gone.
    Removed,
}

/// What [`State::apply`] did, for the projector: the outcome and every name whose DNS records
/// changed (look each up in the state: present means set, absent means removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The outcome.
    pub outcome: Outcome,
    /// Names whose records changed, at most two (a rename releases one and claims another).
    pub changed_names: Vec<Fqdn>,
}

/// The folded state: every device and the owner of every name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    devices: HashMap<DeviceId, Device>,
    owners: HashMap<Fqdn, DeviceId>,
}

impl State {
    /// The empty state.
    pub fn new() -> State {
        State::default()
    }

    /// The device's record.
    pub fn device(&self, id: &DeviceId) -> Option<&Device> {
        self.devices.get(id)
    }

    /// The device that owns `name`.
    pub fn owner(&self, name: &Fqdn) -> Option<&DeviceId> {
        self.owners.get(name)
    }

    /// The records of `name`, if a device owns it.
    pub fn host(&self, name: &Fqdn) -> Option<&Device> {
        self.owners.get(name).and_then(|id| self.devices.get(id))
    }

    /// Every device, in no particular order.
    pub fn devices(&self) -> impl Iterator<Item = (&DeviceId, &Device)> {
        self.devices.iter()
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// True if there are no devices.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Restores a device from a snapshot. Panics if that breaks an invariant: a snapshot that
    /// does is corrupt, and serving from it would be wrong.
    pub fn restore(&mut self, id: DeviceId, device: Device) {
        assert!(
            device.v4.is_some() || device.v6.is_some(),
            "snapshot device without address"
        );
        let previous_owner = self.owners.insert(device.fqdn.clone(), id.clone());
        assert!(
            previous_owner.is_none(),
            "snapshot has two owners of {}",
            device.fqdn
        );
        let previous = self.devices.insert(id, device);
        assert!(previous.is_none(), "snapshot has a device twice");
    }

    /// Applies one event: the fold.
    pub fn apply(&mut self, event: &Event) -> Applied {
        match &event.body {
            EventBody::DeviceAdd {
                device,
                zone,
                label,
                addr,
                user_agent,
                fields,
            } => {
                let Ok(fqdn) = zone.child(label) else {
                    // Ingest validates the length; an event that still overflows claims nothing.
                    return unchanged(Outcome::NotFound);
                };
                self.claim(device, fqdn, *addr, user_agent, fields, event.at_ms)
            }
            EventBody::DeviceUpdate {
                device,
                addr,
                user_agent,
                fields,
                ..
            } => match self.devices.get_mut(device) {
                Some(existing) => {
                    if existing.refresh(*addr, user_agent, fields, event.at_ms) {
                        changed(Outcome::Modified, vec![existing.fqdn.clone()])
                    } else {
                        unchanged(Outcome::NoChange)
                    }
                }
                None => unchanged(Outcome::NotFound),
            },
            EventBody::HostImport { zone, name, addr } => {
                if !name.is_within(zone) || name == zone {
                    // Import validates this; an event that still names the apex claims nothing.
                    return unchanged(Outcome::NotFound);
                }
                let owner = import_owner(name);
                self.claim(&owner, name.clone(), *addr, "", &Vec::new(), event.at_ms)
            }
            EventBody::DeviceRemove { device, .. } => match self.devices.remove(device) {
                Some(removed) => {
                    self.owners.remove(&removed.fqdn);
                    changed(Outcome::Removed, vec![removed.fqdn])
                }
                None => unchanged(Outcome::NotFound),
            },
        }
    }
}

impl State {
    /// `owner` claims `fqdn` with `addr`: taken if another owns it; created if the owner is
    /// new or had another name (which is released); otherwise an address change or nothing.
    fn claim(
        &mut self,
        owner: &DeviceId,
        fqdn: Fqdn,
        addr: IpAddr,
        user_agent: &str,
        fields: &Fields,
        at_ms: u64,
    ) -> Applied {
        if self
            .owners
            .get(&fqdn)
            .is_some_and(|current| current != owner)
        {
            return unchanged(Outcome::NameTaken);
        }
        match self.devices.get_mut(owner) {
            Some(existing) if existing.fqdn == fqdn => {
                if existing.refresh(addr, user_agent, fields, at_ms) {
                    changed(Outcome::Modified, vec![fqdn])
                } else {
                    unchanged(Outcome::NoChange)
                }
            }
            Some(existing) => {
                let old = std::mem::replace(&mut existing.fqdn, fqdn.clone());
                existing.refresh(addr, user_agent, fields, at_ms);
                existing.updated_ms = at_ms;
                self.owners.remove(&old);
                self.owners.insert(fqdn.clone(), owner.clone());
                changed(Outcome::Created(fqdn.clone()), vec![old, fqdn])
            }
            None => {
                let mut new = Device {
                    fqdn: fqdn.clone(),
                    v4: None,
                    v6: None,
                    user_agent: String::new(),
                    fields: Vec::new(),
                    created_ms: at_ms,
                    updated_ms: at_ms,
                };
                new.refresh(addr, user_agent, fields, at_ms);
                self.devices.insert(owner.clone(), new);
                self.owners.insert(fqdn.clone(), owner.clone());
                changed(Outcome::Created(fqdn.clone()), vec![fqdn])
            }
        }
    }
}

fn unchanged(outcome: Outcome) -> Applied {
    Applied {
        outcome,
        changed_names: Vec::new(),
    }
}

fn changed(outcome: Outcome, changed_names: Vec<Fqdn>) -> Applied {
    Applied {
        outcome,
        changed_names,
    }
}
