//! The I/O shell: hickory's server owns the sockets and hands each decoded request to [`Handler`],
//! a thin adapter to [`Responder`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ddns_core::LiveZone;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use tokio::net::{TcpListener, UdpSocket};
use tracing::{debug, info, warn};

use crate::answer::{Responder, Transport};

/// A TCP connection that sends no query for this long is closed (RFC 7766 §6.2.3 suggests
/// seconds, not minutes, for a server).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Replies queued per TCP connection before the connection's reader waits.
const TCP_RESPONSE_BUFFER: usize = 32;

/// How often an ephemeral bind retries when the UDP port it got is taken for TCP.
const EPHEMERAL_BIND_ATTEMPTS: usize = 16;

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
/// Dropping it stops the listeners without waiting; [`DnsServer::shutdown`] waits for them.
pub struct DnsServer {
    server: Server<Handler>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0 = any free port; same port for both) and starts
    /// serving `zone`.
    pub async fn bind(addr: SocketAddr, zone: Arc<LiveZone>) -> Result<DnsServer, DnsError> {
        let (udp, tcp) = bind_pair(addr).await?;
        let local_addr = udp.local_addr().map_err(|source| DnsError::Bind {
            addr,
            transport: "udp",
            source,
        })?;
        let zones = zone.apexes().len();
        let mut server = Server::new(Handler {
            responder: Responder::new(zone),
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        info!(%local_addr, zones, "DNS server listening on UDP and TCP");
        Ok(DnsServer { server, local_addr })
    }

    /// The address both listeners are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops both listeners and waits for them.
    pub async fn shutdown(mut self) {
        if let Err(error) = self.server.shutdown_gracefully().await {
            warn!(%error, "DNS listener ended with an error");
        }
        debug!(local_addr = %self.local_addr, "DNS server stopped");
    }
}

/// Binds UDP on `addr`, then TCP on the same IP and the port UDP got. With port 0 that port may
/// be free for UDP and taken for TCP; then it starts over with a new UDP port.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let mut attempts_left = if addr.port() == 0 {
        EPHEMERAL_BIND_ATTEMPTS
    } else {
        1
    };
    loop {
        attempts_left -= 1;
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsError::Bind {
                addr,
                transport: "udp",
                source,
            })?;
        let udp_addr = udp.local_addr().map_err(|source| DnsError::Bind {
            addr,
            transport: "udp",
            source,
        })?;
        match TcpListener::bind(udp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) if attempts_left > 0 && error.kind() == io::ErrorKind::AddrInUse => {
                debug!(%udp_addr, "ephemeral port taken for TCP, trying another");
            }
            Err(source) => {
                return Err(DnsError::Bind {
                    addr: udp_addr,
                    transport: "tcp",
                    source,
                });
            }
        }
    }
}

/// Hickory's request handler: the adapter from its request to [`Responder`] and back.
struct Handler {
    responder: Responder,
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
