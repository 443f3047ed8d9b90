#!/usr/bin/env bash
# Creates ddnsd's topic on a production Kafka cluster with the settings deploy/README.md argues
# for. Run once, with Kafka's own tools on PATH (kafka-topics.sh):
#
#   deploy/kafka-topic.sh BOOTSTRAP [TOPIC] [PARTITIONS]
#
# The topic is the only copy of the truth (a new dns node folds it from offset 0), so it is kept
# forever and is never compacted; acks=all from ddnsd plus min.insync.replicas=2 of 3 means an
# acknowledged update is on two brokers' disks before the device hears "done".
set -euo pipefail
bootstrap=${1:?usage: kafka-topic.sh BOOTSTRAP [TOPIC] [PARTITIONS]}
topic=${2:-ddnsd-events}
partitions=${3:-1}
kafka-topics.sh --bootstrap-server "$bootstrap" --create --topic "$topic" \
  --partitions "$partitions" --replication-factor 3 \
  --config min.insync.replicas=2 \
  --config unclean.leader.election.enable=false \
  --config retention.ms=-1 --config retention.bytes=-1 \
  --config cleanup.policy=delete \
  --config message.timestamp.type=LogAppendTime
echo "created $topic with $partitions partition(s): set [kafka] partitions = $partitions on every node"
