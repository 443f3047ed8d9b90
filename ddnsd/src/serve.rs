//! `ddnsd serve`: wires the embedded log, the projector, the device API and DNS together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ddns_core::{Fqdn, LiveZone, ZoneApex};
use ddns_dns::DnsServer;
use ddns_ingest::DeviceApi;
use ddns_log::{EventLog, LocalLog, LocalLogConfig};
use ddns_projector::Projector;

use crate::config::Config;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let vendors = config.vendors_with_keys()?;
    let zone = Arc::new(LiveZone::new(apexes(&config)?));

    let log_dir = config.data_dir.join("log");
    let log: Arc<dyn EventLog> = Arc::new(
        LocalLog::open(&log_dir, LocalLogConfig::default())
            .with_context(|| format!("opening the log in {}", log_dir.display()))?,
    );
    let snapshot_dir = config.data_dir.join("snapshot");
    let projector = Projector::open(&snapshot_dir, zone.clone())
        .with_context(|| format!("opening the snapshot in {}", snapshot_dir.display()))?;
    let view = projector.view();
    let mut projector_task = tokio::spawn(projector.run(log.clone()));

    // Serve only once the tail of the log is folded: answers must reflect every acknowledged update.
    let end = log.end().await.context("reading the log's end")?;
    tokio::select! {
        () = view.wait_applied(&end) => {}
        stopped = &mut projector_task => return Err(projector_stopped(stopped)),
    }

    let api = Arc::new(DeviceApi::new(
        &config.ingest,
        &vendors,
        log.clone(),
        view.clone(),
    )?);
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_listen))?;
    let http_addr = http.local_addr()?;
    let dns = DnsServer::bind(config.dns_listen, zone.clone())
        .await
        .with_context(|| format!("binding DNS on {}", config.dns_listen))?;
    let dns_addr = dns.local_addr();
    let metrics_addr = match config.metrics_listen {
        Some(addr) => Some(serve_metrics(addr).await?),
        None => None,
    };

    let pruner = api.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            pruner.prune();
        }
    });
    let router = api
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let mut http_task = tokio::spawn(async move {
        axum::serve(http, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });

    // One line that names the bound addresses: scripts and tests wait for it.
    tracing::info!(metrics = ?metrics_addr, hosts = zone.len(), "ddnsd ready: http={http_addr} dns={dns_addr}");

    let result = tokio::select! {
        served = &mut http_task => served.context("HTTP task").and_then(|r| r.context("HTTP server")),
        stopped = &mut projector_task => Err(projector_stopped(stopped)),
    };
    dns.shutdown().await;
    tracing::info!("ddnsd stopped");
    result
}

/// The zones to serve: each vendor's, once.
fn apexes(config: &Config) -> anyhow::Result<Vec<ZoneApex>> {
    let mut apexes: Vec<ZoneApex> = Vec::new();
    for vendor in &config.vendors {
        let origin = Fqdn::parse(&vendor.zone)
            .with_context(|| format!("vendor {}: zone {:?}", vendor.name, vendor.zone))?;
        if apexes.iter().any(|a| a.origin == origin) {
            continue;
        }
        let mut apex = ZoneApex::with_defaults(origin, config.ttl_secs);
        if !config.name_servers.is_empty() {
            apex.name_servers = config
                .name_servers
                .iter()
                .map(|ns| Fqdn::parse(ns).with_context(|| format!("name server {ns:?}")))
                .collect::<anyhow::Result<_>>()?;
        }
        apexes.push(apex);
    }
    Ok(apexes)
}

fn projector_stopped(
    stopped: Result<Result<(), ddns_projector::ProjectorError>, tokio::task::JoinError>,
) -> anyhow::Error {
    match stopped {
        Ok(Ok(())) => anyhow::anyhow!("the projector stopped"),
        Ok(Err(error)) => anyhow::Error::new(error).context("the projector failed"),
        Err(error) => anyhow::Error::new(error).context("the projector panicked"),
    }
}

async fn serve_metrics(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(handle.render())),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(bound)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
