//! Accounts, groups and hosts in the fold: one namespace per zone shared with devices, the
//! account partition apart from the zone partitions, snapshots, and a property test that any
//! interleaving of the two partitions gives every event the same outcome and every replica the
//! same state (what several Kafka partitions need).

mod common;

use std::net::IpAddr;

use common::*;
use ddns_core::{
    AccountId, Event, EventBody, EventId, Fqdn, HostStatus, Label, Outcome, PeopleEntry, PeopleKey,
    State, decode_event, decode_people_entry, decode_people_key, encode_event, encode_people_entry,
    encode_people_key,
};
use proptest::prelude::*;

fn ev(id: u128, body: EventBody) -> Event {
    Event {
        id: EventId(id),
        at_ms: 1_000 + id as u64,
        body,
    }
}

fn label(s: &str) -> Label {
    Label::parse(s).expect("valid label")
}

fn name(s: &str) -> Fqdn {
    Fqdn::parse(s).expect("valid name")
}

fn sign_up(id: u128, user_id: &str, email: &str) -> Event {
    ev(
        id,
        EventBody::AccountCreated {
            user_id: user_id.into(),
            email: email.into(),
            password_hash: format!("$argon2id$hash-of-{user_id}"),
        },
    )
}

fn group(id: u128, account: u128, group: &str) -> Event {
    ev(
        id,
        EventBody::GroupCreated {
            zone: zone(),
            account: AccountId(account),
            group: label(group),
        },
    )
}

fn host(id: u128, account: u128, group: Option<&str>, host: &str) -> Event {
    ev(
        id,
        EventBody::HostCreated {
            zone: zone(),
            account: AccountId(account),
            group: group.map(label),
            host: label(host),
            password_hash: "$argon2id$host".into(),
            port: Some(8000),
        },
    )
}

fn dvr_set(id: u128, fqdn: &str, addr: &str) -> Event {
    ev(
        id,
        EventBody::HostAddressSet {
            zone: zone(),
            fqdn: name(fqdn),
            addr: addr.parse().expect("valid address"),
            account: None,
        },
    )
}

fn released(id: u128, account: u128) -> Event {
    ev(
        id,
        EventBody::AccountReleased {
            zone: zone(),
            account: AccountId(account),
        },
    )
}

fn removed(id: u128, account: u128) -> Event {
    ev(
        id,
        EventBody::AccountRemoved {
            account: AccountId(account),
        },
    )
}

fn v4(s: &str) -> IpAddr {
    s.parse().expect("valid address")
}

#[test]
fn user_ids_and_emails_are_unique() {
    let mut state = State::new();
    assert_eq!(
        state.apply(&sign_up(1, "brian", "b@x.example")).outcome,
        Outcome::Done
    );
    assert_eq!(
        state.apply(&sign_up(2, "brian", "other@x.example")).outcome,
        Outcome::UserIdTaken
    );
    assert_eq!(
        state.apply(&sign_up(3, "brave", "b@x.example")).outcome,
        Outcome::EmailTaken
    );
    let account = state.account("brian").expect("signed up");
    assert_eq!(account.id, AccountId(1));
    assert_eq!(
        state.account_by_email("b@x.example").map(|a| a.id),
        Some(AccountId(1))
    );
    assert!(state.account("brave").is_none());

    // Removal frees both, and a new sign-up is a new account.
    assert_eq!(state.apply(&removed(4, 1)).outcome, Outcome::Removed);
    assert!(state.is_removed(AccountId(1)));
    assert_eq!(
        state.apply(&sign_up(5, "brian", "b@x.example")).outcome,
        Outcome::Done
    );
    assert_eq!(state.account("brian").map(|a| a.id), Some(AccountId(5)));
    assert_eq!(state.apply(&removed(6, 1)).outcome, Outcome::NotFound);
}

#[test]
fn a_group_reserves_its_name_against_devices_and_other_accounts() {
    let mut state = State::new();
    state.apply(&sign_up(1, "brian", "b@x.example"));
    state.apply(&sign_up(2, "alice", "a@x.example"));
    assert_eq!(
        state.apply(&group(3, 1, "brian")).outcome,
        Outcome::Created(name("brian.dyn.example"))
    );
    // Another account: neither the group nor a host at the group's name.
    assert_eq!(
        state.apply(&group(4, 2, "brian")).outcome,
        Outcome::NameTaken
    );
    assert_eq!(
        state.apply(&host(5, 2, None, "brian")).outcome,
        Outcome::NameTaken
    );
    // Nor under it.
    assert_eq!(
        state.apply(&host(6, 2, Some("brian"), "cam")).outcome,
        Outcome::NotFound
    );
    // A device may not take the label, nor an import the name or a name under it.
    assert_eq!(
        state.apply(&add(7, 1, "brian", v4("192.0.2.1"))).outcome,
        Outcome::NameTaken
    );
    assert_eq!(
        state
            .apply(&import(8, "brian.dyn.example", v4("192.0.2.1")))
            .outcome,
        Outcome::NameTaken
    );
    assert_eq!(
        state
            .apply(&import(9, "x.brian.dyn.example", v4("192.0.2.1")))
            .outcome,
        Outcome::NameTaken
    );
    // And the other way round: a device's name cannot become a group or a host.
    assert_eq!(
        state.apply(&add(10, 2, "cam", v4("192.0.2.2"))).outcome,
        Outcome::Created(name("cam.dyn.example"))
    );
    assert_eq!(
        state.apply(&group(11, 2, "cam")).outcome,
        Outcome::NameTaken
    );
    assert_eq!(
        state.apply(&host(12, 2, None, "cam")).outcome,
        Outcome::NameTaken
    );
    assert!(state.has_owner(&name("cam.dyn.example")));
    assert!(state.has_owner(&name("brian.dyn.example")));
    assert!(
        !state.has_owner(&name("any.brian.dyn.example")),
        "free for the group's owner"
    );
    assert!(!state.has_owner(&name("free.dyn.example")));
}

#[test]
fn hosts_with_and_without_group_use() {
    let mut state = State::new();
    state.apply(&sign_up(1, "brian", "b@x.example"));
    state.apply(&group(2, 1, "brian"));
    assert_eq!(
        state.apply(&host(3, 1, Some("brian"), "rifa001")).outcome,
        Outcome::Created(name("rifa001.brian.dyn.example"))
    );
    assert_eq!(
        state.apply(&host(4, 1, None, "dvr")).outcome,
        Outcome::Created(name("dvr.dyn.example"))
    );
    assert_eq!(
        state.apply(&host(5, 1, Some("brian"), "rifa001")).outcome,
        Outcome::NameTaken
    );
    // A group of hosts cannot be removed; an empty one can.
    let remove_group = ev(
        6,
        EventBody::GroupRemoved {
            zone: zone(),
            account: AccountId(1),
            group: label("brian"),
        },
    );
    assert_eq!(state.apply(&remove_group).outcome, Outcome::NotEmpty);
    let names: Vec<_> = state.names_of(AccountId(1)).map(Fqdn::to_string).collect();
    assert_eq!(
        names,
        [
            "brian.dyn.example",
            "dvr.dyn.example",
            "rifa001.brian.dyn.example"
        ]
    );
    let h = state
        .account_host(&name("rifa001.brian.dyn.example"))
        .expect("created");
    assert_eq!(h.status, HostStatus::Standby);
    assert_eq!(h.updated_ms, None);
    assert_eq!(h.port, Some(8000));
    // No address yet: not in DNS.
    assert_eq!(state.addrs(&name("rifa001.brian.dyn.example")), None);
}

#[test]
fn a_dvr_update_sets_one_family_and_the_status() {
    let mut state = State::new();
    state.apply(&host(1, 9, None, "dvr"));
    let applied = state.apply(&dvr_set(2, "dvr.dyn.example", "198.51.100.7"));
    assert_eq!(applied.outcome, Outcome::Modified);
    assert_eq!(applied.changed_names, [name("dvr.dyn.example")]);
    assert_eq!(applied.people, [PeopleKey::Host(name("dvr.dyn.example"))]);
    let h = state
        .account_host(&name("dvr.dyn.example"))
        .expect("exists");
    assert_eq!((h.status, h.updated_ms), (HostStatus::Ok, Some(1_002)));
    // The same address again changes nothing; IPv6 leaves the A record alone.
    assert_eq!(
        state
            .apply(&dvr_set(3, "dvr.dyn.example", "198.51.100.7"))
            .outcome,
        Outcome::NoChange
    );
    state.apply(&dvr_set(4, "dvr.dyn.example", "2001:db8::7"));
    let addrs = state
        .addrs(&name("dvr.dyn.example"))
        .expect("has addresses");
    assert_eq!(addrs.v4, Some("198.51.100.7".parse().expect("valid")));
    assert_eq!(addrs.v6, Some("2001:db8::7".parse().expect("valid")));
    // An error, then a successful update with the same address: OK again, an event's worth.
    let error = ev(
        5,
        EventBody::HostStatusChanged {
            zone: zone(),
            fqdn: name("dvr.dyn.example"),
            status: HostStatus::Error,
        },
    );
    assert_eq!(state.apply(&error).outcome, Outcome::Modified);
    assert_eq!(state.apply(&error).outcome, Outcome::NoChange);
    let again = state.apply(&dvr_set(6, "dvr.dyn.example", "198.51.100.7"));
    assert_eq!(again.outcome, Outcome::Modified);
    assert!(again.changed_names.is_empty(), "DNS did not change");
    // The owner on the portal sets an address without touching the status; another account
    // cannot.
    let by_owner = |id, account| {
        ev(
            id,
            EventBody::HostAddressSet {
                zone: zone(),
                fqdn: name("dvr.dyn.example"),
                addr: v4("203.0.113.1"),
                account: Some(AccountId(account)),
            },
        )
    };
    assert_eq!(state.apply(&by_owner(7, 8)).outcome, Outcome::NotFound);
    assert_eq!(state.apply(&by_owner(8, 9)).outcome, Outcome::Modified);
    let h = state
        .account_host(&name("dvr.dyn.example"))
        .expect("exists");
    assert_eq!((h.status, h.updated_ms), (HostStatus::Ok, Some(1_006)));
    assert_eq!(
        state
            .apply(&dvr_set(9, "nope.dyn.example", "192.0.2.1"))
            .outcome,
        Outcome::NotFound
    );
}

#[test]
fn the_server_marks_a_host_abusive_and_only_its_owner_clears_it() {
    let mut state = State::new();
    state.apply(&host(1, 9, None, "dvr"));
    let mark = |id, abusive, account| {
        ev(
            id,
            EventBody::HostAbuseChanged {
                zone: zone(),
                fqdn: name("dvr.dyn.example"),
                abusive,
                account,
            },
        )
    };
    assert_eq!(state.apply(&mark(2, true, None)).outcome, Outcome::Modified);
    assert_eq!(state.apply(&mark(3, true, None)).outcome, Outcome::NoChange);
    let abusive = |s: &State| {
        s.account_host(&name("dvr.dyn.example"))
            .expect("exists")
            .abusive
    };
    assert!(abusive(&state));
    assert_eq!(
        state.apply(&mark(4, false, Some(AccountId(8)))).outcome,
        Outcome::NotFound,
        "another account"
    );
    assert!(abusive(&state));
    assert_eq!(
        state.apply(&mark(5, false, Some(AccountId(9)))).outcome,
        Outcome::Modified
    );
    assert!(!abusive(&state));
}

fn txt(id: u128, value: Option<&str>, set: bool, account: Option<u128>) -> Event {
    let (zone, fqdn, account) = (zone(), name("dvr.dyn.example"), account.map(AccountId));
    let body = match (set, value) {
        (true, Some(value)) => EventBody::HostTxtSet {
            zone,
            fqdn,
            value: value.into(),
            account,
        },
        (true, None) => unreachable!("a set has a value"),
        (false, value) => EventBody::HostTxtCleared {
            zone,
            fqdn,
            value: value.map(Into::into),
            account,
        },
    };
    ev(id, body)
}

#[test]
fn acme_values_are_set_and_cleared_by_the_host_or_its_owner_only() {
    let mut state = State::new();
    state.apply(&host(1, 9, None, "dvr"));
    let dvr = name("dvr.dyn.example");
    let values = |s: &State| s.acme_txt(&dvr).to_vec();

    let applied = state.apply(&txt(2, Some("a"), true, None));
    assert_eq!(applied.outcome, Outcome::Modified);
    assert_eq!(
        applied.changed_names,
        std::slice::from_ref(&dvr),
        "DNS changes below it"
    );
    assert_eq!(
        state.apply(&txt(3, Some("b"), true, Some(9))).outcome,
        Outcome::Modified
    );
    assert_eq!(
        state.apply(&txt(4, Some("a"), true, None)).outcome,
        Outcome::NoChange
    );
    assert_eq!(
        state.apply(&txt(5, Some("c"), true, Some(8))).outcome,
        Outcome::NotFound,
        "another account"
    );
    assert_eq!(values(&state), ["a", "b"]);
    assert_eq!(state.addrs(&dvr), None, "no address came with them");

    // Past the cap the oldest goes.
    for i in 0..ddns_core::ACME_TXT_MAX {
        state.apply(&txt(10 + i as u128, Some(&format!("n{i}")), true, None));
    }
    let kept = values(&state);
    assert_eq!(kept.len(), ddns_core::ACME_TXT_MAX);
    assert_eq!(kept.first().map(String::as_str), Some("n0"));

    // The values survive a restart.
    assert_eq!(restart(&state).acme_txt(&dvr), &kept[..]);

    // Cleared by value, then all at once; clearing nothing changes nothing.
    assert_eq!(
        state.apply(&txt(30, Some("n0"), false, Some(9))).outcome,
        Outcome::Modified
    );
    assert_eq!(
        state.apply(&txt(31, Some("n0"), false, None)).outcome,
        Outcome::NoChange
    );
    assert_eq!(
        state.apply(&txt(32, None, false, Some(8))).outcome,
        Outcome::NotFound
    );
    let applied = state.apply(&txt(33, None, false, None));
    assert_eq!(applied.outcome, Outcome::Modified);
    assert_eq!(applied.changed_names, std::slice::from_ref(&dvr));
    assert!(values(&state).is_empty());
    assert_eq!(
        state.apply(&txt(34, None, false, None)).outcome,
        Outcome::NoChange
    );

    // Removing a host with values reports its name, so DNS drops them.
    state.apply(&txt(40, Some("last"), true, None));
    let removal = ev(
        41,
        EventBody::HostRemoved {
            zone: zone(),
            account: AccountId(9),
            fqdn: dvr.clone(),
        },
    );
    assert_eq!(
        state.apply(&removal).changed_names,
        std::slice::from_ref(&dvr)
    );
    assert!(state.acme_txt(&dvr).is_empty());
}

#[test]
fn a_host_entry_of_the_first_snapshot_version_reads_with_no_acme_values() {
    let mut state = State::new();
    state.apply(&host(1, 9, None, "dvr"));
    let key = PeopleKey::Host(name("dvr.dyn.example"));
    let entry = state.people_entry(&key).expect("the host's entry");
    let mut bytes = encode_people_entry(&entry).expect("encodes");
    assert_eq!(bytes[0], 2, "the current version");
    assert_eq!(bytes.pop(), Some(0), "it ends with no ACME values");
    bytes[0] = 1;
    assert_eq!(decode_people_entry(&key, &bytes), Ok(entry.clone()));
    // Version 2 without its count is cut short.
    bytes[0] = 2;
    assert!(decode_people_entry(&key, &bytes).is_err());
}

#[test]
fn a_release_removes_the_accounts_names_and_refuses_later_ones() {
    let mut state = State::new();
    state.apply(&sign_up(1, "brian", "b@x.example"));
    state.apply(&group(2, 1, "brian"));
    state.apply(&host(3, 1, Some("brian"), "cam"));
    state.apply(&dvr_set(4, "cam.brian.dyn.example", "192.0.2.9"));
    state.apply(&removed(5, 1));
    let applied = state.apply(&released(6, 1));
    assert_eq!(applied.outcome, Outcome::Removed);
    assert_eq!(applied.changed_names, [name("cam.brian.dyn.example")]);
    assert_eq!(state.names_of(AccountId(1)).count(), 0);
    assert!(!state.has_owner(&name("brian.dyn.example")));
    // A host creation that raced the removal and lands after the release is refused.
    assert_eq!(
        state.apply(&host(7, 1, None, "late")).outcome,
        Outcome::NotFound
    );
    assert_eq!(state.apply(&group(8, 1, "late")).outcome, Outcome::NotFound);
    // The freed group name is anyone's.
    assert_eq!(
        state.apply(&add(9, 3, "brian", v4("192.0.2.3"))).outcome,
        Outcome::Created(name("brian.dyn.example"))
    );
}

#[test]
fn golden_bytes_of_people_events() {
    let created = sign_up(1, "brian", "b@x");
    let mut golden = vec![2, 5];
    golden.extend_from_slice(&1u128.to_be_bytes());
    golden.extend_from_slice(&1_001u64.to_be_bytes());
    golden.extend_from_slice(b"\x00\x05brian\x00\x03b@x\x00\x17$argon2id$hash-of-brian");
    assert_eq!(encode_event(&created).expect("encodes"), golden);
    assert_eq!(decode_event(&golden), Ok(created));

    let h = host(2, 7, Some("g"), "h");
    let mut golden = vec![2, 11];
    golden.extend_from_slice(&2u128.to_be_bytes());
    golden.extend_from_slice(&1_002u64.to_be_bytes());
    golden.extend_from_slice(b"\x00\x0bdyn.example");
    golden.extend_from_slice(&7u128.to_be_bytes());
    golden.extend_from_slice(b"\x01\x00\x01g\x00\x01h\x00\x0e$argon2id$host\x01\x1f\x40");
    assert_eq!(encode_event(&h).expect("encodes"), golden);
    assert_eq!(decode_event(&golden), Ok(h));

    let set = dvr_set(3, "h.dyn.example", "192.0.2.1");
    let mut golden = vec![2, 14];
    golden.extend_from_slice(&3u128.to_be_bytes());
    golden.extend_from_slice(&1_003u64.to_be_bytes());
    golden.extend_from_slice(b"\x00\x0bdyn.example\x00\x0dh.dyn.example\x04\xc0\x00\x02\x01\x00");
    assert_eq!(encode_event(&set).expect("encodes"), golden);
    assert_eq!(decode_event(&golden), Ok(set));

    let set = txt(4, Some("tok"), true, Some(9));
    let mut golden = vec![2, 19];
    golden.extend_from_slice(&4u128.to_be_bytes());
    golden.extend_from_slice(&1_004u64.to_be_bytes());
    golden.extend_from_slice(b"\x00\x0bdyn.example\x00\x0fdvr.dyn.example\x00\x03tok\x01");
    golden.extend_from_slice(&9u128.to_be_bytes());
    assert_eq!(encode_event(&set).expect("encodes"), golden);
    assert_eq!(decode_event(&golden), Ok(set));

    let cleared = txt(5, None, false, None);
    let mut golden = vec![2, 20];
    golden.extend_from_slice(&5u128.to_be_bytes());
    golden.extend_from_slice(&1_005u64.to_be_bytes());
    golden.extend_from_slice(b"\x00\x0bdyn.example\x00\x0fdvr.dyn.example\x00\x00");
    assert_eq!(encode_event(&cleared).expect("encodes"), golden);
    assert_eq!(decode_event(&golden), Ok(cleared));

    // A people kind under version 1, or a device kind under version 2, is refused.
    let mut wrong = golden.clone();
    wrong[0] = 1;
    assert!(decode_event(&wrong).is_err());
    let mut device = encode_event(&add(4, 1, "cam", v4("192.0.2.1"))).expect("encodes");
    assert_eq!(device[0], 1, "device events keep version 1");
    device[0] = 2;
    assert!(decode_event(&device).is_err());
}

/// Every kind of people event, for round trips.
fn every_people_event() -> Vec<Event> {
    vec![
        sign_up(1, "brian", "b@x.example"),
        ev(
            2,
            EventBody::AccountPasswordChanged {
                account: AccountId(1),
                password_hash: "$argon2id$new".into(),
            },
        ),
        group(3, 1, "brian"),
        host(4, 1, Some("brian"), "cam"),
        host(5, 1, None, "dvr"),
        ev(
            6,
            EventBody::HostEdited {
                zone: zone(),
                account: AccountId(1),
                fqdn: name("dvr.dyn.example"),
                password_hash: Some("$argon2id$other".into()),
                port: None,
            },
        ),
        dvr_set(7, "dvr.dyn.example", "2001:db8::1"),
        ev(
            8,
            EventBody::HostStatusChanged {
                zone: zone(),
                fqdn: name("cam.brian.dyn.example"),
                status: HostStatus::Error,
            },
        ),
        ev(
            13,
            EventBody::HostAbuseChanged {
                zone: zone(),
                fqdn: name("cam.brian.dyn.example"),
                abusive: true,
                account: None,
            },
        ),
        ev(
            14,
            EventBody::HostAbuseChanged {
                zone: zone(),
                fqdn: name("cam.brian.dyn.example"),
                abusive: false,
                account: Some(AccountId(1)),
            },
        ),
        ev(
            15,
            EventBody::HostTokenAdded {
                zone: zone(),
                account: AccountId(1),
                fqdn: name("cam.brian.dyn.example"),
                token_id: "k1".into(),
                hash: "salt:hash".into(),
            },
        ),
        ev(
            16,
            EventBody::HostTokenRevoked {
                zone: zone(),
                account: AccountId(1),
                fqdn: name("cam.brian.dyn.example"),
                token_id: "k1".into(),
            },
        ),
        ev(
            17,
            EventBody::HostTxtSet {
                zone: zone(),
                fqdn: name("cam.brian.dyn.example"),
                value: "challenge-1".into(),
                account: None,
            },
        ),
        ev(
            18,
            EventBody::HostTxtCleared {
                zone: zone(),
                fqdn: name("cam.brian.dyn.example"),
                value: Some("challenge-1".into()),
                account: Some(AccountId(1)),
            },
        ),
        ev(
            19,
            EventBody::HostTxtCleared {
                zone: zone(),
                fqdn: name("cam.brian.dyn.example"),
                value: None,
                account: None,
            },
        ),
        ev(
            9,
            EventBody::HostRemoved {
                zone: zone(),
                account: AccountId(1),
                fqdn: name("dvr.dyn.example"),
            },
        ),
        ev(
            10,
            EventBody::GroupRemoved {
                zone: zone(),
                account: AccountId(1),
                group: label("brian"),
            },
        ),
        removed(11, 1),
        released(12, 1),
    ]
}

#[test]
fn every_people_event_round_trips_and_a_truncated_one_is_refused() {
    for event in every_people_event() {
        let bytes = encode_event(&event).expect("encodes");
        assert_eq!(decode_event(&bytes), Ok(event.clone()));
        assert_eq!(
            encode_event(&decode_event(&bytes).expect("decodes")),
            Ok(bytes.clone())
        );
        for cut in 0..bytes.len() {
            assert!(
                decode_event(&bytes[..cut]).is_err(),
                "{event:?} cut at {cut}"
            );
        }
        // The key: zone events by zone, account events apart.
        let key = event.key();
        match event.zone() {
            Some(zone) => assert_eq!(key, zone.as_str().as_bytes()),
            None => assert_eq!(key, ddns_core::ACCOUNTS_KEY),
        }
    }
}

/// The state restored from its entries, each through the snapshot's encoding.
fn restart(state: &State) -> State {
    let mut restored = State::new();
    for (id, device) in state.devices() {
        restored.restore(id, device.to_device());
    }
    for (key, entry) in state.people_entries() {
        let key_bytes = encode_people_key(&key);
        let entry_bytes = encode_people_entry(&entry).expect("encodes");
        let key = decode_people_key(&key_bytes).expect("key decodes");
        let entry: PeopleEntry = decode_people_entry(&key, &entry_bytes).expect("entry decodes");
        restored.restore_people(key, entry);
    }
    restored
}

#[test]
fn a_snapshot_of_people_restores_the_same_state() {
    let mut state = State::new();
    for event in every_people_event().iter().take(11) {
        state.apply(event);
    }
    state.apply(&sign_up(20, "alice", "a@x.example"));
    state.apply(&removed(21, 20));
    state.apply(&released(22, 20));
    let restored = restart(&state);
    assert_eq!(restored, state);
    assert_eq!(snapshot_bytes(&restored), snapshot_bytes(&state));
}

/// One event of a generated run: in the accounts partition or the zone's.
#[derive(Clone, Debug)]
enum Op {
    SignUp(u8, u8),
    Remove(u8),
    Group(u8, u8),
    Host(u8, Option<u8>, u8),
    Device(u8, u8),
    Dvr(u8, Option<u8>, u8),
    Release(u8),
}

const LABELS: [&str; 4] = ["brian", "cam", "dvr", "rifa"];

fn op_strategy() -> impl Strategy<Value = Op> {
    let n = || 0u8..4;
    prop_oneof![
        (n(), n()).prop_map(|(u, e)| Op::SignUp(u, e)),
        n().prop_map(Op::Remove),
        (n(), n()).prop_map(|(a, g)| Op::Group(a, g)),
        (n(), proptest::option::of(n()), n()).prop_map(|(a, g, h)| Op::Host(a, g, h)),
        (n(), n()).prop_map(|(d, l)| Op::Device(d, l)),
        (n(), proptest::option::of(n()), n()).prop_map(|(h, g, ip)| Op::Dvr(h, g, ip)),
        n().prop_map(Op::Release),
    ]
}

/// Account `n`'s id: the id of the `n`th sign-up event (ids 1000 + n), whether or not it
/// succeeds, as a shell that raced would refer to it.
fn account_id(n: u8) -> u128 {
    1_000 + u128::from(n)
}

/// The op as an event with id `id`, and whether it belongs to the accounts partition.
fn event_of(id: u128, op: &Op) -> (Event, bool) {
    let zone_event = |body| (ev(id, body), false);
    match *op {
        Op::SignUp(u, e) => (
            ev(
                account_id(u),
                EventBody::AccountCreated {
                    user_id: format!("user{u}"),
                    email: format!("{e}@x.example"),
                    password_hash: "h".into(),
                },
            ),
            true,
        ),
        Op::Remove(a) => (removed(id, account_id(a)), true),
        Op::Group(a, g) => (group(id, account_id(a), LABELS[g as usize]), false),
        Op::Host(a, g, h) => (
            host(
                id,
                account_id(a),
                g.map(|g| LABELS[g as usize]),
                LABELS[h as usize],
            ),
            false,
        ),
        Op::Device(d, l) => (
            add(
                id,
                u32::from(d),
                LABELS[l as usize],
                v4(&format!("192.0.2.{d}")),
            ),
            false,
        ),
        Op::Dvr(h, g, ip) => {
            let fqdn = match g {
                Some(g) => format!("{}.{}.dyn.example", LABELS[h as usize], LABELS[g as usize]),
                None => format!("{}.dyn.example", LABELS[h as usize]),
            };
            zone_event(EventBody::HostAddressSet {
                zone: zone(),
                fqdn: name(&fqdn),
                addr: v4(&format!("198.51.100.{ip}")),
                account: None,
            })
        }
        Op::Release(a) => (released(id, account_id(a)), false),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Replicas folding the accounts partition and the zone's partition in different
    /// interleavings give every event the same outcome and end in the same state.
    #[test]
    fn partitions_fold_the_same_in_any_interleaving(
        ops in prop::collection::vec(op_strategy(), 1..80),
        choices in prop::collection::vec(any::<bool>(), 80),
    ) {
        // Sign-ups of the same account number are one event: keep only the first.
        let mut seen = std::collections::HashSet::new();
        let events: Vec<(Event, bool)> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| event_of(i as u128 + 1, op))
            .filter(|(e, _)| !matches!(e.body, EventBody::AccountCreated { .. }) || seen.insert(e.id))
            .collect();
        let accounts: Vec<&Event> = events.iter().filter(|(_, a)| *a).map(|(e, _)| e).collect();
        let zone_events: Vec<&Event> = events.iter().filter(|(_, a)| !*a).map(|(e, _)| e).collect();

        // Replica 1: the accounts partition first, then the zone's.
        let mut one = State::new();
        let mut outcomes_one = std::collections::HashMap::new();
        for e in accounts.iter().chain(&zone_events) {
            outcomes_one.insert(e.id, one.apply(e).outcome);
        }
        // Replica 2: interleaved as `choices` says, each partition in its own order.
        let mut two = State::new();
        let (mut a, mut z) = (accounts.iter(), zone_events.iter());
        let mut choice = choices.iter().cycle();
        let mut order = Vec::new();
        loop {
            let next = if *choice.next().expect("cycles") { a.next().or_else(|| z.next()) } else { z.next().or_else(|| a.next()) };
            match next {
                Some(e) => order.push(*e),
                None => break,
            }
        }
        for e in order {
            prop_assert_eq!(&two.apply(e).outcome, &outcomes_one[&e.id], "outcome of {:?}", e);
        }
        prop_assert_eq!(&one, &two);
        prop_assert_eq!(snapshot_bytes(&one), snapshot_bytes(&two));
        prop_assert_eq!(&restart(&one), &one);

        // One owner per name across devices, groups and hosts.
        for (fqdn, _) in one.account_hosts() {
            prop_assert!(one.owner(fqdn).is_none(), "{} has a device and a host", fqdn);
            prop_assert!(one.group(fqdn).is_none(), "{} is a group and a host", fqdn);
        }
        // A released account has nothing in the zone.
        for owner in one.owners() {
            prop_assert!(!one.is_released(&zone(), owner), "released {:?} still owns names", owner);
        }
    }
}
