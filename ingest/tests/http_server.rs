//! `DeviceApi::serve`, the device API's own HTTP/1.1 server, over real sockets: it answers
//! exactly what the axum router answers, and frames HTTP as hyper would (keep-alive,
//! pipelining, HTTP/1.0, bodies, limits, shutdown).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use ddns_core::{Fqdn, LiveZone, ZoneApex};
use ddns_ingest::{DeviceApi, FloodConfig, IngestConfig, VendorConfig, VendorKey};
use ddns_log::{EventLog, MemLog};
use ddns_projector::Projector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tower::ServiceExt;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

struct Server {
    api: Arc<DeviceApi>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn api(cipher_form: bool) -> (Arc<DeviceApi>, tempfile::TempDir) {
    api_with(cipher_form, 0).await
}

async fn api_with(
    cipher_form: bool,
    max_connections: usize,
) -> (Arc<DeviceApi>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    let apex = ZoneApex::with_defaults(Fqdn::parse("dyn.example").expect("valid"), 60);
    let projector = Projector::open(dir.path(), Arc::new(LiveZone::new(vec![apex])), log.clone())
        .expect("opens");
    let view = projector.view();
    tokio::spawn(projector.run());
    let config = IngestConfig {
        flood: FloodConfig {
            device_burst: 50,
            ..FloodConfig::default()
        },
        cipher_form,
        max_connections,
        ..IngestConfig::default()
    };
    let vendors = [VendorConfig {
        name: "acme".into(),
        zone: "dyn.example".into(),
        keys: vec![VendorKey {
            id: 1,
            secret_hex: KEY.into(),
        }],
        max_age_secs: None,
        fields: vec!["fw".into()],
    }];
    let api = DeviceApi::new(&config, &vendors, log, view).expect("valid config");
    (Arc::new(api), dir)
}

async fn server() -> Server {
    server_with(0).await
}

async fn server_with(max_connections: usize) -> Server {
    let (api, dir) = api_with(false, max_connections).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(api.clone().serve(listener, async {
        let _ = stopped.await;
    }));
    Server {
        api,
        addr,
        stop: Some(stop),
        served,
        _dir: dir,
    }
}

fn token(api: &DeviceApi, mac: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    api.tokens().seal("acme", mac, now).expect("seals")
}

/// One parsed response: status, headers (names lowercase), body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A raw client: writes bytes, reads responses (`head_only` for answers to HEAD).
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connects"),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
    }

    async fn get(&mut self, target: &str) -> Response {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await;
        self.response(false).await.expect("a response")
    }

    /// The next response, or `None` if the server closed the connection first.
    async fn response(&mut self, head_only: bool) -> Option<Response> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(head_len)) = parsed.parse(&self.buf) {
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let status = parsed.code.expect("a status");
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .map(|(_, v)| v.parse().expect("a length"))
                    .expect("content-length");
                let body_len = if head_only { 0 } else { length };
                if self.buf.len() >= head_len + body_len {
                    let body = String::from_utf8(self.buf[head_len..head_len + body_len].to_vec())
                        .expect("utf-8");
                    self.buf.drain(..head_len + body_len);
                    return Some(Response {
                        status,
                        headers,
                        body,
                    });
                }
            }
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("a response within 10 s");
            match read {
                Ok(0) | Err(_) => {
                    assert!(self.buf.is_empty(), "closed mid-response: {:?}", self.buf);
                    return None;
                }
                Ok(_) => {}
            }
        }
    }

    /// True once the server has closed the connection (and sent nothing more).
    async fn closed(&mut self) -> bool {
        self.response(false).await.is_none()
    }
}

/// The same requests, in the same order, to two fresh APIs: one through `serve` over a
/// socket, one through the axum router. Every status and body must match.
#[tokio::test]
async fn answers_what_the_router_answers() {
    let served = server().await;
    let (routed, _dir) = api(false).await;
    let router = routed
        .clone()
        .router()
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let mut client = Client::connect(served.addr).await;
    // Tokens of both APIs open with either (the same key).
    let a = token(&served.api, "AA:00");
    let b = token(&served.api, "BB:00");
    let targets = [
        format!("/add.aspx?mac={a}&dm=cam&myip=192.0.2.1"),
        format!("/add.aspx?mac={a}&dm=cam&myip=192.0.2.1"),
        format!("/add.aspx?mac={b}&dm=cam&myip=192.0.2.2"),
        format!("/add.aspx?mac={b}&dm=-bad&myip=192.0.2.2"),
        format!("/update.aspx?mac={a}&myip=192.0.2.9&fw=1.2"),
        format!("/update.aspx?mac={a}&myip=192.0.2.9"),
        format!("/update.aspx?mac={a}&myip=not-an-ip"),
        format!("/update.aspx?mac={b}&myip=192.0.2.3"),
        format!("/update.aspx?mac={a}"),
        format!("/ipcheck.aspx?mac={a}"),
        "/ipdetect.aspx".to_owned(),
        "/update.aspx?mac=garbage&myip=192.0.2.1".to_owned(),
        "/update.aspx".to_owned(),
        format!("/remove.aspx?mac={a}"),
        format!("/remove.aspx?mac={a}"),
        "/cipher.aspx?mac=AA:00".to_owned(),
        "/nope".to_owned(),
        "/".to_owned(),
    ];
    for target in &targets {
        let ours = client.get(target).await;
        let theirs = router
            .clone()
            .oneshot(Request::get(target).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = theirs.status().as_u16();
        let body = axum::body::to_bytes(theirs.into_body(), 1 << 16)
            .await
            .expect("body");
        assert_eq!(
            (ours.status, ours.body.as_str()),
            (status, std::str::from_utf8(&body).expect("utf-8")),
            "{target:.60}"
        );
        if ours.status == 200 {
            assert_eq!(
                ours.header("content-type"),
                Some("text/plain; charset=utf-8")
            );
        }
        assert!(ours.header("date").is_some_and(|d| d.ends_with(" GMT")));
    }
    // Another method on a known path.
    client
        .send(b"POST /update.aspx HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        .await;
    let refused = client.response(false).await.expect("a response");
    assert_eq!(refused.status, 405);
    assert_eq!(refused.header("allow"), Some("GET,HEAD"));
    // The ACME paths take POST only, and read the body: a JSON one pipelined behind one that
    // is not (400) gets as far as the credentials (401).
    client.send(b"GET /present HTTP/1.1\r\n\r\n").await;
    let refused = client.response(false).await.expect("a response");
    assert_eq!(refused.status, 405);
    assert_eq!(refused.header("allow"), Some("POST"));
    let json = br#"{"fqdn":"_acme-challenge.cam.dyn.example.","value":"v"}"#;
    let mut requests = b"POST /present HTTP/1.1\r\nContent-Length: 8\r\n\r\nnot json".to_vec();
    requests.extend_from_slice(
        format!(
            "POST /cleanup HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            json.len()
        )
        .as_bytes(),
    );
    requests.extend_from_slice(json);
    client.send(&requests).await;
    let malformed = client.response(false).await.expect("a response");
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    let unauthorized = client.response(false).await.expect("a response");
    assert_eq!(unauthorized.status, 401, "{}", unauthorized.body);
    assert_eq!(
        unauthorized.header("www-authenticate"),
        Some("Basic realm=\"ddnsd\"")
    );
    // The connection survived all of it.
    assert_eq!(client.get("/ipdetect.aspx").await.body, "127.0.0.1");
}

#[tokio::test]
async fn keep_alive_pipelining_and_partial_requests() {
    let server = server().await;
    let mut client = Client::connect(server.addr).await;
    // Two requests in one write: two responses, in order.
    client
        .send(b"GET /ipdetect.aspx HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n")
        .await;
    assert_eq!(client.response(false).await.expect("first").status, 200);
    assert_eq!(client.response(false).await.expect("second").status, 404);
    // One request in pieces, with a body to skip.
    for piece in [
        &b"GET /ipdetect.aspx HT"[..],
        b"TP/1.1\r\nX-Forwarded-For: 198.51.100.1\r\nContent-",
        b"Length: 4\r\n\r\nab",
        b"cd",
    ] {
        client.send(piece).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = client.response(false).await.expect("a response");
    assert_eq!(
        answer.body, "127.0.0.1",
        "X-Forwarded-For from an untrusted peer is ignored"
    );
    // HEAD: the headers of the GET, no body; the connection goes on.
    client.send(b"HEAD /ipdetect.aspx HTTP/1.1\r\n\r\n").await;
    let head = client.response(true).await.expect("a response");
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("9"))
    );
    assert_eq!(client.get("/ipdetect.aspx").await.status, 200);
    // Connection: close is honoured.
    client
        .send(b"GET /ipdetect.aspx HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    let last = client.response(false).await.expect("a response");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(client.closed().await);
}

#[tokio::test]
async fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = server().await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(b"GET /ipdetect.aspx HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let kept = client.response(false).await.expect("a response");
    assert_eq!(kept.header("connection"), Some("keep-alive"));
    client.send(b"GET /ipdetect.aspx HTTP/1.0\r\n\r\n").await;
    assert_eq!(
        client.response(false).await.expect("a response").status,
        200
    );
    assert!(client.closed().await);
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_refused_and_closed() {
    let server = server().await;
    let cases: [(Vec<u8>, u16); 4] = [
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (
            format!(
                "GET /ipdetect.aspx HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                "a".repeat(20_000)
            )
            .into_bytes(),
            431,
        ),
        (
            b"GET /ipdetect.aspx HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"GET /ipdetect.aspx HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            501,
        ),
    ];
    for (request, status) in cases {
        let mut client = Client::connect(server.addr).await;
        client.send(&request).await;
        let refused = client.response(false).await.expect("a response");
        assert_eq!(refused.status, status);
        assert_eq!(refused.header("connection"), Some("close"));
        assert!(client.closed().await);
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let mut server = server().await;
    let mut idle = Client::connect(server.addr).await;
    assert_eq!(idle.get("/ipdetect.aspx").await.status, 200);
    server
        .stop
        .take()
        .expect("running")
        .send(())
        .expect("serving");
    tokio::time::timeout(Duration::from_secs(10), &mut server.served)
        .await
        .expect("returns once connections are closed")
        .expect("no panic")
        .expect("no error");
    assert!(idle.closed().await);
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn a_connection_idle_past_the_idle_timeout_is_closed() {
    let server = server().await;
    let mut idle = Client::connect(server.addr).await;
    assert_eq!(idle.get("/ipdetect.aspx").await.status, 200);
    // From here on the clock only moves when every task waits, straight to the next timer:
    // the server's idle timer, which must fire before the read's own limit.
    tokio::time::pause();
    let since = tokio::time::Instant::now();
    let mut byte = [0u8; 1];
    let limit = ddns_ingest::IDLE_TIMEOUT * 2;
    let read = tokio::time::timeout(limit, idle.stream.read(&mut byte))
        .await
        .expect("closed by the server before twice its idle timeout")
        .expect("a clean close");
    assert_eq!(read, 0, "the idle connection is closed, not answered");
    assert!(
        since.elapsed() >= ddns_ingest::IDLE_TIMEOUT - Duration::from_secs(1),
        "closed after {:?}, before the idle timeout",
        since.elapsed()
    );
    // A new connection is served as usual.
    let mut fresh = Client::connect(server.addr).await;
    assert_eq!(fresh.get("/ipdetect.aspx").await.status, 200);
}

#[tokio::test]
async fn past_the_connection_cap_the_longest_idle_connection_makes_room() {
    let server = server_with(4).await;
    // Four idle connections fill the cap; the first one has waited longest.
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut client = Client::connect(server.addr).await;
        // A request first, so the server has surely accepted it before the next one.
        assert_eq!(client.get("/ipdetect.aspx").await.body, "127.0.0.1");
        idle.push(client);
    }
    // A fifth client is served; the oldest idle connection was closed for it.
    let mut fifth = Client::connect(server.addr).await;
    assert_eq!(fifth.get("/ipdetect.aspx").await.body, "127.0.0.1");
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), idle[0].stream.read(&mut byte))
        .await
        .expect("closed in time");
    assert_eq!(
        closed.expect("a clean close"),
        0,
        "the oldest idle connection was closed"
    );
    // The others are still served.
    for client in &mut idle[1..] {
        assert_eq!(client.get("/ipdetect.aspx").await.body, "127.0.0.1");
    }
}
