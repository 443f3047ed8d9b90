//! ddns-projector: runs the fold over the event log.
//!
//! A [`Projector`] reads the log from the position its snapshot records, applies each event
//! with [`ddns_core::State::apply`], and then, for each batch of records:
//! 1. updates the in-memory [`ddns_core::LiveZone`] one host at a time (DNS reads it);
//! 2. hands each event's outcome to the request that appended it ([`ProjectorView::expect`]);
//! 3. queues the changed devices and people's entries (accounts, groups, hosts) and the new
//!    log position for the snapshot writer, a thread
//!    of its own that writes them in one atomic RocksDB write, so a restart loads a state and
//!    the exact position it reflects, and replays only the tail.
//!
//! A [`Committer`] is the request side: it appends an event and waits for the outcome the fold
//! gave it.
//!
//! The snapshot is written behind the fold, off the path of every reply: a reply needs the
//! event durable in the log and the fold's outcome, not the cache. When the writer falls
//! behind, the batches queued meanwhile are merged (a device's latest record wins, the
//! position is the last batch's), so what it writes is always the fold up to one position,
//! and the queue holds at most one record per device.
//!
//! The snapshot needs no fsync of its own: the log is the source of truth, and a snapshot that
//! lost its last writes in a crash is still a consistent (state, position) pair to replay from.

mod commit;
mod snapshot;
mod view;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ddns_core::{Device, DeviceId, LiveZone, PeopleEntry, PeopleKey, State, decode_event};
use ddns_log::{EventLog, LogPosition, ReadError};

pub use commit::Committer;
pub use snapshot::SnapshotError;
pub use view::{OutcomeWaiter, ProjectorView};

use snapshot::{Snapshot, Stored};
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
    /// The snapshot writer's thread could not be started.
    #[error("starting the snapshot writer: {0}")]
    Thread(std::io::Error),
    /// A damaged snapshot could not be moved aside.
    #[error("moving the damaged snapshot aside: {0}")]
    SetAside(std::io::Error),
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
    snapshot: SnapshotWriter,
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
        let position = snapshot.load(|stored| match stored {
            Stored::Device(id, device) => {
                zone.set(&device.fqdn, device.addrs());
                state.restore(id, device);
            }
            Stored::People(key, entry) => {
                if let (PeopleKey::Host(name), PeopleEntry::Host(host)) = (&key, &entry) {
                    if !host.addrs().is_empty() {
                        zone.set(name, host.addrs());
                    }
                    zone.set_acme_txt(name, &host.acme_txt);
                }
                state.restore_people(key, entry);
            }
        })?;
        zone.set_serial(serial_of(&position));
        metrics::gauge!("ddns_zone_hosts").set(zone.len() as f64);
        tracing::info!(devices = state.len(), position = ?position.offsets(), "snapshot loaded");
        let shared = Arc::new(Shared::new(state, zone, position.clone()));
        Ok(Projector {
            log,
            snapshot: SnapshotWriter::start(snapshot)?,
            shared,
            position,
        })
    }

    /// [`Projector::open`], except that a snapshot whose files are damaged (a table or its
    /// manifest lost or corrupt, as a disk incident leaves it) is moved aside to
    /// `DIR.damaged-<unix ms>` and rebuilt from the log, which is the truth. The move is logged
    /// as an error; the old files are kept for a post-mortem.
    pub fn open_or_rebuild(
        dir: &Path,
        zone: Arc<LiveZone>,
        log: Arc<dyn EventLog>,
    ) -> Result<Projector, ProjectorError> {
        match Projector::open(dir, zone.clone(), log.clone()) {
            Err(ProjectorError::Snapshot(error)) if error.is_damage() => {
                let millis = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let mut aside = dir.as_os_str().to_owned();
                aside.push(format!(".damaged-{millis}"));
                std::fs::rename(dir, &aside).map_err(ProjectorError::SetAside)?;
                tracing::error!(%error, aside = %Path::new(&aside).display(), "the snapshot is damaged: moved aside, rebuilding it from the log");
                metrics::counter!("ddns_projector_snapshot_rebuilds_total").increment(1);
                Projector::open(dir, zone, log)
            }
            other => other,
        }
    }

    /// A cheap handle for readers: the state, the zone, outcomes, the applied position.
    pub fn view(&self) -> ProjectorView {
        ProjectorView::new(self.shared.clone())
    }

    /// The log position the snapshot and memory reflect.
    pub fn position(&self) -> &LogPosition {
        &self.position
    }

    /// Folds the log from its start up to this projector's position into a new state, and
    /// compares it with the state loaded from the snapshot (call it before [`Projector::run`]):
    /// what `ddnsd verify` checks after a crash. A snapshot ahead of the log (records it
    /// reflects are gone from the log) is [`Replay::log_behind`].
    pub async fn replay_from_start(&self) -> Result<Replay, ProjectorError> {
        let end = self.log.end().await?;
        let partitions = self.position.partitions();
        let log_behind = (0..partitions).any(|p| end.offset(p) < self.position.offset(p));
        let mut replayed = LogPosition::start(partitions);
        let mut state = State::new();
        let mut undecodable = 0;
        if !log_behind {
            let below =
                |at: &LogPosition| (0..partitions).any(|p| at.offset(p) < self.position.offset(p));
            let mut reader = self.log.reader(&replayed).await?;
            while below(&replayed) {
                for record in reader.next_batch(BATCH_RECORDS).await? {
                    let p = record.partition;
                    if replayed.offset(p) >= self.position.offset(p) {
                        continue;
                    }
                    replayed.advance(p, record.offset);
                    match decode_event(&record.payload) {
                        Ok(event) => {
                            state.apply(&event);
                        }
                        Err(_) => undecodable += 1,
                    }
                }
            }
        }
        let matches = !log_behind && self.shared.with_state(|loaded| *loaded == state);
        Ok(Replay {
            records: replayed.total(),
            log_end: end,
            log_behind,
            undecodable,
            matches,
        })
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
        let mut touched_people: Vec<PeopleKey> = Vec::new();
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
            if let Some(device) = event.device() {
                touched.push(device.into_owned());
            }
            touched_people.extend(applied.people);
            outcomes.push((event.id, applied.outcome));
        }
        let serial = serial_of(&self.position);
        self.shared.zone().set_serial(serial);
        // The devices and entries as of this position, copied under one read lock, for the
        // writer.
        let changes = self.shared.with_state(|state| Changes {
            devices: touched
                .into_iter()
                .map(|id| {
                    let device = state.device(&id).map(Device::from);
                    (id, device)
                })
                .collect(),
            people: touched_people
                .into_iter()
                .map(|key| {
                    let entry = state.people_entry(&key);
                    (key, entry)
                })
                .collect(),
        });
        metrics::counter!("ddns_projector_applied_total").increment(batch.len() as u64);
        metrics::gauge!("ddns_zone_hosts").set(self.shared.zone().len() as f64);
        self.shared.publish(outcomes, self.position.clone());
        self.snapshot.queue(self.position.clone(), changes)?;
        Ok(())
    }
}

/// What [`Projector::replay_from_start`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replay {
    /// Records folded: the snapshot's position.
    pub records: u64,
    /// The log's end.
    pub log_end: LogPosition,
    /// The log ends before the snapshot's position: records the snapshot reflects are gone.
    pub log_behind: bool,
    /// Records that did not decode (skipped by the replay, as by the projector).
    pub undecodable: u64,
    /// The replayed state equals the snapshot's.
    pub matches: bool,
}

/// What a batch changed, as of its position (`None` = gone).
struct Changes {
    devices: HashMap<DeviceId, Option<Device>>,
    people: HashMap<PeopleKey, Option<PeopleEntry>>,
}

/// What the snapshot writer has yet to write: the fold up to `position`, as far as it changed
/// since the last write (`None` = the device or entry is gone).
#[derive(Default)]
struct Behind {
    position: Option<LogPosition>,
    devices: HashMap<DeviceId, Option<Device>>,
    people: HashMap<PeopleKey, Option<PeopleEntry>>,
    /// The projector is gone: write what is left, then stop.
    closed: bool,
    /// The writer failed with this; it writes nothing more.
    failed: Option<SnapshotError>,
}

/// The snapshot, written by a thread of its own behind the fold (see the crate docs).
struct SnapshotWriter {
    behind: Arc<(Mutex<Behind>, Condvar)>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SnapshotWriter {
    fn start(snapshot: Snapshot) -> Result<SnapshotWriter, ProjectorError> {
        let behind = Arc::new((Mutex::new(Behind::default()), Condvar::new()));
        let writer = behind.clone();
        let thread = thread::Builder::new()
            .name("ddns-snapshot".into())
            .spawn(move || write_behind(&snapshot, &writer))
            .map_err(ProjectorError::Thread)?;
        Ok(SnapshotWriter {
            behind,
            thread: Some(thread),
        })
    }

    /// Queues the fold's changes as of `position`; fails if an earlier write failed.
    fn queue(&self, position: LogPosition, changes: Changes) -> Result<(), ProjectorError> {
        let (lock, wake) = &*self.behind;
        let mut behind = lock.lock().expect("snapshot queue poisoned");
        if let Some(error) = behind.failed.take() {
            return Err(error.into());
        }
        behind.position = Some(position);
        behind.devices.extend(changes.devices);
        behind.people.extend(changes.people);
        wake.notify_one();
        Ok(())
    }
}

impl Drop for SnapshotWriter {
    /// Writes what is queued, so a projector opened next on the same directory starts there.
    fn drop(&mut self) {
        let (lock, wake) = &*self.behind;
        lock.lock().expect("snapshot queue poisoned").closed = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the snapshot writer panicked");
        }
    }
}

/// The writer thread: takes everything queued and writes it as one batch, until closed.
fn write_behind(snapshot: &Snapshot, behind: &(Mutex<Behind>, Condvar)) {
    let (lock, wake) = behind;
    loop {
        let (position, devices, people) = {
            let mut queued = lock.lock().expect("snapshot queue poisoned");
            while queued.position.is_none() && !queued.closed {
                queued = wake.wait(queued).expect("snapshot queue poisoned");
            }
            match queued.position.take() {
                Some(position) => (
                    position,
                    std::mem::take(&mut queued.devices),
                    std::mem::take(&mut queued.people),
                ),
                None => return,
            }
        };
        let written = snapshot.write(
            &position,
            devices.iter().map(|(id, d)| (id, d.as_ref())),
            people.iter().map(|(key, e)| (key, e.as_ref())),
        );
        if let Err(error) = written {
            tracing::error!(%error, "writing the snapshot failed");
            lock.lock().expect("snapshot queue poisoned").failed = Some(error);
            return;
        }
    }
}

/// The SOA serial: the number of events applied, which only grows (RFC 1982 arithmetic wraps).
fn serial_of(position: &LogPosition) -> u32 {
    position.total() as u32
}

#[cfg(test)]
mod tests;
