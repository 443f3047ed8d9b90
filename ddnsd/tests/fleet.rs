//! A bounded fleet from the load generator (ddns-loadgen's library) against the real binary:
//! devices that follow the seed's client rules get the replies they expect, with zero errors,
//! and DNS answers every address the server acknowledged; and the same for DVR hosts the
//! loadgen provisions through the admin socket and updates over the DVR protocol.

mod common;

use std::time::Duration;

use common::*;
use ddns_loadgen::fleet::Expect;
use ddns_loadgen::{DeviceKey, LoadgenConfig, Scenario, Verify, run};

#[test]
fn a_churning_fleet_gets_expected_replies_and_dns_shows_every_acknowledged_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), ROOMY_QUOTAS);
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let key_file = server.data_dir.join("keys").join("demo.key");
    let key = DeviceKey::from_key_file(&std::fs::read_to_string(&key_file).expect("demo key"))
        .expect("a key file ddnsd wrote");

    let mut c = LoadgenConfig::new(server.http, server.dns, key);
    c.devices = 300;
    c.scenario = Scenario::Churn;
    c.churn = Some(0.2);
    c.reboot = 0.05;
    c.decommission = 0.01;
    // A 300 s poll interval compressed 150 times: a poll every 2 s, five intervals in 10 s.
    c.poll_interval = Duration::from_secs(300);
    c.speedup = 150.0;
    c.duration = Duration::from_secs(10);
    c.connections = 16;
    c.propagation_sample = 1.0;
    c.verify = Verify::All;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let outcome = runtime.block_on(run(&c, None)).expect("the run starts");
    let r = &outcome.report;
    eprintln!("{r}");

    assert_eq!(r.errors.total, 0, "{r}");
    assert_eq!(
        r.replies["add"]["10"], 300,
        "every device registered once: {r}"
    );
    for code in ["09", "08"] {
        assert!(
            r.replies["update"].get(code).is_some_and(|&n| n > 0),
            "no update answered {code}: {r}"
        );
    }
    assert!(r.kinds["ipdetect"].count >= 4 * 250, "{r}");
    if r.schedule.decommissions > 0 {
        assert!(r.replies["remove"].contains_key("15"), "{r}");
    }

    // Propagation: every acknowledged change was followed to DNS and seen there.
    assert!(r.propagation.latency.count > 50, "{r}");
    assert_eq!(r.propagation.timeouts, 0, "{r}");

    // The final check asked DNS about every device whose last write was acknowledged.
    let verify = r.verify.as_ref().expect("verify ran");
    assert_eq!(verify.uncertain, 0, "{r}");
    assert_eq!(verify.checked, 300, "{r}");
    assert_eq!(verify.mismatched + verify.unanswered, 0, "{r}");

    // And the real dig agrees, on a spread of devices.
    let naming = outcome.fleet.naming();
    for device in (0..300).step_by(15) {
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
