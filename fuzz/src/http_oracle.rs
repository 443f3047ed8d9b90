//! The HTTP/1.1 framing oracle: the same bytes on one connection to our server
//! (`DeviceApi::serve`) and to hyper's HTTP/1 server, and a verdict on whether ours split them
//! into the same requests.
//!
//! hyper hands its service each request it framed; the service records it (method, target,
//! headers, whole body). What each of those requests should get from the device API is known
//! without any framing: the axum router ([`DeviceApi::router`]) answers hyper's requests, and
//! `serve` answers through the same `DeviceApi::respond`. So ours framed the bytes as hyper did
//! exactly when its responses, in order, are the router's answers to hyper's requests (status
//! and body). Ours may instead refuse, once, at the end: `400`, `413`, `431` or `501` with
//! `connection: close`, no body, and the connection closed. Anything else is a disagreement:
//!
//! - [`Kind::Split`]: response `i` is not the answer to hyper's request `i`: the two split the
//!   stream differently (the request-smuggling shape);
//! - [`Kind::Lenient`]: ours answered more requests than hyper framed (hyper refused one, or
//!   found it incomplete, where ours decided a request);
//! - [`Kind::Dropped`]: ours closed without answering a request hyper framed, and without a
//!   refusal.
//!
//! The API must answer the same request the same way twice (no flood quotas, no state a
//! request can change: no credentials the inputs could hold, no `cipher_form`).
//!
//! This file is shared, not a crate: `ddns-fuzz`'s `http_framing` target and ingest's
//! `tests/http_differential.rs` (through `#[path]`) include it, so it uses nothing but the
//! crates both have.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use bytes::Bytes;
use ddns_ingest::DeviceApi;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// How long one side may take with one input (loopback: milliseconds).
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A request as hyper framed it.
#[derive(Clone, Debug)]
pub struct Framed {
    /// Its method.
    pub method: Method,
    /// Its request target.
    pub target: String,
    /// Its version.
    pub version: Version,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Bytes,
}

/// One response of ours: status, whether it closes, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    /// Its status.
    pub status: StatusCode,
    /// It says `connection: close`.
    pub close: bool,
    /// Its body (empty for an answer to `HEAD`).
    pub body: Vec<u8>,
}

impl Answered {
    /// One of the refusals ours sends for framing it will not serve, before closing.
    fn is_refusal(&self) -> bool {
        [400, 413, 431, 501].contains(&self.status.as_u16()) && self.close && self.body.is_empty()
    }
}

/// How the two servers' framing differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A response that answers another request than hyper's at the same place.
    Split,
    /// More requests answered than hyper framed.
    Lenient,
    /// Fewer, without a refusal.
    Dropped,
}

/// A disagreement, with what each side made of the bytes.
#[derive(Clone, Debug)]
pub struct Disagreement {
    /// Its kind.
    pub kind: Kind,
    /// What hyper framed.
    pub hyper: Vec<Framed>,
    /// What ours answered.
    pub ours: Vec<Answered>,
    /// The router's answers to hyper's requests.
    pub expected: Vec<(StatusCode, Vec<u8>)>,
    /// Why hyper ended the connection, if it ended it with an error (what it refused).
    pub hyper_error: Option<String>,
    /// The index of ours' first answer that is not hyper's (or of the first request ours
    /// dropped).
    pub at: usize,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:?} at #{} (hyper: {:?}) on {:?}:",
            self.kind,
            self.at,
            self.hyper_error,
            String::from_utf8_lossy(&self.bytes)
        )?;
        for (i, framed) in self.hyper.iter().enumerate() {
            writeln!(
                f,
                "  hyper #{i}: {} {} {:?} body {:?} -> expected {:?}",
                framed.method,
                framed.target,
                framed.version,
                String::from_utf8_lossy(&framed.body),
                self.expected
                    .get(i)
                    .map(|(s, b)| (s.as_u16(), String::from_utf8_lossy(b).into_owned()))
            )?;
        }
        for (i, answered) in self.ours.iter().enumerate() {
            writeln!(
                f,
                "  ours  #{i}: {} close={} body {:?}",
                answered.status.as_u16(),
                answered.close,
                String::from_utf8_lossy(&answered.body)
            )?;
        }
        Ok(())
    }
}

/// Sends `bytes` (then end of stream) to hyper and to ours at `ours` (serving `api`), and
/// judges ours' framing against hyper's (see the module docs).
pub async fn differential(
    api: &Arc<DeviceApi>,
    ours: SocketAddr,
    bytes: &[u8],
) -> Result<(), Box<Disagreement>> {
    let (hyper, hyper_error) = hyper_framing(bytes).await;
    let mut expected = Vec::with_capacity(hyper.len());
    for framed in &hyper {
        expected.push(router_answer(api, framed).await);
    }
    let heads: Vec<bool> = hyper.iter().map(|f| f.method == Method::HEAD).collect();
    let (answered, reset) = our_answers(ours, bytes, &heads).await;
    let disagree = |kind, at| {
        Err(Box::new(Disagreement {
            kind,
            at,
            bytes: bytes.to_vec(),
            hyper: hyper.clone(),
            ours: answered.clone(),
            expected: expected.clone(),
            hyper_error: hyper_error.clone(),
        }))
    };
    for (i, ours) in answered.iter().enumerate() {
        if expected
            .get(i)
            .is_some_and(|(status, body)| (ours.status, &ours.body) == (*status, body))
        {
            continue;
        }
        if i + 1 == answered.len() && ours.is_refusal() {
            return Ok(());
        }
        return disagree(
            if i < hyper.len() {
                Kind::Split
            } else {
                Kind::Lenient
            },
            i,
        );
    }
    // A reset: ours closed with input unread, which it does only once it stops reading (a
    // refusal whose response the reset may have overtaken).
    if answered.len() < hyper.len() && !reset {
        return disagree(Kind::Dropped, answered.len());
    }
    Ok(())
}

/// The requests hyper's HTTP/1 server hands its service for `bytes` followed by end of stream
/// (half-close: it answers what it has before it closes), and the error it closed with.
pub async fn hyper_framing(bytes: &[u8]) -> (Vec<Framed>, Option<String>) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let record = record.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            record.lock().expect("not poisoned").push(Framed {
                method: parts.method,
                target: parts.uri.to_string(),
                version: parts.version,
                headers: parts.headers,
                body,
            });
            Ok::<_, hyper::Error>(Response::new(Empty::<Bytes>::new()))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .serve_connection(TokioIo::new(server), service);
    let client = async {
        let (mut read, mut write) = tokio::io::split(&mut client);
        let send = async {
            let _ = write.write_all(bytes).await;
            let _ = write.shutdown().await;
        };
        let drain = async {
            let mut sink = Vec::new();
            let _ = read.read_to_end(&mut sink).await;
        };
        tokio::join!(send, drain);
    };
    let both = async { tokio::join!(connection, client).0 };
    let verdict = tokio::time::timeout(IO_TIMEOUT, both)
        .await
        .expect("hyper answers within the timeout");
    let framed = seen.lock().expect("not poisoned").clone();
    (framed, verdict.err().map(|error| error.to_string()))
}

/// What the router answers `framed`: its status and body.
async fn router_answer(api: &Arc<DeviceApi>, framed: &Framed) -> (StatusCode, Vec<u8>) {
    let mut request = Request::builder()
        .method(framed.method.clone())
        .uri(&framed.target)
        .version(framed.version)
        .body(Body::from(framed.body.clone()))
        .expect("hyper's request parts make a request");
    *request.headers_mut() = framed.headers.clone();
    let response = api
        .clone()
        .router()
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))))
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the router's body reads");
    let body = if framed.method == Method::HEAD {
        Vec::new()
    } else {
        body.to_vec()
    };
    (status, body)
}

/// Our server's responses to `bytes` followed by end of stream (`heads[i]`: response `i`
/// answers a `HEAD`, so has no body), and whether the connection ended in a reset.
pub async fn our_answers(addr: SocketAddr, bytes: &[u8], heads: &[bool]) -> (Vec<Answered>, bool) {
    let stream = TcpStream::connect(addr).await.expect("ours accepts");
    let (mut read, mut write) = stream.into_split();
    let send = async {
        let _ = write.write_all(bytes).await;
        let _ = write.shutdown().await;
    };
    let receive = async {
        let mut received = Vec::new();
        let mut reset = false;
        loop {
            match read.read_buf(&mut received).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {
                    reset = true;
                    break;
                }
            }
        }
        (received, reset)
    };
    let ((), (received, reset)) =
        tokio::time::timeout(IO_TIMEOUT, async { tokio::join!(send, receive) })
            .await
            .expect("ours answers and closes within the timeout");
    (parse_responses(&received, heads), reset)
}

/// The responses in `bytes`, as ours writes them (always `content-length`); what does not
/// parse as one ends the list as a [`GARBLED`] answer holding the rest.
fn parse_responses(mut bytes: &[u8], heads: &[bool]) -> Vec<Answered> {
    let mut answered = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head_len)) = response.parse(bytes) else {
            answered.push(garbled(bytes));
            break;
        };
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) else {
            answered.push(garbled(bytes));
            break;
        };
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let status = StatusCode::from_u16(response.code.unwrap_or(0)).unwrap_or(GARBLED);
        let body_len = if heads.get(answered.len()) == Some(&true) {
            0
        } else {
            length
        };
        let Some(body) = bytes.get(head_len..head_len + body_len) else {
            answered.push(garbled(bytes));
            break;
        };
        let body = body.to_vec();
        bytes = &bytes[head_len + body_len..];
        answered.push(Answered {
            status,
            close,
            body,
        });
    }
    answered
}

/// The status standing for bytes that are not a response as ours writes them (or one cut
/// short): it matches no answer and is no refusal.
const GARBLED: StatusCode = match StatusCode::from_u16(599) {
    Ok(status) => status,
    Err(_) => panic!("599 is a status code"),
};

fn garbled(bytes: &[u8]) -> Answered {
    Answered {
        status: GARBLED,
        close: true,
        body: bytes.to_vec(),
    }
}
