//! The device API's test harness: the router over a real projector and an in-memory log,
//! without a socket.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use ddns_core::{
    AccountId, Event, EventBody, EventId, Fqdn, Label, LiveZone, ZoneApex, encode_event,
};
use ddns_ingest::{DeviceApi, FloodConfig, IngestConfig, PasswordHasher, VendorConfig, VendorKey};
use ddns_log::{AppendError, Appended, EventLog, LogPosition, LogReader, MemLog, ReadError};
use ddns_projector::{Projector, ProjectorView};
use tower::ServiceExt;

pub const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
pub const OTHER_KEY: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
pub const PEER: &str = "198.51.100.20:40000";

pub struct Harness {
    pub router: Router,
    pub api: Arc<DeviceApi>,
    pub view: ProjectorView,
    pub log: Arc<dyn EventLog>,
    _dir: tempfile::TempDir,
}

/// argon2 at a cost a debug build runs in a millisecond (stored hashes name their own cost).
pub fn cheap_hasher() -> Arc<PasswordHasher> {
    Arc::new(PasswordHasher::with_params(
        argon2::Params::new(64, 1, 1, None).expect("valid params"),
    ))
}

pub fn vendors() -> Vec<VendorConfig> {
    vec![
        VendorConfig {
            name: "acme".into(),
            zone: "dyn.example".into(),
            keys: vec![VendorKey {
                id: 1,
                secret_hex: KEY.into(),
            }],
            max_age_secs: None,
            fields: vec!["port".into(), "fw".into()],
        },
        VendorConfig {
            name: "fresh".into(),
            zone: "fresh.example".into(),
            keys: vec![VendorKey {
                id: 2,
                secret_hex: OTHER_KEY.into(),
            }],
            max_age_secs: Some(300),
            fields: vec![],
        },
    ]
}

pub async fn harness_with(config: IngestConfig, log: Arc<dyn EventLog>) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let apexes = ["dyn.example", "fresh.example"]
        .map(|z| ZoneApex::with_defaults(Fqdn::parse(z).expect("valid"), 60))
        .to_vec();
    let projector =
        Projector::open(dir.path(), Arc::new(LiveZone::new(apexes)), log.clone()).expect("opens");
    let view = projector.view();
    tokio::spawn(projector.run());
    let api = DeviceApi::new(&config, &vendors(), log.clone(), view.clone())
        .expect("valid config")
        .with_password_hasher(cheap_hasher());
    let api = Arc::new(api);
    let peer: SocketAddr = PEER.parse().expect("valid");
    let router = api.clone().router().layer(MockConnectInfo(peer));
    Harness {
        router,
        api,
        view,
        log,
        _dir: dir,
    }
}

/// A harness whose quotas leave room for a test's quick writes (the flood tests set their own).
pub async fn harness() -> Harness {
    let flood = FloodConfig {
        device_burst: 50,
        ..FloodConfig::default()
    };
    harness_with(
        IngestConfig {
            flood,
            ..IngestConfig::default()
        },
        Arc::new(MemLog::new(1)),
    )
    .await
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

impl Harness {
    pub fn token(&self, mac: &str) -> String {
        self.api
            .tokens()
            .seal("acme", mac, now_secs())
            .expect("seals")
    }

    pub async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let (status, _, body) = self.get_full(uri, headers).await;
        (status, body)
    }

    /// Status, `WWW-Authenticate` and body of `GET uri` with `headers`.
    pub async fn get_full(
        &self,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let body = String::from_utf8(body.to_vec()).expect("utf-8");
        (status, challenge, body)
    }

    pub async fn get(&self, uri: &str) -> String {
        let (status, body) = self.get_with(uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri:.80}");
        body
    }
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a [`BrokenLog`] cannot do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every append fails: nothing can be made durable.
    Append,
    /// A log shared with other nodes whose end cannot be read: this node cannot catch up
    /// before answering from its state.
    End,
    /// Appends are never confirmed (a frozen broker, while the producer keeps retrying).
    Stall,
}

/// A [`MemLog`] (folded as it is) with one fault.
pub struct BrokenLog(pub MemLog, pub Fault);

#[async_trait]
impl EventLog for BrokenLog {
    fn partitions(&self) -> u32 {
        self.0.partitions()
    }
    fn identity(&self) -> &str {
        self.0.identity()
    }
    fn shared(&self) -> bool {
        self.1 == Fault::End
    }
    async fn append(&self, key: &[u8], payload: Bytes) -> Result<Appended, AppendError> {
        match self.1 {
            Fault::Append => Err(AppendError::Closed),
            Fault::End => self.0.append(key, payload).await,
            Fault::Stall => std::future::pending().await,
        }
    }
    async fn end(&self) -> Result<LogPosition, ReadError> {
        match self.1 {
            Fault::Append | Fault::Stall => self.0.end().await,
            Fault::End => Err(ReadError::Io(std::io::Error::other(
                "the broker is unreachable",
            ))),
        }
    }
    async fn reader(&self, from: &LogPosition) -> Result<Box<dyn LogReader>, ReadError> {
        self.0.reader(from).await
    }
}

/// Appends `event` as another node would, and waits until the fold has it.
pub async fn append_folded(h: &Harness, event: &Event) {
    let payload = Bytes::from(encode_event(event).expect("encodes"));
    h.log.append(event.key(), payload).await.expect("appended");
    let end = h.log.end().await.expect("end");
    h.view.wait_applied(&end).await;
}

/// The account `brian` (account id 1, e-mail b@x.example, `account_password`), with hosts
/// `(label, group, host password)` in `dyn.example` (each group created once), as the portal
/// would make them.
pub async fn provision(h: &Harness, account_password: &str, hosts: &[(&str, Option<&str>, &str)]) {
    let hasher = cheap_hasher();
    let zone = Fqdn::parse("dyn.example").expect("valid");
    let mut id = 0u128;
    let mut next = |body| {
        id += 1;
        Event {
            id: EventId(if id == 1 { 1 } else { 1000 + id }),
            at_ms: 1,
            body,
        }
    };
    let mut events = vec![next(EventBody::AccountCreated {
        user_id: "brian".into(),
        email: "b@x.example".into(),
        password_hash: hasher.hash(account_password.into()).await.expect("hashes"),
    })];
    let mut groups: Vec<&str> = Vec::new();
    for (label, group, password) in hosts {
        if let Some(group) = group
            && !groups.contains(group)
        {
            groups.push(group);
            events.push(next(EventBody::GroupCreated {
                zone: zone.clone(),
                account: AccountId(1),
                group: Label::parse(group).expect("valid"),
            }));
        }
        events.push(next(EventBody::HostCreated {
            zone: zone.clone(),
            account: AccountId(1),
            group: group.map(|g| Label::parse(g).expect("valid")),
            host: Label::parse(label).expect("valid"),
            password_hash: hasher.hash((*password).into()).await.expect("hashes"),
            port: None,
        }));
    }
    for event in &events {
        append_folded(h, event).await;
    }
}

/// A new update token for `fqdn` (a host of account 1 in `dyn.example`), as the portal adds it.
pub async fn add_token(h: &Harness, fqdn: &str, id: u128) -> ddns_ingest::UpdateToken {
    let token = ddns_ingest::new_update_token();
    let event = Event {
        id: EventId(id),
        at_ms: 2,
        body: EventBody::HostTokenAdded {
            zone: Fqdn::parse("dyn.example").expect("valid"),
            account: AccountId(1),
            fqdn: Fqdn::parse(fqdn).expect("valid"),
            token_id: token.id.clone(),
            hash: token.hash.clone(),
        },
    };
    append_folded(h, &event).await;
    token
}

/// Revokes the update token `token_id` of `fqdn` (a host of account 1).
pub async fn revoke_token(h: &Harness, fqdn: &str, token_id: &str, id: u128) {
    let event = Event {
        id: EventId(id),
        at_ms: 3,
        body: EventBody::HostTokenRevoked {
            zone: Fqdn::parse("dyn.example").expect("valid"),
            account: AccountId(1),
            fqdn: Fqdn::parse(fqdn).expect("valid"),
            token_id: token_id.into(),
        },
    };
    append_folded(h, &event).await;
}
