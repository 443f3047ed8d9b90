//! One connection of the channel: connect, HELLO, then requests and the server's pushes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, Endpoint, RecvStream, SendStream, TransportConfig, VarInt};
use rustls::RootCertStore;

use crate::wire::{self, Record, Request, ServerMessage, WireError};

/// What a device needs to reach its server.
#[derive(Clone)]
pub struct Server {
    /// The server's `quic_listen` address.
    pub addr: SocketAddr,
    /// The name its certificate is checked against.
    pub name: String,
    /// TLS 1.3 with ALPN `ddns/1` ([`tls_config`]); shared by every device of a process, so
    /// that reconnects resume their sessions.
    pub tls: Arc<QuicClientConfig>,
}

/// The TLS configuration of the channel: TLS 1.3 (ring), ALPN `ddns/1`, server certificates
/// checked against `roots`, sessions resumed from memory. No 0-RTT: the server takes none (a
/// HELLO carries a credential, and an UPDATE changes state: neither may be replayed).
pub fn tls_config(roots: RootCertStore) -> Arc<QuicClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![wire::ALPN.to_vec()];
    Arc::new(
        QuicClientConfig::try_from(tls)
            .expect("ring's provider has QUIC's initial cipher suite, TLS13_AES_128_GCM_SHA256"),
    )
}

/// The certificates of a PEM file, as trust roots (a private CA's, or a test CA's).
pub fn roots_from_pem(path: &std::path::Path) -> anyhow::Result<RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)? {
        roots.add(cert?)?;
    }
    anyhow::ensure!(!roots.is_empty(), "{}: no certificate", path.display());
    Ok(roots)
}

/// The transport of one connection: the keep-alive (a QUIC PING when nothing else was sent for
/// `keep_alive`), the idle timeout, and windows for a few bytes a minute.
fn transport(keep_alive: Duration, idle_timeout: Duration) -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport
        .keep_alive_interval(Some(keep_alive))
        .max_idle_timeout(idle_timeout.try_into().ok())
        // The server opens no streams.
        .max_concurrent_bidi_streams(0u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window(4096u32.into())
        .receive_window(8192u32.into())
        .send_window(8192)
        .datagram_receive_buffer_size(None)
        // Probes for a larger MTU cost packets and buy nothing for messages of a few bytes.
        .mtu_discovery_config(None);
    transport
}

/// Why a session could not be had or ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The connection could not be started (a bad address or configuration).
    #[error("connecting: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed (by the server: its code and reason).
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The server answered the HELLO with this code and closed the connection.
    #[error("refused: {0}")]
    Refused(String),
    /// The server sent something that is not a message.
    #[error("from the server: {0}")]
    Wire(#[from] WireError),
    /// The server sent a REPLY nobody asked for.
    #[error("an unrequested REPLY")]
    UnexpectedReply,
    /// The server ended the control stream.
    #[error("the server ended the control stream")]
    StreamEnded,
    /// The handshake, or the answer to the HELLO, took longer than the timeout.
    #[error("timed out")]
    TimedOut,
    /// Writing to the control stream failed.
    #[error("writing: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading the control stream failed.
    #[error("reading: {0}")]
    Read(#[from] quinn::ReadError),
    /// The request cannot be sent: a text field empty or over 255 bytes, or over 512 in all.
    #[error("the request does not fit the protocol (a field empty or over 255 bytes)")]
    DoesNotFit,
}

impl SessionError {
    /// The application error code the server closed the connection with, if it did.
    pub fn close_code(&self) -> Option<u32> {
        let SessionError::Connection(error) = self else {
            return None;
        };
        match error {
            quinn::ConnectionError::ApplicationClosed(close) => {
                u32::try_from(close.error_code.into_inner()).ok()
            }
            _ => None,
        }
    }
}

/// One authenticated connection: send requests, read replies and pushes.
pub struct Session {
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    /// Bytes read and not yet a whole message.
    buf: Vec<u8>,
}

/// A message's code and record.
pub type Answer = (String, Option<Record>);

/// How long the handshake and the answer to the HELLO may take.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

impl Session {
    /// Connects from `endpoint`, opens the control stream and sends `hello`; the session and
    /// its REPLY when the server answered `14`, else [`SessionError::Refused`] with the code.
    pub async fn open(
        endpoint: &Endpoint,
        server: &Server,
        hello: &Request,
        keep_alive: Duration,
        idle_timeout: Duration,
    ) -> Result<(Session, Answer), SessionError> {
        let mut config = quinn::ClientConfig::new(server.tls.clone());
        config.transport_config(Arc::new(transport(keep_alive, idle_timeout)));
        let connecting = endpoint.connect_with(config, server.addr, &server.name)?;
        let opened = tokio::time::timeout(HELLO_TIMEOUT, async {
            let connection = connecting.await?;
            let (send, recv) = connection.open_bi().await?;
            let mut session = Session {
                connection,
                send,
                recv,
                buf: Vec::new(),
            };
            session.send(hello).await?;
            match session.next_message().await? {
                ServerMessage::Reply { code, record } if code == "14" => {
                    Ok((session, (code, record)))
                }
                ServerMessage::Reply { code, .. } => Err(SessionError::Refused(code)),
                ServerMessage::Push { .. } => Err(SessionError::UnexpectedReply),
            }
        });
        opened.await.map_err(|_| SessionError::TimedOut)?
    }

    /// The connection (its address, statistics, close).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Sends `request` without waiting for its REPLY (which [`Session::next_message`] reads).
    pub async fn send(&mut self, request: &Request) -> Result<(), SessionError> {
        if !request.fits() {
            return Err(SessionError::DoesNotFit);
        }
        self.send_raw(&request.encode()).await
    }

    /// Writes raw bytes on the control stream (tests of the server's checks).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        match self.send.write_all(bytes).await {
            Ok(()) => Ok(()),
            Err(quinn::WriteError::ConnectionLost(error)) => Err(error.into()),
            Err(error) => Err(error.into()),
        }
    }

    /// The next message from the server. Cancel-safe: a message half read when the future is
    /// dropped is finished by the next call.
    pub async fn next_message(&mut self) -> Result<ServerMessage, SessionError> {
        loop {
            if let Some(message) = take_message(&mut self.buf)? {
                return Ok(message);
            }
            match self.recv.read_chunk(1024, true).await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk.bytes),
                Ok(None) => return Err(SessionError::StreamEnded),
                // Why the connection ended is what matters (closed, reset, timed out).
                Err(quinn::ReadError::ConnectionLost(error)) => return Err(error.into()),
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Closes the connection (NO_ERROR).
    pub fn close(&self) {
        self.connection
            .close(VarInt::from_u32(wire::close::NO_ERROR), b"device leaving");
    }
}

/// The first whole message of `buf`, taken out of it.
fn take_message(buf: &mut Vec<u8>) -> Result<Option<ServerMessage>, WireError> {
    let Some(prefix) = buf.first_chunk::<2>() else {
        return Ok(None);
    };
    let len = wire::body_len(*prefix)?;
    if buf.len() < 2 + len {
        return Ok(None);
    }
    let message = ServerMessage::decode(&buf[2..2 + len])?;
    buf.drain(..2 + len);
    Ok(Some(message))
}

/// A client endpoint on `bind` (one UDP socket for every device of the process), asking the
/// kernel for `buffer_bytes` of socket buffers when not 0: a fleet simulated from one socket
/// gets a burst of packets at once (every connection's close when the server stops).
pub fn endpoint(bind: SocketAddr, buffer_bytes: usize) -> std::io::Result<Endpoint> {
    let socket = std::net::UdpSocket::bind(bind)?;
    if buffer_bytes > 0 {
        let state = quinn::udp::UdpSocketState::new((&socket).into())?;
        // Best effort: the kernel caps them at rmem_max and wmem_max.
        let _ = state.set_recv_buffer_size((&socket).into(), buffer_bytes);
        let _ = state.set_send_buffer_size((&socket).into(), buffer_bytes);
    }
    let runtime =
        quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
    Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)
}
