use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ddns_core::{
    DeviceId, Event, EventBody, EventId, Fqdn, HostAddrs, Label, LiveZone, Lookup, Outcome, State,
    ZoneApex, encode_event,
};
use ddns_log::{EventLog, LocalLog, LocalLogConfig, MemLog};

use super::*;

fn zone() -> Arc<LiveZone> {
    let origin = Fqdn::parse("dyn.example").expect("valid");
    Arc::new(LiveZone::new(vec![ZoneApex::with_defaults(origin, 60)]))
}

fn add(id: u128, mac: &str, label: &str, addr: &str) -> Event {
    Event {
        id: EventId(id),
        at_ms: 1,
        body: EventBody::DeviceAdd {
            device: DeviceId {
                vendor: "acme".into(),
                mac: mac.into(),
            },
            zone: Fqdn::parse("dyn.example").expect("valid"),
            label: Label::parse(label).expect("valid"),
            addr: addr.parse().expect("valid"),
            user_agent: String::new(),
            fields: vec![],
        },
    }
}

async fn append(log: &dyn EventLog, event: &Event) {
    let payload = Bytes::from(encode_event(event).expect("encodes"));
    log.append(event.key(), payload).await.expect("appended");
}

/// Appends, then waits for the fold's outcome, as ingest does.
async fn request(view: &ProjectorView, log: &dyn EventLog, event: &Event) -> Outcome {
    let waiter = view.expect(event.id);
    append(log, event).await;
    tokio::time::timeout(Duration::from_secs(10), waiter.outcome())
        .await
        .expect("outcome within 10 s")
        .expect("projector running")
}

fn v4(zone: &LiveZone, name: &str) -> Option<IpAddr> {
    match zone.lookup(name) {
        Lookup::Host(_, HostAddrs { v4, .. }) => v4.map(IpAddr::V4),
        _ => None,
    }
}

#[tokio::test]
async fn outcomes_reach_the_requester_and_the_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    let zone = zone();
    let projector = Projector::open(dir.path(), zone.clone(), log.clone()).expect("opens");
    let view = projector.view();
    tokio::spawn(projector.run());

    let fqdn = Fqdn::parse("cam.dyn.example").expect("valid");
    assert_eq!(
        request(&view, &*log, &add(1, "A", "cam", "192.0.2.1")).await,
        Outcome::Created(fqdn)
    );
    assert_eq!(
        v4(&zone, "cam.dyn.example"),
        Some("192.0.2.1".parse().expect("valid"))
    );
    assert_eq!(
        request(&view, &*log, &add(2, "B", "cam", "192.0.2.2")).await,
        Outcome::NameTaken
    );
    assert_eq!(
        request(&view, &*log, &add(3, "A", "cam", "192.0.2.3")).await,
        Outcome::Modified
    );
    assert_eq!(
        v4(&zone, "cam.dyn.example"),
        Some("192.0.2.3".parse().expect("valid"))
    );
    assert_eq!(zone.serial(), 3, "serial follows the applied position");
}

#[tokio::test]
async fn racing_adds_for_one_name_get_one_winner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    let projector = Projector::open(dir.path(), zone(), log.clone()).expect("opens");
    let view = projector.view();
    tokio::spawn(projector.run());
    let mut tasks = Vec::new();
    for i in 0..20u128 {
        let (view, log) = (view.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            request(&view, &*log, &add(i, &format!("M{i}"), "race", "192.0.2.9")).await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.expect("task") {
            Outcome::Created(_) => created += 1,
            Outcome::NameTaken => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn a_restart_loads_the_snapshot_and_replays_only_the_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> =
        Arc::new(LocalLog::open(log_dir.path(), LocalLogConfig::default()).expect("log opens"));
    {
        let projector = Projector::open(dir.path(), zone(), log.clone()).expect("opens");
        let view = projector.view();
        let task = tokio::spawn(projector.run());
        for i in 0..50u128 {
            request(
                &view,
                &*log,
                &add(i, &format!("M{i}"), &format!("h{i}"), "192.0.2.1"),
            )
            .await;
        }
        task.abort();
        let _ = task.await;
    }
    // Ten more events while the projector is down: the tail.
    for i in 50..60u128 {
        append(
            &*log,
            &add(i, &format!("M{i}"), &format!("h{i}"), "192.0.2.1"),
        )
        .await;
    }
    let zone = zone();
    let projector = Projector::open(dir.path(), zone.clone(), log.clone()).expect("reopens");
    assert_eq!(projector.position().offsets(), &[50]);
    assert_eq!(zone.len(), 50, "the snapshot alone restores the zone");
    let view = projector.view();
    tokio::spawn(projector.run());
    let end = log.end().await.expect("end");
    tokio::time::timeout(Duration::from_secs(10), view.wait_applied(&end))
        .await
        .expect("caught up");
    assert_eq!(zone.len(), 60);
    assert_eq!(view.stats().records_read, 10, "only the tail is replayed");
    assert_eq!(view.with_state(|s| s.len()), 60);
}

#[tokio::test]
async fn a_replay_from_the_start_equals_the_snapshot_and_a_damaged_one_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = dir.path().join("snapshot");
    let log: Arc<dyn EventLog> = Arc::new(MemLog::new(2));
    // Devices racing for a few names, renaming and updating.
    let events: Vec<Event> = (0..30u128)
        .map(|i| {
            let (mac, label) = (format!("M{}", i % 11), format!("h{}", i % 7));
            add(i, &mac, &label, &format!("192.0.2.{}", i + 1))
        })
        .collect();
    {
        let projector = Projector::open(&snapshot, zone(), log.clone()).expect("opens");
        let view = projector.view();
        let task = tokio::spawn(projector.run());
        for event in &events {
            request(&view, &*log, event).await;
        }
        task.abort();
        let _ = task.await;
    }
    let tail = add(99, "M99", "tail", "192.0.2.99");
    append(&*log, &tail).await;
    let projector = Projector::open(&snapshot, zone(), log.clone()).expect("reopens");
    let replay = projector.replay_from_start().await.expect("replays");
    assert_eq!(
        replay.records, 30,
        "up to the snapshot's position, not the log's end"
    );
    assert_eq!(replay.log_end.total(), 31);
    assert!(replay.matches && !replay.log_behind, "{replay:?}");
    drop(projector);

    // A lost table file: RocksDB refuses the snapshot; open_or_rebuild sets it aside and the
    // log rebuilds it.
    {
        let projector = Projector::open(&snapshot, zone(), log.clone()).expect("reopens");
        drop(projector);
    }
    let manifest = std::fs::read_dir(&snapshot)
        .expect("snapshot dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST"))
        })
        .expect("a manifest");
    std::fs::write(&manifest, b"not a manifest").expect("overwritten");
    let damaged = Projector::open(&snapshot, zone(), log.clone());
    assert!(
        matches!(&damaged, Err(ProjectorError::Snapshot(e)) if e.is_damage()),
        "{:?}",
        damaged.err()
    );
    let zone = zone();
    let projector =
        Projector::open_or_rebuild(&snapshot, zone.clone(), log.clone()).expect("rebuilt");
    assert_eq!(projector.position().total(), 0, "from the log's start");
    let aside = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with("snapshot.damaged-")
        })
        .count();
    assert_eq!(aside, 1, "the damaged files are kept aside");
    let view = projector.view();
    tokio::spawn(projector.run());
    let end = log.end().await.expect("end");
    tokio::time::timeout(Duration::from_secs(10), view.wait_applied(&end))
        .await
        .expect("caught up");
    assert_eq!(
        v4(&zone, "tail.dyn.example"),
        Some("192.0.2.99".parse().expect("valid"))
    );
    let mut expected = State::new();
    for event in events.iter().chain([&tail]) {
        expected.apply(event);
    }
    assert!(
        view.with_state(|state| *state == expected),
        "the log's fold"
    );
}

#[tokio::test]
async fn an_undecodable_record_is_skipped_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    let zone = zone();
    let projector = Projector::open(dir.path(), zone.clone(), log.clone()).expect("opens");
    let view = projector.view();
    tokio::spawn(projector.run());
    log.append(b"dyn.example", Bytes::from_static(b"\x01\x01garbage"))
        .await
        .expect("appended");
    request(&view, &*log, &add(7, "A", "ok", "192.0.2.1")).await;
    assert_eq!(view.stats().undecodable, 1);
    assert_eq!(zone.len(), 1);
    assert_eq!(view.applied().offsets(), &[2]);
}

#[tokio::test]
async fn a_snapshot_of_another_log_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    {
        let projector = Projector::open(dir.path(), zone(), first.clone()).expect("opens");
        let view = projector.view();
        let task = tokio::spawn(projector.run());
        request(&view, &*first, &add(1, "A", "cam", "192.0.2.1")).await;
        task.abort();
        let _ = task.await;
    }
    let other: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    match Projector::open(dir.path(), zone(), other.clone()) {
        Err(ProjectorError::Snapshot(SnapshotError::OtherLog { snapshot, log })) => {
            assert_eq!(snapshot, first.identity());
            assert_eq!(log, other.identity());
        }
        Err(error) => panic!("wrong error: {error}"),
        Ok(_) => panic!("a snapshot of another log must be refused"),
    }
    // Refusing changed nothing: the snapshot still opens with its own log.
    let zone = zone();
    let projector = Projector::open(dir.path(), zone.clone(), first).expect("reopens");
    assert_eq!(projector.position().offsets(), &[1]);
    assert_eq!(zone.len(), 1);
}

fn devices(view: &ProjectorView) -> Vec<(DeviceId, Device)> {
    let mut all: Vec<_> = view.with_state(|s| {
        s.devices()
            .map(|(id, device)| (id, device.into()))
            .collect()
    });
    all.sort_by(|a, b| a.0.mac.cmp(&b.0.mac));
    all
}

/// Many small batches on few devices, written behind (and merged when the writer lags):
/// a projector opened after the first is dropped finds the fold of the whole log.
#[tokio::test]
async fn the_snapshot_written_behind_is_the_fold_up_to_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(MemLog::new(1));
    let before = {
        let projector = Projector::open(dir.path(), zone(), log.clone()).expect("opens");
        let view = projector.view();
        let task = tokio::spawn(projector.run());
        for i in 0..500u128 {
            let addr = format!("192.0.2.{}", i % 250);
            append(
                &*log,
                &add(i, &format!("M{}", i % 3), &format!("h{}", i % 3), &addr),
            )
            .await;
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let end = log.end().await.expect("end");
        tokio::time::timeout(Duration::from_secs(10), view.wait_applied(&end))
            .await
            .expect("caught up");
        task.abort();
        let _ = task.await;
        devices(&view)
    };
    assert_eq!(before.len(), 3);
    let projector = Projector::open(dir.path(), zone(), log.clone()).expect("reopens");
    assert_eq!(projector.position().offsets(), &[500]);
    assert_eq!(devices(&projector.view()), before);
}

#[tokio::test]
async fn accounts_groups_and_hosts_survive_a_restart_in_state_and_zone() {
    use ddns_core::{AccountId, HostStatus};
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(MemLog::new(2));
    let apex = Fqdn::parse("dyn.example").expect("valid");
    let host = Fqdn::parse("cam.brian.dyn.example").expect("valid");
    let ev = |id: u128, body| Event {
        id: EventId(id),
        at_ms: 5,
        body,
    };
    let events = [
        ev(
            1,
            EventBody::AccountCreated {
                user_id: "brian".into(),
                email: "b@x.example".into(),
                password_hash: "$argon2id$x".into(),
            },
        ),
        ev(
            2,
            EventBody::GroupCreated {
                zone: apex.clone(),
                account: AccountId(1),
                group: Label::parse("brian").expect("valid"),
            },
        ),
        ev(
            3,
            EventBody::HostCreated {
                zone: apex.clone(),
                account: AccountId(1),
                group: Some(Label::parse("brian").expect("valid")),
                host: Label::parse("cam").expect("valid"),
                password_hash: "$argon2id$h".into(),
                port: None,
            },
        ),
        ev(
            4,
            EventBody::HostAddressSet {
                zone: apex.clone(),
                fqdn: host.clone(),
                addr: "192.0.2.44".parse().expect("valid"),
                account: None,
            },
        ),
        ev(
            5,
            EventBody::HostTxtSet {
                zone: apex.clone(),
                fqdn: host.clone(),
                value: "acme-value".into(),
                account: Some(AccountId(1)),
            },
        ),
    ];
    let challenge = b"\x0f_acme-challenge\x03cam\x05brian\x03dyn\x07example\x00";
    let txt = |zone: &LiveZone| zone.txt_wire(challenge).map(|v| v.to_vec());
    {
        let projector = Projector::open(dir.path(), zone(), log.clone()).expect("opens");
        let view = projector.view();
        let task = tokio::spawn(projector.run());
        let mut outcomes = Vec::new();
        for event in &events {
            outcomes.push(request(&view, &*log, event).await);
        }
        assert_eq!(
            outcomes,
            [
                Outcome::Done,
                Outcome::Created(Fqdn::parse("brian.dyn.example").expect("valid")),
                Outcome::Created(host.clone()),
                Outcome::Modified,
                Outcome::Modified
            ]
        );
        assert_eq!(txt(view.zone()), Some(vec!["acme-value".into()]));
        assert_eq!(
            v4(view.zone(), "cam.brian.dyn.example"),
            Some("192.0.2.44".parse().expect("valid"))
        );
        task.abort();
        let _ = task.await;
    }
    let zone = zone();
    let projector = Projector::open(dir.path(), zone.clone(), log.clone()).expect("reopens");
    assert_eq!(projector.position().total(), 5, "nothing left to replay");
    assert_eq!(
        txt(&zone),
        Some(vec!["acme-value".into()]),
        "from the snapshot"
    );
    assert_eq!(
        v4(&zone, "cam.brian.dyn.example"),
        Some("192.0.2.44".parse().expect("valid"))
    );
    let view = projector.view();
    view.with_state(|state| {
        assert_eq!(state.account("brian").map(|a| a.id), Some(AccountId(1)));
        let restored = state.account_host(&host).expect("host restored");
        assert_eq!(restored.status, HostStatus::Ok);
        assert!(
            state
                .group(&Fqdn::parse("brian.dyn.example").expect("valid"))
                .is_some()
        );
    });
}
