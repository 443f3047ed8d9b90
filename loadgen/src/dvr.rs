//! The hosts of the `dvr` and `dyndns2` scenarios: their passwords, the update each protocol
//! sends ([`host_update`]), provisioning them through the server's admin socket, and the
//! untimed first pass.
//!
//! A DVR, or a dyndns2 client (ddclient, inadyn, a router), knows a host name and a host
//! password (README.md, "The DVR protocol" and "dyndns2"). The server stores an argon2id hash
//! of the password, checks a host's first update by argon2 (20–50 ms of a core) and remembers
//! it (per host name, whichever protocol sent it), so later updates cost microseconds. The
//! timed part of either scenario measures those later updates: before it, [`prepare`] makes
//! sure every host exists (creating the missing ones through `DATA_DIR/admin.sock`, one argon2
//! hash each) and sends each host one update in the scenario's protocol, a few at a time, so
//! that the server's argon2 runs happen here. The server bounds argon2 to one run per core with
//! 32 waiting per core (more are refused with `ERR 0x80008005` or `dnserr`), so neither step
//! sends more than a handful at once.
//!
//! Host `i` is `h<i>.<group>.<zone>` with the password [`host_password`]`(seed, i)`, in both
//! scenarios: a later run with the same seed, of either, finds the hosts provisioned and knows
//! their passwords.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::task::JoinSet;

use crate::config::LoadgenConfig;
use crate::fleet::{DvrError, Dyndns2Error, HostProtocol, Naming, Reply, initial_addr};
use crate::http::{Get, HttpConnection, Transport};
use crate::rng::derive;

/// Updates at once in the first pass: above the server's argon2 permits (one per core), far
/// below the 32 per core it lets wait.
const FIRST_PASS_CONNECTIONS: usize = 8;

/// Tries per host in the first pass (a flood or server error, or a broken exchange, is retried
/// after a pause).
const FIRST_PASS_TRIES: u32 = 3;

/// How long a missing admin socket is waited for.
const ADMIN_BIND_WAIT: Duration = Duration::from_secs(10);

/// One admin request may wait behind other argon2 runs (the portal's, the first pass's).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Host `device`'s password: 16 hex digits derived from the seed (no URL escaping needed).
pub fn host_password(seed: u64, device: u32) -> String {
    format!(
        "{:016x}",
        derive(seed ^ 0x6476_7270_6173_7377, u64::from(device))
    )
}

/// The update host `device`'s client sends in `protocol`, setting `addr`: a DVR's
/// `/dvr/update?host=FQDN&pw=PASSWORD&ip=ADDR`, or dyndns2's `/nic/update?hostname=FQDN&
/// myip=ADDR` with Basic auth `FQDN:PASSWORD` (the host's own credentials: that host only).
/// Names and passwords are letters, digits, `-` and `.`: nothing to escape.
pub(crate) fn host_update(
    protocol: HostProtocol,
    naming: &Naming,
    seed: u64,
    device: u32,
    addr: Ipv4Addr,
) -> Get {
    let fqdn = naming.fqdn(device);
    let password = host_password(seed, device);
    match protocol {
        HostProtocol::Dvr => Get::plain(format!("/dvr/update?host={fqdn}&pw={password}&ip={addr}")),
        HostProtocol::Dyndns2 => Get {
            authorization: Some(basic_authorization(&fqdn, &password)),
            source: None,
            target: format!("/nic/update?hostname={fqdn}&myip={addr}"),
        },
    }
}

/// The `Authorization` header's value for HTTP Basic auth (RFC 7617): `Basic
/// base64(user:password)`.
fn basic_authorization(user: &str, password: &str) -> String {
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {credentials}")
}

/// A refusal worth another try in the first pass: a flood, or a server error (an argon2 queue
/// that was full). Nothing else changes by trying again.
fn transient(reply: &Reply) -> bool {
    matches!(
        reply,
        Reply::Flood
            | Reply::DvrError(DvrError::Flood | DvrError::ServerError)
            | Reply::Dyndns2Error(Dyndns2Error::DnsErr)
    )
}

/// How the first pass counts a reply: its code (`ACT`, `ERR 0x8000800N`, `good`, `nochg`,
/// `badauth`, …), or, for a reply that is none of these, its text.
fn first_pass_key(reply: Reply) -> String {
    match reply {
        Reply::Other(text) => text,
        reply => reply.code().to_owned(),
    }
}

/// What happened before the timed part of a `dvr` or `dyndns2` run.
#[derive(Clone, Debug, Serialize)]
pub struct DvrSetup {
    /// The protocol of the run (and of its first pass).
    pub protocol: HostProtocol,
    /// Hosts in the run.
    pub hosts: u32,
    /// Provisioning through the admin socket (absent: the hosts were taken to exist).
    pub provision: Option<Provision>,
    /// The first update of every host.
    pub first_pass: FirstPass,
}

/// Creating the missing hosts through the admin socket.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Provision {
    /// The socket.
    pub admin_socket: String,
    /// Hosts created now.
    pub added: u32,
    /// Hosts the user had already.
    pub existed: u32,
    /// Admin requests at once.
    pub concurrency: usize,
    /// Wall time of the whole step (user, list, hosts).
    pub secs: f64,
}

/// One update per host, before the timed part: the server's one argon2 check of each.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FirstPass {
    /// Replies by code (`ACT`, `good`, `nochg`, …; the text of any other), the last try of
    /// each host.
    pub replies: BTreeMap<String, u64>,
    /// Hosts whose every try failed without a reply (connect, timeout, broken connection).
    pub failed: u64,
    /// Tries beyond the first.
    pub retries: u64,
    /// Updates at once.
    pub connections: usize,
    /// Wall time.
    pub secs: f64,
}

impl FirstPass {
    /// Hosts answered `ACT` (DVR).
    pub fn acted(&self) -> u64 {
        self.replies.get("ACT").copied().unwrap_or(0)
    }

    /// Hosts whose update was accepted: `ACT` (DVR), `good` or `nochg` (dyndns2).
    pub fn accepted(&self) -> u64 {
        ["ACT", "good", "nochg"]
            .iter()
            .filter_map(|code| self.replies.get(*code))
            .sum()
    }
}

/// Why the hosts could not be made ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The admin socket could not be used.
    #[error("admin socket {path}: {source}")]
    Admin {
        /// The socket.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The server refused an admin command.
    #[error("admin command {command}: {error}")]
    Refused {
        /// The command.
        command: String,
        /// The server's error.
        error: String,
    },
}

/// Provisions (with `config.admin_socket`) and warms up the hosts of `config`, whose updates
/// are in `protocol`.
pub async fn prepare(
    config: &LoadgenConfig,
    protocol: HostProtocol,
) -> Result<DvrSetup, SetupError> {
    let naming = config.naming();
    let provision = match &config.admin_socket {
        Some(socket) => Some(provision(config, &naming, socket).await?),
        None => None,
    };
    let first_pass = first_pass(config, &naming, protocol).await;
    Ok(DvrSetup {
        protocol,
        hosts: config.devices,
        provision,
        first_pass,
    })
}

/// The admin socket's reply (ddnsd/src/admin.rs: one JSON line each way).
#[derive(serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum AdminReply {
    Done { output: String },
    Failed { error: String },
}

/// Sends one admin request: `Ok(Ok(output))`, `Ok(Err(the server's error))`, or an I/O error.
async fn admin(
    socket: &Path,
    request: &serde_json::Value,
) -> Result<Result<String, String>, SetupError> {
    let io = |source: std::io::Error| SetupError::Admin {
        path: socket.display().to_string(),
        source,
    };
    let exchange = async {
        let mut stream = connect(socket).await?;
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        stream.write_all(&line).await?;
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).await?;
        Ok::<_, std::io::Error>(serde_json::from_str::<AdminReply>(&reply)?)
    };
    let reply = tokio::time::timeout(ADMIN_TIMEOUT, exchange)
        .await
        .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
        .map_err(io)?;
    Ok(match reply {
        AdminReply::Done { output } => Ok(output),
        AdminReply::Failed { error } => Err(error),
    })
}

/// Connects to the admin socket, waiting up to [`ADMIN_BIND_WAIT`] for it to appear: the
/// server binds it in a task of its own, which may come after its `ddnsd ready` line.
async fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    let deadline = Instant::now() + ADMIN_BIND_WAIT;
    loop {
        match UnixStream::connect(socket).await {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            connected => return connected,
        }
    }
}

fn refused(command: &str, error: String) -> SetupError {
    SetupError::Refused {
        command: command.to_owned(),
        error,
    }
}

/// Creates the user (if missing) and every host it does not have yet, the first alone (it
/// creates the group), the rest `provision_concurrency` at a time.
async fn provision(
    config: &LoadgenConfig,
    naming: &Naming,
    socket: &Path,
) -> Result<Provision, SetupError> {
    let start = Instant::now();
    let user = config.dvr_user.clone();
    let user_add = serde_json::json!({
        "command": "user_add",
        "user_id": user,
        "email": format!("{user}@loadgen.example"),
        "password": format!("loadgen-{:016x}", derive(config.seed, u64::MAX - 7)),
    });
    match admin(socket, &user_add).await? {
        Ok(_) => {}
        // Ours from an earlier run (or someone's of that name: then host_add says so).
        Err(error) if error.contains("USER ID Duplicate") => {}
        Err(error) => return Err(refused("user_add", error)),
    }
    let list = serde_json::json!({"command": "host_list", "user_id": user});
    let listed = admin(socket, &list)
        .await?
        .map_err(|e| refused("host_list", e))?;
    let existing: HashSet<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|line| line.split('\t').next())
        .map(|fqdn| fqdn.trim_end_matches('.'))
        .collect();
    let missing: Vec<u32> = (0..config.devices)
        .filter(|&d| !existing.contains(naming.fqdn(d).as_str()))
        .collect();
    let existed = config.devices - missing.len() as u32;

    let host_add = {
        let socket = socket.to_owned();
        let naming = naming.clone();
        let (seed, user) = (config.seed, user.clone());
        move |device: u32| {
            let socket = socket.clone();
            let request = serde_json::json!({
                "command": "host_add",
                "fqdn": naming.fqdn(device),
                "user_id": user,
                "password": host_password(seed, device),
            });
            async move {
                admin(&socket, &request)
                    .await?
                    .map(drop)
                    .map_err(|e| refused("host_add", e))
            }
        }
    };
    if let Some((&first, rest)) = missing.split_first() {
        host_add(first).await?;
        let rest: Arc<[u32]> = rest.into();
        let next = Arc::new(AtomicU32::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..config.provision_concurrency.min(rest.len()) {
            let (rest, next, host_add) = (rest.clone(), next.clone(), host_add.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&device) = rest.get(i) else {
                        return Ok(());
                    };
                    host_add(device).await?;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("a provisioning task does not panic")?;
        }
    }
    Ok(Provision {
        admin_socket: socket.display().to_string(),
        added: missing.len() as u32,
        existed,
        concurrency: config.provision_concurrency,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// Sends every host one update in `protocol` (its initial address), [`FIRST_PASS_CONNECTIONS`]
/// at a time.
async fn first_pass(config: &LoadgenConfig, naming: &Naming, protocol: HostProtocol) -> FirstPass {
    let start = Instant::now();
    let connections = FIRST_PASS_CONNECTIONS.min(config.devices as usize).max(1);
    let next = Arc::new(AtomicU32::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let mut connection = HttpConnection::new(
            config.http,
            &config.user_agent,
            config.timeout,
            opened.clone(),
        )
        .keep_alive(config.keep_alive());
        let (next, retries, naming) = (next.clone(), retries.clone(), naming.clone());
        let (seed, devices) = (config.seed, config.devices);
        tasks.spawn(async move {
            let mut replies: BTreeMap<String, u64> = BTreeMap::new();
            let mut failed = 0;
            loop {
                let device = next.fetch_add(1, Ordering::Relaxed);
                if device >= devices {
                    return (replies, failed);
                }
                let addr = initial_addr(seed, device).into();
                let request = host_update(protocol, &naming, seed, device, addr);
                let mut last = None;
                for attempt in 0..FIRST_PASS_TRIES {
                    if attempt > 0 {
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    last = connection
                        .get(&request)
                        .await
                        .ok()
                        .map(|body| Reply::parse(protocol.kind(), &body));
                    if last.as_ref().is_some_and(|reply| !transient(reply)) {
                        break;
                    }
                }
                match last {
                    Some(reply) => *replies.entry(first_pass_key(reply)).or_default() += 1,
                    None => failed += 1,
                }
            }
        });
    }
    let mut pass = FirstPass {
        connections,
        ..FirstPass::default()
    };
    while let Some(done) = tasks.join_next().await {
        let (replies, failed) = done.expect("a first-pass task does not panic");
        for (text, n) in replies {
            *pass.replies.entry(text).or_default() += n;
        }
        pass.failed += failed;
    }
    pass.retries = retries.load(Ordering::Relaxed);
    pass.secs = start.elapsed().as_secs_f64();
    pass
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_per_host_and_need_no_escaping() {
        let p = host_password(1, 5);
        assert_eq!(p, host_password(1, 5));
        assert_ne!(p, host_password(1, 6));
        assert_ne!(p, host_password(2, 5));
        assert_eq!(p.len(), 16);
        assert!(p.bytes().all(|b| b.is_ascii_hexdigit()));
        let naming = Naming {
            prefix: "h".into(),
            zone: "lg1.dyn.example".into(),
        };
        assert_eq!(
            host_update(HostProtocol::Dvr, &naming, 1, 5, [198, 18, 0, 9].into()),
            Get::plain(format!(
                "/dvr/update?host=h5.lg1.dyn.example&pw={p}&ip=198.18.0.9"
            ))
        );
    }

    #[test]
    fn a_dyndns2_update_names_the_host_and_sends_its_own_credentials() {
        let naming = Naming {
            prefix: "h".into(),
            zone: "lg1.dyn.example".into(),
        };
        let get = host_update(HostProtocol::Dyndns2, &naming, 1, 5, [198, 18, 0, 9].into());
        assert_eq!(
            get.target,
            "/nic/update?hostname=h5.lg1.dyn.example&myip=198.18.0.9"
        );
        let authorization = get.authorization.expect("Basic auth");
        let encoded = authorization
            .strip_prefix("Basic ")
            .expect("the Basic scheme");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("standard base64, padded");
        assert_eq!(
            String::from_utf8(decoded).expect("utf-8"),
            format!("h5.lg1.dyn.example:{}", host_password(1, 5))
        );
        // RFC 7617's example.
        assert_eq!(
            basic_authorization("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        // Another host, another credential.
        let other = host_update(HostProtocol::Dyndns2, &naming, 1, 6, [198, 18, 0, 9].into());
        assert_ne!(other.authorization, Some(authorization));
    }

    #[test]
    fn the_first_pass_retries_only_what_may_pass_later_and_counts_by_code() {
        let dyndns2 = |body| Reply::parse(HostProtocol::Dyndns2.kind(), body);
        let dvr = |body| Reply::parse(HostProtocol::Dvr.kind(), body);
        for body in ["911", "dnserr"] {
            assert!(transient(&dyndns2(body)), "{body}");
        }
        for body in ["ERR 0x80008004", "ERR 0x80008005"] {
            assert!(transient(&dvr(body)), "{body}");
        }
        for body in [
            "good 198.18.0.9",
            "nochg 198.18.0.9",
            "badauth",
            "nohost",
            "abuse",
        ] {
            assert!(!transient(&dyndns2(body)), "{body}");
        }
        for body in ["ACT", "ERR 0x80008001", "ERR 0x80008002"] {
            assert!(!transient(&dvr(body)), "{body}");
        }
        assert_eq!(first_pass_key(dyndns2("good 198.18.0.9\n")), "good");
        assert_eq!(first_pass_key(dyndns2("nochg 198.18.0.9")), "nochg");
        assert_eq!(first_pass_key(dvr("ERR 0x80008002")), "ERR 0x80008002");
        assert_eq!(first_pass_key(dyndns2("what?")), "what?");
        let pass = FirstPass {
            replies: BTreeMap::from([
                ("good".to_owned(), 3),
                ("nochg".to_owned(), 2),
                ("badauth".to_owned(), 1),
            ]),
            ..FirstPass::default()
        };
        assert_eq!((pass.accepted(), pass.acted()), (5, 0));
    }
}
