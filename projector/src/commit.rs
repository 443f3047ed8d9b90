//! The request side of the fold: append an event and wait for the outcome the fold gave it.
//!
//! Every shell that changes state (the device API, the DVR protocol, the portal, the operator's
//! commands) goes through a [`Committer`], so they share one rule: a reply claims only what the
//! fold did with *this* event at its place in the log, and only after the event is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ddns_core::{Event, EventBody, EventId, Outcome, State, encode_event};
use ddns_log::EventLog;

use crate::ProjectorView;

/// Appends events to a log and waits for their outcomes from the projector folding it.
pub struct Committer {
    log: Arc<dyn EventLog>,
    view: ProjectorView,
    reply_timeout: Duration,
    /// Event ids are this process's random prefix and a counter: unique across nodes and restarts.
    id_prefix: u64,
    id_counter: AtomicU64,
}

impl Committer {
    /// Commits to `log`, whose fold `view` shows; a commit not appended and folded within
    /// `reply_timeout` is reported as unknown (`None`), never as done.
    pub fn new(log: Arc<dyn EventLog>, view: ProjectorView, reply_timeout: Duration) -> Committer {
        Committer {
            log,
            view,
            reply_timeout,
            id_prefix: rand::random(),
            id_counter: AtomicU64::new(0),
        }
    }

    /// The fold's results.
    pub fn view(&self) -> &ProjectorView {
        &self.view
    }

    /// The log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// A new event id.
    pub fn next_event_id(&self) -> EventId {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        EventId((u128::from(self.id_prefix) << 64) | u128::from(n))
    }

    /// Appends `body` (stamped with a new id and the time now) and waits for the fold's
    /// outcome; `None` if the append failed or the outcome did not come in time: then nothing
    /// may be acknowledged.
    pub async fn commit(&self, body: EventBody) -> Option<Outcome> {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let event = Event {
            id: self.next_event_id(),
            at_ms,
            body,
        };
        let payload = match encode_event(&event) {
            Ok(payload) => Bytes::from(payload),
            Err(error) => {
                tracing::warn!(%error, "event does not encode");
                return None;
            }
        };
        let waiter = self.view.expect(event.id);
        let started = Instant::now();
        // One deadline for the append and the fold: a log that cannot confirm (a frozen broker
        // keeps librdkafka retrying for minutes) must not hold the device past it. The append
        // goes on without us; its outcome is unknown, which is what `None` says.
        let deadline = tokio::time::Instant::now() + self.reply_timeout;
        match tokio::time::timeout_at(deadline, self.log.append(event.key(), payload)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "append failed");
                return None;
            }
            Err(_) => {
                tracing::error!(id = ?event.id, "append not confirmed in time: outcome unknown");
                metrics::counter!("ddns_ingest_append_timeouts_total").increment(1);
                return None;
            }
        }
        let outcome = tokio::time::timeout_at(deadline, waiter.outcome())
            .await
            .ok()
            .flatten();
        metrics::histogram!("ddns_ingest_commit_seconds").record(started.elapsed().as_secs_f64());
        if outcome.is_none() {
            tracing::error!(id = ?event.id, "durable event not folded in time");
        }
        outcome
    }

    /// Answers from the folded state with `decide`, which returns an answer when the request
    /// needs no event. On a shared log another node may have just changed what `decide`
    /// reads, so before answering this node first folds everything acknowledged anywhere up to
    /// now: the answer then agrees with the log's order, as the fold's would. If that cannot
    /// be done in time the answer is `None` (the caller goes to the log, or fails).
    pub async fn known<T>(&self, decide: impl Fn(&State) -> Option<T>) -> Option<T> {
        let known = self.view.with_state(&decide)?;
        if !self.log.shared() {
            return Some(known);
        }
        self.caught_up().await?;
        self.view.with_state(decide)
    }

    /// Folds everything acknowledged anywhere up to now (at once on a log of one node's own);
    /// `None` if that did not happen in time.
    pub async fn caught_up(&self) -> Option<()> {
        if !self.log.shared() {
            return Some(());
        }
        let caught_up = tokio::time::timeout(self.reply_timeout, async {
            let end = self.log.end().await.ok()?;
            self.view.wait_applied(&end).await;
            Some(())
        });
        caught_up.await.ok().flatten()
    }
}
