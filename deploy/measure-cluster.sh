#!/usr/bin/env bash
# End-to-end numbers of the local cluster (deploy/local-cluster.sh): two load generators, one per
# ingest node, each probing update-to-DNS on a *dns-only* node, so every figure crosses the broker.
#
#   bash deploy/measure-cluster.sh            # SURGE=30000 per ingest node in WINDOW=10s, then churn
#   BIN_DIR=DIR bash deploy/measure-cluster.sh  # with DIR/ddnsd and DIR/ddns-loadgen, no build
#
# Prints each loadgen's report; the lines to read are "acknowledged", "latency" and "propagation".
# Runs under flock /tmp/ddnsd-bench.lock so it never overlaps another benchmark on this machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
SURGE=${SURGE:-30000}
WINDOW=${WINDOW:-10s}
CHURN_DEVICES=${CHURN_DEVICES:-20000}
exec 9>/tmp/ddnsd-bench.lock
flock 9

bin=$(mktemp -d /tmp/ddnsd-cluster-bin.XXXXXX)
if [ -n "${BIN_DIR:-}" ]; then
  # Binaries built elsewhere (e.g. from another checkout).
  cp "$BIN_DIR/ddnsd" "$BIN_DIR/ddns-loadgen" "$bin/"
else
  # shellcheck source=../scripts/env.sh
  source "$root/scripts/env.sh"
  (cd "$root" && cargo build --release --locked -p ddnsd -p ddns-loadgen >&2)
  cp "$CARGO_TARGET_DIR/release/ddnsd" "$CARGO_TARGET_DIR/release/ddns-loadgen" "$bin/"
fi
dir=$(mktemp -d /var/tmp/ddnsd-cluster.XXXXXX)
trap 'bash "$here/local-cluster.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$bin"' EXIT

export RUST_LOG=warn,ddnsd=info
export DDNSD_INGEST__FLOOD__SOURCE_REQUESTS_PER_MINUTE=1000000000
export DDNSD_INGEST__FLOOD__SOURCE_BURST=10000000
out=$(DDNSD_BIN="$bin/ddnsd" bash "$here/local-cluster.sh" start "$dir")
echo "$out"
addr() { grep "^$1 " <<<"$out" | cut -d= -f2; }
key=$(grep -o 'secret_hex = "[0-9a-f]*"' "$dir/cluster.toml" | cut -d'"' -f2)
pid_of() { cat "$dir/$1.pid"; }

# CPU seconds (user + system) so far of each cluster process, as "name seconds" lines.
cpu() {
  local tick name pid
  tick=$(getconf CLK_TCK)
  for name in broker ingest1 ingest2 dns1 dns2; do
    if [ "$name" = broker ]; then pid=$(cat "$dir/broker/tansu.pid"); else pid=$(pid_of "$name"); fi
    awk -v n="$name" -v t="$tick" '{ printf "%s %.2f\n", n, ($14 + $15) / t }' "/proc/$pid/stat"
  done
}

# phase NAME SECONDS BEFORE: each process's share of a core over the phase.
phase_cpu() {
  local name=$1 seconds=$2 before=$3
  echo "cpu during $name (cores, over ${seconds} s):"
  join <(echo "$before") <(cpu) | awk -v s="$seconds" '{ printf "  %-8s %.2f\n", $1, ($3 - $2) / s }'
}

# loadgen INGEST DNS SEED ARGS…
loadgen() {
  local ingest=$1 dns=$2 seed=$3
  shift 3
  "$bin/ddns-loadgen" --http "$(addr "$ingest")" --dns "$(addr "$dns")" --key-id 1 --key-hex "$key" \
    --seed "$seed" --server-pid "$(pid_of "$ingest")" "$@"
}

echo "== surge: $SURGE adds per ingest node within $WINDOW (both at once)"
before=$(cpu) started=$SECONDS
loadgen ingest1 dns1 11 --scenario surge --devices "$SURGE" --surge-window "$WINDOW" \
  --duration "$WINDOW" --propagation-sample 0.02 --verify 2000 --threads 1 >"$dir/surge1.txt" &
loadgen ingest2 dns2 12 --scenario surge --devices "$SURGE" --surge-window "$WINDOW" \
  --duration "$WINDOW" --propagation-sample 0.02 --verify 2000 --threads 1 >"$dir/surge2.txt"
wait
phase_cpu surge $((SECONDS - started)) "$before"
cat "$dir/surge1.txt" "$dir/surge2.txt"

echo "== churn: $CHURN_DEVICES devices per ingest node, polling every 10 s, 20% changing address per poll"
before=$(cpu) started=$SECONDS
loadgen ingest1 dns2 21 --scenario churn --devices "$CHURN_DEVICES" --poll-interval 10s --churn 0.2 \
  --duration 30s --propagation-sample 0.2 --verify 2000 --threads 1 >"$dir/churn1.txt" &
loadgen ingest2 dns1 22 --scenario churn --devices "$CHURN_DEVICES" --poll-interval 10s --churn 0.2 \
  --duration 30s --propagation-sample 0.2 --verify 2000 --threads 1 >"$dir/churn2.txt"
wait
phase_cpu churn $((SECONDS - started)) "$before"
cat "$dir/churn1.txt" "$dir/churn2.txt"
