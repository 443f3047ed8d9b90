#!/usr/bin/env bash
# The fleet measurements of issue 5, against a release ddnsd on this machine (loopback only).
#
#   bash loadgen/measure.sh [steady30k] [churn30k] [surge1m] [fleet1m]   (default: all four)
#
# Each run writes <name>.txt (the report), <name>.json and <name>.svg to $OUT (default
# target/loadgen-results). surge1m and fleet1m share one server: the surge registers the 1M
# devices that fleet1m then polls (--registered, same --seed). The server's data dir is on disk
# ($WORK, default under /var/tmp), so every acknowledged write is really fsync'd; the server
# allows 911-free traffic from 127.0.0.1 but keeps its default per-device quota.
#
# FLEET_ARGS adds flags to fleet1m's loadgen (e.g. "--threads 1 --connections 256").
# PRIO=rt runs the server and the loadgen at SCHED_RR priority 1: on a machine that is also
# compiling, the figures then show ddnsd rather than the scheduler's share for it. (NICE=-10
# does not: with autogroups, the default on this kernel, nice only ranks a session's own
# processes, and every shell's session competes as an equal with the compilers' sessions.)
set -euo pipefail
cd "$(dirname "$0")/.."
prio=()
case "${PRIO:-}" in
"") [ -z "${NICE:-}" ] || prio=(nice -n "$NICE") ;;
rt) prio=(chrt -r 1) ;;  # see rr_slice below
*)
    echo "PRIO is empty or rt"
    exit 1
    ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ddnsd-target}"
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(steady30k churn30k surge1m fleet1m)

# BIN=dir uses the ddnsd and ddns-loadgen there instead of building them.
if [ -z "${BIN:-}" ]; then
    cargo build --release -p ddnsd -p ddns-loadgen
fi
bin="${BIN:-$CARGO_TARGET_DIR/release}"
out="${OUT:-target/loadgen-results}"
mkdir -p "$out"
work="${WORK:-$(mktemp -d /var/tmp/ddnsd-fleet.XXXXXX)}"
cat >"$work/ddnsd.toml" <<'EOF'
metrics_listen = "127.0.0.1:0"

[ingest.flood]
source_requests_per_minute = 1000000000
source_burst = 10000000
EOF

# With PRIO=rt our threads share the CPUs round-robin among themselves; the kernel's default
# round-robin slice (100 ms) lets one of them (a RocksDB compaction, the other process) hold a
# CPU for 100 ms while a request waits, so it is set to 2 ms for the run and restored after.
# Only SCHED_RR threads use it: ours.
rr_slice=/proc/sys/kernel/sched_rr_timeslice_ms
rr_slice_was=""
if [ "${PRIO:-}" = rt ]; then
    rr_slice_was=$(cat "$rr_slice")
    echo 2 >"$rr_slice"
fi

server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
cleanup() {
    stop_server
    [ -z "$rr_slice_was" ] || echo "$rr_slice_was" >"$rr_slice"
}
trap cleanup EXIT

# start_server NAME: a fresh data dir, free ports; sets server_pid, http, dns.
start_server() {
    stop_server
    local data="$work/data-$1" log="$work/server-$1.log"
    rm -rf "$data"
    RUST_LOG=warn,ddnsd=info "${prio[@]}" "$bin/ddnsd" serve --config "$work/ddnsd.toml" --data-dir "$data" \
        --http-listen 127.0.0.1:0 --dns-listen 127.0.0.1:0 --portal-listen 127.0.0.1:0 2>"$log" &
    server_pid=$!
    for _ in $(seq 1 600); do
        if grep -q 'ddnsd ready' "$log"; then break; fi
        sleep 0.1
    done
    local ready
    ready=$(grep -o 'ddnsd ready: http=[^ ]* dns=[^ ]*' "$log")
    http=${ready#*http=}; http=${http%% *}
    dns=${ready#*dns=}
    metrics=$(grep -o 'metrics=Some([^)]*)' "$log" | head -1 | sed 's/metrics=Some(\(.*\))/\1/')
    key_file="$data/keys/demo.key"
    echo "== server $1: pid $server_pid http $http dns $dns data $data"
}

# loadgen NAME ARGS...: runs and keeps the report.
loadgen() {
    local name=$1; shift
    local cmd=("$bin/ddns-loadgen" --http "$http" --dns "$dns" --key-file "$key_file"
        --server-pid "$server_pid" --json "$out/$name.json" --plot "$out/$name.svg" "$@")
    echo "== $name: ${cmd[*]}"
    echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    "${prio[@]}" "${cmd[@]}" | tee "$out/$name.txt"
    echo "   server RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$server_pid/status")"
    # The server's own view: how long appends (group commit + fdatasync) and whole commits took.
    if [ -n "$metrics" ] && curl -sf "http://$metrics/metrics" >"$out/$name.metrics"; then
        grep -E '^ddns_(log_append_seconds|ingest_commit_seconds)\{quantile="(0.5|0.99|1)"\}|^ddns_log_fsyncs_total' \
            "$out/$name.metrics" | sed 's/^/   server: /' || true
    fi
}

for run in "${runs[@]}"; do
    case "$run" in
    steady30k)
        start_server 30k
        loadgen steady30k --devices 30000 --poll-interval 300s --speedup 60 --duration 60s \
            --threads 1
        ;;
    churn30k)
        start_server 30k-churn
        loadgen churn30k --devices 30000 --scenario churn --churn 0.05 --reboot 0.01 \
            --poll-interval 300s --speedup 60 --duration 60s --verify all --threads 1
        ;;
    surge1m)
        start_server 1m
        # Only the surge is scheduled (polls would start 60 s after each add); the drain gets
        # --timeout to send and finish whatever the server has not caught up with.
        loadgen surge1m --devices 1000000 --scenario surge --surge-window 60s \
            --poll-interval 60s --duration 60s --timeout 60s --connections 256 --verify all \
            --threads 1
        ;;
    fleet1m)
        # After surge1m on the same server (run both: `measure.sh surge1m fleet1m`).
        [ -n "$server_pid" ] || { echo "fleet1m follows surge1m"; exit 1; }
        # shellcheck disable=SC2086 # FLEET_ARGS: extra flags, word-split on purpose.
        loadgen fleet1m --devices 1000000 --registered --poll-interval 60s --duration 180s \
            --threads 2 --connections 512 --verify 100000 ${FLEET_ARGS:-}
        ;;
    *)
        echo "unknown run $run"
        exit 1
        ;;
    esac
done
