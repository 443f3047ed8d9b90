//! The device API the `device_api`, `dyndns2`, `dvr`, `acme` and `http_framing` targets drive:
//! a real [`DeviceApi`] over an in-memory log folded by a real projector, with one account
//! (`fuzzuser`), its host `home.dyn.example` (password and an update token) and one device
//! (`cam.dyn.example`), flood quotas off (every input is judged on its own), and argon2 at
//! its cheapest.
//!
//! An input is text lines: `METHOD /path`, the query, `User-Agent`, `Authorization`,
//! `X-Forwarded-For` (an empty line: no header), then the body. The fuzzer cannot forge the
//! credentials, so placeholders stand for them in the query, the authorization and the body:
//! `@MAC` a device token of vendor `acme`, `@TOKEN` the host's update token, `@PASS` the
//! account's and the host's password, `@AUTH` and `@HAUTH` the Basic credentials of the
//! account and of the host.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ddns_core::{EventBody, Fqdn, Label, LiveZone, ZoneApex};
use ddns_ingest::{
    DeviceApi, FloodConfig, IngestConfig, PasswordHasher, VendorConfig, VendorKey, new_update_token,
};
use ddns_log::{EventLog, MemLog};
use ddns_projector::{Committer, Projector};
use tower::ServiceExt;

use crate::runtime;

/// The zone of every name here.
pub(crate) const ZONE: &str = "dyn.example";
/// The account's user ID and password (also the host's password).
pub(crate) const USER: &str = "fuzzuser";
pub(crate) const PASSWORD: &str = "tangerine-lamps-4";
/// The account's host.
pub(crate) const HOST: &str = "home.dyn.example";
/// The MAC of the device that exists before any input (`cam.dyn.example`).
const MAC: &str = "AA:BB:CC:00:00:01";
/// The peer every request comes from (a trusted proxy: `X-Forwarded-For` is believed).
pub(crate) const PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 40_000);
/// Longest reply body the device API may send (a dyndns2 reply of 20 hostnames is ~1.3 KB).
pub(crate) const REPLY_MAX: usize = 4096;

/// A device API ready for inputs.
pub(crate) struct Api {
    router: Router,
    device_token: String,
    host_token: String,
}

/// Argon2 at its cheapest (8 KiB, one pass): a real hash costs ~20 ms a try.
pub(crate) fn cheap_hasher() -> Arc<PasswordHasher> {
    Arc::new(PasswordHasher::with_params(
        argon2::Params::new(8, 1, 1, None).expect("8 KiB, t = 1, p = 1 are valid"),
    ))
}

/// The shared device API, built on first use.
pub(crate) fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| runtime::setup(build()))
}

async fn build() -> Api {
    let zone = Fqdn::parse(ZONE).expect("a valid zone");
    let log: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    let apex = ZoneApex::with_defaults(zone.clone(), 60);
    let snapshot = runtime::scratch_dir("device-api");
    let projector = Projector::open(&snapshot, Arc::new(LiveZone::new(vec![apex])), log.clone())
        .expect("the projector opens");
    let view = projector.view();
    runtime::spawn(projector.run());
    let committer = Committer::new(log.clone(), view.clone(), Duration::from_secs(10));
    let hasher = cheap_hasher();
    let hash = hasher
        .hash(PASSWORD.to_owned())
        .await
        .expect("the password hashes");
    committer
        .commit(EventBody::AccountCreated {
            user_id: USER.into(),
            email: "fuzz@example.com".into(),
            password_hash: hash.clone(),
        })
        .await
        .expect("the account is created");
    let account = view
        .with_state(|state| state.account(USER).map(|a| a.id))
        .expect("the account exists");
    committer
        .commit(EventBody::HostCreated {
            zone: zone.clone(),
            account,
            group: None,
            host: Label::parse("home").expect("a valid label"),
            password_hash: hash,
            port: Some(8080),
        })
        .await
        .expect("the host is created");
    let token = new_update_token();
    committer
        .commit(EventBody::HostTokenAdded {
            zone: zone.clone(),
            account,
            fqdn: Fqdn::parse(HOST).expect("a valid host"),
            token_id: token.id,
            hash: token.hash,
        })
        .await
        .expect("the token is added");

    let config = IngestConfig {
        trusted_proxies: vec!["127.0.0.1".into()],
        flood: flood_off(),
        reply_timeout_ms: 10_000,
        cipher_form: true,
        ..IngestConfig::default()
    };
    let vendors = [VendorConfig {
        name: "acme".into(),
        zone: ZONE.into(),
        keys: vec![VendorKey {
            id: 1,
            secret_hex: "11".repeat(32),
        }],
        max_age_secs: None,
        fields: vec!["fw".into(), "port".into()],
    }];
    let api = DeviceApi::new(&config, &vendors, log, view)
        .expect("a valid config")
        .with_password_hasher(hasher);
    let api = Arc::new(api);
    let device_token = api.tokens().seal("acme", MAC, 0).expect("seals");
    let router = api
        .clone()
        .router()
        .layer(MockConnectInfo(SocketAddr::from(PEER)));
    let built = Api {
        router,
        device_token,
        host_token: token.token,
    };
    let add = format!("/add.aspx?mac={}&dm=cam&myip=192.0.2.1", built.device_token);
    let (status, body) = built
        .send(Request::get(add).body(Body::empty()).expect("valid"))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "10|cam.dyn.example")
    );
    built
}

/// A device API whose answers no request can change: no account, host or device, one vendor
/// whose key no input holds, no flood quotas, no `cipher_form` (for the framing differential,
/// which asks it each request twice).
pub(crate) async fn stateless_api() -> Arc<DeviceApi> {
    let log: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    let apex = ZoneApex::with_defaults(Fqdn::parse(ZONE).expect("a valid zone"), 60);
    let snapshot = runtime::scratch_dir("stateless");
    let projector = Projector::open(&snapshot, Arc::new(LiveZone::new(vec![apex])), log.clone())
        .expect("the projector opens");
    let view = projector.view();
    runtime::spawn(projector.run());
    let vendors = [VendorConfig {
        name: "acme".into(),
        zone: ZONE.into(),
        keys: vec![VendorKey {
            id: 1,
            secret_hex: format!("{:064x}", rand_key()),
        }],
        max_age_secs: None,
        fields: Vec::new(),
    }];
    let config = IngestConfig {
        trusted_proxies: vec!["127.0.0.1".into()],
        flood: flood_off(),
        ..IngestConfig::default()
    };
    Arc::new(DeviceApi::new(&config, &vendors, log, view).expect("a valid config"))
}

/// A key no input holds: from the process's random hash seed and the clock.
fn rand_key() -> u128 {
    use std::hash::{BuildHasher, RandomState};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let state = RandomState::new();
    u128::from(state.hash_one(nanos)) << 64 | u128::from(state.hash_one(!nanos))
}

/// Every quota off: each input is judged on its own.
fn flood_off() -> FloodConfig {
    FloodConfig {
        device_updates_per_minute: 0,
        device_burst: 0,
        source_requests_per_minute: 0,
        source_burst: 0,
        password_guesses_per_host_per_minute: 0,
        password_guesses_per_source_per_minute: 0,
    }
}

/// One request, parsed from an input's lines.
pub(crate) struct Input<'a> {
    /// The method as sent.
    pub(crate) method: Method,
    /// The route's path.
    pub(crate) path: &'static str,
    query: Vec<u8>,
    user_agent: &'a [u8],
    authorization: Vec<u8>,
    forwarded_for: &'a [u8],
    body: Vec<u8>,
}

impl Api {
    /// Reads an input (see the module docs); the path is one of `routes` (another is mapped
    /// onto one of them). `None` if its first line is not a method.
    pub(crate) fn input<'a>(&self, routes: &[&'static str], data: &'a [u8]) -> Option<Input<'a>> {
        let mut lines = data.splitn(6, |&b| b == b'\n');
        let mut first = lines.next().unwrap_or_default().splitn(2, |&b| b == b' ');
        let method = Method::from_bytes(first.next().unwrap_or_default()).ok()?;
        let path = first.next().unwrap_or_default();
        let path = routes
            .iter()
            .find(|route| route.as_bytes() == path)
            .copied()
            .unwrap_or(routes[path.len() % routes.len()]);
        let mut next = || lines.next().unwrap_or_default();
        Some(Input {
            method,
            path,
            query: self.credentials(next()),
            user_agent: next(),
            authorization: self.credentials(next()),
            forwarded_for: next(),
            body: self.credentials(next()),
        })
    }

    /// `text` with the credential placeholders replaced.
    fn credentials(&self, text: &[u8]) -> Vec<u8> {
        if !text.contains(&b'@') {
            return text.to_vec();
        }
        let basic = |user: &str, password: &str| STANDARD.encode(format!("{user}:{password}"));
        let text = String::from_utf8_lossy(text)
            .replace("@HAUTH", &basic(HOST, &self.host_token))
            .replace("@AUTH", &basic(USER, PASSWORD))
            .replace("@TOKEN", &self.host_token)
            .replace("@PASS", PASSWORD)
            .replace("@MAC", &self.device_token);
        text.into_bytes()
    }

    /// The input as an HTTP request: the query percent-encoded where a URI needs it, headers
    /// that are not valid header values left out.
    pub(crate) fn request(&self, input: &Input<'_>) -> Request<Body> {
        let mut uri = input.path.to_owned();
        if !input.query.is_empty() {
            uri.push('?');
            uri_encode(&mut uri, &input.query);
        }
        let mut request = Request::builder()
            .method(input.method.clone())
            .uri(uri)
            .body(Body::from(input.body.clone()))
            .expect("a path and an encoded query make a valid URI");
        for (name, value) in [
            ("user-agent", input.user_agent),
            ("authorization", &input.authorization[..]),
            ("x-forwarded-for", input.forwarded_for),
        ] {
            if value.is_empty() {
                continue;
            }
            if let Ok(value) = HeaderValue::from_bytes(value) {
                request.headers_mut().insert(name, value);
            }
        }
        request
    }

    /// Sends `request` through the router: the status and the body (checked to be bounded).
    pub(crate) async fn send(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), REPLY_MAX)
            .await
            .unwrap_or_else(|error| panic!("a reply body over {REPLY_MAX} bytes ({error})"));
        let body = String::from_utf8(body.to_vec()).expect("a UTF-8 reply body");
        (status, body)
    }
}

/// Appends `bytes` to `uri`, percent-encoding every byte a URI's path or query cannot hold as
/// it is (RFC 3986: all but unreserved, sub-delims, `:`, `@`, `/`, `?` and `%`).
pub(crate) fn uri_encode(uri: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Runs one input of a device-API target through the router: `None` if it is not a request,
/// else the input, the status and the body. A `405` for a method the route does not take is
/// checked here; the caller checks the rest.
pub(crate) fn answer(
    routes: &[&'static str],
    data: &[u8],
) -> Option<(Method, &'static str, StatusCode, String)> {
    let api = api();
    let input = api.input(routes, data)?;
    let (status, body) = runtime::block_on(api.send(api.request(&input)));
    let takes = match input.path {
        "/present" | "/cleanup" => input.method == Method::POST,
        _ => input.method == Method::GET || input.method == Method::HEAD,
    };
    if !takes {
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {}",
            input.method,
            input.path
        );
        return None;
    }
    // The router reads at most 64 KiB of body (as `serve` does), whatever the route.
    if input.body.len() > 64 * 1024 {
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{}", input.path);
        return None;
    }
    if input.method == Method::HEAD {
        assert!(body.is_empty(), "a HEAD answered with a body");
        return None;
    }
    Some((input.method, input.path, status, body))
}
