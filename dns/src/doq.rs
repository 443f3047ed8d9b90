//! DNS over QUIC (RFC 9250) on quinn, answering through the same [`Responder`] as TCP.
//!
//! One query per client-initiated bidirectional stream: the client writes a 2-octet length, the
//! message (ID 0) and FIN; the server writes the reply the same way and FIN. Every stream is
//! served in a task of its own, so one connection carries many queries at once and a slow
//! stream delays nothing else; every connection (its handshake included) runs in a task of its
//! own too, so the accept loop only counts connections and never waits for a client.
//!
//! - Replies are the TCP path's bytes: [`Responder::reply`] with [`Transport::Tcp`], whose limit
//!   (65,535 bytes, what the length prefix holds) is DoQ's too, so nothing is ever truncated.
//! - A stream that is not one well-formed query closes the whole connection with
//!   `DOQ_PROTOCOL_ERROR` (RFC 9250 §4.3.3): a length that disagrees with the bytes before FIN
//!   (short, or trailing bytes), a message shorter than a header, a non-zero message ID, an
//!   `edns-tcp-keepalive` option, a response instead of a query, no FIN within
//!   [`QUERY_TIMEOUT`], or any unidirectional stream.
//! - Limits ([`DoqConfig`]): an idle timeout, connections at once (one more is refused with
//!   CONNECTION_REFUSED before any cryptography), and streams in flight per connection; windows
//!   sized for queries of at most 64 KiB; no datagrams. Past `retry_above_handshakes`
//!   handshakes under way, a client whose address is unproven gets a stateless QUIC Retry
//!   first, so forged-source Initials cost a Retry packet, not a handshake.
//! - TLS 1.3 only (QUIC has no other), ALPN `doq`, the certificate from the resolver the caller
//!   passes in: ddnsd's shared, SIGHUP-reloaded `TlsCertificate`, so every handshake presents
//!   whatever certificate is current.
//! - 0-RTT is accepted: a resumed client's queries are answered in its first flight. Replay is
//!   harmless because nothing here changes state (QUERY is answered, every other opcode gets
//!   NOTIMP, RFC 9250 §4.5), and rustls accepts early data only with single-use tickets kept in
//!   this process's memory (RFC 8446 §8.1), so a ticket is good for one 0-RTT flight per node.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use ddns_core::LiveZone;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::MessageType;
use hickory_server::proto::rr::rdata::opt::EdnsCode;
use hickory_server::server::Request;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{
    Connection, Endpoint, IdleTimeout, Incoming, ReadToEndError, RecvStream, SendStream,
    TransportConfig, VarInt,
};
use rustls::server::{ResolvesServerCert, StoresServerSessions};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::answer::{Responder, Transport};

/// The ALPN token of DNS over QUIC (RFC 9250 §4.1).
pub const DOQ_ALPN: &[u8] = b"doq";

/// `DOQ_NO_ERROR`: the application error code of an orderly close (RFC 9250 §4.3).
pub const DOQ_NO_ERROR: u32 = 0x0;

/// `DOQ_PROTOCOL_ERROR`: the application error code a malformed stream closes its connection
/// with (RFC 9250 §4.3.3).
pub const DOQ_PROTOCOL_ERROR: u32 = 0x2;

/// A stream holds the 2-octet length and at most 65,535 octets of message.
const MAX_STREAM_LEN: usize = 2 + u16::MAX as usize;

/// How long a stream may take from opening to its FIN. Clients send the query and FIN in one
/// packet; a stream still open after this is a protocol error, not something to wait out.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a handshake may take (the idle timeout alone would let a peer that keeps sending
/// keep one going).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Flow-control credit per stream: one query of the largest size, so no query ever waits for
/// credit, and no stream can hold more.
const STREAM_RECEIVE_WINDOW: u32 = MAX_STREAM_LEN as u32;

/// Flow-control credit per connection: many small queries at once, a few large ones.
const CONNECTION_RECEIVE_WINDOW: u32 = 256 * 1024;

/// Unacknowledged reply bytes a connection may have in flight (quinn's default is 10 MB).
const SEND_WINDOW: u64 = 1024 * 1024;

/// rustls sends two session tickets per handshake; the single-use ticket store holds this many
/// per allowed connection, so every connected client's tickets fit.
const SESSION_TICKETS_PER_CONNECTION: usize = 2;

/// How long [`DoqServer::shutdown`] waits for clients to acknowledge the close.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// DNS over QUIC's limits: the `[doq]` table of ddnsd's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DoqConfig {
    /// A connection that carries no packet for this long is closed (the client may ask for
    /// less, never more). Default 30, RFC 9308 §3.2's recommendation.
    pub idle_timeout_secs: u64,
    /// Connections open at once; the next is refused (CONNECTION_REFUSED) before any
    /// cryptography. Default 10,000.
    pub max_connections: u32,
    /// Queries one connection may have in flight at once (its bidirectional stream limit,
    /// renewed as streams finish). Default 100.
    pub max_streams_per_connection: u32,
    /// Past this many handshakes under way, a new client is first sent a QUIC Retry and must
    /// prove it receives at its source address (one more round trip) before any cryptography:
    /// a flood of Initials from forged addresses then costs a Retry packet each, not a
    /// handshake. 0: always. Default 100 (a thousand handshakes a second on 100 ms paths).
    pub retry_above_handshakes: u32,
}

impl Default for DoqConfig {
    fn default() -> DoqConfig {
        DoqConfig {
            idle_timeout_secs: 30,
            max_connections: 10_000,
            max_streams_per_connection: 100,
            retry_above_handshakes: 100,
        }
    }
}

/// Why the DNS-over-QUIC listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DoqError {
    /// The UDP socket could not be bound.
    #[error("binding DNS over QUIC to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A `[doq]` setting is out of range.
    #[error("[doq] {0}")]
    Config(&'static str),
    /// rustls refused the TLS configuration.
    #[error("the TLS configuration of DNS over QUIC: {0}")]
    Tls(#[from] rustls::Error),
}

/// The DNS-over-QUIC listener: one UDP socket, answering from a [`LiveZone`].
///
/// Dropping it closes every connection without waiting; [`DoqServer::shutdown`] waits (briefly)
/// for clients to hear of the close.
pub struct DoqServer {
    endpoint: Endpoint,
    accept: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for DoqServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoqServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl DoqServer {
    /// Binds `addr` (UDP; port 0 = any free port) and serves `zone` over QUIC, presenting the
    /// certificate `certificate` resolves at each handshake.
    pub async fn bind(
        addr: SocketAddr,
        zone: Arc<LiveZone>,
        certificate: Arc<dyn ResolvesServerCert>,
        config: &DoqConfig,
    ) -> Result<DoqServer, DoqError> {
        let server_config = server_config(certificate, config)?;
        let endpoint = Endpoint::server(server_config, addr)
            .map_err(|source| DoqError::Bind { addr, source })?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| DoqError::Bind { addr, source })?;
        let responder = Arc::new(Responder::new(zone));
        let admission = Admission {
            connections: Arc::new(Semaphore::new(config.max_connections as usize)),
            handshaking: Arc::new(AtomicUsize::new(0)),
            retry_above: config.retry_above_handshakes as usize,
        };
        let accept = tokio::spawn(accept_loop(endpoint.clone(), responder, admission));
        info!(
            %local_addr,
            max_connections = config.max_connections,
            idle_timeout_secs = config.idle_timeout_secs,
            "DNS over QUIC listening"
        );
        Ok(DoqServer {
            endpoint,
            accept: Some(accept),
            local_addr,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes every connection with `DOQ_NO_ERROR` and waits (at most a second) for the
    /// clients to acknowledge; when it returns, no new connection is accepted.
    pub async fn shutdown(mut self) {
        self.endpoint
            .close(VarInt::from_u32(DOQ_NO_ERROR), b"server shutting down");
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        if tokio::time::timeout(SHUTDOWN_WAIT, self.endpoint.wait_idle())
            .await
            .is_err()
        {
            debug!("DoQ clients did not acknowledge the close in time");
        }
        debug!(local_addr = %self.local_addr, "DNS over QUIC stopped");
    }
}

impl Drop for DoqServer {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            self.endpoint
                .close(VarInt::from_u32(DOQ_NO_ERROR), b"server shutting down");
            accept.abort();
        }
    }
}

/// quinn's server configuration: TLS 1.3 with ALPN `doq`, 0-RTT, and the DoQ limits.
fn server_config(
    certificate: Arc<dyn ResolvesServerCert>,
    config: &DoqConfig,
) -> Result<quinn::ServerConfig, DoqError> {
    if config.max_connections == 0 {
        return Err(DoqError::Config("max_connections must be at least 1"));
    }
    if config.max_streams_per_connection == 0 {
        return Err(DoqError::Config(
            "max_streams_per_connection must be at least 1",
        ));
    }
    // 0 would mean "never" to QUIC: a connection nobody closes would hold its slot for ever.
    if config.idle_timeout_secs == 0 {
        return Err(DoqError::Config("idle_timeout_secs must be at least 1"));
    }
    let idle_timeout = IdleTimeout::try_from(Duration::from_secs(config.idle_timeout_secs))
        .map_err(|_| DoqError::Config("idle_timeout_secs is too large"))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    tls.alpn_protocols = vec![DOQ_ALPN.to_vec()];
    // QUIC's value for "early data allowed" (RFC 9001 §4.6.1). rustls allows it only with
    // tickets it stores and takes back once (no stateless ticketer), which is what makes a
    // ticket good for a single 0-RTT flight.
    tls.max_early_data_size = u32::MAX;
    tls.session_storage = Arc::new(TicketStore::new(
        (config.max_connections as usize).saturating_mul(SESSION_TICKETS_PER_CONNECTION),
    ));
    let crypto = QuicServerConfig::try_from(Arc::new(tls))
        .expect("ring's provider has QUIC's initial cipher suite, TLS13_AES_128_GCM_SHA256");

    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(Some(idle_timeout))
        .max_concurrent_bidi_streams(config.max_streams_per_connection.into())
        // One, not zero: a client that opens one is then told DOQ_PROTOCOL_ERROR, as RFC 9250
        // asks, rather than STREAM_LIMIT_ERROR.
        .max_concurrent_uni_streams(1u32.into())
        .stream_receive_window(STREAM_RECEIVE_WINDOW.into())
        .receive_window(CONNECTION_RECEIVE_WINDOW.into())
        .send_window(SEND_WINDOW)
        .datagram_receive_buffer_size(None);
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport));
    Ok(server)
}

/// The single-use session tickets that 0-RTT needs, at most `capacity`, oldest evicted first.
///
/// rustls's own `ServerSessionMemoryCache` finds a taken ticket in its eviction queue by a linear
/// scan (rustls 0.23 `limited_cache.rs`), so at 20,000 tickets every resumption cost more server
/// CPU than a full handshake (measured with `bench/examples/doq_cost.rs`). Here a taken ticket
/// leaves only its key in the queue, and the queue drops such keys once they outnumber the live
/// ones: every operation is O(1), amortized.
#[derive(Debug)]
struct TicketStore {
    capacity: usize,
    tickets: Mutex<Tickets>,
}

#[derive(Debug, Default)]
struct Tickets {
    by_key: HashMap<Vec<u8>, Vec<u8>>,
    /// Keys in the order they were put; some already taken.
    order: VecDeque<Vec<u8>>,
}

impl TicketStore {
    fn new(capacity: usize) -> TicketStore {
        TicketStore {
            capacity: capacity.max(1),
            tickets: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tickets> {
        self.tickets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StoresServerSessions for TicketStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut tickets = self.lock();
        let Tickets { by_key, order } = &mut *tickets;
        while by_key.len() >= self.capacity {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            by_key.remove(&oldest);
        }
        // Keys are 32 random octets from rustls: a repeat would only replace the value.
        if by_key.insert(key.clone(), value).is_none() {
            order.push_back(key);
        }
        if order.len() > 2 * self.capacity {
            order.retain(|key| by_key.contains_key(key));
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lock().by_key.get(key).cloned()
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lock().by_key.remove(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// The gates in front of a handshake.
struct Admission {
    connections: Arc<Semaphore>,
    /// Handshakes under way (each connection's [`Handshaking`] until it completes).
    handshaking: Arc<AtomicUsize>,
    retry_above: usize,
}

/// One handshake under way: counted while it lives.
struct Handshaking(Arc<AtomicUsize>);

impl Handshaking {
    fn new(count: &Arc<AtomicUsize>) -> Handshaking {
        count.fetch_add(1, Ordering::Relaxed);
        Handshaking(count.clone())
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes connections until the endpoint closes. It never waits for a client: under load an
/// unproven source is sent a Retry, over the limit a connection is refused at once; otherwise
/// the connection (handshake included) gets a task.
async fn accept_loop(endpoint: Endpoint, responder: Arc<Responder>, admission: Admission) {
    while let Some(incoming) = endpoint.accept().await {
        if !incoming.remote_address_validated()
            && admission.handshaking.load(Ordering::Relaxed) >= admission.retry_above
        {
            metrics::counter!("ddns_dns_doq_retries_total").increment(1);
            if let Err(error) = incoming.retry() {
                debug!(%error, "DoQ Retry refused");
            }
            continue;
        }
        match admission.connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let handshaking = Handshaking::new(&admission.handshaking);
                tokio::spawn(serve_connection(
                    incoming,
                    responder.clone(),
                    permit,
                    handshaking,
                ));
            }
            Err(_) => {
                metrics::counter!("ddns_dns_doq_refused_total").increment(1);
                debug!(remote = %incoming.remote_address(), "DoQ connection refused: at max_connections");
                incoming.refuse();
            }
        }
    }
}

/// One connection: its handshake (bounded by [`HANDSHAKE_TIMEOUT`]), then a task per stream
/// until the connection ends. The permit is its place under `max_connections`.
async fn serve_connection(
    incoming: Incoming,
    responder: Arc<Responder>,
    _permit: OwnedSemaphorePermit,
    in_handshake: Handshaking,
) {
    let mut in_handshake = Some(in_handshake);
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => {
            debug!(%remote, %error, "DoQ connection failed at its first packet");
            return;
        }
    };
    // On a server this always succeeds: streams that arrive as 0-RTT data, or right after the
    // handshake, are served without waiting for it to be confirmed.
    let (connection, accepted) = match connecting.into_0rtt() {
        Ok((connection, accepted)) => (connection, Some(accepted)),
        Err(connecting) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Ok(Ok(connection)) => {
                in_handshake = None;
                (connection, None)
            }
            Ok(Err(error)) => {
                debug!(%remote, %error, "DoQ handshake failed");
                return;
            }
            Err(_) => {
                debug!(%remote, "DoQ handshake timed out");
                return;
            }
        },
    };
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, async move {
        if let Some(accepted) = accepted {
            accepted.await;
        }
        drop(in_handshake);
    });
    tokio::pin!(handshake);
    let mut handshaking = true;
    loop {
        tokio::select! {
            done = &mut handshake, if handshaking => {
                handshaking = false;
                if done.is_err() {
                    debug!(%remote, "DoQ handshake timed out");
                    connection.close(VarInt::from_u32(DOQ_NO_ERROR), b"handshake timed out");
                    break;
                }
            }
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    tokio::spawn(serve_stream(connection.clone(), send, recv, responder.clone()));
                }
                Err(error) => {
                    debug!(%remote, %error, "DoQ connection ended");
                    break;
                }
            },
            stream = connection.accept_uni() => {
                if stream.is_ok() {
                    protocol_error(&connection, Malformed::Unidirectional);
                }
                break;
            }
        }
    }
}

/// One query: the stream's bytes up to FIN, the reply, FIN.
async fn serve_stream(
    connection: Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    responder: Arc<Responder>,
) {
    let stream = match tokio::time::timeout(QUERY_TIMEOUT, recv.read_to_end(MAX_STREAM_LEN)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(ReadToEndError::TooLong)) => {
            return protocol_error(&connection, Malformed::Length);
        }
        // The client cancelled the query (RESET_STREAM), or the connection is gone.
        Ok(Err(ReadToEndError::Read(error))) => {
            debug!(%error, "DoQ stream ended before its FIN");
            return;
        }
        Err(_) => return protocol_error(&connection, Malformed::NoFin),
    };
    let reply = match answer(&responder, stream, connection.remote_address()) {
        Ok(reply) => reply,
        Err(malformed) => return protocol_error(&connection, malformed),
    };
    let len = u16::try_from(reply.len()).expect("Transport::Tcp keeps a reply within 65535 bytes");
    let mut chunks = [
        Bytes::copy_from_slice(&len.to_be_bytes()),
        Bytes::from(reply),
    ];
    // An error means the client stopped the stream or left: nobody is waiting for the reply.
    if send.write_all_chunks(&mut chunks).await.is_ok() {
        let _ = send.finish();
    }
}

/// Closes `connection` with `DOQ_PROTOCOL_ERROR`, counted and logged (at debug: it is the
/// client's bug, and a log line per bad client would let anyone fill the log).
fn protocol_error(connection: &Connection, malformed: Malformed) {
    metrics::counter!("ddns_dns_doq_protocol_errors_total").increment(1);
    debug!(remote = %connection.remote_address(), reason = malformed.reason(), "DoQ protocol error");
    connection.close(
        VarInt::from_u32(DOQ_PROTOCOL_ERROR),
        malformed.reason().as_bytes(),
    );
}

/// Why a stream is not one DoQ query (RFC 9250 §4.3.3); each is a `DOQ_PROTOCOL_ERROR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Malformed {
    /// The length field disagrees with the bytes before FIN (fewer, or more), or there is no
    /// complete length field.
    Length,
    /// A message shorter than a DNS header.
    ShortMessage,
    /// A message ID other than 0 (RFC 9250 §4.2.1).
    MessageId,
    /// The `edns-tcp-keepalive` option, which has no meaning over QUIC (RFC 9250 §5.5.2).
    Keepalive,
    /// A response (QR=1) where a query belongs.
    NotAQuery,
    /// No FIN within [`QUERY_TIMEOUT`].
    NoFin,
    /// A unidirectional stream: DoQ uses none.
    Unidirectional,
}

impl Malformed {
    /// The reason phrase sent in CONNECTION_CLOSE.
    fn reason(self) -> &'static str {
        match self {
            Malformed::Length => "length prefix does not match the stream",
            Malformed::ShortMessage => "message shorter than a DNS header",
            Malformed::MessageId => "message ID is not 0",
            Malformed::Keepalive => "edns-tcp-keepalive is not allowed",
            Malformed::NotAQuery => "not a query",
            Malformed::NoFin => "no STREAM FIN after the query",
            Malformed::Unidirectional => "unidirectional stream",
        }
    }
}

/// The reply to one stream's bytes (length prefix and message), without the prefix; the socket-free
/// core of [`serve_stream`].
///
/// A message that does not decode gets FORMERR, as over TCP; what is not a DoQ query at all is
/// [`Malformed`].
fn answer(
    responder: &Responder,
    mut stream: Vec<u8>,
    src: SocketAddr,
) -> Result<Vec<u8>, Malformed> {
    let Some((prefix, message)) = stream.split_first_chunk::<2>() else {
        return Err(Malformed::Length);
    };
    if usize::from(u16::from_be_bytes(*prefix)) != message.len() {
        return Err(Malformed::Length);
    }
    // The header, kept for a FORMERR if the rest does not decode.
    let Some(header) = message.first_chunk::<12>().copied() else {
        return Err(Malformed::ShortMessage);
    };
    if header[..2] != [0, 0] {
        return Err(Malformed::MessageId);
    }
    stream.drain(..2);
    // The protocol label is hickory's and the Responder ignores it; hickory's `Quic` needs its
    // own QUIC stack compiled in.
    let request = match Request::from_bytes(stream, src, Protocol::Tcp) {
        Ok(request) => request,
        // The header alone fails to decode the same way (its counts promise records that are
        // not there), and the Responder answers it FORMERR, as over TCP.
        Err(_) => {
            return responder
                .respond(&header, Transport::Tcp)
                .ok_or(Malformed::NotAQuery);
        }
    };
    if request.metadata.message_type == MessageType::Response {
        return Err(Malformed::NotAQuery);
    }
    if request
        .edns
        .as_ref()
        .is_some_and(|edns| edns.options().get(EdnsCode::Keepalive).is_some())
    {
        return Err(Malformed::Keepalive);
    }
    let reply = responder
        .reply(&request, Transport::Tcp)
        .ok_or(Malformed::NotAQuery)?;
    Ok(reply.encode(responder.question(&request), Transport::Tcp))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use ddns_core::{Fqdn, HostAddrs, ZoneApex};
    use hickory_server::proto::op::{Edns, Message, OpCode, Query};
    use hickory_server::proto::rr::rdata::opt::EdnsOption;
    use hickory_server::proto::rr::{Name, RecordType};

    use super::*;

    fn responder() -> Responder {
        let zone = LiveZone::new(vec![ZoneApex::with_defaults(
            Fqdn::parse("dyn.example").expect("valid"),
            60,
        )]);
        zone.set(
            &Fqdn::parse("cam.dyn.example").expect("valid"),
            HostAddrs {
                v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
                v6: None,
            },
        );
        Responder::new(Arc::new(zone))
    }

    fn query(id: u16, name: &str, qtype: RecordType) -> Message {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(Name::from_ascii(name).expect("valid"), qtype));
        message
    }

    /// `message` with its length prefix.
    fn framed(message: &[u8]) -> Vec<u8> {
        let mut stream = u16::try_from(message.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        stream.extend_from_slice(message);
        stream
    }

    fn src() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 4433))
    }

    #[test]
    fn a_query_gets_the_tcp_reply() {
        let responder = responder();
        for (name, qtype) in [
            ("cam.dyn.example.", RecordType::A),
            ("cam.dyn.example.", RecordType::AAAA),
            ("nope.dyn.example.", RecordType::A),
            ("dyn.example.", RecordType::SOA),
            ("example.org.", RecordType::A),
        ] {
            let message = query(0, name, qtype).to_vec().expect("encodes");
            let reply = answer(&responder, framed(&message), src()).expect("a reply");
            let tcp = responder
                .respond(&message, Transport::Tcp)
                .expect("a reply");
            assert_eq!(reply, tcp, "{name} {qtype}");
        }
    }

    #[test]
    fn malformed_streams_are_named() {
        let responder = responder();
        let message = query(0, "cam.dyn.example.", RecordType::A)
            .to_vec()
            .expect("encodes");
        let check = |stream: Vec<u8>, expected: Malformed| {
            assert_eq!(
                answer(&responder, stream.clone(), src()),
                Err(expected),
                "{stream:02x?}"
            );
        };
        check(Vec::new(), Malformed::Length);
        check(vec![0], Malformed::Length);
        let mut short = framed(&message);
        short.pop();
        check(short, Malformed::Length);
        let mut trailing = framed(&message);
        trailing.push(0);
        check(trailing, Malformed::Length);
        check(framed(&message[..11]), Malformed::ShortMessage);
        check(framed(&[]), Malformed::ShortMessage);

        let with_id = query(7, "cam.dyn.example.", RecordType::A)
            .to_vec()
            .expect("encodes");
        check(framed(&with_id), Malformed::MessageId);

        let mut response = query(0, "cam.dyn.example.", RecordType::A);
        response.metadata.message_type = MessageType::Response;
        check(
            framed(&response.to_vec().expect("encodes")),
            Malformed::NotAQuery,
        );

        let mut keepalive = query(0, "cam.dyn.example.", RecordType::A);
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Unknown(u16::from(EdnsCode::Keepalive), vec![]));
        keepalive.set_edns(edns);
        check(
            framed(&keepalive.to_vec().expect("encodes")),
            Malformed::Keepalive,
        );
    }

    #[test]
    fn undecodable_messages_get_formerr_as_over_tcp() {
        let responder = responder();
        // ID 0, one question promised, and a name that points at itself.
        let mut looped = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let reply = answer(&responder, framed(&looped), src()).expect("FORMERR");
        assert_eq!(
            reply,
            responder.respond(&looped, Transport::Tcp).expect("FORMERR")
        );
        assert_eq!(reply[3] & 0x0f, 1, "FORMERR");
    }

    #[test]
    fn tickets_are_single_use_and_the_oldest_go_first() {
        let store = TicketStore::new(3);
        let key = |i: u8| vec![i; 32];
        for i in 0..3 {
            assert!(store.put(key(i), vec![i]));
        }
        assert_eq!(store.get(&key(0)), Some(vec![0]));
        assert_eq!(store.take(&key(0)), Some(vec![0]));
        assert_eq!(store.take(&key(0)), None, "single use");
        // Room for one more without evicting; the next evicts the oldest left (1).
        store.put(key(3), vec![3]);
        assert_eq!(store.get(&key(1)), Some(vec![1]));
        store.put(key(4), vec![4]);
        assert_eq!(store.get(&key(1)), None);
        for i in 2..5 {
            assert_eq!(store.get(&key(i)), Some(vec![i]));
        }
        // Taken tickets' keys do not pile up in the eviction queue.
        for i in 5..=255 {
            store.put(key(i), vec![i]);
            assert_eq!(store.take(&key(i)), Some(vec![i]));
        }
        let tickets = store.lock();
        assert!(tickets.by_key.len() <= 3);
        assert!(tickets.order.len() <= 2 * 3 + 1, "{}", tickets.order.len());
    }

    #[test]
    fn limits_of_zero_are_refused() {
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
        for config in [
            DoqConfig {
                idle_timeout_secs: 0,
                ..DoqConfig::default()
            },
            DoqConfig {
                max_connections: 0,
                ..DoqConfig::default()
            },
            DoqConfig {
                max_streams_per_connection: 0,
                ..DoqConfig::default()
            },
        ] {
            assert!(matches!(
                server_config(Arc::new(NoCertificate), &config),
                Err(DoqError::Config(_))
            ));
        }
        assert!(server_config(Arc::new(NoCertificate), &DoqConfig::default()).is_ok());
    }
}
