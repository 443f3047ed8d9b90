//! The in-memory sparse index of a [`LocalLog`](super::LocalLog): which segment holds an offset,
//! and a nearby byte position to start reading from.

use std::{fs::File, path::PathBuf, sync::Arc};

use super::format::HEADER_LEN;

/// An index entry every this many bytes of a segment: a lookup then reads at most this much
/// before reaching the wanted record, and the index costs 16 bytes per 4 KiB of log.
const INDEX_INTERVAL_BYTES: u64 = 4096;

/// One segment file and what is durable in it.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Offset of its first record (also its file name).
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    /// Shared by the writer (for the active segment) and readers, which use positional I/O only.
    pub(crate) file: Arc<File>,
    /// Bytes of valid, durable data, header included.
    pub(crate) len: u64,
    /// Offset one past its last record (`base` if it has none).
    pub(crate) end: u64,
    /// `(offset, byte position)` of some records, ascending; the first record is always there.
    entries: Vec<(u64, u64)>,
}

impl Segment {
    /// A segment with no records yet.
    pub(crate) fn empty(base: u64, path: PathBuf, file: Arc<File>) -> Self {
        Segment {
            base,
            path,
            file,
            len: HEADER_LEN,
            end: base,
            entries: Vec::new(),
        }
    }

    /// Records that the next record (offset `self.end`) is durable at byte `self.len`.
    pub(crate) fn push(&mut self, frame_len: u64) {
        let pos = self.len;
        if self
            .entries
            .last()
            .is_none_or(|&(_, last)| pos - last >= INDEX_INTERVAL_BYTES)
        {
            self.entries.push((self.end, pos));
        }
        self.len = pos + frame_len;
        self.end += 1;
    }
}

/// Where to start reading to find some offset.
pub(crate) struct ReadPlan {
    pub(crate) file: Arc<File>,
    /// A record boundary at or before the wanted record.
    pub(crate) pos: u64,
    /// The offset of the record at `pos`.
    pub(crate) offset: u64,
    /// The segment's durable length: never read past it.
    pub(crate) limit: u64,
    /// The segment's end offset.
    pub(crate) end: u64,
}

/// All segments, ascending by base offset; only the last one is written to.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) segments: Vec<Segment>,
}

impl Index {
    /// Where to start reading for `offset`, or `None` if no segment holds it.
    pub(crate) fn locate(&self, offset: u64) -> Option<ReadPlan> {
        let i = self
            .segments
            .partition_point(|s| s.base <= offset)
            .checked_sub(1)?;
        let segment = &self.segments[i];
        if offset >= segment.end {
            return None;
        }
        let j = segment
            .entries
            .partition_point(|&(o, _)| o <= offset)
            .checked_sub(1)?;
        let (entry_offset, pos) = segment.entries[j];
        Some(ReadPlan {
            file: Arc::clone(&segment.file),
            pos,
            offset: entry_offset,
            limit: segment.len,
            end: segment.end,
        })
    }

    /// The segment whose base is `base` (the active one or one created in the same batch).
    pub(crate) fn segment_mut(&mut self, base: u64) -> &mut Segment {
        self.segments
            .iter_mut()
            .rev()
            .find(|s| s.base == base)
            .expect("the writer only places records in segments it has indexed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_entries_and_locate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = Arc::new(File::create(dir.path().join("f")).expect("file"));
        let mut index = Index::default();
        index
            .segments
            .push(Segment::empty(0, "a".into(), Arc::clone(&file)));
        for _ in 0..100 {
            index.segments[0].push(1000);
        }
        index.segments.push(Segment::empty(100, "b".into(), file));
        index.segment_mut(100).push(10);

        // One entry per ~4 KiB: records of 1000 bytes → every 5th record.
        assert_eq!(index.segments[0].entries.len(), 20);
        let plan = index.locate(12).expect("in segment 0");
        assert_eq!(
            (plan.offset, plan.pos, plan.limit, plan.end),
            (10, HEADER_LEN + 10_000, HEADER_LEN + 100_000, 100)
        );
        let plan = index.locate(100).expect("in segment 1");
        assert_eq!((plan.offset, plan.pos, plan.end), (100, HEADER_LEN, 101));
        assert!(index.locate(101).is_none());
    }
}
