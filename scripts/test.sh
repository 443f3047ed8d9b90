#!/usr/bin/env bash
# Sets up this machine and runs every check: formatting, lints, and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
started=$SECONDS
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast
echo "all checks passed in $((SECONDS - started)) s"
