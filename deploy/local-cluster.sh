#!/usr/bin/env bash
# A local ddnsd cluster on loopback: one Kafka-protocol broker (tansu), two ingest nodes and two
# dns nodes, all sharing one topic. For trying the scale-out setup and for the cluster tests.
#
#   local-cluster.sh start DIR      start everything with its state under DIR (which must not hold
#                                   a running cluster), wait until every node is ready, print
#                                     broker kafka=ADDR
#                                     ingest1 http=ADDR   ingest2 http=ADDR
#                                     dns1 dns=ADDR       dns2 dns=ADDR
#                                     cipher --config DIR/cluster.toml --vendor demo
#                                   (`ddnsd cipher … --mac MAC` makes a device token)
#   local-cluster.sh stop DIR       stop exactly what start started (by the pids it recorded)
#   local-cluster.sh kill DIR NAME  SIGKILL one node (ingest1, dns2, …) or the broker
#   local-cluster.sh restart DIR NAME
#                                   start a stopped or killed node again (same data dir, same
#                                   broker port), wait until ready, print its line
#
# DDNSD_BIN picks the binary (default: a release build, made if missing); DDNSD_CLUSTER_PARTITIONS
# the topic's partitions (default 1). Variables the nodes read (DDNSD_INGEST__FLOOD__…, RUST_LOG)
# pass through to every node. Each node's admin socket is DIR/NAME/admin.sock (`ddnsd user …
# --config DIR/cluster.toml --data-dir DIR/NAME/`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
NODES=(ingest1 ingest2 dns1 dns2)
TOPIC=ddnsd-events
PARTITIONS=${DDNSD_CLUSTER_PARTITIONS:-1}

die() {
  echo "local-cluster.sh: $*" >&2
  exit 1
}

ddnsd_bin() {
  if [ -n "${DDNSD_BIN:-}" ]; then
    echo "$DDNSD_BIN"
    return
  fi
  # shellcheck source=../scripts/env.sh
  source "$root/scripts/env.sh"
  (cd "$root" && cargo build --release --locked -p ddnsd >&2)
  echo "$CARGO_TARGET_DIR/release/ddnsd"
}

# A loopback port nothing listens on (the broker needs a fixed one: every node's config names it),
# below the kernel's ephemeral range, where no node's or client's own socket can take it.
free_port() {
  local port low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 100); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

role_of() {
  case "$1" in
    ingest*) echo ingest ;;
    dns*) echo dns ;;
    *) die "no node named $1 (nodes: ${NODES[*]}, broker)" ;;
  esac
}

# The node's pid if it is running (and is the process we started: its command line names DIR).
running_pid() {
  local dir=$1 name=$2 pidfile="$1/$2.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/" || return 1
  echo "$pid"
}

write_config() {
  local dir=$1 port=$2 secret
  secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  cat >"$dir/cluster.toml" <<TOML
# Written by deploy/local-cluster.sh: what every node of this cluster shares.
log = "kafka"
ttl_secs = 60

[kafka]
brokers = "127.0.0.1:$port"
topic = "$TOPIC"
partitions = $PARTITIONS
# tansu answers a waiting fetch only when this runs out (log/README.md): keep it short locally.
fetch_wait_max_ms = 20

# Every ingest node must open the same tokens: the key is in the file, not in a node's data dir.
[[vendors]]
name = "demo"
zone = "dyn.example"
fields = ["port", "fw", "hw"]
keys = [{ id = 1, secret_hex = "$secret" }]
TOML
}

# Starts node NAME in the background and waits for its ready line; prints `NAME kind=ADDR`.
start_node() {
  local dir=$1 name=$2 bin=$3 role
  role=$(role_of "$name")
  running_pid "$dir" "$name" >/dev/null && die "$name is already running"
  mkdir -p "$dir/$name"
  # Keep the previous run's log beside (a killed node's last words), start a fresh one.
  [ -f "$dir/$name.log" ] && mv "$dir/$name.log" "$dir/$name.log.1"
  (
    export DDNSD_KAFKA__CLIENT_ID="ddnsd-$name"
    exec nohup "$bin" serve --config "$dir/cluster.toml" --data-dir "$dir/$name/" --role "$role" \
      --http-listen 127.0.0.1:0 --dns-listen 127.0.0.1:0 --portal-listen 127.0.0.1:0 >>"$dir/$name.log" 2>&1 </dev/null
  ) &
  echo $! >"$dir/$name.pid"
}

wait_ready() {
  local dir=$1 name=$2 role line
  role=$(role_of "$name")
  for _ in $(seq 1200); do
    line=$(grep -m1 "ddnsd ready:" "$dir/$name.log" || true)
    if [ -n "$line" ]; then
      local key=http
      [ "$role" = dns ] && key=dns
      local addr
      addr=$(grep -o "$key=[^ ]*" <<<"$line" | head -1)
      [ -n "$addr" ] || die "$name: no $key= in its ready line: $line"
      echo "$name $addr"
      return
    fi
    running_pid "$dir" "$name" >/dev/null || { tail -20 "$dir/$name.log" >&2; die "$name exited at start (log: $dir/$name.log)"; }
    sleep 0.1
  done
  die "$name did not get ready within 120 s (log: $dir/$name.log)"
}

start() {
  local dir=$1 bin port
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  for name in "${NODES[@]}"; do
    running_pid "$dir" "$name" >/dev/null && die "$dir already runs a cluster: stop it first"
  done
  bin=$(ddnsd_bin)
  [ -x "$bin" ] || die "no ddnsd binary at $bin"
  echo "$bin" >"$dir/ddnsd.bin"

  # Whatever fails from here leaves nothing running.
  # (Expanded now: `dir` is this function's, gone when the trap runs.)
  # shellcheck disable=SC2064
  trap "stop '$dir' >/dev/null 2>&1 || true" EXIT
  if [ -f "$dir/cluster.toml" ]; then
    # Started before: same broker data, port, topic, key and node data dirs.
    port=$(cat "$dir/broker/port")
    bash "$root/scripts/tansu.sh" start "$dir/broker" "$port" >/dev/null
  else
    # Another process may take the port between the check and the broker's bind: try anew.
    for attempt in 1 2 3; do
      port=$(free_port)
      bash "$root/scripts/tansu.sh" start "$dir/broker" "$port" >/dev/null && break
      [ "$attempt" -lt 3 ] || die "the broker did not start (see $dir/broker/tansu.log)"
    done
    echo "$port" >"$dir/broker/port"
    bash "$root/scripts/tansu.sh" topic "$port" "$TOPIC" "$PARTITIONS" >"$dir/broker/topic.log" 2>&1 ||
      die "creating topic $TOPIC failed (see $dir/broker/topic.log)"
    write_config "$dir" "$port"
  fi

  for name in "${NODES[@]}"; do
    start_node "$dir" "$name" "$bin"
  done
  echo "broker kafka=127.0.0.1:$port"
  for name in "${NODES[@]}"; do
    wait_ready "$dir" "$name"
  done
  echo "cipher --config $dir/cluster.toml --vendor demo"
  trap - EXIT
}

stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  local dir=$1 pid
  [ -d "$dir" ] || die "no cluster in $dir"
  dir=$(cd "$dir" && pwd)
  for name in "${NODES[@]}"; do
    if pid=$(running_pid "$dir" "$name"); then
      stop_pid "$pid"
    fi
    rm -f "$dir/$name.pid"
  done
  if [ -f "$dir/broker/tansu.pid" ]; then
    bash "$root/scripts/tansu.sh" stop "$dir/broker"
  fi
}

kill_one() {
  local dir=$1 name=$2 pid
  dir=$(cd "$dir" && pwd)
  if [ "$name" = broker ]; then
    [ -f "$dir/broker/tansu.pid" ] || die "the broker is not running"
    kill -9 "$(cat "$dir/broker/tansu.pid")" 2>/dev/null || true
    rm -f "$dir/broker/tansu.pid"
    return
  fi
  role_of "$name" >/dev/null
  pid=$(running_pid "$dir" "$name") || die "$name is not running"
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$dir/$name.pid"
}

restart_one() {
  local dir=$1 name=$2
  dir=$(cd "$dir" && pwd)
  if [ "$name" = broker ]; then
    local port
    port=$(cat "$dir/broker/port")
    bash "$root/scripts/tansu.sh" start "$dir/broker" "$port" >/dev/null
    echo "broker kafka=127.0.0.1:$port"
    return
  fi
  start_node "$dir" "$name" "$(cat "$dir/ddnsd.bin")"
  wait_ready "$dir" "$name"
}

case "${1:-}" in
  start) [ $# -eq 2 ] || die "usage: local-cluster.sh start DIR"; start "$2" ;;
  stop) [ $# -eq 2 ] || die "usage: local-cluster.sh stop DIR"; stop "$2" ;;
  kill) [ $# -eq 3 ] || die "usage: local-cluster.sh kill DIR NAME"; kill_one "$2" "$3" ;;
  restart) [ $# -eq 3 ] || die "usage: local-cluster.sh restart DIR NAME"; restart_one "$2" "$3" ;;
  *) die "usage: local-cluster.sh start DIR | stop DIR | kill DIR NAME | restart DIR NAME" ;;
esac
