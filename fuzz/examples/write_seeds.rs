//! Writes the binary seeds of `fuzz/corpus/` that are made by our own code: events, device
//! records and people entries encoded by the codec (`codec/`), and tokens sealed with the
//! `token` target's keys (`token/`). The text seeds are written by hand; the DNS queries are
//! dig's and kdig's, captured. Run it after a format change:
//!
//! ```sh
//! cargo run -p ddns-fuzz --example write_seeds
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ddns_client::wire::{Addr, Credential, Record, Request, ServerMessage};
use ddns_core::{
    Account, AccountId, Device, DeviceId, Event, EventBody, EventId, Fqdn, Group, Host, HostStatus,
    HostToken, Label, PeopleEntry, PeopleKey, encode_device, encode_event, encode_people_entry,
    encode_people_key,
};
use ddns_ingest::{TokenBook, VendorCredentials, VendorKey};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("creates the corpus directory");
    dir
}

fn fqdn(name: &str) -> Fqdn {
    Fqdn::parse(name).expect("a valid name")
}

fn label(name: &str) -> Label {
    Label::parse(name).expect("a valid label")
}

fn write(dir: &Path, name: &str, selector: u8, bytes: &[u8]) {
    let mut data = vec![selector];
    data.extend_from_slice(bytes);
    std::fs::write(dir.join(name), data).expect("writes a seed");
}

fn main() {
    let zone = fqdn("dyn.example");
    let account = AccountId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
    let host = fqdn("home.dyn.example");
    let device = DeviceId {
        vendor: "acme".into(),
        mac: "E0:46:9A:B8:1B:FC".into(),
    };
    let v4: IpAddr = "192.0.2.7".parse().expect("valid");
    let v6: IpAddr = "2001:db8::7".parse().expect("valid");
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo";
    let bodies = [
        EventBody::DeviceAdd {
            device: device.clone(),
            zone: zone.clone(),
            label: label("cam42"),
            addr: v4,
            user_agent: "Acme - Cam - 1.0".into(),
            fields: vec![("port".into(), "8080".into()), ("fw".into(), "1.2".into())],
        },
        EventBody::DeviceUpdate {
            device: device.clone(),
            zone: zone.clone(),
            addr: v6,
            user_agent: String::new(),
            fields: vec![],
        },
        EventBody::DeviceRemove {
            device,
            zone: zone.clone(),
        },
        EventBody::HostImport {
            zone: zone.clone(),
            name: fqdn("www.sub.dyn.example"),
            addr: v4,
        },
        EventBody::AccountCreated {
            user_id: "alice01".into(),
            email: "alice@example.com".into(),
            password_hash: hash.into(),
        },
        EventBody::AccountPasswordChanged {
            account,
            password_hash: hash.into(),
        },
        EventBody::AccountRemoved { account },
        EventBody::AccountReleased {
            zone: zone.clone(),
            account,
        },
        EventBody::GroupCreated {
            zone: zone.clone(),
            account,
            group: label("shop"),
        },
        EventBody::GroupRemoved {
            zone: zone.clone(),
            account,
            group: label("shop"),
        },
        EventBody::HostCreated {
            zone: zone.clone(),
            account,
            group: Some(label("shop")),
            host: label("home"),
            password_hash: hash.into(),
            port: Some(8080),
        },
        EventBody::HostEdited {
            zone: zone.clone(),
            account,
            fqdn: host.clone(),
            password_hash: None,
            port: Some(554),
        },
        EventBody::HostRemoved {
            zone: zone.clone(),
            account,
            fqdn: host.clone(),
        },
        EventBody::HostAddressSet {
            zone: zone.clone(),
            fqdn: host.clone(),
            addr: v4,
            account: None,
        },
        EventBody::HostStatusChanged {
            zone: zone.clone(),
            fqdn: host.clone(),
            status: HostStatus::Error,
        },
        EventBody::HostAbuseChanged {
            zone: zone.clone(),
            fqdn: host.clone(),
            abusive: true,
            account: Some(account),
        },
        EventBody::HostTokenAdded {
            zone: zone.clone(),
            account,
            fqdn: host.clone(),
            token_id: "0a1b2c3d".into(),
            hash: "00112233445566778899aabbccddeeff:00".into(),
        },
        EventBody::HostTokenRevoked {
            zone: zone.clone(),
            account,
            fqdn: host.clone(),
            token_id: "0a1b2c3d".into(),
        },
        EventBody::HostTxtSet {
            zone: zone.clone(),
            fqdn: host.clone(),
            value: "gfj9Xq-Rv8AJ3Jf1Ww0jrXqZ5tQLC4oVvsT6Zw3l2Y8".into(),
            account: None,
        },
        EventBody::HostTxtCleared {
            zone: zone.clone(),
            fqdn: host.clone(),
            value: None,
            account: Some(account),
        },
    ];
    let dir = corpus("codec");
    for (i, body) in bodies.into_iter().enumerate() {
        let event = Event {
            id: EventId(1_700_000_000_000 << 64 | i as u128),
            at_ms: 1_700_000_000_000 + i as u64,
            body,
        };
        let bytes = encode_event(&event).expect("encodes");
        write(&dir, &format!("event-{i:02}"), 0, &bytes);
    }
    let record = Device {
        fqdn: fqdn("cam42.dyn.example"),
        v4: Some(Ipv4Addr::new(192, 0, 2, 7)),
        v6: Some("2001:db8::7".parse::<Ipv6Addr>().expect("valid")),
        user_agent: "Acme - Cam - 1.0".into(),
        fields: vec![("port".into(), "8080".into())],
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_060_000,
    };
    write(&dir, "device", 1, &encode_device(&record).expect("encodes"));
    let entries = [
        (
            PeopleKey::Account("alice01".into()),
            PeopleEntry::Account(Account {
                id: account,
                user_id: "alice01".into(),
                email: "alice@example.com".into(),
                password_hash: hash.into(),
                created_ms: 1_700_000_000_000,
            }),
        ),
        (PeopleKey::Removed(account), PeopleEntry::Removed),
        (
            PeopleKey::Group(fqdn("shop.dyn.example")),
            PeopleEntry::Group(Group {
                zone: zone.clone(),
                account,
                created_ms: 1_700_000_000_000,
            }),
        ),
        (
            PeopleKey::Host(host.clone()),
            PeopleEntry::Host(Host {
                zone: zone.clone(),
                account,
                group: Some(label("shop")),
                password_hash: hash.into(),
                port: Some(8080),
                v4: Some(Ipv4Addr::new(192, 0, 2, 7)),
                v6: None,
                status: HostStatus::Ok,
                abusive: false,
                tokens: vec![HostToken {
                    id: "0a1b2c3d".into(),
                    hash: "00112233445566778899aabbccddeeff:00".into(),
                    created_ms: 1_700_000_000_000,
                }],
                acme_txt: vec!["challenge".into()],
                created_ms: 1_700_000_000_000,
                updated_ms: Some(1_700_000_060_000),
            }),
        ),
        (
            PeopleKey::Released(zone.clone(), account),
            PeopleEntry::Released,
        ),
    ];
    for (i, (key, entry)) in entries.iter().enumerate() {
        let key = encode_people_key(key);
        write(&dir, &format!("people-key-{i}"), 2, &key);
        let mut data = vec![u8::try_from(key.len()).expect("a short key")];
        data.extend_from_slice(&key);
        data.extend_from_slice(&encode_people_entry(entry).expect("encodes"));
        write(&dir, &format!("people-entry-{i}"), 3, &data);
    }

    // The token target's keys (see fuzz/src/token.rs).
    let book = TokenBook::new(vec![VendorCredentials {
        vendor: "acme".into(),
        keys: vec![VendorKey {
            id: 1,
            secret_hex: "11".repeat(32),
        }],
        max_age_secs: None,
    }])
    .expect("valid");
    let dir = corpus("token");
    let token = book.seal("acme", "E0:46:9A:B8:1B:FC", 0).expect("seals");
    write(&dir, "open-sealed", 0, token.as_bytes());
    write(
        &dir,
        "open-padded-std",
        0,
        format!("{}==", token.replace('-', "+").replace('_', "/")).as_bytes(),
    );
    write(&dir, "open-garbage", 0, b"not a token at all");
    let mut round = 1_800_000_000u64.to_be_bytes().to_vec();
    round.push(77);
    round.extend_from_slice(b" e0:46:9a:b8:1b:fc ");
    write(&dir, "seal-mac", 2, &round);
    let mut long = 0u64.to_be_bytes().to_vec();
    long.push(3);
    long.extend_from_slice("SN-".repeat(22).as_bytes());
    write(&dir, "seal-long-serial", 2, &long);

    // The QUIC device channel's messages (see fuzz/src/quic_wire.rs), without their prefix.
    let dir = corpus("quic_wire");
    let v6: Ipv6Addr = "2001:db8::7".parse().expect("valid");
    let requests = [
        (
            "hello-device",
            Request::Hello {
                credential: Credential::Device {
                    token: token.clone(),
                },
                publish_v6: false,
            },
        ),
        (
            "hello-host",
            Request::Hello {
                credential: Credential::Host {
                    host: "cam.brian.dyn.example".into(),
                    secret: "pässwort 1".into(),
                },
                publish_v6: true,
            },
        ),
        ("update-observed", Request::Update(Addr::Observed)),
        (
            "update-v4",
            Request::Update(Addr::Ip(Ipv4Addr::new(192, 0, 2, 7).into())),
        ),
        ("update-v6", Request::Update(Addr::Ip(v6.into()))),
        ("remove", Request::Remove),
        ("query", Request::Query),
    ];
    for (name, request) in requests {
        write(&dir, name, 0, &request.encode()[2..]);
    }
    let record = Record {
        name: "cam42.dyn.example".into(),
        v4: Some(Ipv4Addr::new(192, 0, 2, 7)),
        v6: Some(v6),
    };
    let messages = [
        (
            "reply-record",
            ServerMessage::Reply {
                code: "14".into(),
                record: Some(record.clone()),
            },
        ),
        (
            "reply-none",
            ServerMessage::Reply {
                code: "02".into(),
                record: None,
            },
        ),
        (
            "push-v4",
            ServerMessage::Push {
                code: "09".into(),
                record: Some(Record { v6: None, ..record }),
            },
        ),
    ];
    for (name, message) in messages {
        write(&dir, name, 1, &message.encode()[2..]);
    }
    write(&dir, "prefix-max", 2, &512u16.to_be_bytes());
    write(&dir, "prefix-over", 2, &513u16.to_be_bytes());
}
