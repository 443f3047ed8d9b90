//! The fold: `apply(state, event) → outcome`, a pure function that every replica runs over the
//! log in order. No I/O, no clock, no randomness: what it needs is in the state or the event.
//!
//! Invariants the fold keeps (and the simulation in `tests/` checks):
//! - a name has at most one owner, and a device at most one name;
//! - `owners[d.fqdn] == id` for every device `(id, d)`, and every owner entry has its device;
//! - a device always has at least one address.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashTable;

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
///
/// Layout (memory is the product's scaling limit): each device is one slot in a vector,
/// holding its id and record, so every string is stored once; two hash tables hold only slot
/// numbers (5 bytes a bucket), one keyed by device id, one by name. Removing a device moves
/// the last slot into its place and renumbers that slot in both tables.
#[derive(Clone, Debug, Default)]
pub struct State {
    slots: Vec<Slot>,
    by_device: HashTable<u32>,
    by_name: HashTable<u32>,
    hasher: RandomState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    id: DeviceId,
    device: Device,
}

impl PartialEq for State {
    /// Two states are equal if they hold the same devices, whatever their slot order.
    fn eq(&self, other: &State) -> bool {
        self.len() == other.len()
            && self
                .slots
                .iter()
                .all(|slot| other.device(&slot.id) == Some(&slot.device))
    }
}

impl Eq for State {}

impl State {
    /// The empty state.
    pub fn new() -> State {
        State::default()
    }

    /// The device's record.
    pub fn device(&self, id: &DeviceId) -> Option<&Device> {
        self.slot_of_device(id).map(|i| &self.slots[i].device)
    }

    /// The device that owns `name`.
    pub fn owner(&self, name: &Fqdn) -> Option<&DeviceId> {
        self.slot_of_name(name).map(|i| &self.slots[i].id)
    }

    /// The records of `name`, if a device owns it.
    pub fn host(&self, name: &Fqdn) -> Option<&Device> {
        self.slot_of_name(name).map(|i| &self.slots[i].device)
    }

    /// Every device, in no particular order.
    pub fn devices(&self) -> impl Iterator<Item = (&DeviceId, &Device)> {
        self.slots.iter().map(|slot| (&slot.id, &slot.device))
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if there are no devices.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Makes room for `additional` more devices (a snapshot knows how many it holds).
    pub fn reserve(&mut self, additional: usize) {
        let State {
            slots,
            by_device,
            by_name,
            hasher,
        } = self;
        slots.reserve_exact(additional);
        by_device.reserve(additional, |&i| hasher.hash_one(&slots[i as usize].id));
        by_name.reserve(additional, |&i| {
            hasher.hash_one(&slots[i as usize].device.fqdn)
        });
    }

    /// Restores a device from a snapshot. Panics if that breaks an invariant: a snapshot that
    /// does is corrupt, and serving from it would be wrong.
    pub fn restore(&mut self, id: DeviceId, device: Device) {
        assert!(
            device.v4.is_some() || device.v6.is_some(),
            "snapshot device without address"
        );
        assert!(
            self.owner(&device.fqdn).is_none(),
            "snapshot has two owners of {}",
            device.fqdn
        );
        assert!(self.device(&id).is_none(), "snapshot has a device twice");
        self.insert(id, device);
    }

    fn slot_of_device(&self, id: &DeviceId) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        self.by_device
            .find(hash, |&i| self.slots[i as usize].id == *id)
            .map(|&i| i as usize)
    }

    fn slot_of_name(&self, name: &Fqdn) -> Option<usize> {
        let hash = self.hasher.hash_one(name);
        self.by_name
            .find(hash, |&i| self.slots[i as usize].device.fqdn == *name)
            .map(|&i| i as usize)
    }

    fn insert(&mut self, id: DeviceId, device: Device) {
        let State {
            slots,
            by_device,
            by_name,
            hasher,
        } = self;
        let index = u32::try_from(slots.len()).expect("fewer than 2^32 devices");
        let (id_hash, name_hash) = (hasher.hash_one(&id), hasher.hash_one(&device.fqdn));
        slots.push(Slot { id, device });
        by_device.insert_unique(id_hash, index, |&i| hasher.hash_one(&slots[i as usize].id));
        by_name.insert_unique(name_hash, index, |&i| {
            hasher.hash_one(&slots[i as usize].device.fqdn)
        });
    }

    /// Gives slot `index` a new name, keeping the name table right; returns the old name.
    fn rename(&mut self, index: usize, fqdn: Fqdn) -> Fqdn {
        let State {
            slots,
            by_name,
            hasher,
            ..
        } = self;
        let old_hash = hasher.hash_one(&slots[index].device.fqdn);
        let entry = by_name.find_entry(old_hash, |&i| i as usize == index);
        entry.expect("every slot is in the name table").remove();
        let old = std::mem::replace(&mut slots[index].device.fqdn, fqdn);
        let new_hash = hasher.hash_one(&slots[index].device.fqdn);
        by_name.insert_unique(new_hash, index as u32, |&i| {
            hasher.hash_one(&slots[i as usize].device.fqdn)
        });
        old
    }

    /// Removes slot `index`, moving the last slot into its place.
    fn remove_slot(&mut self, index: usize) -> Slot {
        let State {
            slots,
            by_device,
            by_name,
            hasher,
        } = self;
        let id_hash = hasher.hash_one(&slots[index].id);
        let name_hash = hasher.hash_one(&slots[index].device.fqdn);
        let in_devices = by_device.find_entry(id_hash, |&i| i as usize == index);
        in_devices
            .expect("every slot is in the device table")
            .remove();
        let in_names = by_name.find_entry(name_hash, |&i| i as usize == index);
        in_names.expect("every slot is in the name table").remove();
        let removed = slots.swap_remove(index);
        if let Some(moved) = slots.get(index) {
            let last = slots.len();
            let id_hash = hasher.hash_one(&moved.id);
            let name_hash = hasher.hash_one(&moved.device.fqdn);
            for (table, hash) in [(&mut *by_device, id_hash), (&mut *by_name, name_hash)] {
                let number = table.find_mut(hash, |&i| i as usize == last);
                *number.expect("the moved slot is in both tables") = index as u32;
            }
        }
        removed
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
            } => match self.slot_of_device(device) {
                Some(index) => {
                    let existing = &mut self.slots[index].device;
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
            EventBody::DeviceRemove { device, .. } => match self.slot_of_device(device) {
                Some(index) => {
                    let removed = self.remove_slot(index);
                    changed(Outcome::Removed, vec![removed.device.fqdn])
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
        if self.owner(&fqdn).is_some_and(|current| current != owner) {
            return unchanged(Outcome::NameTaken);
        }
        match self.slot_of_device(owner) {
            Some(index) if self.slots[index].device.fqdn == fqdn => {
                if self.slots[index]
                    .device
                    .refresh(addr, user_agent, fields, at_ms)
                {
                    changed(Outcome::Modified, vec![fqdn])
                } else {
                    unchanged(Outcome::NoChange)
                }
            }
            Some(index) => {
                let old = self.rename(index, fqdn.clone());
                let existing = &mut self.slots[index].device;
                existing.refresh(addr, user_agent, fields, at_ms);
                existing.updated_ms = at_ms;
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
                self.insert(owner.clone(), new);
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
