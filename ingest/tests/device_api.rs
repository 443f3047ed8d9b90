//! The device API through its router, without a socket: every reply code of SPEC §2, and
//! malformed, oversized, hostile and replayed input.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use bytes::Bytes;
use common::*;
use ddns_core::{DeviceId, Fqdn};
use ddns_ingest::{FloodConfig, IngestConfig, VendorKey};
use ddns_log::{EventLog, LogPosition, MemLog};

#[tokio::test]
async fn add_update_ipcheck_remove() {
    let h = harness().await;
    let m = enc(&h.token("E0:46:9A:B8:1B:FC"));
    assert_eq!(h.get(&format!("/ipcheck.aspx?mac={m}")).await, "13");
    assert_eq!(
        h.get(&format!("/update.aspx?mac={m}&myip=192.0.2.1")).await,
        "13"
    );
    assert_eq!(h.get(&format!("/remove.aspx?mac={m}")).await, "13");
    assert_eq!(
        h.get(&format!("/add.aspx?mac={m}&dm=Cam42&myip=192.0.2.1"))
            .await,
        "10|cam42.dyn.example"
    );
    assert_eq!(
        h.get(&format!("/add.aspx?mac={m}&dm=cam42&myip=192.0.2.1"))
            .await,
        "08"
    );
    assert_eq!(
        h.get(&format!("/add.aspx?mac={m}&dm=cam42&myip=192.0.2.2"))
            .await,
        "09"
    );
    assert_eq!(
        h.get(&format!("/ipcheck.aspx?mac={m}")).await,
        "14|192.0.2.2"
    );
    assert_eq!(
        h.get(&format!("/update.aspx?mac={m}&myip=192.0.2.2")).await,
        "08"
    );
    assert_eq!(
        h.get(&format!("/update.aspx?mac={m}&myip=192.0.2.3")).await,
        "09"
    );
    assert_eq!(
        h.get(&format!("/update.aspx?mac={m}&myip=2001:db8::7"))
            .await,
        "09"
    );
    let zone = h.view.zone();
    let host = zone.get("cam42.dyn.example").expect("in the zone");
    assert_eq!(
        host.v4,
        Some("192.0.2.3".parse().expect("valid")),
        "v6 update kept the A record"
    );
    assert_eq!(host.v6, Some("2001:db8::7".parse().expect("valid")));
    // No myip: the source address.
    assert_eq!(h.get(&format!("/update.aspx?mac={m}")).await, "09");
    assert_eq!(
        h.get(&format!("/ipcheck.aspx?mac={m}")).await,
        "14|198.51.100.20"
    );
    assert_eq!(h.get(&format!("/remove.aspx?mac={m}")).await, "15");
    assert_eq!(h.get(&format!("/remove.aspx?mac={m}")).await, "13");
    assert!(zone.get("cam42.dyn.example").is_none());
}

#[tokio::test]
async fn a_name_has_one_owner_and_a_rename_frees_it() {
    let h = harness().await;
    let (a, b) = (enc(&h.token("AA")), enc(&h.token("BB")));
    assert_eq!(
        h.get(&format!("/add.aspx?mac={a}&dm=cam&myip=192.0.2.1"))
            .await,
        "10|cam.dyn.example"
    );
    assert_eq!(
        h.get(&format!("/add.aspx?mac={b}&dm=cam&myip=192.0.2.2"))
            .await,
        "07"
    );
    assert_eq!(
        h.get(&format!("/add.aspx?mac={a}&dm=cam2&myip=192.0.2.1"))
            .await,
        "10|cam2.dyn.example"
    );
    assert_eq!(
        h.get(&format!("/add.aspx?mac={b}&dm=cam&myip=192.0.2.2"))
            .await,
        "10|cam.dyn.example"
    );
    let owner_addr = h.view.zone().get("cam.dyn.example").and_then(|a| a.v4);
    assert_eq!(owner_addr, Some("192.0.2.2".parse().expect("valid")));
}

#[tokio::test]
async fn racing_devices_get_one_created_and_the_rest_taken() {
    let h = Arc::new(harness().await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let m = enc(&h.token(&format!("RACE{i}")));
            h.get(&format!("/add.aspx?mac={m}&dm=contested&myip=192.0.2.{i}"))
                .await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    let created = replies
        .iter()
        .filter(|r| *r == "10|contested.dyn.example")
        .count();
    assert_eq!(created, 1, "{replies:?}");
    assert_eq!(
        replies.iter().filter(|r| *r == "07").count(),
        15,
        "{replies:?}"
    );
}

#[tokio::test]
async fn invalid_hostnames_are_01_and_change_nothing() {
    let h = harness().await;
    let m = enc(&h.token("AA"));
    let long = "a".repeat(64);
    let huge = "b".repeat(60_000);
    let names = [
        "",
        "%20",
        "a.b",
        "-cam",
        "cam-",
        "ca_m",
        "caf%C3%A9",
        "a%00b",
        &long,
        &huge,
    ];
    for dm in names {
        let uri = format!("/add.aspx?mac={m}&dm={dm}&myip=192.0.2.1");
        assert_eq!(h.get(&uri).await, "01", "dm={dm:.20}");
    }
    assert_eq!(
        h.get(&format!("/add.aspx?mac={m}&myip=192.0.2.1")).await,
        "01",
        "dm missing"
    );
    assert!(h.view.zone().is_empty());
    assert_eq!(
        h.view.applied(),
        LogPosition::default(),
        "nothing was appended"
    );
}

#[tokio::test]
async fn invalid_addresses_are_04_and_change_nothing() {
    let h = harness().await;
    let m = enc(&h.token("AA"));
    let huge = "1".repeat(60_000);
    let addrs = [
        "abc",
        "999.1.1.1",
        "1.2.3",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::",
        "ff02::1",
        "1.2.3.4%20x",
        &huge,
    ];
    for ip in addrs {
        let uri = format!("/add.aspx?mac={m}&dm=cam&myip={ip}");
        assert_eq!(h.get(&uri).await, "04", "myip={ip:.20}");
    }
    assert_eq!(
        h.get(&format!("/add.aspx?mac={m}&dm=cam&myip=192.0.2.1"))
            .await,
        "10|cam.dyn.example"
    );
    assert_eq!(
        h.get(&format!("/update.aspx?mac={m}&myip=nonsense")).await,
        "04"
    );
    assert_eq!(
        h.get(&format!("/ipcheck.aspx?mac={m}")).await,
        "14|192.0.2.1"
    );
}

#[tokio::test]
async fn bad_credentials_are_02_on_every_path() {
    let h = harness().await;
    let good = h.token("AA");
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    // Sealed under a key this server does not have, with an id it does have.
    let wrong_key = ddns_ingest::TokenBook::new(vec![ddns_ingest::VendorCredentials {
        vendor: "acme".into(),
        keys: vec![VendorKey {
            id: 1,
            secret_hex: "11".repeat(32),
        }],
        max_age_secs: None,
    }])
    .expect("valid")
    .seal("acme", "AA", now_secs())
    .expect("seals");
    let huge = "A".repeat(60_000);
    let half = &good[..good.len() / 2];
    let bad = [
        "",
        "garbage",
        "%00%01%02",
        &tampered,
        &wrong_key,
        half,
        &huge,
    ];
    let paths = [
        "add.aspx?dm=cam&myip=192.0.2.1&",
        "update.aspx?myip=192.0.2.1&",
        "remove.aspx?",
        "ipcheck.aspx?",
    ];
    for mac in bad {
        let m = enc(mac);
        for path in paths {
            assert_eq!(
                h.get(&format!("/{path}mac={m}")).await,
                "02",
                "{path} mac={mac:.20}"
            );
        }
    }
    assert_eq!(
        h.get("/add.aspx?dm=cam&myip=192.0.2.1").await,
        "02",
        "mac missing"
    );
    assert!(h.view.zone().is_empty());
}

#[tokio::test]
async fn stale_and_replayed_tokens_are_02_for_vendors_that_require_fresh_ones() {
    let h = harness().await;
    let tokens = h.api.tokens();
    let stale = enc(&tokens
        .seal("fresh", "AA", now_secs() - 3600)
        .expect("seals"));
    assert_eq!(
        h.get(&format!("/add.aspx?mac={stale}&dm=cam&myip=192.0.2.1"))
            .await,
        "02"
    );
    let fresh = enc(&tokens.seal("fresh", "AA", now_secs()).expect("seals"));
    assert_eq!(
        h.get(&format!("/add.aspx?mac={fresh}&dm=cam&myip=192.0.2.1"))
            .await,
        "10|cam.fresh.example"
    );
    assert_eq!(
        h.get(&format!("/update.aspx?mac={fresh}&myip=192.0.2.2"))
            .await,
        "02",
        "replayed"
    );
    let next = enc(&tokens.seal("fresh", "AA", now_secs()).expect("seals"));
    assert_eq!(
        h.get(&format!("/ipcheck.aspx?mac={next}")).await,
        "14|192.0.2.1",
        "the replay changed nothing"
    );
}

#[tokio::test]
async fn a_flooding_device_gets_911_while_another_still_gets_09() {
    let flood = FloodConfig {
        device_updates_per_minute: 2,
        device_burst: 3,
        ..FloodConfig::default()
    };
    let h = harness_with(
        IngestConfig {
            flood,
            ..IngestConfig::default()
        },
        Arc::new(MemLog::new(1)),
    )
    .await;
    let (flooder, calm) = (enc(&h.token("FLOOD")), enc(&h.token("CALM")));
    assert_eq!(
        h.get(&format!("/add.aspx?mac={calm}&dm=calm&myip=192.0.2.1"))
            .await,
        "10|calm.dyn.example"
    );
    let mut replies = Vec::new();
    for i in 0..10 {
        replies.push(
            h.get(&format!(
                "/add.aspx?mac={flooder}&dm=flood&myip=192.0.2.{i}"
            ))
            .await,
        );
    }
    assert_eq!(
        replies[..3],
        ["10|flood.dyn.example", "09", "09"],
        "the burst is served"
    );
    assert!(replies[3..].iter().all(|r| r == "911"), "{replies:?}");
    assert_eq!(
        h.get(&format!("/update.aspx?mac={calm}&myip=192.0.2.9"))
            .await,
        "09"
    );
}

#[tokio::test]
async fn a_flooding_source_gets_911_even_with_bad_credentials() {
    let flood = FloodConfig {
        source_requests_per_minute: 1,
        source_burst: 5,
        ..FloodConfig::default()
    };
    let h = harness_with(
        IngestConfig {
            flood,
            ..IngestConfig::default()
        },
        Arc::new(MemLog::new(1)),
    )
    .await;
    let mut replies = Vec::new();
    for _ in 0..8 {
        replies.push(h.get("/ipcheck.aspx?mac=guess").await);
    }
    assert_eq!(replies[..5], ["02"; 5]);
    assert_eq!(
        replies[5..],
        ["911"; 3],
        "brute-forcing tokens is throttled"
    );
    assert_eq!(h.get("/ipdetect.aspx").await, "911");
}

#[tokio::test]
async fn ipdetect_and_forwarded_for() {
    let h = harness().await;
    assert_eq!(h.get("/ipdetect.aspx").await, "198.51.100.20");
    let (_, untrusted) = h
        .get_with("/ipdetect.aspx", &[("x-forwarded-for", "203.0.113.5")])
        .await;
    assert_eq!(
        untrusted, "198.51.100.20",
        "X-Forwarded-For from an untrusted peer is ignored"
    );
    let config = IngestConfig {
        trusted_proxies: vec!["198.51.100.0/24".into()],
        ..IngestConfig::default()
    };
    let h = harness_with(config, Arc::new(MemLog::new(1))).await;
    let (_, trusted) = h
        .get_with("/ipdetect.aspx", &[("x-forwarded-for", "203.0.113.5")])
        .await;
    assert_eq!(trusted, "203.0.113.5");
    let m = enc(&h.token("AA"));
    let forwarded = [("x-forwarded-for", "203.0.113.5")];
    let (_, added) = h
        .get_with(&format!("/add.aspx?mac={m}&dm=cam"), &forwarded)
        .await;
    assert_eq!(added, "10|cam.dyn.example");
    assert_eq!(
        h.get(&format!("/ipcheck.aspx?mac={m}")).await,
        "14|203.0.113.5"
    );
}

#[tokio::test]
async fn user_agent_and_vendor_fields_are_stored_with_the_device() {
    let h = harness().await;
    let m = enc(&h.token("e0:46:9a:b8:1b:fc"));
    let uri = format!("/add.aspx?mac={m}&dm=cam&myip=192.0.2.1&port=8080&fw=1.2.3&secret=nope");
    let (_, body) = h
        .get_with(&uri, &[("user-agent", "Acme - Cam - 1.0")])
        .await;
    assert_eq!(body, "10|cam.dyn.example");
    let device = DeviceId {
        vendor: "acme".into(),
        mac: "E0:46:9A:B8:1B:FC".into(),
    };
    let stored = h
        .view
        .with_state(|s| s.device(&device).map(|d| d.to_device()))
        .expect("stored, MAC normalised");
    assert_eq!(stored.user_agent, "Acme - Cam - 1.0");
    let expected = vec![
        ("port".into(), "8080".into()),
        ("fw".into(), "1.2.3".into()),
    ];
    assert_eq!(
        stored.fields, expected,
        "only the vendor's configured fields"
    );
}

/// A log whose appends always fail, to provoke `12` and `16`.
#[tokio::test]
async fn an_append_that_fails_is_12_or_16_and_acknowledges_nothing() {
    let mem = MemLog::new(1);
    // Register a device through the working log first, so remove has something to remove.
    let event = ddns_core::Event {
        id: ddns_core::EventId(1),
        at_ms: 0,
        body: ddns_core::EventBody::DeviceAdd {
            device: DeviceId {
                vendor: "acme".into(),
                mac: "AA".into(),
            },
            zone: Fqdn::parse("dyn.example").expect("valid"),
            label: ddns_core::Label::parse("cam").expect("valid"),
            addr: "192.0.2.1".parse().expect("valid"),
            user_agent: String::new(),
            fields: vec![],
        },
    };
    let payload = Bytes::from(ddns_core::encode_event(&event).expect("encodes"));
    mem.append(event.key(), payload).await.expect("appended");
    let h = harness_with(
        IngestConfig::default(),
        Arc::new(BrokenLog(mem, Fault::Append)),
    )
    .await;
    h.view
        .wait_applied(&LogPosition::from_offsets(vec![1]))
        .await;
    let (m, other) = (enc(&h.token("AA")), enc(&h.token("BB")));
    assert_eq!(
        h.get(&format!("/add.aspx?mac={other}&dm=new&myip=192.0.2.1"))
            .await,
        "12"
    );
    assert_eq!(
        h.get(&format!("/update.aspx?mac={m}&myip=192.0.2.2")).await,
        "12"
    );
    assert_eq!(h.get(&format!("/remove.aspx?mac={m}")).await, "16");
    assert_eq!(
        h.get(&format!("/ipcheck.aspx?mac={m}")).await,
        "14|192.0.2.1",
        "nothing changed"
    );
}

#[tokio::test]
async fn an_append_never_confirmed_is_12_within_the_reply_timeout() {
    let config = IngestConfig {
        reply_timeout_ms: 300,
        ..IngestConfig::default()
    };
    let h = harness_with(config, Arc::new(BrokenLog(MemLog::new(1), Fault::Stall))).await;
    let m = enc(&h.token("AA"));
    // Without the deadline on the append the request would wait as long as the log retries
    // (here: for ever).
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        h.get(&format!("/add.aspx?mac={m}&dm=cam&myip=192.0.2.1")),
    )
    .await
    .expect("answered, not held while the log retries");
    assert_eq!(reply, "12", "outcome unknown");
}

#[tokio::test]
async fn the_cipher_form_is_off_unless_configured() {
    let h = harness().await;
    let (status, _) = h.get_with("/cipher.aspx?mac=AA&vendor=acme", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let config = IngestConfig {
        cipher_form: true,
        ..IngestConfig::default()
    };
    let h = harness_with(config, Arc::new(MemLog::new(1))).await;
    let token = h.get("/cipher.aspx?mac=AA&vendor=acme").await;
    let uri = format!("/add.aspx?mac={}&dm=cam&myip=192.0.2.1", enc(&token));
    assert_eq!(h.get(&uri).await, "10|cam.dyn.example");
    let (status, _) = h.get_with("/cipher.aspx?mac=AA", &[]).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "two vendors: the vendor must be named"
    );
}
