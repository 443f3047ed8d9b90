#!/usr/bin/env bash
# ddnsd's DNS against NSD and Knot: the same zone of N A names under dyn.example, served by each
# in turn on a free loopback port, loaded with dnsperf for DUR seconds with the same query mix
# (90% existing A, 5% AAAA at existing names = NODATA, 5% nonexistent = NXDOMAIN, shuffled).
#
#   bash bench/compare-dns.sh                 # N=1000000 DUR=20
#   N=100000 DUR=5 bash bench/compare-dns.sh  # a quick look
#
# Per server it prints queries/s, mean latency, answers lost, server CPU-seconds per 100k answers
# (utime+stime of the server's whole process tree, before/after the run, over answers completed:
# dnsperf shares the cores, so this is the fairer figure), and memory after the run: VmRSS of the
# server's largest process and PSS summed over its process tree (NSD forks server processes that
# share the zone copy-on-write, so only PSS adds up; for ddnsd and Knot, one process each, the two
# agree). ddnsd folds the imported events into its snapshot on its first start, which is the one
# measured; a line after the table gives its memory once restarted from that snapshot. The last
# line is
#   ddnsd/NSD qps R1 cpu R2 rss R3; ddnsd/Knot qps R4 cpu R5 rss R6
# where rss is the PSS ratio. qps above 1 and cpu and rss below 1 favour ddnsd.
#
# Knobs (environment): N, DUR, WORKERS (UDP worker threads/processes of every server; default the
# number of cores), CLIENTS, OUTSTANDING and THREADS (dnsperf -c, -q, -T), KEEP=1 to keep the
# work directory. Everything runs on 127.0.0.1, each phase is bounded by a timeout, and every
# process the script starts is stopped when it ends, fails or is interrupted. It installs nsd,
# knot and dnsperf from Debian if missing (apt-get), and changes no system service.
set -euo pipefail

N="${N:-1000000}"
DUR="${DUR:-20}"
WORKERS="${WORKERS:-$(nproc)}"
# dnsperf: two threads (one thread tops out near 140k queries/s on this kind of machine, and all
# three servers then tie at that cap), 16 sockets so SO_REUSEPORT spreads clients over every
# server worker, 500 queries in flight so no server waits on the client.
THREADS="${THREADS:-2}"
CLIENTS="${CLIENTS:-16}"
OUTSTANDING="${OUTSTANDING:-500}"
QUERIES="${QUERIES:-1000000}"
READY_TIMEOUT="${READY_TIMEOUT:-900}"
ZONE=dyn.example

cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
export PATH="$PATH:/usr/sbin:/sbin"

log() { printf '%s compare-dns: %s\n' "$(date +%T)" "$*" >&2; }
# Other work on the machine takes cores from the server and dnsperf alike: say so in the report.
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# --- peers from Debian, only if missing ------------------------------------------------------
missing=()
command -v nsd >/dev/null || missing+=(nsd)
command -v knotd >/dev/null || missing+=(knot)
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    sudo=""
    [[ $EUID -ne 0 ]] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- ddnsd in release ------------------------------------------------------------------------
log "building ddnsd (release)"
cargo build --release --quiet -p ddnsd --bin ddnsd
DDNSD="$CARGO_TARGET_DIR/release/ddnsd"

# --- work directory, and cleanup of everything started ---------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/compare-dns.XXXXXX")"
STARTED=()
# Stops a server and everything it forked: TERM to the process started (NSD's restarts servers
# that die alone), then KILL whatever of its tree is left after 5 s.
stop_tree() {
    local pids
    pids=$(tree_pids "$1")
    [[ -n "$pids" ]] || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 50); do
        local alive=0 pid
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
}
# Runs a command in the background and waits for it: bash runs a trap only between commands, so
# a signal now stops the script at once rather than after the command.
CURRENT=""
run() {
    "$@" &
    CURRENT=$!
    wait "$CURRENT"
    CURRENT=""
}
cleanup() {
    local pid
    [[ -n "$CURRENT" ]] && stop_tree "$CURRENT"
    for pid in "${STARTED[@]}"; do stop_tree "$pid"; done
    if [[ "${KEEP:-0}" == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tree_pids() {
    local pid=$1 child
    [[ -d /proc/$pid ]] || return 0
    echo "$pid"
    for child in $(pgrep -P "$pid" || true); do tree_pids "$child"; done
}

# utime+stime of a process tree, in clock ticks.
cpu_ticks() {
    local total=0 pid fields
    for pid in $(tree_pids "$1"); do
        fields=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$((total + $(awk '{print $12 + $13}' <<<"$fields")))
    done
    echo "$total"
}

# Largest VmRSS in the tree and the tree's summed PSS, in kB.
memory_kb() {
    local rss=0 pss=0 pid value
    for pid in $(tree_pids "$1"); do
        value=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        ((value > rss)) && rss=$value
        value=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
        pss=$((pss + ${value:-0}))
    done
    echo "$rss $pss"
}

free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 40000))
        if [[ -z "$(ss -Hlnut "( sport = :$port )" 2>/dev/null)" ]]; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

# --- zone and queries ------------------------------------------------------------------------
log "generating a zone of $N names and $QUERIES queries"
{
    # shellcheck disable=SC2016 # $ORIGIN and $TTL are zone-file directives
    printf '$ORIGIN %s.\n$TTL 60\n' "$ZONE"
    printf '@ 3600 IN SOA ns1.%s. hostmaster.%s. 1 3600 600 1209600 60\n' "$ZONE" "$ZONE"
    printf '@ 3600 IN NS ns1.%s.\n' "$ZONE"
    awk -v n="$N" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "dev%07d IN A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256
    }'
} >"$WORK/$ZONE.zone"
awk -v n="$N" -v q="$QUERIES" -v zone="$ZONE" 'BEGIN {
    srand(20260);
    for (i = 0; i < q; i++) {
        r = rand();
        if (r < 0.90)      printf "dev%07d.%s A\n", int(rand() * n), zone;
        else if (r < 0.95) printf "dev%07d.%s AAAA\n", int(rand() * n), zone;
        else               printf "nx%07d.%s A\n", int(rand() * n), zone;
    }
}' >"$WORK/queries"

# Waits until the server on $1 answers a name from the zone (it may still be loading).
wait_ready() {
    local port=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT))
    until [[ "$(dig @127.0.0.1 -p "$port" +short +time=1 +tries=1 dev0000000.$ZONE A 2>/dev/null)" == 10.0.0.0 ]]; do
        kill -0 "$pid" 2>/dev/null || { log "server exited while loading"; return 1; }
        ((SECONDS < deadline)) || { log "server not ready after ${READY_TIMEOUT}s"; return 1; }
        sleep 0.5
    done
}

declare -A QPS LATENCY LOST CPU RSS PSS

# Runs dnsperf against the server (tree) $2 on port $3, and records the figures under name $1.
measure() {
    local name=$1 pid=$2 port=$3 before after completed
    log "$name: warming up, then dnsperf for ${DUR}s"
    run timeout 60 dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries" -l 2 -c "$CLIENTS" \
        -q "$OUTSTANDING" -T "$THREADS" >/dev/null 2>&1 || true
    before=$(cpu_ticks "$pid")
    run timeout $((DUR + 60)) dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries" -l "$DUR" \
        -c "$CLIENTS" -q "$OUTSTANDING" -T "$THREADS" >"$WORK/dnsperf.$name" 2>&1
    after=$(cpu_ticks "$pid")
    completed=$(awk '/Queries completed:/ {print $3}' "$WORK/dnsperf.$name")
    QPS[$name]=$(awk '/Queries per second:/ {print $4}' "$WORK/dnsperf.$name")
    LATENCY[$name]=$(awk '/Average Latency/ {printf "%.0f", $4 * 1e6}' "$WORK/dnsperf.$name")
    LOST[$name]=$(awk '/Queries lost:/ {print $3}' "$WORK/dnsperf.$name")
    CPU[$name]=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v c="$completed" \
        'BEGIN {printf "%.3f", t / hz / c * 100000}')
    read -r "RSS[$name]" "PSS[$name]" < <(memory_kb "$pid")
    grep -E 'Response codes|Queries completed' "$WORK/dnsperf.$name" | sed "s/^ */    $name: /" >&2
}


# --- ddnsd -----------------------------------------------------------------------------------
port=$(free_port)
log "ddnsd: importing the zone"
run timeout "$READY_TIMEOUT" "$DDNSD" import "$WORK/$ZONE.zone" --data-dir "$WORK/ddnsd" \
    >"$WORK/ddnsd-import.log" 2>&1
RUST_LOG=warn DDNS_DNS_UDP_WORKERS="$WORKERS" "$DDNSD" serve --data-dir "$WORK/ddnsd" \
    --dns-listen "127.0.0.1:$port" --http-listen 127.0.0.1:0 --portal-listen 127.0.0.1:0 >"$WORK/ddnsd.log" 2>&1 &
pid=$!
STARTED+=("$pid")
wait_ready "$port" "$pid"
measure ddnsd "$pid" "$port"
stop_tree "$pid"

# The same server restarted from the snapshot its first start wrote: its memory without that
# start's replay of the imported events, whose freed memory glibc keeps in the arenas of the
# threads that folded them. Reported apart; the table and ratios are the first start's.
port=$(free_port)
log "ddnsd: restarting from its snapshot"
RUST_LOG=warn DDNS_DNS_UDP_WORKERS="$WORKERS" "$DDNSD" serve --data-dir "$WORK/ddnsd" \
    --dns-listen "127.0.0.1:$port" --http-listen 127.0.0.1:0 --portal-listen 127.0.0.1:0 >"$WORK/ddnsd-restart.log" 2>&1 &
pid=$!
STARTED+=("$pid")
wait_ready "$port" "$pid"
read -r RESTART_RSS RESTART_PSS < <(memory_kb "$pid")
stop_tree "$pid"

# --- NSD -------------------------------------------------------------------------------------
port=$(free_port)
mkdir -p "$WORK/nsd"
cat >"$WORK/nsd/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$port
    server-count: $WORKERS
    reuseport: yes
    username: ""
    chroot: ""
    database: ""
    zonesdir: "$WORK"
    pidfile: "$WORK/nsd/nsd.pid"
    xfrdfile: "$WORK/nsd/xfrd.state"
    zonelistfile: "$WORK/nsd/zone.list"
    logfile: "$WORK/nsd/nsd.log"
    do-ip6: no
    hide-version: yes
    # Debian's NSD limits responses to 200/s per client network (RRL), which would measure the
    # limiter; and adds the NS set to every positive answer unless told otherwise, which ddnsd
    # and Knot do not. Both off, so that the three do the same work.
    rrl-ratelimit: 0
    minimal-responses: yes
remote-control:
    control-enable: no
zone:
    name: $ZONE
    zonefile: "$WORK/$ZONE.zone"
EOF
log "NSD: loading the zone"
nsd -d -c "$WORK/nsd/nsd.conf" >"$WORK/nsd/stdout" 2>&1 &
pid=$!
STARTED+=("$pid")
wait_ready "$port" "$pid"
measure NSD "$pid" "$port"
stop_tree "$pid"

# --- Knot ------------------------------------------------------------------------------------
port=$(free_port)
mkdir -p "$WORK/knot"
cat >"$WORK/knot/knot.conf" <<EOF
server:
    rundir: "$WORK/knot"
    listen: 127.0.0.1@$port
    udp-workers: $WORKERS
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knot/db"
zone:
  - domain: $ZONE
    file: "$WORK/$ZONE.zone"
    journal-content: none
    zonefile-sync: -1
EOF
log "Knot: loading the zone"
knotd -c "$WORK/knot/knot.conf" >"$WORK/knot/stdout" 2>&1 &
pid=$!
STARTED+=("$pid")
wait_ready "$port" "$pid"
measure Knot "$pid" "$port"
stop_tree "$pid"

# --- report ----------------------------------------------------------------------------------
echo
echo "zone: $N A names; queries: 90% A, 5% AAAA (NODATA), 5% NXDOMAIN; dnsperf -c $CLIENTS -q $OUTSTANDING -T $THREADS -l $DUR; $WORKERS worker(s) per server; $(nproc) cores; load average $LOAD_BEFORE before, $(cut -d' ' -f1 /proc/loadavg) after"
printf '%-6s %10s %12s %8s %16s %10s %10s\n' server qps "latency µs" lost "cpu s/100k ans" "RSS MB" "PSS MB"
for name in ddnsd NSD Knot; do
    printf '%-6s %10.0f %12s %8s %16s %10.0f %10.0f\n' "$name" "${QPS[$name]}" "${LATENCY[$name]}" \
        "${LOST[$name]}" "${CPU[$name]}" "$((RSS[$name] / 1024))" "$((PSS[$name] / 1024))"
done
echo "ddnsd restarted from its snapshot (no replay): RSS $((RESTART_RSS / 1024)) MB, PSS $((RESTART_PSS / 1024)) MB"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "ddnsd/NSD qps $(ratio "${QPS[ddnsd]}" "${QPS[NSD]}") cpu $(ratio "${CPU[ddnsd]}" "${CPU[NSD]}") rss $(ratio "${PSS[ddnsd]}" "${PSS[NSD]}"); ddnsd/Knot qps $(ratio "${QPS[ddnsd]}" "${QPS[Knot]}") cpu $(ratio "${CPU[ddnsd]}" "${CPU[Knot]}") rss $(ratio "${PSS[ddnsd]}" "${PSS[Knot]}")"
