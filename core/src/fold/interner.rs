//! Strings that many devices share (vendors, the names their hosts sit under, user agents, field
//! keys), each stored once and named by a small id. An id's references are counted, so a string
//! no device names any more is freed and its id reused: a fleet that moves to a new firmware's
//! User-Agent does not leave the old one behind.
//!
//! Which id a string gets depends on the order of the calls, and so differs between a state
//! folded from the log and one restored from a snapshot; nothing outside the state ever sees an
//! id, so the fold stays deterministic in everything it shows.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

#[derive(Clone, Debug, Default)]
pub(super) struct Interner {
    entries: Vec<Entry>,
    /// Ids whose entry has no references, reused before new ones.
    free: Vec<u32>,
    /// Ids of the entries in use, by their string.
    index: HashTable<u32>,
    hasher: RandomState,
}

#[derive(Clone, Debug)]
struct Entry {
    text: Box<str>,
    /// References from records; 0 means the id is free.
    refs: u64,
}

impl Interner {
    /// The string of `id`, which must be in use.
    pub(super) fn get(&self, id: u32) -> &str {
        let entry = &self.entries[id as usize];
        debug_assert!(entry.refs > 0, "id {id} is not in use");
        &entry.text
    }

    /// The id of `text` with one more reference, interning it if new.
    pub(super) fn acquire(&mut self, text: &str) -> u32 {
        let Interner {
            entries,
            free,
            index,
            hasher,
        } = self;
        let hash = hasher.hash_one(text);
        if let Some(&id) = index.find(hash, |&id| *entries[id as usize].text == *text) {
            entries[id as usize].refs += 1;
            return id;
        }
        let entry = Entry {
            text: text.into(),
            refs: 1,
        };
        let id = match free.pop() {
            Some(id) => {
                entries[id as usize] = entry;
                id
            }
            None => {
                let id = u32::try_from(entries.len()).expect("fewer than 2^32 distinct strings");
                entries.push(entry);
                id
            }
        };
        index.insert_unique(hash, id, |&id| hasher.hash_one(&*entries[id as usize].text));
        id
    }

    /// Drops one reference to `id`, freeing its string with the last.
    pub(super) fn release(&mut self, id: u32) {
        let entry = &mut self.entries[id as usize];
        assert!(entry.refs > 0, "released an id not in use");
        entry.refs -= 1;
        if entry.refs > 0 {
            return;
        }
        let hash = self.hasher.hash_one(&*entry.text);
        entry.text = "".into();
        self.index
            .find_entry(hash, |&other| other == id)
            .expect("an id in use is in the index")
            .remove();
        self.free.push(id);
    }

    /// Heap bytes held (capacities, not lengths).
    pub(super) fn heap_bytes(&self) -> usize {
        let texts: usize = self.entries.iter().map(|e| e.text.len()).sum();
        self.entries.capacity() * size_of::<Entry>()
            + self.free.capacity() * size_of::<u32>()
            + self.index.allocation_size()
            + texts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_counted_freed_and_reused() {
        let mut strings = Interner::default();
        let a = strings.acquire("Acme - Cam - 1");
        assert_eq!(strings.acquire("Acme - Cam - 1"), a);
        let b = strings.acquire("port");
        assert_ne!(a, b);
        strings.release(a);
        assert_eq!(strings.get(a), "Acme - Cam - 1", "one reference is left");
        strings.release(a);
        let c = strings.acquire("Acme - Cam - 2");
        assert_eq!(c, a, "a freed id is reused");
        assert_eq!(strings.get(c), "Acme - Cam - 2");
        assert_eq!(strings.acquire("port"), b);
    }
}
