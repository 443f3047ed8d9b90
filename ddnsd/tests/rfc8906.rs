//! RFC 8906 ("A Common Operational Problem in DNS Servers: Failure to Communicate") checks
//! against the real `ddnsd serve`, over UDP and over TCP, with packets built and replies parsed by
//! hand (no DNS library: what the server puts on the wire is what gets checked). Over UDP the
//! common queries go through the fast path (`dns/src/fast.rs`) and the rest through the
//! hickory-based `Responder`; TCP is all `Responder`; the checks ask both kinds of query.
//!
//! Each check and where its expectation comes from (RFC 8906 by the titles of its test
//! subsections):
//!
//! - `soa_at_the_apex_without_edns`: NOERROR, AA, one SOA answer, no OPT. RFC 8906 "Is the Server
//!   Configured for the Zone?" and "Testing TCP"; RFC 1035 §4.1.1 (AA); RFC 6891 §7 (no OPT in the
//!   response to a query without one).
//! - `unknown_types_get_nodata`: TYPE1000 and TYPE65280 at a host and at the apex get NOERROR, AA,
//!   no answer, the zone's SOA alone in the authority section with a TTL at most its MINIMUM.
//!   RFC 8906 "Testing Unknown Types"; RFC 3597; RFC 2308 §2.2 (NODATA) and §3 (negative TTL).
//! - `header_flags`: CD, AD, the Z bit (and TC, RA, AA) in the query get a normal answer with
//!   QR=1, AA=1, TC=0, RA=0, Z=0, AD=0, RD and CD copied. RFC 8906 "Testing Header Bits" (CD=1,
//!   AD=1, reserved bit); RFC 1035 §4.1.1 (RD copied, Z zero in all responses, RA, TC); RFC 4035
//!   §3.1.6 (no AD unless the data is authenticated); RFC 6840 §5.7, §5.8 (AD in queries and
//!   replies). CD: RFC 4035 §3.2.2 says the name server side MUST copy it; §3.1.6 asks a
//!   security-aware authoritative server to clear it (SHOULD), which ddnsd, serving no DNSSEC, is
//!   not; BIND and Knot copy it.
//! - `unknown_opcodes_get_notimp`: opcodes 1..=15 (3 and 7..=15 unassigned; ddnsd implements none
//!   of the others) get NOTIMP, AA=0, no records, no OPT, the opcode and ID copied, a reply that
//!   parses; with a question and header-only. RFC 8906 "Testing Unknown Opcodes"; RFC 1035 §4.1.1.
//! - `minimal_edns`, `dnssec_ok_is_copied`: an OPT of version 0 in the reply, DO copied.
//!   RFC 8906 "Testing Minimal EDNS", "Testing DNSSEC Queries"; RFC 6891 §6.1.3, §7; RFC 3225 §3.
//! - `edns_version_1_gets_badvers`: extended RCODE 16 (BADVERS) through the OPT's extended-rcode
//!   byte (header RCODE 0), OPT version 0 without options or Z flags, no records, AA=0; plain and
//!   with unknown flags, an unknown option or DO=1. RFC 8906 "Testing EDNS Version Negotiation"
//!   (and "... with Unknown EDNS Flags", "... with Unknown EDNS Options", "... with DNSSEC");
//!   RFC 6891 §6.1.3.
//! - `unknown_edns_options_are_ignored`: options 65001, 100 and 65534 get a normal answer with an
//!   OPT that does not echo them. RFC 8906 "Testing Unknown EDNS Options"; RFC 6891 §6.1.2.
//! - `unknown_edns_flags_are_not_copied`: the OPT's Z flags are zero in the reply. RFC 8906
//!   "Testing Unknown EDNS Flags"; RFC 6891 §6.1.4.
//! - `multiple_defined_edns_options`: COOKIE, NSID, EXPIRE and ECS 0.0.0.0/0 together get a normal
//!   answer. RFC 8906 "Testing with Multiple Defined EDNS Options"; RFC 7873, RFC 5001, RFC 7314,
//!   RFC 7871.
//! - `two_opt_records_get_formerr`: a query with two OPT records gets FORMERR. RFC 6891 §6.1.1.
//! - `responses_get_no_reply`: a message with QR=1 is not answered (UDP: nothing within 300 ms;
//!   TCP: no reply with its ID, the next query on the connection still answered). RFC 1035 §4.1.1
//!   (QR) and §7.3 (responses are matched to queries, not answered); answering would let a spoofed
//!   response start a loop between two servers.
//! - `garbage_burst`: 1,000 malformed UDP datagrams (seeded xorshift: truncated headers, absurd
//!   counts with QR=0, compression loops, bad labels, overrunning OPTs, random bytes) and 16 TCP
//!   connections of malformed frames, after which a valid query is answered on both transports;
//!   every reply to the garbage is a well-formed response to a message with a header (over UDP,
//!   to one with QR=0). RFC 8906 (a server should answer every query), RFC 1035 §4.1.1 (FORMERR).
//! - `oversize_udp_answers_are_truncated`: the apex NS set (16 long names, more than 512 bytes)
//!   gets TC=1 within 512 bytes and no partial RRset over UDP without EDNS (and with an EDNS size
//!   of 512, the OPT kept), the whole set over TCP and over UDP with a larger EDNS size; an EDNS
//!   size below 512 counts as 512. RFC 1035 §4.2.1, §4.1.1 (TC); RFC 2181 §9; RFC 6891 §6.2.3,
//!   §6.2.5, §7; RFC 7766 §5.
//!
//! All checks run against one server and each is run even if another fails; the test fails with
//! the list of the checks that did.

mod common;

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::*;

const ZONE: &str = "dyn.example";
const HOST: &str = "cam.dyn.example";
const HOST_V4: [u8; 4] = [192, 0, 2, 1];
/// Enough long name servers that the apex NS set does not fit in 512 bytes.
const NAME_SERVERS: usize = 16;

const TYPE_A: u16 = 1;
const TYPE_NS: u16 = 2;
const TYPE_SOA: u16 = 6;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

const RCODE_NOERROR: u16 = 0;
const RCODE_FORMERR: u16 = 1;
const RCODE_NOTIMP: u16 = 4;
const RCODE_BADVERS: u16 = 16;

/// Flag bits of the header's second 16-bit word (RFC 1035 §4.1.1, RFC 4035 §3.2).
const QR: u16 = 0x8000;
const OPCODE_MASK: u16 = 0x7800;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const Z: u16 = 0x0040;
const AD: u16 = 0x0020;
const CD: u16 = 0x0010;

/// The DO bit of the OPT's flags (RFC 3225); the other 15 are Z, must be zero.
const EDNS_DO: u16 = 0x8000;
const EDNS_Z_MASK: u16 = 0x7fff;

/// How long a UDP query waits for its reply before it is sent again (twice at most).
const UDP_WAIT: Duration = Duration::from_millis(1500);
/// How long "no reply" is watched for.
const SILENCE: Duration = Duration::from_millis(300);
/// How long a TCP read or write may take.
const TCP_WAIT: Duration = Duration::from_secs(5);

/// Seed of the garbage burst's xorshift; printed with any failure it causes.
const GARBAGE_SEED: u64 = 0x8906_2020_d15e_a5e5;
const GARBAGE_DATAGRAMS: usize = 1000;
const GARBAGE_TCP_CONNECTIONS: usize = 16;

fn config_with_many_name_servers(dir: &std::path::Path) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "name_servers = [{}]\n",
            name_servers()
                .iter()
                .map(|ns| format!("\"{ns}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

fn name_servers() -> Vec<String> {
    (0..NAME_SERVERS)
        .map(|i| format!("name-server-number-{i:02}.a-rather-long-provider-domain.example"))
        .collect()
}

/// One check: it panics on the first expectation the server does not meet.
type Check = fn(SocketAddr);

#[test]
fn rfc8906_checks_over_udp_and_tcp() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_with_many_name_servers(dir.path());
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let mac = server.token("AA", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={mac}&dm=cam&myip=192.0.2.1")),
        "10|cam.dyn.example"
    );
    let dns = server.dns;
    wait_for_host(dns);

    let checks: [(&str, Check); 14] = [
        ("soa_at_the_apex_without_edns", soa_at_the_apex_without_edns),
        ("unknown_types_get_nodata", unknown_types_get_nodata),
        ("header_flags", header_flags),
        ("unknown_opcodes_get_notimp", unknown_opcodes_get_notimp),
        ("minimal_edns", minimal_edns),
        ("dnssec_ok_is_copied", dnssec_ok_is_copied),
        ("edns_version_1_gets_badvers", edns_version_1_gets_badvers),
        (
            "unknown_edns_options_are_ignored",
            unknown_edns_options_are_ignored,
        ),
        (
            "unknown_edns_flags_are_not_copied",
            unknown_edns_flags_are_not_copied,
        ),
        (
            "multiple_defined_edns_options",
            multiple_defined_edns_options,
        ),
        ("two_opt_records_get_formerr", two_opt_records_get_formerr),
        ("responses_get_no_reply", responses_get_no_reply),
        ("garbage_burst", garbage_burst),
        (
            "oversize_udp_answers_are_truncated",
            oversize_udp_answers_are_truncated,
        ),
    ];
    let mut failed = Vec::new();
    for (name, check) in checks {
        let check_started = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(dns)));
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        eprintln!(
            "rfc8906 check {name}: {verdict} ({:?})",
            check_started.elapsed()
        );
        if outcome.is_err() {
            failed.push(name);
        }
    }
    // The last word: the server is still up and right after all of it.
    assert_host_answer(dns, Transport::Udp);
    assert_host_answer(dns, Transport::Tcp);
    eprintln!("rfc8906: all checks took {:?}", started.elapsed());
    assert!(failed.is_empty(), "failed RFC 8906 checks: {failed:?}");
}

/// Waits (at most 10 s) until the host added through the device API is served.
fn wait_for_host(dns: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = ask(dns, Transport::Udp, &Query::new(HOST, TYPE_A));
        if reply.answers.len() == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "{HOST} never served: {reply:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.

fn soa_at_the_apex_without_edns(dns: SocketAddr) {
    for transport in Transport::BOTH {
        let query = Query::new(ZONE, TYPE_SOA);
        let reply = ask(dns, transport, &query);
        let what = format!("SOA {ZONE} over {transport}: {reply:?}");
        assert_answers_question(&query, &reply, &what);
        assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");
        assert!(reply.has(AA), "AA: {what}");
        assert!(!reply.has(TC), "TC: {what}");
        let [soa] = reply.answers.as_slice() else {
            panic!("one answer: {what}")
        };
        assert_eq!(soa.rtype, TYPE_SOA, "{what}");
        assert_eq!(soa.class, CLASS_IN, "{what}");
        assert!(soa.name.eq_ignore_ascii_case(ZONE), "{what}");
        let RData::Soa { mname, .. } = &soa.data else {
            panic!("SOA data: {what}")
        };
        assert!(mname.eq_ignore_ascii_case(&name_servers()[0]), "{what}");
        assert!(reply.authority.is_empty(), "{what}");
        assert!(
            reply.opt.is_none(),
            "no OPT without EDNS in the query: {what}"
        );
        assert_eq!(reply.arcount, 0, "{what}");
    }
}

fn unknown_types_get_nodata(dns: SocketAddr) {
    for transport in Transport::BOTH {
        for name in [HOST, ZONE] {
            for qtype in [1000, 65280] {
                let query = Query::new(name, qtype);
                let reply = ask(dns, transport, &query);
                let what = format!("TYPE{qtype} {name} over {transport}: {reply:?}");
                assert_answers_question(&query, &reply, &what);
                assert_nodata(&reply, &what);
            }
        }
    }
}

fn header_flags(dns: SocketAddr) {
    let flag_sets = [
        RD | CD | AD | Z,
        AD | Z,
        CD,
        AD,
        Z,
        RD,
        RD | CD,
        TC | RA | AA,
        RD | CD | AD | Z | TC | RA | AA,
    ];
    for transport in Transport::BOTH {
        // A host's A (the UDP fast path) and the apex SOA (the Responder, on UDP too).
        for (name, qtype) in [(HOST, TYPE_A), (ZONE, TYPE_SOA)] {
            for flags in flag_sets {
                let query = Query::new(name, qtype).flags(flags);
                let reply = ask(dns, transport, &query);
                let what = format!(
                    "{name} type {qtype} with query flags {flags:#06x} over {transport}: {reply:?}"
                );
                assert_answers_question(&query, &reply, &what);
                assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");
                assert_eq!(reply.answers.len(), 1, "a normal answer: {what}");
                assert!(reply.has(AA), "AA=1: {what}");
                assert!(!reply.has(RA), "RA=0 (no recursion here): {what}");
                assert!(!reply.has(TC), "TC=0 (nothing truncated): {what}");
                assert!(!reply.has(Z), "Z=0 in every response (RFC 1035): {what}");
                assert!(
                    !reply.has(AD),
                    "AD=0 without DNSSEC (RFC 4035 §3.1.6): {what}"
                );
                assert_eq!(reply.has(RD), flags & RD != 0, "RD copied: {what}");
                assert_eq!(
                    reply.has(CD),
                    flags & CD != 0,
                    "CD copied (RFC 4035 §3.2.2): {what}"
                );
            }
        }
    }
}

fn unknown_opcodes_get_notimp(dns: SocketAddr) {
    for transport in Transport::BOTH {
        for opcode in 1..=15u8 {
            for with_question in [true, false] {
                let mut query = Query::new(ZONE, TYPE_SOA).opcode(opcode);
                if !with_question {
                    query.question = None;
                }
                let reply = ask(dns, transport, &query);
                let what = format!(
                    "opcode {opcode} ({}) over {transport}: {reply:?}",
                    if with_question {
                        "SOA question"
                    } else {
                        "header only"
                    }
                );
                assert!(reply.has(QR), "QR=1: {what}");
                assert_eq!(reply.opcode(), opcode, "opcode copied: {what}");
                assert_eq!(reply.rcode(), RCODE_NOTIMP, "{what}");
                assert!(!reply.has(AA), "AA=0: {what}");
                assert!(
                    reply.answers.is_empty() && reply.authority.is_empty(),
                    "no SOA: {what}"
                );
                assert!(reply.opt.is_none(), "no OPT: {what}");
            }
        }
    }
}

fn minimal_edns(dns: SocketAddr) {
    for transport in Transport::BOTH {
        for (name, qtype) in [(ZONE, TYPE_SOA), (HOST, TYPE_A)] {
            let query = Query::new(name, qtype).edns(Edns::new(1232));
            let reply = ask(dns, transport, &query);
            let what = format!("{name} type {qtype} with EDNS 0 over {transport}: {reply:?}");
            assert_answers_question(&query, &reply, &what);
            assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");
            assert!(reply.has(AA), "AA: {what}");
            assert_eq!(reply.answers.len(), 1, "{what}");
            assert_eq!(reply.answers[0].rtype, qtype, "{what}");
            let opt = reply.opt.as_ref().unwrap_or_else(|| panic!("OPT: {what}"));
            assert_eq!(opt.version, 0, "{what}");
            assert_eq!(opt.ext_rcode, 0, "{what}");
            assert_eq!(opt.flags, 0, "{what}");
            assert!(opt.payload >= 512, "{what}");
        }
    }
}

fn dnssec_ok_is_copied(dns: SocketAddr) {
    for transport in Transport::BOTH {
        for (name, qtype) in [(ZONE, TYPE_SOA), (HOST, TYPE_A)] {
            let query = Query::new(name, qtype).edns(Edns::new(1232).flags(EDNS_DO));
            let reply = ask(dns, transport, &query);
            let what = format!("{name} type {qtype} with DO=1 over {transport}: {reply:?}");
            assert_answers_question(&query, &reply, &what);
            assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");
            assert!(reply.has(AA), "AA: {what}");
            assert_eq!(reply.answers.len(), 1, "{what}");
            let opt = reply.opt.as_ref().unwrap_or_else(|| panic!("OPT: {what}"));
            assert_eq!(opt.version, 0, "{what}");
            assert_eq!(opt.flags, EDNS_DO, "DO copied, nothing else: {what}");
        }
    }
}

fn edns_version_1_gets_badvers(dns: SocketAddr) {
    let variants: [(&str, Edns); 4] = [
        ("plain", Edns::new(1232).version(1)),
        ("Z flag 0x40", Edns::new(1232).version(1).flags(0x0040)),
        ("option 100", Edns::new(1232).version(1).option(100, &[])),
        ("DO=1", Edns::new(1232).version(1).flags(EDNS_DO)),
    ];
    for transport in Transport::BOTH {
        for (name, qtype) in [(ZONE, TYPE_SOA), (HOST, TYPE_A)] {
            for (label, edns) in &variants {
                let query = Query::new(name, qtype).edns(edns.clone());
                let reply = ask(dns, transport, &query);
                let what = format!(
                    "{name} type {qtype} with EDNS version 1 ({label}) over {transport}: {reply:?}"
                );
                assert!(reply.has(QR), "QR=1: {what}");
                let opt = reply.opt.as_ref().unwrap_or_else(|| panic!("OPT: {what}"));
                assert_eq!(opt.ext_rcode, 1, "extended RCODE byte 1 (16 >> 4): {what}");
                assert_eq!(reply.flags & 0x000f, 0, "header RCODE 0 (16 & 15): {what}");
                assert_eq!(reply.rcode(), RCODE_BADVERS, "{what}");
                assert_eq!(opt.version, 0, "OPT version 0 in the reply: {what}");
                assert_eq!(opt.flags & EDNS_Z_MASK, 0, "MBZ clear: {what}");
                assert_eq!(
                    opt.flags & EDNS_DO,
                    edns.flags & EDNS_DO,
                    "DO as in version 0 answers (copied): {what}"
                );
                assert!(opt.options.is_empty(), "no option echoed: {what}");
                assert!(
                    reply.answers.is_empty() && reply.authority.is_empty(),
                    "no records: {what}"
                );
                assert!(!reply.has(AA), "AA=0: {what}");
            }
        }
    }
}

fn unknown_edns_options_are_ignored(dns: SocketAddr) {
    let variants: [(u16, &[u8]); 3] = [
        (65001, b"some option bytes"),
        (100, &[]),
        (65534, &[0xff; 40]),
    ];
    for transport in Transport::BOTH {
        // The host's A goes the fast path on UDP; the apex SOA the Responder.
        for (name, qtype) in [(HOST, TYPE_A), (ZONE, TYPE_SOA)] {
            for (code, data) in variants {
                let query = Query::new(name, qtype).edns(Edns::new(1232).option(code, data));
                let reply = ask(dns, transport, &query);
                let what = format!(
                    "{name} type {qtype} with EDNS option {code} over {transport}: {reply:?}"
                );
                assert_answers_question(&query, &reply, &what);
                assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");
                assert!(reply.has(AA), "AA: {what}");
                assert_eq!(reply.answers.len(), 1, "a normal answer: {what}");
                assert_eq!(reply.answers[0].rtype, qtype, "{what}");
                if qtype == TYPE_A {
                    assert_eq!(reply.answers[0].data, RData::A(HOST_V4), "{what}");
                }
                let opt = reply.opt.as_ref().unwrap_or_else(|| panic!("OPT: {what}"));
                assert_eq!(opt.version, 0, "{what}");
                assert!(
                    opt.options.iter().all(|(echoed, _)| *echoed != code),
                    "option {code} not echoed: {what}"
                );
            }
        }
    }
}

fn unknown_edns_flags_are_not_copied(dns: SocketAddr) {
    for transport in Transport::BOTH {
        for (name, qtype) in [(HOST, TYPE_A), (ZONE, TYPE_SOA)] {
            for flags in [0x0040, EDNS_Z_MASK, EDNS_DO | 0x0001] {
                let query = Query::new(name, qtype).edns(Edns::new(1232).flags(flags));
                let reply = ask(dns, transport, &query);
                let what = format!(
                    "{name} type {qtype} with EDNS flags {flags:#06x} over {transport}: {reply:?}"
                );
                assert_answers_question(&query, &reply, &what);
                assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");
                assert_eq!(reply.answers.len(), 1, "{what}");
                let opt = reply.opt.as_ref().unwrap_or_else(|| panic!("OPT: {what}"));
                assert_eq!(opt.version, 0, "{what}");
                assert_eq!(opt.flags & EDNS_Z_MASK, 0, "MBZ not copied: {what}");
            }
        }
    }
}

fn multiple_defined_edns_options(dns: SocketAddr) {
    let edns = Edns::new(1232)
        // COOKIE (RFC 7873): an 8-byte client cookie.
        .option(10, &[1, 2, 3, 4, 5, 6, 7, 8])
        // NSID (RFC 5001): empty in queries.
        .option(3, &[])
        // EXPIRE (RFC 7314): empty in queries.
        .option(9, &[])
        // Client subnet (RFC 7871): family 1, source prefix 0, scope 0, no address octets.
        .option(8, &[0, 1, 0, 0]);
    for transport in Transport::BOTH {
        for (name, qtype) in [(ZONE, TYPE_SOA), (HOST, TYPE_A)] {
            let query = Query::new(name, qtype).edns(edns.clone());
            let reply = ask(dns, transport, &query);
            let what = format!(
                "{name} type {qtype} with COOKIE, NSID, EXPIRE and ECS over {transport}: {reply:?}"
            );
            assert_answers_question(&query, &reply, &what);
            assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");
            assert!(reply.has(AA), "AA: {what}");
            assert_eq!(reply.answers.len(), 1, "{what}");
            let opt = reply.opt.as_ref().unwrap_or_else(|| panic!("OPT: {what}"));
            assert_eq!(opt.version, 0, "{what}");
        }
    }
}

fn two_opt_records_get_formerr(dns: SocketAddr) {
    for transport in Transport::BOTH {
        for (name, qtype) in [(HOST, TYPE_A), (ZONE, TYPE_SOA)] {
            let query = Query::new(name, qtype).edns(Edns::new(1232));
            let mut message = query.to_bytes();
            let opt = message[message.len() - 11..].to_vec();
            message.extend_from_slice(&opt);
            message[11] = 2;
            let bytes = match transport {
                Transport::Udp => udp_exchange(dns, &message, query.id),
                Transport::Tcp => {
                    let mut stream = tcp_connect(dns);
                    stream.write_all(&frame(&message)).expect("sent");
                    read_frame(&mut stream)
                }
            };
            let bytes = bytes.unwrap_or_else(|| panic!("no reply over {transport}"));
            let reply = parse(&bytes).unwrap_or_else(|e| panic!("reply parses: {e}"));
            let what = format!("{name} type {qtype} with two OPTs over {transport}: {reply:?}");
            assert!(reply.has(QR), "{what}");
            assert_eq!(reply.id, query.id, "{what}");
            assert_eq!(reply.rcode(), RCODE_FORMERR, "{what}");
            assert!(reply.answers.is_empty(), "{what}");
        }
    }
}

fn responses_get_no_reply(dns: SocketAddr) {
    let responses = [
        Query::new(HOST, TYPE_A).flags(QR),
        Query::new(ZONE, TYPE_SOA).flags(QR | AA),
        Query::new(HOST, TYPE_A)
            .flags(QR)
            .edns(Edns::new(1232).version(1)),
        Query::new(ZONE, TYPE_SOA).flags(QR).opcode(15),
    ];

    // UDP: nothing at all comes back.
    let socket = udp_socket(dns);
    for response in &responses {
        socket.send(&response.to_bytes()).expect("sent");
    }
    let mut buf = [0u8; 4096];
    socket.set_read_timeout(Some(SILENCE)).expect("timeout");
    match socket.recv(&mut buf) {
        Ok(len) => panic!(
            "a reply to a QR=1 message over UDP: {:?}",
            parse(&buf[..len])
        ),
        Err(error) => assert!(
            matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{error}"
        ),
    }

    // TCP: the responses, then a query on the same connection; only the query is answered. The
    // server may close the connection instead; then a new one must still work.
    let mut stream = tcp_connect(dns);
    let mut frames = Vec::new();
    for response in &responses {
        frames.extend(frame(&response.to_bytes()));
    }
    let query = Query::new(HOST, TYPE_A);
    frames.extend(frame(&query.to_bytes()));
    stream.write_all(&frames).expect("sent");
    let response_ids: Vec<u16> = responses.iter().map(|r| r.id).collect();
    let first = read_frame(&mut stream);
    let answered = first.is_some();
    if let Some(bytes) = first {
        let reply = parse(&bytes).unwrap_or_else(|e| panic!("TCP reply parses: {e}"));
        assert!(
            !response_ids.contains(&reply.id),
            "a reply to a QR=1 message over TCP: {reply:?}"
        );
        assert_eq!(reply.id, query.id, "{reply:?}");
    }
    // Anything after the query's reply would be a late reply to a response.
    stream.set_read_timeout(Some(SILENCE)).expect("timeout");
    if let Some(bytes) = read_frame(&mut stream) {
        panic!(
            "a reply to a QR=1 message over TCP, after the query's: {:?}",
            parse(&bytes)
        );
    }
    if !answered {
        assert_host_answer(dns, Transport::Tcp);
    }
    assert_host_answer(dns, Transport::Udp);
}

fn garbage_burst(dns: SocketAddr) {
    let mut rng = XorShift(GARBAGE_SEED);
    let garbage = udp_socket(dns);
    // Replies are read while the burst goes out, so that none is lost to a full socket buffer.
    garbage.set_read_timeout(Some(SILENCE)).expect("timeout");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (socket, done) = (garbage.try_clone().expect("socket cloned"), done.clone());
        std::thread::spawn(move || {
            let mut replies = Vec::new();
            let mut buf = [0u8; 65535];
            let give_up = Instant::now() + Duration::from_secs(10);
            while Instant::now() < give_up {
                match socket.recv(&mut buf) {
                    Ok(len) => replies.push(buf[..len].to_vec()),
                    Err(_) if done.load(Ordering::Acquire) => break,
                    Err(_) => {}
                }
            }
            replies
        })
    };
    // IDs of the datagrams a reply may answer: long enough for a header, QR=0.
    let mut answerable_ids = Vec::new();
    let mut kinds = [0usize; 6];
    for i in 0..GARBAGE_DATAGRAMS {
        let kind = i % kinds.len();
        kinds[kind] += 1;
        let datagram = garbage_datagram(&mut rng, kind);
        if datagram.len() >= 12 && datagram[2] & 0x80 == 0 {
            answerable_ids.push(u16::from_be_bytes([datagram[0], datagram[1]]));
        }
        garbage.send(&datagram).expect("garbage sent");
    }

    // A valid query from another socket is answered (UDP, with the usual retry).
    assert_host_answer(dns, Transport::Udp);

    // Whatever came back to the garbage is a well-formed response to a QR=0 datagram.
    done.store(true, Ordering::Release);
    let replies = reader.join().expect("the reader ends");
    let mut by_rcode = std::collections::BTreeMap::<u16, usize>::new();
    for bytes in &replies {
        let reply = parse(bytes).unwrap_or_else(|e| {
            panic!("seed {GARBAGE_SEED:#x}: a reply to garbage does not parse: {e}: {bytes:02x?}")
        });
        let what = format!("seed {GARBAGE_SEED:#x}, UDP reply to garbage: {reply:?}");
        assert!(reply.has(QR), "QR=1: {what}");
        assert!(
            answerable_ids.contains(&reply.id),
            "a reply to a datagram that was too short or had QR=1: {what}"
        );
        assert!(bytes.len() <= 512, "{} bytes: {what}", bytes.len());
        *by_rcode.entry(reply.rcode()).or_default() += 1;
    }
    eprintln!(
        "garbage burst (seed {GARBAGE_SEED:#x}): {GARBAGE_DATAGRAMS} UDP datagrams of kinds \
         {kinds:?}, {} with a header and QR=0, {} replies by rcode {by_rcode:?}",
        answerable_ids.len(),
        replies.len()
    );

    // TCP: connections with one to four garbage frames each, then a valid query on a new one.
    let mut tcp_replies = 0;
    let mut tcp_replies_to_qr1 = 0;
    for round in 0..GARBAGE_TCP_CONNECTIONS {
        let mut stream = tcp_connect(dns);
        let mut bytes = Vec::new();
        let mut messages = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let kind = rng.below(kinds.len());
            let message = garbage_datagram(&mut rng, kind);
            bytes.extend(frame(&message));
            messages.push(message);
        }
        if round == GARBAGE_TCP_CONNECTIONS - 1 {
            // Then a length prefix that promises more than comes: nothing to answer.
            bytes.extend_from_slice(&[0x03, 0xe8, 0x12, 0x34, 0x01, 0x00]);
        }
        // A server that closes on garbage may reset before the write completes.
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(Shutdown::Write);
        stream.set_read_timeout(Some(SILENCE)).expect("timeout");
        while let Some(reply) = read_frame(&mut stream) {
            let reply = parse(&reply).unwrap_or_else(|e| {
                panic!("seed {GARBAGE_SEED:#x}: TCP reply to garbage does not parse: {e}")
            });
            let what = format!("seed {GARBAGE_SEED:#x}, TCP garbage round {round}: {reply:?}");
            assert!(reply.has(QR), "{what}");
            let answered = messages
                .iter()
                .find(|m| m.len() >= 12 && m[..2] == reply.id.to_be_bytes())
                .unwrap_or_else(|| panic!("a reply to no message with a header: {what}"));
            tcp_replies += 1;
            if answered[2] & 0x80 != 0 {
                tcp_replies_to_qr1 += 1;
                // Hickory's FORMERR to an undecodable message: a bare header, QR=1, no records.
                assert_eq!(reply.rcode(), RCODE_FORMERR, "{what}");
                assert!(
                    reply.questions.is_empty() && reply.answers.is_empty(),
                    "{what}"
                );
            }
        }
    }
    eprintln!(
        "garbage over TCP: {GARBAGE_TCP_CONNECTIONS} connections, {tcp_replies} replies, \
         {tcp_replies_to_qr1} of them FORMERR to undecodable QR=1 frames"
    );
    assert_host_answer(dns, Transport::Tcp);
}

/// One malformed datagram of `kind` (0..6).
fn garbage_datagram(rng: &mut XorShift, kind: usize) -> Vec<u8> {
    match kind {
        // A truncated header.
        0 => {
            let len = rng.below(12);
            rng.bytes(len)
        }
        // QR=0, opcode QUERY, absurd counts, a random body.
        1 => {
            let len = rng.below(588);
            let mut message = vec![0; 12];
            message[..2].copy_from_slice(&(rng.next() as u16).to_be_bytes());
            message[2] = rng.next() as u8 & 0x07;
            for count in message[4..12].chunks_exact_mut(2) {
                let absurd = [0xffff, 0x8000, 0x1000, rng.next() as u16][rng.below(4)];
                count.copy_from_slice(&u16::to_be_bytes(absurd));
            }
            message.extend(rng.bytes(len));
            message
        }
        // One question whose name is a compression pointer to itself (a loop).
        2 => {
            let mut message = Query::new(HOST, TYPE_A).to_bytes();
            message.truncate(12);
            message.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
            message
        }
        // One question whose name runs past the end, or has a label longer than 63.
        3 => {
            let mut message = Query::new(HOST, TYPE_A).to_bytes();
            if rng.below(2) == 0 {
                message.truncate(12 + rng.below(16));
            } else {
                message[12] = 64 + rng.below(64) as u8;
            }
            message
        }
        // A valid question followed by an OPT whose RDLENGTH runs past the end.
        4 => {
            let mut message = Query::new(HOST, TYPE_A)
                .edns(Edns::new(1232).option(65001, b"xy"))
                .to_bytes();
            let rdlength_at = message.len() - 6 - 2;
            message[rdlength_at..rdlength_at + 2].copy_from_slice(&0x0400u16.to_be_bytes());
            message
        }
        // Random bytes of a random length up to 600.
        _ => {
            let len = rng.below(601);
            rng.bytes(len)
        }
    }
}

fn oversize_udp_answers_are_truncated(dns: SocketAddr) {
    let mut expected = name_servers();
    expected.sort();

    // UDP without EDNS: TC=1 within 512 bytes. RFC 2181 §9 allows whole RRsets that fit to stay;
    // a partial one must not be there (the NS set is one RRset: all 16 or none).
    let query = Query::new(ZONE, TYPE_NS);
    let (reply, len) = ask_with_len(dns, Transport::Udp, &query);
    let what = format!("NS {ZONE} over UDP without EDNS ({len} bytes): {reply:?}");
    assert_answers_question(&query, &reply, &what);
    assert!(reply.has(TC), "TC=1: {what}");
    assert!(len <= 512, "{what}");
    assert!(reply.answers.is_empty(), "no partial NS set: {what}");
    assert!(reply.opt.is_none(), "{what}");
    assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");

    // UDP with an EDNS size of 512, or of less (counted as 512): TC=1, OPT still present.
    for payload in [512, 100] {
        let query = Query::new(ZONE, TYPE_NS).edns(Edns::new(payload));
        let (reply, len) = ask_with_len(dns, Transport::Udp, &query);
        let what = format!("NS {ZONE} over UDP with EDNS size {payload} ({len} bytes): {reply:?}");
        assert!(reply.has(TC), "TC=1: {what}");
        assert!(len <= 512, "{what}");
        assert!(reply.answers.is_empty(), "no partial NS set: {what}");
        assert!(reply.opt.is_some(), "OPT kept in a truncated reply: {what}");
    }
    // An EDNS size below 512 still allows 512 bytes: the SOA (about 150 bytes) is not truncated.
    let query = Query::new(ZONE, TYPE_SOA).edns(Edns::new(100));
    let (reply, len) = ask_with_len(dns, Transport::Udp, &query);
    let what = format!("SOA {ZONE} over UDP with EDNS size 100 ({len} bytes): {reply:?}");
    assert!(
        len > 100,
        "the premise: the reply is over 100 bytes: {what}"
    );
    assert!(!reply.has(TC), "{what}");
    assert_eq!(reply.answers.len(), 1, "{what}");

    // TCP, and UDP with a large enough EDNS size: the whole set.
    for (transport, edns) in [
        (Transport::Tcp, None),
        (Transport::Tcp, Some(Edns::new(512))),
        (Transport::Udp, Some(Edns::new(1232))),
    ] {
        let mut query = Query::new(ZONE, TYPE_NS);
        query.edns = edns;
        let (reply, len) = ask_with_len(dns, transport, &query);
        let what = format!("NS {ZONE} over {transport} ({len} bytes): {reply:?}");
        assert_answers_question(&query, &reply, &what);
        assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");
        assert!(!reply.has(TC), "TC=0: {what}");
        assert!(reply.has(AA), "AA: {what}");
        assert!(len > 512, "the premise: the set is over 512 bytes: {what}");
        let mut got: Vec<String> = reply
            .answers
            .iter()
            .map(|record| {
                assert_eq!(record.rtype, TYPE_NS, "{what}");
                assert!(record.name.eq_ignore_ascii_case(ZONE), "{what}");
                match &record.data {
                    RData::Ns(target) => target.to_ascii_lowercase(),
                    other => panic!("NS data, got {other:?}: {what}"),
                }
            })
            .collect();
        got.sort();
        assert_eq!(got, expected, "{what}");
        if transport == Transport::Udp {
            assert!(len <= 1232, "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared assertions.

/// The host's A record, asked over `transport`.
fn assert_host_answer(dns: SocketAddr, transport: Transport) {
    let query = Query::new(HOST, TYPE_A);
    let reply = ask(dns, transport, &query);
    let what = format!("A {HOST} over {transport}: {reply:?}");
    assert_answers_question(&query, &reply, &what);
    assert_eq!(reply.rcode(), RCODE_NOERROR, "{what}");
    assert!(reply.has(AA), "{what}");
    let [answer] = reply.answers.as_slice() else {
        panic!("one answer: {what}")
    };
    assert_eq!(answer.data, RData::A(HOST_V4), "{what}");
}

/// A response to `query`: QR=1, its ID and opcode, its question echoed as it was sent.
fn assert_answers_question(query: &Query, reply: &Reply, what: &str) {
    assert!(reply.has(QR), "QR=1: {what}");
    assert_eq!(reply.id, query.id, "ID copied: {what}");
    assert_eq!(
        reply.opcode(),
        query.opcode_value(),
        "opcode copied: {what}"
    );
    let (name, qtype) = query.question.as_ref().expect("a query with a question");
    assert_eq!(
        reply.questions,
        [(name.clone(), *qtype, CLASS_IN)],
        "question echoed: {what}"
    );
}

/// NOERROR, AA, no answer, the zone's SOA alone in the authority section.
fn assert_nodata(reply: &Reply, what: &str) {
    assert_eq!(reply.rcode(), RCODE_NOERROR, "NOERROR: {what}");
    assert!(reply.has(AA), "AA: {what}");
    assert!(reply.answers.is_empty(), "no answer: {what}");
    let [soa] = reply.authority.as_slice() else {
        panic!("one authority record: {what}")
    };
    assert_eq!(soa.rtype, TYPE_SOA, "SOA in authority: {what}");
    assert!(
        soa.name.eq_ignore_ascii_case(ZONE),
        "the zone's SOA: {what}"
    );
    let RData::Soa { minimum, .. } = soa.data else {
        panic!("SOA data: {what}")
    };
    assert!(
        soa.ttl <= minimum,
        "negative TTL at most the SOA minimum (RFC 2308 §3): {what}"
    );
}

// ---------------------------------------------------------------------------------------------
// Building queries.

static NEXT_ID: AtomicU16 = AtomicU16::new(0x4000);

/// A query to encode: header flags (QR, opcode, AA..CD), at most one question, an optional OPT.
#[derive(Clone, Debug)]
struct Query {
    id: u16,
    flags: u16,
    question: Option<(String, u16)>,
    edns: Option<Edns>,
}

impl Query {
    fn new(name: &str, qtype: u16) -> Query {
        Query {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            flags: 0,
            question: Some((name.to_owned(), qtype)),
            edns: None,
        }
    }

    fn flags(mut self, flags: u16) -> Query {
        self.flags |= flags;
        self
    }

    fn opcode(mut self, opcode: u8) -> Query {
        self.flags = (self.flags & !OPCODE_MASK) | (u16::from(opcode & 0x0f) << 11);
        self
    }

    fn opcode_value(&self) -> u8 {
        ((self.flags & OPCODE_MASK) >> 11) as u8
    }

    fn edns(mut self, edns: Edns) -> Query {
        self.edns = Some(edns);
        self
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for count in [
            u16::from(self.question.is_some()),
            0,
            0,
            u16::from(self.edns.is_some()),
        ] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        if let Some((name, qtype)) = &self.question {
            for label in name.split('.') {
                out.push(u8::try_from(label.len()).expect("a short label"));
                out.extend_from_slice(label.as_bytes());
            }
            out.push(0);
            out.extend_from_slice(&qtype.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
        }
        if let Some(edns) = &self.edns {
            out.push(0);
            out.extend_from_slice(&TYPE_OPT.to_be_bytes());
            out.extend_from_slice(&edns.payload.to_be_bytes());
            out.push(edns.ext_rcode);
            out.push(edns.version);
            out.extend_from_slice(&edns.flags.to_be_bytes());
            let rdata: Vec<u8> = edns
                .options
                .iter()
                .flat_map(|(code, data)| {
                    let len = u16::try_from(data.len()).expect("a short option");
                    [code.to_be_bytes(), len.to_be_bytes()]
                        .concat()
                        .into_iter()
                        .chain(data.iter().copied())
                })
                .collect();
            let rdlength = u16::try_from(rdata.len()).expect("short options");
            out.extend_from_slice(&rdlength.to_be_bytes());
            out.extend_from_slice(&rdata);
        }
        out
    }
}

/// The OPT of a query (RFC 6891 §6.1.2).
#[derive(Clone, Debug)]
struct Edns {
    payload: u16,
    ext_rcode: u8,
    version: u8,
    flags: u16,
    options: Vec<(u16, Vec<u8>)>,
}

impl Edns {
    fn new(payload: u16) -> Edns {
        Edns {
            payload,
            ext_rcode: 0,
            version: 0,
            flags: 0,
            options: Vec::new(),
        }
    }

    fn version(mut self, version: u8) -> Edns {
        self.version = version;
        self
    }

    fn flags(mut self, flags: u16) -> Edns {
        self.flags = flags;
        self
    }

    fn option(mut self, code: u16, data: &[u8]) -> Edns {
        self.options.push((code, data.to_vec()));
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing replies, strictly: every count honoured, every length in bounds, names with backward
// compression pointers only, RDATA of known types consumed exactly, at most one OPT and only in
// the additional section, nothing left over.

#[derive(Clone, Debug, PartialEq, Eq)]
enum RData {
    A([u8; 4]),
    Aaaa([u8; 16]),
    Ns(String),
    Soa {
        mname: String,
        /// The MINIMUM field, which caps the TTL of a negative answer's SOA (RFC 2308 §3).
        minimum: u32,
    },
    Other(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Record {
    name: String,
    rtype: u16,
    class: u16,
    ttl: u32,
    data: RData,
}

#[derive(Clone, Debug)]
struct Opt {
    payload: u16,
    ext_rcode: u8,
    version: u8,
    flags: u16,
    options: Vec<(u16, Vec<u8>)>,
}

struct Reply {
    id: u16,
    flags: u16,
    arcount: u16,
    questions: Vec<(String, u16, u16)>,
    answers: Vec<Record>,
    authority: Vec<Record>,
    /// The additional section without the OPT.
    additional: Vec<Record>,
    opt: Option<Opt>,
}

impl Reply {
    fn has(&self, bit: u16) -> bool {
        self.flags & bit != 0
    }

    fn opcode(&self) -> u8 {
        ((self.flags & OPCODE_MASK) >> 11) as u8
    }

    /// The full RCODE: the header's 4 bits, and the OPT's 8 above them (RFC 6891 §6.1.3).
    fn rcode(&self) -> u16 {
        let high = self.opt.as_ref().map_or(0, |opt| u16::from(opt.ext_rcode));
        (high << 4) | (self.flags & 0x000f)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits: Vec<&str> = [
            (QR, "qr"),
            (AA, "aa"),
            (TC, "tc"),
            (RD, "rd"),
            (RA, "ra"),
            (Z, "z"),
            (AD, "ad"),
            (CD, "cd"),
        ]
        .iter()
        .filter(|(bit, _)| self.has(*bit))
        .map(|(_, name)| *name)
        .collect();
        f.debug_struct("Reply")
            .field("id", &self.id)
            .field("opcode", &self.opcode())
            .field("rcode", &self.rcode())
            .field("flags", &bits)
            .field("questions", &self.questions)
            .field("answers", &self.answers)
            .field("authority", &self.authority)
            .field("additional", &self.additional)
            .field("opt", &self.opt)
            .finish()
    }
}

fn parse(message: &[u8]) -> Result<Reply, String> {
    let header = message
        .get(..12)
        .ok_or_else(|| format!("{} bytes: shorter than a header", message.len()))?;
    let be16 = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    let [qdcount, ancount, nscount, arcount] = [be16(4), be16(6), be16(8), be16(10)];
    let mut at = 12;
    let mut questions = Vec::new();
    for _ in 0..qdcount {
        let (name, end) = read_name(message, at)?;
        let fixed = message
            .get(end..end + 4)
            .ok_or("question runs past the end")?;
        questions.push((
            name,
            u16::from_be_bytes([fixed[0], fixed[1]]),
            u16::from_be_bytes([fixed[2], fixed[3]]),
        ));
        at = end + 4;
    }
    let mut sections = [Vec::new(), Vec::new(), Vec::new()];
    let mut opt = None;
    for (section, count) in [ancount, nscount, arcount].into_iter().enumerate() {
        for _ in 0..count {
            let (record, end) = read_record(message, at)?;
            at = end;
            if record.rtype == TYPE_OPT {
                if section != 2 {
                    return Err(format!("OPT outside the additional section: {record:?}"));
                }
                if opt.is_some() {
                    return Err("two OPT records".into());
                }
                if record.name != "." {
                    return Err(format!("OPT owner not the root: {record:?}"));
                }
                let RData::Other(rdata) = &record.data else {
                    unreachable!("OPT data is kept raw");
                };
                let [ext_rcode, version, flags_high, flags_low] = record.ttl.to_be_bytes();
                opt = Some(Opt {
                    payload: record.class,
                    ext_rcode,
                    version,
                    flags: u16::from_be_bytes([flags_high, flags_low]),
                    options: read_options(rdata)?,
                });
            } else {
                sections[section].push(record);
            }
        }
    }
    if at != message.len() {
        return Err(format!(
            "{} bytes left over after the counted records",
            message.len() - at
        ));
    }
    let [answers, authority, additional] = sections;
    Ok(Reply {
        id: be16(0),
        flags: be16(2),
        arcount,
        questions,
        answers,
        authority,
        additional,
        opt,
    })
}

/// A name at `at`: its dotted form ("." for the root, case kept) and the offset after it where it
/// started (after the first pointer, if any).
fn read_name(message: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    let mut wire_len = 1;
    loop {
        let len = *message.get(at).ok_or("name runs past the end")?;
        match len {
            0 => {
                end.get_or_insert(at + 1);
                break;
            }
            1..=63 => {
                let label = message
                    .get(at + 1..at + 1 + usize::from(len))
                    .ok_or("label runs past the end")?;
                wire_len += 1 + label.len();
                if wire_len > 255 {
                    return Err("name longer than 255 octets".into());
                }
                labels.push(label.iter().map(|&b| char::from(b)).collect());
                at += 1 + usize::from(len);
            }
            0xc0..=0xff => {
                let low = *message.get(at + 1).ok_or("pointer runs past the end")?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                end.get_or_insert(at + 2);
                // RFC 1035 §4.1.4: a pointer to a prior occurrence; a forward one could loop.
                if target >= at {
                    return Err(format!(
                        "compression pointer at {at} points forward to {target}"
                    ));
                }
                at = target;
            }
            _ => return Err(format!("extended label type {len:#04x} at {at}")),
        }
    }
    let name = if labels.is_empty() {
        ".".to_owned()
    } else {
        labels.join(".")
    };
    Ok((name, end.expect("set when the name ended")))
}

fn read_record(message: &[u8], at: usize) -> Result<(Record, usize), String> {
    let (name, at) = read_name(message, at)?;
    let fixed = message
        .get(at..at + 10)
        .ok_or("record header runs past the end")?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let start = at + 10;
    let end = start + rdlength;
    let rdata = message
        .get(start..end)
        .ok_or_else(|| format!("RDATA of {name} type {rtype} runs past the end"))?;
    let exact = |consumed: usize, what: &str| {
        if consumed == end {
            Ok(())
        } else {
            Err(format!("{what} RDATA of {name}: {consumed} != {end}"))
        }
    };
    let data = match rtype {
        TYPE_A => RData::A(rdata.try_into().map_err(|_| "A RDATA not 4 bytes")?),
        TYPE_AAAA => RData::Aaaa(rdata.try_into().map_err(|_| "AAAA RDATA not 16 bytes")?),
        TYPE_NS => {
            let (target, consumed) = read_name(message, start)?;
            exact(consumed, "NS")?;
            RData::Ns(target)
        }
        TYPE_SOA => {
            let (mname, after) = read_name(message, start)?;
            let (_rname, after) = read_name(message, after)?;
            exact(after + 20, "SOA")?;
            let minimum = &message[after + 16..after + 20];
            RData::Soa {
                mname,
                minimum: u32::from_be_bytes(minimum.try_into().expect("4 bytes")),
            }
        }
        _ => RData::Other(rdata.to_vec()),
    };
    Ok((
        Record {
            name,
            rtype,
            class,
            ttl,
            data,
        },
        end,
    ))
}

fn read_options(mut rdata: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, String> {
    let mut options = Vec::new();
    while !rdata.is_empty() {
        let head = rdata.get(..4).ok_or("EDNS option header cut short")?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = rdata
            .get(4..4 + len)
            .ok_or_else(|| format!("EDNS option {code} runs past the OPT"))?;
        options.push((code, data.to_vec()));
        rdata = &rdata[4 + len..];
    }
    Ok(options)
}

// ---------------------------------------------------------------------------------------------
// Transports.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    const BOTH: [Transport; 2] = [Transport::Udp, Transport::Tcp];
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        })
    }
}

/// Sends `query` over `transport` and parses its reply (which must come and must parse).
fn ask(dns: SocketAddr, transport: Transport, query: &Query) -> Reply {
    ask_with_len(dns, transport, query).0
}

/// [`ask`], with the reply's length in bytes.
fn ask_with_len(dns: SocketAddr, transport: Transport, query: &Query) -> (Reply, usize) {
    let message = query.to_bytes();
    let bytes = match transport {
        Transport::Udp => udp_exchange(dns, &message, query.id),
        Transport::Tcp => {
            let mut stream = tcp_connect(dns);
            stream.write_all(&frame(&message)).expect("TCP query sent");
            read_frame(&mut stream)
        }
    };
    let bytes = bytes.unwrap_or_else(|| panic!("no reply over {transport} to {query:?}"));
    let reply = parse(&bytes).unwrap_or_else(|error| {
        panic!("the reply over {transport} to {query:?} does not parse: {error}: {bytes:02x?}")
    });
    assert_eq!(reply.id, query.id, "ID copied over {transport}: {reply:?}");
    (reply, bytes.len())
}

/// A UDP socket on loopback that only hears from the server.
fn udp_socket(dns: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("binds");
    socket.connect(dns).expect("connects");
    socket
}

/// Sends `message` and returns the first datagram with its ID, sending once more after
/// [`UDP_WAIT`] (the usual client retry, in case a burst filled the server's socket buffer).
fn udp_exchange(dns: SocketAddr, message: &[u8], id: u16) -> Option<Vec<u8>> {
    let socket = udp_socket(dns);
    let mut buf = [0u8; 65535];
    for _ in 0..2 {
        socket.send(message).expect("UDP query sent");
        let deadline = Instant::now() + UDP_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left)).expect("timeout");
            match socket.recv(&mut buf) {
                Ok(len) if len >= 2 && buf[..2] == id.to_be_bytes() => {
                    return Some(buf[..len].to_vec());
                }
                Ok(_) => {}
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    break;
                }
                Err(error) => panic!("UDP receive: {error}"),
            }
        }
    }
    None
}

fn tcp_connect(dns: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&dns, TCP_WAIT).expect("TCP connects");
    stream.set_read_timeout(Some(TCP_WAIT)).expect("timeout");
    stream.set_write_timeout(Some(TCP_WAIT)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// `message` with its 2-byte length prefix (RFC 1035 §4.2.2).
fn frame(message: &[u8]) -> Vec<u8> {
    let len = u16::try_from(message.len()).expect("a message under 64 KiB");
    [&len.to_be_bytes()[..], message].concat()
}

/// The next length-prefixed message, or `None` if the connection ends (closed, reset, or silent
/// for its read timeout) before a whole one arrives.
fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).ok()?;
    Some(message)
}

/// xorshift64: a seeded, dependency-free source of garbage.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Uniform enough in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
