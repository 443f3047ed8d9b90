//! TXT for ACME DNS-01 through the router: lego's and acme.sh's `httpreq` (`POST /present`,
//! `/cleanup`) and dyndns2's `txt=`, with each kind of credential, and malformed, oversized,
//! hostile and replayed input, which changes nothing.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use common::*;
use ddns_ingest::{FloodConfig, IngestConfig};
use ddns_log::MemLog;
use tower::ServiceExt;

const UA: (&str, &str) = ("user-agent", "acme-test/1");
const CHALLENGE: &[u8] = b"\x0f_acme-challenge\x03cam\x05brian\x03dyn\x07example\x00";
const DVR_CHALLENGE: &[u8] = b"\x0f_acme-challenge\x03dvr\x03dyn\x07example\x00";

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn config(device_burst: u32) -> IngestConfig {
    IngestConfig {
        flood: FloodConfig {
            device_burst,
            password_guesses_per_host_per_minute: 600,
            ..FloodConfig::default()
        },
        ..IngestConfig::default()
    }
}

/// Account `brian` (`account pw`) with `cam.brian.dyn.example` (`abc`) and `dvr.dyn.example`
/// (`xyz`); account `other` (`other pw`) with `x.dyn.example` (`zzz`).
async fn harness_with_hosts(device_burst: u32) -> Harness {
    let h = harness_with(config(device_burst), Arc::new(MemLog::new(2))).await;
    provision(
        &h,
        "account pw",
        &[("cam", Some("brian"), "abc"), ("dvr", None, "xyz")],
    )
    .await;
    h
}

struct Reply {
    status: StatusCode,
    content_type: Option<String>,
    challenge: Option<String>,
    allow: Option<String>,
    body: String,
}

async fn send(h: &Harness, method: &str, path: &str, auth: Option<&str>, body: &str) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = h
        .router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("infallible");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let (status, content_type) = (response.status(), header("content-type"));
    let (challenge, allow) = (header("www-authenticate"), header("allow"));
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    Reply {
        status,
        content_type,
        challenge,
        allow,
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

fn json(fqdn: &str, value: &str) -> String {
    serde_json::json!({ "fqdn": fqdn, "value": value }).to_string()
}

fn txt(h: &Harness, name: &[u8]) -> Vec<String> {
    h.view
        .zone()
        .txt_wire(name)
        .map(|values| values.iter().map(|v| v.to_string()).collect())
        .unwrap_or_default()
}

async fn events(h: &Harness) -> u64 {
    h.log.end().await.expect("end").total()
}

const CAM: &str = "_acme-challenge.cam.brian.dyn.example.";

#[tokio::test]
async fn present_and_cleanup_publish_and_withdraw_values_as_lego_sends_them() {
    let h = harness_with_hosts(50).await;
    let brian = basic("brian", "account pw");
    let reply = send(&h, "POST", "/present", Some(&brian), &json(CAM, "first")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let echoed: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    assert_eq!(echoed["fqdn"], CAM);
    assert_eq!(echoed["value"], "first", "acme.sh looks for the value");
    // Answered by DNS the moment the reply says so.
    assert_eq!(txt(&h, CHALLENGE), ["first"]);

    // A second value (the wildcard's) joins the first; the host's own password works too.
    let host = basic("cam.brian.dyn.example", "abc");
    let reply = send(&h, "POST", "/present", Some(&host), &json(CAM, "second")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(txt(&h, CHALLENGE), ["first", "second"]);

    // A retried present appends nothing.
    let before = events(&h).await;
    let reply = send(&h, "POST", "/present", Some(&brian), &json(CAM, "first")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(events(&h).await, before);

    // Cleanup by value, as lego does for each; a repeat changes nothing.
    for value in ["first", "second", "second"] {
        let reply = send(&h, "POST", "/cleanup", Some(&brian), &json(CAM, value)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    assert!(txt(&h, CHALLENGE).is_empty());
    assert_eq!(events(&h).await, before + 2);
}

#[tokio::test]
async fn an_update_token_may_present_for_its_host_only() {
    let h = harness_with_hosts(50).await;
    let token = add_token(&h, "dvr.dyn.example", 900).await;
    let auth = basic("dvr.dyn.example", &token.token);
    let dvr = "_acme-challenge.dvr.dyn.example";
    let reply = send(&h, "POST", "/present", Some(&auth), &json(dvr, "t")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(txt(&h, DVR_CHALLENGE), ["t"]);
    // The token names its host: another host of the same account is not its to change.
    let reply = send(&h, "POST", "/present", Some(&auth), &json(CAM, "t")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert!(txt(&h, CHALLENGE).is_empty());
}

#[tokio::test]
async fn no_or_wrong_credentials_get_the_challenge_and_change_nothing() {
    let h = harness_with_hosts(50).await;
    let before = events(&h).await;
    for auth in [
        None,
        Some(basic("brian", "wrong")),
        Some(basic("nobody", "account pw")),
        Some(basic("cam.brian.dyn.example", "xyz")),
        Some("Bearer abc".to_owned()),
        Some("Basic !!!".to_owned()),
    ] {
        let reply = send(&h, "POST", "/present", auth.as_deref(), &json(CAM, "v")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(reply.challenge.as_deref(), Some("Basic realm=\"ddnsd\""));
    }
    assert!(txt(&h, CHALLENGE).is_empty());
    assert_eq!(events(&h).await, before);
}

#[tokio::test]
async fn another_accounts_host_or_no_host_is_not_found() {
    let h = harness_with_hosts(50).await;
    let dvr = basic("dvr.dyn.example", "xyz");
    let before = events(&h).await;
    for fqdn in [
        CAM,
        "_acme-challenge.nope.dyn.example.",
        "_acme-challenge.other.example.",
    ] {
        let reply = send(&h, "POST", "/present", Some(&dvr), &json(fqdn, "v")).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{fqdn}: {}",
            reply.body
        );
    }
    assert!(txt(&h, CHALLENGE).is_empty());
    assert_eq!(events(&h).await, before);
}

#[tokio::test]
async fn malformed_oversized_and_hostile_bodies_are_refused_and_change_nothing() {
    let h = harness_with_hosts(50).await;
    let brian = basic("brian", "account pw");
    let before = events(&h).await;
    let long = "v".repeat(256);
    let bodies = [
        String::new(),
        "not json".into(),
        r#"{"fqdn": "_acme-challenge.cam.brian.dyn.example."}"#.into(),
        r#"{"fqdn": 7, "value": "v"}"#.into(),
        r#"["_acme-challenge.cam.brian.dyn.example.", "v"]"#.into(),
        json("cam.brian.dyn.example.", "no challenge label"),
        json("_acme-challenge.", "v"),
        json(CAM, ""),
        json(CAM, &long),
        json(CAM, "new\nline"),
        json(CAM, "\"quoted\" \u{0}"),
        json(CAM, "ünïcode"),
        format!("{}{}", json(CAM, "v"), "trailing"),
    ];
    for body in &bodies {
        let reply = send(&h, "POST", "/present", Some(&brian), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:.60}");
        assert!(!reply.body.is_empty(), "a 400 says why");
    }
    // Over the largest body the server reads.
    let huge = json(CAM, &"v".repeat(70_000));
    let reply = send(&h, "POST", "/present", Some(&brian), &huge).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(txt(&h, CHALLENGE).is_empty());
    assert_eq!(events(&h).await, before);
}

#[tokio::test]
async fn present_takes_post_only_and_the_device_paths_no_post() {
    let h = harness_with_hosts(50).await;
    let reply = send(&h, "GET", "/present", None, "").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let reply = send(&h, "POST", "/nic/update", None, "").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(reply.allow.is_some_and(|allow| allow.contains("GET")));
}

#[tokio::test]
async fn dyndns2_txt_sets_and_clears_values_per_hostname() {
    let h = harness_with_hosts(50).await;
    let brian = basic("brian", "account pw");
    let auth = ("authorization", brian.as_str());
    let hosts = "hostname=cam.brian.dyn.example,dvr.dyn.example";
    let set = format!("/nic/update?{hosts}&txt=abc-123");
    assert_eq!(h.get_with(&set, &[UA, auth]).await.1, "good\ngood\n");
    assert_eq!(txt(&h, CHALLENGE), ["abc-123"]);
    assert_eq!(txt(&h, DVR_CHALLENGE), ["abc-123"]);
    // Addresses are untouched by a TXT request.
    assert!(h.view.zone().get("cam.brian.dyn.example").is_none());
    assert_eq!(h.get_with(&set, &[UA, auth]).await.1, "nochg\nnochg\n");
    let other = "/nic/update?hostname=cam.brian.dyn.example&txt=second";
    assert_eq!(h.get_with(other, &[UA, auth]).await.1, "good\n");
    let clear_one = format!("/nic/update?{hosts}&txt=abc-123&clear=true");
    assert_eq!(h.get_with(&clear_one, &[UA, auth]).await.1, "good\ngood\n");
    assert_eq!(txt(&h, CHALLENGE), ["second"]);
    let clear_all = "/nic/update?hostname=cam.brian.dyn.example&txt=&clear=true";
    assert_eq!(h.get_with(clear_all, &[UA, auth]).await.1, "good\n");
    assert!(txt(&h, CHALLENGE).is_empty());

    // Bad values are dnserr for every line; a host not the caller's is nohost.
    let before = events(&h).await;
    for bad in ["txt=", "txt=%0A", &format!("txt={}", "v".repeat(256))] {
        let uri = format!("/nic/update?{hosts}&{bad}");
        assert_eq!(
            h.get_with(&uri, &[UA, auth]).await.1,
            "dnserr\ndnserr\n",
            "{bad:.20}"
        );
    }
    let dvr = basic("dvr.dyn.example", "xyz");
    let uri = "/nic/update?hostname=cam.brian.dyn.example,bad..name&txt=v";
    let body = h.get_with(uri, &[UA, ("authorization", &dvr)]).await.1;
    assert_eq!(body, "nohost\nnotfqdn\n");
    assert_eq!(events(&h).await, before);
}

#[tokio::test]
async fn challenge_changes_have_their_own_quota_per_host() {
    let h = harness_with_hosts(3).await;
    let brian = basic("brian", "account pw");
    for i in 0..3 {
        let reply = send(
            &h,
            "POST",
            "/present",
            Some(&brian),
            &json(CAM, &format!("v{i}")),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{i}");
    }
    let reply = send(&h, "POST", "/present", Some(&brian), &json(CAM, "v3")).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(txt(&h, CHALLENGE), ["v0", "v1", "v2"]);
    // The host's address updates are not charged for them.
    let uri = "/nic/update?hostname=cam.brian.dyn.example&myip=192.0.2.7";
    let auth = ("authorization", brian.as_str());
    assert_eq!(h.get_with(uri, &[UA, auth]).await.1, "good 192.0.2.7\n");
}

#[tokio::test]
async fn a_log_that_fails_is_503_and_publishes_nothing() {
    let mem = MemLog::new(2);
    let working = harness_with(config(50), Arc::new(mem.clone())).await;
    provision(&working, "account pw", &[("dvr", None, "xyz")]).await;
    drop(working);
    let h = harness_with(config(50), Arc::new(BrokenLog(mem, Fault::Append))).await;
    h.view.wait_applied(&h.log.end().await.expect("end")).await;
    let auth = basic("dvr.dyn.example", "xyz");
    let dvr = "_acme-challenge.dvr.dyn.example.";
    let reply = send(&h, "POST", "/present", Some(&auth), &json(dvr, "v")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(txt(&h, DVR_CHALLENGE).is_empty());
    let uri = "/nic/update?hostname=dvr.dyn.example&txt=v";
    assert_eq!(
        h.get_with(uri, &[UA, ("authorization", &auth)]).await.1,
        "dnserr\n"
    );
}
