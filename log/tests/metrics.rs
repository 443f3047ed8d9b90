//! The log's metrics keep their names (dashboards and alerts depend on them) and their meaning.
//! In a binary of its own: it installs a global recorder.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use ddns_log::{EventLog, LocalLog, LocalLogConfig, testsuite::block_on};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Every value recorded, by metric name (counter increments and histogram samples alike).
#[derive(Default)]
struct Capture(Mutex<HashMap<String, Vec<f64>>>);

impl Capture {
    fn values(&self, name: &str) -> Vec<f64> {
        self.0
            .lock()
            .expect("capture")
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

struct Handle(Arc<Capture>, String);

impl Handle {
    fn push(&self, value: f64) {
        self.0
            .0
            .lock()
            .expect("capture")
            .entry(self.1.clone())
            .or_default()
            .push(value);
    }
}

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.push(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.push(value as f64);
    }
}

impl metrics::HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

struct CaptureRecorder(Arc<Capture>);

impl Recorder for CaptureRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle(Arc::clone(&self.0), key.name().to_owned())))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle(Arc::clone(&self.0), key.name().to_owned())))
    }
}

#[test]
fn appends_fsyncs_group_sizes_and_torn_bytes_are_measured() {
    let capture = Arc::new(Capture::default());
    metrics::set_global_recorder(CaptureRecorder(Arc::clone(&capture))).expect("recorder");
    let dir = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let log = LocalLog::open(dir.path(), LocalLogConfig::default()).expect("open");
        for i in 0..3u8 {
            log.append(b"k", Bytes::from(vec![i; 10]))
                .await
                .expect("append");
        }
        let latencies = capture.values("ddns_log_append_seconds");
        assert_eq!(latencies.len(), 3);
        assert!(
            latencies.iter().all(|&s| s > 0.0 && s < 60.0),
            "{latencies:?}"
        );
        assert_eq!(capture.values("ddns_log_group_commit_size"), vec![1.0; 3]);
        let fsyncs: f64 = capture.values("ddns_log_fsyncs_total").iter().sum();
        assert_eq!(fsyncs, log.stats().fsyncs as f64);
        drop(log);

        let segment = dir.path().join(format!("{:020}.log", 0));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("segment");
        file.set_len(8 + 2 * 31 + 5).expect("truncate");
        let log = LocalLog::open(dir.path(), LocalLogConfig::default()).expect("reopen");
        assert_eq!(log.stats().torn_bytes_cut_on_open, 5);
        assert_eq!(capture.values("ddns_log_torn_bytes_cut_total"), vec![5.0]);
    });
}
