//! The errors of the log's operations.

use std::{io, path::PathBuf, sync::Arc};

/// Why [`EventLog::append`](crate::EventLog::append) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// Writing or syncing the record failed. Its outcome is unknown: it may or may not be in the
    /// log after a restart. The log refuses every later append (a failed `fsync` may have dropped
    /// dirty pages, so retrying could acknowledge data that is not on disk).
    #[error("log I/O failed")]
    Io(#[source] Arc<io::Error>),
    /// The log is shut down, or refuses appends after an earlier I/O error.
    #[error("log is closed")]
    Closed,
    /// The log's file system is full. Nothing of the record was kept (what a write had put on
    /// disk was zeroed again before this reply), and later appends succeed once space is freed.
    #[error("the log's file system is full")]
    NoSpace(#[source] Arc<io::Error>),
    /// Key and payload together are larger than the log accepts. Nothing was written.
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Key plus payload length, in bytes.
        size: usize,
        /// The configured limit, in bytes.
        max: u32,
    },
    /// A remote log (Kafka) did not confirm the record: its delivery failed or timed out, or the
    /// producer failed fatally (and was rebuilt). Its outcome is unknown: it may be in the log.
    /// Unlike [`AppendError::Io`], later appends may succeed.
    #[error("the broker did not confirm the record")]
    Broker(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

/// Why reading the log failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading a segment file failed.
    #[error("log read I/O failed")]
    Io(#[from] io::Error),
    /// A durable record no longer reads back as it was written (bad CRC, bad framing).
    #[error("corrupt record in partition {partition} near offset {offset}: {reason}")]
    Corrupt {
        /// The partition holding the record.
        partition: u32,
        /// The offset being read.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// A reader was asked to start past the end of a partition (or in a partition the log does not
    /// have). For a projector this means its snapshot is ahead of the log: the log lost data, or the
    /// snapshot belongs to another log.
    #[error("position {requested} is past the end {end} of partition {partition}")]
    OutOfRange {
        /// The partition.
        partition: u32,
        /// The next offset the caller asked for.
        requested: u64,
        /// The partition's end (its next offset to be written).
        end: u64,
    },
    /// The log was shut down and no durable record is left to read.
    #[error("log is closed")]
    Closed,
    /// A remote log (Kafka) failed to answer (its metadata, its end, or a fetch that cannot be
    /// retried). Passing failures such as a broker restart are retried, not reported.
    #[error("reading from the broker failed")]
    Broker(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why [`LogPosition::decode`](crate::LogPosition::decode) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The encoding's version byte is not one this build knows.
    #[error("unknown log position encoding version {0}")]
    UnknownVersion(u8),
    /// The input is shorter or longer than its header says.
    #[error("log position encoding is {actual} bytes, expected {expected}")]
    Length {
        /// The length the header implies.
        expected: usize,
        /// The length given.
        actual: usize,
    },
}

/// Why [`LocalLog::open`](crate::LocalLog::open) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A file system operation failed.
    #[error("log I/O on {path} failed")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A segment other than the last one is damaged, or segments are missing. Opening would lose
    /// acknowledged records, so the log refuses to start.
    #[error("corrupt log segment {segment} at byte {position}: {reason}")]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte position of the damage within the file.
        position: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// Another process (or another `LocalLog` in this one) has the directory open.
    #[error("log directory {path} is in use by another log")]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// The configuration cannot work.
    #[error("invalid log config: {0}")]
    InvalidConfig(&'static str),
}

impl OpenError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> OpenError {
        let path = path.into();
        move |source| OpenError::Io { path, source }
    }
}
