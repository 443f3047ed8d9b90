//! The shared `EventLog` suite, run against every backend in this crate.

use std::sync::Arc;

use ddns_log::{
    EventLog, LocalLog, LocalLogConfig, MemLog,
    testsuite::{LogFactory, LogStore},
};

/// `MemLog`, with any number of partitions; nothing persists.
struct MemFactory;

struct MemStore(u32);

#[async_trait::async_trait]
impl LogFactory for MemFactory {
    fn max_partitions(&self) -> u32 {
        8
    }
    fn persistent(&self) -> bool {
        false
    }
    async fn create(&self, partitions: u32) -> Box<dyn LogStore> {
        Box::new(MemStore(partitions))
    }
}

#[async_trait::async_trait]
impl LogStore for MemStore {
    async fn open(&self) -> Arc<dyn EventLog> {
        Arc::new(MemLog::new(self.0))
    }
}

/// `LocalLog` in a temporary directory.
struct LocalFactory(LocalLogConfig);

struct LocalStore {
    dir: tempfile::TempDir,
    config: LocalLogConfig,
}

#[async_trait::async_trait]
impl LogFactory for LocalFactory {
    fn max_partitions(&self) -> u32 {
        1
    }
    fn persistent(&self) -> bool {
        true
    }
    async fn create(&self, partitions: u32) -> Box<dyn LogStore> {
        assert_eq!(partitions, 1);
        let dir = tempfile::tempdir().expect("tempdir");
        Box::new(LocalStore {
            dir,
            config: self.0.clone(),
        })
    }
}

#[async_trait::async_trait]
impl LogStore for LocalStore {
    async fn open(&self) -> Arc<dyn EventLog> {
        Arc::new(LocalLog::open(self.dir.path(), self.config.clone()).expect("open LocalLog"))
    }
}

mod mem {
    ddns_log::event_log_testsuite!(super::MemFactory);
}

mod local {
    ddns_log::event_log_testsuite!(super::LocalFactory(ddns_log::LocalLogConfig::default()));
}

/// Segments of a few records each: every case also crosses segment boundaries.
mod local_tiny_segments {
    ddns_log::event_log_testsuite!(super::LocalFactory(ddns_log::LocalLogConfig {
        segment_bytes: 200,
        ..Default::default()
    }));
}
