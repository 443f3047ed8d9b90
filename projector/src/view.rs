//! What the projector shares with readers: the folded state, the live zone, the applied log
//! position, and the outcome of every event a request is waiting for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use ddns_core::{Applied, Event, EventId, LiveZone, Outcome, State};
use ddns_log::LogPosition;
use tokio::sync::{oneshot, watch};

use crate::ProjectorStats;

pub(crate) struct Shared {
    /// Locked for writing for one event at a time, so readers never wait for a whole batch.
    state: RwLock<State>,
    zone: Arc<LiveZone>,
    waiters: DashMap<EventId, oneshot::Sender<Outcome>>,
    applied: watch::Sender<LogPosition>,
    records_read: AtomicU64,
    undecodable: AtomicU64,
}

impl Shared {
    pub(crate) fn new(state: State, zone: Arc<LiveZone>, position: LogPosition) -> Shared {
        Shared {
            state: RwLock::new(state),
            zone,
            waiters: DashMap::new(),
            applied: watch::Sender::new(position),
            records_read: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
        }
    }

    pub(crate) fn zone(&self) -> &LiveZone {
        &self.zone
    }

    /// Folds one event and brings the zone's changed hosts up to date.
    pub(crate) fn apply(&self, event: &Event) -> Applied {
        let mut state = self
            .state
            .write()
            .expect("state lock poisoned: a fold panicked");
        let applied = state.apply(event);
        for name in &applied.changed_names {
            match state.addrs(name) {
                Some(addrs) => self.zone.set(name, addrs),
                None => self.zone.remove(name),
            }
            self.zone.set_acme_txt(name, state.acme_txt(name));
        }
        applied
    }

    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self
            .state
            .read()
            .expect("state lock poisoned: a fold panicked"))
    }

    pub(crate) fn publish(&self, outcomes: Vec<(EventId, Outcome)>, position: LogPosition) {
        for (id, outcome) in outcomes {
            if let Some((_, waiter)) = self.waiters.remove(&id) {
                // The requester may have given up (timeout, disconnect): nothing to tell then.
                let _ = waiter.send(outcome);
            }
        }
        self.applied.send_replace(position);
    }

    pub(crate) fn count_read(&self) {
        self.records_read.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_undecodable(&self) {
        self.undecodable.fetch_add(1, Ordering::Relaxed);
    }
}

/// A cheap, cloneable handle on the projector's results.
#[derive(Clone)]
pub struct ProjectorView {
    shared: Arc<Shared>,
}

impl ProjectorView {
    pub(crate) fn new(shared: Arc<Shared>) -> ProjectorView {
        ProjectorView { shared }
    }

    /// The live zone.
    pub fn zone(&self) -> &Arc<LiveZone> {
        &self.shared.zone
    }

    /// Runs `f` on the folded state (a read lock, held only for `f`).
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.shared.with_state(f)
    }

    /// Registers interest in the outcome of event `id`. Call it before appending the event, so
    /// the outcome cannot be published before anyone listens.
    pub fn expect(&self, id: EventId) -> OutcomeWaiter {
        let (sender, receiver) = oneshot::channel();
        self.shared.waiters.insert(id, sender);
        OutcomeWaiter {
            id,
            receiver,
            shared: self.shared.clone(),
        }
    }

    /// The log position applied so far.
    pub fn applied(&self) -> LogPosition {
        self.shared.applied.borrow().clone()
    }

    /// Waits until every partition has been applied up to `target`.
    pub async fn wait_applied(&self, target: &LogPosition) {
        let mut receiver = self.shared.applied.subscribe();
        let reached = |applied: &LogPosition| {
            (0..target.partitions()).all(|p| applied.offset(p) >= target.offset(p))
        };
        // The sender lives in `shared`, which we hold: the channel cannot close.
        let _ = receiver.wait_for(reached).await;
    }

    /// Counters since this process opened the projector.
    pub fn stats(&self) -> ProjectorStats {
        ProjectorStats {
            records_read: self.shared.records_read.load(Ordering::Relaxed),
            undecodable: self.shared.undecodable.load(Ordering::Relaxed),
        }
    }
}

/// The outcome of one event, once the projector has folded it.
pub struct OutcomeWaiter {
    id: EventId,
    receiver: oneshot::Receiver<Outcome>,
    shared: Arc<Shared>,
}

impl OutcomeWaiter {
    /// Waits for the fold to reach the event; `None` if the projector stopped first.
    pub async fn outcome(mut self) -> Option<Outcome> {
        (&mut self.receiver).await.ok()
    }
}

impl Drop for OutcomeWaiter {
    fn drop(&mut self) {
        // A requester that gave up must not leave its entry behind.
        self.shared.waiters.remove(&self.id);
    }
}
