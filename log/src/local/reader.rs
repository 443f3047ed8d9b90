//! Reading a [`LocalLog`](super::LocalLog): positional reads of the segment files, guided by the
//! sparse index, never past the durable end.

use std::{fs::File, os::unix::fs::FileExt, sync::Arc};

use bytes::Bytes;
use tokio::sync::watch;

use super::{
    Shared,
    format::{FRAME_PREFIX_LEN, check_body_len, parse_body, parse_prefix},
};
use crate::{LogReader, LogRecord, ReadError};

/// Bytes read from a segment at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A batch stops once it holds this many bytes of keys and payloads (and at least one record).
const MAX_BATCH_BYTES: usize = 4 << 20;

/// A [`LocalLog`](super::LocalLog) reader.
pub(crate) struct LocalReader {
    shared: Arc<Shared>,
    durable: watch::Receiver<u64>,
    /// The next offset to return.
    next: u64,
    /// Read buffer, reused across batches.
    buf: Vec<u8>,
}

impl LocalReader {
    pub(crate) fn new(shared: Arc<Shared>, durable: watch::Receiver<u64>, next: u64) -> Self {
        LocalReader {
            shared,
            durable,
            next,
            buf: Vec::new(),
        }
    }

    /// Reads up to `max` records from `self.next`, all below the durable `end`, on a blocking
    /// thread: a cold read waits for the disk and must not stall the runtime.
    async fn read(&mut self, end: u64, max: usize) -> Result<Vec<LogRecord>, ReadError> {
        let shared = Arc::clone(&self.shared);
        let next = self.next;
        let mut buf = std::mem::take(&mut self.buf);
        let task = tokio::task::spawn_blocking(move || {
            let records = read_range(&shared, next, end, max, &mut buf);
            (records, buf)
        });
        let (records, buf) = match task.await {
            Ok(done) => done,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down.
            Err(_) => return Err(ReadError::Closed),
        };
        self.buf = buf;
        let records = records?;
        if let Some(last) = records.last() {
            self.next = last.offset + 1;
        }
        Ok(records)
    }
}

#[async_trait::async_trait]
impl LogReader for LocalReader {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<LogRecord>, ReadError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        loop {
            // Mark the end seen before comparing, so an advance after the comparison wakes
            // `changed` below.
            let end = *self.durable.borrow_and_update();
            if end > self.next {
                return self.read(end, max).await;
            }
            if self.durable.changed().await.is_err() {
                // The writer has stopped; return what it made durable before it did.
                let end = *self.durable.borrow();
                if end > self.next {
                    return self.read(end, max).await;
                }
                return Err(ReadError::Closed);
            }
        }
    }
}

/// The records `next..min(end, next + max)` (fewer if they pass [`MAX_BATCH_BYTES`]).
///
/// If a record can't be read, the records before it are returned first; the error comes from
/// the next call, which starts at the bad record.
fn read_range(
    shared: &Shared,
    next: u64,
    end: u64,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<Vec<LogRecord>, ReadError> {
    let mut records = Vec::new();
    match read_into(shared, next, end, max, buf, &mut records) {
        Err(error) if records.is_empty() => Err(error),
        _ => Ok(records),
    }
}

/// [`read_range`]'s work, pushing onto `records`.
fn read_into(
    shared: &Shared,
    mut next: u64,
    end: u64,
    max: usize,
    buf: &mut Vec<u8>,
    records: &mut Vec<LogRecord>,
) -> Result<(), ReadError> {
    let stop = end.min(next.saturating_add(max as u64));
    let mut bytes = 0;
    while next < stop && bytes < MAX_BATCH_BYTES {
        let corrupt = |offset, reason| ReadError::Corrupt {
            partition: 0,
            offset,
            reason,
        };
        let plan = shared
            .index
            .read()
            .expect("log index lock poisoned")
            .locate(next)
            .ok_or_else(|| corrupt(next, "durable offset missing from the index"))?;
        let mut chunk = Chunk {
            file: &plan.file,
            buf: &mut *buf,
            start: 0,
            limit: plan.limit,
        };
        chunk.buf.clear();
        let (mut pos, mut offset) = (plan.pos, plan.offset);
        while offset < plan.end && next < stop && bytes < MAX_BATCH_BYTES {
            let prefix = chunk
                .get(pos, FRAME_PREFIX_LEN)
                .map_err(|r| r.into_error(offset))?;
            let prefix = prefix.try_into().expect("get returns the length asked for");
            let (body_len, crc) = parse_prefix(prefix);
            let available = plan.limit - pos - FRAME_PREFIX_LEN as u64;
            let body_len = check_body_len(body_len, available).map_err(|r| corrupt(offset, r))?;
            let body = chunk
                .get(pos + FRAME_PREFIX_LEN as u64, body_len)
                .map_err(|r| r.into_error(offset))?;
            let record = parse_body(body, crc).map_err(|r| corrupt(offset, r))?;
            if record.offset != offset {
                return Err(corrupt(offset, "record offset out of sequence"));
            }
            if offset >= next {
                bytes += record.key.len() + record.payload.len();
                records.push(LogRecord {
                    partition: 0,
                    offset,
                    key: Bytes::copy_from_slice(record.key),
                    payload: Bytes::copy_from_slice(record.payload),
                });
                next = offset + 1;
            }
            pos += (FRAME_PREFIX_LEN + body_len) as u64;
            offset += 1;
        }
    }
    Ok(())
}

/// A window of a segment file, refilled by positional reads.
struct Chunk<'a> {
    file: &'a File,
    buf: &'a mut Vec<u8>,
    /// File position of `buf[0]`.
    start: u64,
    /// Never read at or past this position (the segment's durable length).
    limit: u64,
}

/// Why a [`Chunk`] could not return bytes.
enum ChunkError {
    Io(std::io::Error),
    PastLimit,
}

impl ChunkError {
    fn into_error(self, offset: u64) -> ReadError {
        match self {
            ChunkError::Io(error) => ReadError::Io(error),
            ChunkError::PastLimit => ReadError::Corrupt {
                partition: 0,
                offset,
                reason: "record extends past the durable end of its segment",
            },
        }
    }
}

impl Chunk<'_> {
    /// The `len` bytes at file position `pos`.
    fn get(&mut self, pos: u64, len: usize) -> Result<&[u8], ChunkError> {
        let end = pos + len as u64;
        if end > self.limit {
            return Err(ChunkError::PastLimit);
        }
        if pos < self.start || end > self.start + self.buf.len() as u64 {
            let want = len.max(READ_CHUNK_BYTES) as u64;
            let read_len = want.min(self.limit - pos) as usize;
            self.buf.resize(read_len, 0);
            self.file
                .read_exact_at(self.buf, pos)
                .map_err(ChunkError::Io)?;
            self.start = pos;
        }
        let from = (pos - self.start) as usize;
        Ok(&self.buf[from..from + len])
    }
}
