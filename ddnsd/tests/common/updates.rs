//! A steady update load from several writers, killed with SIGKILL mid-load, and the check that
//! DNS answers every acknowledged update afterwards (the durability and crash-loop tests).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Server, http_get};

/// Concurrent writers, each updating its share of the hosts one request at a time.
pub const WRITERS: usize = 8;

/// What a host was last told, and what might have landed without a reply.
#[derive(Clone, Debug, Default)]
pub struct HostLog {
    pub acked: Option<String>,
    pub in_flight: Option<String>,
}

/// What every host was told (and what was in flight) when the server was killed.
pub struct Answers {
    pub logs: Vec<HostLog>,
    /// Updates acknowledged in this load.
    pub acked: usize,
    /// Every address acknowledged in this load.
    pub acked_addrs: HashSet<String>,
}

impl Answers {
    /// Every host's DNS answer is its last acknowledged address, or the one in flight; returns
    /// the hosts' logs for the next load (what DNS answers is what they were told).
    pub fn check(&self, server: &Server, name: impl Fn(usize) -> String) -> Vec<HostLog> {
        let mut settled = Vec::with_capacity(self.logs.len());
        for (d, log) in self.logs.iter().enumerate() {
            let mut answer = server.dig_short(&[&name(d), "A"]);
            let allowed: Vec<&String> = log.acked.iter().chain(log.in_flight.iter()).collect();
            assert!(
                answer.len() == 1 && allowed.contains(&&answer[0]),
                "{}: DNS says {answer:?}, last acknowledged {:?} (in flight at the kill: {:?}); {} acks in this load",
                name(d),
                log.acked,
                log.in_flight,
                self.acked
            );
            settled.push(HostLog {
                acked: answer.pop(),
                in_flight: None,
            });
        }
        settled
    }
}

/// Keeps the hosts of `logs` updating through `update(host, ip)` (a path and its success
/// reply) from [`WRITERS`] threads, with addresses `10.ROUND.x.y` (unique in the load), kills
/// the server with SIGKILL once `acked_before_kill` updates were acknowledged, and returns what
/// each host was told.
pub fn kill_9_under_updates(
    server: Server,
    logs: Vec<HostLog>,
    acked_before_kill: usize,
    round: u8,
    update: impl Fn(usize, &str) -> (String, &'static str) + Send + Sync + Clone + 'static,
) -> Answers {
    let http = server.http;
    let hosts = logs.len();
    let logs = Arc::new(Mutex::new(logs));
    let acked_addrs = Arc::new(Mutex::new(HashSet::new()));
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let load = Load {
                writer: w,
                round,
                http,
                hosts,
                logs: logs.clone(),
                acked_addrs: acked_addrs.clone(),
                acked: acked.clone(),
                stop: stop.clone(),
            };
            let update = update.clone();
            std::thread::spawn(move || load.write_until_refused(&update))
        })
        .collect();
    // Wait (bounded) until enough updates were acknowledged, then kill mid-load.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < acked_before_kill {
        assert!(
            Instant::now() < deadline,
            "only {} acks in 120 s",
            acked.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.join().expect("writer");
    }
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked >= acked_before_kill);
    let logs = logs.lock().expect("lock").clone();
    let acked_addrs = acked_addrs.lock().expect("lock").clone();
    Answers {
        logs,
        acked,
        acked_addrs,
    }
}

/// One writer's part of the load.
struct Load {
    writer: usize,
    round: u8,
    http: SocketAddr,
    hosts: usize,
    logs: Arc<Mutex<Vec<HostLog>>>,
    acked_addrs: Arc<Mutex<HashSet<String>>>,
    acked: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Load {
    /// Sends updates for the writer's hosts, one at a time per host, recording each reply,
    /// until the server stops answering.
    fn write_until_refused(&self, update: &impl Fn(usize, &str) -> (String, &'static str)) {
        let mine: Vec<usize> = (self.writer..self.hosts).step_by(WRITERS).collect();
        // Bounded: the addresses of one load are unique up to 2^16 updates.
        let most = (1 << 16) / WRITERS;
        for n in 0..most {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let d = mine[n % mine.len()];
            let unique = n * WRITERS + self.writer;
            let ip = format!("10.{}.{}.{}", self.round, unique >> 8, unique & 0xff);
            self.logs.lock().expect("lock")[d].in_flight = Some(ip.clone());
            let (path, success) = update(d, &ip);
            let Some((status, body)) = try_get(self.http, &path) else {
                return;
            };
            let mut logs = self.logs.lock().expect("lock");
            assert_eq!(
                (status, body.as_str()),
                (200, success),
                "host {d} update to {ip}"
            );
            logs[d] = HostLog {
                acked: Some(ip.clone()),
                in_flight: None,
            };
            self.acked_addrs.lock().expect("lock").insert(ip);
            self.acked.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A GET that returns None when the server is gone (connection refused or cut).
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    std::panic::catch_unwind(|| http_get(addr, path, &[])).ok()
}
