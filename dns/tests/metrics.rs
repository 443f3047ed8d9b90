//! `ddns_dns_queries_total{rcode}` counts UDP replies of both paths: the workers count fast
//! replies locally and flush them in batches, the Responder counts its own. Alone in its test
//! binary, because it installs the process's global recorder.

mod common;

use common::query;

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A metrics recorder that keeps `ddns_dns_queries_total` by `rcode`.
#[derive(Clone, Default)]
struct RcodeCounts(Arc<Mutex<HashMap<String, u64>>>);

struct RcodeCell {
    rcode: String,
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

impl metrics::CounterFn for RcodeCell {
    fn increment(&self, value: u64) {
        let mut counts = self.counts.lock().expect("not poisoned");
        *counts.entry(self.rcode.clone()).or_default() += value;
    }

    fn absolute(&self, _value: u64) {}
}

impl metrics::Recorder for RcodeCounts {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let rcode = key
            .labels()
            .find(|label| label.key() == "rcode")
            .map(|label| label.value().to_owned())
            .unwrap_or_default();
        metrics::Counter::from_arc(Arc::new(RcodeCell {
            rcode,
            counts: self.0.clone(),
        }))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// The recorder is installed after the server started (as the binary does): the workers look their counters up when they flush, not when they start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_counted_by_rcode() {
    let (server, _zone) = common::serve().await;
    let recorder = RcodeCounts::default();
    metrics::set_global_recorder(recorder.clone()).expect("the first recorder");
    let addr = server.local_addr();
    let queries: Vec<Vec<u8>> = [
        query(1, "cam.dyn.example", 1),
        query(2, "cam.dyn.example", 28),
        query(3, "nope.dyn.example", 1),
        query(4, "example.org", 1),
        query(5, "dyn.example", 6),
        query(6, "both.dyn.example", 255),
    ]
    .into_iter()
    .collect();
    tokio::task::spawn_blocking(move || {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binds");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 1500];
        for packet in queries {
            socket.send_to(&packet, addr).expect("sends");
            socket.recv_from(&mut buf).expect("a reply");
        }
    })
    .await
    .expect("client");
    let expected: HashMap<String, u64> = [("NOERROR", 4), ("NXDOMAIN", 1), ("REFUSED", 1)]
        .into_iter()
        .map(|(rcode, count)| (rcode.to_owned(), count))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counts = recorder.0.lock().expect("not poisoned").clone();
        if counts == expected {
            break;
        }
        assert!(Instant::now() < deadline, "{counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}
