//! The fold: `apply(state, event) → outcome`, a pure function that every replica runs over the
//! log in order. No I/O, no clock, no randomness: what it needs is in the state or the event.
//!
//! Invariants the fold keeps (and the simulation in `tests/` checks):
//! - a name has at most one owner, and a device at most one name;
//! - `owner(d.fqdn) == id` for every device `(id, d)`, and every owner entry has its device;
//! - a device always has at least one address.
//!
//! # Layout
//!
//! Memory is the product's scaling limit, so the state keeps each device as one packed record
//! (`record.rs` documents its bytes) in a byte arena, and everything else is small numbers:
//!
//! - `slots`: per device, its record's offset in the arena (4 bytes);
//! - `arena`: the records, back to back. An address change is written in place; any other
//!   change appends a new record and leaves the old one as garbage, and the arena is compacted
//!   (records copied in slot order) when garbage is over half of it. That is one step of the
//!   fold (~0.1 s at 1M devices, after as many rewrites as there are records);
//! - `strings`: what many devices share, stored once with a reference count (vendors, the name
//!   a host sits under, user agents, field keys), so a record holds ids of a byte or two;
//! - `by_name` and `by_device`: hash tables of slot numbers (5 bytes a bucket), keyed by the
//!   device's name and by its id. An imported host's owner is `import_owner(name)`: its record
//!   stores neither vendor nor MAC, and it is found through `by_name` only.
//!
//! Removing a device moves the last slot into its place and renumbers it in both tables. Lookups
//! hand out [`DeviceRef`]s, views of the record in place.

mod interner;
mod people;
mod record;
mod view;

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashTable;

use self::interner::Interner;
use self::people::People;
pub use self::people::{Account, Group, Host, HostToken, PeopleEntry, PeopleKey};
use self::record::{ALIGN, Head, MAC_TEXT_MAX, Mac, Record};
pub use self::view::{DeviceRef, FieldsRef, NameRef};
use crate::event::{AccountId, DeviceId, Event, EventBody, Fields, IMPORT_VENDOR};
use crate::names::Fqdn;
use crate::zone::HostAddrs;

/// The arena is compacted once its garbage is at least this large (and half of it).
const COMPACT_MIN_BYTES: usize = 4096;

/// A registered device, owned: the snapshot's record (see [`DeviceRef`] for the state's view).
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
        self.addrs().of_family(addr)
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
    /// The device and its name are gone (or the account, group or host).
    Removed,
    /// An account event was applied (created, password changed).
    Done,
    /// Sign-up: another account has the user ID.
    UserIdTaken,
    /// Sign-up: another account has the e-mail address.
    EmailTaken,
    /// The group still has hosts.
    NotEmpty,
}

/// What [`State::apply`] did, for the projector: the outcome and every name whose DNS records
/// changed (look each up in the state: [`State::addrs`] and [`State::acme_txt`]; absent means
/// removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The outcome.
    pub outcome: Outcome,
    /// Names whose records changed (a rename releases one and claims another; an account's
    /// release removes all its hosts in a zone).
    pub changed_names: Vec<Fqdn>,
    /// The entries of accounts, groups and hosts the event changed, for the snapshot.
    pub people: Vec<PeopleKey>,
}

/// Heap bytes a [`State`] holds, by part (see the module docs for the layout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Footprint {
    /// The slot vector (allocated).
    pub slots: usize,
    /// The records in the arena, garbage included (written).
    pub records: usize,
    /// The part of `records` that is garbage.
    pub garbage: usize,
    /// Both hash tables (allocated).
    pub indexes: usize,
    /// The shared strings and their table.
    pub strings: usize,
}

/// The folded state: every device and the owner of every name. See the module docs.
#[derive(Clone, Default)]
pub struct State {
    /// Per device, its record's offset in `arena`, in units of [`ALIGN`].
    slots: Vec<u32>,
    arena: Vec<u8>,
    /// Bytes of `arena` that no slot points at.
    garbage: usize,
    strings: Interner,
    /// Slots of the devices whose record is not an import's.
    by_device: HashTable<u32>,
    by_name: HashTable<u32>,
    hasher: RandomState,
    /// Where a rewritten record is built (kept, so a rewrite does not allocate).
    scratch: Vec<u8>,
    /// Accounts, groups and their hosts.
    people: People,
}

/// A device as [`State::insert`] writes it.
struct NewRecord<'a> {
    fqdn: &'a Fqdn,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    user_agent: &'a str,
    fields: &'a Fields,
    created_ms: u64,
    updated_ms: u64,
}

impl PartialEq for State {
    /// Two states are equal if they hold the same devices and people, whatever their layout.
    fn eq(&self, other: &State) -> bool {
        self.len() == other.len()
            && (0..self.len()).all(|i| other.device(&self.id_at(i)) == Some(self.view(i)))
            && self.people == other.people
    }
}

impl Eq for State {}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("devices", &DevicesDebug(self))
            .field("people", &self.people)
            .finish()
    }
}

struct DevicesDebug<'a>(&'a State);

impl std::fmt::Debug for DevicesDebug<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.devices()).finish()
    }
}

impl State {
    /// The empty state.
    pub fn new() -> State {
        State::default()
    }

    /// The device's record.
    pub fn device(&self, id: &DeviceId) -> Option<DeviceRef<'_>> {
        self.slot_of_device(&id.vendor, &id.mac)
            .map(|i| self.view(i))
    }

    /// The device that owns `name`.
    pub fn owner(&self, name: &Fqdn) -> Option<DeviceId> {
        self.slot_of_name(NameRef::of(name)).map(|i| self.id_at(i))
    }

    /// The records of `name`, if a device owns it.
    pub fn host(&self, name: &Fqdn) -> Option<DeviceRef<'_>> {
        self.slot_of_name(NameRef::of(name)).map(|i| self.view(i))
    }

    /// Every device, in no particular order.
    pub fn devices(&self) -> impl Iterator<Item = (DeviceId, DeviceRef<'_>)> {
        (0..self.len()).map(|i| (self.id_at(i), self.view(i)))
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if there are no devices.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Heap bytes held, by part.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            slots: self.slots.capacity() * size_of::<u32>(),
            records: self.arena.len(),
            garbage: self.garbage,
            indexes: self.by_device.allocation_size() + self.by_name.allocation_size(),
            strings: self.strings.heap_bytes(),
        }
    }

    /// Makes room for `additional` more devices (a snapshot knows how many it holds). The
    /// device table is left to grow: imported hosts, often most of a snapshot, are not in it.
    pub fn reserve(&mut self, additional: usize) {
        let State {
            slots,
            arena,
            strings,
            by_name,
            hasher,
            ..
        } = self;
        slots.reserve_exact(additional);
        // A typical record's size: an estimate, and what it overshoots is never touched.
        arena.reserve(additional * 48);
        by_name.reserve(additional, |&i| {
            name_hash(
                hasher,
                name_of(&record_at(arena, slots[i as usize]), strings),
            )
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
            self.slot_of_name(NameRef::of(&device.fqdn)).is_none(),
            "snapshot has two owners of {}",
            device.fqdn
        );
        assert!(
            self.slot_of_device(&id.vendor, &id.mac).is_none(),
            "snapshot has a device twice"
        );
        self.insert(
            &id.vendor,
            &id.mac,
            &NewRecord {
                fqdn: &device.fqdn,
                v4: device.v4,
                v6: device.v6,
                user_agent: &device.user_agent,
                fields: &device.fields,
                created_ms: device.created_ms,
                updated_ms: device.updated_ms,
            },
        );
    }

    /// The account with this user ID.
    pub fn account(&self, user_id: &str) -> Option<&Account> {
        self.people.account(user_id)
    }

    /// The account with this id.
    pub fn account_by_id(&self, id: AccountId) -> Option<&Account> {
        self.people.account_by_id(id)
    }

    /// The account with this (lowercase) e-mail address.
    pub fn account_by_email(&self, email: &str) -> Option<&Account> {
        self.people.account_by_email(email)
    }

    /// Every account, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.people.accounts()
    }

    /// True if the account was removed (final: its id is never reused).
    pub fn is_removed(&self, id: AccountId) -> bool {
        self.people.is_removed(id)
    }

    /// True if the account's groups and hosts in `zone` were released.
    pub fn is_released(&self, zone: &Fqdn, id: AccountId) -> bool {
        self.people.is_released(zone, id)
    }

    /// Every account that owns groups or hosts.
    pub fn owners(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.people.owners()
    }

    /// Every removed account (what a sweep for unreleased removals looks at).
    pub fn removed_accounts(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.people.removed()
    }

    /// The group named `name`.
    pub fn group(&self, name: &Fqdn) -> Option<&Group> {
        self.people.group(name)
    }

    /// The account host named `name`.
    pub fn account_host(&self, name: &Fqdn) -> Option<&Host> {
        self.people.host(name)
    }

    /// Every account host, in no particular order.
    pub fn account_hosts(&self) -> impl Iterator<Item = (&Fqdn, &Host)> {
        self.people.hosts()
    }

    /// The names of an account's groups and hosts, in name order.
    pub fn names_of(&self, id: AccountId) -> impl Iterator<Item = &Fqdn> {
        self.people.names_of(id)
    }

    /// True if `name` has an owner: a device, an import, a group or a host (what a new group
    /// or host may not take; a device or import may not take a name under a group either).
    pub fn has_owner(&self, name: &Fqdn) -> bool {
        self.people.group(name).is_some()
            || self.people.host(name).is_some()
            || self.slot_of_name(NameRef::of(name)).is_some()
    }

    /// The DNS records of `name`, whoever owns it; none if it has no address.
    pub fn addrs(&self, name: &Fqdn) -> Option<HostAddrs> {
        match self.host(name) {
            Some(device) => Some(device.addrs()),
            None => self
                .people
                .host(name)
                .map(Host::addrs)
                .filter(|addrs| !addrs.is_empty()),
        }
    }

    /// The ACME challenge values published at `_acme-challenge.<name>` (an account's host's).
    pub fn acme_txt(&self, name: &Fqdn) -> &[String] {
        self.people.host(name).map_or(&[], |h| &h.acme_txt)
    }

    /// The snapshot entry of accounts, groups and hosts under `key`.
    pub fn people_entry(&self, key: &PeopleKey) -> Option<PeopleEntry> {
        self.people.entry(key)
    }

    /// Every entry of accounts, groups and hosts (for a whole snapshot).
    pub fn people_entries(&self) -> impl Iterator<Item = (PeopleKey, PeopleEntry)> + '_ {
        self.people.entries()
    }

    /// Restores an entry of accounts, groups and hosts from a snapshot. Panics if that breaks
    /// an invariant (see [`State::restore`]).
    pub fn restore_people(&mut self, key: PeopleKey, entry: PeopleEntry) {
        if let PeopleKey::Group(name) | PeopleKey::Host(name) = &key {
            assert!(
                self.slot_of_name(NameRef::of(name)).is_none(),
                "snapshot has two owners of {name}"
            );
        }
        self.people.restore(key, entry);
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
                let owner = (device.vendor.as_str(), device.mac.as_str());
                self.claim(owner, fqdn, *addr, user_agent, fields, event.at_ms)
            }
            EventBody::DeviceUpdate {
                device,
                addr,
                user_agent,
                fields,
                ..
            } => match self.slot_of_device(&device.vendor, &device.mac) {
                Some(index) => {
                    if self.refresh(index, *addr, user_agent, fields, event.at_ms) {
                        let name = name_of(&self.record(index), &self.strings).to_fqdn();
                        changed(Outcome::Modified, vec![name])
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
                // The owner is `import_owner(name)`, spelled without allocating it.
                let owner = (IMPORT_VENDOR, name.as_str());
                self.claim(owner, name.clone(), *addr, "", &Vec::new(), event.at_ms)
            }
            EventBody::DeviceRemove { device, .. } => {
                match self.slot_of_device(&device.vendor, &device.mac) {
                    Some(index) => changed(Outcome::Removed, vec![self.remove_slot(index)]),
                    None => unchanged(Outcome::NotFound),
                }
            }
            body => {
                // People's part asks the devices' part about names; it is taken out for the
                // call so that both can be borrowed (taking an empty map allocates nothing).
                let mut people = std::mem::take(&mut self.people);
                let applied = people.apply(event.id.0, event.at_ms, body, |name| {
                    self.slot_of_name(NameRef::of(name)).is_some()
                });
                self.people = people;
                applied
            }
        }
    }

    /// `owner` (vendor, MAC) claims `fqdn` with `addr`: taken if another owns it; created if
    /// the owner is new or had another name (which is released); otherwise an address change
    /// or nothing.
    fn claim(
        &mut self,
        owner: (&str, &str),
        fqdn: Fqdn,
        addr: IpAddr,
        user_agent: &str,
        fields: &Fields,
        at_ms: u64,
    ) -> Applied {
        let (vendor, mac) = owner;
        let existing = match self.slot_of_name(NameRef::of(&fqdn)) {
            Some(index) if !self.is_owned_by(index, vendor, mac) => {
                return unchanged(Outcome::NameTaken);
            }
            Some(index) => {
                return if self.refresh(index, addr, user_agent, fields, at_ms) {
                    changed(Outcome::Modified, vec![fqdn])
                } else {
                    unchanged(Outcome::NoChange)
                };
            }
            None if self.people.reserves(&fqdn) => return unchanged(Outcome::NameTaken),
            None => self.slot_of_device(vendor, mac),
        };
        let mut new = NewRecord {
            fqdn: &fqdn,
            v4: None,
            v6: None,
            user_agent,
            fields,
            created_ms: at_ms,
            updated_ms: at_ms,
        };
        let released = existing.map(|index| {
            // A rename: the device keeps its addresses and creation time, under a new record.
            let old = self.record(index);
            (new.v4, new.v6, new.created_ms) = (old.v4, old.v6, old.created_ms);
            self.remove_slot(index)
        });
        match addr {
            IpAddr::V4(v4) => new.v4 = Some(v4),
            IpAddr::V6(v6) => new.v6 = Some(v6),
        }
        self.insert(vendor, mac, &new);
        let names = released.into_iter().chain([fqdn.clone()]).collect();
        changed(Outcome::Created(fqdn), names)
    }
}

/// The storage: lookups, and the writes that keep the arena, the strings and both tables in
/// step.
impl State {
    fn record(&self, index: usize) -> Record<'_> {
        record_at(&self.arena, self.slots[index])
    }

    fn view(&self, index: usize) -> DeviceRef<'_> {
        let record = self.record(index);
        DeviceRef {
            fqdn: name_of(&record, &self.strings),
            v4: record.v4,
            v6: record.v6,
            user_agent: record.user_agent(&self.strings),
            fields: FieldsRef::new(record.fields, &self.strings),
            created_ms: record.created_ms,
            updated_ms: record.updated_ms,
        }
    }

    fn id_at(&self, index: usize) -> DeviceId {
        let record = self.record(index);
        match record.vendor {
            Some(vendor) => DeviceId {
                vendor: self.strings.get(vendor).into(),
                mac: String::from_utf8(record.mac.text(&mut [0; MAC_TEXT_MAX]).to_vec())
                    .expect("a stored MAC is UTF-8"),
            },
            None => DeviceId {
                vendor: IMPORT_VENDOR.into(),
                mac: name_of(&record, &self.strings).to_string(),
            },
        }
    }

    /// True if slot `index`'s device is `(vendor, mac)`.
    fn is_owned_by(&self, index: usize, vendor: &str, mac: &str) -> bool {
        let record = self.record(index);
        match record.vendor {
            Some(id) => record.mac == Mac::of(mac.as_bytes()) && self.strings.get(id) == vendor,
            None => vendor == IMPORT_VENDOR && name_of(&record, &self.strings) == *mac,
        }
    }

    fn slot_of_name(&self, name: NameRef<'_>) -> Option<usize> {
        let hash = name_hash(&self.hasher, name);
        self.by_name
            .find(hash, |&i| {
                name_of(&self.record(i as usize), &self.strings) == name
            })
            .map(|&i| i as usize)
    }

    fn slot_of_device(&self, vendor: &str, mac: &str) -> Option<usize> {
        if vendor == IMPORT_VENDOR
            && let Some(index) = self.slot_of_name(NameRef::split(mac))
            && self.record(index).vendor.is_none()
        {
            return Some(index);
        }
        let hash = device_hash(&self.hasher, vendor, mac.as_bytes());
        self.by_device
            .find(hash, |&i| self.is_owned_by(i as usize, vendor, mac))
            .map(|&i| i as usize)
    }

    /// Adds a device that has no slot, under a name no device owns.
    fn insert(&mut self, vendor: &str, mac: &str, new: &NewRecord<'_>) {
        let State {
            slots,
            arena,
            strings,
            by_device,
            by_name,
            hasher,
            ..
        } = self;
        let name = NameRef::of(new.fqdn);
        let import = vendor == IMPORT_VENDOR && mac == new.fqdn.as_str();
        let head = Head {
            v4: new.v4,
            v6: new.v6,
            created_ms: new.created_ms,
            updated_ms: new.updated_ms,
            vendor: (!import).then(|| strings.acquire(vendor)),
            mac: Mac::of(if import { b"" } else { mac.as_bytes() }),
            parent: name.parent().map(|parent| strings.acquire(parent)),
            label: name.label(),
            user_agent: (!new.user_agent.is_empty()).then(|| strings.acquire(new.user_agent)),
        };
        let at = offset(arena);
        record::write_head(arena, &head);
        record::write_fields(arena, new.fields, strings);
        record::pad(arena);
        let index = u32::try_from(slots.len()).expect("fewer than 2^32 devices");
        slots.push(at);
        by_name.insert_unique(name_hash(hasher, name), index, |&i| {
            name_hash(
                hasher,
                name_of(&record_at(arena, slots[i as usize]), strings),
            )
        });
        if !import {
            let hash = device_hash(hasher, vendor, mac.as_bytes());
            by_device.insert_unique(hash, index, |&i| {
                let record = record_at(arena, slots[i as usize]);
                device_hash(
                    hasher,
                    vendor_of(&record, strings),
                    record.mac.text(&mut [0; MAC_TEXT_MAX]),
                )
            });
        }
    }

    /// Records an add or update on slot `index`: the request's User-Agent and fields, and
    /// `addr` in its family's record; true (and the update time moved) if the address changed.
    fn refresh(
        &mut self,
        index: usize,
        addr: IpAddr,
        user_agent: &str,
        fields: &Fields,
        at_ms: u64,
    ) -> bool {
        let State {
            slots,
            arena,
            garbage,
            strings,
            scratch,
            ..
        } = self;
        let start = slots[index] as usize * ALIGN;
        let old = Record::parse(&arena[start..]);
        let changed = match addr {
            IpAddr::V4(v4) => old.v4 != Some(v4),
            IpAddr::V6(v6) => old.v6 != Some(v6),
        };
        let same_user_agent = old.user_agent(strings) == user_agent;
        let same_fields = old.fields_are(fields, strings);
        if same_user_agent
            && same_fields
            && let Some(addr_at) = old.addr_at(addr)
        {
            // The common case: at most an address and the update time, written in place.
            if changed {
                let updated_at = start + old.updated_at();
                let octets = match addr {
                    IpAddr::V4(v4) => &v4.octets()[..],
                    IpAddr::V6(v6) => &v6.octets()[..],
                };
                arena[start + addr_at..][..octets.len()].copy_from_slice(octets);
                arena[updated_at..][..8].copy_from_slice(&at_ms.to_le_bytes());
            }
            return changed;
        }
        // A new record, which takes over the old one's references to what it keeps.
        let mut head = Head {
            v4: old.v4,
            v6: old.v6,
            created_ms: old.created_ms,
            updated_ms: if changed { at_ms } else { old.updated_ms },
            vendor: old.vendor,
            mac: old.mac,
            parent: old.parent,
            label: old.label,
            user_agent: old.user_agent,
        };
        match addr {
            IpAddr::V4(v4) => head.v4 = Some(v4),
            IpAddr::V6(v6) => head.v6 = Some(v6),
        }
        if !same_user_agent {
            head.user_agent = (!user_agent.is_empty()).then(|| strings.acquire(user_agent));
            if let Some(id) = old.user_agent {
                strings.release(id);
            }
        }
        scratch.clear();
        record::write_head(scratch, &head);
        if same_fields {
            scratch.extend_from_slice(old.fields_bytes());
        } else {
            record::write_fields(scratch, fields, strings);
            for key in old.field_keys() {
                strings.release(key);
            }
        }
        record::pad(scratch);
        *garbage += old.padded_len();
        slots[index] = offset(arena);
        arena.extend_from_slice(scratch);
        self.compact_if_wasteful();
        changed
    }

    /// Removes slot `index`, moving the last slot into its place; returns its name.
    fn remove_slot(&mut self, index: usize) -> Fqdn {
        let State {
            slots,
            arena,
            garbage,
            strings,
            by_device,
            by_name,
            hasher,
            ..
        } = self;
        let record = record_at(arena, slots[index]);
        let name = name_of(&record, strings);
        let fqdn = name.to_fqdn();
        let in_names = by_name.find_entry(name_hash(hasher, name), |&i| i as usize == index);
        in_names.expect("every slot is in the name table").remove();
        if record.vendor.is_some() {
            let hash = device_hash(
                hasher,
                vendor_of(&record, strings),
                record.mac.text(&mut [0; MAC_TEXT_MAX]),
            );
            let in_devices = by_device.find_entry(hash, |&i| i as usize == index);
            in_devices
                .expect("every device's slot is in the device table")
                .remove();
        }
        *garbage += record.padded_len();
        for id in record.ids() {
            strings.release(id);
        }
        slots.swap_remove(index);
        if let Some(&moved) = slots.get(index) {
            let last = slots.len();
            let record = record_at(arena, moved);
            let hash = name_hash(hasher, name_of(&record, strings));
            let number = by_name.find_mut(hash, |&i| i as usize == last);
            *number.expect("the moved slot is in the name table") = index as u32;
            if record.vendor.is_some() {
                let hash = device_hash(
                    hasher,
                    vendor_of(&record, strings),
                    record.mac.text(&mut [0; MAC_TEXT_MAX]),
                );
                let number = by_device.find_mut(hash, |&i| i as usize == last);
                *number.expect("the moved device is in the device table") = index as u32;
            }
        }
        self.compact_if_wasteful();
        fqdn
    }

    /// Copies the records, in slot order, to a new arena once garbage is over half of it.
    fn compact_if_wasteful(&mut self) {
        if self.garbage < COMPACT_MIN_BYTES || self.garbage * 2 < self.arena.len() {
            return;
        }
        let live = self.arena.len() - self.garbage;
        let mut arena = Vec::with_capacity(live + live / 8);
        for at in &mut self.slots {
            let start = *at as usize * ALIGN;
            let len = Record::parse(&self.arena[start..]).padded_len();
            *at = offset(&arena);
            arena.extend_from_slice(&self.arena[start..start + len]);
        }
        self.arena = arena;
        self.garbage = 0;
    }
}

fn record_at(arena: &[u8], at: u32) -> Record<'_> {
    Record::parse(&arena[at as usize * ALIGN..])
}

/// Where the next record appended to `arena` starts, in units of [`ALIGN`].
fn offset(arena: &[u8]) -> u32 {
    u32::try_from(arena.len() / ALIGN).expect("records fit in 16 GiB")
}

fn name_of<'a>(record: &Record<'a>, strings: &'a Interner) -> NameRef<'a> {
    NameRef::new(record.label, record.parent.map(|id| strings.get(id)))
}

fn vendor_of<'a>(record: &Record<'_>, strings: &'a Interner) -> &'a str {
    strings.get(record.vendor.expect("not an import's record"))
}

/// The hash of a name, from its parts (so a stored name need not be put together to hash it).
fn name_hash(hasher: &RandomState, name: NameRef<'_>) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(name.label().as_bytes());
    if let Some(parent) = name.parent() {
        h.write_u8(b'.');
        h.write(parent.as_bytes());
    }
    h.finish()
}

fn device_hash(hasher: &RandomState, vendor: &str, mac: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(vendor.as_bytes());
    h.write_u8(0xff);
    h.write(mac);
    h.finish()
}

fn unchanged(outcome: Outcome) -> Applied {
    changed(outcome, Vec::new())
}

fn changed(outcome: Outcome, changed_names: Vec<Fqdn>) -> Applied {
    Applied {
        outcome,
        changed_names,
        people: Vec::new(),
    }
}
