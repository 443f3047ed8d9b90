//! What a normal query logs: hickory-server, which serves TCP, logs every reply at `info`, and
//! [`ddns_dns::HICKORY_LOG_DIRECTIVE`] is what keeps that out of ddnsd's `info` log. UDP is served
//! by the crate's own worker threads, which log nothing per query (and, being other threads, would
//! not show under this test's thread-local subscriber anyway).
//!
//! The runtime is single-threaded so that the server's tasks run on the test's thread, under the
//! thread's default subscriber.

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::{dig, serve};
use tracing_subscriber::EnvFilter;

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The log lines written while the server answers a few ordinary queries under `filter`.
async fn log_of_ordinary_queries(filter: &str) -> Vec<String> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (server, _zone) = serve().await;
    let addr = server.local_addr();
    for args in [
        &["cam.dyn.example", "A"][..],
        &["nope.dyn.example", "A"],
        &["example.org", "A"],
        &["dyn.example", "SOA"],
        &["+tcp", "dyn.example", "SOA"],
        &["+tcp", "cam.dyn.example", "A"],
    ] {
        assert!(!dig(addr, args).await.status.is_empty());
    }
    server.shutdown().await;

    let bytes = captured.0.lock().expect("not poisoned").clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn with_the_directive_ordinary_queries_log_nothing_at_info() {
    let filter = format!("info,{}", ddns_dns::HICKORY_LOG_DIRECTIVE);
    let lines = log_of_ordinary_queries(&filter).await;
    // Only the start-up line.
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("DNS server listening"), "{lines:#?}");
}

#[tokio::test]
async fn without_it_hickory_logs_every_tcp_reply_at_info() {
    let lines = log_of_ordinary_queries("info").await;
    let per_reply = lines
        .iter()
        .filter(|line| line.contains("hickory_server"))
        .count();
    assert!(
        per_reply >= 2,
        "hickory no longer logs per reply? then drop the directive: {lines:#?}"
    );
    assert!(
        lines.iter().all(|line| !line.contains("udp://")),
        "UDP replies are not hickory's: {lines:#?}"
    );
}
