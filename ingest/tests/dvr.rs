//! The DVR host-password protocol through the router: every reply of its table, one address
//! family at a time, the host's status, throttled guesses, and malformed, oversized, hostile
//! and replayed input.

mod common;

use std::sync::Arc;

use common::*;
use ddns_core::{Fqdn, HostStatus};
use ddns_ingest::{FloodConfig, IngestConfig, PasswordHasher};
use ddns_log::MemLog;

const HOST: &str = "cam.brian.dyn.example";

/// The account `brian` (account 1), its group and the host `cam.brian.dyn.example` with
/// `password`.
async fn with_host(h: &Harness, password: &str) {
    provision(h, "unused", &[("cam", Some("brian"), password)]).await;
}

fn status(h: &Harness) -> HostStatus {
    let name = Fqdn::parse(HOST).expect("valid");
    h.view
        .with_state(|s| s.account_host(&name).expect("exists").status)
}

async fn events(h: &Harness) -> u64 {
    h.log.end().await.expect("end").total()
}

/// Room for a test's quick writes and wrong passwords (the flood tests set their own).
fn lenient() -> IngestConfig {
    IngestConfig {
        flood: FloodConfig {
            device_burst: 50,
            password_guesses_per_host_per_minute: 600,
            ..FloodConfig::default()
        },
        ..IngestConfig::default()
    }
}

#[tokio::test]
async fn act_sets_one_family_durably_and_a_repeat_appends_nothing() {
    let h = harness_with(lenient(), Arc::new(MemLog::new(2))).await;
    with_host(&h, "abc").await;
    assert_eq!(status(&h), HostStatus::Standby);
    let before = events(&h).await;
    let uri = format!("/dvr/update?host={HOST}&pw=abc&ip=203.0.113.5");
    assert_eq!(h.get(&uri).await, "ACT");
    assert_eq!(events(&h).await, before + 1);
    let addrs = h.view.zone().get(HOST).expect("in DNS");
    assert_eq!(addrs.v4, Some("203.0.113.5".parse().expect("valid")));
    assert_eq!(status(&h), HostStatus::Ok);
    // Replayed: answered from memory.
    assert_eq!(h.get(&uri).await, "ACT");
    assert_eq!(events(&h).await, before + 1, "no event for a no-op");
    // IPv6 sets AAAA and leaves A alone; the FQDN is case-insensitive and may end in a dot.
    let v6 = "/dvr/update?host=CAM.Brian.dyn.example.&pw=abc&ip=2001:db8::5";
    assert_eq!(h.get(v6).await, "ACT");
    let addrs = h.view.zone().get(HOST).expect("in DNS");
    assert_eq!(addrs.v4, Some("203.0.113.5".parse().expect("valid")));
    assert_eq!(addrs.v6, Some("2001:db8::5".parse().expect("valid")));
    // No `ip`: the source address.
    assert_eq!(
        h.get(&format!("/dvr/update?host={HOST}&pw=abc")).await,
        "ACT"
    );
    let addrs = h.view.zone().get(HOST).expect("in DNS");
    assert_eq!(addrs.v4, Some("198.51.100.20".parse().expect("valid")));
}

#[tokio::test]
async fn every_error_of_the_table() {
    let h = harness_with(lenient(), Arc::new(MemLog::new(1))).await;
    with_host(&h, "abc").await;
    let before = events(&h).await;
    let cases = [
        ("/dvr/update?host=nope.dyn.example&pw=abc", "ERR 0x80008001"),
        ("/dvr/update?pw=abc", "ERR 0x80008001"),
        ("/dvr/update?host=..&pw=abc", "ERR 0x80008001"),
        ("/dvr/update?host=%3Cscript%3E&pw=abc", "ERR 0x80008001"),
        (
            &format!("/dvr/update?host={HOST}&pw=abd")[..],
            "ERR 0x80008002",
        ),
        (&format!("/dvr/update?host={HOST}")[..], "ERR 0x80008002"),
        (
            &format!("/dvr/update?host={HOST}&pw=ABC")[..],
            "ERR 0x80008002",
        ),
    ];
    for (uri, reply) in cases {
        assert_eq!(h.get(uri).await, reply, "{uri}");
    }
    let long = format!("/dvr/update?host={}.dyn.example&pw=abc", "a".repeat(300));
    assert_eq!(h.get(&long).await, "ERR 0x80008001");
    assert_eq!(events(&h).await, before, "rejections change nothing");
    assert_eq!(
        status(&h),
        HostStatus::Standby,
        "a wrong password paints nothing"
    );
    // A bad address with the right password: the host shows ERROR, one event however often.
    for ip in [
        "banana",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::",
        "1.2.3.4.5",
    ] {
        let uri = format!("/dvr/update?host={HOST}&pw=abc&ip={ip}");
        assert_eq!(h.get(&uri).await, "ERR 0x80008003", "{ip}");
    }
    assert_eq!(status(&h), HostStatus::Error);
    assert_eq!(events(&h).await, before + 1);
    assert!(h.view.zone().get(HOST).is_none());
    // The next good update makes it OK again.
    let ok = format!("/dvr/update?host={HOST}&pw=abc&ip=192.0.2.9");
    assert_eq!(h.get(&ok).await, "ACT");
    assert_eq!(status(&h), HostStatus::Ok);
}

#[tokio::test]
async fn password_guesses_are_throttled_per_host_but_a_known_dvr_goes_on() {
    let config = IngestConfig {
        flood: FloodConfig {
            device_burst: 50,
            ..FloodConfig::default()
        },
        ..IngestConfig::default()
    };
    let h = harness_with(config, Arc::new(MemLog::new(1))).await;
    with_host(&h, "abc").await;
    // The DVR's first update: its password is checked once and remembered.
    let good = format!("/dvr/update?host={HOST}&pw=abc&ip=192.0.2.1");
    assert_eq!(h.get(&good).await, "ACT");
    // A guesser: the host's quota (6 a minute, bursts of 3; the first check spent one).
    let mut replies = Vec::new();
    for guess in ["aaa", "aab", "aac", "aad", "aae"] {
        replies.push(h.get(&format!("/dvr/update?host={HOST}&pw={guess}")).await);
    }
    assert_eq!(
        replies,
        [
            "ERR 0x80008002",
            "ERR 0x80008002",
            "ERR 0x80008004",
            "ERR 0x80008004",
            "ERR 0x80008004"
        ]
    );
    // The DVR is answered from memory: no argon2 run, nothing charged.
    let next = format!("/dvr/update?host={HOST}&pw=abc&ip=192.0.2.2");
    assert_eq!(h.get(&next).await, "ACT");
    let addrs = h.view.zone().get(HOST).expect("in DNS");
    assert_eq!(addrs.v4, Some("192.0.2.2".parse().expect("valid")));
}

#[tokio::test]
async fn a_flooding_source_gets_err_4() {
    let config = IngestConfig {
        flood: FloodConfig {
            source_requests_per_minute: 60,
            source_burst: 3,
            ..FloodConfig::default()
        },
        ..IngestConfig::default()
    };
    let h = harness_with(config, Arc::new(MemLog::new(1))).await;
    with_host(&h, "abc").await;
    let uri = format!("/dvr/update?host={HOST}&pw=abc&ip=192.0.2.1");
    let mut replies = Vec::new();
    for _ in 0..5 {
        replies.push(h.get(&uri).await);
    }
    assert_eq!(
        replies,
        ["ACT", "ACT", "ACT", "ERR 0x80008004", "ERR 0x80008004"]
    );
}

#[tokio::test]
async fn an_append_that_fails_is_err_5_and_acknowledges_nothing() {
    let mem = MemLog::new(1);
    let working = harness_with(lenient(), Arc::new(mem.clone())).await;
    with_host(&working, "abc").await;
    drop(working);
    let h = harness_with(lenient(), Arc::new(BrokenLog(mem, Fault::Append))).await;
    let end = h.log.end().await.expect("end");
    h.view.wait_applied(&end).await;
    let uri = format!("/dvr/update?host={HOST}&pw=abc&ip=192.0.2.1");
    assert_eq!(h.get(&uri).await, "ERR 0x80008005");
    assert!(h.view.zone().get(HOST).is_none());
    assert_eq!(status(&h), HostStatus::Standby);
}

#[tokio::test]
async fn the_default_hasher_is_owasps_argon2id() {
    // What DeviceApi::new uses unless the server shares its own.
    let hash = PasswordHasher::new()
        .hash("abc".into())
        .await
        .expect("hashes");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

#[tokio::test]
async fn an_update_token_works_as_the_password_until_revoked() {
    let h = harness_with(lenient(), Arc::new(MemLog::new(2))).await;
    with_host(&h, "abc").await;
    let token = add_token(&h, HOST, 900).await;
    let uri = |ip: &str| format!("/dvr/update?host={HOST}&pw={}&ip={ip}", token.token);
    assert_eq!(h.get(&uri("192.0.2.50")).await, "ACT");
    assert_eq!(
        h.view.zone().get(HOST).and_then(|a| a.v4),
        Some("192.0.2.50".parse().expect("valid"))
    );
    // The password still works beside it.
    assert_eq!(
        h.get(&format!("/dvr/update?host={HOST}&pw=abc&ip=192.0.2.51"))
            .await,
        "ACT"
    );
    revoke_token(&h, HOST, &token.id, 901).await;
    assert_eq!(h.get(&uri("192.0.2.52")).await, "ERR 0x80008002");
}
