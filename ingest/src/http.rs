//! The device API's own HTTP/1.1 server ([`DeviceApi::serve`]).
//!
//! What devices send is small and regular: a `GET` of one of a few paths with a query and a few
//! headers, answered with a short `text/plain` body, on keep-alive connections. Serving exactly
//! that — the head parsed in place by `httparse`, one `read` and one `write` per request, no
//! allocation beyond the reply — took the device API from ~30 µs of server CPU per request
//! spent in hyper and axum (request and response objects, extension maps, boxed services,
//! header maps) to a few. [`DeviceApi::router`] (axum) stays for tests and for embedding; both
//! answer through [`DeviceApi::respond`], so they differ only in HTTP framing.
//!
//! Framing, as hyper's HTTP/1 server does it:
//! - `GET` and `HEAD` (the answer without its body), or `POST` on the ACME paths (`/present`,
//!   `/cleanup`); another method on a known path is `405` with its `allow`, an unknown path `404`.
//! - Keep-alive: HTTP/1.1 unless `connection: close`; HTTP/1.0 only with `connection:
//!   keep-alive`. Pipelined requests are answered in order.
//! - A `content-length` body (at most [`BODY_MAX`] bytes) is read (only the ACME paths look at
//!   it); a
//!   `transfer-encoding` body is `501` and closes, a larger body `413`, a head over [`HEAD_MAX`]
//!   bytes `431`, a malformed one `400`.
//! - A request's head must arrive within [`HEAD_TIMEOUT`] of its first byte; a connection idle
//!   for [`IDLE_TIMEOUT`] between requests is closed.
//! - At most `max_connections` per listener ([`crate::IngestConfig`]): a connection accepted
//!   beyond it closes the one that has waited longest for its next request, so an idle flood
//!   (more connections than the process may have files) cannot lock out a device that polls;
//!   with none idle, the new connection is closed at once. When `accept` fails for want of a
//!   file descriptor, the longest-idle connection is closed too.
//! - Shutdown: stop accepting, answer what is in progress (with `connection: close`), close
//!   idle connections, and return once every connection is closed.
//!
//! Over TLS ([`DeviceApi::serve_tls`]) the same code runs on the decrypted stream: the
//! handshake (within [`crate::HANDSHAKE_TIMEOUT`]) runs in the connection's own task, so a
//! slow client holds up no other, and a connection ends with a `close_notify`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::device_api::{Answer, DeviceApi, Head, Route};

/// Longest request head accepted (request line and headers).
pub(crate) const HEAD_MAX: usize = 16 * 1024;
/// Largest request body accepted.
pub(crate) const BODY_MAX: usize = 64 * 1024;
/// Most headers in a request.
const HEADERS_MAX: usize = 64;
/// How long a request's head may take to arrive, from its first byte.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may sit idle between requests before it is closed, so that idle
/// connections (a client that opens many and sends nothing) cannot pile up without bound.
/// Devices poll every few minutes and reconnect; load balancers reopen as needed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the accept loop waits for a connection it closed to give back its file.
const EVICTION_PAUSE: Duration = Duration::from_millis(1);
/// How long to wait after a failed `accept` (out of file descriptors, …) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

impl DeviceApi {
    /// Serves the device API on `listener` until `shutdown` completes, then closes idle
    /// connections, finishes the requests in progress, and returns once all are closed.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.serve_with(listener, None, shutdown).await
    }

    /// [`DeviceApi::serve`] over TLS: every connection accepted on `listener` is a TLS
    /// handshake with `tls` first (see [`crate::TlsCertificate::http_acceptor`]).
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: TcpListener,
        tls: TlsAcceptor,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.serve_with(listener, Some(tls), shutdown).await
    }

    async fn serve_with(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let idle = Arc::new(IdleConnections::default());
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if connections.len() >= self.max_connections && !idle.close_oldest() {
                            // Every connection is busy with a request: no room for this one.
                            metrics::counter!("ddns_ingest_connections_refused_total").increment(1);
                            continue;
                        }
                        // Replies are single writes: never hold one back for an ACK.
                        let _ = stream.set_nodelay(true);
                        let life = Life {
                            stopped: stopped.clone(),
                            idle: idle.clone(),
                        };
                        let api = self.clone();
                        match tls.clone() {
                            None => connections.spawn(connection(api, stream, peer, life)),
                            Some(tls) => {
                                connections.spawn(tls_connection(api, tls, stream, peer, life))
                            }
                        };
                    }
                    // Out of files (an idle flood past the limit): close the longest-idle
                    // connection, so the next accept has one.
                    Err(error) if is_out_of_files(&error) && idle.close_oldest() => {
                        tokio::time::sleep(EVICTION_PAUSE).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(ended) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = ended
                        && error.is_panic()
                    {
                        tracing::error!(%error, "an HTTP connection panicked");
                    }
                }
            }
        }
        drop(listener);
        let _ = stop.send(true);
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

/// True if `error` says the process (or the system) has no file descriptor left.
fn is_out_of_files(error: &io::Error) -> bool {
    let errno = error.raw_os_error();
    errno == Some(rustix::io::Errno::MFILE.raw_os_error())
        || errno == Some(rustix::io::Errno::NFILE.raw_os_error())
}

/// How one request is framed, read off its head.
struct Framing {
    /// Keep the connection open after the answer.
    keep_alive: bool,
    /// HTTP/1.0 (answers say `connection: keep-alive` when they keep it open).
    http10: bool,
    /// `HEAD`: the answer without its body.
    head_only: bool,
    /// Bytes of body after the head.
    body_len: usize,
}

/// What went wrong with a request's framing: answered with this status, then closed.
struct Refused(StatusCode);

/// The connections waiting for their next request, longest first: the ones closed to make
/// room for new connections past `max_connections`.
#[derive(Default)]
struct IdleConnections {
    next: AtomicU64,
    waiting: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl IdleConnections {
    /// Registers a connection that starts waiting; it leaves when the guard drops.
    fn wait<'a>(&'a self, close: &Arc<Notify>) -> IdleGuard<'a> {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let mut waiting = self.waiting.lock().expect("idle set poisoned");
        waiting.insert(key, close.clone());
        IdleGuard { set: self, key }
    }

    /// Tells the connection that has waited longest to close; false if none is waiting.
    fn close_oldest(&self) -> bool {
        let oldest = self.waiting.lock().expect("idle set poisoned").pop_first();
        match oldest {
            Some((_, close)) => {
                close.notify_one();
                metrics::counter!("ddns_ingest_idle_connections_closed_total").increment(1);
                true
            }
            None => false,
        }
    }
}

/// A connection's place in [`IdleConnections`] while it waits.
struct IdleGuard<'a> {
    set: &'a IdleConnections,
    key: u64,
}

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        self.set
            .waiting
            .lock()
            .expect("idle set poisoned")
            .remove(&self.key);
    }
}

/// What ends a connection from outside: the server stopping, or making room for another.
struct Life {
    stopped: watch::Receiver<bool>,
    idle: Arc<IdleConnections>,
}

/// Handshakes, then serves the connection as [`connection`] does, then sends `close_notify`.
async fn tls_connection(
    api: Arc<DeviceApi>,
    tls: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut life: Life,
) {
    let mut stream = tokio::select! {
        accepted = crate::tls::accept_tls(&tls, stream) => match accepted {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, %peer, "TLS handshake failed");
                return;
            }
        },
        _ = life.stopped.changed() => return,
    };
    connection(api, &mut stream, peer, life).await;
    // The alert is one small write: a peer that does not read it cannot hold the task long.
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// Serves one connection until it closes, fails, or the server stops.
async fn connection<S>(api: Arc<DeviceApi>, mut stream: S, peer: SocketAddr, life: Life)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Life { mut stopped, idle } = life;
    let close = Arc::new(Notify::new());
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    loop {
        // Idle: wait for a request's first bytes, or the end.
        if buf.is_empty() {
            if *stopped.borrow() {
                return;
            }
            let _waiting = idle.wait(&close);
            tokio::select! {
                read = stream.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = stopped.changed() => return,
                () = tokio::time::sleep(IDLE_TIMEOUT) => return,
                () = close.notified() => return,
            }
        }
        let deadline = Instant::now() + HEAD_TIMEOUT;
        // Until the whole request (head and any body) is buffered: then answer it.
        let consumed = loop {
            let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
            let mut request = httparse::Request::new(&mut headers);
            let refused = match request.parse(&buf) {
                Ok(httparse::Status::Complete(head_len)) => match framing(&request) {
                    Ok(framing) if buf.len() >= head_len + framing.body_len => {
                        let keep_alive = framing.keep_alive && !*stopped.borrow();
                        let body = &buf[head_len..head_len + framing.body_len];
                        let answer = answer(&api, &request, body, peer).await;
                        out.clear();
                        write_answer(&mut out, &answer, &framing, keep_alive);
                        if write_out(&mut stream, &out).await.is_err() || !keep_alive {
                            return;
                        }
                        break head_len + framing.body_len;
                    }
                    Ok(_) => None,
                    Err(refused) => Some(refused),
                },
                Ok(httparse::Status::Partial) if buf.len() < HEAD_MAX => None,
                Ok(httparse::Status::Partial) => {
                    Some(Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE))
                }
                Err(httparse::Error::TooManyHeaders) => {
                    Some(Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE))
                }
                Err(_) => Some(Refused(StatusCode::BAD_REQUEST)),
            };
            if let Some(Refused(status)) = refused {
                out.clear();
                write_refusal(&mut out, status);
                let _ = write_out(&mut stream, &out).await;
                return;
            }
            match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
                Ok(Ok(0) | Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
        };
        buf.drain(..consumed);
    }
}

/// Writes `out` and flushes it (a no-op on TCP; over TLS it sends the records).
async fn write_out<S: AsyncWrite + Unpin>(stream: &mut S, out: &[u8]) -> io::Result<()> {
    stream.write_all(out).await?;
    stream.flush().await
}

/// The framing of a parsed request, or why it cannot be served.
fn framing(request: &httparse::Request<'_, '_>) -> Result<Framing, Refused> {
    let bad = || Refused(StatusCode::BAD_REQUEST);
    if !request.path.is_some_and(valid_target) {
        return Err(bad());
    }
    let http10 = request.version == Some(0);
    let (mut close, mut keep_alive) = (false, false);
    let mut body_len = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if header.name.eq_ignore_ascii_case("content-length") {
            // Digits only (`usize::from_str` would take `+5`), and every field the same
            // length: two that differ are a request smuggled past a proxy that reads the
            // other one.
            let value = header.value.trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let len = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(Refused(StatusCode::PAYLOAD_TOO_LARGE))?;
            if body_len.is_some_and(|seen| seen != len) {
                return Err(bad());
            }
            if len > BODY_MAX {
                return Err(Refused(StatusCode::PAYLOAD_TOO_LARGE));
            }
            body_len = Some(len);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Refused(StatusCode::NOT_IMPLEMENTED));
        }
    }
    Ok(Framing {
        // `close` wins wherever it is; HTTP/1.0 keeps the connection only when asked.
        keep_alive: !close && (!http10 || keep_alive),
        http10,
        head_only: request.method == Some("HEAD"),
        body_len: body_len.unwrap_or(0),
    })
}

/// True if `target` is a request target a URI can hold (RFC 3986's characters, percent escapes
/// as they come) and has no fragment, which a request target never has. httparse takes more
/// (`"`, `{`, `|`, `}`, `#`, …); hyper refuses them, and so do we.
fn valid_target(target: &str) -> bool {
    target
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?[]@!$&'()*+,;=%".contains(&b))
}

/// Routes the request and answers it through [`DeviceApi::respond`].
async fn answer(
    api: &DeviceApi,
    request: &httparse::Request<'_, '_>,
    body: &[u8],
    peer: SocketAddr,
) -> Answer {
    let target = request.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(route) = Route::of(api, origin_path(path)) else {
        return Answer::status(StatusCode::NOT_FOUND, "");
    };
    if !route.allows(request.method.unwrap_or_default()) {
        return Answer::method_not_allowed(route.methods());
    }
    let mut user_agent = None;
    let mut authorization = None;
    let mut forwarded_for = Vec::new();
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("user-agent") {
            if user_agent.is_none() {
                user_agent = Some(visible_ascii(header.value));
            }
        } else if header.name.eq_ignore_ascii_case("authorization") {
            if authorization.is_none() {
                authorization = Some(visible_ascii(header.value));
            }
        } else if header.name.eq_ignore_ascii_case("x-forwarded-for")
            && let Some(value) = visible_ascii(header.value)
        {
            forwarded_for.push(value);
        }
    }
    let head = Head {
        peer,
        query,
        user_agent: user_agent.flatten(),
        forwarded_for,
        authorization: authorization.flatten(),
        body,
    };
    api.respond(route, &head).await
}

/// The path of a request target in origin form (`/a?b`) or absolute form
/// (`http://host/a?b`, what a client talking to a proxy sends).
fn origin_path(path: &str) -> &str {
    match path.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('/') => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => path,
    }
}

/// A header value as text if it is visible ASCII (and tabs), as `HeaderValue::to_str` has it.
fn visible_ascii(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// Appends the response to `answer` to `out`.
fn write_answer(out: &mut Vec<u8>, answer: &Answer, framing: &Framing, keep_alive: bool) {
    status_line(out, answer.status);
    if answer.status == StatusCode::OK || !answer.body.is_empty() {
        out.extend_from_slice(b"content-type: ");
        out.extend_from_slice(answer.content_type().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(allow) = answer.allow {
        out.extend_from_slice(b"allow: ");
        out.extend_from_slice(allow.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if answer.status == StatusCode::UNAUTHORIZED {
        out.extend_from_slice(b"www-authenticate: ");
        out.extend_from_slice(crate::device_api::CHALLENGE.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if framing.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    finish_head(out, answer.body.len());
    if !framing.head_only {
        out.extend_from_slice(answer.body.as_bytes());
    }
}

/// Appends a bodiless response that closes the connection.
fn write_refusal(out: &mut Vec<u8>, status: StatusCode) {
    status_line(out, status);
    out.extend_from_slice(b"connection: close\r\n");
    finish_head(out, 0);
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `content-length`, `date`, and the blank line.
fn finish_head(out: &mut Vec<u8>, body_len: usize) {
    out.extend_from_slice(b"content-length: ");
    let mut digits = itoa_buf(body_len);
    out.extend_from_slice(digits.as_mut());
    out.extend_from_slice(b"\r\ndate: ");
    DATE.with(|date| out.extend_from_slice(&date.borrow_mut().now()));
    out.extend_from_slice(b"\r\n\r\n");
}

/// A decimal number's digits, without allocating.
struct Digits {
    bytes: [u8; 20],
    start: usize,
}

impl AsMut<[u8]> for Digits {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..]
    }
}

fn itoa_buf(mut n: usize) -> Digits {
    let mut bytes = [0u8; 20];
    let mut start = bytes.len();
    loop {
        start -= 1;
        bytes[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { bytes, start }
}

thread_local! {
    /// The `date` header's value, formatted once a second per thread.
    static DATE: std::cell::RefCell<DateCache> = const {
        std::cell::RefCell::new(DateCache { secs: u64::MAX, text: [0; 29] })
    };
}

struct DateCache {
    secs: u64,
    text: [u8; 29],
}

impl DateCache {
    fn now(&mut self) -> [u8; 29] {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.secs {
            self.secs = secs;
            self.text = imf_fixdate(secs);
        }
        self.text
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7) for `secs` since the Unix epoch.
fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u64;
    let mut text = [0u8; 29];
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    text[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    text[3..5].copy_from_slice(b", ");
    text[5..7].copy_from_slice(&two(day));
    text[7] = b' ';
    text[8..11].copy_from_slice(MONTHS[month - 1]);
    text[11] = b' ';
    text[12..14].copy_from_slice(&two(year / 100));
    text[14..16].copy_from_slice(&two(year));
    text[16] = b' ';
    text[17..19].copy_from_slice(&two(of_day / 3600));
    text[19] = b':';
    text[20..22].copy_from_slice(&two(of_day / 60 % 60));
    text[22] = b':';
    text[23..25].copy_from_slice(&two(of_day % 60));
    text[25..].copy_from_slice(b" GMT");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            &imf_fixdate(4_102_444_799),
            b"Thu, 31 Dec 2099 23:59:59 GMT"
        );
    }

    #[test]
    fn numbers_and_targets() {
        assert_eq!(itoa_buf(0).as_mut(), b"0");
        assert_eq!(itoa_buf(65_536).as_mut(), b"65536");
        assert_eq!(origin_path("/update.aspx"), "/update.aspx");
        assert_eq!(
            origin_path("http://ddns.example/update.aspx"),
            "/update.aspx"
        );
        assert_eq!(origin_path("http://ddns.example"), "/");
        assert_eq!(visible_ascii(b"a\tb ~"), Some("a\tb ~"));
        assert_eq!(visible_ascii(b"caf\xc3\xa9"), None);
    }
}
