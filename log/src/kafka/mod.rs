//! [`KafkaLog`]: the [`EventLog`] on a Kafka-protocol broker (rdkafka, bundled librdkafka).
//!
//! # Appending
//!
//! One idempotent producer (`enable.idempotence=true`, `acks=all`, a long `delivery.timeout.ms`,
//! a small `linger.ms` so concurrent appends share a produce request). The partition is set
//! explicitly to [`partition_for`]`(key, partitions)`, never left to librdkafka's partitioner,
//! so one name's history is in one partition, in order. [`EventLog::append`] returns only when
//! the delivery report says the record is written by every in-sync replica; a failed or
//! timed-out delivery is [`AppendError::Broker`] (its outcome unknown, like a failed `fsync`).
//! After a fatal producer error (the idempotent producer can no longer guarantee order or
//! once-ness, e.g. a sequence desynchronisation) every queued append fails, the producer is
//! replaced by a new one (a new producer id) and later appends go through it.
//!
//! The offset in [`Appended`] is the one the delivery report carries. Brokers do not all get it
//! right: tansu's reports can carry wrong offsets after a retried batch, and an unknown offset
//! (-1) is reported as `u64::MAX`. Callers that must find *their* record when reading the log
//! identify it by an id inside the payload (ingest waits for its event id with
//! `ProjectorView::expect`), never by this offset.
//!
//! # Reading
//!
//! Each [`LogReader`] is its own consumer, **assigned** the topic's partitions at the requested
//! offsets: no consumer-group subscription, no rebalancing, no offset commits
//! (`enable.auto.commit=false`, `enable.auto.offset.store=false`). The position to resume from is
//! the caller's (the projector stores it in its snapshot, atomically with the folded state), so a
//! restart neither skips nor re-applies anything. librdkafka refuses `assign` without a
//! `group.id`, so one is set, but the group is never joined. A consumer only sees records below
//! the high watermark, i.e. replicated to every in-sync replica. Passing fetch errors (a broker
//! restarting) are logged and retried; an offset that is no longer in the log
//! (`auto.offset.reset=error`) is [`ReadError::OutOfRange`].
//!
//! The topic is never created here (nor auto-created by the broker): [`KafkaLog::connect`]
//! checks that it exists with exactly [`KafkaConfig::partitions`] partitions, because a different
//! count would send a name's events to another partition than its history.

mod reader;

use std::{
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use rdkafka::{
    ClientConfig, ClientContext,
    config::RDKafkaLogLevel,
    consumer::ConsumerContext,
    error::KafkaError,
    producer::{FutureProducer, FutureRecord},
};

use crate::{
    AppendError, Appended, EventLog, LogPosition, LogReader, ReadError, api::check_start,
    local::DEFAULT_MAX_RECORD_BYTES, partition_for,
};

/// How [`KafkaLog`] reaches its broker and topic. (De)serializable, every field with a default,
/// so a binary can take it from its config file as it is (unknown keys are refused).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// The bootstrap brokers, `host:port[,host:port…]`. Default `127.0.0.1:9092`.
    pub brokers: String,
    /// The topic holding the log. It must exist with [`KafkaConfig::partitions`] partitions.
    /// Default `ddnsd-events`.
    pub topic: String,
    /// The topic's partition count, which [`partition_for`] maps keys onto. Default 1. Never
    /// change it for an existing topic: keys would move to other partitions than their history.
    pub partitions: u32,
    /// The Kafka `client.id` (readers use `<client_id>-reader`). Default `ddnsd`.
    pub client_id: String,
    /// How long the producer keeps retrying a record (librdkafka's `delivery.timeout.ms`) before
    /// its append fails. Default 120 000 (2 minutes: a broker restart or a leader election is
    /// ridden out; callers that cannot wait that long drop the append future).
    pub delivery_timeout_ms: u64,
    /// How long the producer waits for more records to batch with (`linger.ms`). Default 1.
    pub linger_ms: u64,
    /// How long a fetch waits on the broker for new records (`fetch.wait.max.ms`): a tailing
    /// reader sees a record at most this late on a broker that does not answer a waiting fetch
    /// early. Default 100.
    pub fetch_wait_max_ms: u64,
    /// Timeout of the metadata and watermark requests behind [`KafkaLog::connect`],
    /// [`EventLog::end`] and [`EventLog::reader`]. Default 10 000.
    pub request_timeout_ms: u64,
    /// Largest key plus payload an append accepts; larger is [`AppendError::TooLarge`]. Must stay
    /// below the broker's `message.max.bytes` (1 MB by default). Default 64 KiB, as the embedded
    /// log.
    pub max_record_bytes: u32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_owned(),
            topic: "ddnsd-events".to_owned(),
            partitions: 1,
            client_id: "ddnsd".to_owned(),
            delivery_timeout_ms: 120_000,
            linger_ms: 1,
            fetch_wait_max_ms: 100,
            request_timeout_ms: 10_000,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// Why [`KafkaLog::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaConnectError {
    /// The configuration cannot work.
    #[error("invalid Kafka log config: {0}")]
    InvalidConfig(&'static str),
    /// librdkafka refused to create the client (a bad property value).
    #[error("creating the Kafka client failed")]
    Client(#[source] KafkaError),
    /// The topic's metadata could not be read (the brokers are unreachable, or refused).
    #[error("reading the topic's metadata from the brokers failed")]
    Metadata(#[source] KafkaError),
    /// The topic does not exist (or the broker reports an error for it). It is never created
    /// implicitly: create it with the configured partition count.
    #[error("topic {topic} is not available ({error}); create it with {partitions} partition(s)")]
    NoTopic {
        /// The topic.
        topic: String,
        /// The broker's error for it.
        error: String,
        /// The configured partition count.
        partitions: u32,
    },
    /// The topic has another partition count than the config says.
    #[error("topic {topic} has {actual} partition(s), the config says {expected}")]
    PartitionCount {
        /// The topic.
        topic: String,
        /// The configured count.
        expected: u32,
        /// The topic's count.
        actual: usize,
    },
}

/// The producer type: librdkafka's logs and errors go to `tracing`.
type Producer = FutureProducer<LogContext>;

/// An [`EventLog`] on a Kafka topic. See the [module documentation](self) for how it appends and
/// reads.
pub struct KafkaLog {
    config: Arc<KafkaConfig>,
    /// `kafka:<cluster id>/<topic>`.
    identity: String,
    /// The producer, replaced after a fatal error. Never held across an `.await`.
    producer: RwLock<Arc<Producer>>,
    /// How many times the producer was replaced.
    rebuilds: AtomicU64,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Creates the producer and checks that the topic exists with `config.partitions`
    /// partitions (one metadata request, bounded by `request_timeout_ms`).
    pub async fn connect(config: KafkaConfig) -> Result<KafkaLog, KafkaConnectError> {
        validate(&config)?;
        describe_metrics();
        let producer = Arc::new(create_producer(&config).map_err(KafkaConnectError::Client)?);
        let config = Arc::new(config);
        let (checked, checked_config) = (Arc::clone(&producer), Arc::clone(&config));
        let cluster = tokio::task::spawn_blocking(move || check_topic(&checked, &checked_config))
            .await
            .expect("the topic check does not panic")?;
        Ok(KafkaLog {
            identity: format!("kafka:{cluster}/{}", config.topic),
            config,
            producer: RwLock::new(producer),
            rebuilds: AtomicU64::new(0),
        })
    }

    /// The configuration this log was connected with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// How many times the producer failed fatally and was replaced since [`KafkaLog::connect`]
    /// (also the counter `ddns_log_kafka_producer_rebuilds_total`).
    pub fn producer_rebuilds(&self) -> u64 {
        self.rebuilds.load(Ordering::Relaxed)
    }

    fn producer(&self) -> Arc<Producer> {
        Arc::clone(&self.producer.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// After a failed delivery: if `failed` has a fatal error (it accepts nothing any more),
    /// replaces it with a new producer, unless another append already did.
    fn replace_if_fatal(&self, failed: &Arc<Producer>) {
        use rdkafka::producer::Producer as _;
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        let mut current = self
            .producer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&current, failed) {
            return;
        }
        match create_producer(&self.config) {
            Ok(producer) => {
                let old = std::mem::replace(&mut *current, Arc::new(producer));
                drop(current);
                self.rebuilds.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(?code, %reason, "Kafka producer failed fatally; replaced it");
                metrics::counter!("ddns_log_kafka_producer_rebuilds_total").increment(1);
                // Dropping a producer purges and flushes it (up to 500 ms): not on a runtime
                // worker.
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => drop(runtime.spawn_blocking(move || drop(old))),
                    Err(_) => drop(old),
                }
            }
            Err(error) => {
                // The next append fails on the old producer and tries again.
                tracing::error!(%error, ?code, %reason, "Kafka producer failed, not replaced");
            }
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    /// The high watermarks of every partition (one request per partition).
    async fn watermarks(&self) -> Result<LogPosition, ReadError> {
        let producer = self.producer();
        let config = Arc::clone(&self.config);
        let timeout = self.request_timeout();
        tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer as _;
            high_watermarks(producer.client(), &config, timeout)
        })
        .await
        .expect("fetching watermarks does not panic")
    }
}

#[async_trait::async_trait]
impl EventLog for KafkaLog {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn shared(&self) -> bool {
        true
    }

    fn partitions(&self) -> u32 {
        self.config.partitions
    }

    async fn append(&self, key: &[u8], payload: Bytes) -> Result<Appended, AppendError> {
        let max = self.config.max_record_bytes;
        let size = key.len() + payload.len();
        if size > max as usize {
            return Err(AppendError::TooLarge { size, max });
        }
        let partition = partition_for(key, self.config.partitions);
        let started = Instant::now();
        let producer = self.producer();
        let record = FutureRecord::<[u8], [u8]>::to(&self.config.topic)
            .partition(to_kafka_partition(partition))
            .key(key)
            .payload(&payload[..]);
        let queue_timeout = Duration::from_millis(self.config.delivery_timeout_ms);
        match producer.send(record, queue_timeout).await {
            Ok(delivery) => {
                metrics::histogram!("ddns_log_append_seconds")
                    .record(started.elapsed().as_secs_f64());
                if delivery.partition != to_kafka_partition(partition) {
                    tracing::error!(
                        partition,
                        reported = delivery.partition,
                        "delivery report names another partition than the record was sent to"
                    );
                }
                let offset = u64::try_from(delivery.offset).unwrap_or_else(|_| {
                    tracing::warn!(
                        partition,
                        offset = delivery.offset,
                        "delivery report without an offset"
                    );
                    u64::MAX
                });
                Ok(Appended { partition, offset })
            }
            Err((error, _record)) => {
                tracing::debug!(%error, partition, "Kafka delivery failed");
                self.replace_if_fatal(&producer);
                Err(AppendError::Broker(Arc::new(error)))
            }
        }
    }

    async fn end(&self) -> Result<LogPosition, ReadError> {
        self.watermarks().await
    }

    async fn reader(&self, from: &LogPosition) -> Result<Box<dyn LogReader>, ReadError> {
        let end = self.watermarks().await?;
        check_start(from, &end)?;
        let start = (0..self.config.partitions)
            .map(|p| from.offset(p))
            .collect();
        let reader = reader::KafkaReader::new(Arc::clone(&self.config), start)?;
        Ok(Box::new(reader))
    }
}

fn validate(config: &KafkaConfig) -> Result<(), KafkaConnectError> {
    let invalid = KafkaConnectError::InvalidConfig;
    if config.brokers.trim().is_empty() {
        return Err(invalid("brokers must name at least one broker"));
    }
    if config.topic.is_empty() {
        return Err(invalid("topic must not be empty"));
    }
    if config.partitions == 0 || i32::try_from(config.partitions).is_err() {
        return Err(invalid("partitions must be between 1 and 2^31 - 1"));
    }
    if config.delivery_timeout_ms == 0 || config.delivery_timeout_ms > i32::MAX as u64 {
        return Err(invalid(
            "delivery_timeout_ms must be between 1 and 2^31 - 1 (0 would mean: retry forever)",
        ));
    }
    if config.linger_ms > 900_000 || config.fetch_wait_max_ms > 300_000 {
        return Err(invalid(
            "linger_ms must be at most 900000 and fetch_wait_max_ms at most 300000",
        ));
    }
    if config.request_timeout_ms == 0 {
        return Err(invalid("request_timeout_ms must be positive"));
    }
    Ok(())
}

/// Properties both clients share.
fn common_config(config: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", client_id)
        // The topic is created by the operator with the right partition count, never implicitly.
        .set("allow.auto.create.topics", "false")
        // Reconnect within a second of a broker coming back, rather than backing off to 10 s.
        .set("reconnect.backoff.max.ms", "1000");
    client
}

fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = common_config(config, &config.client_id);
    client
        // Exactly once and in order per partition across retries: the broker drops a retried
        // batch it already has (by producer id and sequence number).
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "delivery.timeout.ms",
            config.delivery_timeout_ms.to_string(),
        )
        .set("linger.ms", config.linger_ms.to_string());
    client
}

fn create_producer(config: &KafkaConfig) -> Result<Producer, KafkaError> {
    producer_config(config).create_with_context(LogContext)
}

/// Checks that the topic exists with the configured partition count (blocking).
///
/// Returns the cluster id (`-` if the broker has none), which with the topic names the log.
fn check_topic(producer: &Producer, config: &KafkaConfig) -> Result<String, KafkaConnectError> {
    use rdkafka::producer::Producer as _;
    let metadata = producer
        .client()
        .fetch_metadata(
            Some(&config.topic),
            Duration::from_millis(config.request_timeout_ms),
        )
        .map_err(KafkaConnectError::Metadata)?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == config.topic)
        .ok_or_else(|| KafkaConnectError::NoTopic {
            topic: config.topic.clone(),
            error: "not in the broker's metadata".to_owned(),
            partitions: config.partitions,
        })?;
    if let Some(error) = topic.error() {
        return Err(KafkaConnectError::NoTopic {
            topic: config.topic.clone(),
            error: rdkafka::error::RDKafkaErrorCode::from(error).to_string(),
            partitions: config.partitions,
        });
    }
    let actual = topic.partitions().len();
    if actual != config.partitions as usize {
        return Err(KafkaConnectError::PartitionCount {
            topic: config.topic.clone(),
            expected: config.partitions,
            actual,
        });
    }
    let cluster = producer
        .client()
        .fetch_cluster_id(Duration::from_millis(config.request_timeout_ms));
    Ok(cluster.unwrap_or_else(|| "-".to_owned()))
}

/// The high watermark of every partition (blocking; one request per partition).
fn high_watermarks<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    config: &KafkaConfig,
    timeout: Duration,
) -> Result<LogPosition, ReadError> {
    let offsets = (0..config.partitions)
        .map(|partition| {
            let (_low, high) = client
                .fetch_watermarks(&config.topic, to_kafka_partition(partition), timeout)
                .map_err(|error| ReadError::Broker(Box::new(error)))?;
            u64::try_from(high).map_err(|_| {
                ReadError::Broker(
                    format!("partition {partition}'s high watermark is {high}").into(),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(LogPosition::from_offsets(offsets))
}

/// Describes this backend's metrics to the installed recorder.
fn describe_metrics() {
    metrics::describe_histogram!(
        "ddns_log_append_seconds",
        metrics::Unit::Seconds,
        "Time from append to durable acknowledgement"
    );
    metrics::describe_counter!(
        "ddns_log_kafka_producer_rebuilds_total",
        "Kafka producers replaced after a fatal error"
    );
}

/// A partition number as Kafka's API takes it (validated to fit by [`validate`]).
fn to_kafka_partition(partition: u32) -> i32 {
    i32::try_from(partition).expect("partition counts are validated to fit an i32")
}

/// Sends librdkafka's logs and client errors to `tracing` (target `librdkafka`).
#[derive(Clone, Copy, Debug, Default)]
struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for LogContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_validation() {
        let config = KafkaConfig::default();
        assert_eq!(config.partitions, 1);
        assert_eq!(config.delivery_timeout_ms, 120_000);
        assert!(validate(&config).is_ok());
        let bad = |config: KafkaConfig| {
            matches!(validate(&config), Err(KafkaConnectError::InvalidConfig(_)))
        };
        assert!(bad(KafkaConfig {
            partitions: 0,
            ..KafkaConfig::default()
        }));
        assert!(bad(KafkaConfig {
            topic: String::new(),
            ..KafkaConfig::default()
        }));
        assert!(bad(KafkaConfig {
            delivery_timeout_ms: 0,
            ..KafkaConfig::default()
        }));
        assert!(bad(KafkaConfig {
            brokers: " ".to_owned(),
            ..KafkaConfig::default()
        }));
    }

    #[test]
    fn config_deserializes_with_defaults_and_rejects_unknown_fields() {
        let config: KafkaConfig = serde_json::from_str(
            r#"{"brokers": "10.0.0.1:9092,10.0.0.2:9092", "topic": "events", "partitions": 16}"#,
        )
        .expect("config");
        assert_eq!(
            config,
            KafkaConfig {
                brokers: "10.0.0.1:9092,10.0.0.2:9092".to_owned(),
                topic: "events".to_owned(),
                partitions: 16,
                ..KafkaConfig::default()
            }
        );
        assert!(serde_json::from_str::<KafkaConfig>(r#"{"partition": 16}"#).is_err());
    }

    #[test]
    fn producer_config_is_idempotent_acks_all() {
        let config = KafkaConfig {
            delivery_timeout_ms: 90_000,
            ..KafkaConfig::default()
        };
        let client = producer_config(&config);
        for (key, value) in [
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("delivery.timeout.ms", "90000"),
            ("linger.ms", "1"),
            ("allow.auto.create.topics", "false"),
            ("client.id", "ddnsd"),
        ] {
            assert_eq!(client.get(key), Some(value), "{key}");
        }
        // librdkafka accepts every property (without connecting: it is not created here).
        assert!(client.create_native_config().is_ok());
    }
}
