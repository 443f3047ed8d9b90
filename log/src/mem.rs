//! [`MemLog`]: the log in memory, for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

use crate::{
    AppendError, Appended, EventLog, LogPosition, LogReader, LogRecord, ReadError,
    api::check_start, local::DEFAULT_MAX_RECORD_BYTES, partition_for,
};

/// Numbers each [`MemLog`] of this process, for its identity.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// An in-memory [`EventLog`] with any number of partitions, for tests.
///
/// Same semantics as the durable backends, except that nothing survives the process: appends are
/// "durable" as soon as they are in memory. Records larger than [`LocalLogConfig`]'s default
/// `max_record_bytes` are refused with [`AppendError::TooLarge`], as the embedded log would.
/// Clones share the same log.
///
/// [`LocalLogConfig`]: crate::LocalLogConfig
#[derive(Clone, Debug)]
pub struct MemLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `mem:N`, N counting the logs this process created.
    identity: String,
    /// Records per partition; a record's offset is its index.
    partitions: Mutex<Vec<Vec<(Bytes, Bytes)>>>,
    /// Bumped after every append, so waiting readers look again.
    appended: watch::Sender<u64>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Vec<Vec<(Bytes, Bytes)>>> {
        // A panic while holding the lock cannot leave the vectors half-updated (a push either
        // happened or not), so a poisoned lock is still consistent.
        self.partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn end(&self) -> LogPosition {
        LogPosition::from_offsets(self.lock().iter().map(|p| p.len() as u64).collect())
    }
}

impl MemLog {
    /// An empty log with `partitions` partitions.
    ///
    /// # Panics
    ///
    /// If `partitions` is 0.
    pub fn new(partitions: u32) -> Self {
        assert!(partitions > 0, "a log has at least one partition");
        let (appended, _) = watch::channel(0);
        MemLog {
            inner: Arc::new(Inner {
                identity: format!("mem:{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
                partitions: Mutex::new(vec![Vec::new(); partitions as usize]),
                appended,
            }),
        }
    }
}

#[async_trait::async_trait]
impl EventLog for MemLog {
    fn partitions(&self) -> u32 {
        u32::try_from(self.inner.lock().len()).expect("created with a u32 partition count")
    }

    fn identity(&self) -> &str {
        &self.inner.identity
    }

    fn shared(&self) -> bool {
        false
    }

    async fn append(&self, key: &[u8], payload: Bytes) -> Result<Appended, AppendError> {
        let size = key.len() + payload.len();
        if size > DEFAULT_MAX_RECORD_BYTES as usize {
            return Err(AppendError::TooLarge {
                size,
                max: DEFAULT_MAX_RECORD_BYTES,
            });
        }
        let appended = {
            let mut partitions = self.inner.lock();
            let count = u32::try_from(partitions.len()).expect("created with a u32 count");
            let partition = partition_for(key, count);
            let records = &mut partitions[partition as usize];
            records.push((Bytes::copy_from_slice(key), payload));
            Appended {
                partition,
                offset: records.len() as u64 - 1,
            }
        };
        self.inner.appended.send_modify(|n| *n += 1);
        Ok(appended)
    }

    async fn end(&self) -> Result<LogPosition, ReadError> {
        Ok(self.inner.end())
    }

    async fn reader(&self, from: &LogPosition) -> Result<Box<dyn LogReader>, ReadError> {
        let end = self.inner.end();
        check_start(from, &end)?;
        let next = (0..end.partitions()).map(|p| from.offset(p)).collect();
        Ok(Box::new(MemReader {
            appended: self.inner.appended.subscribe(),
            inner: Arc::clone(&self.inner),
            next,
            first: 0,
        }))
    }
}

/// A [`MemLog`] reader.
struct MemReader {
    inner: Arc<Inner>,
    appended: watch::Receiver<u64>,
    /// Next offset per partition.
    next: Vec<u64>,
    /// The partition the next batch starts with, rotated so one busy partition cannot starve the
    /// others when batches are full.
    first: usize,
}

#[async_trait::async_trait]
impl LogReader for MemReader {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<LogRecord>, ReadError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        loop {
            // Mark the current version seen before looking, so an append that lands after the
            // look wakes `changed` below.
            self.appended.borrow_and_update();
            let batch = self.take(max);
            if !batch.is_empty() {
                return Ok(batch);
            }
            self.appended
                .changed()
                .await
                .map_err(|_| ReadError::Closed)?;
        }
    }
}

impl MemReader {
    fn take(&mut self, max: usize) -> Vec<LogRecord> {
        let partitions = self.inner.lock();
        let count = partitions.len();
        let mut batch = Vec::new();
        for i in 0..count {
            let p = (self.first + i) % count;
            let next = &mut self.next[p];
            for (key, payload) in partitions[p].iter().skip(*next as usize) {
                if batch.len() == max {
                    break;
                }
                batch.push(LogRecord {
                    partition: u32::try_from(p).expect("created with a u32 count"),
                    offset: *next,
                    key: key.clone(),
                    payload: payload.clone(),
                });
                *next += 1;
            }
        }
        self.first = (self.first + 1) % count;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn too_large_is_refused() {
        let log = MemLog::new(2);
        let big = Bytes::from(vec![0; DEFAULT_MAX_RECORD_BYTES as usize]);
        assert!(matches!(
            log.append(b"k", big).await,
            Err(AppendError::TooLarge { size, max: DEFAULT_MAX_RECORD_BYTES })
                if size == DEFAULT_MAX_RECORD_BYTES as usize + 1
        ));
        assert_eq!(log.end().await.expect("end").total(), 0);
    }

    #[tokio::test]
    async fn busy_partition_does_not_starve_others() {
        let log = MemLog::new(2);
        let key_in = |p| {
            (0..)
                .map(|i| format!("k{i}"))
                .find(|k| partition_for(k.as_bytes(), 2) == p)
        };
        let (a, b) = (
            key_in(0).expect("a key in 0"),
            key_in(1).expect("a key in 1"),
        );
        for _ in 0..10 {
            log.append(a.as_bytes(), Bytes::new())
                .await
                .expect("append");
        }
        log.append(b.as_bytes(), Bytes::new())
            .await
            .expect("append");
        let mut reader = log.reader(&LogPosition::default()).await.expect("reader");
        let first = reader.next_batch(3).await.expect("batch");
        let second = reader.next_batch(3).await.expect("batch");
        assert!(first.iter().chain(&second).any(|r| r.partition == 1));
    }
}
