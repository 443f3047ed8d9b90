//! ddns-projector: runs the fold over the event log.
//!
//! A [`Projector`] reads the log from the position its snapshot records, applies each event
//! with [`ddns_core::State::apply`], and then, for each batch of records:
//! 1. updates the in-memory [`ddns_core::LiveZone`] one host at a time (DNS reads it);
//! 2. writes the changed devices and the new log position in one atomic RocksDB write, so a
//!    restart loads a state and the exact position it reflects, and replays only the tail;
//! 3. hands each event's outcome to the request that appended it ([`ProjectorView::expect`]).
//!
//! The snapshot needs no fsync of its own: the log is the source of truth, and a snapshot that
//! lost its last writes in a crash is still a consistent (state, position) pair to replay from.

mod snapshot;
mod view;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ddns_core::{DeviceId, LiveZone, State, decode_event};
use ddns_log::{EventLog, LogPosition, ReadError};

pub use snapshot::SnapshotError;
pub use view::{OutcomeWaiter, ProjectorView};

use snapshot::Snapshot;
use view::Shared;

/// Records per batch: one RocksDB write and one wake-up of waiters per batch.
const BATCH_RECORDS: usize = 1024;
/// How often the lag gauge asks the log for its end (a round trip per partition on Kafka).
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// Why the projector stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectorError {
    /// The snapshot could not be read or written.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The log could not be read.
    #[error("reading the log: {0}")]
    Read(#[from] ReadError),
}

/// Counters for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProjectorStats {
    /// Records read from the log since this process opened the projector.
    pub records_read: u64,
    /// Records whose payload did not decode (skipped, each logged).
    pub undecodable: u64,
}

/// Folds the log into the snapshot and the live zone. Created by [`Projector::open`], driven
/// by [`Projector::run`].
pub struct Projector {
    log: Arc<dyn EventLog>,
    snapshot: Snapshot,
    shared: Arc<Shared>,
    position: LogPosition,
}

impl Projector {
    /// Opens (or creates) the snapshot of `log` in `dir` and loads it into `zone` and the
    /// state. Fails with [`SnapshotError::OtherLog`] if the snapshot was folded from another log.
    pub fn open(
        dir: &Path,
        zone: Arc<LiveZone>,
        log: Arc<dyn EventLog>,
    ) -> Result<Projector, ProjectorError> {
        let snapshot = Snapshot::open(dir)?;
        snapshot.bind_to_log(log.identity())?;
        let mut state = State::new();
        state.reserve(snapshot.estimated_devices());
        let position = snapshot.load(|id, device| {
            zone.set(&device.fqdn, device.addrs());
            state.restore(id, device);
        })?;
        zone.set_serial(serial_of(&position));
        metrics::gauge!("ddns_zone_hosts").set(zone.len() as f64);
        tracing::info!(devices = state.len(), position = ?position.offsets(), "snapshot loaded");
        let shared = Arc::new(Shared::new(state, zone, position.clone()));
        Ok(Projector {
            log,
            snapshot,
            shared,
            position,
        })
    }

    /// A cheap handle for readers: the state, the zone, outcomes, the applied position.
    pub fn view(&self) -> ProjectorView {
        ProjectorView::new(self.shared.clone())
    }

    /// The log position the snapshot and memory reflect.
    pub fn position(&self) -> &LogPosition {
        &self.position
    }

    /// Tails the log forever, folding each batch; returns only on error.
    pub async fn run(mut self) -> Result<(), ProjectorError> {
        let mut reader = self.log.reader(&self.position).await?;
        let mut lag_measured = Instant::now() - LAG_INTERVAL;
        loop {
            let batch = reader.next_batch(BATCH_RECORDS).await?;
            self.apply_batch(&batch)?;
            if lag_measured.elapsed() >= LAG_INTERVAL {
                lag_measured = Instant::now();
                let end = self.log.end().await?;
                let lag = end.total().saturating_sub(self.position.total());
                metrics::gauge!("ddns_projector_lag_events").set(lag as f64);
            }
        }
    }

    fn apply_batch(&mut self, batch: &[ddns_log::LogRecord]) -> Result<(), ProjectorError> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut touched: Vec<DeviceId> = Vec::with_capacity(batch.len());
        for record in batch {
            self.position.advance(record.partition, record.offset);
            self.shared.count_read();
            let event = match decode_event(&record.payload) {
                Ok(event) => event,
                Err(error) => {
                    // Skipping changes nothing, and every replica skips the same record.
                    tracing::error!(partition = record.partition, offset = record.offset, %error, "undecodable event skipped");
                    metrics::counter!("ddns_projector_undecodable_total").increment(1);
                    self.shared.count_undecodable();
                    continue;
                }
            };
            let applied = self.shared.apply(&event);
            touched.push(event.device().into_owned());
            outcomes.push((event.id, applied.outcome));
        }
        let serial = serial_of(&self.position);
        self.shared.zone().set_serial(serial);
        self.shared.with_state(|state| {
            self.snapshot.write(
                &self.position,
                touched.iter().map(|id| (id, state.device(id))),
            )
        })?;
        metrics::counter!("ddns_projector_applied_total").increment(batch.len() as u64);
        metrics::gauge!("ddns_zone_hosts").set(self.shared.zone().len() as f64);
        self.shared.publish(outcomes, self.position.clone());
        Ok(())
    }
}

/// The SOA serial: the number of events applied, which only grows (RFC 1982 arithmetic wraps).
fn serial_of(position: &LogPosition) -> u32 {
    position.total() as u32
}

#[cfg(test)]
mod tests;
