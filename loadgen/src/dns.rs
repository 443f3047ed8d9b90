//! Asking the server's DNS what it answers: the propagation prober and the final check.
//!
//! Both send hand-built `A` queries over UDP (one question, RD clear, no EDNS) and read only the
//! header and the answer section's `A` records: the loadgen needs nothing more, and a query costs
//! one small buffer.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, interval};

use crate::fleet::Expect;
use crate::stats::new_histogram;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
/// NXDOMAIN.
pub(crate) const RCODE_NXDOMAIN: u8 = 3;

/// Appends an `A`/`IN` query for `name` with `id` to `out`.
pub(crate) fn build_query(id: u16, name: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&id.to_be_bytes());
    // Flags: a standard query, recursion not desired (the server is authoritative).
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        let label = &label.as_bytes()[..label.len().min(63)];
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
}

/// The parts of a response the loadgen reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) id: u16,
    pub(crate) rcode: u8,
    /// The first question's name, lower case, without the final dot: ids are only 16 bits and
    /// get reused, so an answer is matched to its query by id *and* name.
    pub(crate) qname: String,
    pub(crate) a: Vec<Ipv4Addr>,
}

impl Answer {
    /// Whether this answers a query for `name`.
    pub(crate) fn is_for(&self, name: &str) -> bool {
        self.qname.eq_ignore_ascii_case(name.trim_end_matches('.'))
    }
}

/// Reads a response's id, rcode and `A` answers; `None` if it is not a well-formed response.
pub(crate) fn parse_answer(msg: &[u8]) -> Option<Answer> {
    let header = msg.get(..12)?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    if header[2] & 0x80 == 0 {
        return None; // not a response
    }
    let rcode = header[3] & 0x0F;
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    let ancount = u16::from_be_bytes([header[6], header[7]]);
    let mut at = 12;
    let mut qname = String::new();
    for i in 0..qdcount {
        if i == 0 {
            qname = read_name(msg, at)?;
        }
        at = skip_name(msg, at)? + 4;
    }
    let mut a = Vec::new();
    for _ in 0..ancount {
        at = skip_name(msg, at)?;
        let fixed = msg.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = msg.get(at + 10..at + 10 + rdlen)?;
        if rtype == TYPE_A && class == CLASS_IN && rdlen == 4 {
            a.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        at += 10 + rdlen;
    }
    Some(Answer {
        id,
        rcode,
        qname,
        a,
    })
}

/// The uncompressed name at `at` (a question's), lower case and dotted.
fn read_name(msg: &[u8], mut at: usize) -> Option<String> {
    let mut name = String::new();
    loop {
        let len = usize::from(*msg.get(at)?);
        if len == 0 {
            return Some(name);
        }
        if len & 0xC0 != 0 {
            return None;
        }
        let label = msg.get(at + 1..at + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        at += 1 + len;
    }
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => return msg.get(at + 1).map(|_| at + 2),
            l if l & 0xC0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

async fn socket_for(dns: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if dns.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(dns).await?;
    Ok(socket)
}

/// Query ids: the next one not in flight.
struct Ids(u16);

impl Ids {
    fn fresh<V>(&mut self, in_flight: &HashMap<u16, V>) -> u16 {
        self.0 = self.0.wrapping_add(1);
        while in_flight.contains_key(&self.0) {
            self.0 = self.0.wrapping_add(1);
        }
        self.0
    }
}

/// Sends one query. A send error is treated like a lost packet: the caller's timer resends.
async fn send_query(socket: &UdpSocket, id: u16, name: &str, query: &mut Vec<u8>) {
    query.clear();
    build_query(id, name, query);
    let _ = socket.send(query).await;
}

/// One acknowledged change to watch for.
#[derive(Clone, Debug)]
pub(crate) struct ProbeRequest {
    pub(crate) name: String,
    pub(crate) expect: Ipv4Addr,
    /// When the device read the server's reply.
    pub(crate) acked_at: Instant,
}

/// What the prober measured.
pub(crate) struct ProbeResults {
    /// Reply-to-answer times, µs.
    pub(crate) histogram: Histogram<u64>,
    /// Probes that never saw their address within the timeout.
    pub(crate) timeouts: u64,
    /// Queries answered with something other than the new address (asked again).
    pub(crate) stale_answers: u64,
    /// Reply read → first query sent, µs: the loadgen's own share of each propagation figure
    /// (the hand-over from the worker to the prober's thread).
    pub(crate) handover: Histogram<u64>,
}

struct Probe {
    request: ProbeRequest,
    sent_at: Instant,
    immediate_retries: u32,
    retry_at_tick: bool,
}

/// How hard a prober looks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProberLimits {
    /// Most probes in flight; further samples are dropped rather than queued.
    pub(crate) in_flight_max: usize,
    /// Stale answers asked again at once before falling back to the 20 ms tick: an update
    /// reaches DNS in about a millisecond, so the first answers are worth chasing; a QUIC move
    /// takes over a second, so the `quic` scenario only asks at the tick.
    pub(crate) immediate_retries_max: u32,
}

impl ProberLimits {
    /// The fleet's sampling of acknowledged updates.
    pub(crate) const FLEET: ProberLimits = ProberLimits {
        in_flight_max: 256,
        immediate_retries_max: 100,
    };
}
/// A query unanswered this long is sent again (UDP may drop it).
const RESEND_AFTER: Duration = Duration::from_millis(200);

/// [`run_prober`] on a thread of its own (its timing must not wait for the caller's runtime):
/// the sender of its probes, and the thread, which ends with the results once the sender and
/// its clones are dropped.
pub(crate) fn spawn_prober(
    dns: SocketAddr,
    timeout: Duration,
    limits: ProberLimits,
) -> io::Result<(
    mpsc::Sender<ProbeRequest>,
    std::thread::JoinHandle<io::Result<ProbeResults>>,
)> {
    let (tx, rx) = mpsc::channel(1024);
    let prober = std::thread::Builder::new()
        .name("loadgen-prober".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run_prober(dns, rx, timeout, limits))
        })?;
    Ok((tx, prober))
}

/// Waits (off the runtime's threads) for a prober from [`spawn_prober`] to finish.
pub(crate) async fn join_prober(
    prober: std::thread::JoinHandle<io::Result<ProbeResults>>,
) -> io::Result<ProbeResults> {
    tokio::task::spawn_blocking(move || prober.join())
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
        .map_err(|_| io::Error::other("the prober thread panicked"))?
}

/// Watches each acknowledged change until DNS answers its address, until `probes` closes and
/// every probe has finished or timed out.
pub(crate) async fn run_prober(
    dns: SocketAddr,
    mut probes: mpsc::Receiver<ProbeRequest>,
    timeout: Duration,
    limits: ProberLimits,
) -> io::Result<ProbeResults> {
    let socket = socket_for(dns).await?;
    let mut results = ProbeResults {
        histogram: new_histogram(),
        timeouts: 0,
        stale_answers: 0,
        handover: new_histogram(),
    };
    let mut in_flight: HashMap<u16, Probe> = HashMap::new();
    let mut ids = Ids(0);
    let mut query = Vec::with_capacity(512);
    let mut buf = vec![0u8; 4096];
    let mut tick = interval(Duration::from_millis(20));
    let mut open = true;

    while open || !in_flight.is_empty() {
        tokio::select! {
            request = probes.recv(), if open => match request {
                Some(request) if in_flight.len() < limits.in_flight_max => {
                    let now = Instant::now();
                    let handover = now.saturating_duration_since(request.acked_at).as_micros();
                    results
                        .handover
                        .saturating_record(u64::try_from(handover).unwrap_or(u64::MAX).max(1));
                    let probe = Probe {
                        request,
                        sent_at: now,
                        immediate_retries: 0,
                        retry_at_tick: false,
                    };
                    let id = ids.fresh(&in_flight);
                    send_query(&socket, id, &probe.request.name, &mut query).await;
                    in_flight.insert(id, probe);
                }
                Some(_) => {}
                None => open = false,
            },
            received = socket.recv(&mut buf) => {
                let Ok(len) = received else { continue };
                let now = Instant::now();
                let Some(answer) = parse_answer(&buf[..len]) else { continue };
                match in_flight.get(&answer.id) {
                    Some(probe) if answer.is_for(&probe.request.name) => {}
                    _ => continue, // a late answer to an id since reused
                }
                let mut probe = in_flight.remove(&answer.id).expect("just found");
                if answer.a.contains(&probe.request.expect) {
                    let us = now.saturating_duration_since(probe.request.acked_at).as_micros();
                    results.histogram.saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
                    continue;
                }
                results.stale_answers += 1;
                probe.sent_at = now;
                let id = ids.fresh(&in_flight);
                if probe.immediate_retries < limits.immediate_retries_max {
                    probe.immediate_retries += 1;
                    send_query(&socket, id, &probe.request.name, &mut query).await;
                } else {
                    probe.retry_at_tick = true;
                }
                in_flight.insert(id, probe);
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let due: Vec<u16> = in_flight
                    .iter()
                    .filter(|(_, p)| p.retry_at_tick || now >= p.sent_at + RESEND_AFTER)
                    .map(|(&id, _)| id)
                    .collect();
                for id in due {
                    let mut probe = in_flight.remove(&id).expect("listed");
                    if now >= probe.request.acked_at + timeout {
                        results.timeouts += 1;
                        continue;
                    }
                    probe.sent_at = now;
                    probe.retry_at_tick = false;
                    let id = ids.fresh(&in_flight);
                    send_query(&socket, id, &probe.request.name, &mut query).await;
                    in_flight.insert(id, probe);
                }
            },
        }
    }
    Ok(results)
}

/// The final check: does DNS answer what each device's last acknowledged reply said?
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Names asked.
    pub checked: u64,
    /// Answered as expected: the acknowledged address, or NXDOMAIN after `15`.
    pub matched: u64,
    /// Answered otherwise: an acknowledged change that DNS does not show.
    pub mismatched: u64,
    /// No answer after every retry.
    pub unanswered: u64,
    /// Devices not checked because their last write's outcome is unknown (timeout, `12`, or
    /// never acknowledged).
    pub uncertain: u64,
    /// Up to ten mismatches: name, expected, answered.
    pub examples: Vec<String>,
}

const VERIFY_WINDOW: usize = 512;
const VERIFY_TRIES: u32 = 5;
const VERIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks DNS for each `(name, expectation)` (`Expect::Unknown` ones must be filtered out by the
/// caller), at most [`VERIFY_WINDOW`] queries in flight.
pub(crate) async fn verify(
    dns: SocketAddr,
    targets: Vec<(String, Expect)>,
) -> io::Result<VerifyReport> {
    let socket = socket_for(dns).await?;
    let mut report = VerifyReport::default();
    let mut in_flight: HashMap<u16, (usize, Instant, u32)> = HashMap::new();
    let mut next = 0usize;
    let mut ids = Ids(0);
    let mut query = Vec::with_capacity(512);
    let mut buf = vec![0u8; 4096];
    let mut tick = interval(Duration::from_millis(100));

    while next < targets.len() || !in_flight.is_empty() {
        while next < targets.len() && in_flight.len() < VERIFY_WINDOW {
            let id = ids.fresh(&in_flight);
            send_query(&socket, id, &targets[next].0, &mut query).await;
            in_flight.insert(id, (next, Instant::now(), 1));
            next += 1;
        }
        tokio::select! {
            received = socket.recv(&mut buf) => {
                let Ok(len) = received else { continue };
                let Some(answer) = parse_answer(&buf[..len]) else { continue };
                match in_flight.get(&answer.id) {
                    Some((index, _, _)) if answer.is_for(&targets[*index].0) => {}
                    _ => continue, // a late answer to an id since reused
                }
                let (index, _, _) = in_flight.remove(&answer.id).expect("just found");
                report.checked += 1;
                let (name, expect) = &targets[index];
                let ok = match expect {
                    Expect::Addr(addr) => answer.rcode == 0 && answer.a == [*addr],
                    Expect::Absent => answer.rcode == RCODE_NXDOMAIN,
                    Expect::Unknown => true,
                };
                if ok {
                    report.matched += 1;
                } else {
                    report.mismatched += 1;
                    if report.examples.len() < 10 {
                        report.examples.push(format!(
                            "{name}: expected {expect:?}, got rcode {} {:?}",
                            answer.rcode, answer.a
                        ));
                    }
                }
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let late: Vec<u16> = in_flight
                    .iter()
                    .filter(|(_, (_, sent, _))| now >= *sent + VERIFY_TIMEOUT)
                    .map(|(&id, _)| id)
                    .collect();
                for id in late {
                    let (index, _, tries) = in_flight.remove(&id).expect("listed");
                    if tries >= VERIFY_TRIES {
                        report.checked += 1;
                        report.unanswered += 1;
                        continue;
                    }
                    let id = ids.fresh(&in_flight);
                    send_query(&socket, id, &targets[index].0, &mut query).await;
                    in_flight.insert(id, (index, now, tries + 1));
                }
            },
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query` with `answers` A records, names compressed to the question.
    fn respond(query: &[u8], rcode: u8, answers: &[Ipv4Addr]) -> Vec<u8> {
        let mut msg = query.to_vec();
        msg[2] |= 0x84; // QR, AA
        msg[3] = rcode;
        msg[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for addr in answers {
            msg.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            msg.extend_from_slice(&addr.octets());
        }
        msg
    }

    #[test]
    fn a_query_is_well_formed() {
        let mut q = Vec::new();
        build_query(0x1234, "lg1-7.dyn.example.", &mut q);
        assert_eq!(&q[..4], &[0x12, 0x34, 0, 0]);
        assert_eq!(&q[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x05lg1-7\x03dyn\x07example\x00\x00\x01\x00\x01");
    }

    #[test]
    fn answers_parse_with_compression() {
        let mut q = Vec::new();
        build_query(9, "a.dyn.example", &mut q);
        let addrs = [Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)];
        let answer = parse_answer(&respond(&q, 0, &addrs)).expect("parses");
        assert_eq!(
            answer,
            Answer {
                id: 9,
                rcode: 0,
                qname: "a.dyn.example".into(),
                a: addrs.to_vec()
            }
        );
        assert!(answer.is_for("A.Dyn.Example."));
        assert!(!answer.is_for("b.dyn.example"));
        let nx = parse_answer(&respond(&q, RCODE_NXDOMAIN, &[])).expect("parses");
        assert_eq!((nx.rcode, nx.a.len()), (RCODE_NXDOMAIN, 0));
        assert_eq!(parse_answer(&q), None, "a query is not a response");
        let truncated = respond(&q, 0, &addrs);
        assert_eq!(parse_answer(&truncated[..truncated.len() - 2]), None);
    }

    /// A tiny authoritative server: `name` → address, everything else NXDOMAIN, after `delay`.
    async fn fake_dns(records: Vec<(String, Ipv4Addr)>) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("binds");
        let addr = socket.local_addr().expect("has an address");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, peer)) = socket.recv_from(&mut buf).await {
                let q = &buf[..len];
                let mut name = Vec::new();
                let mut at = 12;
                while q[at] != 0 {
                    let l = usize::from(q[at]);
                    name.push(String::from_utf8_lossy(&q[at + 1..at + 1 + l]).into_owned());
                    at += 1 + l;
                }
                let name = name.join(".");
                let reply = match records.iter().find(|(n, _)| *n == name) {
                    Some((_, a)) => respond(q, 0, &[*a]),
                    None => respond(q, RCODE_NXDOMAIN, &[]),
                };
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn verify_tells_matches_from_mismatches() {
        let a = Ipv4Addr::new(198, 18, 1, 1);
        let b = Ipv4Addr::new(198, 18, 1, 2);
        let dns = fake_dns(vec![("x.z".into(), a), ("y.z".into(), b)]).await;
        let report = verify(
            dns,
            vec![
                ("x.z".into(), Expect::Addr(a)),
                ("y.z".into(), Expect::Addr(a)),
                ("gone.z".into(), Expect::Absent),
                ("x.z".into(), Expect::Absent),
            ],
        )
        .await
        .expect("runs");
        assert_eq!(
            (
                report.checked,
                report.matched,
                report.mismatched,
                report.unanswered
            ),
            (4, 2, 2, 0)
        );
        assert_eq!(report.examples.len(), 2);
    }

    #[tokio::test]
    async fn the_prober_measures_from_the_ack_and_times_out_on_a_wrong_answer() {
        let a = Ipv4Addr::new(198, 18, 1, 1);
        let dns = fake_dns(vec![("x.z".into(), a)]).await;
        let (send, receive) = mpsc::channel(16);
        let prober = tokio::spawn(run_prober(
            dns,
            receive,
            Duration::from_millis(300),
            ProberLimits::FLEET,
        ));
        send.send(ProbeRequest {
            name: "x.z".into(),
            expect: a,
            acked_at: Instant::now(),
        })
        .await
        .expect("prober runs");
        send.send(ProbeRequest {
            name: "x.z".into(),
            expect: Ipv4Addr::new(198, 18, 9, 9),
            acked_at: Instant::now(),
        })
        .await
        .expect("prober runs");
        drop(send);
        let results = prober.await.expect("joins").expect("runs");
        assert_eq!(results.histogram.len(), 1);
        assert_eq!(results.handover.len(), 2);
        assert!(results.histogram.max() < 300_000);
        assert_eq!(results.timeouts, 1);
        assert!(results.stale_answers >= ProberLimits::FLEET.immediate_retries_max.into());
    }
}
