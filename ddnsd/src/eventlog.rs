//! Opens the configured event log: the embedded one, or a Kafka topic.

use std::sync::Arc;

use anyhow::Context;
use ddns_log::{EventLog, KafkaLog, LocalLog, LocalLogConfig};

use crate::config::{Config, LogKind};

/// Opens the log `config` names. A Kafka topic that is missing or has another partition count
/// is a configuration error, reported rather than retried.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn EventLog>> {
    Ok(match config.log {
        LogKind::Local => {
            let dir = config.data_dir.join("log");
            let log = LocalLog::open(&dir, LocalLogConfig::default()).with_context(|| {
                format!(
                    "opening the log in {} (is the server running?)",
                    dir.display()
                )
            })?;
            Arc::new(log)
        }
        LogKind::Kafka => {
            let log = KafkaLog::connect(config.kafka.clone())
                .await
                .with_context(|| {
                    format!(
                        "connecting to Kafka topic {:?} at {}",
                        config.kafka.topic, config.kafka.brokers
                    )
                })?;
            Arc::new(log)
        }
    })
}
