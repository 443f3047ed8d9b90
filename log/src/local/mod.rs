//! [`LocalLog`]: the embedded durable log, one partition in one directory.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! <dir>/LOCK                          flock(2)ed while a LocalLog has the directory open
//! <dir>/ID                            `local:` + 32 random hex digits, written when the log is
//!                                     created: the log's identity (`EventLog::identity`)
//! <dir>/00000000000000000000.log      segment: records 0 ..
//! <dir>/00000000000000052113.log      segment: records 52113 .. (named by its first offset,
//!                                     20 zero-padded decimal digits)
//!
//! segment  = header record*
//! header   = "DDNSLOG1"                              8 bytes: magic and format version
//! record   = body_len:u32  crc:u32  body             little-endian
//! body     = offset:u64  key_len:u32  key[key_len]  payload[body_len - 12 - key_len]
//! crc      = CRC-32 (IEEE, crc32fast) of body        i.e. of everything after the crc
//! ```
//!
//! Invariants:
//!
//! - Offsets are dense: the first segment's base is 0, each segment's base is the previous
//!   segment's last offset + 1, and records in a segment have offsets base, base + 1, ….
//! - The last segment may continue past its records with zeros (space the writer fills ahead, so
//!   that a commit does not change the file size); every other segment ends with its last record.
//! - Every byte of every segment but the last, and every byte of the last up to the durable end,
//!   has been `fdatasync`ed before any append of a record in it was acknowledged. A segment's
//!   header and its directory entry are synced when it is created, before a record is written in
//!   it. So after a crash only the last segment can end in a torn record.
//! - A segment is rolled over when the next record would take it past `segment_bytes` (a record
//!   larger than that gets a segment of its own). Segments are never rewritten or deleted; the
//!   only change to existing bytes is cutting the last segment's torn tail on open.
//! - `key_len + payload_len <= max_record_bytes` for records this log appends.
//!
//! On open every segment is scanned and each record's length, CRC and offset checked. In the
//! last segment, records end at the first frame that does not check out; if only zeros follow,
//! that is the zero-filled space. Anything else there (a short record, a bad length, a bad CRC, an
//! offset out of sequence) is a torn tail: it holds no acknowledged record, so it is cut (truncate
//! to the last good record + fsync), logged and counted in
//! [`LocalLogStats::torn_bytes_cut_on_open`]. Damage anywhere else would mean losing
//! acknowledged records, so [`LocalLog::open`] fails with [`OpenError::Corrupt`] instead.
//!
//! # Writing and reading
//!
//! Appends are committed by one writer thread in groups (see `writer.rs`): one write and one
//! `fdatasync` per group. The durable end (the next offset) is published on a `watch` channel
//! after the sync; readers never read past it, so they only see durable records, and wake when
//! it moves. A sparse in-memory index (an entry per 4 KiB of each segment, built by the open
//! scan and extended by the writer) turns an offset into a segment file and a byte position to
//! `pread` from; payloads are not kept in memory.

mod format;
mod index;
mod reader;
mod recover;
mod writer;

use std::{
    fmt,
    fs::{self, OpenOptions},
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::Instant,
};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::{
    AppendError, Appended, EventLog, LogPosition, LogReader, OpenError, ReadError, api::check_start,
};
use index::Index;
use reader::LocalReader;
use writer::{Pending, Writer};

/// Default [`LocalLogConfig::max_record_bytes`]: 64 KiB, far above any event.
pub(crate) const DEFAULT_MAX_RECORD_BYTES: u32 = 64 * 1024;
/// Default [`LocalLogConfig::segment_bytes`]: 64 MiB.
const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest [`LocalLogConfig::segment_bytes`] accepted (tests use tiny segments).
const MIN_SEGMENT_BYTES: u64 = 64;
/// Largest [`LocalLogConfig::max_record_bytes`] accepted: frames must fit a `u32` length, and a
/// reader buffers a whole record.
const MAX_RECORD_BYTES_LIMIT: u32 = 256 * 1024 * 1024;
/// Name of the lock file in the log directory.
const LOCK_FILE: &str = "LOCK";
/// Name of the file holding the log's identity.
const ID_FILE: &str = "ID";

/// How a [`LocalLog`] lays out its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalLogConfig {
    /// A new segment file is started when the next record would make the current one larger than
    /// this. Default 64 MiB; at least 64.
    pub segment_bytes: u64,
    /// Largest key plus payload accepted by [`EventLog::append`]; larger is
    /// [`AppendError::TooLarge`]. Default 64 KiB; at most 256 MiB. Lowering it never makes
    /// existing records unreadable.
    pub max_record_bytes: u32,
}

impl Default for LocalLogConfig {
    fn default() -> Self {
        LocalLogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

impl LocalLogConfig {
    fn validate(&self) -> Result<(), OpenError> {
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(OpenError::InvalidConfig(
                "segment_bytes must be at least 64",
            ));
        }
        if self.max_record_bytes > MAX_RECORD_BYTES_LIMIT {
            return Err(OpenError::InvalidConfig(
                "max_record_bytes must be at most 256 MiB",
            ));
        }
        Ok(())
    }
}

/// Counters of a [`LocalLog`] since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalLogStats {
    /// Appends acknowledged as durable.
    pub appends: u64,
    /// `fsync`/`fdatasync` calls made to commit appends (data, new segments, the directory).
    /// With many concurrent appenders this is far below `appends`: that is group commit.
    pub fsyncs: u64,
    /// Bytes of torn tail cut off the last segment by [`LocalLog::open`].
    pub torn_bytes_cut_on_open: u64,
}

/// State shared by the handle, the writer thread and readers.
struct Shared {
    dir: PathBuf,
    identity: String,
    config: LocalLogConfig,
    /// Written only by the writer thread, after a sync.
    index: RwLock<Index>,
    /// The durable end; the sender is the writer thread's.
    durable: watch::Receiver<u64>,
    /// Set after an I/O error: every later append is refused.
    failed: AtomicBool,
    appends: AtomicU64,
    fsyncs: AtomicU64,
    torn_bytes_cut_on_open: u64,
}

impl Shared {
    fn count_syncs(&self, n: u64) {
        self.fsyncs.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("ddns_log_fsyncs_total").increment(n);
    }
}

/// The embedded durable [`EventLog`]: one partition, stored in a directory of segment files,
/// appended by group commit, crash-safe. See the module docs for the on-disk format.
///
/// Dropping it waits for the writer thread to finish the batch it is committing and releases
/// the directory; readers still return what was durable, then [`ReadError::Closed`].
pub struct LocalLog {
    shared: Arc<Shared>,
    /// `None` only while dropping.
    requests: Option<mpsc::Sender<Pending>>,
    writer: Option<thread::JoinHandle<()>>,
}

impl fmt::Debug for LocalLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalLog")
            .field("dir", &self.shared.dir)
            .field("durable_end", &*self.shared.durable.borrow())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl LocalLog {
    /// Opens (creating if needed) the log in `dir`: locks the directory, scans every segment,
    /// cuts a torn tail off the last one, and starts the writer thread.
    ///
    /// Blocking (it reads the whole log), but brief enough to call once at startup from inside
    /// a tokio runtime.
    pub fn open(dir: &Path, config: LocalLogConfig) -> Result<LocalLog, OpenError> {
        config.validate()?;
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(OpenError::io(dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                recover::sync_dir(parent).map_err(OpenError::io(parent))?;
            }
        }
        let lock = lock_dir(dir)?;
        let identity = read_or_create_identity(dir)?;
        let recovered = recover::recover(dir)?;
        let end = recovered.index.segments.last().map_or(0, |s| s.end);
        let segments = recovered.index.segments.len();
        let (durable_tx, durable) = watch::channel(end);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            identity,
            config,
            index: RwLock::new(recovered.index),
            durable,
            failed: AtomicBool::new(false),
            appends: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            torn_bytes_cut_on_open: recovered.torn_bytes,
        });
        let (requests, queue) = mpsc::channel();
        let writer = Writer::new(
            Arc::clone(&shared),
            queue,
            durable_tx,
            lock,
            recovered.allocated,
        );
        let writer = thread::Builder::new()
            .name("ddns-log-writer".into())
            .spawn(move || writer.run())
            .map_err(OpenError::io(dir))?;
        describe_metrics();
        tracing::info!(dir = %dir.display(), end, segments, "opened local log");
        Ok(LocalLog {
            shared,
            requests: Some(requests),
            writer: Some(writer),
        })
    }

    /// Counters since the log was opened.
    pub fn stats(&self) -> LocalLogStats {
        LocalLogStats {
            appends: self.shared.appends.load(Ordering::Relaxed),
            fsyncs: self.shared.fsyncs.load(Ordering::Relaxed),
            torn_bytes_cut_on_open: self.shared.torn_bytes_cut_on_open,
        }
    }
}

impl Drop for LocalLog {
    fn drop(&mut self) {
        // Closing the queue ends the writer after its current batch.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!(dir = %self.shared.dir.display(), "log writer thread panicked");
        }
    }
}

#[async_trait::async_trait]
impl EventLog for LocalLog {
    fn partitions(&self) -> u32 {
        1
    }

    fn identity(&self) -> &str {
        &self.shared.identity
    }

    fn shared(&self) -> bool {
        false
    }

    async fn append(&self, key: &[u8], payload: Bytes) -> Result<Appended, AppendError> {
        let max = self.shared.config.max_record_bytes;
        let size = key.len() + payload.len();
        if size > max as usize {
            return Err(AppendError::TooLarge { size, max });
        }
        if self.shared.failed.load(Ordering::SeqCst) {
            return Err(AppendError::Closed);
        }
        let started = Instant::now();
        let (reply, acknowledged) = oneshot::channel();
        let pending = Pending {
            key: Bytes::copy_from_slice(key),
            payload,
            reply,
        };
        self.requests
            .as_ref()
            .ok_or(AppendError::Closed)?
            .send(pending)
            .map_err(|_| AppendError::Closed)?;
        let appended = acknowledged.await.map_err(|_| AppendError::Closed)??;
        metrics::histogram!("ddns_log_append_seconds").record(started.elapsed().as_secs_f64());
        Ok(appended)
    }

    async fn end(&self) -> Result<LogPosition, ReadError> {
        Ok(LogPosition::from_offsets(vec![
            *self.shared.durable.borrow(),
        ]))
    }

    async fn reader(&self, from: &LogPosition) -> Result<Box<dyn LogReader>, ReadError> {
        let durable = self.shared.durable.clone();
        let end = *durable.borrow();
        check_start(from, &LogPosition::from_offsets(vec![end]))?;
        Ok(Box::new(LocalReader::new(
            Arc::clone(&self.shared),
            durable,
            from.offset(0),
        )))
    }
}

/// Takes the directory's lock file, so two logs never write the same directory.
fn lock_dir(dir: &Path) -> Result<fs::File, OpenError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(OpenError::io(&path))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(OpenError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(errno) => Err(OpenError::Io {
            path,
            source: errno.into(),
        }),
    }
}

/// Describes the log's metrics to the installed recorder.
fn describe_metrics() {
    metrics::describe_histogram!(
        "ddns_log_append_seconds",
        metrics::Unit::Seconds,
        "Time from append to durable acknowledgement"
    );
    metrics::describe_counter!(
        "ddns_log_fsyncs_total",
        "fsync/fdatasync calls made by the log writer"
    );
    metrics::describe_histogram!(
        "ddns_log_group_commit_size",
        metrics::Unit::Count,
        "Appends committed by one fsync"
    );
    metrics::describe_counter!(
        "ddns_log_torn_bytes_cut_total",
        metrics::Unit::Bytes,
        "Bytes of torn tail cut off the log on open"
    );
}

/// The identity in `<dir>/ID`, created (and synced with its directory entry) the first time.
fn read_or_create_identity(dir: &Path) -> Result<String, OpenError> {
    let path = dir.join(ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => return Ok(text.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(OpenError::io(&path)(error)),
    }
    let random: [u8; 16] = rand::random();
    let identity: String = random.iter().fold("local:".to_owned(), |mut id, byte| {
        id.push_str(&format!("{byte:02x}"));
        id
    });
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        // Written beside, then renamed: a crash never leaves an empty or partial ID.
        let partial = dir.join("ID.partial");
        let mut file = fs::File::create(&partial)?;
        file.write_all(format!("{identity}\n").as_bytes())?;
        file.sync_all()?;
        fs::rename(&partial, &path)?;
        recover::sync_dir(dir)
    };
    write().map_err(OpenError::io(&path))?;
    Ok(identity)
}
