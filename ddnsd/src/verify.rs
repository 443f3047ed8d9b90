//! `ddnsd verify`: checks a stopped server's snapshot against its log. The snapshot is a cache
//! of the fold (state and log position); the log is the truth. After a crash, a restore or a
//! disk incident, this folds the log from its start up to the snapshot's position and compares
//! the two states: equal means a restart serves exactly what the log says.

use std::sync::Arc;

use anyhow::{Context, bail};
use ddns_core::LiveZone;
use ddns_projector::Projector;

use crate::config::Config;

/// Runs the check; `Ok` with what to print when the snapshot is the fold of the log.
pub async fn verify(config: &Config) -> anyhow::Result<String> {
    let log = crate::eventlog::open(config).await?;
    let snapshot_dir = config.data_dir.join("snapshot");
    let projector = Projector::open(&snapshot_dir, Arc::new(LiveZone::new(Vec::new())), log)
        .with_context(|| format!("opening the snapshot in {}", snapshot_dir.display()))?;
    let replay = projector
        .replay_from_start()
        .await
        .context("replaying the log")?;
    let log_records = replay.log_end.total();
    if replay.log_behind {
        bail!(
            "the snapshot reflects {} records but the log holds {log_records}: records are \
             missing from the log",
            replay.records
        );
    }
    if !replay.matches {
        bail!(
            "the snapshot differs from a replay of the log's first {} records; move the \
             snapshot directory aside and start the server to rebuild it from the log",
            replay.records
        );
    }
    let mut out = format!(
        "ok: the snapshot equals a replay of the log's first {} records (the log holds \
         {log_records}; a start replays the rest)",
        replay.records
    );
    if replay.undecodable > 0 {
        out.push_str(&format!(
            "; {} records did not decode and were skipped",
            replay.undecodable
        ));
    }
    Ok(out)
}
