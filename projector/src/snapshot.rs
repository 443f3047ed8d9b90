//! The RocksDB snapshot.
//!
//! Keys:
//! - `d` vendor `\0` mac → a device record (`ddns_core::encode_device`);
//! - `q` + `ddns_core::encode_people_key` → an account, group, host, removal or release
//!   (`ddns_core::encode_people_entry`);
//! - `p` → the log position the devices reflect (`LogPosition::encode`);
//! - `i` → the identity of the log that position is in (`EventLog::identity`).
//!
//! Invariant: every write puts the changed devices and entries and the position in one
//! `WriteBatch`, so what is stored is always exactly the fold of the log up to the stored position.

use std::path::Path;

use ddns_core::{
    Device, DeviceId, PeopleEntry, PeopleKey, decode_device, decode_people_entry,
    decode_people_key, encode_device, encode_people_entry, encode_people_key,
};
use ddns_log::LogPosition;
use rocksdb::{DB, IteratorMode, MemtableFactory, Options, WriteBatch};

const DEVICE_PREFIX: u8 = b'd';
const PEOPLE_PREFIX: u8 = b'q';
const POSITION_KEY: &[u8] = b"p";
const LOG_IDENTITY_KEY: &[u8] = b"i";

/// Why the snapshot could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored record does not decode: the snapshot is corrupt (delete it to rebuild from the log).
    #[error("corrupt snapshot record {key:?}: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A device could not be encoded.
    #[error("encoding a device: {0}")]
    Encode(#[from] ddns_core::EncodeError),
    /// The snapshot was folded from another log: its position means nothing in this one.
    #[error(
        "the snapshot was built from log {snapshot:?}, not from the configured log {log:?}: \
         point the node at its own log, or delete the snapshot directory to rebuild it from this one"
    )]
    OtherLog {
        /// The identity stored in the snapshot.
        snapshot: String,
        /// The identity of the log it was opened with.
        log: String,
    },
}

impl SnapshotError {
    /// True if RocksDB found the snapshot's files damaged when opening it (before anything was
    /// loaded): it can be set aside and rebuilt from the log.
    pub fn is_damage(&self) -> bool {
        matches!(self, SnapshotError::Db(error) if error.kind() == rocksdb::ErrorKind::Corruption)
    }
}

/// One record of the snapshot, as [`Snapshot::load`] hands it out.
pub(crate) enum Stored {
    /// A device.
    Device(DeviceId, Device),
    /// An account, group, host, removal or release.
    People(PeopleKey, PeopleEntry),
}

pub(crate) struct Snapshot {
    db: DB,
}

impl Snapshot {
    pub(crate) fn open(dir: &Path) -> Result<Snapshot, SnapshotError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::None);
        // Smaller memtables than the 64 MiB default: the snapshot is written, rarely read.
        options.set_write_buffer_size(16 << 20);
        // Only ever read whole, at open: a vector memtable appends each record and sorts once,
        // when it is flushed, where the default skip list spent ~4.5 µs a record finding its
        // place among a million keys. (It takes writes from one thread at a time.)
        options.set_memtable_factory(MemtableFactory::Vector);
        options.set_allow_concurrent_memtable_write(false);
        Ok(Snapshot {
            db: DB::open(&options, dir)?,
        })
    }

    /// Binds the snapshot to the log `identity`: records it in a new snapshot, and refuses a
    /// snapshot recorded with another. (A snapshot from before identities were recorded adopts
    /// the first log it is opened with.)
    pub(crate) fn bind_to_log(&self, identity: &str) -> Result<(), SnapshotError> {
        match self.db.get(LOG_IDENTITY_KEY)? {
            Some(stored) if stored == identity.as_bytes() => Ok(()),
            Some(stored) => Err(SnapshotError::OtherLog {
                snapshot: String::from_utf8_lossy(&stored).into_owned(),
                log: identity.to_owned(),
            }),
            None => Ok(self.db.put(LOG_IDENTITY_KEY, identity)?),
        }
    }

    /// About how many devices the snapshot holds (RocksDB's estimate), to size memory up front.
    pub(crate) fn estimated_devices(&self) -> usize {
        let keys = self.db.property_int_value("rocksdb.estimate-num-keys");
        keys.ok()
            .flatten()
            .map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }

    /// Calls `each` for every stored device, then for every entry of people's; returns the
    /// stored position.
    pub(crate) fn load(&self, mut each: impl FnMut(Stored)) -> Result<LogPosition, SnapshotError> {
        let start = [DEVICE_PREFIX];
        let iter = self
            .db
            .iterator(IteratorMode::From(&start, rocksdb::Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            if key.first() != Some(&DEVICE_PREFIX) {
                break;
            }
            let corrupt = |reason: String| SnapshotError::Corrupt {
                key: String::from_utf8_lossy(&key).into(),
                reason,
            };
            let id = decode_key(&key[1..]).ok_or_else(|| corrupt("bad device key".into()))?;
            let device = decode_device(&value).map_err(|e| corrupt(e.to_string()))?;
            each(Stored::Device(id, device));
        }
        let start = [PEOPLE_PREFIX];
        let iter = self
            .db
            .iterator(IteratorMode::From(&start, rocksdb::Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            if key.first() != Some(&PEOPLE_PREFIX) {
                break;
            }
            let corrupt = |reason: String| SnapshotError::Corrupt {
                key: String::from_utf8_lossy(&key).into(),
                reason,
            };
            let people_key = decode_people_key(&key[1..]).map_err(|e| corrupt(e.to_string()))?;
            let entry =
                decode_people_entry(&people_key, &value).map_err(|e| corrupt(e.to_string()))?;
            each(Stored::People(people_key, entry));
        }
        match self.db.get(POSITION_KEY)? {
            Some(bytes) => LogPosition::decode(&bytes).map_err(|e| SnapshotError::Corrupt {
                key: "p".into(),
                reason: e.to_string(),
            }),
            None => Ok(LogPosition::default()),
        }
    }

    /// Stores the devices and entries (None = deleted) and the position in one atomic write.
    pub(crate) fn write<'a>(
        &self,
        position: &LogPosition,
        devices: impl Iterator<Item = (&'a DeviceId, Option<&'a Device>)>,
        people: impl Iterator<Item = (&'a PeopleKey, Option<&'a PeopleEntry>)>,
    ) -> Result<(), SnapshotError> {
        let mut batch = WriteBatch::default();
        for (id, device) in devices {
            let key = encode_key(id);
            match device {
                Some(device) => batch.put(&key, encode_device(device)?),
                None => batch.delete(&key),
            }
        }
        for (key, entry) in people {
            let mut stored = vec![PEOPLE_PREFIX];
            stored.extend(encode_people_key(key));
            match entry {
                Some(entry) => batch.put(&stored, encode_people_entry(entry)?),
                None => batch.delete(&stored),
            }
        }
        batch.put(POSITION_KEY, position.encode());
        self.db.write(batch)?;
        Ok(())
    }
}

fn encode_key(id: &DeviceId) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + id.vendor.len() + id.mac.len());
    key.push(DEVICE_PREFIX);
    key.extend_from_slice(id.vendor.as_bytes());
    key.push(0);
    key.extend_from_slice(id.mac.as_bytes());
    key
}

fn decode_key(rest: &[u8]) -> Option<DeviceId> {
    let split = rest.iter().position(|&b| b == 0)?;
    let vendor = std::str::from_utf8(&rest[..split]).ok()?.into();
    let mac = std::str::from_utf8(&rest[split + 1..]).ok()?.into();
    Some(DeviceId { vendor, mac })
}
