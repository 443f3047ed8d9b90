//! HTTP-level tests of the portal, through the router without a socket (`oneshot`), with the
//! real directory behind it (a [`Backend`]: an in-memory log and a real projector folding it)
//! and cheap argon2 parameters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use ddns_core::{EventBody, Fqdn, HostStatus, Outcome};
use ddns_ingest::PasswordHasher;
use tower::ServiceExt;

use crate::fixture::Backend;
use crate::rules::msg;
use crate::{Portal, PortalConfig, SignupMode};

const HOST: &str = "portal.test";
const ZONE: &str = "dyn.example";

fn config() -> PortalConfig {
    PortalConfig {
        zones: vec![ZONE.to_owned()],
        ..PortalConfig::default()
    }
}

/// argon2 at a cost a debug build runs in a millisecond (stored hashes name their own cost).
fn cheap_hasher() -> Arc<PasswordHasher> {
    Arc::new(PasswordHasher::with_params(
        argon2::Params::new(64, 1, 1, None).expect("64 KiB, t = 1, p = 1 are valid"),
    ))
}

/// A backend for the zones `config` offers (the first one when it offers none).
async fn backend_for(config: &PortalConfig) -> Backend {
    let zones: Vec<&str> = match config.zones.is_empty() {
        true => vec![ZONE],
        false => config.zones.iter().map(String::as_str).collect(),
    };
    Backend::new(&zones).await
}

/// The portal's router over a new backend; keep the backend until the test ends.
async fn app_with(config: PortalConfig) -> (Router, Backend) {
    let backend = backend_for(&config).await;
    let portal = Portal::new(config, backend.directory.clone())
        .expect("test config is valid")
        .with_password_hasher(cheap_hasher());
    (portal.router(), backend)
}

async fn app() -> (Router, Backend) {
    app_with(config()).await
}

fn fqdn(name: &str) -> Fqdn {
    Fqdn::parse(name).expect("test names are valid")
}

/// A response, read.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn set_cookie(&self) -> Option<&str> {
        self.headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
    }

    /// The form token on this page.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("page has a form") + marker.len();
        self.body[start..start + 32].to_owned()
    }

    #[track_caller]
    fn has(&self, text: &str) -> &Page {
        assert!(
            self.body.contains(text),
            "expected {text:?} in a {} page:\n{}",
            self.status,
            self.body
        );
        self
    }

    #[track_caller]
    fn lacks(&self, text: &str) -> &Page {
        assert!(
            !self.body.contains(text),
            "did not expect {text:?} in:\n{}",
            self.body
        );
        self
    }

    #[track_caller]
    fn status(&self, status: StatusCode) -> &Page {
        assert_eq!(self.status, status, "body:\n{}", self.body);
        self
    }
}

/// A browser: keeps the session cookie, sends same-origin headers on POSTs like a real one.
#[derive(Clone)]
struct Browser {
    router: Router,
    cookie: Option<String>,
    source: Option<SocketAddr>,
    csrf: String,
}

impl Browser {
    fn new(router: &Router) -> Browser {
        Browser {
            router: router.clone(),
            cookie: None,
            source: None,
            csrf: String::new(),
        }
    }

    async fn send(&mut self, mut request: Request<Body>) -> Page {
        if let Some(cookie) = &self.cookie {
            request.headers_mut().insert(
                header::COOKIE,
                cookie.parse().expect("cookie is a header value"),
            );
        }
        request
            .headers_mut()
            .insert(header::HOST, HOST.parse().expect("host is a header value"));
        if let Some(source) = self.source {
            request.extensions_mut().insert(ConnectInfo(source));
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body reads");
        let page = Page {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
        };
        if let Some(set) = page.set_cookie() {
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            self.cookie = if set.contains("Max-Age=0") {
                None
            } else {
                Some(pair)
            };
        }
        if page.body.contains("name=\"csrf\" value=\"") {
            self.csrf = page.csrf();
        }
        page
    }

    async fn get(&mut self, uri: &str) -> Page {
        let request = Request::get(uri)
            .body(Body::empty())
            .expect("valid request");
        self.send(request).await
    }

    /// A POST as a browser sends it from one of our pages, with this browser's form token.
    async fn post(&mut self, uri: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_with(uri, &all, &[("origin", "http://portal.test")])
            .await
    }

    async fn post_with(
        &mut self,
        uri: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let body = serde_urlencoded::to_string(fields).expect("fields encode");
        let mut request =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(body)).expect("valid request"))
            .await
    }

    async fn sign_up(&mut self, user_id: &str, password: &str, email: &str) -> Page {
        self.get("/signup").await;
        self.get(&format!("/check/user?user_id={user_id}")).await;
        self.post(
            "/signup",
            &[
                ("user_id", user_id),
                ("password", password),
                ("password_confirm", password),
                ("email", email),
            ],
        )
        .await
    }

    async fn sign_in(&mut self, user_id: &str, password: &str) -> Page {
        self.get("/").await;
        self.post("/login", &[("user_id", user_id), ("password", password)])
            .await
    }

    /// A new browser with a new account, signed in.
    async fn user(router: &Router, user_id: &str) -> Browser {
        let mut browser = Browser::new(router);
        browser
            .sign_up(user_id, PASSWORD, &format!("{user_id}@example.com"))
            .await
            .status(StatusCode::CREATED);
        browser
            .sign_in(user_id, PASSWORD)
            .await
            .status(StatusCode::OK);
        browser.get("/hosts").await.status(StatusCode::OK);
        browser
    }
}

const PASSWORD: &str = "tangerine-lamps-4";

/// `text` as the templates escape it for HTML.
fn escaped(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            '&' => out.push_str("&#38;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---- headers and cookies ----

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let (router, _backend) = app().await;
    let mut browser = Browser::new(&router);
    let mut pages = vec![
        browser.get("/").await,
        browser.get("/static/style.css").await,
        browser.get("/no/such/page").await,
        browser.get("/check/user?user_id=alice1").await,
    ];
    pages.push(browser.post("/login", &[("user_id", "x")]).await);
    pages.push(Browser::new(&router).post("/logout", &[]).await);
    for page in &pages {
        let h = &page.headers;
        assert_eq!(
            h["content-security-policy"],
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
    }
    assert_eq!(pages[1].headers["content-type"], "text/css; charset=utf-8");
    assert_eq!(pages[2].status, StatusCode::NOT_FOUND);
    assert!(!pages[0].body.contains("style="), "no inline styles");
    assert!(!pages[0].body.contains("<script"), "no scripts");
}

#[tokio::test]
async fn session_cookie_is_host_only_httponly_lax() {
    let (router, _backend) = app().await;
    let page = Browser::new(&router).get("/").await;
    let cookie = page.set_cookie().expect("a form page begins a session");
    assert!(cookie.starts_with("ddnsd_session="), "{cookie}");
    for flag in ["; Path=/", "; HttpOnly", "; SameSite=Lax"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.to_ascii_lowercase().contains("domain"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    let id = &cookie["ddnsd_session=".len()..cookie.find(';').expect("attributes")];
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn under_tls_the_cookie_is_secure_with_the_host_prefix() {
    let (router, _backend) = app_with(PortalConfig {
        tls: true,
        ..config()
    })
    .await;
    let mut browser = Browser::new(&router);
    let page = browser.get("/").await;
    let cookie = page.set_cookie().expect("a session");
    assert!(cookie.starts_with("__Host-ddnsd_session="), "{cookie}");
    assert!(cookie.contains("; Secure") && cookie.contains("; Path=/"));
    assert!(!cookie.to_ascii_lowercase().contains("domain"));
    // An http:// origin is another origin for an https portal.
    browser
        .post("/login", &[("user_id", "alice1"), ("password", "x")])
        .await
        .status(StatusCode::FORBIDDEN);
    let csrf = browser.csrf.clone();
    browser
        .post_with(
            "/login",
            &[("csrf", &csrf), ("user_id", "alice1"), ("password", "x")],
            &[("origin", "https://portal.test")],
        )
        .await
        .status(StatusCode::UNAUTHORIZED);
}

// ---- the duplicate check and sign-up ----

#[tokio::test]
async fn check_user_answers_both_ways_in_the_seeds_words() {
    let (router, _backend) = app().await;
    let mut browser = Browser::new(&router);
    let page = browser.get("/check/user?user_id=TestUser").await;
    page.status(StatusCode::OK);
    assert_eq!(page.body, "Not existed [TestUser]");
    assert_eq!(page.headers["content-type"], "text/plain; charset=utf-8");
    Browser::user(&router, "testuser").await;
    let page = browser.get("/check/user?user_id=TestUser").await;
    assert_eq!(page.body, "Already existed [TestUser]");
    let page = browser.get("/check/user?user_id=bad%20id").await;
    page.status(StatusCode::UNPROCESSABLE_ENTITY)
        .has(msg::USER_ID_INVALID);
}

#[tokio::test]
async fn sign_up_is_refused_without_the_duplicate_check() {
    let (router, backend) = app().await;
    let mut browser = Browser::new(&router);
    browser.get("/signup").await;
    let fields = [
        ("user_id", "alice1"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
        ("email", "alice@example.com"),
    ];
    browser
        .post("/signup", &fields)
        .await
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .has(msg::USER_ID_UNCHECKED);
    // Checked another ID: still refused.
    browser.get("/check/user?user_id=bobby1").await;
    browser
        .post("/signup", &fields)
        .await
        .has(msg::USER_ID_UNCHECKED);
    // Checked in another session: still refused.
    let mut other = Browser::new(&router);
    other.get("/check/user?user_id=alice1").await;
    browser
        .post("/signup", &fields)
        .await
        .has(msg::USER_ID_UNCHECKED);
    assert!(!backend.account_exists("alice1"));
    // The check page of /signup works without JavaScript and counts as the check.
    browser
        .get("/signup?user_id=Alice1")
        .await
        .has("Not existed [Alice1]");
    browser
        .post("/signup", &fields)
        .await
        .status(StatusCode::CREATED)
        .has("Account alice1 created");
    assert!(backend.account_exists("alice1"));
}

#[tokio::test]
async fn every_sign_up_rule_has_its_message() {
    let (router, _backend) = app().await;
    let mut browser = Browser::new(&router);
    browser.get("/signup").await;
    for bad_id in [
        "abcd",
        "a23456789012345678901",
        "bad id",
        "bad_id",
        "bäd123",
        "",
    ] {
        browser
            .post(
                "/signup",
                &[
                    ("user_id", bad_id),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                    ("email", "a@example.com"),
                ],
            )
            .await
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .has(msg::USER_ID_INVALID);
    }
    browser.get("/check/user?user_id=alice1").await;
    let long = "x".repeat(1025);
    for (password, confirm, message) in [
        ("abcd", "abcd", msg::PASSWORD_SHORT),
        (long.as_str(), long.as_str(), msg::PASSWORD_LONG),
        ("abcdefgh", "abcdefgi", msg::PASSWORD_MISMATCH),
        ("ALICE1", "ALICE1", msg::PASSWORD_IS_USER_ID),
        ("password1", "password1", msg::PASSWORD_COMMON),
        ("qwerty123", "qwerty123", msg::PASSWORD_COMMON),
    ] {
        browser
            .post(
                "/signup",
                &[
                    ("user_id", "alice1"),
                    ("password", password),
                    ("password_confirm", confirm),
                    ("email", "a@example.com"),
                ],
            )
            .await
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .has(message);
    }
    for email in [
        "",
        "alice",
        "alice@localhost",
        "a b@example.com",
        "alice@exa mple.com",
    ] {
        browser
            .post(
                "/signup",
                &[
                    ("user_id", "alice1"),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                    ("email", email),
                ],
            )
            .await
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .has(msg::EMAIL_INVALID);
    }
    // Five characters suffice; the check's answer still stands after the refusals.
    browser
        .post(
            "/signup",
            &[
                ("user_id", "alice1"),
                ("password", "x7!kq"),
                ("password_confirm", "x7!kq"),
                ("email", "alice@example.com"),
            ],
        )
        .await
        .status(StatusCode::CREATED);
}

#[tokio::test]
async fn the_seeds_three_sign_up_errors() {
    let (router, backend) = app().await;
    let mut first = Browser::new(&router);
    let mut second = Browser::new(&router);
    // Both check the same free ID; the first to submit gets it.
    first
        .get("/check/user?user_id=alice1")
        .await
        .has("Not existed");
    second
        .get("/check/user?user_id=alice1")
        .await
        .has("Not existed");
    second.get("/signup").await;
    first
        .sign_up("alice1", PASSWORD, "alice@example.com")
        .await
        .status(StatusCode::CREATED);
    second
        .post(
            "/signup",
            &[
                ("user_id", "alice1"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("email", "other@example.com"),
            ],
        )
        .await
        .status(StatusCode::CONFLICT)
        .has("USER ID Duplicate Error");
    Browser::new(&router)
        .sign_up("bobby1", PASSWORD, "ALICE@example.com")
        .await
        .status(StatusCode::CONFLICT)
        .has("USER EMAIL Duplicate Error");
    let mut third = Browser::new(&router);
    third.get("/check/user?user_id=carol1").await;
    third.get("/signup").await;
    // The log goes down: nothing can be appended, nothing read.
    backend.set_log_down(true);
    third
        .post(
            "/signup",
            &[
                ("user_id", "carol1"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("email", "carol@example.com"),
            ],
        )
        .await
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .has("INTERNAL ERROR");
    third
        .get("/check/user?user_id=carol1")
        .await
        .status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(!backend.account_exists("carol1"), "nothing was changed");
}

#[tokio::test]
async fn invite_only_sign_up_needs_a_code() {
    let (router, _backend) = app_with(PortalConfig {
        signup: SignupMode::Invite,
        invite_codes: vec!["7F3K-PLUM-22".into(), "second-code".into()],
        ..config()
    })
    .await;
    let mut browser = Browser::new(&router);
    browser.get("/signup").await.has("name=\"invite\"");
    browser.get("/check/user?user_id=alice1").await;
    let mut fields = vec![
        ("user_id", "alice1"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
        ("email", "alice@example.com"),
    ];
    browser
        .post("/signup", &fields)
        .await
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .has(msg::INVITE_INVALID);
    fields.push(("invite", "7F3K-PLUM-23"));
    browser
        .post("/signup", &fields)
        .await
        .has(msg::INVITE_INVALID);
    fields.pop();
    fields.push(("invite", "second-code"));
    browser
        .post("/signup", &fields)
        .await
        .status(StatusCode::CREATED);
}

#[tokio::test]
async fn closed_sign_up_refuses_everyone() {
    let (router, backend) = app_with(PortalConfig {
        signup: SignupMode::Closed,
        ..config()
    })
    .await;
    let mut browser = Browser::new(&router);
    browser.get("/").await.lacks("href=\"/signup\"");
    browser
        .get("/signup")
        .await
        .status(StatusCode::FORBIDDEN)
        .has(msg::SIGNUP_CLOSED)
        .lacks("name=\"password\"");
    browser.get("/check/user?user_id=alice1").await;
    browser
        .post(
            "/signup",
            &[
                ("user_id", "alice1"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("email", "alice@example.com"),
            ],
        )
        .await
        .status(StatusCode::FORBIDDEN)
        .has(msg::SIGNUP_CLOSED);
    assert!(!backend.account_exists("alice1"));
}

#[tokio::test]
async fn invite_mode_without_codes_is_a_config_error() {
    let config = PortalConfig {
        signup: SignupMode::Invite,
        ..config()
    };
    let backend = backend_for(&config).await;
    let result = Portal::new(config, backend.directory.clone());
    assert!(matches!(result, Err(crate::ConfigError::NoInviteCode)));
    let result = Portal::new(PortalConfig::default(), backend.directory.clone());
    assert!(matches!(result, Err(crate::ConfigError::NoZone)));
}

// ---- signing in and out ----

#[tokio::test]
async fn sign_in_welcomes_with_the_brand_and_a_new_session_id() {
    let (router, _backend) = app_with(PortalConfig {
        brand: "RIFATRON".into(),
        ..config()
    })
    .await;
    let mut browser = Browser::new(&router);
    browser.sign_up("TestUser", PASSWORD, "t@example.com").await;
    browser.get("/").await;
    let before = browser.cookie.clone().expect("anonymous session");
    let page = browser
        .post("/login", &[("user_id", "testuser"), ("password", PASSWORD)])
        .await;
    page.status(StatusCode::OK)
        .has("Welcome to RIFATRON DDNS Service")
        .has("href=\"/hosts\"");
    let after = browser.cookie.clone().expect("signed-in session");
    assert_ne!(before, after, "a new session id at sign-in");
    // The pre-sign-in id is dead on the server.
    let mut planted = browser.clone();
    planted.cookie = Some(before);
    planted.get("/hosts").await.status(StatusCode::SEE_OTHER);
    browser.get("/hosts").await.status(StatusCode::OK);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let (router, _backend) = app().await;
    Browser::user(&router, "alice1").await;
    let mut browser = Browser::new(&router);
    let wrong = browser.sign_in("alice1", "not-the-password").await;
    let unknown = browser.sign_in("nobody1", "not-the-password").await;
    wrong
        .status(StatusCode::UNAUTHORIZED)
        .has(msg::LOGIN_FAILED);
    unknown
        .status(StatusCode::UNAUTHORIZED)
        .has(msg::LOGIN_FAILED);
    let strip = |page: &Page| {
        page.body
            .replace(&page.csrf(), "")
            .replace("alice1", "ID")
            .replace("nobody1", "ID")
    };
    assert_eq!(strip(&wrong), strip(&unknown));
}

#[tokio::test(start_paused = true)]
async fn sign_in_throttling_per_account_expires() {
    let (router, _backend) = app().await;
    Browser::user(&router, "alice1").await;
    let mut attacker = Browser::new(&router);
    for _ in 0..5 {
        attacker
            .sign_in("alice1", "guess-guess")
            .await
            .status(StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is refused, from anywhere, with the same words for a
    // throttled unknown account.
    let mut owner = Browser::new(&router);
    owner
        .sign_in("alice1", PASSWORD)
        .await
        .status(StatusCode::TOO_MANY_REQUESTS)
        .has(msg::LOGIN_THROTTLED);
    for _ in 0..5 {
        attacker.sign_in("ghost1", "guess-guess").await;
    }
    attacker
        .sign_in("ghost1", "guess-guess")
        .await
        .status(StatusCode::TOO_MANY_REQUESTS);
    // Not for good: after the window the owner signs in.
    tokio::time::advance(Duration::from_secs(15 * 60)).await;
    owner
        .sign_in("alice1", PASSWORD)
        .await
        .status(StatusCode::OK)
        .has("Welcome to ddnsd DDNS Service");
}

#[tokio::test(start_paused = true)]
async fn sign_in_throttling_per_source_address() {
    let (router, _backend) = app_with(PortalConfig {
        login_source_failures_max: 3,
        login_window_secs: 60,
        ..config()
    })
    .await;
    Browser::user(&router, "alice1").await;
    let mut sprayer = Browser::new(&router);
    sprayer.source = Some("198.51.100.7:40000".parse().expect("literal"));
    for user in ["usera1", "userb1", "userc1"] {
        sprayer
            .sign_in(user, "guess-guess")
            .await
            .status(StatusCode::UNAUTHORIZED);
    }
    sprayer
        .sign_in("alice1", PASSWORD)
        .await
        .status(StatusCode::TOO_MANY_REQUESTS);
    let mut elsewhere = Browser::new(&router);
    elsewhere.source = Some("203.0.113.9:40000".parse().expect("literal"));
    elsewhere
        .sign_in("alice1", PASSWORD)
        .await
        .status(StatusCode::OK);
    tokio::time::advance(Duration::from_secs(60)).await;
    sprayer
        .sign_in("alice1", PASSWORD)
        .await
        .status(StatusCode::OK);
}

#[tokio::test]
async fn sign_out_ends_the_session_on_the_server() {
    let (router, _backend) = app().await;
    let mut browser = Browser::user(&router, "alice1").await;
    let stolen = browser.clone();
    let page = browser.post("/logout", &[]).await;
    page.status(StatusCode::SEE_OTHER);
    let cookie = page.set_cookie().expect("cookie cleared");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    // The old cookie (and its form token) no longer work.
    let mut stolen = stolen;
    stolen.get("/hosts").await.status(StatusCode::SEE_OTHER);
    stolen
        .post("/groups", &[("group", "brave")])
        .await
        .status(StatusCode::FORBIDDEN);
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_end() {
    let (router, _backend) = app().await;
    let mut browser = Browser::user(&router, "alice1").await;
    tokio::time::advance(Duration::from_secs(29 * 60)).await;
    browser.get("/hosts").await.status(StatusCode::OK);
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    browser.get("/hosts").await.status(StatusCode::SEE_OTHER);
}

// ---- CSRF and origin ----

#[tokio::test]
async fn posts_without_the_sessions_token_or_from_elsewhere_are_refused() {
    let (router, _backend) = app().await;
    let mut browser = Browser::user(&router, "alice1").await;
    let mut other = Browser::user(&router, "bobby1").await;
    let token = browser.csrf.clone();
    let others_token = other.csrf.clone();
    let same = [("origin", "http://portal.test")];
    // Missing, wrong, another session's.
    for fields in [
        vec![("group", "brave")],
        vec![("csrf", ""), ("group", "brave")],
        vec![
            ("csrf", "00000000000000000000000000000000"),
            ("group", "brave"),
        ],
        vec![("csrf", others_token.as_str()), ("group", "brave")],
        vec![("csrf", &token[..31]), ("group", "brave")],
    ] {
        browser
            .post_with("/groups", &fields, &same)
            .await
            .status(StatusCode::FORBIDDEN)
            .has(msg::FORBIDDEN);
    }
    // The right token from another site, or announced cross-site by the browser.
    let fields = [("csrf", token.as_str()), ("group", "brave")];
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("origin", "http://portal.test.evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![
            ("origin", "http://portal.test"),
            ("sec-fetch-site", "cross-site"),
        ],
    ] {
        browser
            .post_with("/groups", &fields, &headers)
            .await
            .status(StatusCode::FORBIDDEN);
    }
    // Nothing happened.
    browser
        .get("/hosts")
        .await
        .has("<td id=\"group_count\">0</td>");
    // A non-browser client (no Origin, no Sec-Fetch-Site) with the token passes, and so does
    // a browser that says same-origin.
    browser
        .post_with("/groups", &fields, &[])
        .await
        .status(StatusCode::CREATED);
    let fields = [("csrf", token.as_str()), ("group", "brave2")];
    browser
        .post_with("/groups", &fields, &[("sec-fetch-site", "same-origin")])
        .await
        .status(StatusCode::CREATED);
    // Other's own token works for other.
    other
        .post("/groups", &[("group", "other")])
        .await
        .status(StatusCode::CREATED);
}

#[tokio::test]
async fn no_state_change_on_get() {
    let (router, _backend) = app().await;
    let mut browser = Browser::user(&router, "alice1").await;
    for uri in [
        "/logout",
        "/groups?group=brave",
        "/account/remove",
        "/account/password",
        "/hosts/x.dyn.example/remove",
        "/login?user_id=alice1&password=x",
    ] {
        let page = browser.get(uri).await;
        assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED, "GET {uri}");
    }
    browser.get("/hosts").await.status(StatusCode::OK);
}

// ---- groups and hosts ----

#[tokio::test]
async fn groups_and_their_duplicate_check() {
    let (router, _backend) = app().await;
    let mut alice = Browser::user(&router, "alice1").await;
    let page = alice.get("/check/group?group=brave").await;
    assert_eq!(page.body, "[Group Name] => Not existed [brave.dyn.example]");
    alice
        .post("/groups", &[("group", "Brave")])
        .await
        .status(StatusCode::CREATED)
        .has("Group brave.dyn.example registered.");
    let page = alice.get("/check/group?group=brave").await;
    assert_eq!(
        page.body,
        "[Group Name] => Already existed [brave.dyn.example]"
    );
    alice.get("/hosts?check_group=brave").await.has(&escaped(
        "[Group Name] => Already existed [brave.dyn.example]",
    ));
    // Globally unique.
    let mut bob = Browser::user(&router, "bobby1").await;
    bob.post("/groups", &[("group", "brave")])
        .await
        .status(StatusCode::CONFLICT)
        .has(&escaped(
            "[Group Name] => Already existed [brave.dyn.example]",
        ));
    for bad in ["", "a b", "-x", "a.b", &"x".repeat(64)] {
        bob.post("/groups", &[("group", bad)])
            .await
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .has(msg::GROUP_INVALID);
    }
    bob.get("/check/group?group=a.b")
        .await
        .status(StatusCode::UNPROCESSABLE_ENTITY);
    bob.post("/groups", &[("group", "bob"), ("zone", "other.example")])
        .await
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .has(msg::NO_SUCH_ZONE);
    bob.get("/hosts").await.has("<td id=\"group_count\">0</td>");
}

#[tokio::test]
async fn hosts_with_group_use_on_and_off() {
    let (router, backend) = app().await;
    let mut alice = Browser::user(&router, "alice1").await;
    alice.post("/groups", &[("group", "brian")]).await;
    let page = alice.get("/check/host?host=rifa001&group=brian").await;
    assert_eq!(
        page.body,
        "[DNS Name] => Not existed [rifa001.brian.dyn.example]"
    );
    alice
        .post(
            "/hosts",
            &[
                ("host", "rifa001"),
                ("group", "brian"),
                ("host_password", "abc"),
            ],
        )
        .await
        .status(StatusCode::CREATED)
        .has("USER HOST REGISTRATION: rifa001.brian.dyn.example")
        .lacks("id=\"generated\"");
    let page = alice.get("/check/host?host=rifa001&group=brian").await;
    assert_eq!(
        page.body,
        "[DNS Name] => Already existed [rifa001.brian.dyn.example]"
    );
    alice
        .post(
            "/hosts",
            &[
                ("host", "dvr8"),
                ("group", ""),
                ("host_password", "abcdefgh"),
                ("port", "8080"),
            ],
        )
        .await
        .status(StatusCode::CREATED)
        .has("USER HOST REGISTRATION: dvr8.dyn.example");
    let hash = backend
        .host_password_hash(&fqdn("dvr8.dyn.example"))
        .expect("stored");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let page = alice.get("/hosts").await;
    page.has("<td id=\"host_count\">2</td>")
        .has("<td id=\"group_count\">1</td>")
        .has("rifa001.brian.dyn.example")
        .has("href=\"http://dvr8.dyn.example:8080/\"")
        .has("href=\"http://rifa001.brian.dyn.example/\"")
        .has("0000-00-00 00:00:00")
        .has("status-standby\">STANDBY");
    // Taken names: by another account's host, by a group, by a device.
    let mut bob = Browser::user(&router, "bobby1").await;
    backend.device_claims(ZONE, "cam42").await;
    for (host, group) in [("dvr8", ""), ("brian", ""), ("cam42", "")] {
        let name = format!("{host}.dyn.example");
        bob.post(
            "/hosts",
            &[("host", host), ("group", group), ("host_password", "abc")],
        )
        .await
        .status(StatusCode::CONFLICT)
        .has(&escaped(&format!("[DNS Name] => Already existed [{name}]")));
        assert_eq!(
            bob.get(&format!("/check/host?host={host}&group={group}"))
                .await
                .body,
            format!("[DNS Name] => Already existed [{name}]")
        );
    }
    assert_eq!(
        bob.get("/check/group?group=cam42").await.body,
        "[Group Name] => Already existed [cam42.dyn.example]"
    );
    // Someone else's group, and bad fields.
    bob.post("/hosts", &[("host", "x1"), ("group", "brian")])
        .await
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .has(msg::NO_SUCH_GROUP);
    for (fields, message) in [
        (vec![("host", "bad host")], msg::HOST_INVALID),
        (vec![("host", "")], msg::HOST_INVALID),
        (
            vec![("host", "ok1"), ("group", "bad group")],
            msg::GROUP_INVALID,
        ),
        (
            vec![("host", "ok1"), ("host_password", "ab")],
            msg::HOST_PASSWORD_INVALID,
        ),
        (
            vec![("host", "ok1"), ("host_password", "has space")],
            msg::HOST_PASSWORD_INVALID,
        ),
        (vec![("host", "ok1"), ("port", "70000")], msg::PORT_INVALID),
    ] {
        bob.post("/hosts", &fields)
            .await
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .has(message);
    }
    bob.get("/hosts").await.has("<td id=\"host_count\">0</td>");
}

#[tokio::test]
async fn a_generated_host_password_is_shown_once() {
    let (router, backend) = app().await;
    let mut alice = Browser::user(&router, "alice1").await;
    let page = alice
        .post(
            "/hosts",
            &[("host", "cam1"), ("group", ""), ("host_password", "")],
        )
        .await;
    page.status(StatusCode::CREATED)
        .has("id=\"generated\"")
        .has("shown only once")
        .has("3 to 8 lowercase letters");
    let start = page.body.find("<code>").expect("password shown") + "<code>".len();
    let password = &page.body[start..start + 26];
    assert!(
        password
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
        "{password}"
    );
    assert_eq!(&page.body[start + 26..start + 33], "</code>");
    let hash = backend
        .host_password_hash(&fqdn("cam1.dyn.example"))
        .expect("stored");
    assert!(!hash.contains(password));
    let hasher = PasswordHasher::new();
    assert_eq!(hasher.verify(password.to_owned(), hash).await, Ok(true));
    // Never again: not on the list, not on the edit page.
    alice
        .get("/hosts")
        .await
        .lacks(password)
        .lacks("id=\"generated\"");
    alice
        .get("/hosts/cam1.dyn.example/edit")
        .await
        .lacks(password);
}

#[tokio::test]
async fn the_host_list_shows_status_time_and_addresses() {
    let (router, backend) = app().await;
    let mut alice = Browser::user(&router, "alice1").await;
    for host in ["one", "two", "three"] {
        alice
            .post("/hosts", &[("host", host), ("host_password", "abc")])
            .await;
    }
    // As their DVRs report: "one" updates both addresses at 16:10:31, "two" its A record at
    // 16:00:06 and then fails (its status goes to ERROR), "three" never updates.
    let dvr_sets = |name: &str, addr: &str| EventBody::HostAddressSet {
        zone: fqdn(ZONE),
        fqdn: fqdn(name),
        addr: addr.parse().expect("literal"),
        account: None,
    };
    for (at_ms, name, addr) in [
        (1_118_247_031_000, "one.dyn.example", "211.117.45.10"),
        (1_118_247_031_000, "one.dyn.example", "2001:db8::10"),
        (1_118_246_406_000, "two.dyn.example", "211.117.45.27"),
    ] {
        let outcome = backend.commit_at(at_ms, dvr_sets(name, addr)).await;
        assert_eq!(outcome, Outcome::Modified);
    }
    let failed = EventBody::HostStatusChanged {
        zone: fqdn(ZONE),
        fqdn: fqdn("two.dyn.example"),
        status: HostStatus::Error,
    };
    assert_eq!(backend.commit(failed).await, Outcome::Modified);
    let page = alice.get("/hosts").await;
    page.has("status-ok\">OK")
        .has("status-error\">ERROR")
        .has("status-standby\">STANDBY")
        .has("211.117.45.10<br>2001:db8::10")
        .has("2005-06-08 16:10:31")
        .has("2005-06-08 16:00:06")
        .has("<tr><th>Last Updated Time (UTC)</th><td>2005-06-08 16:10:31</td></tr>");
    // Newest first, numbered from the oldest.
    let three = page.body.find("three.dyn.example").expect("listed");
    let one = page.body.find("one.dyn.example").expect("listed");
    assert!(three < one);
    page.has("<td>3</td>");
}

#[tokio::test]
async fn another_users_host_is_404_for_every_verb() {
    let (router, backend) = app().await;
    let mut alice = Browser::user(&router, "alice1").await;
    alice
        .post("/hosts", &[("host", "cam1"), ("host_password", "abc")])
        .await;
    let mut bob = Browser::user(&router, "bobby1").await;
    bob.get("/hosts/cam1.dyn.example/edit")
        .await
        .status(StatusCode::NOT_FOUND);
    bob.post("/hosts/cam1.dyn.example/edit", &[("ip", "192.0.2.66")])
        .await
        .status(StatusCode::NOT_FOUND);
    bob.post("/hosts/cam1.dyn.example/remove", &[])
        .await
        .status(StatusCode::NOT_FOUND);
    // Same answer as a name nobody has, or a malformed one.
    bob.get("/hosts/nobody.dyn.example/edit")
        .await
        .status(StatusCode::NOT_FOUND);
    bob.get("/hosts/bad%20name/edit")
        .await
        .status(StatusCode::NOT_FOUND);
    let page = alice.get("/hosts/cam1.dyn.example/edit").await;
    page.status(StatusCode::OK).lacks("192.0.2.66");
    assert!(
        backend
            .host_password_hash(&fqdn("cam1.dyn.example"))
            .is_some()
    );
}

#[tokio::test]
async fn an_abusive_host_is_shown_and_only_its_owner_clears_the_mark() {
    let (router, backend) = app().await;
    let mut alice = Browser::user(&router, "alice1").await;
    alice
        .post("/hosts", &[("host", "cam1"), ("host_password", "abc")])
        .await;
    let mark = EventBody::HostAbuseChanged {
        zone: fqdn("dyn.example"),
        fqdn: fqdn("cam1.dyn.example"),
        abusive: true,
        account: None,
    };
    assert_eq!(backend.commit(mark).await, Outcome::Modified);
    alice.get("/hosts").await.has(">ABUSE</span>");
    alice
        .get("/hosts/cam1.dyn.example/edit")
        .await
        .has("Clear the abuse mark");
    let mut bob = Browser::user(&router, "bobby1").await;
    bob.post("/hosts/cam1.dyn.example/abuse/clear", &[])
        .await
        .status(StatusCode::NOT_FOUND);
    let abusive = || {
        backend.view.with_state(|s| {
            s.account_host(&fqdn("cam1.dyn.example"))
                .expect("exists")
                .abusive
        })
    };
    assert!(abusive());
    alice
        .post("/hosts/cam1.dyn.example/abuse/clear", &[])
        .await
        .status(StatusCode::SEE_OTHER);
    assert!(!abusive());
    alice.get("/hosts").await.lacks(">ABUSE</span>");
}

#[tokio::test]
async fn update_tokens_are_shown_once_stored_hashed_and_revoked_by_their_owner() {
    let (router, backend) = app().await;
    let mut alice = Browser::user(&router, "alice1").await;
    alice
        .post("/hosts", &[("host", "cam1"), ("host_password", "abc")])
        .await;
    let page = alice.post("/hosts/cam1.dyn.example/tokens", &[]).await;
    page.status(StatusCode::OK).has("id=\"new-token\"");
    let token = page
        .body
        .split("id=\"new-token\"><code>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the token is shown")
        .to_owned();
    assert_eq!(token.len(), 26);
    let stored = backend.view.with_state(|s| {
        s.account_host(&fqdn("cam1.dyn.example"))
            .expect("exists")
            .tokens
            .clone()
    });
    assert_eq!(stored.len(), 1);
    assert!(ddns_ingest::token_matches(&stored[0].hash, &token));
    assert!(!stored[0].hash.contains(&token), "stored only as a hash");
    // Shown once: the edit page lists its id, not the secret.
    alice
        .get("/hosts/cam1.dyn.example/edit")
        .await
        .has(&stored[0].id)
        .lacks(&token);
    // Another user can neither add nor revoke.
    let mut bob = Browser::user(&router, "bobby1").await;
    bob.post("/hosts/cam1.dyn.example/tokens", &[])
        .await
        .status(StatusCode::NOT_FOUND);
    let revoke = format!("/hosts/cam1.dyn.example/tokens/{}/revoke", stored[0].id);
    bob.post(&revoke, &[]).await.status(StatusCode::NOT_FOUND);
    alice.post(&revoke, &[]).await.status(StatusCode::SEE_OTHER);
    let left = backend.view.with_state(|s| {
        s.account_host(&fqdn("cam1.dyn.example"))
            .expect("exists")
            .tokens
            .len()
    });
    assert_eq!(left, 0);
}

#[tokio::test]
async fn editing_and_removing_ones_own_host() {
    let (router, backend) = app().await;
    let mut alice = Browser::user(&router, "alice1").await;
    alice
        .post(
            "/hosts",
            &[("host", "cam1"), ("host_password", "abc"), ("port", "81")],
        )
        .await;
    let page = alice.get("/hosts/cam1.dyn.example/edit").await;
    page.status(StatusCode::OK)
        .has("name=\"port\" inputmode=\"numeric\" value=\"81\"");
    alice
        .post(
            "/hosts/cam1.dyn.example/edit",
            &[("ip", "121.166.152.103"), ("port", "81")],
        )
        .await
        .status(StatusCode::OK)
        .has(msg::HOST_CHANGED)
        .has("121.166.152.103");
    let before = backend.host_password_hash(&fqdn("cam1.dyn.example"));
    alice
        .post(
            "/hosts/CAM1.dyn.example/edit",
            &[("host_password", "newpass"), ("port", "")],
        )
        .await
        .status(StatusCode::OK)
        .has(msg::HOST_CHANGED)
        .has("href=\"http://cam1.dyn.example/\"");
    assert_ne!(
        before,
        backend.host_password_hash(&fqdn("cam1.dyn.example"))
    );
    for (fields, message) in [
        (vec![("ip", "999.1.1.1")], msg::IP_INVALID),
        (vec![("ip", "0.0.0.0")], msg::IP_INVALID),
        (vec![("port", "0")], msg::PORT_INVALID),
        (vec![("host_password", "x")], msg::HOST_PASSWORD_INVALID),
    ] {
        alice
            .post("/hosts/cam1.dyn.example/edit", &fields)
            .await
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .has(message);
    }
    alice
        .post("/hosts/cam1.dyn.example/remove", &[])
        .await
        .status(StatusCode::SEE_OTHER);
    alice
        .get("/hosts")
        .await
        .has("<td id=\"host_count\">0</td>");
    assert!(
        backend
            .host_password_hash(&fqdn("cam1.dyn.example"))
            .is_none()
    );
}

#[tokio::test]
async fn hostile_input_is_escaped() {
    let (router, backend) = app().await;
    let mut browser = Browser::new(&router);
    browser.get("/signup?user_id=alice1").await;
    let hostile = "\"><script>alert(1)</script>@x.com";
    browser
        .post(
            "/signup",
            &[
                ("user_id", "alice1"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("email", hostile),
            ],
        )
        .await
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .has(msg::EMAIL_INVALID)
        .has(&escaped(hostile))
        .lacks("<script>");
    // An address that got in some other way (an operator's import) is escaped on every page.
    let hash = cheap_hasher().hash(PASSWORD.into()).await.expect("hashes");
    let email = "<script>alert('x')</script>&@evil.example";
    let imported = EventBody::AccountCreated {
        user_id: "mallory1".into(),
        email: email.into(),
        password_hash: hash,
    };
    assert_eq!(backend.commit(imported).await, Outcome::Done);
    let mut mallory = Browser::new(&router);
    mallory
        .sign_in("mallory1", PASSWORD)
        .await
        .status(StatusCode::OK);
    for uri in ["/hosts", "/account"] {
        mallory
            .get(uri)
            .await
            .has(&escaped(email))
            .lacks("<script>");
    }
    // The echoed check replies are text/plain with nosniff.
    let page = mallory.get("/check/user?user_id=%3Cb%3Ex%3C/b%3E").await;
    assert_eq!(page.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
}

// ---- the account ----

#[tokio::test]
async fn changing_the_password_ends_other_sessions() {
    let (router, _backend) = app().await;
    let mut laptop = Browser::user(&router, "alice1").await;
    let mut phone = Browser::new(&router);
    phone
        .sign_in("alice1", PASSWORD)
        .await
        .status(StatusCode::OK);
    laptop.get("/account").await.status(StatusCode::OK);
    laptop
        .post(
            "/account/password",
            &[
                ("current_password", "wrong-password"),
                ("password", "new-password-7"),
                ("password_confirm", "new-password-7"),
            ],
        )
        .await
        .status(StatusCode::UNAUTHORIZED)
        .has(msg::CURRENT_PASSWORD_WRONG);
    laptop
        .post(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("password", "abc"),
                ("password_confirm", "abc"),
            ],
        )
        .await
        .status(StatusCode::UNPROCESSABLE_ENTITY)
        .has(msg::PASSWORD_SHORT);
    let before = laptop.cookie.clone();
    laptop
        .post(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("password", "new-password-7"),
                ("password_confirm", "new-password-7"),
            ],
        )
        .await
        .status(StatusCode::OK)
        .has(msg::PASSWORD_CHANGED);
    assert_ne!(before, laptop.cookie, "new session id");
    laptop.get("/hosts").await.status(StatusCode::OK);
    phone.get("/hosts").await.status(StatusCode::SEE_OTHER);
    Browser::new(&router)
        .sign_in("alice1", PASSWORD)
        .await
        .status(StatusCode::UNAUTHORIZED);
    Browser::new(&router)
        .sign_in("alice1", "new-password-7")
        .await
        .status(StatusCode::OK);
}

#[tokio::test]
async fn removing_the_account_removes_its_hosts_and_sessions() {
    let (router, backend) = app().await;
    let mut laptop = Browser::user(&router, "alice1").await;
    laptop.post("/groups", &[("group", "brian")]).await;
    laptop
        .post(
            "/hosts",
            &[
                ("host", "cam1"),
                ("group", "brian"),
                ("host_password", "abc"),
            ],
        )
        .await;
    let mut phone = Browser::new(&router);
    phone.sign_in("alice1", PASSWORD).await;
    laptop
        .post("/account/remove", &[("password", "wrong-password")])
        .await
        .status(StatusCode::UNAUTHORIZED);
    laptop
        .post("/account/remove", &[("password", PASSWORD)])
        .await
        .status(StatusCode::OK)
        .has("Account alice1, its groups and its hosts were removed.");
    assert!(laptop.cookie.is_none(), "cookie cleared");
    phone.get("/hosts").await.status(StatusCode::SEE_OTHER);
    assert!(
        backend
            .host_password_hash(&fqdn("cam1.brian.dyn.example"))
            .is_none()
    );
    let mut bob = Browser::new(&router);
    assert_eq!(
        bob.get("/check/group?group=brian").await.body,
        "[Group Name] => Not existed [brian.dyn.example]"
    );
    assert_eq!(
        bob.get("/check/user?user_id=alice1").await.body,
        "Not existed [alice1]"
    );
}

#[tokio::test]
async fn pages_need_a_signed_in_session() {
    let (router, _backend) = app().await;
    let mut browser = Browser::new(&router);
    for uri in ["/hosts", "/account", "/hosts/x.dyn.example/edit"] {
        let page = browser.get(uri).await;
        page.status(StatusCode::SEE_OTHER);
        assert_eq!(page.headers["location"], "/");
    }
    // An anonymous session's token does not make a POST signed in.
    browser.get("/").await;
    let page = browser.post("/groups", &[("group", "brave")]).await;
    page.status(StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn multiple_zones_take_a_zone_field() {
    let (router, _backend) = app_with(PortalConfig {
        zones: vec![ZONE.into(), "cam.example".into()],
        ..config()
    })
    .await;
    let mut alice = Browser::user(&router, "alice1").await;
    alice.get("/hosts").await.has("name=\"zone\"");
    alice
        .post(
            "/hosts",
            &[
                ("host", "one"),
                ("host_password", "abc"),
                ("zone", "cam.example"),
            ],
        )
        .await
        .has("USER HOST REGISTRATION: one.cam.example");
    alice
        .post("/hosts", &[("host", "one"), ("host_password", "abc")])
        .await
        .has("USER HOST REGISTRATION: one.dyn.example");
    assert_eq!(
        alice
            .get("/check/host?host=one&zone=cam.example")
            .await
            .body,
        "[DNS Name] => Already existed [one.cam.example]"
    );
}

// ---- a real socket ----

#[tokio::test]
async fn serve_answers_on_a_real_listener_and_stops_on_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port 0 binds");
    let addr = listener.local_addr().expect("bound");
    let backend = backend_for(&config()).await;
    let portal = Portal::new(config(), backend.directory.clone())
        .expect("valid config")
        .with_password_hasher(cheap_hasher());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portal.serve(listener, async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream
        .write_all(
            b"GET /check/user?user_id=TestUser HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("writes");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("reads");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("Not existed [TestUser]"), "{reply}");
    stop.send(()).expect("server still running");
    server
        .await
        .expect("server task")
        .expect("server ends cleanly");
}
