//! ddns-log: the event log, ddnsd's single source of truth.
//!
//! Every change ddnsd makes (a device's new address, a host created, an account removed) is an
//! event appended here; the projector folds the log, in order, into state. This crate is the
//! log's I/O shell:
//!
//! - [`EventLog`] and [`LogReader`]: the backend trait. `append` returns only once the record is
//!   durable; a reader sees only durable records and waits for new ones.
//! - [`LocalLog`]: the embedded, durable, single-partition log in a local directory: segment files
//!   of CRC-framed records, one writer thread doing group commit (one `fdatasync` per batch), a
//!   recovery scan on open that cuts a torn tail. Its on-disk format is documented in its module
//!   and in the crate README.
//! - [`KafkaLog`] (cargo feature `kafka`, on by default): the log on a Kafka topic, for running
//!   several ingest and DNS nodes on one log; see its module for what it guarantees.
//! - [`MemLog`]: the same semantics in memory, with any number of partitions, for tests.
//! - [`LogPosition`]: a reader's position (next offset per partition), stored in the projector's
//!   snapshot; [`partition_for`] maps a key to its partition, for every backend alike.
//! - `testsuite` (cargo feature `testsuite`): the one suite every backend must pass.

mod api;
mod error;
#[cfg(feature = "kafka")]
mod kafka;
mod local;
mod mem;
mod position;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use api::{Appended, EventLog, LogReader, LogRecord, partition_for};
pub use error::{AppendError, DecodeError, OpenError, ReadError};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaConfig, KafkaConnectError, KafkaLog};
pub use local::{LocalLog, LocalLogConfig, LocalLogStats};
pub use mem::MemLog;
pub use position::LogPosition;
