//! A real server on 127.0.0.1:0 serving a small zone, and `dig` run against it.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ddns_core::{Fqdn, HostAddrs, LiveZone, ZoneApex};
use ddns_dns::DnsServer;
use tokio::net::UdpSocket;

pub const CAM_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const BOTH_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const BOTH_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
pub const SERIAL: u32 = 77;

pub fn fqdn(name: &str) -> Fqdn {
    Fqdn::parse(name).expect("valid test name")
}

/// `dyn.example` with hosts `cam` (A) and `both` (A and AAAA); `big.test`, whose twelve long NS
/// names make its NS set larger than 512 bytes.
pub fn zone() -> Arc<LiveZone> {
    let mut big = ZoneApex::with_defaults(fqdn("big.test"), 60);
    big.name_servers = (0..12)
        .map(|i| {
            fqdn(&format!(
                "ns-with-a-rather-long-name-{i:02}.dns-provider-example.net"
            ))
        })
        .collect();
    let zone = LiveZone::new(vec![ZoneApex::with_defaults(fqdn("dyn.example"), 60), big]);
    zone.set(
        &fqdn("cam.dyn.example"),
        HostAddrs {
            v4: Some(CAM_V4),
            v6: None,
        },
    );
    zone.set(
        &fqdn("both.dyn.example"),
        HostAddrs {
            v4: Some(BOTH_V4),
            v6: Some(BOTH_V6),
        },
    );
    zone.set_serial(SERIAL);
    Arc::new(zone)
}

/// A server for `zone()` on a free port of 127.0.0.1; it stops when dropped.
pub async fn serve() -> (DnsServer, Arc<LiveZone>) {
    let zone = zone();
    let server = DnsServer::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), zone.clone())
        .await
        .expect("binds 127.0.0.1:0");
    (server, zone)
}

/// One resource record as dig prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub class: String,
    pub rtype: String,
    pub data: String,
}

/// What dig printed, parsed.
#[derive(Debug)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    /// `(version, udp payload)` from the OPT pseudosection, if the reply had an OPT.
    pub edns: Option<(u8, u16)>,
    /// dig's whole output, for assertion messages.
    pub raw: String,
}

impl Dig {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// Runs `dig @127.0.0.1 -p PORT +norec +time=2 +tries=1 ARGS...` and parses its output.
pub async fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    let output = tokio::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+norec",
            "+time=2",
            "+tries=1",
        ])
        .args(args)
        .output()
        .await
        .expect("dig runs (bind9-dnsutils must be installed)");
    let raw = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dig {args:?} failed: {raw}");
    parse(raw)
}

fn parse(raw: String) -> Dig {
    let mut status = String::new();
    let mut flags = Vec::new();
    let mut edns = None;
    let mut answer = Vec::new();
    let mut authority = Vec::new();
    let mut section: Option<&mut Vec<Rr>> = None;
    for line in raw.lines() {
        if let Some(rest) = line.split_once("status: ").map(|(_, rest)| rest) {
            status = rest.split(',').next().unwrap_or_default().to_owned();
        } else if let Some(rest) = line.strip_prefix(";; flags:") {
            let rest = rest.split(';').next().unwrap_or_default();
            flags = rest.split_whitespace().map(str::to_owned).collect();
        } else if let Some(rest) = line.strip_prefix("; EDNS: version: ") {
            let version = rest.split(',').next().and_then(|v| v.trim().parse().ok());
            let udp = rest
                .split("udp: ")
                .nth(1)
                .and_then(|v| v.trim().parse().ok());
            edns = version.zip(udp);
        } else if line == ";; ANSWER SECTION:" {
            section = Some(&mut answer);
        } else if line == ";; AUTHORITY SECTION:" {
            section = Some(&mut authority);
        } else if line.is_empty() || line.starts_with(';') {
            section = None;
        } else if let Some(records) = section.as_mut() {
            let mut fields = line.split_whitespace();
            let mut next = || fields.next().unwrap_or_default().to_owned();
            let (name, ttl, class, rtype) = (next(), next(), next(), next());
            let data = fields.collect::<Vec<_>>().join(" ");
            let ttl = ttl.parse().unwrap_or_else(|_| panic!("TTL in {line:?}"));
            records.push(Rr {
                name,
                ttl,
                class,
                rtype,
                data,
            });
        }
    }
    Dig {
        status,
        flags,
        answer,
        authority,
        edns,
        raw,
    }
}

/// Sends `packet` from a fresh UDP socket and waits up to `deadline` for a reply.
pub async fn udp_exchange(
    server: SocketAddr,
    packet: &[u8],
    deadline: Duration,
) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("binds a client socket");
    socket.send_to(packet, server).await.expect("sends");
    let mut buf = vec![0; 65535];
    match tokio::time::timeout(deadline, socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(buf[..len].to_vec()),
        Ok(Err(error)) => panic!("recv failed: {error}"),
        Err(_) => None,
    }
}

/// `name`/`qtype` as a plain query with `id`.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    bytes[..2].copy_from_slice(&id.to_be_bytes());
    for label in name.split('.') {
        bytes.push(label.len() as u8);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.push(0);
    bytes.extend_from_slice(&qtype.to_be_bytes());
    bytes.extend_from_slice(&[0, 1]);
    bytes
}
