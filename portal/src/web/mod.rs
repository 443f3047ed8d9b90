//! [`Portal`]: the routes, the guard every POST passes, and the handlers.
//!
//! A request passes, outermost first: `finish` (security headers on every response; renders a
//! [`PageError`] into a page and logs it, in this one place), `guard` (for a POST: the
//! `Origin`/`Sec-Fetch-Site` check and the form's `csrf` token against the session's), then
//! the handler. Handlers read through the [`Directory`] and change only through it.
//!
//! - `people`: signing up (with the duplicate check), in and out, the account page.
//! - `hosts`: the host list, groups, hosts, their duplicate checks, editing and removing.

mod hosts;
mod people;
mod tls_listener;

use hosts::{
    add_group, add_host, add_token, check_group, check_host, clear_abuse, edit_host, edit_page,
    hosts_page, remove_host, revoke_token,
};
use people::{
    account_page, change_password, check_user, login, logout, remove_account, signin_page, signup,
    signup_page,
};

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderName, HeaderValue, LOCATION, ORIGIN, SET_COOKIE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, extract::DefaultBodyLimit};
use ddns_core::{Fqdn, Label, NameError};
use ddns_ingest::{HashError, PasswordHasher};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, PortalConfig, SignupMode};
use crate::directory::{
    Change, CreateGroup, CreateHost, Directory, DirectoryError, HostEdit, NewAccount, NewHost,
    SignUp, UserId,
};
use crate::pages::{self, Generated, GroupOption, HostRow, Layout};
use crate::rules::{self, msg};
use crate::session::{Session, SessionStore};
use crate::throttle::LoginThrottle;

/// Largest form body read, in bytes: a password may be 1024 bytes, URL-encoded up to three times
/// that, and a form has at most a few of them.
const FORM_BYTES_MAX: usize = 16 * 1024;

const STYLE_CSS: &str = include_str!("../../static/style.css");

/// The web portal: built from a [`PortalConfig`] and a [`Directory`], served as an axum router.
#[derive(Clone)]
pub struct Portal {
    inner: Arc<Inner>,
    /// Beside `inner`, not in it, so that [`Portal::with_password_hasher`] can replace it.
    hasher: Arc<PasswordHasher>,
}

struct Inner {
    config: PortalConfig,
    zones: Vec<Fqdn>,
    directory: Arc<dyn Directory>,
    sessions: SessionStore,
    throttle: LoginThrottle,
}

impl Portal {
    /// Checks `config` and builds the portal over `directory`. Passwords are hashed with a
    /// hasher of its own, argon2id at OWASP's cost (m = 19 MiB, t = 2, p = 1), at most one hash
    /// per CPU at once; a server that hashes elsewhere too shares one through
    /// [`Portal::with_password_hasher`].
    pub fn new(config: PortalConfig, directory: Arc<dyn Directory>) -> Result<Portal, ConfigError> {
        let zones = config.parsed_zones()?;
        config.check()?;
        let sessions = SessionStore::new(
            config.sessions_max,
            Duration::from_secs(config.session_idle_secs),
            Duration::from_secs(config.session_lifetime_secs),
            config.tls,
        );
        let throttle = LoginThrottle::new(
            config.login_failures_max,
            config.login_source_failures_max,
            Duration::from_secs(config.login_window_secs),
        );
        Ok(Portal {
            inner: Arc::new(Inner {
                config,
                zones,
                directory,
                sessions,
                throttle,
            }),
            hasher: Arc::new(PasswordHasher::new()),
        })
    }

    /// This portal hashing and verifying passwords with `hasher`: the server shares one between
    /// the portal and the DVR protocol, so that argon2 runs are bounded server-wide.
    pub fn with_password_hasher(self, hasher: Arc<PasswordHasher>) -> Portal {
        Portal { hasher, ..self }
    }

    /// The portal's routes. Serve it with connect info (as [`Portal::serve`] does) so that
    /// sign-in throttling can count per source address.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(signin_page))
            .route("/signup", get(signup_page).post(signup))
            .route("/check/user", get(check_user))
            .route("/login", post(login))
            .route("/logout", post(logout))
            .route("/hosts", get(hosts_page).post(add_host))
            .route("/groups", post(add_group))
            .route("/check/group", get(check_group))
            .route("/check/host", get(check_host))
            .route("/hosts/{fqdn}/edit", get(edit_page).post(edit_host))
            .route("/hosts/{fqdn}/remove", post(remove_host))
            .route("/hosts/{fqdn}/abuse/clear", post(clear_abuse))
            .route("/hosts/{fqdn}/tokens", post(add_token))
            .route("/hosts/{fqdn}/tokens/{id}/revoke", post(revoke_token))
            .route("/account", get(account_page))
            .route("/account/password", post(change_password))
            .route("/account/remove", post(remove_account))
            .route("/static/style.css", get(style_css))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(self.clone(), guard))
            .layer(DefaultBodyLimit::max(FORM_BYTES_MAX))
            .layer(middleware::from_fn_with_state(self.clone(), finish))
            .with_state(self)
    }

    /// Serves the portal on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// [`Portal::serve`] over TLS: each connection's handshake with `tls` runs in a task of
    /// its own, then the connection is served as a plain one is. Set [`PortalConfig::tls`]
    /// too, for the `__Host-` cookie and the `https://` origin check.
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: tokio_rustls::TlsAcceptor,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        // axum gives `ConnectInfo<SocketAddr>` for its own TcpListener and for any listener
        // wrapped in `tap_io` (whose address type it then is): the no-op tap is for that.
        let listener = tls_listener::TlsListener::new(listener, tls)?.tap_io(|_| {});
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }

    fn config(&self) -> &PortalConfig {
        &self.inner.config
    }

    fn directory(&self) -> &dyn Directory {
        self.inner.directory.as_ref()
    }

    fn layout(&self, visit: &Visit) -> Layout {
        Layout {
            brand: self.config().brand.clone(),
            csrf: visit
                .session
                .as_ref()
                .map(|(_, s)| s.csrf.clone())
                .unwrap_or_default(),
            signed_in: visit.user().is_some(),
        }
    }

    /// The zone a form or query names, or the first offered one if it names none.
    fn zone(&self, named: Option<&str>) -> Result<Fqdn, &'static str> {
        match named.map(str::trim).filter(|z| !z.is_empty()) {
            None => Ok(self.inner.zones[0].clone()),
            Some(named) => Fqdn::parse(named)
                .ok()
                .filter(|z| self.inner.zones.contains(z))
                .ok_or(msg::NO_SUCH_ZONE),
        }
    }
}

/// The session a request came with (looked up once, by `guard`), and the cookie to set if the
/// handler began one.
#[derive(Clone, Default)]
struct Visit {
    session: Option<(String, Session)>,
    set_cookie: Option<String>,
}

impl Visit {
    fn user(&self) -> Option<&UserId> {
        self.session.as_ref().and_then(|(_, s)| s.user_id.as_ref())
    }

    fn id(&self) -> Option<&str> {
        self.session.as_ref().map(|(id, _)| id.as_str())
    }

    /// Makes sure the visit has a session (pages with forms need its token).
    fn ensure(&mut self, portal: &Portal) {
        if self.session.is_none() {
            let (id, session) = portal.inner.sessions.create(None);
            self.set_cookie = Some(portal.inner.sessions.set_cookie(&id));
            self.session = Some((id, session));
        }
    }
}

impl FromRequestParts<Portal> for Visit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Portal,
    ) -> Result<Visit, Self::Rejection> {
        if let Some(visit) = parts.extensions.get::<Visit>() {
            return Ok(visit.clone());
        }
        Ok(Visit {
            session: portal.inner.sessions.get(&parts.headers),
            set_cookie: None,
        })
    }
}

/// The request's source address, when the server was started with connect info.
struct Source(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Source, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// A request the portal refuses or cannot serve; rendered and logged by `finish`.
#[derive(Clone, Debug)]
enum PageError {
    Forbidden,
    NotFound,
    Busy,
    Internal(String),
}

impl From<DirectoryError> for PageError {
    fn from(e: DirectoryError) -> PageError {
        PageError::Internal(e.to_string())
    }
}

impl From<HashError> for PageError {
    fn from(e: HashError) -> PageError {
        match e {
            HashError::Busy => PageError::Busy,
            HashError::Failed(reason) => PageError::Internal(reason),
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> PageError {
        PageError::Internal(format!("template: {e}"))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match self {
            PageError::Forbidden => StatusCode::FORBIDDEN,
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::Busy | PageError::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

type Answer = Result<Response, PageError>;

/// Renders `page` with `status`, setting the visit's new cookie if it has one.
fn render(status: StatusCode, page: &impl Template, visit: &Visit) -> Answer {
    let html = page.render()?;
    let mut response = (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response();
    if let Some(cookie) = &visit.set_cookie {
        set_cookie(&mut response, cookie);
    }
    Ok(response)
}

fn set_cookie(response: &mut Response, cookie: &str) {
    let value = HeaderValue::from_str(cookie).expect("cookie values are hex and ASCII attributes");
    response.headers_mut().append(SET_COOKIE, value);
}

fn text(status: StatusCode, body: String, visit: &Visit) -> Response {
    let mut response = (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response();
    if let Some(cookie) = &visit.set_cookie {
        set_cookie(&mut response, cookie);
    }
    response
}

fn see_other(to: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, HeaderValue::from_static(to))],
    )
        .into_response()
}

/// Security headers on every response, and the one place where errors become pages and logs.
async fn finish(State(portal): State<Portal>, request: Request, next: Next) -> Response {
    let static_file = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<PageError>() {
        let (title, message) = match &error {
            PageError::Forbidden => {
                tracing::debug!("portal: POST refused by the CSRF/origin check");
                ("Forbidden", msg::FORBIDDEN.to_owned())
            }
            PageError::NotFound => ("Not found", "There is nothing here.".to_owned()),
            PageError::Busy => {
                tracing::warn!("portal: password hashing queue full");
                ("Busy", msg::BUSY.to_owned())
            }
            PageError::Internal(reason) => {
                tracing::error!(%reason, "portal: request failed");
                ("Error", msg::INTERNAL.to_owned())
            }
        };
        let page = pages::Message {
            layout: Layout {
                brand: portal.config().brand.clone(),
                csrf: String::new(),
                signed_in: false,
            },
            title: title.to_owned(),
            message,
        };
        let status = response.status();
        let cookies: Vec<HeaderValue> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        response = match page.render() {
            Ok(html) => (
                status,
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                html,
            )
                .into_response(),
            Err(_) => (status, msg::INTERNAL).into_response(),
        };
        for cookie in cookies {
            response.headers_mut().append(SET_COOKIE, cookie);
        }
    }
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let cache = if static_file {
        "public, max-age=3600"
    } else {
        "no-store"
    };
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// Every POST: same-origin (by `Origin` and `Sec-Fetch-Site`), and a form whose `csrf` field is
/// the token of the session its cookie names. Other methods only get their session looked up.
async fn guard(State(portal): State<Portal>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        let session = portal.inner.sessions.get(request.headers());
        let mut request = request;
        request.extensions_mut().insert(Visit {
            session,
            set_cookie: None,
        });
        return next.run(request).await;
    }
    if !same_origin(request.headers(), portal.config().tls) {
        return PageError::Forbidden.into_response();
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_BYTES_MAX).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let token = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
        .map(|f| f.csrf)
        .unwrap_or_default();
    let session = portal.inner.sessions.get(&parts.headers);
    match &session {
        Some((_, s)) if !token.is_empty() && s.csrf_matches(&token) => {}
        _ => return PageError::Forbidden.into_response(),
    }
    parts.extensions.insert(Visit {
        session,
        set_cookie: None,
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A state-changing request must come from our own pages: a browser's `Sec-Fetch-Site` must be
/// `same-origin`, and its `Origin` must be this server's. A client that sends neither (curl, a
/// script) passes here and still needs the session's token.
fn same_origin(headers: &HeaderMap, tls: bool) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let scheme = if tls { "https" } else { "http" };
    origin
        .to_str()
        .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("{scheme}://{host}")))
}

async fn style_css() -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        STYLE_CSS,
    )
        .into_response()
}

async fn not_found() -> Response {
    PageError::NotFound.into_response()
}

/// Ends a session whose account is gone and sends the browser to the start page.
fn account_gone(portal: &Portal, visit: &Visit) -> Response {
    if let Some(id) = visit.id() {
        portal.inner.sessions.remove(id);
    }
    let mut response = see_other("/");
    set_cookie(&mut response, &portal.inner.sessions.clear_cookie());
    response
}
