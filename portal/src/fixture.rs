//! The tests' backend: the real [`LogDirectory`] over an in-memory log of two partitions (so
//! account events and zone events are apart, as on a server), folded by a real projector.
//!
//! Tests change what the portal shows the way the rest of ddnsd would, by appending events: a
//! device claiming a name, a DVR setting its host's address, an operator's import. Nothing
//! reaches into the state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ddns_core::{
    DeviceId, Event, EventBody, Fqdn, Label, LiveZone, Outcome, ZoneApex, encode_event,
};
use ddns_log::{AppendError, Appended, EventLog, LogPosition, LogReader, MemLog, ReadError};
use ddns_projector::{Committer, Projector, ProjectorView};

use crate::LogDirectory;

/// How long a test waits for the fold: far longer than it takes, short enough to fail a test.
const FOLD_TIMEOUT: Duration = Duration::from_secs(10);

/// A directory over a log and its fold, and the handles tests write and read them through.
pub(crate) struct Backend {
    /// What the portal runs on.
    pub directory: Arc<LogDirectory>,
    /// The directory's committer: tests append other writers' events through it.
    pub committer: Arc<Committer>,
    /// The fold's state and the live zone.
    pub view: ProjectorView,
    log: Arc<OutageLog>,
    /// The projector's snapshot; removed when the test ends.
    _snapshot_dir: tempfile::TempDir,
}

impl Backend {
    /// A new, empty log and its fold, for accounts with names in `zones`.
    pub async fn new(zones: &[&str]) -> Backend {
        let zones: Vec<Fqdn> = zones
            .iter()
            .map(|z| Fqdn::parse(z).expect("test zones are valid"))
            .collect();
        let mem = MemLog::new(2);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let apexes = zones
            .iter()
            .map(|z| ZoneApex::with_defaults(z.clone(), 60))
            .collect();
        // The projector reads the log itself, never through the outage: a fold that stopped
        // would turn every later test step into a timeout.
        let projector = Projector::open(
            dir.path(),
            Arc::new(LiveZone::new(apexes)),
            Arc::new(mem.clone()),
        )
        .expect("the projector opens");
        let view = projector.view();
        tokio::spawn(projector.run());
        let log = Arc::new(OutageLog {
            log: mem,
            down: AtomicBool::new(false),
        });
        let committer = Arc::new(Committer::new(log.clone(), view.clone(), FOLD_TIMEOUT));
        let directory = Arc::new(LogDirectory::new(committer.clone(), zones));
        Backend {
            directory,
            committer,
            view,
            log,
            _snapshot_dir: dir,
        }
    }

    /// Appends `body` as another writer of this node would, and returns the fold's outcome.
    pub async fn commit(&self, body: EventBody) -> Outcome {
        self.committer
            .commit(body)
            .await
            .expect("the event is appended and folded")
    }

    /// As [`Backend::commit`], stamped `at_ms` (ms since the Unix epoch) instead of now, as an
    /// event appended at that time would be.
    pub async fn commit_at(&self, at_ms: u64, body: EventBody) -> Outcome {
        let event = Event {
            id: self.committer.next_event_id(),
            at_ms,
            body,
        };
        let payload = Bytes::from(encode_event(&event).expect("the event encodes"));
        let waiter = self.view.expect(event.id);
        self.committer
            .log()
            .append(event.key(), payload)
            .await
            .expect("the event is appended");
        tokio::time::timeout(FOLD_TIMEOUT, waiter.outcome())
            .await
            .expect("the event is folded in time")
            .expect("the projector runs")
    }

    /// A device of vendor `acme` claims `label.zone` (with an address), as `add.aspx` does.
    pub async fn device_claims(&self, zone: &str, label: &str) {
        let zone = Fqdn::parse(zone).expect("valid zone");
        let label = Label::parse(label).expect("valid label");
        let name = zone.child(&label).expect("a valid name");
        let body = EventBody::DeviceAdd {
            device: DeviceId {
                vendor: "acme".into(),
                mac: format!("test-{name}"),
            },
            zone,
            label,
            addr: "192.0.2.200".parse().expect("literal"),
            user_agent: "test-device".into(),
            fields: vec![],
        };
        assert_eq!(self.commit(body).await, Outcome::Created(name));
    }

    /// The stored password hash of the account host `fqdn`, as the DVR protocol reads it.
    pub fn host_password_hash(&self, fqdn: &Fqdn) -> Option<String> {
        self.view
            .with_state(|s| s.account_host(fqdn).map(|h| h.password_hash.clone()))
    }

    /// True if an account `user_id` exists in the fold.
    pub fn account_exists(&self, user_id: &str) -> bool {
        self.view.with_state(|s| s.account(user_id).is_some())
    }

    /// Takes the log down (appends fail, its end cannot be read) or brings it back.
    pub fn set_log_down(&self, down: bool) {
        self.log.down.store(down, Ordering::SeqCst);
    }
}

/// A [`MemLog`] that can go down as a broker can: while down, appends fail (nothing is
/// written) and its end cannot be read. It says it is shared, as Kafka does, so the directory
/// asks it for its end before every read, and an outage shows on pages as well as on changes.
struct OutageLog {
    log: MemLog,
    down: AtomicBool,
}

impl OutageLog {
    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EventLog for OutageLog {
    fn partitions(&self) -> u32 {
        self.log.partitions()
    }

    fn identity(&self) -> &str {
        self.log.identity()
    }

    fn shared(&self) -> bool {
        true
    }

    async fn append(&self, key: &[u8], payload: Bytes) -> Result<Appended, AppendError> {
        if self.is_down() {
            return Err(AppendError::Closed);
        }
        self.log.append(key, payload).await
    }

    async fn end(&self) -> Result<LogPosition, ReadError> {
        if self.is_down() {
            return Err(ReadError::Closed);
        }
        self.log.end().await
    }

    async fn reader(&self, from: &LogPosition) -> Result<Box<dyn LogReader>, ReadError> {
        self.log.reader(from).await
    }
}
