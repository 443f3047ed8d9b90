#!/usr/bin/env bash
# Sets up this machine and runs every check: formatting, lints, and all tests.
source "$(dirname "$0")/env.sh"
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
# KafkaLog's tests and the cluster tests run against a real broker, built once (~20 min) into
# ~/.cache/ddnsd-tools; kcat reads the topic with a librdkafka built there once (~2 min).
bash scripts/tansu.sh install
bash scripts/kcat.sh install
started=$SECONDS
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
bash scripts/deny.sh
cargo test --workspace --locked --no-fail-fast
echo "all checks passed in $((SECONDS - started)) s"
