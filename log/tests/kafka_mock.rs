//! `KafkaLog` against librdkafka's built-in mock cluster: the shared suite (fast, no broker to
//! install), and faults a real broker cannot be made to produce on demand — an injected produce
//! error, a fatal idempotence error, a broker down and up again, a delivery timeout.
//!
//! The mock is not Kafka (nor tansu): `kafka.rs` runs the same suite against a real broker.
#![cfg(feature = "kafka")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use ddns_log::{
    AppendError, EventLog, KafkaConfig, KafkaLog, LogPosition,
    testsuite::{LogFactory, LogStore, append, block_on, read_all, read_n, within},
};
use rdkafka::{
    ClientConfig,
    mocking::MockCluster,
    producer::{BaseProducer, DefaultProducerContext, Producer},
    types::{RDKafkaApiKey, RDKafkaRespErr},
};

/// The broker id of a one-broker mock cluster.
const BROKER: i32 = 1;

/// A mock cluster, owned by a client created for it (`test.mock.num.brokers`): unlike
/// `MockCluster::new`, the owner is `Send + Sync`, so a store can hold it.
struct Mock {
    owner: BaseProducer,
}

impl Mock {
    fn new() -> Mock {
        let owner = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()
            .expect("a client owning a mock cluster");
        Mock { owner }
    }

    fn cluster(&self) -> MockCluster<'_, DefaultProducerContext> {
        self.owner
            .client()
            .mock_cluster()
            .expect("the client has a mock cluster")
    }

    /// A new topic and the config of a log on it.
    fn topic(&self, partitions: u32) -> KafkaConfig {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let topic = format!("events-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.cluster()
            .create_topic(&topic, partitions as i32, 1)
            .expect("create topic");
        KafkaConfig {
            brokers: self.cluster().bootstrap_servers(),
            topic,
            partitions,
            client_id: "mock-test".to_owned(),
            ..KafkaConfig::default()
        }
    }
}

struct MockFactory;

struct MockStore {
    _mock: Mock,
    config: KafkaConfig,
}

#[async_trait::async_trait]
impl LogFactory for MockFactory {
    fn max_partitions(&self) -> u32 {
        8
    }
    fn persistent(&self) -> bool {
        // The cluster lives as long as the store.
        true
    }
    async fn create(&self, partitions: u32) -> Box<dyn LogStore> {
        let mock = Mock::new();
        let config = mock.topic(partitions);
        Box::new(MockStore {
            _mock: mock,
            config,
        })
    }
}

#[async_trait::async_trait]
impl LogStore for MockStore {
    async fn open(&self) -> Arc<dyn EventLog> {
        Arc::new(connect(self.config.clone()).await)
    }
}

async fn connect(config: KafkaConfig) -> KafkaLog {
    within("connect", KafkaLog::connect(config))
        .await
        .expect("connect to the mock cluster")
}

mod suite {
    ddns_log::event_log_testsuite!(super::MockFactory);
}

fn payloads(records: &[ddns_log::LogRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.payload.to_vec()).expect("utf8"))
        .collect()
}

/// A produce request the broker refuses: that append fails, nothing of it is in the log, and the
/// next append goes through.
#[test]
fn refused_produce_fails_the_append_and_acknowledges_nothing() {
    let mock = Mock::new();
    block_on(async {
        let log = connect(mock.topic(1)).await;
        append(&log, "k", "before").await;
        mock.cluster().request_errors(
            RDKafkaApiKey::Produce,
            // (Not an authorization error: librdkafka remembers those for the topic, failing
            // later appends until its metadata is refreshed.)
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD],
        );
        let refused = within("refused append", log.append(b"k", Bytes::from("refused"))).await;
        assert!(
            matches!(refused, Err(AppendError::Broker(_))),
            "{refused:?}"
        );
        assert_eq!(log.end().await.expect("end").total(), 1);
        append(&log, "k", "after").await;
        assert_eq!(payloads(&read_all(&log).await), ["before", "after"]);
        assert_eq!(log.producer_rebuilds(), 0);
    });
}

/// A sequence desynchronisation on the only request in flight is fatal for an idempotent
/// producer: that append fails, the producer is replaced, and appends go on through the new one.
#[test]
fn fatal_producer_error_rebuilds_the_producer() {
    let mock = Mock::new();
    block_on(async {
        let log = connect(mock.topic(1)).await;
        append(&log, "k", "before").await;
        mock.cluster().request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
        );
        let failed = within("failing append", log.append(b"k", Bytes::from("lost"))).await;
        assert!(matches!(failed, Err(AppendError::Broker(_))), "{failed:?}");
        assert_eq!(log.producer_rebuilds(), 1);
        for i in 0..5 {
            append(&log, "k", &format!("after {i}")).await;
        }
        assert_eq!(
            payloads(&read_all(&log).await),
            [
                "before", "after 0", "after 1", "after 2", "after 3", "after 4"
            ]
        );
        assert_eq!(log.producer_rebuilds(), 1);
    });
}

/// Appends made while the broker is down complete once it is back (within the delivery
/// timeout), each once; a reader tailing across the outage sees them all.
#[test]
fn appends_resume_when_the_broker_comes_back() {
    let mock = Mock::new();
    block_on(async {
        let log = Arc::new(connect(mock.topic(2)).await);
        let mut reader = log.reader(&LogPosition::default()).await.expect("reader");
        append(&*log, "a", "before").await;

        mock.cluster().broker_down(BROKER).expect("broker down");
        let waiting: Vec<_> = (0..20)
            .map(|i| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    log.append(
                        format!("k{i}").as_bytes(),
                        Bytes::from(format!("during {i}")),
                    )
                    .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            waiting.iter().all(|task| !task.is_finished()),
            "an append completed while the broker was down"
        );
        mock.cluster().broker_up(BROKER).expect("broker up");
        for task in waiting {
            within("an append after the broker is back", task)
                .await
                .expect("task")
                .expect("append");
        }
        append(&*log, "a", "after").await;

        let mut seen = payloads(&read_n(&mut *reader, 22).await);
        seen.sort();
        let mut expected: Vec<String> = (0..20).map(|i| format!("during {i}")).collect();
        expected.extend(["after".to_owned(), "before".to_owned()]);
        expected.sort();
        assert_eq!(seen, expected);
        assert_eq!(log.end().await.expect("end").total(), 22);
    });
}

/// An append that cannot be delivered within `delivery_timeout_ms` fails, and is not written
/// later when the broker comes back.
#[test]
fn undeliverable_append_times_out_and_is_never_written() {
    let mock = Mock::new();
    block_on(async {
        // Long enough for the append after the outage to get through (reconnecting and bumping
        // the producer epoch after the timeout take a second or two).
        let log = connect(KafkaConfig {
            delivery_timeout_ms: 4_000,
            ..mock.topic(1)
        })
        .await;
        append(&log, "k", "before").await;
        mock.cluster().broker_down(BROKER).expect("broker down");
        let timed_out = within("timed-out append", log.append(b"k", Bytes::from("late"))).await;
        assert!(
            matches!(timed_out, Err(AppendError::Broker(_))),
            "{timed_out:?}"
        );
        mock.cluster().broker_up(BROKER).expect("broker up");
        append(&log, "k", "after").await;
        assert_eq!(payloads(&read_all(&log).await), ["before", "after"]);
    });
}

/// Connecting checks the topic: missing, or with another partition count, is an error.
#[test]
fn connect_checks_the_topic() {
    let mock = Mock::new();
    block_on(async {
        let config = mock.topic(2);
        let missing = KafkaLog::connect(KafkaConfig {
            topic: "no-such-topic".to_owned(),
            ..config.clone()
        })
        .await;
        assert!(
            matches!(missing, Err(ddns_log::KafkaConnectError::NoTopic { .. })),
            "{missing:?}"
        );
        let wrong = KafkaLog::connect(KafkaConfig {
            partitions: 3,
            ..config.clone()
        })
        .await;
        assert!(
            matches!(
                wrong,
                Err(ddns_log::KafkaConnectError::PartitionCount {
                    expected: 3,
                    actual: 2,
                    ..
                })
            ),
            "{wrong:?}"
        );
        assert!(KafkaLog::connect(config).await.is_ok());
    });
}

/// Dropping a reader or the log while the broker is down does not hang (the projector's reader
/// and ingest's log are dropped on shutdown, whatever the broker's state).
#[test]
fn dropping_while_the_broker_is_down_is_quick() {
    let mock = Mock::new();
    block_on(async {
        let log = connect(mock.topic(2)).await;
        append(&log, "k", "v").await;
        let mut reader = log.reader(&LogPosition::default()).await.expect("reader");
        read_n(&mut *reader, 1).await;
        mock.cluster().broker_down(BROKER).expect("broker down");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        drop(reader);
        drop(log);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "dropping took {took:?}");
        eprintln!("dropping the reader and the log took {took:?}");
    });
}
