//! End to end: the real server on 127.0.0.1:0 and the real `dig`, over UDP and TCP.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{BOTH_V4, BOTH_V6, CAM_V4, Rr, SERIAL, dig, fqdn, serve, udp_exchange};
use ddns_core::HostAddrs;
use ddns_dns::{DnsError, DnsServer};
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How long a test waits to be sure no reply comes.
const SILENCE: Duration = Duration::from_millis(300);

fn rr(name: &str, ttl: u32, rtype: &str, data: &str) -> Rr {
    Rr {
        name: name.into(),
        ttl,
        class: "IN".into(),
        rtype: rtype.into(),
        data: data.into(),
    }
}

fn soa(ttl: u32) -> Rr {
    let data = format!("ns1.dyn.example. hostmaster.dyn.example. {SERIAL} 3600 600 1209600 60");
    rr("dyn.example.", ttl, "SOA", &data)
}

fn query_bytes(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid name"),
        qtype,
    ));
    message.to_vec().expect("encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_and_aaaa_for_hosts() {
    let (server, _zone) = serve().await;
    let addr = server.local_addr();

    let reply = dig(addr, &["cam.dyn.example", "A"]).await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert!(reply.has_flag("aa"), "{}", reply.raw);
    assert!(!reply.has_flag("ra"), "{}", reply.raw);
    assert_eq!(
        reply.answer,
        vec![rr("cam.dyn.example.", 60, "A", &CAM_V4.to_string())]
    );
    assert!(reply.authority.is_empty());

    let reply = dig(addr, &["both.dyn.example", "AAAA"]).await;
    assert!(reply.has_flag("aa"));
    assert_eq!(
        reply.answer,
        vec![rr("both.dyn.example.", 60, "AAAA", &BOTH_V6.to_string())]
    );
    let reply = dig(addr, &["+tcp", "both.dyn.example", "A"]).await;
    assert!(
        reply.has_flag("aa"),
        "authoritative over TCP too: {}",
        reply.raw
    );
    assert_eq!(
        reply.answer,
        vec![rr("both.dyn.example.", 60, "A", &BOTH_V4.to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soa_and_ns_at_the_apex() {
    let (server, _zone) = serve().await;
    let addr = server.local_addr();

    let reply = dig(addr, &["dyn.example", "SOA"]).await;
    assert_eq!(reply.status, "NOERROR");
    assert!(reply.has_flag("aa"));
    assert_eq!(reply.answer, vec![soa(3600)]);

    let reply = dig(addr, &["+tcp", "dyn.example", "NS"]).await;
    assert!(reply.has_flag("aa"));
    assert_eq!(
        reply.answer,
        vec![rr("dyn.example.", 3600, "NS", "ns1.dyn.example.")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodata_nxdomain_and_refused() {
    let (server, _zone) = serve().await;
    let addr = server.local_addr();

    let reply = dig(addr, &["cam.dyn.example", "AAAA"]).await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert!(reply.has_flag("aa"));
    assert!(reply.answer.is_empty());
    assert_eq!(reply.authority, vec![soa(60)]);
    let reply = dig(addr, &["cam.dyn.example", "MX"]).await;
    assert_eq!((reply.status.as_str(), reply.answer.len()), ("NOERROR", 0));
    assert_eq!(reply.authority, vec![soa(60)]);

    let reply = dig(addr, &["missing.dyn.example", "A"]).await;
    assert_eq!(reply.status, "NXDOMAIN", "{}", reply.raw);
    assert!(reply.has_flag("aa"));
    assert!(reply.answer.is_empty());
    assert_eq!(reply.authority, vec![soa(60)]);

    let reply = dig(addr, &["example.org", "A"]).await;
    assert_eq!(reply.status, "REFUSED", "{}", reply.raw);
    assert!(!reply.has_flag("aa"));
    assert!(reply.answer.is_empty() && reply.authority.is_empty());

    let reply = dig(addr, &["-c", "CH", "version.bind", "TXT"]).await;
    assert_eq!(reply.status, "REFUSED", "{}", reply.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_case_insensitive_and_the_case_is_echoed() {
    let (server, _zone) = serve().await;
    let reply = dig(server.local_addr(), &["CAM.Dyn.Example", "A"]).await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert_eq!(
        reply.answer,
        vec![rr("CAM.Dyn.Example.", 60, "A", &CAM_V4.to_string())]
    );
    assert!(
        reply.raw.contains(";CAM.Dyn.Example.\t\tIN\tA"),
        "question echoed: {}",
        reply.raw
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_is_echoed_clamped_and_versioned() {
    let (server, _zone) = serve().await;
    let addr = server.local_addr();

    let reply = dig(addr, &["+edns=0", "+bufsize=4096", "cam.dyn.example", "A"]).await;
    assert_eq!(reply.edns, Some((0, 1232)), "{}", reply.raw);
    assert_eq!(reply.answer.len(), 1);
    let reply = dig(addr, &["+edns=0", "+bufsize=1000", "cam.dyn.example", "A"]).await;
    assert_eq!(reply.edns, Some((0, 1000)), "{}", reply.raw);
    let reply = dig(addr, &["+edns=0", "+bufsize=100", "cam.dyn.example", "A"]).await;
    assert_eq!(reply.edns, Some((0, 512)), "{}", reply.raw);

    let reply = dig(addr, &["+noedns", "cam.dyn.example", "A"]).await;
    assert_eq!(reply.edns, None, "{}", reply.raw);
    assert_eq!(reply.answer.len(), 1);

    let reply = dig(
        addr,
        &["+edns=1", "+noednsnegotiation", "cam.dyn.example", "A"],
    )
    .await;
    assert_eq!(reply.status, "BADVERS", "{}", reply.raw);
    assert_eq!(reply.edns.map(|(version, _)| version), Some(0));
    assert!(reply.answer.is_empty());
    // With negotiation (dig's default) dig retries with version 0 and gets the answer.
    let reply = dig(addr, &["+edns=1", "cam.dyn.example", "A"]).await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert_eq!(reply.answer.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_too_large_for_udp_is_truncated_and_complete_over_tcp() {
    let (server, _zone) = serve().await;
    let addr = server.local_addr();

    let reply = dig(addr, &["+noedns", "+ignore", "big.test", "NS"]).await;
    assert!(reply.has_flag("tc"), "{}", reply.raw);
    assert!(reply.has_flag("aa"), "{}", reply.raw);
    assert_eq!(reply.status, "NOERROR");
    assert!(
        reply.answer.is_empty(),
        "TC reply carries no partial RRset: {}",
        reply.raw
    );

    let reply = dig(addr, &["+noedns", "+tcp", "big.test", "NS"]).await;
    assert!(!reply.has_flag("tc"), "{}", reply.raw);
    assert_eq!(reply.answer.len(), 12, "{}", reply.raw);

    // dig's default: see TC, retry over TCP.
    let reply = dig(addr, &["+noedns", "big.test", "NS"]).await;
    assert!(
        reply.raw.contains("Truncated, retrying in TCP mode"),
        "{}",
        reply.raw
    );
    assert_eq!(reply.answer.len(), 12, "{}", reply.raw);

    // An EDNS client with room for 1232 bytes gets it all over UDP.
    let reply = dig(addr, &["+bufsize=1232", "+ignore", "big.test", "NS"]).await;
    assert!(!reply.has_flag("tc"), "{}", reply.raw);
    assert_eq!(reply.answer.len(), 12, "{}", reply.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_any() {
    let (server, _zone) = serve().await;
    let addr = server.local_addr();
    let reply = dig(addr, &["both.dyn.example", "ANY"]).await;
    assert_eq!(
        reply.answer,
        vec![rr("both.dyn.example.", 60, "A", &BOTH_V4.to_string())]
    );
    let reply = dig(addr, &["dyn.example", "ANY"]).await;
    assert_eq!(reply.answer, vec![soa(3600)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_qr_set_gets_no_reply() {
    let (server, _zone) = serve().await;
    let addr = server.local_addr();

    let mut response = Message::new(0x5151, MessageType::Response, OpCode::Query);
    let name = Name::from_ascii("cam.dyn.example.").expect("valid");
    response.add_query(Query::query(name, RecordType::A));
    let packet = response.to_vec().expect("encodes");
    assert_eq!(
        udp_exchange(addr, &packet, SILENCE).await,
        None,
        "QR=1 must not be answered"
    );

    let reply = udp_exchange(
        addr,
        &query_bytes("cam.dyn.example.", RecordType::A, 0x5152),
        SILENCE * 10,
    )
    .await
    .expect("a normal query is still answered");
    let reply = Message::from_vec(&reply).expect("decodes");
    assert_eq!(reply.metadata.id, 0x5152);
    assert_eq!(reply.answers.len(), 1);
}

/// Everything that is not a DNS query: none of it may stop a listener.
fn garbage() -> Vec<Vec<u8>> {
    let mut packets = vec![
        vec![],
        vec![0x12, 0x34, 0x01],
        vec![0; 11],
        // A header claiming one question, and nothing after it.
        vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        // A header claiming 65535 of everything.
        vec![0, 2, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ];
    // A name that points at itself.
    let mut looped = vec![0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    packets.push(looped.clone());
    // The same loop with QR set.
    looped[2] |= 0x80;
    packets.push(looped);
    // 250 one-octet labels.
    let mut labels = vec![0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for _ in 0..250 {
        labels.extend_from_slice(&[1, b'x']);
    }
    labels.extend_from_slice(&[0, 0, 1, 0, 1]);
    packets.push(labels);
    // A label length running past the end.
    packets.push(vec![0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'a', b'b']);
    // Random bytes.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 600) as usize;
        packets.push(
            (0..len)
                .map(|i| (seed >> (i % 57)) as u8 ^ i as u8)
                .collect(),
        );
    }
    packets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_stops_the_listeners() {
    let (server, _zone) = serve().await;
    let addr = server.local_addr();

    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("binds");
    for packet in garbage() {
        socket.send_to(&packet, addr).await.expect("sends");
    }
    for packet in garbage().into_iter().take(20) {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            panic!("TCP accepts")
        };
        let len = u16::try_from(packet.len()).expect("short");
        // Framed garbage, then a frame that promises more than it sends, then hang up.
        let _ = stream.write_all(&len.to_be_bytes()).await;
        let _ = stream.write_all(&packet).await;
        let _ = stream.write_all(&[0xff, 0xff, 1, 2, 3]).await;
        drop(stream);
    }

    let reply = dig(addr, &["cam.dyn.example", "A"]).await;
    assert_eq!(reply.answer.len(), 1, "UDP still answers: {}", reply.raw);
    let reply = dig(addr, &["+tcp", "cam.dyn.example", "A"]).await;
    assert_eq!(reply.answer.len(), 1, "TCP still answers: {}", reply.raw);

    // A malformed query is answered FORMERR over TCP, and the connection keeps working.
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let looped = [0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
    let good = query_bytes("cam.dyn.example.", RecordType::A, 10);
    for packet in [&looped[..], &good[..]] {
        let len = u16::try_from(packet.len()).expect("short");
        stream.write_all(&len.to_be_bytes()).await.expect("writes");
        stream.write_all(packet).await.expect("writes");
    }
    let mut read_frame = async || {
        let len = stream.read_u16().await.expect("a frame length");
        let mut frame = vec![0; usize::from(len)];
        stream.read_exact(&mut frame).await.expect("a frame");
        Message::from_vec(&frame).expect("decodes")
    };
    let formerr = read_frame().await;
    assert_eq!(
        (formerr.metadata.id, formerr.metadata.response_code),
        (9, ResponseCode::FormErr)
    );
    let answer = read_frame().await;
    assert_eq!((answer.metadata.id, answer.answers.len()), (10, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_zone_changes_show_in_the_next_answer() {
    let (server, zone) = serve().await;
    let addr = server.local_addr();
    let host = fqdn("new.dyn.example");

    assert_eq!(
        dig(addr, &["new.dyn.example", "A"]).await.status,
        "NXDOMAIN"
    );
    zone.set(
        &host,
        HostAddrs {
            v4: Some(Ipv4Addr::new(203, 0, 113, 5)),
            v6: None,
        },
    );
    let reply = dig(addr, &["new.dyn.example", "A"]).await;
    assert_eq!(
        reply.answer,
        vec![rr("new.dyn.example.", 60, "A", "203.0.113.5")]
    );
    zone.set(
        &host,
        HostAddrs {
            v4: Some(Ipv4Addr::new(203, 0, 113, 6)),
            v6: None,
        },
    );
    let reply = dig(addr, &["new.dyn.example", "A"]).await;
    assert_eq!(
        reply.answer,
        vec![rr("new.dyn.example.", 60, "A", "203.0.113.6")]
    );
    zone.remove(&host);
    assert_eq!(
        dig(addr, &["new.dyn.example", "A"]).await.status,
        "NXDOMAIN"
    );

    zone.set_serial(SERIAL + 1);
    let reply = dig(addr, &["dyn.example", "SOA"]).await;
    assert!(
        reply.answer[0].data.contains(&format!(" {} ", SERIAL + 1)),
        "{}",
        reply.raw
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_both_ports() {
    let (server, _zone) = serve().await;
    let addr = server.local_addr();
    assert_eq!(
        dig(addr, &["+tcp", "cam.dyn.example", "A"])
            .await
            .answer
            .len(),
        1
    );
    server.shutdown().await;
    // Both sockets are closed when shutdown returns, but a `dig` that another test is spawning
    // right now holds copies of every descriptor between its fork and exec; so retry for a while.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let udp = UdpSocket::bind(addr).await;
        let tcp = TcpListener::bind(addr).await;
        if udp.is_ok() && tcp.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ports still bound: {udp:?} {tcp:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_a_taken_port_fails() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("binds");
    let addr: SocketAddr = taken.local_addr().expect("has an address");
    let error = DnsServer::bind(addr, common::zone())
        .await
        .expect_err("TCP port is taken");
    assert!(
        matches!(
            &error,
            DnsError::Bind {
                transport: "tcp",
                ..
            }
        ),
        "{error:?}"
    );
}
