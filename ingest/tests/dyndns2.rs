//! dyndns2 through the router: every reply word, the three address dialects, the credentials
//! (account, host, Basic or URL), the abuse mark, checkip, and malformed, oversized, hostile
//! and replayed input.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use ddns_core::{AccountId, EventBody, Fqdn, HostAddrs};
use ddns_ingest::{FloodConfig, IngestConfig};
use ddns_log::{EventLog, MemLog};
use ddns_projector::Committer;

const UA: (&str, &str) = ("user-agent", "ddclient/3.10.0");
/// `brian:account pw` in base64.
const BRIAN: (&str, &str) = ("authorization", "Basic YnJpYW46YWNjb3VudCBwdw==");

fn config(nochg_abuse_threshold: u32) -> IngestConfig {
    IngestConfig {
        flood: FloodConfig {
            device_burst: 50,
            password_guesses_per_host_per_minute: 600,
            ..FloodConfig::default()
        },
        nochg_abuse_threshold,
        ..IngestConfig::default()
    }
}

/// Account `brian` (password `account pw`) with `cam.brian.dyn.example` (`abc`) and
/// `dvr.dyn.example` (`xyz`).
async fn harness_with_hosts(threshold: u32) -> Harness {
    let h = harness_with(config(threshold), Arc::new(MemLog::new(2))).await;
    provision(
        &h,
        "account pw",
        &[("cam", Some("brian"), "abc"), ("dvr", None, "xyz")],
    )
    .await;
    h
}

fn addrs(h: &Harness, name: &str) -> Option<HostAddrs> {
    h.view.zone().get(name)
}

async fn events(h: &Harness) -> u64 {
    h.log.end().await.expect("end").total()
}

/// No error line may say `good` or `OK`: inadyn matches reply words as substrings.
fn assert_no_success_words(body: &str) {
    for line in body.lines() {
        if !line.starts_with("good ") && !line.starts_with("nochg ") {
            assert!(
                !line.contains("good") && !line.contains("OK"),
                "error line {line:?} looks like success"
            );
        }
    }
}

#[tokio::test]
async fn an_account_updates_two_hosts_in_one_request_and_a_repeat_is_nochg() {
    let h = harness_with_hosts(100).await;
    let uri = "/nic/update?hostname=cam.brian.dyn.example,dvr.dyn.example&myip=203.0.113.4";
    let (status, body) = h.get_with(uri, &[UA, BRIAN]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "good 203.0.113.4\ngood 203.0.113.4\n")
    );
    for name in ["cam.brian.dyn.example", "dvr.dyn.example"] {
        let a = addrs(&h, name).expect("in DNS");
        assert_eq!(a.v4, Some("203.0.113.4".parse().expect("valid")));
    }
    let before = events(&h).await;
    let (_, body) = h.get_with(uri, &[UA, BRIAN]).await;
    assert_eq!(body, "nochg 203.0.113.4\nnochg 203.0.113.4\n");
    assert_eq!(events(&h).await, before, "a repeat appends nothing");
}

#[tokio::test]
async fn only_the_family_sent_is_touched_in_every_dialect() {
    let h = harness_with_hosts(100).await;
    let get = |q: &'static str| {
        let h = &h;
        async move {
            let uri = format!("/nic/update?hostname=dvr.dyn.example&{q}");
            h.get_with(&uri, &[UA, BRIAN]).await.1
        }
    };
    assert_eq!(
        get("myip=192.0.2.1,2001:db8::1").await,
        "good 192.0.2.1,2001:db8::1\n"
    );
    assert_eq!(get("myip=2001:db8::2").await, "good 2001:db8::2\n");
    let a = addrs(&h, "dvr.dyn.example").expect("in DNS");
    assert_eq!(
        a.v4,
        Some("192.0.2.1".parse().expect("valid")),
        "A untouched by a v6 update"
    );
    assert_eq!(get("myip=192.0.2.3").await, "good 192.0.2.3\n");
    let a = addrs(&h, "dvr.dyn.example").expect("in DNS");
    assert_eq!(
        a.v6,
        Some("2001:db8::2".parse().expect("valid")),
        "AAAA kept: we are not Dyn"
    );
    assert_eq!(get("myipv6=2001:db8::4").await, "good 2001:db8::4\n");
    assert_eq!(get("myip6=2001:db8::5").await, "good 2001:db8::5\n");
    // No address: the source's.
    assert_eq!(get("").await, "good 198.51.100.20\n");
}

#[tokio::test]
async fn a_host_password_updates_its_host_only_and_url_credentials_work() {
    let h = harness_with_hosts(100).await;
    let uri = "/nic/update?hostname=dvr.dyn.example,cam.brian.dyn.example&myip=192.0.2.7\
               &user=dvr.dyn.example&pass=xyz";
    let (_, body) = h.get_with(uri, &[UA]).await;
    assert_eq!(body, "good 192.0.2.7\nnohost\n");
    assert!(addrs(&h, "cam.brian.dyn.example").is_none());
}

#[tokio::test]
async fn every_error_word() {
    let h = harness_with_hosts(100).await;
    let before = events(&h).await;
    let host = "hostname=dvr.dyn.example&myip=192.0.2.1";
    // No credentials: a 401 with the challenge.
    let response = h.get_full(&format!("/nic/update?{host}"), &[UA]).await;
    assert_eq!(response.0, StatusCode::UNAUTHORIZED);
    assert_eq!(response.1.as_deref(), Some("Basic realm=\"ddnsd\""));
    assert_eq!(response.2, "badauth\n");
    // Another scheme than Basic is no credentials either.
    let bearer = ("authorization", "Bearer x");
    let response = h
        .get_full(&format!("/nic/update?{host}"), &[UA, bearer])
        .await;
    assert_eq!(response.0, StatusCode::UNAUTHORIZED);
    let wrong = ("authorization", "Basic YnJpYW46d3Jvbmc="); // brian:wrong
    let nobody = ("authorization", "Basic bm9ib2R5OngK"); // nobody:x
    let many: Vec<String> = (0..21).map(|i| format!("h{i}.dyn.example")).collect();
    // (request, its headers, the reply)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (format!("/nic/update?{host}"), vec![BRIAN], "badagent\n"),
        (format!("/nic/update?{host}"), vec![UA, wrong], "badauth\n"),
        (format!("/nic/update?{host}"), vec![UA, nobody], "badauth\n"),
        (
            "/nic/update?hostname=dvr.dyn.example&myip=192.0.2.1&user=dvr.dyn.example&pass=abc"
                .into(),
            vec![UA],
            "badauth\n",
        ),
        (
            format!("/nic/update?hostname={}", many.join(",")),
            vec![UA, BRIAN],
            "numhost\n",
        ),
        (
            "/nic/update?hostname=..,nope.dyn.example,%3Cscript%3E&myip=192.0.2.1".into(),
            vec![UA, BRIAN],
            "notfqdn\nnohost\nnotfqdn\n",
        ),
        (
            "/nic/update?myip=192.0.2.1".into(),
            vec![UA, BRIAN],
            "notfqdn\n",
        ),
        (
            "/nic/update?hostname=dvr.dyn.example&myip=banana".into(),
            vec![UA, BRIAN],
            "dnserr\n",
        ),
        (
            "/nic/update?hostname=dvr.dyn.example&myip=224.0.0.1".into(),
            vec![UA, BRIAN],
            "dnserr\n",
        ),
        (
            format!(
                "/nic/update?hostname={}.dyn.example&myip=192.0.2.1",
                "a".repeat(300)
            ),
            vec![UA, BRIAN],
            "notfqdn\n",
        ),
    ];
    for (uri, headers, want) in cases {
        let (status, body) = h.get_with(&uri, &headers).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, want),
            "{uri:.80} {headers:?}"
        );
        assert_no_success_words(&body);
    }
    assert_eq!(events(&h).await, before, "no error changed anything");
    assert!(addrs(&h, "dvr.dyn.example").is_none());
}

#[tokio::test]
async fn repeated_nochg_marks_the_host_abusive_until_its_owner_clears_it() {
    let h = harness_with_hosts(3).await;
    let uri = "/nic/update?hostname=dvr.dyn.example&myip=192.0.2.1";
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push(h.get_with(uri, &[UA, BRIAN]).await.1);
    }
    assert_eq!(
        replies,
        [
            "good 192.0.2.1\n",
            "nochg 192.0.2.1\n",
            "nochg 192.0.2.1\n",
            "nochg 192.0.2.1\n",
            "abuse\n",
            "abuse\n"
        ]
    );
    // Even a real change is refused while marked.
    let change = "/nic/update?hostname=dvr.dyn.example&myip=192.0.2.2";
    assert_eq!(h.get_with(change, &[UA, BRIAN]).await.1, "abuse\n");
    let fqdn = Fqdn::parse("dvr.dyn.example").expect("valid");
    assert!(
        h.view
            .with_state(|s| s.account_host(&fqdn).expect("exists").abusive)
    );
    // The owner clears it (as the portal does).
    let committer = Committer::new(
        h.log.clone(),
        h.view.clone(),
        std::time::Duration::from_secs(5),
    );
    let clear = EventBody::HostAbuseChanged {
        zone: Fqdn::parse("dyn.example").expect("valid"),
        fqdn,
        abusive: false,
        account: Some(AccountId(1)),
    };
    assert_eq!(
        committer.commit(clear).await,
        Some(ddns_core::Outcome::Modified)
    );
    assert_eq!(h.get_with(change, &[UA, BRIAN]).await.1, "good 192.0.2.2\n");
}

#[tokio::test]
async fn checkip_echoes_the_callers_address() {
    let h = harness_with_hosts(100).await;
    for path in ["/nic/checkip", "/checkip"] {
        assert_eq!(h.get(path).await, "Current IP Address: 198.51.100.20\n");
    }
}

#[tokio::test]
async fn an_append_that_fails_is_dnserr_and_acknowledges_nothing() {
    let mem = MemLog::new(2);
    let working = harness_with(config(100), Arc::new(mem.clone())).await;
    provision(&working, "account pw", &[("dvr", None, "xyz")]).await;
    drop(working);
    let h = harness_with(config(100), Arc::new(BrokenLog(mem, Fault::Append))).await;
    let end = h.log.end().await.expect("end");
    h.view.wait_applied(&end).await;
    let uri = "/nic/update?hostname=dvr.dyn.example&myip=192.0.2.1";
    assert_eq!(h.get_with(uri, &[UA, BRIAN]).await.1, "dnserr\n");
    assert!(addrs(&h, "dvr.dyn.example").is_none());
}

#[tokio::test]
async fn a_hosts_update_token_is_its_password_for_that_host_only() {
    let h = harness_with_hosts(100).await;
    let token = add_token(&h, "dvr.dyn.example", 900).await;
    let uri = format!(
        "/nic/update?hostname=dvr.dyn.example,cam.brian.dyn.example&myip=192.0.2.60\
         &user=dvr.dyn.example&pass={}",
        token.token
    );
    assert_eq!(h.get_with(&uri, &[UA]).await.1, "good 192.0.2.60\nnohost\n");
    // Not an account's password, nor another host's.
    let as_account = format!(
        "/nic/update?hostname=dvr.dyn.example&user=brian&pass={}",
        token.token
    );
    assert_eq!(h.get_with(&as_account, &[UA]).await.1, "badauth\n");
    let other = format!(
        "/nic/update?hostname=cam.brian.dyn.example&user=cam.brian.dyn.example&pass={}",
        token.token
    );
    assert_eq!(h.get_with(&other, &[UA]).await.1, "badauth\n");
    revoke_token(&h, "dvr.dyn.example", &token.id, 901).await;
    assert_eq!(h.get_with(&uri, &[UA]).await.1, "badauth\nbadauth\n");
}

#[tokio::test]
async fn a_shared_log_that_cannot_be_caught_up_with_is_dnserr_not_badauth() {
    let mem = MemLog::new(2);
    let working = harness_with(config(100), Arc::new(mem.clone())).await;
    provision(&working, "account pw", &[("dvr", None, "xyz")]).await;
    drop(working);
    let h = harness_with(config(100), Arc::new(BrokenLog(mem.clone(), Fault::End))).await;
    h.view.wait_applied(&mem.end().await.expect("end")).await;
    let uri = "/nic/update?hostname=dvr.dyn.example&myip=192.0.2.1";
    assert_eq!(h.get_with(uri, &[UA, BRIAN]).await.1, "dnserr\n");
    assert!(addrs(&h, "dvr.dyn.example").is_none());
    // The DVR protocol says the same: server error, nothing acknowledged.
    let dvr = "/dvr/update?host=dvr.dyn.example&pw=xyz&ip=192.0.2.1";
    assert_eq!(h.get(dvr).await, "ERR 0x80008005");
}
