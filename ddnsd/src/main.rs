//! `ddnsd`: the dynamic DNS server suite's binary.
//!
//! - `ddnsd serve`: device API + log + projector + DNS in one process (`--role` picks a part).
//! - `ddnsd cipher --mac MAC`: seals a device credential (the seed's cipher.aspx).
//! - `ddnsd import FILE`: loads a zone file's A/AAAA records into the log.
//! - `ddnsd user add|list|remove`, `ddnsd host add|list`: people's accounts and hosts, on a running
//!   server (its admin socket) or a stopped one's data dir.

mod admin;
mod config;
mod eventlog;
mod import;
mod serve;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ddns_ingest::{TokenBook, VendorCredentials};

use config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "ddnsd",
    version,
    about = "Self-hosted dynamic DNS server suite"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start: the size of `serve`'s flags costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Runs the server: device API, durable log, projector and authoritative DNS.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Device API address [default: 127.0.0.1:8080].
        #[arg(long)]
        http_listen: Option<SocketAddr>,
        /// Device API over HTTPS, beside the plain one [default: 127.0.0.1:8443 with a
        /// certificate, else off].
        #[arg(long)]
        https_listen: Option<SocketAddr>,
        /// Certificate chain (PEM) for every TLS listener; the portal then speaks HTTPS.
        /// Re-read with the key on SIGHUP [default: no TLS].
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long)]
        tls_key: Option<PathBuf>,
        /// DNS address, UDP and TCP [default: 127.0.0.1:5353].
        #[arg(long)]
        dns_listen: Option<SocketAddr>,
        /// DNS over QUIC (RFC 9250) address, UDP; needs the TLS certificate [default: off].
        #[arg(long)]
        doq_listen: Option<SocketAddr>,
        /// QUIC device channel (ALPN ddns/1) address, UDP; needs the TLS certificate
        /// [default: off].
        #[arg(long)]
        quic_listen: Option<SocketAddr>,
        /// Prometheus metrics address (serves /metrics) [default: off].
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Web portal address [default: 127.0.0.1:8081].
        #[arg(long)]
        portal_listen: Option<SocketAddr>,
        /// What this node serves [default: all].
        #[arg(long, value_enum)]
        role: Option<config::Role>,
    },
    /// Loads the A and AAAA records of a zone file into the log (with the embedded log, run it
    /// with the server stopped).
    Import {
        #[command(flatten)]
        common: Common,
        /// The zone file (RFC 1035 master file, as BIND, NSD and Knot use).
        file: PathBuf,
        /// The `$ORIGIN` to start with, if the file has none before its first relative name.
        #[arg(long)]
        origin: Option<String>,
    },
    /// Checks a stopped server's snapshot against its log: folds the log up to the snapshot's
    /// position and compares (exit status 1 if they differ).
    Verify {
        #[command(flatten)]
        common: Common,
    },
    /// Prints a `mac` token for a device, sealed with its vendor's key.
    Cipher {
        #[command(flatten)]
        common: Common,
        /// The device's MAC address or serial.
        #[arg(long)]
        mac: String,
        /// The vendor [default: the only vendor configured].
        #[arg(long)]
        vendor: Option<String>,
        /// Issue time to stamp, in Unix seconds [default: now] (to test device clocks).
        #[arg(long)]
        issued_at: Option<u64>,
    },
    /// People's accounts (the portal's), on a running server or a stopped one's data dir.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Accounts' hosts (the DVR protocol's), on a running server or a stopped one's data dir.
    Host {
        #[command(subcommand)]
        command: HostCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Creates an account; its password is read from stdin (one line).
    Add {
        #[command(flatten)]
        common: Common,
        /// The user ID (5 to 20 letters or digits).
        user_id: String,
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// Lists every account.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Removes an account with its groups and hosts.
    Remove {
        #[command(flatten)]
        common: Common,
        /// The user ID.
        user_id: String,
    },
}

#[derive(Subcommand)]
enum HostCommand {
    /// Creates a host for an account (its group too, if needed); the host password is read
    /// from stdin (one line), or generated with --generate and printed once.
    Add {
        #[command(flatten)]
        common: Common,
        /// HOST.zone, or HOST.GROUP.zone.
        fqdn: String,
        /// The owner's user ID.
        #[arg(long)]
        user: String,
        /// Generate a 128-bit host password and print it.
        #[arg(long)]
        generate: bool,
    },
    /// Creates an update token for a host (printed once), or revokes one with --revoke ID.
    Token {
        #[command(flatten)]
        common: Common,
        /// The host.
        fqdn: String,
        /// The owner's user ID.
        #[arg(long)]
        user: String,
        /// Revoke the token with this id instead.
        #[arg(long)]
        revoke: Option<String>,
    },
    /// Lists hosts: every account's, or one's.
    List {
        #[command(flatten)]
        common: Common,
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Args)]
struct Common {
    /// Config file (TOML); `DDNSD_*` environment variables override it, flags override both.
    #[arg(long, env = "DDNSD_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The server tells what it does; a command prints its result and only warns on stderr.
    let default_filter = match cli.command {
        Command::Serve { .. } | Command::Import { .. } => {
            "info,hickory_server=warn,hickory_proto=warn"
        }
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve {
            common,
            http_listen,
            https_listen,
            tls_cert,
            tls_key,
            dns_listen,
            doq_listen,
            quic_listen,
            metrics_listen,
            portal_listen,
            role,
        } => {
            let overrides = Overrides {
                data_dir: common.data_dir,
                role,
                http_listen,
                https_listen,
                dns_listen,
                doq_listen,
                quic_listen,
                metrics_listen,
                portal_listen,
                tls: config::TlsFiles {
                    cert_file: tls_cert,
                    key_file: tls_key,
                },
            };
            let config = Config::load(common.config.as_deref(), &overrides)?;
            raise_open_file_limit();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(serve::serve(config))
        }
        Command::Import {
            common,
            file,
            origin,
        } => {
            let overrides = Overrides {
                data_dir: common.data_dir,
                ..Overrides::default()
            };
            let config = Config::load(common.config.as_deref(), &overrides)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(import::import(&config, &file, origin.as_deref()))
        }
        Command::Verify { common } => {
            let overrides = Overrides {
                data_dir: common.data_dir,
                ..Overrides::default()
            };
            let config = Config::load(common.config.as_deref(), &overrides)?;
            let output = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(verify::verify(&config))?;
            println!("{output}");
            Ok(())
        }
        Command::Cipher {
            common,
            mac,
            vendor,
            issued_at,
        } => {
            let overrides = Overrides {
                data_dir: common.data_dir,
                ..Overrides::default()
            };
            let config = Config::load(common.config.as_deref(), &overrides)?;
            let vendors = config.vendors_with_keys()?;
            let vendor = match vendor {
                Some(vendor) => vendor,
                None if vendors.len() == 1 => vendors[0].name.clone(),
                None => anyhow::bail!("several vendors are configured: name one with --vendor"),
            };
            let book = TokenBook::new(
                vendors
                    .into_iter()
                    .map(|v| VendorCredentials {
                        vendor: v.name,
                        keys: v.keys,
                        max_age_secs: v.max_age_secs,
                    })
                    .collect(),
            )?;
            let now = match issued_at {
                Some(at) => at,
                None => SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .context("clock before 1970")?
                    .as_secs(),
            };
            println!("{}", book.seal(&vendor, &mac, now)?);
            Ok(())
        }
        Command::User { command } => {
            let (common, request) = match command {
                UserCommand::Add {
                    common,
                    user_id,
                    email,
                } => (
                    common,
                    admin::Request::UserAdd {
                        user_id,
                        email,
                        password: read_secret("password")?,
                    },
                ),
                UserCommand::List { common } => (common, admin::Request::UserList),
                UserCommand::Remove { common, user_id } => {
                    (common, admin::Request::UserRemove { user_id })
                }
            };
            administer(common, request)
        }
        Command::Host { command } => {
            let (common, request) = match command {
                HostCommand::Add {
                    common,
                    fqdn,
                    user,
                    generate,
                } => {
                    let password = match generate {
                        true => None,
                        false => Some(read_secret("host password")?),
                    };
                    (
                        common,
                        admin::Request::HostAdd {
                            fqdn,
                            user_id: user,
                            password,
                        },
                    )
                }
                HostCommand::List { common, user } => {
                    (common, admin::Request::HostList { user_id: user })
                }
                HostCommand::Token {
                    common,
                    fqdn,
                    user,
                    revoke,
                } => (
                    common,
                    admin::Request::HostToken {
                        fqdn,
                        user_id: user,
                        revoke,
                    },
                ),
            };
            administer(common, request)
        }
    }
}

/// Runs an operator's command on the server of `common`'s config and prints its output.
fn administer(common: Common, request: admin::Request) -> anyhow::Result<()> {
    let overrides = Overrides {
        data_dir: common.data_dir,
        ..Overrides::default()
    };
    let config = Config::load(common.config.as_deref(), &overrides)?;
    let output = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(admin::send(&config, request))?;
    println!("{output}");
    Ok(())
}

/// Raises the open-file soft limit to the hard one: every connection is a file, and the device
/// API sizes its connection cap from the limit (`ingest.max_connections`).
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "could not raise the open-file limit");
        }
    }
}

/// One line of stdin, without its line end: a secret never goes on the command line, where
/// other users' `ps` would see it.
fn read_secret(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let secret = line.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        anyhow::bail!("give the {what} on stdin (one line)");
    }
    Ok(secret)
}
