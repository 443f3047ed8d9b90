//! [`KafkaReader`]: a [`LogReader`] on its own consumer, assigned every partition at a position.

use std::{
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    error::{KafkaError, KafkaResult, RDKafkaErrorCode},
    message::BorrowedMessage,
};

use super::{KafkaConfig, LogContext, common_config, to_kafka_partition};
use crate::{LogReader, LogRecord, ReadError};

/// The consumer: librdkafka's logs go to `tracing`.
type ReaderConsumer = StreamConsumer<LogContext>;

/// Reads every partition of the topic from a given position, through a consumer that is
/// assigned the partitions (never subscribed, never committing).
pub(super) struct KafkaReader {
    config: Arc<KafkaConfig>,
    consumer: Arc<ReaderConsumer>,
    /// The next offset to return, per partition. Records below it (a re-fetch) are dropped.
    next: Vec<u64>,
    /// A fatal error met while draining after some records were already taken: returned by the
    /// next call, after those records (and by every call after it).
    failed: Option<KafkaError>,
}

/// What one message from the consumer means for the batch.
enum Received {
    Record(LogRecord),
    /// Nothing to return (a duplicate, or a passing error that librdkafka retries).
    Nothing,
    /// The reader cannot go on.
    Failed(KafkaError),
}

impl KafkaReader {
    /// A consumer assigned partition `p` at offset `start[p]`, for every partition.
    pub(super) fn new(config: Arc<KafkaConfig>, start: Vec<u64>) -> Result<Self, ReadError> {
        let client_id = format!("{}-reader", config.client_id);
        let consumer: ReaderConsumer = common_config(&config, &client_id)
            // librdkafka's `assign` needs a group, but it is never joined (no subscribe) and
            // nothing is committed to it: positions are the caller's.
            .set("group.id", &client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A position that is not in the log is an error, never silently moved.
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", config.fetch_wait_max_ms.to_string())
            .create_with_context(LogContext)
            .map_err(broker)?;
        let mut assignment = TopicPartitionList::with_capacity(start.len());
        for (partition, &offset) in start.iter().enumerate() {
            let partition = u32::try_from(partition).expect("partition counts fit a u32");
            let offset = i64::try_from(offset).map_err(|_| ReadError::OutOfRange {
                partition,
                requested: offset,
                end: i64::MAX as u64,
            })?;
            assignment
                .add_partition_offset(
                    &config.topic,
                    to_kafka_partition(partition),
                    Offset::Offset(offset),
                )
                .map_err(broker)?;
        }
        consumer.assign(&assignment).map_err(broker)?;
        Ok(KafkaReader {
            config,
            consumer: Arc::new(consumer),
            next: start,
            failed: None,
        })
    }

    /// Turns what the consumer returned into a record, or decides it is nothing or fatal.
    fn receive(&mut self, received: KafkaResult<BorrowedMessage<'_>>) -> Received {
        let message = match received {
            Ok(message) => message,
            Err(error) if is_fatal(&error) => return Received::Failed(error),
            Err(error) => {
                // librdkafka reconnects and re-fetches on its own (a broker restart, a leader
                // change): nothing is lost, so wait on.
                tracing::warn!(%error, topic = self.config.topic, "Kafka fetch failed; retrying");
                return Received::Nothing;
            }
        };
        let Some(partition) = u32::try_from(message.partition())
            .ok()
            .filter(|&p| (p as usize) < self.next.len())
        else {
            tracing::error!(
                partition = message.partition(),
                "record from a partition this reader was not assigned"
            );
            return Received::Nothing;
        };
        let Ok(offset) = u64::try_from(message.offset()) else {
            return Received::Nothing;
        };
        let next = &mut self.next[partition as usize];
        if offset < *next {
            // Already returned (librdkafka re-fetched after an error): dropping it keeps the
            // reader's output free of duplicates.
            return Received::Nothing;
        }
        if offset > *next {
            // Offsets in a Kafka partition may skip (transaction markers, compaction); this
            // log never writes either, so say so.
            tracing::warn!(
                partition,
                expected = *next,
                offset,
                "offsets skipped in the Kafka log"
            );
        }
        *next = offset + 1;
        Received::Record(LogRecord {
            partition,
            offset,
            key: Bytes::copy_from_slice(message.key().unwrap_or_default()),
            payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
        })
    }

    /// The error to return for a fatal consumer error: [`ReadError::OutOfRange`] for a position
    /// no longer (or not yet) in the log.
    async fn failure(&self, error: &KafkaError) -> ReadError {
        let code = error.rdkafka_error_code();
        if !matches!(
            code,
            Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
        ) {
            return broker(error.clone());
        }
        let consumer = Arc::clone(&self.consumer);
        let config = Arc::clone(&self.config);
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let ranges = tokio::task::spawn_blocking(move || {
            (0..config.partitions)
                .map(|partition| {
                    consumer.fetch_watermarks(&config.topic, to_kafka_partition(partition), timeout)
                })
                .collect::<KafkaResult<Vec<_>>>()
        })
        .await
        .expect("fetching watermarks does not panic");
        let Ok(ranges) = ranges else {
            return broker(error.clone());
        };
        for (partition, ((low, high), &requested)) in ranges.iter().zip(&self.next).enumerate() {
            let (low, high) = (
                u64::try_from(*low).unwrap_or(0),
                u64::try_from(*high).unwrap_or(0),
            );
            if requested < low || requested > high {
                return ReadError::OutOfRange {
                    partition: u32::try_from(partition).expect("partition counts fit a u32"),
                    requested,
                    end: high,
                };
            }
        }
        broker(error.clone())
    }
}

#[async_trait::async_trait]
impl LogReader for KafkaReader {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<LogRecord>, ReadError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        if let Some(error) = &self.failed {
            return Err(self.failure(error).await);
        }
        let consumer = Arc::clone(&self.consumer);
        let mut batch = Vec::new();
        // Wait for one record. `recv` is cancel safe: a message is either returned or stays
        // queued, so dropping this future skips nothing.
        while batch.is_empty() {
            let received = consumer.recv().await;
            match self.receive(received) {
                Received::Record(record) => batch.push(record),
                Received::Nothing => {}
                Received::Failed(error) => {
                    // Kept first, so a cancelled call does not forget it.
                    self.failed = Some(error.clone());
                    return Err(self.failure(&error).await);
                }
            }
        }
        // Then take what is already fetched, without waiting (and without an `.await`, so the
        // records taken cannot be lost to a cancellation).
        let mut context = Context::from_waker(Waker::noop());
        while batch.len() < max {
            let received = match pin!(consumer.recv()).as_mut().poll(&mut context) {
                Poll::Ready(received) => received,
                Poll::Pending => break,
            };
            match self.receive(received) {
                Received::Record(record) => batch.push(record),
                Received::Nothing => {}
                Received::Failed(error) => {
                    self.failed = Some(error);
                    break;
                }
            }
        }
        Ok(batch)
    }
}

/// Errors a reader cannot wait out: the position is gone from the log, or the consumer failed
/// fatally, or it may not read the topic.
fn is_fatal(error: &KafkaError) -> bool {
    if matches!(error, KafkaError::MessageConsumptionFatal(_)) {
        return true;
    }
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::AutoOffsetReset
                | RDKafkaErrorCode::OffsetOutOfRange
                | RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
        )
    )
}

fn broker(error: KafkaError) -> ReadError {
    ReadError::Broker(Box::new(error))
}
