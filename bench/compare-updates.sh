#!/usr/bin/env bash
# Durable updates/s: ddnsd's device API (ddns-loadgen at max rate) beside Knot's and BIND's
# RFC 2136 dynamic updates (dnsperf -u, TSIG), each peer with its default durability, on the
# same machine in one run. Loopback only; every server started here is stopped on exit.
#
#   bash bench/compare-updates.sh            # N=100000 names, DUR=20 s per server
#   N=20000 DUR=10 bash bench/compare-updates.sh
#   CLIENTS=64 (dnsperf clients, 256 outstanding) CONNS=256 (loadgen connections)
#   PRIO=rt   every server and client at SCHED_RR priority 1: on a machine shared with other
#             work (compilers), none of them waits behind it (close to a quiet machine)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
DUR=${DUR:-20}
CLIENTS=${CLIENTS:-64}
prio=()
case "${PRIO:-}" in
  "") ;;
  rt) prio=(chrt -r 1) ;;
  *) echo "PRIO is empty or rt" >&2; exit 1 ;;
esac

need=()
for p in knot bind9 dnsperf; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash scripts/setup.sh
source scripts/env.sh
# BIN=dir uses the ddnsd and ddns-loadgen there instead of building them.
[ -n "${BIN:-}" ] || cargo build --release -q -p ddnsd -p ddns-loadgen
bin="${BIN:-$CARGO_TARGET_DIR/release}"

work=$(mktemp -d /tmp/ddnsd-compare-updates.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # wait_port PORT: until a UDP DNS query gets an answer, at most 30 s
  for _ in $(seq 1 300); do
    dig +time=1 +tries=1 @127.0.0.1 -p "$1" dyn.example SOA >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2; return 1
}
cpu_secs() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }

secret=$(head -c 32 /dev/urandom | base64)
zone="$work/dyn.example.zone"
{
  echo '$ORIGIN dyn.example.'
  echo '$TTL 60'
  echo '@ IN SOA ns1 hostmaster 1 3600 600 1209600 60'
  echo '  IN NS ns1'
  echo 'ns1 IN A 192.0.2.53'
  for ((i = 0; i < N; i++)); do echo "h$i IN A 10.$((i >> 16 & 255)).$((i >> 8 & 255)).$((i & 255))"; done
} > "$zone"
# Each update moves one existing name to a new address, as a device's update does.
updates="$work/updates.txt"
python3 - "$N" > "$updates" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(4 * n):
    name = f"h{i % n}.dyn.example."
    print("dyn.example")
    print(f"delete {name} A")
    print(f"add {name} 60 A 172.{16 + (i >> 16) % 16}.{(i >> 8) & 255}.{i & 255}")
    print("send")
PY

# dnsperf's summary: "Queries completed: N (x%)" and "Queries per second: Q"
dnsperf_rate() { awk '/(Queries|Updates) per second:/ {print $4}' "$1"; }
dnsperf_done() { awk '/(Queries|Updates) completed:/ {print $3}' "$1"; }
dnsperf_lat() { awk '/Average Latency/ {print $4*1000}' "$1"; }

run_dnsperf() { # run_dnsperf NAME PORT PID
  local out="$work/$1.dnsperf" before after
  before=$(cpu_secs "$3")
  "${prio[@]}" dnsperf -u -s 127.0.0.1 -p "$2" -d "$updates" -l "$DUR" -c "$CLIENTS" -q 256 \
    -y "hmac-sha256:upd:$secret" > "$out" 2>&1 || { cat "$out" >&2; return 1; }
  after=$(cpu_secs "$3")
  local rcodes; rcodes=$(awk '/Response codes:/ {sub(/.*Response codes: /, ""); print}' "$out")
  printf '%s %s %s %s %s\n' "$1" "$(dnsperf_rate "$out")" "$(dnsperf_lat "$out")" \
    "$(echo "$after - $before" | bc)" "$rcodes" >> "$work/results"
}

: > "$work/results"

# --- Knot: journal in LMDB, its default durability (every change synced before the reply).
knot_port=$(free_port); mkdir -p "$work/knot"; cp "$zone" "$work/knot/"
cat > "$work/knot/knot.conf" <<CONF
server:
    listen: 127.0.0.1@$knot_port
    rundir: $work/knot
    pidfile: $work/knot/knot.pid
database:
    storage: $work/knot
key:
  - id: upd
    algorithm: hmac-sha256
    secret: $secret
acl:
  - id: upd
    key: upd
    action: update
template:
  - id: default
    storage: $work/knot
zone:
  - domain: dyn.example
    file: dyn.example.zone
    acl: upd
log:
  - target: stderr
    any: warning
CONF
"${prio[@]}" knotd -c "$work/knot/knot.conf" 2> "$work/knot/stderr" & pids+=($!); knot_pid=$!
wait_port "$knot_port"
run_dnsperf Knot "$knot_port" "$knot_pid"
kill "$knot_pid"; wait "$knot_pid" 2>/dev/null || true

# --- BIND: its journal (.jnl), default durability.
bind_port=$(free_port); mkdir -p "$work/bind"; cp "$zone" "$work/bind/"
cat > "$work/bind/named.conf" <<CONF
options {
    directory "$work/bind";
    pid-file "$work/bind/named.pid";
    listen-on port $bind_port { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
};
controls { };
key "upd" { algorithm hmac-sha256; secret "$secret"; };
zone "dyn.example" { type primary; file "$work/bind/dyn.example.zone"; allow-update { key "upd"; }; };
CONF
"${prio[@]}" named -g -c "$work/bind/named.conf" > "$work/bind/stderr" 2>&1 & pids+=($!); bind_pid=$!
wait_port "$bind_port"
run_dnsperf BIND "$bind_port" "$bind_pid"
kill "$bind_pid"; wait "$bind_pid" 2>/dev/null || true

# --- ddnsd: the device API, every update fsync'd (group commit) before its 09. The N devices
# are registered first (untimed: a surge of adds); then the loadgen runs closed-loop at max
# rate (`--scenario updates`): each of CONNS keep-alive connections sends the next device's
# update, with a new address, as soon as its previous reply is in. Only updates, no polls:
# the completed `09`s per second are the server's durable update rate.
CONNS=${CONNS:-256}
ddnsd_dir="$work/ddnsd"; mkdir -p "$ddnsd_dir"
cat > "$ddnsd_dir/ddnsd.toml" <<CONF
[ingest.flood]
device_updates_per_minute = 1000000
device_burst = 100000
source_requests_per_minute = 1000000000
source_burst = 10000000
CONF
"${prio[@]}" "$bin/ddnsd" serve --config "$ddnsd_dir/ddnsd.toml" --data-dir "$ddnsd_dir/data" \
  --http-listen 127.0.0.1:0 --dns-listen 127.0.0.1:0 --portal-listen 127.0.0.1:0 2> "$ddnsd_dir/stderr" & pids+=($!); ddnsd_pid=$!
for _ in $(seq 1 300); do grep -q "ddnsd ready" "$ddnsd_dir/stderr" && break; sleep 0.1; done
ready=$(grep "ddnsd ready" "$ddnsd_dir/stderr") || { cat "$ddnsd_dir/stderr" >&2; exit 1; }
http=$(sed -E 's/.*http=([^ ]+).*/\1/' <<< "$ready"); dns=$(sed -E 's/.*dns=([^ ]+).*/\1/' <<< "$ready")
loadgen=("${prio[@]}" "$bin/ddns-loadgen" --http "$http" --dns "$dns" --devices "$N"
  --key-file "$ddnsd_dir/data/keys/demo.key" --propagation-sample 0 --quiet)
"${loadgen[@]}" --scenario surge --surge-window 1s --poll-interval 3600s --duration 1s \
  --timeout 120s --connections 256 --verify none > "$work/register.out" 2>&1 \
  || { cat "$work/register.out" >&2; exit 1; }
grep -q "errors 0" "$work/register.out" || { cat "$work/register.out" >&2; exit 1; }
before=$(cpu_secs "$ddnsd_pid")
"${loadgen[@]}" --registered --scenario updates --duration "${DUR}s" --connections "$CONNS" \
  --verify 10000 --server-pid "$ddnsd_pid" --json "$work/loadgen.json" > "$work/loadgen.out" 2>&1 \
  || { cat "$work/loadgen.out" >&2; exit 1; }
after=$(cpu_secs "$ddnsd_pid")
python3 - "$work/loadgen.json" "$(echo "$after - $before" | bc)" >> "$work/results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
elapsed = r["elapsed_secs"]
updates = r["replies"].get("update", {})
ok = updates.get("09", 0)
codes = " ".join(f"{code} {n}" for code, n in sorted(updates.items()))
p50 = r["kinds"].get("update", {}).get("latency", {}).get("p50_us", 0) / 1000
print(f"ddnsd {ok / elapsed:.1f} {p50} {sys.argv[2]} {codes}")
PY

echo
printf '%-6s %14s %12s %10s  %s\n' server "updates/s" "latency ms" "cpu s" "reply codes"
while read -r name rate latency cpu codes; do
  printf '%-6s %14.0f %12s %10s  %s\n' "$name" "$rate" "$latency" "$cpu" "$codes"
done < "$work/results"
python3 - "$work/results" <<'PY'
import sys
rates = {line.split()[0]: float(line.split()[1]) for line in open(sys.argv[1])}
best = max(rates["Knot"], rates["BIND"])
peer = "Knot" if rates["Knot"] >= rates["BIND"] else "BIND"
print(f"ddnsd/Knot {rates['ddnsd'] / rates['Knot']:.2f}x; ddnsd/BIND {rates['ddnsd'] / rates['BIND']:.2f}x; "
      f"ddnsd/{peer} (the faster) {rates['ddnsd'] / best:.2f}x (target 20x)")
PY
