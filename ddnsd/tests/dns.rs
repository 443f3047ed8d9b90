//! The DNS server of the real binary, asked by the real `dig`: SOA/NS at the apex, NODATA,
//! NXDOMAIN with the SOA, REFUSED, case, EDNS, truncation then TCP, and QR=1 ignored.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

/// Enough long name servers that the apex NS set cannot fit in 512 bytes.
fn config_with_many_name_servers(dir: &std::path::Path) -> std::path::PathBuf {
    let names: Vec<String> = (0..16)
        .map(|i| format!("\"name-server-number-{i:02}.a-rather-long-provider-domain.example\""))
        .collect();
    write_config(dir, &format!("name_servers = [{}]\n", names.join(", ")))
}

#[test]
fn the_binary_answers_as_an_authoritative_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_with_many_name_servers(dir.path());
    let server = Server::start(&dir.path().join("data"), Some(&config));
    let mac = server.token("AA", &[]);
    assert_eq!(
        server.reply(&format!("/add.aspx?mac={mac}&dm=cam&myip=192.0.2.1")),
        "10|cam.dyn.example"
    );

    // SOA at the apex, serial following the applied log position (one event so far).
    let soa = server.dig_short(&["dyn.example", "SOA"]);
    assert_eq!(soa.len(), 1, "{soa:?}");
    let fields: Vec<&str> = soa[0].split(' ').collect();
    assert_eq!(
        fields[0],
        "name-server-number-00.a-rather-long-provider-domain.example."
    );
    assert_eq!(fields[2], "1", "serial = events applied");
    assert_eq!(
        server.reply(&format!("/update.aspx?mac={mac}&myip=192.0.2.2")),
        "09"
    );
    assert_eq!(
        server.dig_short(&["dyn.example", "SOA"])[0]
            .split(' ')
            .nth(2),
        Some("2"),
        "serial advanced"
    );

    // NS at the apex, over TCP (the set is too big for plain UDP).
    assert_eq!(server.dig_short(&["dyn.example", "NS", "+tcp"]).len(), 16);
    // Over UDP without EDNS: TC=1, and dig's own retry over TCP gets all of it.
    let truncated = server.dig(&["dyn.example", "NS", "+noedns", "+ignore"]);
    assert!(truncated.contains(" tc"), "TC set: {truncated}");
    let retried = server.dig(&["dyn.example", "NS", "+noedns"]);
    assert!(
        retried.contains("Truncated, retrying in TCP mode"),
        "{retried}"
    );
    assert_eq!(retried.matches("\tIN\tNS\t").count(), 16, "{retried}");
    // With EDNS and a big enough buffer it fits in UDP.
    let edns = server.dig(&["dyn.example", "NS", "+bufsize=4096", "+ignore"]);
    assert!(
        !edns.contains(" tc") && edns.contains("EDNS: version: 0"),
        "{edns}"
    );

    // NODATA: the name exists, the type does not.
    let nodata = server.dig(&["cam.dyn.example", "MX"]);
    assert_eq!(status(&nodata), "NOERROR");
    assert!(
        nodata.contains("ANSWER: 0") && nodata.contains("\tSOA\t"),
        "{nodata}"
    );
    let no_aaaa = server.dig(&["cam.dyn.example", "AAAA"]);
    assert!(
        no_aaaa.contains("ANSWER: 0") && status(&no_aaaa) == "NOERROR",
        "{no_aaaa}"
    );
    // NXDOMAIN with the SOA.
    let nx = server.dig(&["nobody.dyn.example", "A"]);
    assert_eq!(status(&nx), "NXDOMAIN");
    assert!(
        nx.contains("AUTHORITY: 1") && nx.contains("\tSOA\t") && nx.contains(" aa"),
        "{nx}"
    );
    // REFUSED outside our zones.
    assert_eq!(status(&server.dig(&["example.com", "A"])), "REFUSED");
    // Case-insensitive.
    assert_eq!(server.dig_short(&["CaM.DYN.Example", "A"]), ["192.0.2.2"]);
    // Minimal ANY (RFC 8482): one RRset.
    let any = server.dig(&["cam.dyn.example", "ANY"]);
    assert!(any.contains("ANSWER: 1"), "{any}");

    // QR=1: a response sent to us gets no reply; the server keeps answering.
    let socket = UdpSocket::bind("127.0.0.1:0").expect("binds");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut query = vec![0x12, 0x34, 0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["cam", "dyn", "example"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    socket.send_to(&query, server.dns).expect("sent");
    let mut buf = [0u8; 512];
    assert!(socket.recv_from(&mut buf).is_err(), "no reply to QR=1");
    socket
        .send_to(&[0xff; 7], server.dns)
        .expect("garbage sent");
    assert_eq!(
        server.dig_short(&["cam.dyn.example", "A"]),
        ["192.0.2.2"],
        "still answering"
    );
}
