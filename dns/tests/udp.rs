//! The UDP workers: several of them share the port and every query gets its own reply, however
//! the kernel spreads clients; and a second server never shares the first one's port.

mod common;

use common::query;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::num::NonZeroUsize;
use std::time::Duration;

use ddns_dns::DnsServer;

/// (id, RCODE, ANCOUNT) of a reply.
fn summary(reply: &[u8]) -> (u16, u8, u16) {
    (
        u16::from_be_bytes([reply[0], reply[1]]),
        reply[3] & 0x0f,
        u16::from_be_bytes([reply[6], reply[7]]),
    )
}

/// Sends `queries` from `clients` sockets at once (each keeps up to 16 in flight), and returns
/// the summary of every reply, with the source port it came back to.
fn blast(server: SocketAddr, clients: usize, queries: &[Vec<u8>]) -> Vec<(u16, u8, u16)> {
    let chunks: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|c| queries.iter().skip(c).step_by(clients).cloned().collect())
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            std::thread::spawn(move || {
                let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds");
                socket
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                let mut replies = Vec::new();
                let mut buf = [0u8; 1500];
                for window in chunk.chunks(16) {
                    for packet in window {
                        socket.send_to(packet, server).expect("sends");
                    }
                    for _ in window {
                        let (len, _) = socket.recv_from(&mut buf).expect("a reply");
                        replies.push(summary(&buf[..len]));
                    }
                }
                replies
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|handle| handle.join().expect("client thread"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_answer_every_query_once() {
    let zone = common::zone();
    let server = DnsServer::bind_with_udp_workers(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        zone,
        NonZeroUsize::new(4).expect("not zero"),
    )
    .await
    .expect("binds");
    let addr = server.local_addr();
    let queries: Vec<Vec<u8>> = (0..4000u16)
        .map(|id| match id % 4 {
            0 => query(id, "cam.dyn.example", 1),
            1 => query(id, "nope.dyn.example", 1),
            2 => query(id, "example.org", 1),
            // SOA at the apex: the Responder's way, on the same worker.
            _ => query(id, "dyn.example", 6),
        })
        .collect();
    let mut replies = tokio::task::spawn_blocking(move || blast(addr, 32, &queries))
        .await
        .expect("clients");
    replies.sort_unstable();
    assert_eq!(replies.len(), 4000);
    for (i, &(id, rcode, answers)) in replies.iter().enumerate() {
        assert_eq!(usize::from(id), i, "each query answered once");
        let expected = match id % 4 {
            0 => (0, 1),
            1 => (3, 0),
            2 => (5, 0),
            _ => (0, 1),
        };
        assert_eq!((rcode, answers), expected, "query {id}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_port_is_never_shared_with_another_server() {
    let mut servers = Vec::new();
    for _ in 0..20 {
        servers.push(common::serve().await.0);
    }
    let mut ports: Vec<u16> = servers.iter().map(|s| s.local_addr().port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    // Nor can a plain socket take a server's port.
    assert!(UdpSocket::bind(servers[0].local_addr()).is_err());
}
