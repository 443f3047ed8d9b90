//! `ddnsd import FILE`: bulk-loads hosts from a zone file as events, the migration path from
//! BIND, NSD or Knot. The whole file is read and checked first, so a bad line appends nothing;
//! then every A/AAAA record becomes a `HostImport` event, appended by many concurrent writers so
//! that group commit shares each fsync among hundreds of them. The server folds them on its
//! next start (with the embedded log, import writes to the log directly, so the server must be
//! stopped: the log's lock says so if it is not; on Kafka, running nodes fold them at once).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use ddns_core::{Event, EventBody, EventId, Fqdn, ZoneFileReader, encode_event};

use crate::config::Config;

/// Concurrent appenders: enough that each fsync carries a large group.
const WRITERS: usize = 256;

pub async fn import(config: &Config, file: &Path, origin: Option<&str>) -> anyhow::Result<()> {
    let started = Instant::now();
    let zones: Vec<Fqdn> = config
        .vendors
        .iter()
        .map(|v| Fqdn::parse(&v.zone).with_context(|| format!("vendor {}: zone", v.name)))
        .collect::<anyhow::Result<_>>()?;
    let origin = origin.map(Fqdn::parse).transpose().context("--origin")?;
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut reader = ZoneFileReader::new(BufReader::with_capacity(1 << 20, input), origin);

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let id_prefix = u128::from(rand::random::<u64>()) << 64;
    let mut payloads: Vec<(Fqdn, Bytes)> = Vec::new();
    let (mut apex_records, mut v4, mut v6) = (0u64, 0u64, 0u64);
    while let Some(record) = reader
        .next_record()
        .with_context(|| format!("{}", file.display()))?
    {
        let Some(zone) = zones
            .iter()
            .filter(|zone| record.name.is_within(zone))
            .max_by_key(|zone| zone.as_str().len())
        else {
            bail!(
                "{} is outside every configured zone ({zones:?}); nothing was imported",
                record.name
            );
        };
        if record.name == *zone {
            apex_records += 1;
            continue;
        }
        if record.addr.is_ipv4() {
            v4 += 1
        } else {
            v6 += 1
        }
        let event = Event {
            id: EventId(id_prefix | payloads.len() as u128),
            at_ms: now_ms,
            body: EventBody::HostImport {
                zone: zone.clone(),
                name: record.name,
                addr: record.addr,
            },
        };
        payloads.push((zone.clone(), Bytes::from(encode_event(&event)?)));
    }
    let parsed = started.elapsed();

    let log = crate::eventlog::open(config).await?;
    let payloads = Arc::new(payloads);
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (log, payloads) = (log.clone(), payloads.clone());
        writers.spawn(async move {
            for (zone, payload) in payloads.iter().skip(writer).step_by(WRITERS) {
                log.append(zone.as_str().as_bytes(), payload.clone())
                    .await?;
            }
            Ok::<_, ddns_log::AppendError>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done.context("an import writer panicked")?
            .context("appending to the log")?;
    }
    let skipped: Vec<String> = reader
        .skipped()
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    println!(
        "imported {} records ({v4} A, {v6} AAAA) from {} in {:.1} s (read {:.1} s); skipped: apex A/AAAA {apex_records}{}{}",
        payloads.len(),
        file.display(),
        started.elapsed().as_secs_f64(),
        parsed.as_secs_f64(),
        if skipped.is_empty() { "" } else { ", " },
        skipped.join(", ")
    );
    Ok(())
}
