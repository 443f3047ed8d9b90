//! The QUIC device channel (ALPN `ddns/1`): a device keeps one QUIC connection open, and when
//! its NAT or ISP changes its address the connection migrates and the server moves the
//! device's record itself, with no request and no `ipdetect` poll.
//!
//! # The protocol
//!
//! The bytes of every message are in [`ddns_client::wire`] (the codec both ends use; the
//! client crate holds nothing of the server, so device firmware builds it alone). In short:
//!
//! 1. QUIC v1, TLS 1.3, ALPN `ddns/1`, the server's one certificate (`[tls]`). No 0-RTT: a
//!    HELLO carries a credential and an UPDATE changes state, and early data can be replayed.
//! 2. The device opens one bidirectional stream, the **control stream**, and sends a HELLO
//!    within 10 s: `HELLO_DEVICE` with its `mac` token (the device API's credential), or
//!    `HELLO_HOST` with a host's FQDN and its host password or an update token (the DVR
//!    protocol's). Its flags say whether an IPv6 connection's address may be published.
//! 3. The server answers `REPLY 14` with the device's record (name, A, AAAA), or `REPLY` with
//!    the device API's error code (`02` credential refused, `13` no record, `911` flood, `12`
//!    server error) and closes the connection with [`close::REFUSED`].
//! 4. Then the device only keeps the connection alive: a QUIC PING when it sent nothing for
//!    15–25 s (what keeps NAT bindings open), against a server idle timeout of 60 s.
//! 5. It may send `UPDATE` (an address, or the one it is seen from), `REMOVE` and `QUERY`;
//!    each gets one `REPLY` with the device API's code (`09`, `08`, `04`, `13`, `911`, `12`;
//!    `15`, `16`; `14`) and the record after it, in order.
//! 6. The server sends `PUSH` when it changed the record on its own (below): `09` and the new
//!    record; or `911`/`12` when it could not yet (it retries), `13` when the record is gone.
//!
//! A message that breaks the format, a second HELLO, a request before the HELLO, a message
//! not complete within 10 s of its first byte, a reset or finished control stream: the
//! connection is closed with [`close::PROTOCOL_ERROR`] and nothing is changed. A newer
//! connection of the same device over the same address family closes the older one with
//! [`close::SUPERSEDED`].
//!
//! # Migration-driven updates
//!
//! quinn migrates a connection when a packet comes from a new address and has no event for
//! it, so the server looks at `remote_address()`: on every message, and once a second for
//! every authenticated connection (one task walks them all; a connection whose address changed
//! is woken). What a look means is [`watch`]'s: an IP change (not a port change) confirmed once
//! it outlasts quinn's path validation is published as an ordinary update event through the
//! `Committer` (same fold, same durability, charged to the device's quota like an HTTP
//! update), and the device is told with a `PUSH`. An IPv4 connection's address is always
//! followed; an IPv6 one's only if the HELLO asked (temporary privacy addresses). A connection
//! that authenticates from an IP other than its record's moves the record at once (the
//! handshake validated the address).
//!
//! # Limits
//!
//! Each connection is charged one request of its source address's quota (`[ingest.flood]
//! source_requests_per_minute`): at its HELLO, once the handshake has proven the address; but
//! while the handshake budget below is contended (an attempt refused for it in the last 2 s),
//! before it may take any of the budget, after a QUIC Retry (stateless, one round trip) has
//! proven the address. So one source cannot take the budget from the fleet, and a forged one
//! spends nobody's quota. [`QuicConfig`]: connections at once (the next is refused before any
//! cryptography), handshakes per second and, derived from it, handshakes under way at once
//! (past either an attempt is refused at once, and the device's jittered backoff spreads its
//! retry), the idle timeout. Stateless resets and connection IDs are keyed by a secret the caller keeps across
//! restarts, so a device learns of a crash from its next keep-alive. Per connection: one bidirectional
//! stream and no unidirectional ones, 1 KiB of stream credit (a message is at most 514 bytes),
//! 4 KiB of unacknowledged replies, no datagrams, no MTU probes. Session tickets are stateless
//! (a fleet's sessions cost the server no memory) and resume full handshakes after a loss.

mod watch;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ddns_client::wire::{self, Addr, Credential, Record, Request, ServerMessage, close};
use ddns_core::Reply;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{
    Connection, Endpoint, EndpointConfig, IdleTimeout, Incoming, ReadError, RecvStream, SendStream,
    TransportConfig, VarInt,
};
use rustls::server::ResolvesServerCert;
use serde::Deserialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info};

use self::watch::{INITIAL_RTT, Seen, Watch};
use crate::DeviceApi;
use crate::device_api::{ChannelRecord, Owner, code_of};

/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after the connection starts its HELLO must be in.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a message may take from its first byte to its last.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often every authenticated connection's remote address is looked at.
pub const ADDRESS_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Stream credit: two messages of the largest size.
const STREAM_RECEIVE_WINDOW: u32 = 1024;

/// Connection credit: the control stream's, and a little for a stream the limits refuse.
const CONNECTION_RECEIVE_WINDOW: u32 = 2048;

/// Unacknowledged bytes the server may have in flight to one device (replies and pushes).
const SEND_WINDOW: u64 = 4096;

/// How long a refused HELLO's REPLY, or a REMOVE's, is given to arrive before the close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How long after an attempt was refused for the handshake budget every attempt from an
/// unproven address is sent a Retry first.
const PRESSURE_WINDOW: Duration = Duration::from_secs(2);

/// How long [`QuicChannel::shutdown`] waits for devices to acknowledge the close.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// The shortest time between two stateless resets (each is smaller than the packet that
/// prompted it, so they amplify nothing).
const MIN_RESET_INTERVAL: Duration = Duration::from_millis(1);

/// The UDP socket's kernel buffers: a reconnect storm's Initials, and a fleet's keep-alives.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Registry shards: the once-a-second walk locks one at a time, HELLOs rarely wait for it.
const SHARDS: usize = 64;

/// The QUIC device channel's limits: the `[quic]` table of ddnsd's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuicConfig {
    /// A connection that carries no packet for this long is closed; devices send a PING every
    /// 15–25 s. Default 60.
    pub idle_timeout_secs: u64,
    /// Connections open at once; the next is refused before any cryptography. Default 100,000.
    pub max_connections: u32,
    /// New connections admitted per second (with bursts of a tenth of that); past it an
    /// attempt is refused at once (CONNECTION_REFUSED), and devices retry after a jittered
    /// backoff. What bounds a reconnect storm's CPU. Default 1,000.
    pub handshakes_per_second: u32,
}

impl Default for QuicConfig {
    fn default() -> QuicConfig {
        QuicConfig {
            idle_timeout_secs: 60,
            max_connections: 100_000,
            handshakes_per_second: 1000,
        }
    }
}

impl QuicConfig {
    /// The burst of handshakes admitted at once: a tenth of a second's worth, at least 1.
    pub fn handshake_burst(&self) -> u32 {
        (self.handshakes_per_second / 10).max(1)
    }

    /// Handshakes under way at once: half a second's worth at the admitted rate, at least 16.
    /// Past it an attempt is refused like one over the rate.
    pub fn handshakes_in_flight(&self) -> usize {
        (self.handshakes_per_second as usize / 2).max(16)
    }
}

/// Why the QUIC device channel could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// The UDP socket could not be bound.
    #[error("binding the QUIC device channel to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A `[quic]` setting is out of range.
    #[error("[quic] {0}")]
    Config(&'static str),
    /// rustls refused the TLS configuration.
    #[error("the TLS configuration of the QUIC device channel: {0}")]
    Tls(#[from] rustls::Error),
}

/// The QUIC device channel: one UDP socket, serving devices through a [`DeviceApi`].
///
/// Dropping it closes every connection without waiting; [`QuicChannel::shutdown`] waits
/// (briefly) for devices to hear of the close, so they reconnect at once to the next server.
pub struct QuicChannel {
    endpoint: Endpoint,
    tasks: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for QuicChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicChannel")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl QuicChannel {
    /// Binds `addr` (UDP; port 0 = any free port) and serves the channel for `api`,
    /// presenting the certificate `certificate` resolves at each handshake.
    ///
    /// `reset_key` keys the stateless resets: keep it across restarts (ddnsd stores it in the
    /// data dir), so that a device whose connection a restart or a crash ended learns so from
    /// the reset that answers its next keep-alive, and reconnects at once rather than after
    /// its idle timeout.
    pub async fn bind(
        addr: SocketAddr,
        api: Arc<DeviceApi>,
        certificate: Arc<dyn ResolvesServerCert>,
        config: &QuicConfig,
        reset_key: &[u8; 32],
    ) -> Result<QuicChannel, QuicError> {
        let bind_error = |source| QuicError::Bind { addr, source };
        let server_config = server_config(certificate, config)?;
        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key);
        // quinn drops a packet whose connection ID its generator did not make, without a
        // reset: the generator's key must outlive the process too. It is derived from the
        // reset key (it only filters junk; the reset's authenticity is the HMAC's).
        let cid_tag = ring::hmac::sign(&reset_key, b"ddns/1 connection id key");
        let cid_key = u64::from_le_bytes(
            cid_tag.as_ref()[..8]
                .try_into()
                .expect("an HMAC-SHA256 tag has 32 bytes"),
        );
        let mut endpoint_config = EndpointConfig::new(Arc::new(reset_key));
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        // quinn's default (one reset per 20 ms, endpoint-wide) would take a fleet of 100,000
        // devices half an hour to hear of a crash.
        endpoint_config.min_reset_interval(MIN_RESET_INTERVAL);
        let socket = std::net::UdpSocket::bind(addr).map_err(bind_error)?;
        socket_buffers(&socket);
        let runtime = quinn::default_runtime()
            .ok_or_else(|| bind_error(io::Error::other("no async runtime")))?;
        let endpoint = Endpoint::new(endpoint_config, Some(server_config), socket, runtime)
            .map_err(bind_error)?;
        let local_addr = endpoint.local_addr().map_err(bind_error)?;
        let rate = NonZeroU32::new(config.handshakes_per_second).ok_or(QuicError::Config(
            "handshakes_per_second must be at least 1",
        ))?;
        let burst = NonZeroU32::new(config.handshake_burst()).unwrap_or(NonZeroU32::MIN);
        let shared = Arc::new(Shared {
            api,
            registry: Registry::new(),
            next_id: AtomicU64::new(0),
        });
        let admission = Admission {
            connections: Arc::new(Semaphore::new(config.max_connections as usize)),
            handshakes: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            in_flight: Arc::new(Semaphore::new(config.handshakes_in_flight())),
            pressure_until: None,
        };
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared.clone(), admission));
        let sweep = tokio::spawn(sweep_loop(shared));
        info!(
            %local_addr,
            max_connections = config.max_connections,
            handshakes_per_second = config.handshakes_per_second,
            idle_timeout_secs = config.idle_timeout_secs,
            "QUIC device channel listening"
        );
        Ok(QuicChannel {
            endpoint,
            tasks: vec![accept, sweep],
            local_addr,
        })
    }

    /// The address the channel is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes every connection (NO_ERROR, "server shutting down") and waits (at most a second)
    /// for the devices to acknowledge; when it returns, no new connection is accepted.
    pub async fn shutdown(mut self) {
        self.close();
        if tokio::time::timeout(SHUTDOWN_WAIT, self.endpoint.wait_idle())
            .await
            .is_err()
        {
            debug!("QUIC devices did not acknowledge the close in time");
        }
        debug!(local_addr = %self.local_addr, "QUIC device channel stopped");
    }

    fn close(&mut self) {
        self.endpoint
            .close(VarInt::from_u32(close::NO_ERROR), b"server shutting down");
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for QuicChannel {
    fn drop(&mut self) {
        if !self.tasks.is_empty() {
            self.close();
        }
    }
}

/// Asks for [`SOCKET_BUFFER_BYTES`] of kernel buffers (the kernel may give less: `rmem_max`).
fn socket_buffers(socket: &std::net::UdpSocket) {
    let set = quinn::udp::UdpSocketState::new(socket.into()).and_then(|state| {
        state.set_recv_buffer_size(socket.into(), SOCKET_BUFFER_BYTES)?;
        state.set_send_buffer_size(socket.into(), SOCKET_BUFFER_BYTES)
    });
    if let Err(error) = set {
        debug!(%error, "the QUIC socket's buffers stay at the kernel's default");
    }
}

/// quinn's server configuration: TLS 1.3 with ALPN `ddns/1`, stateless tickets, no 0-RTT,
/// and the per-connection limits.
fn server_config(
    certificate: Arc<dyn ResolvesServerCert>,
    config: &QuicConfig,
) -> Result<quinn::ServerConfig, QuicError> {
    if config.max_connections == 0 {
        return Err(QuicError::Config("max_connections must be at least 1"));
    }
    if config.handshakes_per_second == 0 {
        return Err(QuicError::Config(
            "handshakes_per_second must be at least 1",
        ));
    }
    // 0 would mean "never" to QUIC: a connection nobody closes would hold its slot for ever.
    if config.idle_timeout_secs == 0 {
        return Err(QuicError::Config("idle_timeout_secs must be at least 1"));
    }
    let idle_timeout = IdleTimeout::try_from(Duration::from_secs(config.idle_timeout_secs))
        .map_err(|_| QuicError::Config("idle_timeout_secs is too large"))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    tls.alpn_protocols = vec![wire::ALPN.to_vec()];
    // Stateless tickets (keys rotated by ring's ticketer): a reconnect resumes, and a hundred
    // thousand devices' sessions take no server memory. `max_early_data_size` stays 0: no
    // 0-RTT (a replayed HELLO or UPDATE must not be taken).
    tls.ticketer = rustls::crypto::ring::Ticketer::new()?;
    let crypto = QuicServerConfig::try_from(Arc::new(tls))
        .expect("ring's provider has QUIC's initial cipher suite, TLS13_AES_128_GCM_SHA256");

    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(Some(idle_timeout))
        .max_concurrent_bidi_streams(1u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window(STREAM_RECEIVE_WINDOW.into())
        .receive_window(CONNECTION_RECEIVE_WINDOW.into())
        .send_window(SEND_WINDOW)
        .datagram_receive_buffer_size(None)
        .mtu_discovery_config(None)
        // The confirmation of a move waits out path validation, whose timer on a new path
        // comes from this (see watch.rs).
        .initial_rtt(INITIAL_RTT);
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport));
    server.migration(true);
    Ok(server)
}

/// What every connection task shares.
struct Shared {
    api: Arc<DeviceApi>,
    registry: Registry,
    next_id: AtomicU64,
}

/// The gates in front of the handshake.
struct Admission {
    connections: Arc<Semaphore>,
    handshakes: DefaultDirectRateLimiter,
    /// Handshakes under way. When the CPU completes fewer than the rate admits, they queue,
    /// each device's own timeout expires before its turn, and the work is wasted (a reconnect
    /// storm that never ends); this bounds the queue to what completes.
    in_flight: Arc<Semaphore>,
    /// Until when an attempt from an unproven address is sent a Retry first: set whenever one
    /// is refused for the handshake budget (`rate`, `busy`).
    pressure_until: Option<Instant>,
}

impl Admission {
    fn under_pressure(&self) -> bool {
        self.pressure_until
            .is_some_and(|until| Instant::now() < until)
    }

    fn note_pressure(&mut self) {
        self.pressure_until = Some(Instant::now() + PRESSURE_WINDOW);
    }
}

/// Takes connections until the endpoint closes. It never waits for a client: over a limit an
/// attempt is refused at once; under them the connection (handshake included) gets a task.
async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>, mut admission: Admission) {
    while let Some(incoming) = endpoint.accept().await {
        let refused = |reason: &'static str, incoming: Incoming| {
            metrics::counter!("ddns_ingest_quic_handshakes_total", "result" => reason).increment(1);
            debug!(remote = %incoming.remote_address(), reason, "QUIC connection refused");
            incoming.refuse();
        };
        // While the handshake budget is contended, an attempt is charged to its source's quota
        // before it may take any of it (one source cannot take the budget from the fleet), so
        // the address must first be shown to be the sender's (a forged one would spend
        // another's quota): a Retry, stateless, one round trip. Not always: at 300
        // connections a second on a loaded machine, 0.5–1.8% of attempts timed out after a
        // Retry against none without (cause not yet found).
        let proven = incoming.remote_address_validated();
        if !proven && admission.under_pressure() {
            metrics::counter!("ddns_ingest_quic_handshakes_total", "result" => "retry")
                .increment(1);
            if let Err(error) = incoming.retry() {
                debug!(%error, "QUIC Retry refused");
            }
            continue;
        }
        let source = incoming.remote_address().ip().to_canonical();
        if proven && !shared.api.channel_allow_source(source) {
            refused("source", incoming);
            continue;
        }
        let Ok(permit) = admission.connections.clone().try_acquire_owned() else {
            refused("full", incoming);
            continue;
        };
        let Ok(handshake) = admission.in_flight.clone().try_acquire_owned() else {
            admission.note_pressure();
            refused("busy", incoming);
            continue;
        };
        if admission.handshakes.check().is_err() {
            admission.note_pressure();
            refused("rate", incoming);
            continue;
        }
        metrics::counter!("ddns_ingest_quic_handshakes_total", "result" => "admitted").increment(1);
        tokio::spawn(serve_connection(
            shared.clone(),
            incoming,
            Admitted {
                _connection: permit,
                handshake,
                source_charged: proven,
            },
        ));
    }
}

/// What admission gave a connection.
struct Admitted {
    /// Its place under `max_connections`.
    _connection: OwnedSemaphorePermit,
    /// Its place among the handshakes under way.
    handshake: OwnedSemaphorePermit,
    /// Its source was charged already (else the HELLO is, once the handshake proved it).
    source_charged: bool,
}

/// Once a second, wakes every authenticated connection whose remote address changed.
async fn sweep_loop(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(ADDRESS_CHECK_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        for shard in shared.registry.shards.iter() {
            shard_of(shard).values().for_each(Tracked::wake_if_moved);
            // A hundred thousand connections take milliseconds: let requests in between.
            tokio::task::yield_now().await;
        }
    }
}

/// The authenticated connections, by owner and address family: one each.
struct Registry {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

/// One shard of the registry.
type Shard = HashMap<Key, Arc<Tracked>>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    owner: Owner,
    v6: bool,
}

/// What the walk needs of a connection.
struct Tracked {
    id: u64,
    connection: Connection,
    /// The remote address its task last looked at.
    seen: Mutex<SocketAddr>,
    wake: Notify,
}

impl Tracked {
    fn wake_if_moved(self: &Arc<Tracked>) {
        let now = self.connection.remote_address();
        if *self.seen.lock().unwrap_or_else(PoisonError::into_inner) != now {
            self.wake.notify_one();
        }
    }

    fn set_seen(&self, remote: SocketAddr) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = remote;
    }
}

fn shard_of<T>(shard: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    fn new() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Registers `tracked` under `key`; the connection it replaces, if any.
    fn insert(&self, key: Key, tracked: Arc<Tracked>) -> Option<Arc<Tracked>> {
        let old = shard_of(self.shard(&key)).insert(key, tracked);
        if old.is_none() {
            metrics::gauge!("ddns_ingest_quic_connections").increment(1.0);
        }
        old
    }

    /// Forgets `key` if it is still connection `id`'s.
    fn remove(&self, key: &Key, id: u64) {
        let mut shard = shard_of(self.shard(key));
        if shard.get(key).is_some_and(|t| t.id == id) {
            shard.remove(key);
            metrics::gauge!("ddns_ingest_quic_connections").decrement(1.0);
        }
    }
}

/// One connection: its handshake (bounded), its HELLO (bounded), then its session.
async fn serve_connection(shared: Arc<Shared>, incoming: Incoming, admitted: Admitted) {
    let Admitted {
        _connection,
        handshake,
        source_charged,
    } = admitted;
    let started = Instant::now();
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => {
            debug!(%remote, %error, "QUIC connection failed at its first packet");
            return;
        }
    };
    let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            debug!(%remote, %error, "QUIC handshake failed");
            return;
        }
        Err(_) => {
            debug!(%remote, "QUIC handshake timed out");
            return;
        }
    };
    drop(handshake);
    let hello_by = started + HELLO_TIMEOUT;
    let stream = match tokio::time::timeout_at(hello_by, connection.accept_bi()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            debug!(%remote, %error, "QUIC connection ended before its control stream");
            return;
        }
        Err(_) => return protocol_error(&connection, "no HELLO in time"),
    };
    let mut control = Control::new(stream);
    let body = match tokio::time::timeout_at(hello_by, control.next()).await {
        Ok(Ok(body)) => body,
        Ok(Err(failure)) => return failure.close(&connection),
        Err(_) => return protocol_error(&connection, "no HELLO in time"),
    };
    let (credential, follow_v6) = match Request::decode(&body) {
        Ok(Request::Hello {
            credential,
            publish_v6,
        }) => (credential, publish_v6),
        Ok(_) => return protocol_error(&connection, "the first message must be a HELLO"),
        Err(error) => return protocol_error(&connection, &error.to_string()),
    };
    let source = connection.remote_address().ip().to_canonical();
    let api = &shared.api;
    let hello = match &credential {
        _ if !source_charged && !api.channel_allow_source(source) => Err(Reply::Flood),
        // Boxed, as every call into the device API here: a connection's task stays the size of
        // what it holds while idle, not of the largest request it ever makes (an argon2 check,
        // a commit), and a hundred thousand idle tasks add up.
        Credential::Device { token } => Box::pin(api.channel_hello_device(token, source)).await,
        Credential::Host { host, secret } => {
            Box::pin(api.channel_hello_host(host, secret, source)).await
        }
    };
    let (owner, record) = match hello {
        Ok(hello) => hello,
        Err(reply) => {
            count("quic_hello", &reply);
            let refusal = ServerMessage::Reply {
                code: reply.to_string(),
                record: None,
            };
            control.finish_with(&refusal).await;
            connection.close(
                VarInt::from_u32(close::REFUSED),
                reply.to_string().as_bytes(),
            );
            return;
        }
    };
    count("quic_hello", &Reply::Registered(source));

    let remote = connection.remote_address();
    let key = Key {
        owner: owner.clone(),
        v6: source.is_ipv6(),
    };
    let tracked = Arc::new(Tracked {
        id: shared.next_id.fetch_add(1, Ordering::Relaxed),
        connection: connection.clone(),
        seen: Mutex::new(remote),
        wake: Notify::new(),
    });
    if let Some(old) = shared.registry.insert(key.clone(), tracked.clone()) {
        debug!(?owner, "a newer QUIC connection of this device took over");
        old.connection.close(
            VarInt::from_u32(close::SUPERSEDED),
            b"a newer connection of this device",
        );
    }
    let watch = Watch::new(
        remote,
        follow_v6,
        record.addrs.of_family(source),
        connection.rtt(),
        Instant::now().into_std(),
    );
    let mut session = Session {
        shared: shared.clone(),
        connection,
        control,
        owner,
        tracked,
        watch,
    };
    let welcome = ServerMessage::Reply {
        code: "14".into(),
        record: Some(wire_record(&record)),
    };
    if session.control.write(&welcome).await {
        session.run().await;
    }
    shared.registry.remove(&key, session.tracked.id);
}

/// An authenticated connection.
struct Session {
    shared: Arc<Shared>,
    connection: Connection,
    control: Control,
    owner: Owner,
    tracked: Arc<Tracked>,
    watch: Watch,
}

impl Session {
    /// Requests, address changes, and the deadlines of both, until the connection ends.
    async fn run(&mut self) {
        // The HELLO may have come from an IP the record does not hold yet.
        if !self.look().await {
            return;
        }
        loop {
            let sleep = tokio::time::sleep_until(self.watch.deadline().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                Instant::from_std,
            ));
            tokio::select! {
                body = self.control.next() => {
                    let body = match body {
                        Ok(body) => body,
                        Err(failure) => return failure.close(&self.connection),
                    };
                    if !self.look().await || !self.request(&body).await {
                        return;
                    }
                }
                () = self.tracked.wake.notified() => {
                    if !self.look().await {
                        return;
                    }
                }
                () = sleep => {
                    if !self.look().await {
                        return;
                    }
                }
            }
        }
    }

    /// Looks at the remote address and publishes a confirmed move. False if the connection
    /// is gone.
    async fn look(&mut self) -> bool {
        let remote = self.connection.remote_address();
        self.tracked.set_seen(remote);
        let now = Instant::now().into_std();
        let seen = self.watch.observe(remote, self.connection.rtt(), now);
        let kind = match seen {
            Seen::Same | Seen::Waiting | Seen::NotFollowed => return true,
            Seen::PortOnly => "port",
            Seen::OtherFamily => "family",
            Seen::Moved(_) => "ip",
            Seen::Reverted => "reverted",
            Seen::Confirmed(_) => "confirmed",
        };
        metrics::counter!("ddns_ingest_quic_address_changes_total", "kind" => kind).increment(1);
        debug!(owner = ?self.owner, %remote, kind, "QUIC device address");
        let Seen::Confirmed(ip) = seen else {
            return true;
        };
        let reply = Box::pin(self.shared.api.channel_update(&self.owner, ip)).await;
        count("quic_move", &reply);
        let push = match reply {
            Reply::Modified => {
                self.watch.settled(ip);
                true
            }
            // Already there, or not an address a record may hold: nothing to retry.
            Reply::NoChange | Reply::InvalidIp => {
                self.watch.settled(ip);
                false
            }
            // The device is gone: tell it, once.
            Reply::NotFound => {
                self.watch.settled(ip);
                true
            }
            _ => self.watch.refused(Instant::now().into_std()),
        };
        if !push {
            return true;
        }
        let message = ServerMessage::Push {
            code: reply.to_string(),
            record: self.record(),
        };
        self.control.write(&message).await
    }

    /// Answers one request. False if the connection is to end.
    async fn request(&mut self, body: &[u8]) -> bool {
        let request = match Request::decode(body) {
            Ok(request) => request,
            Err(error) => {
                protocol_error(&self.connection, &error.to_string());
                return false;
            }
        };
        let api = self.shared.api.clone();
        let source = self.connection.remote_address().ip().to_canonical();
        let (path, reply) = match request {
            Request::Hello { .. } => {
                protocol_error(&self.connection, "a second HELLO");
                return false;
            }
            _ if !api.channel_allow_source(source) => ("quic_request", Reply::Flood),
            Request::Update(addr) => {
                let ip = match addr {
                    Addr::Observed => source,
                    Addr::Ip(ip) => ip.to_canonical(),
                };
                let reply = Box::pin(api.channel_update(&self.owner, ip)).await;
                // The device put its record where it is seen from: that is not a move.
                if matches!(reply, Reply::Modified | Reply::NoChange)
                    && ip == source
                    && self.watch.follows()
                {
                    self.watch.settled(ip);
                }
                ("quic_update", reply)
            }
            Request::Remove => (
                "quic_remove",
                Box::pin(api.channel_remove(&self.owner)).await,
            ),
            Request::Query => match self.shared.api.channel_record(&self.owner) {
                Some(_) => ("quic_query", Reply::Registered(source)),
                None => ("quic_query", Reply::NotFound),
            },
        };
        count(path, &reply);
        let code = match reply {
            Reply::Registered(_) => "14".to_owned(),
            ref other => other.to_string(),
        };
        let removed = reply == Reply::Deleted;
        let message = ServerMessage::Reply {
            code,
            record: self.record(),
        };
        if removed {
            // Nothing left to follow: the REPLY, then an orderly close.
            self.control.finish_with(&message).await;
            self.connection
                .close(VarInt::from_u32(close::NO_ERROR), b"removed");
            return false;
        }
        self.control.write(&message).await
    }

    fn record(&self) -> Option<Record> {
        self.shared
            .api
            .channel_record(&self.owner)
            .map(|r| wire_record(&r))
    }
}

fn wire_record(record: &ChannelRecord) -> Record {
    Record {
        name: record.name.as_str().to_owned(),
        v4: record.addrs.v4,
        v6: record.addrs.v6,
    }
}

/// Counts a reply of the channel beside the device API's (`path` = `quic_hello`, …).
fn count(path: &'static str, reply: &Reply) {
    metrics::counter!("ddns_ingest_replies_total", "path" => path, "code" => code_of(reply))
        .increment(1);
}

/// Closes `connection` with PROTOCOL_ERROR, counted and logged at debug (a log line per bad
/// client would let anyone fill the log).
fn protocol_error(connection: &Connection, reason: &str) {
    metrics::counter!("ddns_ingest_quic_protocol_errors_total").increment(1);
    debug!(remote = %connection.remote_address(), reason, "QUIC protocol error");
    connection.close(VarInt::from_u32(close::PROTOCOL_ERROR), reason.as_bytes());
}

/// The control stream: whole messages in, messages out.
struct Control {
    send: SendStream,
    recv: RecvStream,
    /// Bytes read and not yet a whole message.
    buf: Vec<u8>,
    /// When the first byte of the message in `buf` came.
    partial_since: Option<Instant>,
}

/// Why no message could be read.
enum ReadFailure {
    /// The bytes break the format.
    Malformed(wire::WireError),
    /// The device finished or reset its control stream.
    StreamEnded,
    /// A message not complete within [`MESSAGE_TIMEOUT`] of its first byte.
    TooSlow,
    /// The connection is gone.
    Lost,
}

impl ReadFailure {
    fn close(self, connection: &Connection) {
        match self {
            ReadFailure::Malformed(error) => protocol_error(connection, &error.to_string()),
            ReadFailure::StreamEnded => protocol_error(connection, "control stream ended"),
            ReadFailure::TooSlow => protocol_error(connection, "message not complete in time"),
            ReadFailure::Lost => {}
        }
    }
}

impl Control {
    fn new((send, recv): (SendStream, RecvStream)) -> Control {
        Control {
            send,
            recv,
            buf: Vec::new(),
            partial_since: None,
        }
    }

    /// When the message begun in `buf` must be complete.
    fn deadline(&self) -> Option<Instant> {
        self.partial_since.map(|since| since + MESSAGE_TIMEOUT)
    }

    /// The next message's body. Cancel-safe: bytes read stay in `buf` for the next call. A
    /// message begun and not complete within [`MESSAGE_TIMEOUT`] is [`ReadFailure::TooSlow`].
    async fn next(&mut self) -> Result<Vec<u8>, ReadFailure> {
        loop {
            if let Some(prefix) = self.buf.first_chunk::<2>() {
                // An oversized length is refused before its body is waited for.
                let len = wire::body_len(*prefix).map_err(ReadFailure::Malformed)?;
                if self.buf.len() >= 2 + len {
                    let body = self.buf[2..2 + len].to_vec();
                    self.buf.drain(..2 + len);
                    self.partial_since = (!self.buf.is_empty()).then(Instant::now);
                    return Ok(body);
                }
            }
            let deadline = self.deadline();
            let read = self.recv.read_chunk(wire::MESSAGE_MAX + 2, true);
            let read = match deadline {
                Some(at) => match tokio::time::timeout_at(at, read).await {
                    Ok(read) => read,
                    Err(_) => return Err(ReadFailure::TooSlow),
                },
                None => read.await,
            };
            match read {
                Ok(Some(chunk)) => {
                    if self.buf.is_empty() {
                        self.partial_since = Some(Instant::now());
                    }
                    self.buf.extend_from_slice(&chunk.bytes);
                }
                Ok(None) | Err(ReadError::Reset(_)) => return Err(ReadFailure::StreamEnded),
                Err(_) => return Err(ReadFailure::Lost),
            }
        }
    }

    /// Sends `message`; false if the connection is gone.
    async fn write(&mut self, message: &ServerMessage) -> bool {
        self.send.write_all(&message.encode()).await.is_ok()
    }

    /// Sends `message`, finishes the stream and waits (briefly) until the device has it.
    async fn finish_with(&mut self, message: &ServerMessage) {
        if self.write(message).await && self.send.finish().is_ok() {
            let _ = tokio::time::timeout(CLOSE_WAIT, self.send.stopped()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoCertificate;

    impl ResolvesServerCert for NoCertificate {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
    }

    #[test]
    fn limits_of_zero_are_refused() {
        for config in [
            QuicConfig {
                idle_timeout_secs: 0,
                ..QuicConfig::default()
            },
            QuicConfig {
                max_connections: 0,
                ..QuicConfig::default()
            },
            QuicConfig {
                handshakes_per_second: 0,
                ..QuicConfig::default()
            },
        ] {
            assert!(matches!(
                server_config(Arc::new(NoCertificate), &config),
                Err(QuicError::Config(_))
            ));
        }
        assert!(server_config(Arc::new(NoCertificate), &QuicConfig::default()).is_ok());
    }

    #[test]
    fn the_handshake_burst_is_a_tenth_of_a_second_and_half_a_second_is_under_way() {
        let config = |rate| QuicConfig {
            handshakes_per_second: rate,
            ..QuicConfig::default()
        };
        assert_eq!(config(1000).handshake_burst(), 100);
        assert_eq!(config(5).handshake_burst(), 1);
        assert_eq!(config(1000).handshakes_in_flight(), 500);
        assert_eq!(config(5).handshakes_in_flight(), 16);
    }
}
