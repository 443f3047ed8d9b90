//! The portal over TLS: a listener that hands axum connections whose handshake is done.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Handshaken connections waiting for axum to take them.
const READY_MAX: usize = 64;
/// How long to wait after a failed `accept` (out of file descriptors, …) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// An `axum::serve::Listener` of TLS connections. `accept` cannot run handshakes itself: axum
/// awaits it in its accept loop, so one slow client would stall every other. A task accepts
/// TCP connections and runs each handshake in a task of its own; `accept` takes the finished
/// ones. Dropping the listener (axum does at shutdown) stops that task and closes the socket.
pub(super) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub(super) fn new(listener: TcpListener, tls: TlsAcceptor) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (send, ready) = mpsc::channel(READY_MAX);
        tokio::spawn(accept_loop(listener, tls, send));
        Ok(TlsListener { ready, local })
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        tokio::select! {
            () = ready.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (tls, ready) = (tls.clone(), ready.clone());
                    tokio::spawn(async move {
                        match ddns_ingest::accept_tls(&tls, stream).await {
                            Ok(stream) => {
                                let _ = ready.send((stream, peer)).await;
                            }
                            Err(error) => tracing::debug!(%error, %peer, "portal: TLS handshake failed"),
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "portal: accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
