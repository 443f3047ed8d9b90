//! The device API (SPEC §2): `add`, `update`, `remove`, `ipcheck` and `ipdetect`, on the seed's
//! `.aspx` paths, answering `text/plain` reply codes; and the DVR protocol's `/dvr/update`
//! (`dvr.rs`) on the same listener.
//!
//! Each request runs the same steps: charge the source address (911), open the credential
//! (02), validate the fields (01, 04), answer from memory what needs no change (07, 08, 13,
//! 14), charge the device (911: the device quota guards the log, so only writes count), and
//! otherwise append an event and wait until the fold has applied
//! it, replying with the outcome the fold gave it. The append returns only once the event is
//! durable, so a success reply is never sent for an update that could be lost.

mod acme;
mod channel;
mod dvr;
mod dyndns2;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ddns_core::{DeviceId, EventBody, Fields, Fqdn, Label, Reply};
use ddns_log::EventLog;
use ddns_projector::{Committer, ProjectorView};
use serde::Deserialize;

use self::acme::AcmeAction;
pub(crate) use self::channel::{ChannelRecord, Owner};
use crate::flood::{FloodConfig, FloodGuard};
use crate::secret::{PasswordHasher, VerifiedPasswords};
use crate::source::{Cidr, client_addr};
use crate::token::{Credential, KeyError, TokenBook, VendorCredentials, VendorKey};

/// Longest User-Agent stored with a device; the rest is cut.
const USER_AGENT_MAX: usize = 256;
/// Longest value of a vendor field stored with a device; the rest is cut.
const FIELD_VALUE_MAX: usize = 128;

/// One vendor: its zone, its keys, and what its devices may send.
#[derive(Clone, Debug, Deserialize)]
pub struct VendorConfig {
    /// The vendor's name (the `--vendor` of `ddnsd cipher`).
    pub name: String,
    /// The zone its devices' names are created in.
    pub zone: String,
    /// Its keys; tokens sealed with any of them open.
    pub keys: Vec<VendorKey>,
    /// When set, tokens must carry an issue time no older than this, and each opens only once.
    #[serde(default)]
    pub max_age_secs: Option<u64>,
    /// Extra query parameters stored with the device (`port`, `fw`, `hw`, …).
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Settings of the HTTP front door.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct IngestConfig {
    /// Peers whose `X-Forwarded-For` is believed (`10.0.0.0/8`, `::1`).
    pub trusted_proxies: Vec<String>,
    /// Flood quotas.
    pub flood: FloodConfig,
    /// How long a request waits for its event to be durable and folded before answering `12`.
    pub reply_timeout_ms: u64,
    /// Serves `/cipher.aspx?mac=…&vendor=…`, which seals any MAC: for test beds only.
    pub cipher_form: bool,
    /// dyndns2: consecutive updates that change nothing after which a host is marked abusive
    /// (answered `abuse` until its owner clears it); 0: never.
    pub nochg_abuse_threshold: u32,
    /// Most open connections per listener; past it the longest-idle one is closed for a new
    /// one (see `DeviceApi::serve`). 0: three quarters of the process's open-file limit.
    pub max_connections: usize,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig {
            trusted_proxies: Vec::new(),
            flood: FloodConfig::default(),
            reply_timeout_ms: 10_000,
            cipher_form: false,
            nochg_abuse_threshold: 100,
            max_connections: 0,
        }
    }
}

/// Why the front door could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// A vendor key is malformed or duplicated.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A vendor's zone is not a valid domain name.
    #[error("vendor {vendor}: zone {zone:?}: {reason}")]
    Zone {
        /// The vendor.
        vendor: String,
        /// The configured zone.
        zone: String,
        /// What is wrong.
        reason: String,
    },
    /// A vendor name with characters other than letters, digits, `-` and `_`.
    #[error("vendor name {0:?}: use letters, digits, - and _")]
    VendorName(String),
    /// A trusted proxy is not an address or block.
    #[error(transparent)]
    Proxy(#[from] crate::source::CidrError),
}

struct Vendor {
    zone: Fqdn,
    fields: Vec<String>,
}

/// The device API, ready to serve: build it with [`DeviceApi::new`], serve [`DeviceApi::router`].
pub struct DeviceApi {
    tokens: TokenBook,
    flood: FloodGuard,
    vendors: HashMap<String, Vendor>,
    trusted: Vec<Cidr>,
    committer: Committer,
    cipher_form: bool,
    /// Checks DVRs' host passwords (shared with the portal: one bound on argon2 runs).
    hasher: Arc<PasswordHasher>,
    verified: VerifiedPasswords,
    nochg: dyndns2::NochgCounts,
    nochg_abuse_threshold: u32,
    /// Most open connections per listener (resolved: never 0).
    pub(crate) max_connections: usize,
}

/// Hosts whose last verified password is remembered (a keyed hash each, ~100 bytes).
const VERIFIED_HOSTS_MAX: usize = 1 << 20;

impl DeviceApi {
    /// Builds the API over `log` (where events go) and `view` (the fold's results).
    pub fn new(
        config: &IngestConfig,
        vendors: &[VendorConfig],
        log: Arc<dyn EventLog>,
        view: ProjectorView,
    ) -> Result<DeviceApi, IngestError> {
        // Other names are reserved (imported hosts are owned by the vendor `@import`).
        if let Some(bad) = vendors.iter().find(|v| {
            v.name.is_empty()
                || !v
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }) {
            return Err(IngestError::VendorName(bad.name.clone()));
        }
        let tokens = TokenBook::new(
            vendors
                .iter()
                .map(|v| VendorCredentials {
                    vendor: v.name.clone(),
                    keys: v.keys.clone(),
                    max_age_secs: v.max_age_secs,
                })
                .collect(),
        )?;
        let vendors = vendors
            .iter()
            .map(|v| {
                let zone = Fqdn::parse(&v.zone).map_err(|e| IngestError::Zone {
                    vendor: v.name.clone(),
                    zone: v.zone.clone(),
                    reason: e.to_string(),
                })?;
                Ok((
                    v.name.clone(),
                    Vendor {
                        zone,
                        fields: v.fields.clone(),
                    },
                ))
            })
            .collect::<Result<_, IngestError>>()?;
        let trusted = config
            .trusted_proxies
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        Ok(DeviceApi {
            tokens,
            flood: FloodGuard::new(&config.flood),
            vendors,
            trusted,
            committer: Committer::new(log, view, Duration::from_millis(config.reply_timeout_ms)),
            cipher_form: config.cipher_form,
            hasher: Arc::new(PasswordHasher::new()),
            verified: VerifiedPasswords::new(VERIFIED_HOSTS_MAX),
            nochg: dyndns2::NochgCounts::default(),
            nochg_abuse_threshold: config.nochg_abuse_threshold,
            max_connections: match config.max_connections {
                0 => open_file_limit().saturating_mul(3) / 4,
                n => n,
            }
            .max(1),
        })
    }

    /// Checks host passwords with `hasher` (one per server, shared with the portal, bounds how
    /// many argon2 runs happen at once).
    pub fn with_password_hasher(mut self, hasher: Arc<PasswordHasher>) -> DeviceApi {
        self.hasher = hasher;
        self
    }

    /// The credentials, for `ddnsd cipher`.
    pub fn tokens(&self) -> &TokenBook {
        &self.tokens
    }

    /// Drops idle flood-control keys; call it every minute or so.
    pub fn prune(&self) {
        self.flood.prune();
    }

    /// The routes, on the seed's paths. Serve with connect info (`into_make_service_with_connect_info::<SocketAddr>()`).
    pub fn router(self: Arc<Self>) -> Router {
        type Api = State<Arc<DeviceApi>>;
        type Peer = ConnectInfo<SocketAddr>;
        let router = Router::new()
            .route(
                "/add.aspx",
                get(|a: Api, p: Peer, r: Request| handle(Route::Add, a, p, r)),
            )
            .route(
                "/update.aspx",
                get(|a: Api, p: Peer, r: Request| handle(Route::Update, a, p, r)),
            )
            .route(
                "/remove.aspx",
                get(|a: Api, p: Peer, r: Request| handle(Route::Remove, a, p, r)),
            )
            .route(
                "/ipcheck.aspx",
                get(|a: Api, p: Peer, r: Request| handle(Route::Ipcheck, a, p, r)),
            )
            .route(
                "/ipdetect.aspx",
                get(|a: Api, p: Peer, r: Request| handle(Route::Ipdetect, a, p, r)),
            )
            .route(
                "/dvr/update",
                get(|a: Api, p: Peer, r: Request| handle(Route::Dvr, a, p, r)),
            )
            .route(
                "/nic/update",
                get(|a: Api, p: Peer, r: Request| handle(Route::NicUpdate, a, p, r)),
            )
            .route(
                "/nic/checkip",
                get(|a: Api, p: Peer, r: Request| handle(Route::CheckIp, a, p, r)),
            )
            .route(
                "/checkip",
                get(|a: Api, p: Peer, r: Request| handle(Route::CheckIp, a, p, r)),
            )
            .route(
                "/present",
                post(|a: Api, p: Peer, r: Request| handle(Route::Present, a, p, r)),
            )
            .route(
                "/cleanup",
                post(|a: Api, p: Peer, r: Request| handle(Route::Cleanup, a, p, r)),
            );
        let router = if self.cipher_form {
            router.route(
                "/cipher.aspx",
                get(|a: Api, p: Peer, r: Request| handle(Route::Cipher, a, p, r)),
            )
        } else {
            router
        };
        router.with_state(self)
    }
}

/// A request's query parameters, decoded as `application/x-www-form-urlencoded` (`+` is a
/// space, `%XX` a byte, invalid UTF-8 replaced): the first occurrence of each name wins.
/// Values borrow from the query unless they had something to decode.
struct Params<'q>(Vec<(Cow<'q, str>, Cow<'q, str>)>);

impl<'q> Params<'q> {
    fn parse(query: &'q str) -> Params<'q> {
        Params(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (form_decode(name), form_decode(value))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// One name or value of a form-encoded query.
fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|&b| (b as char).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) => {
                out.push((high * 16 + low) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(error) => Cow::Owned(String::from_utf8_lossy(error.as_bytes()).into_owned()),
    }
}

/// A path of the device API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Add,
    Update,
    Remove,
    Ipcheck,
    Ipdetect,
    /// The DVR protocol's update.
    Dvr,
    /// dyndns2's update.
    NicUpdate,
    /// dyndns2's address echo.
    CheckIp,
    /// The ACME `httpreq` interface: publish a challenge value.
    Present,
    /// The ACME `httpreq` interface: withdraw it.
    Cleanup,
    /// Only with `cipher_form`.
    Cipher,
}

impl Route {
    /// The route of `path`, if the API serves it.
    pub(crate) fn of(api: &DeviceApi, path: &str) -> Option<Route> {
        Some(match path {
            "/add.aspx" => Route::Add,
            "/update.aspx" => Route::Update,
            "/remove.aspx" => Route::Remove,
            "/ipcheck.aspx" => Route::Ipcheck,
            "/ipdetect.aspx" => Route::Ipdetect,
            "/dvr/update" => Route::Dvr,
            "/nic/update" => Route::NicUpdate,
            "/nic/checkip" | "/checkip" => Route::CheckIp,
            "/present" => Route::Present,
            "/cleanup" => Route::Cleanup,
            "/cipher.aspx" if api.cipher_form => Route::Cipher,
            _ => return None,
        })
    }

    /// The methods it takes, as a 405's `allow` names them.
    pub(crate) fn methods(self) -> &'static str {
        match self {
            Route::Present | Route::Cleanup => "POST",
            _ => "GET,HEAD",
        }
    }

    /// True if it takes `method`.
    pub(crate) fn allows(self, method: &str) -> bool {
        self.methods().split(',').any(|m| m == method)
    }

    /// Its name in metrics.
    fn name(self) -> &'static str {
        match self {
            Route::Add => "add",
            Route::Update => "update",
            Route::Remove => "remove",
            Route::Ipcheck => "ipcheck",
            Route::Ipdetect => "ipdetect",
            Route::Dvr => "dvr",
            Route::NicUpdate => "nic_update",
            Route::CheckIp => "checkip",
            Route::Present => "present",
            Route::Cleanup => "cleanup",
            Route::Cipher => "cipher",
        }
    }
}

/// What the handlers read of an HTTP request, whichever server parsed it.
pub(crate) struct Head<'a> {
    /// The TCP peer.
    pub(crate) peer: SocketAddr,
    /// The query string, without `?` (empty when there is none).
    pub(crate) query: &'a str,
    /// The first `User-Agent`, if it is visible ASCII.
    pub(crate) user_agent: Option<&'a str>,
    /// Every `X-Forwarded-For` value that is visible ASCII, in order.
    pub(crate) forwarded_for: Vec<&'a str>,
    /// The first `Authorization`, if it is visible ASCII.
    pub(crate) authorization: Option<&'a str>,
    /// The request's body (empty for a `GET`).
    pub(crate) body: &'a [u8],
}

impl<'a> Head<'a> {
    fn of_http(peer: SocketAddr, http: &'a axum::http::request::Parts, body: &'a [u8]) -> Head<'a> {
        let headers = &http.headers;
        Head {
            peer,
            query: http.uri.query().unwrap_or_default(),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            forwarded_for: headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            body,
        }
    }
}

/// What a request is answered: a status (200 for every device reply: devices read the body,
/// whatever the status) and a `text/plain` body (JSON for the ACME interface's successes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
    /// The body is JSON.
    pub(crate) json: bool,
    /// A 405's `allow` header: the methods the path takes.
    pub(crate) allow: Option<&'static str>,
}

impl Answer {
    fn ok(body: String) -> Answer {
        Answer::status(StatusCode::OK, body)
    }

    pub(crate) fn status(status: StatusCode, body: impl Into<String>) -> Answer {
        Answer {
            status,
            body: body.into(),
            json: false,
            allow: None,
        }
    }

    /// `405 Method Not Allowed`, naming the methods the path takes.
    pub(crate) fn method_not_allowed(allow: &'static str) -> Answer {
        Answer {
            allow: Some(allow),
            ..Answer::status(StatusCode::METHOD_NOT_ALLOWED, "")
        }
    }

    fn json(body: String) -> Answer {
        Answer {
            json: true,
            ..Answer::ok(body)
        }
    }

    /// The content type of the body.
    pub(crate) fn content_type(&self) -> &'static str {
        match self.json {
            true => "application/json",
            false => "text/plain; charset=utf-8",
        }
    }
}

/// The challenge of a 401 (dyndns2 without credentials): wget-based firmware sends its
/// credentials only once asked.
pub(crate) const CHALLENGE: &str = "Basic realm=\"ddnsd\"";

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, self.content_type())],
            self.body,
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(CHALLENGE),
            );
        }
        response
    }
}

/// What every device request has: who sent it and with which credential.
struct DeviceRequest<'q> {
    source: IpAddr,
    credential: Credential,
    params: Params<'q>,
    user_agent: String,
}

/// The code of `reply`, as counted in metrics.
pub(crate) fn code_of(reply: &Reply) -> &'static str {
    match reply {
        Reply::InvalidHostname => "01",
        Reply::InvalidMac => "02",
        Reply::InvalidIp => "04",
        Reply::NameTaken => "07",
        Reply::NoChange => "08",
        Reply::Modified => "09",
        Reply::Created(_) => "10",
        Reply::Flood => "911",
        Reply::ServerError => "12",
        Reply::NotFound => "13",
        Reply::Registered(_) => "14",
        Reply::Deleted => "15",
        Reply::DeleteFailed => "16",
    }
}

fn reply(route: Route, reply: Reply) -> Answer {
    metrics::counter!("ddns_ingest_replies_total", "path" => route.name(), "code" => code_of(&reply))
        .increment(1);
    Answer::ok(reply.to_string())
}

impl DeviceApi {
    /// Answers one request to `route`: the whole device API, whatever carried the request.
    pub(crate) async fn respond(&self, route: Route, head: &Head<'_>) -> Answer {
        match route {
            Route::Add => self.add(head).await,
            Route::Update => self.update(head).await,
            Route::Remove => self.remove(head).await,
            Route::Ipcheck => self.ipcheck(head),
            Route::Ipdetect => self.ipdetect(head),
            Route::Dvr => self.dvr_update(head).await,
            Route::NicUpdate => self.nic_update(head).await,
            Route::CheckIp => self.checkip(head),
            Route::Present => self.acme_txt(head, AcmeAction::Present).await,
            Route::Cleanup => self.acme_txt(head, AcmeAction::Cleanup).await,
            Route::Cipher => self.cipher(head),
        }
    }

    /// The client's address: the peer, or what a trusted proxy says it forwarded for.
    fn source_of(&self, head: &Head<'_>) -> IpAddr {
        client_addr(
            head.peer.ip(),
            head.forwarded_for.iter().copied(),
            &self.trusted,
        )
    }

    /// Charges the source and opens the credential: the steps every device path shares.
    fn admit<'q>(&self, route: Route, head: &Head<'q>) -> Result<DeviceRequest<'q>, Answer> {
        let source = self.source_of(head);
        if !self.flood.allow_source(source) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "source").increment(1);
            return Err(reply(route, Reply::Flood));
        }
        let params = Params::parse(head.query);
        let token = params.get("mac").unwrap_or_default();
        let credential = match self.tokens.open(token, now_ms() / 1000) {
            Ok(credential) if self.vendors.contains_key(&credential.vendor) => credential,
            Ok(_) => return Err(reply(route, Reply::InvalidMac)),
            Err(error) => {
                tracing::debug!(%source, %error, "credential refused");
                metrics::counter!("ddns_ingest_bad_credentials_total").increment(1);
                return Err(reply(route, Reply::InvalidMac));
            }
        };
        let user_agent = head
            .user_agent
            .map(|ua| truncate(ua.trim(), USER_AGENT_MAX))
            .unwrap_or_default();
        Ok(DeviceRequest {
            source,
            credential,
            params,
            user_agent,
        })
    }

    /// Charges the device's quota, then appends `body` and replies with the outcome the fold
    /// gave it, or `failed` when that cannot be known (the append failed, or the fold was too
    /// slow).
    async fn write(
        &self,
        route: Route,
        request: &DeviceRequest<'_>,
        body: EventBody,
        failed: Reply,
    ) -> Answer {
        if let Err(refused) = request.allow_device(self, route) {
            return refused;
        }
        reply(
            route,
            self.committer
                .commit(body)
                .await
                .map_or(failed, Reply::from),
        )
    }

    async fn add(&self, head: &Head<'_>) -> Answer {
        const ROUTE: Route = Route::Add;
        let request = match self.admit(ROUTE, head) {
            Ok(request) => request,
            Err(refused) => return refused,
        };
        let vendor = &self.vendors[&request.credential.vendor];
        let label = match Label::parse(request.params.get("dm").unwrap_or_default()) {
            Ok(label) => label,
            Err(_) => return reply(ROUTE, Reply::InvalidHostname),
        };
        let Ok(fqdn) = vendor.zone.child(&label) else {
            return reply(ROUTE, Reply::InvalidHostname);
        };
        let Some(addr) = request.addr() else {
            return reply(ROUTE, Reply::InvalidIp);
        };
        let device = request.device();
        // Answered from memory when the fold would change nothing: no event for a no-op.
        let known = self.committer.known(|state| {
            if state.owner(&fqdn).is_some_and(|owner| owner != device) {
                return Some(Reply::NameTaken);
            }
            let current = state.device(&device)?;
            (current.fqdn == fqdn && current.addr_of_family(addr) == Some(addr))
                .then_some(Reply::NoChange)
        });
        if let Some(known) = known.await {
            return reply(ROUTE, known);
        }
        let body = EventBody::DeviceAdd {
            device,
            zone: vendor.zone.clone(),
            label,
            addr,
            user_agent: request.user_agent.clone(),
            fields: request.fields(vendor),
        };
        self.write(ROUTE, &request, body, Reply::ServerError).await
    }

    async fn update(&self, head: &Head<'_>) -> Answer {
        const ROUTE: Route = Route::Update;
        let request = match self.admit(ROUTE, head) {
            Ok(request) => request,
            Err(refused) => return refused,
        };
        let vendor = &self.vendors[&request.credential.vendor];
        let Some(addr) = request.addr() else {
            return reply(ROUTE, Reply::InvalidIp);
        };
        let device = request.device();
        let known = self.committer.known(|state| match state.device(&device) {
            None => Some(Reply::NotFound),
            Some(current) if current.addr_of_family(addr) == Some(addr) => Some(Reply::NoChange),
            Some(_) => None,
        });
        if let Some(known) = known.await {
            return reply(ROUTE, known);
        }
        let body = EventBody::DeviceUpdate {
            device,
            zone: vendor.zone.clone(),
            addr,
            user_agent: request.user_agent.clone(),
            fields: request.fields(vendor),
        };
        self.write(ROUTE, &request, body, Reply::ServerError).await
    }

    async fn remove(&self, head: &Head<'_>) -> Answer {
        const ROUTE: Route = Route::Remove;
        let request = match self.admit(ROUTE, head) {
            Ok(request) => request,
            Err(refused) => return refused,
        };
        let device = request.device();
        let known = self
            .committer
            .known(|state| state.device(&device).is_none().then_some(Reply::NotFound));
        if let Some(known) = known.await {
            return reply(ROUTE, known);
        }
        let zone = self.vendors[&request.credential.vendor].zone.clone();
        let body = EventBody::DeviceRemove { device, zone };
        // A remove that cannot be made durable is "delete failed": the device may retry it.
        self.write(ROUTE, &request, body, Reply::DeleteFailed).await
    }

    fn ipcheck(&self, head: &Head<'_>) -> Answer {
        const ROUTE: Route = Route::Ipcheck;
        let request = match self.admit(ROUTE, head) {
            Ok(request) => request,
            Err(refused) => return refused,
        };
        let device = request.device();
        let registered = self.committer.view().with_state(|state| {
            state
                .device(&device)
                .map(|d| d.v4.map(IpAddr::V4).or(d.v6.map(IpAddr::V6)))
        });
        match registered.flatten() {
            Some(addr) => reply(ROUTE, Reply::Registered(addr)),
            None => reply(ROUTE, Reply::NotFound),
        }
    }

    fn ipdetect(&self, head: &Head<'_>) -> Answer {
        let source = self.source_of(head);
        if !self.flood.allow_source(source) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "source").increment(1);
            return reply(Route::Ipdetect, Reply::Flood);
        }
        metrics::counter!("ddns_ingest_replies_total", "path" => "ipdetect", "code" => "ip")
            .increment(1);
        Answer::ok(source.to_string())
    }

    fn cipher(&self, head: &Head<'_>) -> Answer {
        let source = self.source_of(head);
        if !self.flood.allow_source(source) {
            return reply(Route::Cipher, Reply::Flood);
        }
        let params = Params::parse(head.query);
        // Without `vendor`, the only vendor, if there is just one.
        let only = (self.vendors.len() == 1)
            .then(|| self.vendors.keys().next())
            .flatten();
        let vendor = params.get("vendor").or(only.map(String::as_str));
        let refused = |body: String| Answer::status(StatusCode::BAD_REQUEST, body);
        match vendor.map(|vendor| {
            self.tokens.seal(
                vendor,
                params.get("mac").unwrap_or_default(),
                now_ms() / 1000,
            )
        }) {
            Some(Ok(token)) => Answer::ok(token),
            Some(Err(error)) => refused(format!("cannot seal: {error}\n")),
            None => refused("name a vendor: vendor=NAME\n".into()),
        }
    }
}

impl DeviceRequest<'_> {
    fn device(&self) -> DeviceId {
        DeviceId {
            vendor: self.credential.vendor.clone(),
            mac: self.credential.mac.clone(),
        }
    }

    /// `myip`, or the source address when absent; `None` if it is not an address we accept.
    fn addr(&self) -> Option<IpAddr> {
        match self.params.get("myip").map(str::trim) {
            None | Some("") => Some(self.source),
            Some(text) => text
                .parse::<IpAddr>()
                .ok()
                .map(|a| a.to_canonical())
                .filter(|a| usable(*a)),
        }
    }

    fn fields(&self, vendor: &Vendor) -> Fields {
        vendor
            .fields
            .iter()
            .filter_map(|name| {
                let value = self.params.get(name)?;
                let clean: String = value.trim().chars().filter(|c| !c.is_control()).collect();
                Some((name.clone(), truncate(&clean, FIELD_VALUE_MAX)))
            })
            .collect()
    }

    fn allow_device(&self, api: &DeviceApi, route: Route) -> Result<(), Answer> {
        if api
            .flood
            .allow_device(&self.credential.vendor, &self.credential.mac)
        {
            Ok(())
        } else {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "device").increment(1);
            Err(reply(route, Reply::Flood))
        }
    }
}

/// An address a host record may hold: not unspecified, multicast or broadcast.
fn usable(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The process's open-file limit (its soft limit; unlimited counts as a million).
fn open_file_limit() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit
        .current
        .map_or(1 << 20, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The axum handler of every route: the request's head, answered by [`DeviceApi::respond`].
async fn handle(
    route: Route,
    State(api): State<Arc<DeviceApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    http: Request,
) -> Response {
    let (parts, body) = http.into_parts();
    let Ok(body) = axum::body::to_bytes(body, crate::http::BODY_MAX).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let head = Head::of_http(peer, &parts, &body);
    api.respond(route, &head).await.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_as_forms_and_the_first_occurrence_wins() {
        let params = Params::parse("mac=a%2Bb+c&dm=&fw=%E2%82%AC%zz%4&&myip&mac=second");
        assert_eq!(params.get("mac"), Some("a+b c"));
        assert_eq!(params.get("dm"), Some(""));
        assert_eq!(
            params.get("fw"),
            Some("€%zz%4"),
            "bad escapes stay as they are"
        );
        assert_eq!(params.get("myip"), Some(""));
        assert_eq!(params.get("port"), None);
        assert_eq!(Params::parse("a%20b=%FF").get("a b"), Some("\u{FFFD}"));
        assert!(matches!(form_decode("plain-token_1"), Cow::Borrowed(_)));
    }
}
