//! The device side of HTTP: per worker, a new HTTP/1.1 connection for each request (sent with
//! `Connection: close`, as a device that polls every few minutes does) or one kept alive,
//! each connection bound to the request's source address; sending the plain `GET`s devices
//! send and reading `Content-Length` replies.
//!
//! # Connections per request and the 4-tuple
//!
//! A connection is (source address, source port, server address, server port). The server
//! answers `Connection: close` by closing first, so the `TIME_WAIT` (60 s on Linux) is its
//! own, on the (device, port) pair. With a source per device, each device opens one
//! connection at a time from its own address and the ephemeral ports (`ip_local_port_range`,
//! 32768–60999 here: 28,232) are per address, so tuples cannot collide. From a single source,
//! a fleet of 1M devices polling once a minute needs ~17k new connections a second from the
//! same 28,232 ports: every port comes back within ~2 s, while the server still holds the old
//! tuple in `TIME_WAIT` (Linux accepts a new SYN on it when its sequence number or timestamp
//! is newer), and any `TIME_WAIT` of the client's own is reusable only through
//! `net.ipv4.tcp_tw_reuse` (2, the default, allows it on the loopback only). Either side's
//! `TIME_WAIT` count is capped by `net.ipv4.tcp_max_tw_buckets` (past it a closed socket skips
//! `TIME_WAIT`, counted in `TCPTimeWaitOverflow`).
//!
//! Hand-written over a `TcpStream` with `httparse` for the head: the loadgen shares the
//! machine with the server, so a request should cost it two syscalls and no allocation beyond
//! the reply body.

use std::future::Future;
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};

use crate::fleet::CallError;

/// One `GET` a device sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Get {
    /// Path and query.
    pub target: String,
    /// The `Authorization` header's value (dyndns2's Basic auth), if any.
    pub authorization: Option<String>,
    /// The address to send from (bound before connecting); `None`: the system's choice.
    pub source: Option<IpAddr>,
}

impl Get {
    /// A `GET` without credentials in its headers (the device API's, the DVR protocol's),
    /// from the system's choice of address.
    pub fn plain(target: String) -> Get {
        Get {
            target,
            authorization: None,
            source: None,
        }
    }

    /// The same, sent from `source`.
    pub fn from(self, source: Option<IpAddr>) -> Get {
        Get { source, ..self }
    }
}

/// Sends one `GET` and returns the reply body. The driver runs one per connection.
pub trait Transport: Send + 'static {
    /// Sends `request`.
    fn get(&mut self, request: &Get) -> impl Future<Output = Result<String, CallError>> + Send;
}

/// Replies larger than this are refused (the device API's are a few dozen bytes).
const REPLY_MAX: usize = 64 * 1024;

/// One worker's connection to the device API: a new one for every request (the default), or
/// kept alive ([`HttpConnection::keep_alive`]), opened on first use and again after a failure
/// or for a request from another source.
pub struct HttpConnection {
    addr: SocketAddr,
    user_agent: String,
    timeout: Duration,
    keep_alive: bool,
    stream: Option<TcpStream>,
    /// The source `stream` was opened from (`None`: the system's choice).
    bound: Option<IpAddr>,
    request: Vec<u8>,
    buf: Vec<u8>,
    opened: Arc<AtomicU64>,
}

/// Why one exchange failed.
enum Failure {
    /// Nothing came back on a connection that had served requests before: the server may have
    /// closed it while idle, so the request is worth one more try on a new connection.
    Stale,
    Failed(CallError),
}

impl HttpConnection {
    /// Connections to `addr`, a new one per request (`Connection: close`); `opened` counts
    /// every TCP connect across connections.
    pub fn new(
        addr: SocketAddr,
        user_agent: &str,
        timeout: Duration,
        opened: Arc<AtomicU64>,
    ) -> HttpConnection {
        HttpConnection {
            addr,
            user_agent: user_agent.to_owned(),
            timeout,
            keep_alive: false,
            stream: None,
            bound: None,
            request: Vec::with_capacity(512),
            buf: Vec::with_capacity(1024),
            opened,
        }
    }

    /// Keeps the connection open across requests (`true`) while they come from the same
    /// source, or opens one per request (`false`, the default).
    pub fn keep_alive(self, keep_alive: bool) -> HttpConnection {
        HttpConnection { keep_alive, ..self }
    }

    async fn connect(&mut self, source: Option<IpAddr>) -> Result<(), CallError> {
        let stream = match source {
            None => TcpStream::connect(self.addr).await,
            Some(source) => {
                // Bound before connecting: the server sees `source`. Port 0 lets the kernel pick
                // an ephemeral port of that address.
                let socket = match source {
                    IpAddr::V4(_) => TcpSocket::new_v4(),
                    IpAddr::V6(_) => TcpSocket::new_v6(),
                };
                match socket.and_then(|s| s.bind(SocketAddr::new(source, 0)).map(|()| s)) {
                    Ok(socket) => socket.connect(self.addr).await,
                    Err(e) => Err(e),
                }
            }
        }
        .map_err(|_| CallError::Connect)?;
        // Requests are single small writes: never wait for an ACK to send one.
        let _ = stream.set_nodelay(true);
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.stream = Some(stream);
        self.bound = source;
        Ok(())
    }

    async fn exchange(&mut self, request: &Get) -> Result<String, CallError> {
        self.request.clear();
        let _ = write!(
            self.request,
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\n",
            request.target, self.addr, self.user_agent
        );
        if let Some(authorization) = &request.authorization {
            let _ = write!(self.request, "Authorization: {authorization}\r\n");
        }
        if !self.keep_alive {
            self.request.extend_from_slice(b"Connection: close\r\n");
        }
        self.request.extend_from_slice(b"\r\n");
        // A kept connection serves only requests from the source it was opened from.
        let reused = self.stream.is_some() && self.bound == request.source;
        if !reused {
            self.stream = None;
            self.connect(request.source).await?;
        }
        let result = match self.send_and_read().await {
            Ok(body) => Ok(body),
            Err(Failure::Stale) if reused => {
                self.stream = None;
                self.connect(request.source).await?;
                self.send_and_read().await.map_err(|failure| {
                    self.stream = None;
                    match failure {
                        Failure::Stale => CallError::Io,
                        Failure::Failed(e) => e,
                    }
                })
            }
            Err(failure) => {
                self.stream = None;
                Err(match failure {
                    Failure::Stale => CallError::Io,
                    Failure::Failed(e) => e,
                })
            }
        };
        if !self.keep_alive {
            self.stream = None;
        }
        result
    }

    async fn send_and_read(&mut self) -> Result<String, Failure> {
        let stream = self.stream.as_mut().expect("connected before sending");
        let stale = |e: io::Error| match e.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => Failure::Stale,
            _ => Failure::Failed(CallError::Io),
        };
        stream.write_all(&self.request).await.map_err(stale)?;
        self.buf.clear();
        loop {
            let n = stream.read_buf(&mut self.buf).await.map_err(|e| {
                if self.buf.is_empty() {
                    stale(e)
                } else {
                    Failure::Failed(CallError::Io)
                }
            })?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    Failure::Stale
                } else {
                    Failure::Failed(CallError::Io)
                });
            }
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            let head_len = match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if self.buf.len() < REPLY_MAX => continue,
                _ => return Err(Failure::Failed(CallError::Http)),
            };
            if response.code != Some(200) {
                return Err(Failure::Failed(CallError::Http));
            }
            let mut body_len = None;
            let mut close = response.version == Some(0);
            for header in response.headers.iter() {
                if header.name.eq_ignore_ascii_case("content-length") {
                    body_len = std::str::from_utf8(header.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok());
                } else if header.name.eq_ignore_ascii_case("connection") {
                    close = header.value.eq_ignore_ascii_case(b"close");
                }
            }
            // The device API always sends a length; anything else is not what devices expect.
            let body_len = body_len
                .filter(|&len| len <= REPLY_MAX)
                .ok_or(Failure::Failed(CallError::Http))?;
            let end = head_len + body_len;
            while self.buf.len() < end {
                if stream
                    .read_buf(&mut self.buf)
                    .await
                    .map_err(|_| Failure::Failed(CallError::Io))?
                    == 0
                {
                    return Err(Failure::Failed(CallError::Io));
                }
            }
            if self.buf.len() > end {
                // We never pipeline, so bytes past the reply mean the stream is out of step.
                return Err(Failure::Failed(CallError::Http));
            }
            let body = std::str::from_utf8(&self.buf[head_len..end])
                .map_err(|_| Failure::Failed(CallError::Http))?
                .to_owned();
            if close && !self.keep_alive {
                // Wait for the server's FIN (sent right after the reply), so that it is the
                // side that closed first and holds the `TIME_WAIT`, whatever the timing.
                let mut rest = [0u8; 64];
                while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
            }
            if close {
                self.stream = None;
            }
            return Ok(body);
        }
    }
}

impl Transport for HttpConnection {
    async fn get(&mut self, request: &Get) -> Result<String, CallError> {
        let deadline = Instant::now() + self.timeout;
        match timeout_at(deadline, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => {
                // The reply may still arrive: this connection is out of step now.
                self.stream = None;
                Err(CallError::Timeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Serves each accepted connection with `script`: (request to expect, raw reply or None to
    /// close) in turn.
    async fn server(script: Vec<Vec<(&'static str, Option<&'static str>)>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            for connection in script {
                let (mut socket, _) = listener.accept().await.expect("accepts");
                tokio::spawn(async move {
                    for (expect, reply) in connection {
                        let mut buf = vec![0u8; 4096];
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = socket.read(&mut buf).await.expect("reads");
                            if n == 0 {
                                return;
                            }
                            got.extend_from_slice(&buf[..n]);
                        }
                        let text = String::from_utf8(got).expect("utf-8");
                        assert!(text.starts_with(expect), "{text}");
                        assert!(text.contains("User-Agent: t - t - 1\r\n"), "{text}");
                        match reply {
                            Some(reply) => {
                                socket.write_all(reply.as_bytes()).await.expect("writes")
                            }
                            None => return,
                        }
                    }
                });
            }
        });
        addr
    }

    fn connection(
        addr: SocketAddr,
        timeout_ms: u64,
        keep_alive: bool,
    ) -> (HttpConnection, Arc<AtomicU64>) {
        let opened = Arc::new(AtomicU64::new(0));
        (
            HttpConnection::new(
                addr,
                "t - t - 1",
                Duration::from_millis(timeout_ms),
                opened.clone(),
            )
            .keep_alive(keep_alive),
            opened,
        )
    }

    fn get(target: &str) -> Get {
        Get::plain(target.to_owned())
    }

    const SHORT: &str = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n09";
    const OK_09: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n09";

    #[tokio::test]
    async fn keeps_the_connection_alive_across_requests() {
        let addr = server(vec![vec![
            ("GET /update.aspx?x=1 HTTP/1.1\r\n", Some(OK_09)),
            (
                "GET /ipdetect.aspx HTTP/1.1\r\n",
                Some("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n127.0.0.1"),
            ),
        ]])
        .await;
        let (mut c, opened) = connection(addr, 5000, true);
        assert_eq!(c.get(&get("/update.aspx?x=1")).await, Ok("09".into()));
        assert_eq!(c.get(&get("/ipdetect.aspx")).await, Ok("127.0.0.1".into()));
        assert_eq!(opened.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn sends_an_authorization_header_only_with_credentials() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accepts");
            let mut heads = Vec::new();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            while heads.len() < 2 {
                let n = socket.read(&mut buf).await.expect("reads");
                assert!(n > 0, "closed after {heads:?}");
                got.extend_from_slice(&buf[..n]);
                while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = got.drain(..end + 4).collect();
                    heads.push(String::from_utf8(head).expect("utf-8"));
                    socket.write_all(OK_09.as_bytes()).await.expect("writes");
                }
            }
            heads
        });
        let (mut c, _) = connection(addr, 5000, true);
        let with = Get {
            target: "/nic/update?hostname=a.example".into(),
            authorization: Some("Basic YTpi".into()),
            source: None,
        };
        assert_eq!(c.get(&with).await, Ok("09".into()));
        assert_eq!(c.get(&get("/ipdetect.aspx")).await, Ok("09".into()));
        let heads = server.await.expect("the server task ends");
        assert!(
            heads[0].starts_with("GET /nic/update?hostname=a.example HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(
            heads[0].contains("\r\nAuthorization: Basic YTpi\r\n"),
            "{}",
            heads[0]
        );
        assert!(
            heads[0].contains("\r\nUser-Agent: t - t - 1\r\n"),
            "{}",
            heads[0]
        );
        assert!(!heads[1].contains("Authorization"), "{}", heads[1]);
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_reopened_once() {
        let addr = server(vec![
            vec![("GET /a ", Some(OK_09)), ("GET /b ", None)],
            vec![("GET /b ", Some(OK_09))],
        ])
        .await;
        let (mut c, opened) = connection(addr, 5000, true);
        assert_eq!(c.get(&get("/a")).await, Ok("09".into()));
        assert_eq!(c.get(&get("/b")).await, Ok("09".into()));
        assert_eq!(opened.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn failures_are_classified() {
        let addr = server(vec![
            vec![(
                "GET /",
                Some("HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"),
            )],
            vec![(
                "GET /",
                Some("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
            )],
            // Closes mid-body.
            vec![("GET /", Some(SHORT))],
            // Keeps the connection open, waiting for a next request, mid-body.
            vec![("GET /", Some(SHORT)), ("never", None)],
        ])
        .await;
        let (mut c, _) = connection(addr, 300, false);
        assert_eq!(c.get(&get("/")).await, Err(CallError::Http));
        assert_eq!(c.get(&get("/")).await, Err(CallError::Http));
        assert_eq!(c.get(&get("/")).await, Err(CallError::Io));
        assert_eq!(c.get(&get("/")).await, Err(CallError::Timeout));
        // Nobody listens any more on a fresh port.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let dead = listener.local_addr().expect("address");
        drop(listener);
        let (mut c, _) = connection(dead, 300, false);
        assert_eq!(c.get(&get("/")).await, Err(CallError::Connect));
    }

    /// Accepts `n` connections; for each, reads one request head, answers `09` with
    /// `connection: close` if the request asked for it (else keeps answering `09` on it), and
    /// records the peer's address and the first head.
    async fn recording_server(
        n: usize,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<(IpAddr, String)>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..n {
                let (mut socket, peer) = listener.accept().await.expect("accepts");
                let mut got = Vec::new();
                let mut buf = vec![0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.expect("reads");
                    assert!(n > 0, "closed before a request");
                    got.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8(got).expect("utf-8");
                let close = head.contains("\r\nConnection: close\r\n");
                let reply = if close {
                    "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n09"
                } else {
                    OK_09
                };
                socket.write_all(reply.as_bytes()).await.expect("writes");
                if close {
                    // The client waits for this FIN; then it sees no more from us.
                    drop(socket);
                } else {
                    // Keep it open, answering every further request on it.
                    tokio::spawn(async move {
                        while let Ok(n) = socket.read(&mut buf).await
                            && n > 0
                        {
                            if socket.write_all(OK_09.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    });
                }
                seen.push((peer.ip(), head));
            }
            seen
        });
        (addr, task)
    }

    #[tokio::test]
    async fn by_default_each_request_has_a_connection_of_its_own_from_its_own_source() {
        let (addr, server) = recording_server(3).await;
        let (mut c, opened) = connection(addr, 5000, false);
        let sources: [Option<IpAddr>; 3] = [
            Some(IpAddr::from([127, 1, 1, 1])),
            Some(IpAddr::from([127, 1, 1, 1])),
            Some(IpAddr::from([127, 254, 3, 9])),
        ];
        for source in sources {
            let request = get("/ipdetect.aspx").from(source);
            assert_eq!(c.get(&request).await, Ok("09".into()));
        }
        assert_eq!(opened.load(Ordering::Relaxed), 3);
        let seen = server.await.expect("the server task ends");
        for ((peer, head), source) in seen.iter().zip(sources) {
            assert_eq!(Some(*peer), source, "bound before connecting");
            assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        }
    }

    #[tokio::test]
    async fn a_kept_connection_serves_only_its_own_source() {
        // Two requests from one source share a connection; a third from another opens one.
        let (addr, server) = recording_server(2).await;
        let (mut c, opened) = connection(addr, 5000, true);
        let a = Some(IpAddr::from([127, 9, 9, 9]));
        let b = Some(IpAddr::from([127, 9, 9, 10]));
        for source in [a, a, b] {
            assert_eq!(c.get(&get("/x").from(source)).await, Ok("09".into()));
        }
        assert_eq!(opened.load(Ordering::Relaxed), 2);
        let seen = server.await.expect("the server task ends");
        let peers: Vec<Option<IpAddr>> = seen.iter().map(|(peer, _)| Some(*peer)).collect();
        assert_eq!(peers, [a, b]);
        assert!(seen.iter().all(|(_, head)| !head.contains("Connection:")));
    }
}
