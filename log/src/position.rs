//! [`LogPosition`]: how far a reader (or a projector's snapshot) has read.

use crate::DecodeError;

/// Version byte of [`LogPosition::encode`]'s format.
const ENCODING_V1: u8 = 1;
/// Version byte plus the `u32` partition count.
const ENCODING_HEADER_LEN: usize = 5;

/// A position in the log: for every partition, the next offset to read.
///
/// The projector stores it in its snapshot, atomically with the state it has folded, and starts
/// its reader there after a restart. [`LogPosition::total`] is the number of events applied.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LogPosition(Vec<u64>);

impl LogPosition {
    /// The start of a log with `partitions` partitions: every next offset is 0.
    pub fn start(partitions: u32) -> Self {
        Self(vec![0; partitions as usize])
    }

    /// A position from next offsets, indexed by partition.
    pub fn from_offsets(offsets: Vec<u64>) -> Self {
        Self(offsets)
    }

    /// The next offset to read, indexed by partition.
    pub fn offsets(&self) -> &[u64] {
        &self.0
    }

    /// How many partitions this position covers.
    pub fn partitions(&self) -> u32 {
        u32::try_from(self.0.len()).expect("a log has at most u32::MAX partitions")
    }

    /// The next offset to read in `partition` (0 if this position does not cover it).
    pub fn offset(&self, partition: u32) -> u64 {
        self.0.get(partition as usize).copied().unwrap_or(0)
    }

    /// Records that the record at `offset` in `partition` was read: the next offset becomes
    /// `offset + 1`. Grows the position if it did not cover `partition`.
    pub fn advance(&mut self, partition: u32, offset: u64) {
        let index = partition as usize;
        if self.0.len() <= index {
            self.0.resize(index + 1, 0);
        }
        self.0[index] = offset + 1;
    }

    /// The sum of the next offsets: how many events have been read (applied) so far.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// A compact, versioned binary form, for storing in a snapshot:
    /// `[version = 1][partition count: u32 LE][next offset: u64 LE] × count`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODING_HEADER_LEN + 8 * self.0.len());
        out.push(ENCODING_V1);
        out.extend_from_slice(&self.partitions().to_le_bytes());
        for offset in &self.0 {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out
    }

    /// Parses [`LogPosition::encode`]'s output.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let Some((&version, rest)) = b.split_first() else {
            return Err(DecodeError::Length {
                expected: ENCODING_HEADER_LEN,
                actual: 0,
            });
        };
        if version != ENCODING_V1 {
            return Err(DecodeError::UnknownVersion(version));
        }
        let Some((count, offsets)) = rest.split_first_chunk::<4>() else {
            return Err(DecodeError::Length {
                expected: ENCODING_HEADER_LEN,
                actual: b.len(),
            });
        };
        let count = u32::from_le_bytes(*count) as usize;
        let expected = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(ENCODING_HEADER_LEN))
            .unwrap_or(usize::MAX);
        if b.len() != expected {
            return Err(DecodeError::Length {
                expected,
                actual: b.len(),
            });
        }
        let offsets = offsets
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks_exact(8) yields 8 bytes")))
            .collect();
        Ok(Self(offsets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn start_advance_total() {
        let mut p = LogPosition::start(3);
        assert_eq!(p.offsets(), &[0, 0, 0]);
        p.advance(1, 4);
        p.advance(2, 0);
        assert_eq!(p.offsets(), &[0, 5, 1]);
        assert_eq!(p.total(), 6);
        p.advance(5, 9);
        assert_eq!(p.partitions(), 6);
        assert_eq!(p.offset(5), 10);
        assert_eq!(p.offset(7), 0);
        assert_eq!(LogPosition::default().partitions(), 0);
    }

    #[test]
    fn decode_rejects_bad_input() {
        assert_eq!(
            LogPosition::decode(&[]),
            Err(DecodeError::Length {
                expected: 5,
                actual: 0
            })
        );
        assert_eq!(
            LogPosition::decode(&[2, 0, 0, 0, 0]),
            Err(DecodeError::UnknownVersion(2))
        );
        assert_eq!(
            LogPosition::decode(&[1, 1, 0]),
            Err(DecodeError::Length {
                expected: 5,
                actual: 3
            })
        );
        let mut b = LogPosition::from_offsets(vec![7, 8]).encode();
        b.push(0);
        assert_eq!(
            LogPosition::decode(&b),
            Err(DecodeError::Length {
                expected: 21,
                actual: 22
            })
        );
        b.truncate(20);
        assert_eq!(
            LogPosition::decode(&b),
            Err(DecodeError::Length {
                expected: 21,
                actual: 20
            })
        );
        // A huge count must not overflow or allocate.
        assert!(LogPosition::decode(&[1, 255, 255, 255, 255]).is_err());
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(offsets in proptest::collection::vec(any::<u64>(), 0..40)) {
            let p = LogPosition::from_offsets(offsets);
            prop_assert_eq!(LogPosition::decode(&p.encode()), Ok(p));
        }
    }
}
