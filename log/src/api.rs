//! The backend-independent API: [`EventLog`], [`LogReader`], records and [`partition_for`].

use bytes::Bytes;

use crate::{AppendError, LogPosition, ReadError};

/// One record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// The partition it is in (`partition_for(key, partitions)`).
    pub partition: u32,
    /// Its offset within the partition: offsets are dense and start at 0.
    pub offset: u64,
    /// The key it was appended with.
    pub key: Bytes,
    /// The payload (an encoded event).
    pub payload: Bytes,
}

/// Where an acknowledged append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The partition (`partition_for(key, partitions)`).
    pub partition: u32,
    /// The record's offset within the partition.
    pub offset: u64,
}

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The partition that `key`'s events go to: FNV-1a 64 of the key, modulo `partitions`.
///
/// Every backend uses this function (the Kafka backend sets the partition explicitly rather than
/// relying on the client's partitioner), so one name's history is in one partition, in order, and
/// the mapping never changes between releases. Changing it would split a name's history across
/// partitions: treat it as part of the on-disk format.
///
/// # Panics
///
/// If `partitions` is 0 (a log always has at least one partition).
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a log has at least one partition");
    let hash = key.iter().fold(FNV_OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    });
    u32::try_from(hash % u64::from(partitions)).expect("a value below a u32 fits in a u32")
}

/// An append-only, partitioned log of keyed records: the embedded [`LocalLog`](crate::LocalLog),
/// the in-memory [`MemLog`](crate::MemLog), or Kafka.
///
/// Every implementation passes the shared suite in `ddns_log::testsuite`.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// How many partitions the log has (at least 1).
    fn partitions(&self) -> u32;

    /// What names this log among all logs: positions taken from one log mean nothing in
    /// another, so whoever stores a position (the projector's snapshot) stores this beside it and
    /// refuses to resume against a different log. Stable across restarts and reconnects.
    fn identity(&self) -> &str;

    /// Whether other processes may append to this log (Kafka: every ingest node does), so a
    /// reader that has folded everything this handle appended may still lag behind appends
    /// acknowledged elsewhere. False for a log only this handle can write (`LocalLog` locks
    /// its directory).
    fn shared(&self) -> bool;

    /// Appends a record to partition `partition_for(key, self.partitions())`.
    ///
    /// Returns only once the record is durable (on disk and fsync'd, or acknowledged by every
    /// in-sync replica), so the caller may then tell its client "done". Records with the same key
    /// appended one after another (each awaited before the next) get increasing offsets.
    ///
    /// If the returned future is dropped before it completes, the record may or may not be
    /// appended.
    async fn append(&self, key: &[u8], payload: Bytes) -> Result<Appended, AppendError>;

    /// The position just past the last durable record of every partition (the high watermark).
    async fn end(&self) -> Result<LogPosition, ReadError>;

    /// A reader starting at `from`. Partitions that `from` does not cover start at 0.
    ///
    /// Fails with [`ReadError::OutOfRange`] if `from` is past the end of a partition.
    async fn reader(&self, from: &LogPosition) -> Result<Box<dyn LogReader>, ReadError>;
}

/// A cursor over an [`EventLog`], created by [`EventLog::reader`].
#[async_trait::async_trait]
pub trait LogReader: Send {
    /// Waits until at least one durable record past this reader's position exists, then returns
    /// up to `max` of them (at least one), in offset order within each partition, and moves past
    /// them. Never returns a record that is not yet durable. `max == 0` returns an empty batch at
    /// once.
    ///
    /// Cancel safe: if the future is dropped, no record is skipped.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<LogRecord>, ReadError>;
}

/// Checks that `from` is within `end` (a log's end position), as every backend's `reader` must.
pub(crate) fn check_start(from: &LogPosition, end: &LogPosition) -> Result<(), ReadError> {
    for (partition, &requested) in from.offsets().iter().enumerate() {
        let partition = u32::try_from(partition).expect("a log has at most u32::MAX partitions");
        let end = end.offset(partition);
        if requested > end {
            return Err(ReadError::OutOfRange {
                partition,
                requested,
                end,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_for_is_fnv1a_and_stable() {
        // FNV-1a 64 reference values: "" → 0xcbf29ce484222325, "a" → 0xaf63dc4c8601ec8c,
        // "foobar" → 0x85944171f73967e8.
        assert_eq!(
            partition_for(b"", u32::MAX),
            (0xcbf2_9ce4_8422_2325_u64 % 0xffff_ffff) as u32
        );
        assert_eq!(
            partition_for(b"a", 1000),
            (0xaf63_dc4c_8601_ec8c_u64 % 1000) as u32
        );
        assert_eq!(
            partition_for(b"foobar", 7),
            (0x8594_4171_f739_67e8_u64 % 7) as u32
        );
        assert_eq!(partition_for(b"cam42.view.example", 1), 0);
    }

    #[test]
    fn partition_for_spreads_keys() {
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[partition_for(format!("host{i}.example").as_bytes(), 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    #[should_panic(expected = "at least one partition")]
    fn partition_for_zero_partitions_is_a_bug() {
        partition_for(b"x", 0);
    }

    #[test]
    fn check_start_bounds() {
        let end = LogPosition::from_offsets(vec![3, 5]);
        assert!(check_start(&LogPosition::from_offsets(vec![3, 0]), &end).is_ok());
        assert!(check_start(&LogPosition::default(), &end).is_ok());
        assert!(check_start(&LogPosition::from_offsets(vec![3, 5, 0]), &end).is_ok());
        assert!(matches!(
            check_start(&LogPosition::from_offsets(vec![0, 6]), &end),
            Err(ReadError::OutOfRange {
                partition: 1,
                requested: 6,
                end: 5
            })
        ));
        assert!(matches!(
            check_start(&LogPosition::from_offsets(vec![0, 0, 1]), &end),
            Err(ReadError::OutOfRange {
                partition: 2,
                requested: 1,
                end: 0
            })
        ));
    }
}
