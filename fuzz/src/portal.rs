//! The portal's forms and queries ([`Portal::router`]): sign-up, sign-in, groups, hosts,
//! editing, tokens, passwords, the availability checks, as a signed-in user with the
//! session's CSRF token, over a real log and fold.
//!
//! Checked: never a `5xx` (a form that does not parse is the form again with what is wrong,
//! or a `4xx`), a body under 1 MiB, and nothing hangs.
//! Input: the first line is `METHOD /path?query`, the rest the body; `@CSRF` anywhere stands
//! for the session's form token (`POST /hosts`, then `csrf=@CSRF&host=cam&…`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use ddns_core::{Fqdn, LiveZone, ZoneApex};
use ddns_log::MemLog;
use ddns_portal::{LogDirectory, Portal, PortalConfig};
use ddns_projector::{Committer, Projector};
use tower::ServiceExt;

use crate::{ingest, runtime};

/// Largest page the portal may send.
const PAGE_MAX: usize = 1 << 20;

/// A browser on the portal: its cookie and the form token of the last page with a form.
struct Browser {
    router: Router,
    cookie: Option<String>,
    csrf: String,
}

/// A page: status, body.
struct Page {
    status: StatusCode,
    body: String,
}

impl Browser {
    async fn send(&mut self, mut request: Request<Body>) -> Page {
        if let Some(cookie) = &self.cookie
            && let Ok(cookie) = HeaderValue::from_str(cookie)
        {
            request.headers_mut().insert(header::COOKIE, cookie);
        }
        request
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static("portal.test"));
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(ingest::PEER)));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let set_cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), PAGE_MAX)
            .await
            .unwrap_or_else(|error| panic!("a page over {PAGE_MAX} bytes ({error})"));
        let body = String::from_utf8(body.to_vec()).expect("a UTF-8 page");
        if let Some(set) = set_cookie {
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            self.cookie = (!set.contains("Max-Age=0")).then_some(pair);
        }
        let marker = "name=\"csrf\" value=\"";
        if let Some(at) = body.find(marker) {
            let start = at + marker.len();
            self.csrf = body[start..].chars().take_while(|&c| c != '"').collect();
        }
        Page { status, body }
    }

    async fn get(&mut self, uri: &str) -> Page {
        self.send(
            Request::get(uri)
                .body(Body::empty())
                .expect("a valid request"),
        )
        .await
    }

    async fn post(&mut self, uri: &str, fields: &[(&str, &str)]) -> Page {
        let mut body = format!("csrf={}", self.csrf);
        for (name, value) in fields {
            body.push_str(&format!("&{name}={value}"));
        }
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("a valid request");
        self.send(request).await
    }

    /// Signs up a new account and signs in with it.
    async fn new_user(&mut self) {
        static USERS: AtomicU32 = AtomicU32::new(0);
        let user = format!("fuzzer{}", USERS.fetch_add(1, Ordering::Relaxed));
        self.cookie = None;
        self.get("/signup").await;
        self.get(&format!("/check/user?user_id={user}")).await;
        let password = ingest::PASSWORD;
        let email = format!("{user}@example.com");
        let page = self
            .post(
                "/signup",
                &[
                    ("user_id", &user),
                    ("password", password),
                    ("password_confirm", password),
                    ("email", &email),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::CREATED, "sign-up: {}", page.body);
        self.get("/").await;
        let page = self
            .post("/login", &[("user_id", &user), ("password", password)])
            .await;
        assert_eq!(page.status, StatusCode::OK, "sign-in: {}", page.body);
        self.get("/hosts").await;
    }
}

fn browser() -> &'static Mutex<Browser> {
    static BROWSER: OnceLock<Mutex<Browser>> = OnceLock::new();
    BROWSER.get_or_init(|| {
        runtime::setup(async {
            let zones = vec![Fqdn::parse(ingest::ZONE).expect("a valid zone")];
            let mem = MemLog::new(2);
            let apexes = zones
                .iter()
                .map(|z| ZoneApex::with_defaults(z.clone(), 60))
                .collect();
            let projector = Projector::open(
                &runtime::scratch_dir("portal"),
                Arc::new(LiveZone::new(apexes)),
                Arc::new(mem.clone()),
            )
            .expect("the projector opens");
            let view = projector.view();
            runtime::spawn(projector.run());
            let committer = Arc::new(Committer::new(Arc::new(mem), view, Duration::from_secs(10)));
            let directory = Arc::new(LogDirectory::new(committer, zones));
            let config = PortalConfig {
                zones: vec![ingest::ZONE.to_owned()],
                // Sign-in guesses from the fuzzer must not lock the fuzzer's own user out.
                login_failures_max: u32::MAX,
                login_source_failures_max: u32::MAX,
                ..PortalConfig::default()
            };
            let portal = Portal::new(config, directory)
                .expect("a valid config")
                .with_password_hasher(ingest::cheap_hasher());
            let mut browser = Browser {
                router: portal.router(),
                cookie: None,
                csrf: String::new(),
            };
            browser.new_user().await;
            Mutex::new(browser)
        })
    })
}

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let (first, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let mut first = first.splitn(2, |&b| b == b' ');
    let Ok(method) = Method::from_bytes(first.next().unwrap_or_default()) else {
        return;
    };
    let mut browser = browser().lock().unwrap_or_else(|p| p.into_inner());
    let csrf = browser.csrf.clone();
    let target = String::from_utf8_lossy(first.next().unwrap_or_default()).replace("@CSRF", &csrf);
    let mut uri = String::from("/");
    ingest::uri_encode(&mut uri, target.trim_start_matches('/').as_bytes());
    let body = String::from_utf8_lossy(body).replace("@CSRF", &csrf);
    let Ok(request) = Request::builder()
        .method(method)
        .uri(&uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
    else {
        return;
    };
    let page = runtime::block_on(browser.send(request));
    assert!(
        !page.status.is_server_error(),
        "{uri} answered {}: {}",
        page.status,
        page.body
    );
    // Signed out, the account gone or its password changed: a new user for the next input.
    if browser.cookie.is_none() || uri.contains("logout") || uri.starts_with("/account") {
        runtime::setup(browser.new_user());
    }
}
