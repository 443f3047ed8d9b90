//! The hosts of one zone apex: a sharded open-addressing table, small (one 16-byte slot per host)
//! and answering a lookup with two cache misses (the bucket's control bytes, then its slot).
//!
//! Layout. A shard is a `hashbrown::HashTable<Slot>` behind its own `RwLock`. A [`Slot`] holds the
//! host's name relative to the apex (`cam` for `cam.dyn.example`) as lowercase wire labels
//! (`\x03cam`) and its A address, both inline:
//!
//! ```text
//! meta (1)  name (11): the relative name, inline             A (4)
//! meta (1)  name (11): spill offset (4, LE), 7 unused octets  A (4)
//! meta: bits 0-3 the inline name's length, 0x10 SPILLED, 0x20 HAS_V4, 0x40 HAS_V6
//! ```
//!
//! A name longer than [`INLINE_NAME`] octets, or a host with an AAAA address, is *spilled*: its
//! name and AAAA address move to a record in the shard's spill vector (`len, name, [v6]`) and the
//! slot keeps the record's offset. Each name is stored once, in its slot or its record.
//!
//! Empty non-terminals (`a.b` while `www.a.b` is a host) are rare (device names sit right under
//! the apex), so they live in a second, usually empty, table of the same shard, keyed by the same
//! hash, each with the number of hosts below it.
//!
//! Invariants (per shard):
//! - a name is in at most one slot, and a slot has an A or an AAAA address (or both);
//! - every spilled slot points at a whole record in `spill`; `garbage` counts the octets of
//!   `spill` no slot points at, and the vector is compacted when they are over half of it;
//! - an empty non-terminal's count is the number of hosts below it, and is never zero.
//!
//! A name's shard is decided by its hash, so a change locks one shard: a reader waits for at most
//! one entry's change (or one shard's growth), never for a batch.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;

use super::HostAddrs;

/// Shards per apex. Many, so that a shard's growth (a rehash of 1/64 of the hosts) is short and
/// its old and new arrays together are a small part of the whole.
const SHARDS: usize = 64;

/// Relative names up to this many octets (10 characters in one label) are kept in the slot.
pub(super) const INLINE_NAME: usize = 11;

const NAME_LEN: u8 = 0x0f;
const SPILLED: u8 = 0x10;
const HAS_V4: u8 = 0x20;
const HAS_V6: u8 = 0x40;

/// A shard's spill vector is compacted once its garbage is at least this large (and half of it).
const COMPACT_MIN_BYTES: usize = 4096;

/// One host; see the module documentation for the layout.
#[derive(Clone, Copy, Debug)]
struct Slot {
    meta: u8,
    name: [u8; INLINE_NAME],
    v4: [u8; 4],
}

const _: () = assert!(size_of::<Slot>() == 16);

impl Slot {
    /// Encodes a host, writing its spill record at `reuse` (a record of the same length) or at
    /// the end of `spill` if it needs one.
    fn new(name: &[u8], addrs: HostAddrs, spill: &mut Vec<u8>, reuse: Option<usize>) -> Slot {
        let mut slot = Slot {
            meta: 0,
            name: [0; INLINE_NAME],
            v4: [0; 4],
        };
        if let Some(v4) = addrs.v4 {
            slot.meta |= HAS_V4;
            slot.v4 = v4.octets();
        }
        match addrs.v6 {
            None if name.len() <= INLINE_NAME => {
                slot.meta |= name.len() as u8;
                slot.name[..name.len()].copy_from_slice(name);
            }
            v6 => {
                let name_len =
                    u8::try_from(name.len()).expect("a relative name is under 255 octets");
                let v6 = v6.map(|v6| v6.octets());
                let record = [
                    &[name_len][..],
                    name,
                    v6.as_ref().map_or(&[][..], |v6| &v6[..]),
                ];
                let at = match reuse {
                    Some(at) => {
                        let mut to = at;
                        for part in record {
                            spill[to..to + part.len()].copy_from_slice(part);
                            to += part.len();
                        }
                        at
                    }
                    None => {
                        let at = spill.len();
                        record.iter().for_each(|part| spill.extend_from_slice(part));
                        at
                    }
                };
                slot.meta |= SPILLED | if v6.is_some() { HAS_V6 } else { 0 };
                slot.set_spill_offset(at);
            }
        }
        slot
    }

    fn spilled(&self) -> bool {
        self.meta & SPILLED != 0
    }

    fn spill_offset(&self) -> usize {
        let [a, b, c, d, ..] = self.name;
        u32::from_le_bytes([a, b, c, d]) as usize
    }

    fn set_spill_offset(&mut self, at: usize) {
        let at = u32::try_from(at).expect("a shard's spill vector stays under 4 GiB");
        self.name[..4].copy_from_slice(&at.to_le_bytes());
    }

    /// The relative name, lowercase wire labels.
    fn name<'a>(&'a self, spill: &'a [u8]) -> &'a [u8] {
        if self.spilled() {
            let at = self.spill_offset();
            &spill[at + 1..at + 1 + usize::from(spill[at])]
        } else {
            &self.name[..usize::from(self.meta & NAME_LEN)]
        }
    }

    fn addrs(&self, spill: &[u8]) -> HostAddrs {
        let v4 = (self.meta & HAS_V4 != 0).then(|| Ipv4Addr::from(self.v4));
        let v6 = (self.meta & HAS_V6 != 0).then(|| {
            let at = self.spill_offset();
            let start = at + 1 + usize::from(spill[at]);
            let octets: [u8; 16] = spill[start..start + 16]
                .try_into()
                .expect("a record's AAAA address is 16 octets");
            Ipv6Addr::from(octets)
        });
        HostAddrs { v4, v6 }
    }

    /// Length of its spill record; 0 if it has none.
    fn record_len(&self, spill: &[u8]) -> usize {
        if !self.spilled() {
            return 0;
        }
        let v6_len = if self.meta & HAS_V6 != 0 { 16 } else { 0 };
        1 + usize::from(spill[self.spill_offset()]) + v6_len
    }
}

/// Length of the spill record a host with `name` and `addrs` needs; 0 if it needs none.
fn record_len(name: &[u8], addrs: HostAddrs) -> usize {
    match addrs.v6 {
        None if name.len() <= INLINE_NAME => 0,
        None => 1 + name.len(),
        Some(_) => 1 + name.len() + 16,
    }
}

/// An empty non-terminal: a relative name with hosts below it.
#[derive(Debug)]
struct Ent {
    name: Box<[u8]>,
    hosts_below: u32,
}

/// One shard's contents.
#[derive(Debug, Default)]
struct Hosts {
    slots: HashTable<Slot>,
    spill: Vec<u8>,
    garbage: usize,
    empty_non_terminals: HashTable<Ent>,
}

impl Hosts {
    fn find(&self, hash: u64, name: &[u8]) -> Option<HostAddrs> {
        let spill = &self.spill;
        if let Some(slot) = self.slots.find(hash, |slot| slot.name(spill) == name) {
            return Some(slot.addrs(spill));
        }
        let ents = &self.empty_non_terminals;
        (!ents.is_empty() && ents.find(hash, |ent| *ent.name == *name).is_some())
            .then(HostAddrs::default)
    }

    /// Sets the host's (non-empty) addresses; true if it is new.
    fn insert(
        &mut self,
        hash: u64,
        name: &[u8],
        addrs: HostAddrs,
        hasher: &impl BuildHasher,
    ) -> bool {
        let Hosts {
            slots,
            spill,
            garbage,
            ..
        } = self;
        if let Some(slot) = slots.find_mut(hash, |slot| slot.name(spill) == name) {
            let (old_len, new_len) = (slot.record_len(spill), record_len(name, addrs));
            // An address change of a spilled host rewrites its record in place.
            let reuse = (old_len > 0 && old_len == new_len).then(|| slot.spill_offset());
            if reuse.is_none() {
                *garbage += old_len;
            }
            *slot = Slot::new(name, addrs, spill, reuse);
            self.compact_if_wasteful();
            return false;
        }
        let slot = Slot::new(name, addrs, spill, None);
        slots.insert_unique(hash, slot, |slot| hasher.hash_one(slot.name(spill)));
        true
    }

    /// Removes the host; true if it was there.
    fn remove(&mut self, hash: u64, name: &[u8]) -> bool {
        let Hosts { slots, spill, .. } = self;
        let Ok(entry) = slots.find_entry(hash, |slot| slot.name(spill) == name) else {
            return false;
        };
        let (slot, _) = entry.remove();
        self.garbage += slot.record_len(&self.spill);
        self.compact_if_wasteful();
        true
    }

    /// Copies the live records into a new spill vector once garbage is over half of it.
    fn compact_if_wasteful(&mut self) {
        if self.garbage < COMPACT_MIN_BYTES || self.garbage * 2 < self.spill.len() {
            return;
        }
        let mut fresh = Vec::with_capacity(self.spill.len() - self.garbage);
        for slot in self.slots.iter_mut() {
            let len = slot.record_len(&self.spill);
            if len > 0 {
                let at = slot.spill_offset();
                slot.set_spill_offset(fresh.len());
                fresh.extend_from_slice(&self.spill[at..at + len]);
            }
        }
        self.spill = fresh;
        self.garbage = 0;
    }

    /// One more (or one fewer) host below the empty non-terminal `name`.
    fn count_below(&mut self, hash: u64, name: &[u8], added: bool, hasher: &impl BuildHasher) {
        let ents = &mut self.empty_non_terminals;
        let entry = ents.find_entry(hash, |ent| *ent.name == *name);
        match (entry, added) {
            (Ok(mut entry), true) => entry.get_mut().hosts_below += 1,
            (Err(_), true) => {
                let ent = Ent {
                    name: name.into(),
                    hosts_below: 1,
                };
                ents.insert_unique(hash, ent, |ent| hasher.hash_one(&*ent.name));
            }
            (Ok(entry), false) if entry.get().hosts_below <= 1 => {
                entry.remove();
            }
            (Ok(mut entry), false) => entry.get_mut().hosts_below -= 1,
            (Err(_), false) => {}
        }
    }
}

/// Keeps a shard's lock on its own cache lines (128: the adjacent-line prefetcher pulls pairs), so
/// that readers of one shard do not slow readers of its neighbour.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(RwLock<Hosts>);

/// The hosts of one apex, by relative name (lowercase wire labels, the apex's labels cut off).
pub(super) struct HostTable<S = RandomState> {
    shards: Box<[Shard]>,
    hasher: S,
}

impl HostTable {
    pub(super) fn new() -> HostTable {
        HostTable::with_hasher(RandomState::new())
    }
}

impl<S: BuildHasher> HostTable<S> {
    pub(super) fn with_hasher(hasher: S) -> HostTable<S> {
        HostTable {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher,
        }
    }

    fn hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The shard of a hash: bits that hashbrown uses for neither the bucket (the low bits) nor
    /// the control byte (the top seven).
    fn shard(&self, hash: u64) -> &RwLock<Hosts> {
        &self.shards[(hash >> 40) as usize % SHARDS].0
    }

    // A panic inside a write (there is none short of a bug) would leave at worst unused spill
    // octets, never a torn slot: keep serving rather than poisoning every DNS worker.
    fn read(&self, hash: u64) -> RwLockReadGuard<'_, Hosts> {
        self.shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, Hosts> {
        self.shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The host's addresses; empty ones for an empty non-terminal; `None` if the name does not
    /// exist.
    pub(super) fn find(&self, name: &[u8]) -> Option<HostAddrs> {
        let hash = self.hash(name);
        self.read(hash).find(hash, name)
    }

    /// Sets a host's addresses, which must not be empty; true if the host is new.
    pub(super) fn insert(&self, name: &[u8], addrs: HostAddrs) -> bool {
        debug_assert!(!addrs.is_empty());
        let hash = self.hash(name);
        self.write(hash).insert(hash, name, addrs, &self.hasher)
    }

    /// Removes a host; true if it was there.
    pub(super) fn remove(&self, name: &[u8]) -> bool {
        let hash = self.hash(name);
        self.write(hash).remove(hash, name)
    }

    /// Counts one host more (`added`) or less below the empty non-terminal `name`.
    pub(super) fn count_below(&self, name: &[u8], added: bool) {
        let hash = self.hash(name);
        self.write(hash)
            .count_below(hash, name, added, &self.hasher);
    }

    /// Number of empty non-terminals (for tests).
    #[cfg(test)]
    pub(super) fn empty_non_terminals(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .0
                    .read()
                    .map_or(0, |hosts| hosts.empty_non_terminals.len())
            })
            .sum()
    }

    /// Octets of spill vectors in use and wasted (for tests).
    #[cfg(test)]
    fn spill_bytes(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(used, wasted), shard| {
            let hosts = shard.0.read().unwrap_or_else(PoisonError::into_inner);
            (
                used + hosts.spill.len() - hosts.garbage,
                wasted + hosts.garbage,
            )
        })
    }
}

impl<S> fmt::Debug for HostTable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostTable")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::Hasher;

    use super::*;

    /// Every name hashes alike: one shard, one probe sequence, the same control byte.
    #[derive(Clone, Copy)]
    struct Colliding;

    impl BuildHasher for Colliding {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    struct Constant;

    impl Hasher for Constant {
        fn finish(&self) -> u64 {
            0x0123_4567_89ab_cdef
        }
        fn write(&mut self, _: &[u8]) {}
    }

    fn wire(labels: &[&str]) -> Vec<u8> {
        let mut wire = Vec::new();
        for label in labels {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
        wire
    }

    /// The `i`th test host: short or long names, one label or two; A, AAAA or both.
    fn host(i: u32) -> (Vec<u8>, HostAddrs) {
        let name = match i % 4 {
            0 => wire(&[&format!("h{i}")]),
            1 => wire(&[&format!("a-longer-name-{i}")]),
            2 => wire(&[&format!("w{i}"), "sub"]),
            _ => wire(&[&format!("{i}")]),
        };
        let v4 = Some(Ipv4Addr::from(i));
        let v6 = Some(Ipv6Addr::from(u128::from(i) << 64 | 7));
        let addrs = match i % 3 {
            0 => HostAddrs { v4, v6: None },
            1 => HostAddrs { v4: None, v6 },
            _ => HostAddrs { v4, v6 },
        };
        (name, addrs)
    }

    fn check_all<S: BuildHasher>(
        table: &HostTable<S>,
        hosts: impl Iterator<Item = u32>,
        present: bool,
    ) {
        for i in hosts {
            let (name, addrs) = host(i);
            let expected = present.then_some(addrs);
            assert_eq!(table.find(&name), expected, "host {i}");
        }
    }

    fn exercise<S: BuildHasher>(table: &HostTable<S>, n: u32) {
        for i in 0..n {
            let (name, addrs) = host(i);
            assert!(table.insert(&name, addrs), "host {i} is new");
        }
        check_all(table, 0..n, true);
        check_all(table, n..n + 100, false);
        // Remove the even hosts, change the odd ones (the address set of one in three changes
        // shape: inline to spilled and back).
        for i in (0..n).step_by(2) {
            assert!(table.remove(&host(i).0));
            assert!(!table.remove(&host(i).0), "removed once");
        }
        for i in (1..n).step_by(2) {
            let (name, _) = host(i);
            assert!(
                !table.insert(&name, host(i + 1).1),
                "a change, not a new host"
            );
        }
        check_all(table, (0..n).step_by(2), false);
        for i in (1..n).step_by(2) {
            assert_eq!(table.find(&host(i).0), Some(host(i + 1).1), "host {i}");
        }
        for i in (0..n).step_by(2) {
            assert!(table.insert(&host(i).0, host(i).1));
        }
        for i in (1..n).step_by(2) {
            assert!(!table.insert(&host(i).0, host(i).1));
        }
        check_all(table, 0..n, true);
    }

    #[test]
    fn names_that_collide_are_told_apart() {
        let table = HostTable::with_hasher(Colliding);
        exercise(&table, 300);
        assert!(table.find(&[]).is_none(), "the empty name is not a host");
        assert!(table.find(&wire(&["h0", "sub"])).is_none());
    }

    #[test]
    fn the_table_grows_and_shrinks_and_keeps_every_host() {
        let table = HostTable::new();
        exercise(&table, 50_000);
        let (used, wasted) = table.spill_bytes();
        assert!(
            wasted <= used.max(SHARDS * COMPACT_MIN_BYTES),
            "{wasted} of {used}"
        );
    }

    #[test]
    fn an_address_change_of_a_spilled_host_reuses_its_record() {
        let table = HostTable::with_hasher(Colliding);
        let name = wire(&["a-name-too-long-to-inline"]);
        let v6 = |n: u128| Some(Ipv6Addr::from(n));
        table.insert(
            &name,
            HostAddrs {
                v4: None,
                v6: v6(1),
            },
        );
        let before = table.spill_bytes();
        for n in 2..1000 {
            table.insert(
                &name,
                HostAddrs {
                    v4: None,
                    v6: v6(n),
                },
            );
        }
        assert_eq!(table.spill_bytes(), before);
        assert_eq!(table.find(&name).and_then(|a| a.v6), v6(999));
        // A change of shape (AAAA gone) leaves garbage, which compaction bounds.
        for n in 0..2000u32 {
            let v4 = Some(Ipv4Addr::from(n));
            let addrs = HostAddrs {
                v4,
                v6: (n % 2 == 0).then(|| Ipv6Addr::from(u128::from(n))),
            };
            table.insert(&name, addrs);
            assert_eq!(table.find(&name), Some(addrs));
        }
        let (used, wasted) = table.spill_bytes();
        assert_eq!(used, 1 + name.len());
        assert!(wasted < COMPACT_MIN_BYTES, "{wasted}");
    }

    #[test]
    fn empty_non_terminals_count_hosts_below() {
        let table = HostTable::with_hasher(Colliding);
        let (host, sub) = (wire(&["www", "sub"]), wire(&["sub"]));
        table.insert(&host, host_addrs());
        table.count_below(&sub, true);
        table.count_below(&sub, true);
        assert_eq!(table.find(&sub), Some(HostAddrs::default()));
        assert_eq!(table.find(&host), Some(host_addrs()));
        table.count_below(&sub, false);
        assert_eq!(table.find(&sub), Some(HostAddrs::default()));
        table.count_below(&sub, false);
        assert_eq!(table.find(&sub), None);
        assert_eq!(table.empty_non_terminals(), 0);
        // A name can be a host and have hosts below it: the host wins.
        table.insert(&sub, host_addrs());
        table.count_below(&sub, true);
        assert_eq!(table.find(&sub), Some(host_addrs()));
        table.remove(&sub);
        assert_eq!(table.find(&sub), Some(HostAddrs::default()));
    }

    fn host_addrs() -> HostAddrs {
        HostAddrs {
            v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            v6: None,
        }
    }
}
