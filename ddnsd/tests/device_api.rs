//! The device API end to end: the real binary, real sockets, real `dig`.

mod common;

use common::*;

#[test]
fn add_ipcheck_dig_update_dig_remove_nxdomain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), None);
    let mac = server.token("E0:46:9A:B8:1B:FC", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={mac}&dm=cam42&myip=203.0.113.7")),
        "10|cam42.dyn.example"
    );
    assert_eq!(
        server.reply(&format!("/ipcheck.aspx?mac={mac}")),
        "14|203.0.113.7"
    );
    assert_eq!(
        server.dig_short(&["cam42.dyn.example", "A"]),
        ["203.0.113.7"]
    );
    assert_eq!(
        server.reply(&format!("/update.aspx?mac={mac}&myip=203.0.113.8")),
        "09"
    );
    // Acknowledged means answered: no waiting between the reply and the query.
    assert_eq!(
        server.dig_short(&["cam42.dyn.example", "A"]),
        ["203.0.113.8"]
    );
    assert_eq!(
        server.reply(&format!("/update.aspx?mac={mac}&myip=2001:db8::8")),
        "09"
    );
    assert_eq!(
        server.dig_short(&["cam42.dyn.example", "AAAA"]),
        ["2001:db8::8"]
    );
    assert_eq!(
        server.dig_short(&["cam42.dyn.example", "A"]),
        ["203.0.113.8"],
        "A kept apart from AAAA"
    );
    assert_eq!(server.reply(&format!("/remove.aspx?mac={mac}")), "15");
    let answer = server.dig(&["cam42.dyn.example", "A"]);
    assert_eq!(status(&answer), "NXDOMAIN", "{answer}");
}

#[test]
fn every_reply_code_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        r#"
[[vendors]]
name = "demo"
zone = "dyn.example"

[[vendors]]
name = "fresh"
zone = "fresh.example"
max_age_secs = 300

[ingest.flood]
device_updates_per_minute = 1
device_burst = 4
"#,
    );
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let demo = |mac: &str| server.token(mac, &["--vendor", "demo"]);
    let (a, b, flooder) = (demo("AA:00"), demo("BB:00"), demo("FF:00"));

    assert_eq!(
        server.reply(&format!("/add.aspx?mac={a}&dm=cam&myip=192.0.2.1")),
        "10|cam.dyn.example"
    );
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={a}&dm=cam&myip=192.0.2.1")),
        "08"
    );
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={a}&dm=cam&myip=192.0.2.2")),
        "09"
    );
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={b}&dm=cam&myip=192.0.2.3")),
        "07"
    );
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={b}&dm=bad_name&myip=192.0.2.3")),
        "01"
    );
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={b}&dm=ok&myip=300.1.1.1")),
        "04"
    );
    assert_eq!(
        server.reply(&format!("/update.aspx?mac={b}&myip=192.0.2.3")),
        "13"
    );
    assert_eq!(
        server.reply(&format!("/ipcheck.aspx?mac={a}")),
        "14|192.0.2.2"
    );

    // 02: garbage, a key we do not have, a tampered token, a stale token, a replayed token.
    assert_eq!(server.reply("/ipcheck.aspx?mac=not-a-token"), "02");
    let foreign_dir = tempfile::tempdir().expect("tempdir");
    let foreign = cipher(foreign_dir.path(), None, "AA:00", &[]);
    assert_eq!(
        server.reply(&format!("/ipcheck.aspx?mac={foreign}")),
        "02",
        "wrong key"
    );
    let mut tampered = a.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert_eq!(
        server.reply(&format!("/ipcheck.aspx?mac={tampered}")),
        "02",
        "tampered"
    );
    let old = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        - 3600)
        .to_string();
    let stale = server.token("CC:00", &["--vendor", "fresh", "--issued-at", &old]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={stale}&dm=c&myip=192.0.2.4")),
        "02",
        "stale"
    );
    let fresh = server.token("CC:00", &["--vendor", "fresh"]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={fresh}&dm=c&myip=192.0.2.4")),
        "10|c.fresh.example"
    );
    assert_eq!(
        server.reply(&format!("/update.aspx?mac={fresh}&myip=192.0.2.5")),
        "02",
        "replayed"
    );

    // 911 for the device that floods, while another device still gets 09.
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={flooder}&dm=fl&myip=192.0.2.10")),
        "10|fl.dyn.example"
    );
    let floods: Vec<String> = (11..20)
        .map(|i| server.reply(&format!("/update.aspx?mac={flooder}&myip=192.0.2.{i}")))
        .collect();
    assert!(floods.iter().any(|r| r == "911"), "{floods:?}");
    assert!(
        floods
            .iter()
            .skip_while(|r| *r != "911")
            .all(|r| r == "911"),
        "{floods:?}"
    );
    assert_eq!(
        server.reply(&format!("/update.aspx?mac={a}&myip=192.0.2.99")),
        "09"
    );

    assert_eq!(server.reply(&format!("/remove.aspx?mac={a}")), "15");
    assert_eq!(server.reply(&format!("/remove.aspx?mac={a}")), "13");
    assert_eq!(server.reply("/ipdetect.aspx"), "127.0.0.1");
    let (status, _) = server.get("/cipher.aspx?mac=AA");
    assert_eq!(status, 404, "the cipher form is off by default");
}

#[test]
fn a_flooding_source_gets_911_on_every_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "[ingest.flood]\nsource_requests_per_minute = 1\nsource_burst = 4\n",
    );
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let replies: Vec<String> = (0..6)
        .map(|_| server.reply("/ipcheck.aspx?mac=guess"))
        .collect();
    assert_eq!(replies, ["02", "02", "02", "02", "911", "911"]);
    assert_eq!(server.reply("/ipdetect.aspx"), "911");
}

#[test]
fn settings_come_from_the_file_then_the_environment_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "ttl_secs = 111\n[[vendors]]\nname = \"acme\"\nzone = \"cams.example\"\n",
    );
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let mac = server.token("AA", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={mac}&dm=x&myip=192.0.2.1")),
        "10|x.cams.example"
    );
    let answer = server.dig(&["x.cams.example", "A", "+noall", "+answer"]);
    assert!(answer.contains("\t111\tIN\tA\t192.0.2.1"), "{answer}");
    drop(server);

    // DDNSD_TTL_SECS overrides the file.
    let server = Server::start_with_env(
        &dir.path().join("data"),
        Some(&config),
        &[("DDNSD_TTL_SECS", "222")],
    );
    let answer = server.dig(&["x.cams.example", "A", "+noall", "+answer"]);
    assert!(answer.contains("\t222\tIN\tA\t192.0.2.1"), "{answer}");
    drop(server);
    let bad = std::process::Command::new(BIN)
        .args(["serve", "--config", "/nonexistent.toml"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("does not exist"),
        "a clear message"
    );
}

#[test]
fn prometheus_metrics_count_replies_floods_appends_and_dns_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "metrics_listen = \"127.0.0.1:0\"\n");
    let mut server = Server::start(&dir.path().join("data"), Some(&config));
    server.drain_log();
    let metrics = server.metrics_addr();
    let mac = server.token("AA", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={mac}&dm=m&myip=192.0.2.1")),
        "10|m.dyn.example"
    );
    assert_eq!(server.reply("/ipcheck.aspx?mac=junk"), "02");
    assert_eq!(server.dig_short(&["m.dyn.example", "A"]), ["192.0.2.1"]);
    // Counters may be flushed in batches: poll until every one shows, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut text;
    loop {
        let (status, body) = http_get(metrics, "/metrics", &[]);
        assert_eq!(status, 200);
        text = body;
        let dns_counted = text.contains("ddns_dns_queries_total{rcode=\"NOERROR\"}")
            || text.contains("ddns_dns_queries_total{rcode=\"NoError\"}");
        if dns_counted || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for expected in [
        "ddns_ingest_replies_total{path=\"add\",code=\"10\"} 1",
        "ddns_ingest_replies_total{path=\"ipcheck\",code=\"02\"} 1",
        "ddns_log_append_seconds",
        "ddns_projector_applied_total",
        "ddns_zone_hosts 1",
        "ddns_dns_queries_total",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}
