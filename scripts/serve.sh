#!/usr/bin/env bash
# Sets up this machine and runs ddnsd with the embedded log (arguments go to `ddnsd serve`).
source "$(dirname "$0")/env.sh"
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p ddnsd
exec "$CARGO_TARGET_DIR/release/ddnsd" serve "$@"
