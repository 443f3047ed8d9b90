//! `ddns-client`: a device on ddnsd's QUIC device channel, or a fleet of them.
//!
//! Connects, authenticates, prints its record and every change the server pushes, keeps the
//! connection alive, and reconnects with jittered exponential backoff after any loss.
//!
//! ```sh
//! ddns-client --server ddns.example.com:8853 --ca ca.pem --token "$MAC"
//! ddns-client --server 127.0.0.1:8853 --server-name localhost --ca ca.pem --token "$MAC"
//! ddns-client --server … --ca ca.pem --host cam.brian.dyn.example --secret-file pw.txt
//! ddns-client --server … --ca ca.pem --token-file tokens.txt --devices 1000 --bind 127.0.0.2:0
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use ddns_client::{Backoff, Credential, Device, DeviceConfig, Event, Request, Server};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(
    name = "ddns-client",
    version,
    about = "A device on ddnsd's QUIC device channel"
)]
struct Cli {
    /// The server's quic_listen address, HOST:PORT (a name is resolved once, at start).
    #[arg(long)]
    server: String,
    /// The name the server's certificate is for [default: the HOST of --server when it is a
    /// name, else localhost].
    #[arg(long)]
    server_name: Option<String>,
    /// Connect over IPv6 (default: IPv4 when the name has an IPv4 address).
    #[arg(long)]
    ipv6: bool,
    /// PEM file of the CA certificates to trust.
    #[arg(long)]
    ca: PathBuf,
    /// A device token (the device API's `mac=` value). Other users see it in `ps`: prefer
    /// --token-file.
    #[arg(long, conflicts_with_all = ["token_file", "host"])]
    token: Option<String>,
    /// A file of device tokens, one per line: one device per line (see --devices).
    #[arg(long, conflicts_with = "host")]
    token_file: Option<PathBuf>,
    /// A host's FQDN (host credentials), with --secret-file.
    #[arg(long, requires = "secret_file")]
    host: Option<String>,
    /// A file holding the host password or an update token (its first line).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Run this many devices from --token-file (its first N lines) [default: every line].
    #[arg(long)]
    devices: Option<usize>,
    /// The local address to send from (one UDP socket for every device) [default: any
    /// address of the server's family].
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Ask the server to publish the address of an IPv6 connection.
    #[arg(long)]
    publish_v6: bool,
    /// The shortest and longest keep-alive interval, in seconds (a PING when idle this long).
    #[arg(long, num_args = 2, default_values_t = [15, 25])]
    keep_alive_secs: Vec<u64>,
    /// The idle timeout to ask for, in seconds.
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// The first and the longest backoff window, in milliseconds.
    #[arg(long, num_args = 2, default_values_t = [1000, 300_000])]
    backoff_ms: Vec<u64>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let credentials = credentials(&cli)?;
    for credential in &credentials {
        let hello = Request::Hello {
            credential: credential.clone(),
            publish_v6: cli.publish_v6,
        };
        if !hello.fits() {
            bail!(
                "{credential:?}: a token, host or secret must be 1 to 255 bytes, host and secret 508 together"
            );
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(cli, credentials))
}

fn credentials(cli: &Cli) -> anyhow::Result<Vec<Credential>> {
    if let Some(token) = &cli.token {
        return Ok(vec![Credential::Device {
            token: token.trim().to_owned(),
        }]);
    }
    if let (Some(host), Some(file)) = (&cli.host, &cli.secret_file) {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let secret = text.lines().next().unwrap_or_default().to_owned();
        return Ok(vec![Credential::Host {
            host: host.clone(),
            secret,
        }]);
    }
    let Some(file) = &cli.token_file else {
        bail!("give --token, --token-file, or --host with --secret-file");
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let tokens: Vec<Credential> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(cli.devices.unwrap_or(usize::MAX))
        .map(|token| Credential::Device {
            token: token.to_owned(),
        })
        .collect();
    if tokens.is_empty() {
        bail!("{}: no tokens", file.display());
    }
    Ok(tokens)
}

async fn run(cli: Cli, credentials: Vec<Credential>) -> anyhow::Result<()> {
    let roots = ddns_client::roots_from_pem(&cli.ca)?;
    let addr = resolve(&cli.server, cli.ipv6).await?;
    let server = Server {
        addr,
        name: cli
            .server_name
            .clone()
            .unwrap_or_else(|| certificate_name(&cli.server)),
        tls: ddns_client::tls_config(roots),
    };
    let bind = cli.bind.unwrap_or_else(|| {
        let any = if addr.is_ipv6() {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        SocketAddr::new(any, 0)
    });
    let endpoint = quinn::Endpoint::client(bind).with_context(|| format!("binding {bind}"))?;
    let (events, mut received) = mpsc::unbounded_channel();
    let fleet = credentials.len() > 1;
    let devices: Vec<Device> = credentials
        .into_iter()
        .enumerate()
        .map(|(number, credential)| {
            let config = DeviceConfig {
                publish_v6: cli.publish_v6,
                keep_alive: Duration::from_secs(cli.keep_alive_secs[0])
                    ..=Duration::from_secs(cli.keep_alive_secs[1]),
                idle_timeout: Duration::from_secs(cli.idle_timeout_secs),
                backoff: Backoff {
                    initial: Duration::from_millis(cli.backoff_ms[0]),
                    max: Duration::from_millis(cli.backoff_ms[1]),
                },
                ..DeviceConfig::new(credential)
            };
            Device::spawn(
                number,
                endpoint.clone(),
                server.clone(),
                Arc::new(config),
                events.clone(),
            )
        })
        .collect();
    drop(events);
    let mut connected = 0usize;
    let mut stopped = 0usize;
    loop {
        tokio::select! {
            event = received.recv() => {
                let Some(event) = event else { break };
                let prefix = if fleet { format!("[{}] ", event.device) } else { String::new() };
                match &event.event {
                    Event::Connected(record) => {
                        connected += 1;
                        println!("{prefix}connected: {}", show(record.as_ref()));
                    }
                    Event::Pushed(code, record) => println!("{prefix}push {code}: {}", show(record.as_ref())),
                    Event::Lost(error) => println!("{prefix}lost: {error}"),
                    Event::Refused(code) => println!("{prefix}refused: {code}"),
                    Event::Stopped(why) => {
                        println!("{prefix}stopped: {why}");
                        stopped += 1;
                        if stopped == devices.len() {
                            break;
                        }
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    eprintln!("{connected} connections made");
    for device in devices {
        device.stop().await;
    }
    endpoint.wait_idle().await;
    Ok(())
}

/// `server` (HOST:PORT) resolved: its first IPv4 address, or IPv6 one with `ipv6`.
async fn resolve(server: &str, ipv6: bool) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(server)
        .await
        .with_context(|| format!("--server {server}: give HOST:PORT"))?
        .collect();
    let family = if ipv6 { "IPv6" } else { "IPv4" };
    addrs
        .iter()
        .find(|addr| addr.is_ipv6() == ipv6)
        .copied()
        .with_context(|| format!("--server {server} has no {family} address ({addrs:?})"))
}

/// The HOST of `server` (HOST:PORT) if it is a name; for an address literal, `localhost`.
fn certificate_name(server: &str) -> String {
    let host = server
        .rsplit_once(':')
        .map_or(server, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.parse::<IpAddr>().is_ok() {
        "localhost".to_owned()
    } else {
        host.to_owned()
    }
}

fn show(record: Option<&ddns_client::Record>) -> String {
    record.map_or_else(|| "no record".to_owned(), |r| r.to_string())
}
