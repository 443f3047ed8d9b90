//! The writer thread of a [`LocalLog`](super::LocalLog): group commit.
//!
//! Appenders queue a [`Pending`] on a channel and await its reply. The thread takes everything
//! queued, encodes it into one buffer, writes it with one `pwrite` (two around a segment
//! rollover), calls `fdatasync` once, and only then indexes the records, advances the durable end
//! and replies. While it waits for the disk, the next batch queues up, so the number of syncs
//! grows with the time spent syncing, not with the number of appenders.
//!
//! The active segment is kept zero-filled ahead of the data, [`PREALLOCATE_BYTES`] at a time and
//! in the same write and sync as a batch: a commit that only overwrites zeros leaves the file size
//! alone, so `fdatasync` has no metadata to journal (on ext4 this makes each commit 2–4× faster).
//! When a segment is rolled over its zero tail is cut, so only the last segment ever has one.
//!
//! A full file system is not the end of the log. Short of space for the zeros ahead, a commit
//! goes on without them. A write of records that fails for lack of space, before anything was
//! synced, leaves the durable records untouched: the batch is refused with [`AppendError::NoSpace`], what it put on disk
//! past the durable end is zeroed again (overwriting written bytes takes no new space) and
//! synced, and the next batch tries again, so appends resume by themselves once space is
//! freed. Any other failure, and a failed sync, stops the log (see [`Writer::fail`]).

use std::{
    fs::File,
    io,
    os::unix::fs::FileExt,
    sync::{Arc, atomic::Ordering, mpsc},
};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::{
    Shared,
    format::{HEADER_LEN, encode_frame, frame_len},
    recover::{SYNCS_PER_SEGMENT, create_segment},
};
use crate::{AppendError, Appended};

/// A batch stops taking queued appends once it holds this many bytes of records, bounding the
/// buffer and the latency of the first appender in it.
const MAX_BATCH_BYTES: usize = 8 << 20;
/// The active segment is zero-filled this far ahead of its data (capped at `segment_bytes`).
const PREALLOCATE_BYTES: u64 = 1 << 20;
/// Zeros to write from.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// One queued append.
pub(crate) struct Pending {
    pub(crate) key: Bytes,
    pub(crate) payload: Bytes,
    pub(crate) reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// Why a batch was not committed.
enum Failure {
    /// Out of space before anything was synced; cleaned up: the log goes on.
    NoSpace(io::Error),
    /// Anything else: the log stops.
    Fatal(io::Error),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure::Fatal(error)
    }
}

/// True if `error` says the file system (or the user's quota) is full.
fn is_out_of_space(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// The state owned by the writer thread.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Pending>,
    /// The durable end. Readers hold receivers; dropping it (when the thread ends) closes them.
    durable: watch::Sender<u64>,
    /// The directory lock, held as long as anything may write.
    _lock: File,
    /// The segment being appended to.
    active: Arc<File>,
    /// Its base offset.
    base: u64,
    /// Its data length: every byte of it is durable.
    len: u64,
    /// Its file length: zeros from `len` up to here.
    allocated: u64,
    /// The next offset to assign.
    next: u64,
    /// Reused across batches: the encoded frames, the queued appends, `(segment base, frame
    /// length)` of each record written.
    buf: Vec<u8>,
    batch: Vec<Pending>,
    placed: Vec<(u64, u64)>,
    /// The last batch was refused for lack of space (to log the change once, not per batch).
    out_of_space: bool,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        requests: mpsc::Receiver<Pending>,
        durable: watch::Sender<u64>,
        lock: File,
        allocated: u64,
    ) -> Self {
        let (active, base, len, next) = {
            let index = shared.index.read().expect("log index lock poisoned");
            let active = index
                .segments
                .last()
                .expect("recovery leaves at least one segment");
            (
                Arc::clone(&active.file),
                active.base,
                active.len,
                active.end,
            )
        };
        Writer {
            shared,
            requests,
            durable,
            _lock: lock,
            active,
            base,
            len,
            allocated: allocated.max(len),
            next,
            buf: Vec::new(),
            batch: Vec::new(),
            placed: Vec::new(),
            out_of_space: false,
        }
    }

    /// Commits batches until every [`LocalLog`](super::LocalLog) handle is gone.
    pub(crate) fn run(mut self) {
        while let Ok(first) = self.requests.recv() {
            let mut bytes = first.key.len() + first.payload.len();
            self.batch.push(first);
            while bytes < MAX_BATCH_BYTES {
                let Ok(pending) = self.requests.try_recv() else {
                    break;
                };
                bytes += pending.key.len() + pending.payload.len();
                self.batch.push(pending);
            }
            match self.commit() {
                Ok(first_offset) => self.acknowledge(first_offset),
                Err(Failure::NoSpace(error)) => self.refuse(error),
                Err(Failure::Fatal(error)) => return self.fail(error),
            }
        }
    }

    /// Writes and syncs the batch, then publishes it. Returns the offset of its first record.
    fn commit(&mut self) -> Result<u64, Failure> {
        let first_offset = self.next;
        let segment_bytes = self.shared.config.segment_bytes;
        let mut new_segments = Vec::new();
        let mut file = Arc::clone(&self.active);
        let mut base = self.base;
        // Where `buf` goes in `file`.
        let mut buf_pos = self.len;
        let mut next = self.next;
        let mut allocated = self.allocated;
        self.buf.clear();
        self.placed.clear();
        for pending in &self.batch {
            let frame_len = frame_len(pending.key.len(), pending.payload.len()) as u64;
            let segment_len = buf_pos + self.buf.len() as u64;
            // Roll over when this record would overflow a segment that has records; a record
            // larger than a segment gets a segment of its own.
            if segment_len > HEADER_LEN && segment_len + frame_len > segment_bytes {
                file.write_all_at(&self.buf, buf_pos)?;
                if allocated > segment_len {
                    // Cut the zero tail: only the last segment may have one.
                    file.set_len(segment_len)?;
                    file.sync_all()?;
                    self.shared.count_syncs(1);
                } else if !self.buf.is_empty() {
                    sync_data(&file, &self.shared)?;
                }
                self.buf.clear();
                let segment = create_segment(&self.shared.dir, next)?;
                self.shared.count_syncs(SYNCS_PER_SEGMENT);
                file = Arc::clone(&segment.file);
                base = next;
                buf_pos = HEADER_LEN;
                allocated = HEADER_LEN;
                new_segments.push(segment);
            }
            encode_frame(&mut self.buf, next, &pending.key, &pending.payload);
            self.placed.push((base, frame_len));
            next += 1;
        }
        if !self.buf.is_empty() {
            let end = buf_pos + self.buf.len() as u64;
            let written = file.write_all_at(&self.buf, buf_pos).and_then(|()| {
                if end > allocated {
                    let target = (allocated + PREALLOCATE_BYTES).min(segment_bytes).max(end);
                    allocated = match write_zeros(&file, end, target) {
                        Ok(()) => target,
                        // Short of space for the zeros ahead, not for the records: go on with
                        // the zeros written so far (each commit then grows the file).
                        Err(error) if is_out_of_space(&error) => file.metadata()?.len().max(end),
                        Err(error) => return Err(error),
                    };
                }
                Ok(())
            });
            match written {
                Ok(()) => {}
                // Only in the active segment: a rollover's new segment is left to `fail`.
                Err(error) if is_out_of_space(&error) && new_segments.is_empty() => {
                    self.unwrite(&file, buf_pos, end)?;
                    return Err(Failure::NoSpace(error));
                }
                Err(error) => return Err(Failure::Fatal(error)),
            }
            sync_data(&file, &self.shared)?;
        }

        // Durable. Index first, so a reader woken by the new end finds the records.
        {
            let mut index = self.shared.index.write().expect("log index lock poisoned");
            index.segments.extend(new_segments);
            for &(base, frame_len) in &self.placed {
                index.segment_mut(base).push(frame_len);
            }
        }
        self.active = file;
        self.base = base;
        self.len = buf_pos + self.buf.len() as u64;
        self.allocated = allocated;
        self.next = next;
        self.durable.send_replace(next);
        Ok(first_offset)
    }

    /// Replies to every appender of the committed batch.
    fn acknowledge(&mut self, first_offset: u64) {
        if self.out_of_space {
            tracing::info!(dir = %self.shared.dir.display(), "the log appends again: space was freed");
            self.out_of_space = false;
        }
        let count = self.batch.len() as u64;
        self.shared.appends.fetch_add(count, Ordering::Relaxed);
        metrics::histogram!("ddns_log_group_commit_size").record(count as f64);
        for (offset, pending) in (first_offset..).zip(self.batch.drain(..)) {
            // An appender that stopped waiting still has its record appended.
            let _ = pending.reply.send(Ok(Appended {
                partition: 0,
                offset,
            }));
        }
    }

    /// Zeros what a batch that ran out of space wrote over `from..to` of `file` (as far as the
    /// file reaches: bytes never written need nothing, and overwriting written ones takes no
    /// new space), and syncs, so no part of it can be read back as records after a restart.
    fn unwrite(&self, file: &File, from: u64, to: u64) -> io::Result<()> {
        let reached = file.metadata()?.len().min(to);
        if reached > from {
            write_zeros(file, from, reached)?;
            sync_data(file, &self.shared)?;
        }
        Ok(())
    }

    /// Refuses the batch for lack of space; the log goes on (see the module docs).
    fn refuse(&mut self, error: io::Error) {
        if !self.out_of_space {
            tracing::error!(
                error = %error,
                dir = %self.shared.dir.display(),
                "the log's file system is full: refusing appends until space is freed"
            );
            self.out_of_space = true;
        }
        metrics::counter!("ddns_log_appends_refused_total", "reason" => "no_space")
            .increment(self.batch.len() as u64);
        let error = Arc::new(error);
        for pending in self.batch.drain(..) {
            let _ = pending
                .reply
                .send(Err(AppendError::NoSpace(Arc::clone(&error))));
        }
    }

    /// After a failed write or sync nothing more may be acknowledged: the failed batch may be
    /// partly on disk, and after a failed `fsync` the kernel may have dropped the dirty pages
    /// while marking them clean, so a retry could "succeed" without the data.
    fn fail(mut self, error: io::Error) {
        tracing::error!(
            error = %error,
            dir = %self.shared.dir.display(),
            "log write failed: refusing every further append until restarted"
        );
        self.shared.failed.store(true, Ordering::SeqCst);
        let error = Arc::new(error);
        for pending in self.batch.drain(..) {
            let _ = pending.reply.send(Err(AppendError::Io(Arc::clone(&error))));
        }
        // Appenders that queued before they could see `failed`.
        while let Ok(pending) = self.requests.recv() {
            let _ = pending.reply.send(Err(AppendError::Closed));
        }
    }
}

/// Writes zeros to `file` over `from..to`.
fn write_zeros(file: &File, mut from: u64, to: u64) -> io::Result<()> {
    while from < to {
        let n = usize::try_from(to - from)
            .unwrap_or(usize::MAX)
            .min(ZEROS.len());
        file.write_all_at(&ZEROS[..n], from)?;
        from += n as u64;
    }
    Ok(())
}

/// `fdatasync`, counted.
fn sync_data(file: &File, shared: &Shared) -> io::Result<()> {
    file.sync_data()?;
    shared.count_syncs(1);
    Ok(())
}
