//! The I/O shell: UDP worker threads ([`crate::udp`]) and hickory's server for TCP, which hands
//! each decoded request to [`Handler`], a thin adapter to [`Responder`].

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use ddns_core::LiveZone;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use socket2::{Domain, Protocol as SocketProtocol, Socket, Type};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::answer::{Responder, Transport};
use crate::fast::FastPath;
use crate::udp::{IDLE_WAKE, UdpWorkers};

/// A TCP connection that sends no query for this long is closed (RFC 7766 §6.2.3 suggests
/// seconds, not minutes, for a server).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Replies queued per TCP connection before the connection's reader waits.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Receive and send buffer asked for each UDP socket, as NSD does.
const SOCKET_BUFFER: usize = 1 << 20;

/// How often an ephemeral bind retries when the UDP port it got is taken for TCP.
const EPHEMERAL_BIND_ATTEMPTS: usize = 16;

/// The environment variable that sets how many UDP workers [`DnsServer::bind`] starts (a positive
/// integer; default: one per available core). Benchmarks use it to give every server compared the
/// same number of workers.
pub const UDP_WORKERS_ENV: &str = "DDNS_DNS_UDP_WORKERS";

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// A listening socket could not be bound.
    #[error("binding DNS over {transport} to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// `udp` or `tcp`.
        transport: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// The authoritative DNS server: UDP and TCP on one address, answering from a [`LiveZone`].
///
/// UDP is served by worker threads of its own (see the crate's README: one `SO_REUSEPORT` socket
/// per worker, batched receive and send, the common query answered by [`FastPath`]); TCP by
/// hickory-server. Both answer through the same [`Responder`] logic.
///
/// Dropping it stops the listeners without waiting; [`DnsServer::shutdown`] waits for them.
pub struct DnsServer {
    tcp: Option<Server<Handler>>,
    udp: Option<UdpWorkers>,
    local_addr: SocketAddr,
    udp_workers: usize,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .field("udp_workers", &self.udp_workers)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0 = any free port; same port for both) and starts
    /// serving `zone`, with one UDP worker per available core, or as many as the environment
    /// variable [`UDP_WORKERS_ENV`] says.
    pub async fn bind(addr: SocketAddr, zone: Arc<LiveZone>) -> Result<DnsServer, DnsError> {
        let workers = std::env::var(UDP_WORKERS_ENV)
            .ok()
            .and_then(|value| value.trim().parse().ok())
            .or_else(|| std::thread::available_parallelism().ok())
            .unwrap_or(NonZeroUsize::MIN);
        DnsServer::bind_with_udp_workers(addr, zone, workers).await
    }

    /// [`DnsServer::bind`] with `udp_workers` UDP worker threads (each with its own socket).
    pub async fn bind_with_udp_workers(
        addr: SocketAddr,
        zone: Arc<LiveZone>,
        udp_workers: NonZeroUsize,
    ) -> Result<DnsServer, DnsError> {
        let (udp, tcp) = bind_sockets(addr, udp_workers.get()).await?;
        let local_addr = tcp.local_addr().map_err(|source| DnsError::Bind {
            addr,
            transport: "tcp",
            source,
        })?;
        let zones = zone.apexes().len();
        let responder = Arc::new(Responder::new(zone.clone()));
        let fast = Arc::new(FastPath::new(zone));
        let udp =
            UdpWorkers::start(udp, fast, responder.clone()).map_err(|source| DnsError::Bind {
                addr: local_addr,
                transport: "udp",
                source,
            })?;
        let mut tcp_server = Server::new(Handler { responder });
        tcp_server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        info!(%local_addr, zones, udp_workers, "DNS server listening on UDP and TCP");
        Ok(DnsServer {
            tcp: Some(tcp_server),
            udp: Some(udp),
            local_addr,
            udp_workers: udp_workers.get(),
        })
    }

    /// The address both listeners are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops both listeners and waits for them: when it returns, every socket is closed.
    pub async fn shutdown(mut self) {
        if let Some(udp) = self.udp.take() {
            udp.stop();
            if tokio::task::spawn_blocking(move || udp.join())
                .await
                .is_err()
            {
                warn!("waiting for the DNS UDP workers failed");
            }
        }
        if let Some(mut tcp) = self.tcp.take()
            && let Err(error) = tcp.shutdown_gracefully().await
        {
            warn!(%error, "DNS listener ended with an error");
        }
        debug!(local_addr = %self.local_addr, "DNS server stopped");
    }
}

/// Binds the UDP sockets and the TCP listener on `addr`, all on one port.
///
/// The first UDP socket is bound without `SO_REUSEPORT`, so that it gets the port only if nothing
/// else holds it (with port 0, a port no other socket holds: an ephemeral bind *with* the option
/// may share a port with another reuse-port socket of the same user, such as another server in the
/// same test run). It sets the option once bound, and the other workers' sockets join it. With
/// port 0 the port may be free for UDP and taken for TCP; then it starts over with a new port.
async fn bind_sockets(
    addr: SocketAddr,
    udp_workers: usize,
) -> Result<(Vec<Socket>, TcpListener), DnsError> {
    let udp_error = |addr: SocketAddr| {
        move |source: io::Error| DnsError::Bind {
            addr,
            transport: "udp",
            source,
        }
    };
    let mut attempts_left = if addr.port() == 0 {
        EPHEMERAL_BIND_ATTEMPTS
    } else {
        1
    };
    loop {
        attempts_left -= 1;
        let first = udp_socket(addr, false).map_err(udp_error(addr))?;
        let udp_addr = first
            .local_addr()
            .and_then(|local| {
                local
                    .as_socket()
                    .ok_or_else(|| io::Error::other("not an IP socket"))
            })
            .map_err(udp_error(addr))?;
        let tcp = match TcpListener::bind(udp_addr).await {
            Ok(tcp) => tcp,
            Err(error) if attempts_left > 0 && error.kind() == io::ErrorKind::AddrInUse => {
                debug!(%udp_addr, "ephemeral port taken for TCP, trying another");
                continue;
            }
            Err(source) => {
                return Err(DnsError::Bind {
                    addr: udp_addr,
                    transport: "tcp",
                    source,
                });
            }
        };
        first.set_reuse_port(true).map_err(udp_error(udp_addr))?;
        let mut sockets = vec![first];
        for _ in 1..udp_workers {
            sockets.push(udp_socket(udp_addr, true).map_err(udp_error(udp_addr))?);
        }
        return Ok((sockets, tcp));
    }
}

/// A blocking UDP socket bound to `addr`, with the read timeout that lets its worker look up.
fn udp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(SocketProtocol::UDP),
    )?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_read_timeout(Some(IDLE_WAKE))?;
    // Room for bursts while the worker is busy (the kernel caps it at net.core.rmem_max/wmem_max;
    // the default, ~200 KiB, holds only a few hundred queries). Best effort.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    Ok(socket)
}

/// Hickory's request handler (TCP): the adapter from its request to [`Responder`] and back.
struct Handler {
    responder: Arc<Responder>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let transport = if request.protocol() == Protocol::Udp {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let Some(reply) = self.responder.reply(request, transport) else {
            // Hickory drops responses (QR=1) before they get here; the Responder would too.
            return header_info(Metadata::response_from_request(&request.metadata));
        };
        match response_handle
            .send_response(reply.message(self.responder.question(request)))
            .await
        {
            Ok(info) => info,
            Err(error) => {
                // The socket's send queue is gone (shutdown, or the TCP peer left).
                debug!(%error, src = %request.src(), "DNS reply not sent");
                header_info(reply.metadata)
            }
        }
    }
}

fn header_info(metadata: Metadata) -> ResponseInfo {
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
