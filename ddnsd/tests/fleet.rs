//! A bounded fleet from the load generator (ddns-loadgen's library) against the real binary:
//! devices that follow the seed's client rules get the replies they expect, with zero errors,
//! and DNS answers every address the server acknowledged. By default, as in the field, each
//! device opens a connection per request from its own address in 127.0.0.0/8, against the
//! server's default flood quotas; the old mode (keep-alive connections from one address, the
//! per-source quota raised) too. And the same for DVR hosts the loadgen provisions through the
//! admin socket and updates over the DVR protocol. And the `quic` scenario: devices that idle
//! on the QUIC device channel, movers that rebind, the same devices polling over HTTP.

mod common;

use std::time::Duration;

use common::*;
use ddns_loadgen::fleet::Expect;
use ddns_loadgen::{
    DeviceKey, LoadgenConfig, RunOutcome, Scenario, Sources, Verify, run, run_quic, source_index,
};

const DEVICES: u32 = 300;

/// Runs a churning fleet of [`DEVICES`] for 10 s against `server`, in the connection and source
/// mode `mode` sets, and checks what every fleet run must show.
fn churning_fleet(server: &Server, mode: impl FnOnce(&mut LoadgenConfig)) -> RunOutcome {
    let key_file = server.data_dir.join("keys").join("demo.key");
    let key = DeviceKey::from_key_file(&std::fs::read_to_string(&key_file).expect("demo key"))
        .expect("a key file ddnsd wrote");

    let mut c = LoadgenConfig::new(server.http, server.dns, key);
    c.devices = DEVICES;
    c.scenario = Scenario::Churn;
    c.churn = Some(0.2);
    c.reboot = 0.05;
    c.decommission = 0.01;
    // A 300 s poll interval compressed 150 times: a poll every 2 s, five intervals in 10 s.
    // Each device then makes at most 5 requests and 5 writes in 10 s: inside the default
    // per-source (120 at once) and per-device (5 at once) bursts.
    c.poll_interval = Duration::from_secs(300);
    c.speedup = 150.0;
    c.duration = Duration::from_secs(10);
    c.connections = 16;
    c.propagation_sample = 1.0;
    c.verify = Verify::All;
    mode(&mut c);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let outcome = runtime.block_on(run(&c, None)).expect("the run starts");
    let r = &outcome.report;
    eprintln!("{r}");

    // No 911s, no connect failures, no unexpected replies (an `ipdetect` answer that is not the
    // address the device sent from would be one).
    assert_eq!(r.errors.total, 0, "{r}");
    assert_eq!(
        r.replies["add"]["10"],
        u64::from(DEVICES),
        "every device registered once: {r}"
    );
    for code in ["09", "08"] {
        assert!(
            r.replies["update"].get(code).is_some_and(|&n| n > 0),
            "no update answered {code}: {r}"
        );
    }
    assert!(r.kinds["ipdetect"].count >= 4 * 250, "{r}");
    assert_eq!(
        r.replies["ipdetect"]["ip"], r.kinds["ipdetect"].count,
        "{r}"
    );
    if r.schedule.decommissions > 0 {
        assert!(r.replies["remove"].contains_key("15"), "{r}");
    }

    // Propagation: every acknowledged change was followed to DNS and seen there.
    assert!(r.propagation.latency.count > 50, "{r}");
    assert_eq!(r.propagation.timeouts, 0, "{r}");

    // The final check asked DNS about every device whose last write was acknowledged.
    let verify = r.verify.as_ref().expect("verify ran");
    assert_eq!(verify.uncertain, 0, "{r}");
    assert_eq!(verify.checked, u64::from(DEVICES), "{r}");
    assert_eq!(verify.mismatched + verify.unanswered, 0, "{r}");

    // And the real dig agrees, on a spread of devices.
    let naming = outcome.fleet.naming();
    for device in (0..DEVICES).step_by(15) {
        let fqdn = naming.fqdn(device);
        match outcome.fleet.expect(device) {
            Expect::Addr(addr) => {
                assert_eq!(
                    server.dig_short(&[&fqdn, "A"]),
                    [addr.to_string()],
                    "{fqdn}"
                )
            }
            Expect::Absent => assert_eq!(status(&server.dig(&[&fqdn, "A"])), "NXDOMAIN"),
            Expect::Unknown => panic!("{fqdn}: no errors, so every outcome is known"),
        }
    }
    outcome
}

#[test]
fn devices_polling_from_their_own_sources_on_connections_of_their_own_need_no_raised_quota() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No config: the default flood quotas.
    let server = Server::start(&dir.path().join("data"), None);
    let outcome = churning_fleet(&server, |_| {});
    let r = &outcome.report;
    assert!(!r.run.keep_alive && r.run.sources == "per-device", "{r}");
    // A connection per request, none reused.
    assert_eq!(r.schedule.connections_opened, r.requests, "{r}");
    // What the server stored, and DNS answers, is each device's source address: one of its
    // own share of 127/8 (it changes with churn), never another device's.
    for device in 0..DEVICES {
        if let Expect::Addr(addr) = outcome.fleet.expect(device) {
            let index = source_index(addr).unwrap_or_else(|| panic!("{addr}: not a source"));
            assert_eq!(index % DEVICES, device, "{addr}");
        }
    }
}

#[test]
fn devices_on_keep_alive_connections_from_one_source_get_the_same_with_raised_quotas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), ROOMY_QUOTAS);
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let outcome = churning_fleet(&server, |c| {
        c.keep_alive = Some(true);
        c.sources = Some(Sources::Single);
    });
    let r = &outcome.report;
    assert!(r.run.keep_alive && r.run.sources == "single", "{r}");
    assert!(r.schedule.connections_opened <= 16, "{r}");
    // Simulated WAN addresses, sent as myip (198.18.0.0/15).
    for device in 0..DEVICES {
        if let Expect::Addr(addr) = outcome.fleet.expect(device) {
            let [a, b, ..] = addr.octets();
            assert!(a == 198 && (b == 18 || b == 19), "{addr}");
        }
    }
}

#[test]
fn dvr_hosts_provisioned_through_the_admin_socket_get_act_and_dns_shows_their_last_addresses() {
    const HOSTS: u32 = 6;
    let dir = tempfile::tempdir().expect("tempdir");
    // Room for every host's first argon2 check (ROOMY_QUOTAS ends in [ingest.flood]).
    let quotas = format!(
        "{ROOMY_QUOTAS}password_guesses_per_host_per_minute = 1000\n\
         password_guesses_per_source_per_minute = 100000\n"
    );
    let config = write_config(dir.path(), &quotas);
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let key_file = server.data_dir.join("keys").join("demo.key");
    let key = DeviceKey::from_key_file(&std::fs::read_to_string(&key_file).expect("demo key"))
        .expect("a key file ddnsd wrote");

    let mut c = LoadgenConfig::new(server.http, server.dns, key);
    c.scenario = Scenario::Dvr;
    c.devices = HOSTS;
    c.connections = 4;
    c.duration = Duration::from_secs(2);
    c.admin_socket = Some(server.data_dir.join("admin.sock"));
    // Six hosts in a closed loop are each updated every few ms: a probe for one address
    // would mostly find the next one already there (the final check covers DNS instead).
    c.propagation_sample = 0.0;
    c.verify = Verify::All;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    // Twice against the same server: the second run finds the hosts provisioned.
    for (round, added) in [(1, HOSTS), (2, 0)] {
        let outcome = runtime.block_on(run(&c, None)).expect("the run starts");
        let r = &outcome.report;
        eprintln!("round {round}:\n{r}");
        let setup = r.dvr_setup.as_ref().expect("a dvr run reports its setup");
        let provision = setup.provision.as_ref().expect("provisioned");
        assert_eq!((provision.added, provision.existed), (added, HOSTS - added));
        // The first update of each host (its argon2 check) set its first address.
        assert_eq!(setup.first_pass.acted(), u64::from(HOSTS), "{r}");
        assert_eq!(setup.first_pass.replies.len(), 1, "{r}");

        // Every timed reply is ACT, many per host.
        assert_eq!(r.errors.total, 0, "{r}");
        let replies: Vec<&str> = r.replies["dvr"].keys().copied().collect();
        assert_eq!(replies, ["ACT"], "{r}");
        assert!(r.replies["dvr"]["ACT"] >= 10 * u64::from(HOSTS), "{r}");
        assert_eq!(r.kinds["update"].count + r.kinds["add"].count, 0, "{r}");

        let verify = r.verify.as_ref().expect("verify ran");
        assert_eq!(verify.checked, u64::from(HOSTS), "{r}");
        assert_eq!(
            verify.uncertain + verify.mismatched + verify.unanswered,
            0,
            "{r}"
        );

        // And the real dig shows each host's last address sent.
        let naming = outcome.fleet.naming();
        for host in 0..HOSTS {
            let fqdn = naming.fqdn(host);
            assert!(fqdn.ends_with(".lg1.dyn.example"), "{fqdn}");
            let Expect::Addr(addr) = outcome.fleet.expect(host) else {
                panic!("{fqdn}: every update was acknowledged");
            };
            assert_eq!(
                server.dig_short(&[&fqdn, "A"]),
                [addr.to_string()],
                "{fqdn}"
            );
        }
    }
}

#[test]
fn the_quic_scenario_measures_idle_devices_moves_and_polling() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.issue("server", 1);
    let config = write_config(
        dir.path(),
        &format!(
            "quic_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n\n\
             [tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ),
    );
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let key_file = server.data_dir.join("keys").join("demo.key");
    let key = DeviceKey::from_key_file(&std::fs::read_to_string(&key_file).expect("demo key"))
        .expect("a key file ddnsd wrote");

    let mut c = LoadgenConfig::new(server.http, server.dns, key);
    c.scenario = Scenario::Quic;
    c.devices = 6;
    c.server_pid = Some(server.pid());
    // Each polling device polls once or twice in the 3 s window.
    c.poll_interval = Duration::from_secs(2);
    c.connections = 4;
    c.quic.server = Some(server.ready_field("quic"));
    c.quic.ca = Some(pki.ca());
    c.quic.endpoints = 2;
    c.quic.ramp_per_sec = 100;
    c.quic.baseline = Duration::from_secs(1);
    c.quic.poll_window = Duration::from_secs(3);
    c.quic.settle = Duration::from_millis(500);
    c.quic.idle = Duration::from_secs(2);
    // Two movers, two rebinds each: with the add, 3 writes each, inside the default quota's
    // burst of 5.
    c.quic.movers = 2;
    c.quic.rebinds = 2;
    c.quic.rebind_every = Duration::from_secs(3);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let report = runtime
        .block_on(run_quic(&c, &mut |line| eprintln!("{line}")))
        .expect("the scenario runs");
    eprintln!("{report}");

    // Every device connected once, with its own record, and stayed connected.
    let connect = &report.connect;
    assert_eq!(connect.connected, 6, "{report}");
    assert_eq!(
        (connect.lost, connect.refused, connect.unexpected_records),
        (0, 0, 0),
        "{report}"
    );
    assert!(connect.server_rss_after_bytes > 0, "{report}");
    assert_eq!(report.idle.lost, 0, "{report}");
    assert!(
        report.idle.udp_datagrams_per_sec.is_some(),
        "read from /proc/net/snmp: {report}"
    );
    assert!(report.idle.server_cpu_secs >= 0.0, "{report}");

    // Every rebind reached DNS, in the time a move takes (path validation, ~1.2 s, and the
    // once-a-second walk), and its device heard its PUSH.
    let rebinds = &report.rebinds;
    assert_eq!(rebinds.count, 4, "{report}");
    assert_eq!(rebinds.dns.count, 4, "{report}");
    assert_eq!(rebinds.timeouts, 0, "{report}");
    assert!(
        rebinds.dns.max_us < c.probe_timeout.as_micros() as u64,
        "{report}"
    );
    assert_eq!(rebinds.push.count, 4, "{report}");
    assert_eq!(rebinds.push_codes.get("09"), Some(&4), "{report}");

    // The polling fleet polled, from each device's own address, with no boot updates.
    let polling = &report.polling;
    assert!((6..=12).contains(&polling.requests), "{report}");
    assert_eq!((polling.errors, polling.unexpected), (0, 0), "{report}");
    assert_eq!(
        report.polling_run.kinds["ipdetect"].count, polling.requests,
        "{report}"
    );
    assert_eq!(
        report.polling_run.replies["ipdetect"]["ip"],
        polling.requests
    );
    assert!(report.polling_run.cpu.server_secs.is_some(), "{report}");

    // The report says what it measured, side by side.
    let text = report.to_string();
    assert!(text.contains("QUIC / HTTP"), "{text}");
    assert!(text.contains("6 devices (+2 movers)"), "{text}");
}
