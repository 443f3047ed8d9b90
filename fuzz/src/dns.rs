//! The whole DNS query path on arbitrary packets: [`Responder::respond`] over UDP and TCP, and
//! [`FastPath::answer`], against one zone set (two zones with hosts of one and two families,
//! ACME TXT values, and a zone whose long name servers make large referrals).
//!
//! Checked, for any bytes:
//! - a reply is a DNS message hickory decodes, a response (QR=1) with the query's ID, at most
//!   the client's EDNS payload (512 without EDNS, never over [`MAX_UDP_PAYLOAD`]) over UDP and
//!   65,535 bytes over TCP;
//! - the fast path answers only what the `Responder` answers, with the same reply (the same
//!   header and question bytes, the same records once both are decoded and re-encoded, never
//!   longer: the agreement `dns/src/fast.rs`'s property test checks on generated queries); it
//!   drops only responses and runts; what it declines it leaves untouched.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use ddns_core::{Fqdn, HostAddrs, LiveZone, ZoneApex};
use ddns_dns::{Fast, FastPath, MAX_UDP_PAYLOAD, Responder, Transport};
use hickory_proto::op::Message;

const HEADER_LEN: usize = 12;

struct Servers {
    responder: Responder,
    fast: FastPath,
}

fn fqdn(name: &str) -> Fqdn {
    Fqdn::parse(name).expect("a valid fuzz zone name")
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let mut big = ZoneApex::with_defaults(fqdn("big.test"), 60);
        big.name_servers = (0..12)
            .map(|i| fqdn(&format!("ns-with-a-rather-long-name-{i:02}.example.net")))
            .collect();
        big.hostmaster = fqdn("hostmaster.example.net");
        let mut dyn_example = ZoneApex::with_defaults(fqdn("dyn.example"), 60);
        dyn_example.name_servers = vec![fqdn("ns1.dyn.example"), fqdn("ns2.example")];
        let zone = LiveZone::new(vec![
            dyn_example,
            ZoneApex::with_defaults(fqdn("example"), 300),
            big,
        ]);
        let v4 = Some(Ipv4Addr::new(192, 0, 2, 1));
        let v6 = Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));
        zone.set(&fqdn("cam.dyn.example"), HostAddrs { v4, v6: None });
        zone.set(&fqdn("both.dyn.example"), HostAddrs { v4, v6 });
        zone.set(&fqdn("v6.a.b.example"), HostAddrs { v4: None, v6 });
        zone.set(&fqdn("x.big.test"), HostAddrs { v4, v6 });
        zone.set_acme_txt(
            &fqdn("cam.dyn.example"),
            &["challenge-one".into(), "challenge-two".into()],
        );
        zone.set_serial(77);
        let zone = Arc::new(zone);
        Servers {
            responder: Responder::new(zone.clone()),
            fast: FastPath::new(zone),
        }
    })
}

/// Checks one packet (see the module docs).
pub fn check(data: &[u8]) {
    let servers = servers();
    let udp = servers.responder.respond(data, Transport::Udp);
    if let Some(reply) = &udp {
        // The client's limit as hickory reads it: 512 without EDNS, else its payload size.
        let limit = Message::from_vec(data).map_or(MAX_UDP_PAYLOAD, |query| {
            query.max_payload().min(MAX_UDP_PAYLOAD)
        });
        well_formed(data, reply, usize::from(limit));
    }
    if let Some(reply) = servers.responder.respond(data, Transport::Tcp) {
        well_formed(data, &reply, usize::from(u16::MAX));
    }

    let mut buf = vec![0u8; data.len().max(4096)];
    buf[..data.len()].copy_from_slice(data);
    match servers.fast.answer(&mut buf, data.len()) {
        Fast::Reply(len) => {
            let slow = udp.expect("the Responder answers what the fast path answers");
            if let Err(difference) = same_reply(&buf[..len], &slow) {
                panic!("fast and slow replies differ for {data:02x?}: {difference}");
            }
        }
        Fast::Drop => assert!(
            data.len() < HEADER_LEN || data[2] & 0x80 != 0 || udp.is_none(),
            "the fast path dropped a query the Responder answers"
        ),
        Fast::Slow => assert_eq!(&buf[..data.len()], data, "declined but changed"),
    }
}

/// A reply hickory decodes, a response to `query` (same ID), at most `limit` bytes.
fn well_formed(query: &[u8], reply: &[u8], limit: usize) {
    assert!(
        reply.len() <= limit,
        "a {}-byte reply over the limit of {limit} to {query:02x?}",
        reply.len()
    );
    assert!(reply.len() >= HEADER_LEN, "a reply shorter than a header");
    assert_eq!(reply[..2], query[..2], "the reply's ID is not the query's");
    assert!(reply[2] & 0x80 != 0, "a reply without QR");
    if let Err(error) = Message::from_vec(reply) {
        panic!("a reply hickory cannot decode ({error}): {reply:02x?} to {query:02x?}");
    }
}

/// `Ok` if the fast reply is the `Responder`'s (as `dns/src/fast.rs`'s tests define it): the
/// same header and question bytes, the same message once both are decoded and re-encoded by
/// hickory (which evens out name compression, the one permitted difference), and not longer.
fn same_reply(fast: &[u8], slow: &[u8]) -> Result<(), String> {
    let question_end = |reply: &[u8]| {
        let mut at = HEADER_LEN;
        while let Some(&len) = reply.get(at) {
            at += 1;
            if len == 0 {
                break;
            }
            at += usize::from(len);
        }
        at + 4
    };
    let end = question_end(slow);
    if fast.get(..end) != slow.get(..end) || question_end(fast) != end {
        return Err(format!(
            "header or question differ:\nfast {fast:02x?}\nslow {slow:02x?}"
        ));
    }
    let canonical = |reply: &[u8]| {
        let message = Message::from_vec(reply).map_err(|error| format!("{error}: {reply:02x?}"))?;
        message
            .to_vec()
            .map_err(|error| format!("{error}: {reply:02x?}"))
    };
    if canonical(fast)? != canonical(slow)? {
        return Err(format!(
            "records differ:\nfast {:?}\nslow {:?}",
            Message::from_vec(fast),
            Message::from_vec(slow)
        ));
    }
    if fast.len() > slow.len() {
        return Err(format!(
            "fast reply longer: {} > {}",
            fast.len(),
            slow.len()
        ));
    }
    Ok(())
}
