//! `ddnsd serve`: wires the log, the projector, the device API, the portal, the admin socket
//! and DNS together, as the role says.
//!
//! With `[tls]`, one [`TlsCertificate`] serves every TLS listener (the device API's HTTPS
//! listener beside its plain one, the portal, which then speaks only HTTPS, DNS over QUIC and
//! the QUIC device channel, which resolve it at each handshake), and SIGHUP re-reads its files
//! without touching open connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ddns_core::{Fqdn, LiveZone, ZoneApex};
use ddns_dns::{DnsServer, DoqServer};
use ddns_ingest::{DeviceApi, PasswordHasher, QuicChannel, TlsCertificate};
use ddns_log::EventLog;
use ddns_portal::{LogDirectory, Portal, Prober};
use ddns_projector::{Committer, Projector, ProjectorView};
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::config::Config;
use crate::eventlog;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let vendors = config.vendors_with_keys()?;
    // A certificate that does not load stops the start: better than serving without HTTPS.
    let tls = match &config.tls {
        Some(files) => Some(TlsCertificate::load(files.clone()).with_context(|| {
            format!("loading the TLS certificate {}", files.cert_file.display())
        })?),
        None => None,
    };
    reload_on_sighup(tls.clone())?;
    let acceptor = match &tls {
        Some(tls) => Some(tls.http_acceptor()?),
        None => None,
    };
    let zone = Arc::new(LiveZone::new(apexes(&config)?));

    let log = eventlog::open(&config).await?;
    let snapshot_dir = config.data_dir.join("snapshot");
    let projector = Projector::open_or_rebuild(&snapshot_dir, zone.clone(), log.clone())
        .with_context(|| format!("opening the snapshot in {}", snapshot_dir.display()))?;
    let view = projector.view();
    let mut projector_task = tokio::spawn(projector.run());

    // Serve only once the log is folded up to its end as of now: answers and replies must
    // reflect every update acknowledged before this node started.
    let end = log.end().await.context("reading the log's end")?;
    tokio::select! {
        () = view.wait_applied(&end) => {}
        stopped = &mut projector_task => return Err(projector_stopped(stopped)),
    }
    // Folding the tail (all of the log on a first start) allocated and freed on every runtime
    // thread, and glibc keeps freed pages in per-thread arenas: 100-200 MB with a 1M-host log.
    release_freed_memory();

    let dns = match config.role.serves_dns() {
        true => Some(
            DnsServer::bind(config.dns_listen, zone.clone())
                .await
                .with_context(|| format!("binding DNS on {}", config.dns_listen))?,
        ),
        false => None,
    };
    // DNS over QUIC, on its own UDP address; config validation made sure `tls` is set.
    let doq = match (&tls, config.doq_listen) {
        (Some(tls), Some(addr)) if config.role.serves_dns() => Some(
            DoqServer::bind(addr, zone.clone(), tls.clone(), &config.doq)
                .await
                .with_context(|| format!("binding DNS over QUIC on {addr}"))?,
        ),
        _ => None,
    };
    // One bound on argon2 runs for the whole server: DVRs' host passwords and the portal's.
    let hasher = Arc::new(PasswordHasher::new());
    let mut http = match config.role.serves_http() {
        true => Some(
            serve_device_api(
                &config,
                &vendors,
                log.clone(),
                view.clone(),
                hasher.clone(),
                acceptor.clone(),
                tls.clone(),
            )
            .await?,
        ),
        false => None,
    };
    let directory = serve_directory(&config, log.clone(), view.clone(), hasher.clone()).await?;
    let portal = match config.role.serves_http() {
        true => Some(serve_portal(&config, directory, hasher, acceptor).await?),
        false => None,
    };
    let metrics_addr = match config.metrics_listen {
        Some(addr) => Some(serve_metrics(addr).await?),
        None => None,
    };

    // One line that names the bound addresses: scripts and tests wait for it.
    let mut bound = String::new();
    if let Some(http) = &http {
        bound.push_str(&format!(" http={}", http.addr));
        if let Some(addr) = http.tls_addr {
            bound.push_str(&format!(" https={addr}"));
        }
        if let Some(quic) = &http.quic {
            bound.push_str(&format!(" quic={}", quic.local_addr()));
        }
    }
    if let Some(dns) = &dns {
        bound.push_str(&format!(" dns={}", dns.local_addr()));
    }
    if let Some(doq) = &doq {
        bound.push_str(&format!(" doq={}", doq.local_addr()));
    }
    if let Some(addr) = portal {
        bound.push_str(&format!(" portal={addr}"));
    }
    tracing::info!(role = ?config.role, log = log.identity(), metrics = ?metrics_addr, hosts = zone.len(), replayed = view.stats().records_read, "ddnsd ready:{bound}");

    let quic = http.as_mut().and_then(|http| http.quic.take());
    let result = match http {
        Some(mut http) => tokio::select! {
            served = &mut http.task => served.context("HTTP task").and_then(|r| r.context("HTTP server")),
            stopped = &mut projector_task => Err(projector_stopped(stopped)),
        },
        None => tokio::select! {
            () = shutdown_signal() => Ok(()),
            stopped = &mut projector_task => Err(projector_stopped(stopped)),
        },
    };
    if let Some(quic) = quic {
        quic.shutdown().await;
    }
    if let Some(doq) = doq {
        doq.shutdown().await;
    }
    if let Some(dns) = dns {
        dns.shutdown().await;
    }
    tracing::info!("ddnsd stopped");
    result
}

/// The device API's listeners, served by one task.
struct DeviceListeners {
    addr: SocketAddr,
    /// Its HTTPS listener, when `[tls]` is set.
    tls_addr: Option<SocketAddr>,
    /// The QUIC device channel, when `quic_listen` is set (and `[tls]`).
    quic: Option<QuicChannel>,
    /// Ends when both listeners have stopped.
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds the device API (and its HTTPS listener, with `tls`, and the QUIC device channel, with
/// `certificate` and `quic_listen`) and serves it until a shutdown signal; prunes its caches
/// every minute.
async fn serve_device_api(
    config: &Config,
    vendors: &[ddns_ingest::VendorConfig],
    log: Arc<dyn EventLog>,
    view: ProjectorView,
    hasher: Arc<PasswordHasher>,
    tls: Option<TlsAcceptor>,
    certificate: Option<Arc<TlsCertificate>>,
) -> anyhow::Result<DeviceListeners> {
    let api = DeviceApi::new(&config.ingest, vendors, log, view)?.with_password_hasher(hasher);
    let api = Arc::new(api);
    let listener = listen(config.http_listen)
        .with_context(|| format!("binding HTTP on {}", config.http_listen))?;
    let addr = listener.local_addr()?;
    let tls_listener = match (tls, config.https_listen) {
        (Some(tls), Some(https_addr)) => {
            let listener =
                listen(https_addr).with_context(|| format!("binding HTTPS on {https_addr}"))?;
            Some((listener, tls))
        }
        _ => None,
    };
    let tls_addr = match &tls_listener {
        Some((listener, _)) => Some(listener.local_addr()?),
        None => None,
    };
    // Config validation made sure a certificate comes with `quic_listen`.
    let quic = match (certificate, config.quic_listen) {
        (Some(certificate), Some(addr)) => Some(
            QuicChannel::bind(
                addr,
                api.clone(),
                certificate,
                &config.quic,
                &config.quic_reset_key()?,
            )
            .await
            .with_context(|| format!("binding the QUIC device channel on {addr}"))?,
        ),
        _ => None,
    };
    let pruner = api.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            // A walk over every flood-control key (a million after a surge): off the runtime's
            // threads, which serve requests.
            let pruner = pruner.clone();
            let _ = tokio::task::spawn_blocking(move || pruner.prune()).await;
        }
    });
    // The device API's own HTTP/1.1 server (ingest/src/http.rs), not axum's: a fraction of
    // the CPU per request.
    let plain = api.clone().serve(listener, shutdown_signal());
    let task = tokio::spawn(async move {
        match tls_listener {
            None => plain.await,
            Some((listener, tls)) => {
                let (plain, tls) =
                    tokio::join!(plain, api.serve_tls(listener, tls, shutdown_signal()));
                plain.and(tls)
            }
        }
    });
    Ok(DeviceListeners {
        addr,
        tls_addr,
        quic,
        task,
    })
}

/// Re-reads the certificate on SIGHUP (`systemctl reload`); a pair that does not load is
/// logged and the one in use stays. Installed with or without TLS, so that a SIGHUP never
/// ends the server.
fn reload_on_sighup(tls: Option<Arc<TlsCertificate>>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let Some(tls) = &tls else {
                tracing::info!("SIGHUP: no [tls] set, nothing to reload");
                continue;
            };
            let cert_file = tls.config().cert_file.display();
            match tls.reload() {
                Ok(()) => tracing::info!(%cert_file, "SIGHUP: reloaded the TLS certificate"),
                Err(error) => tracing::error!(
                    %error,
                    "SIGHUP: the TLS certificate did not load; keeping the one in use"
                ),
            }
        }
    });
    Ok(())
}

/// The directory of accounts and hosts, with the admin socket serving it (on every role:
/// operators list and change people through any node); first finishes any account removal a
/// stopped node left half done.
async fn serve_directory(
    config: &Config,
    log: Arc<dyn EventLog>,
    view: ProjectorView,
    hasher: Arc<PasswordHasher>,
) -> anyhow::Result<Arc<LogDirectory>> {
    let timeout = Duration::from_millis(config.ingest.reply_timeout_ms);
    let committer = Arc::new(Committer::new(log, view.clone(), timeout));
    let zones = config.portal_zones()?;
    let directory = Arc::new(LogDirectory::new(committer.clone(), zones.clone()));
    tokio::spawn(Prober::new(committer, config.portal.probe.clone()).run());
    match directory.release_removed().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(releases = n, "finished removing accounts"),
        Err(error) => tracing::warn!(%error, "could not finish removing accounts; next start will"),
    }
    let listener = admin::bind(&config.admin_socket())?;
    let admin = directory.clone();
    tokio::spawn(async move {
        if let Err(error) = admin::serve(listener, admin, hasher, view, zones).await {
            tracing::error!(%error, "the admin socket stopped");
        }
    });
    Ok(directory)
}

/// Binds the portal and serves it until a shutdown signal.
async fn serve_portal(
    config: &Config,
    directory: Arc<LogDirectory>,
    hasher: Arc<PasswordHasher>,
    tls: Option<TlsAcceptor>,
) -> anyhow::Result<SocketAddr> {
    let portal = Portal::new(config.portal_config()?, directory)?.with_password_hasher(hasher);
    let listener = listen(config.portal_listen)
        .with_context(|| format!("binding the portal on {}", config.portal_listen))?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let served = match tls {
            Some(tls) => portal.serve_tls(listener, tls, shutdown_signal()).await,
            None => portal.serve(listener, shutdown_signal()).await,
        };
        if let Err(error) = served {
            tracing::error!(%error, "the portal stopped");
        }
    });
    Ok(addr)
}

/// Connections the kernel may hold for a listener before it accepts them. tokio's `bind`
/// listens with 128 (mio's default): a fleet reconnecting at once after an outage overflowed
/// it, and each dropped attempt waited for TCP's 1 s retry.
const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener on `addr` with a backlog that takes a reconnect storm.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Gives the heap's free pages back to the OS.
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions: it walks glibc's own arenas under their locks
    // and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
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
    // Histograms keep every sample until drained: drain them even when nobody scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
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
