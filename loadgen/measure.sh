#!/usr/bin/env bash
# The fleet measurements of issue 5, against a release ddnsd on this machine (loopback only).
#
#   bash loadgen/measure.sh [steady30k] [churn30k] [surge1m] [fleet1m]   (default: all four)
#   bash loadgen/measure.sh dvr      # device API updates beside DVR updates, one server (below)
#   bash loadgen/measure.sh dyndns2  # the same, with dyndns2 updates of the same hosts beside them
#   bash loadgen/measure.sh realistic  # surge1m, fleet1m, churn30k as devices connect, beside
#                                      # the keep-alive figures (below)
#   bash loadgen/measure.sh quic     # the QUIC device channel beside ipdetect polling (below)
#
# steady30k, churn30k, surge1m and fleet1m run as they were first measured: keep-alive
# connections from one address (--keep-alive --single-source) against a server whose
# per-source quota is raised. `realistic` runs each of surge1m, fleet1m and churn30k twice
# against the same build: as devices in the field connect (the loadgen's default: a new
# connection per request, each device from its own 127/8 address, no myip) against the
# server's DEFAULT flood quotas, and the old way; then prints one table of both. DEVICES
# (default 1000000) sizes the surge and the fleet, FLEET_SECS (default 180) the fleet run;
# MODES="own single old" adds a third way between them (a connection per request, all from
# 127.0.0.1: the cost of the connections without the sources). ~12 minutes with two modes.
# It also records, per run, the server's peak RSS (VmHWM) and open file descriptors (sampled
# every second), and this network namespace's listen-queue overflows, TIME_WAIT sockets and
# TIME_WAIT bucket overflows (/proc/net/netstat, /proc/net/sockstat); and raises `ulimit -n` to
# its hard limit for the server and the loadgen. Each loadgen run is bounded by `timeout`
# (LIMIT seconds, default 900).
#
# Each run writes <name>.txt (the report), <name>.json and <name>.svg to $OUT (default
# target/loadgen-results). surge1m and fleet1m share one server: the surge registers the 1M
# devices that fleet1m then polls (--registered, same --seed). The server's data dir is on disk
# ($WORK, default under /var/tmp), so every acknowledged write is really fsync'd; the server
# allows 911-free traffic from 127.0.0.1 but keeps its default per-device quota.
#
# FLEET_ARGS adds flags to fleet1m's loadgen (e.g. "--threads 1 --connections 256").
#
# dvr: the closed-loop `updates` scenario (device API, `update.aspx` → 09) and the `dvr`
# scenario (`/dvr/update` → ACT) against one server, the same build, quotas and fleet size,
# ROUNDS times each (default 2, alternating which goes first), DUR seconds each (default 20),
# CONNS connections (default 256), over HOSTS devices and as many DVR hosts (default 2000).
# Untimed first: the devices register (a 1 s surge of adds), the loadgen creates the hosts
# through the server's admin socket (one argon2 hash each, ~50 ms of a core) and sends each
# one update (its one argon2 check). Per-host and per-device writes and password guesses get
# quotas that never refuse here. Prints both rates, p99s and the ratio.
#
# dyndns2: the same, with a third scenario, `dyndns2` (`/nic/update` with Basic auth, the same
# hosts and passwords → good), in each round (odd rounds updates, dvr, dyndns2; even rounds
# the reverse). Prints the three rates, p50s, p99s, errors and dyndns2/updates, dyndns2/dvr.
# Every dyndns2 update carries a new address, so no host nears the server's `nochg` abuse mark
# (ingest.nochg_abuse_threshold), which keeps its default.
#
# quic: one server with the QUIC device channel on (`quic_listen` and `[tls]`, a throwaway CA
# and certificate for `localhost` made with openssl in $WORK), its default flood quotas except
# the per-device write quota (the movers' rebinds are writes: raised), and one `--scenario
# quic` run (loadgen/README.md): N devices (default 10000) and MOVERS (100) more register over
# HTTP; after BASELINE seconds of the server alone (20), the N devices poll ipdetect every
# POLL_INTERVAL seconds (300: N/300 requests/s), a connection per poll from their own
# addresses, for POLL_SECS (60); then they connect over QUIC, RAMP a second (300), from
# ENDPOINTS client sockets (default 0: one per 100 devices, which the default per-source
# quota admits at once), and idle for IDLE_SECS (60); then each mover rebinds ROUNDS times
# (10), every REBIND_EVERY seconds (4), and each move is followed to DNS (PROBE_TIMEOUT, 15 s). The server admits HANDSHAKES QUIC handshakes a second (1000) and at most N + MOVERS +
# 1000 connections. Prints the two fleets side by side with ratios; files quic-N.* in $OUT.
# MAX_RSS_MIB (8192) stops the loadgen if its own RSS passes it; LIMIT (1800 s) bounds the run.
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
# The server's own defaults, flood quotas included (`realistic`).
cat >"$work/ddnsd-default-quotas.toml" <<'EOF'
metrics_listen = "127.0.0.1:0"
EOF
server_config="$work/ddnsd.toml"
# The old runs' connections: few, kept alive, from one address.
old_way=(--keep-alive --single-source)

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
server_env=()  # VAR=value for the next start_server
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
    RUST_LOG=warn,ddnsd=info "${prio[@]}" env "${server_env[@]}" "$bin/ddnsd" serve \
        --config "$server_config" --data-dir "$data" \
        --http-listen 127.0.0.1:0 --dns-listen 127.0.0.1:0 --portal-listen 127.0.0.1:0 2>"$log" &
    server_pid=$!
    for _ in $(seq 1 600); do
        if grep -q 'ddnsd ready' "$log"; then break; fi
        sleep 0.1
    done
    local ready
    ready=$(grep -o 'ddnsd ready:.*' "$log" | head -1)
    # One listener's address from the ready line (`https=`, `quic=` come between when on).
    ready_field() { grep -o " $1=[^ ]*" <<<"$ready" | head -1 | sed "s/^ $1=//"; }
    http=$(ready_field http)
    dns=$(ready_field dns)
    quic=$(ready_field quic)
    metrics=$(grep -o 'metrics=Some([^)]*)' "$log" | head -1 | sed 's/metrics=Some(\(.*\))/\1/')
    key_file="$data/keys/demo.key"
    data_dir=$data
    echo "== server $1: pid $server_pid http $http dns $dns${quic:+ quic $quic} data $data config $server_config"
    echo "   $(grep 'Max open files' "/proc/$server_pid/limits")"
}

# A TcpExt counter of this network namespace.
tcpext() {
    awk -v key="$1" '/^TcpExt:/ {
        if (!names) { for (i = 1; i <= NF; i++) name[i] = $i; names = 1 }
        else { for (i = 1; i <= NF; i++) if (name[i] == key) print $i }
    }' /proc/net/netstat
}
time_wait() { awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "tw") print $(i + 1) }' /proc/net/sockstat; }

limit=()       # e.g. (timeout 900): bounds each loadgen run
keep_going=""  # non-empty: a failing loadgen run (verify mismatch: exit 2) does not stop the script

# loadgen NAME ARGS...: runs and keeps the report.
loadgen() {
    local name=$1; shift
    local cmd=("$bin/ddns-loadgen" --http "$http" --dns "$dns" --key-file "$key_file"
        --server-pid "$server_pid" --json "$out/$name.json" --plot "$out/$name.svg" "$@")
    echo "== $name: ${cmd[*]}"
    echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    local overflows_was drops_was tw_overflow_was fds_pid rc=0
    overflows_was=$(tcpext ListenOverflows)
    drops_was=$(tcpext ListenDrops)
    tw_overflow_was=$(tcpext TCPTimeWaitOverflow)
    # The server's open descriptors, every second (at most an hour of samples).
    (for _ in $(seq 1 3600); do
        ls "/proc/$server_pid/fd" 2>/dev/null | wc -l
        sleep 1
    done >"$out/$name.fds") &
    fds_pid=$!
    "${prio[@]}" "${limit[@]}" "${cmd[@]}" | tee "$out/$name.txt" || rc=$?
    kill "$fds_pid" 2>/dev/null || true
    wait "$fds_pid" 2>/dev/null || true
    echo "   server RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$server_pid/status")"
    {
        echo "exit=$rc"
        echo "rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")"
        echo "hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")"
        echo "fds_max=$(sort -n "$out/$name.fds" | tail -1)"
        echo "listen_overflows=$(($(tcpext ListenOverflows) - overflows_was))"
        echo "listen_drops=$(($(tcpext ListenDrops) - drops_was))"
        echo "tw_overflows=$(($(tcpext TCPTimeWaitOverflow) - tw_overflow_was))"
        echo "time_wait=$(time_wait)"
        # Which side holds them: the server's (its port is the local one) or the loadgen's.
        echo "time_wait_server=$(ss -Htan state time-wait "( sport = :${http##*:} )" | wc -l)"
    } >"$out/$name.sys"
    echo "   $(paste -sd' ' "$out/$name.sys")"
    if [ "$rc" -ne 0 ]; then
        echo "   loadgen exited $rc"
        [ -n "$keep_going" ] || exit "$rc"
    fi
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
            --threads 1 "${old_way[@]}"
        ;;
    churn30k)
        start_server 30k-churn
        loadgen churn30k --devices 30000 --scenario churn --churn 0.05 --reboot 0.01 \
            --poll-interval 300s --speedup 60 --duration 60s --verify all --threads 1 \
            "${old_way[@]}"
        ;;
    surge1m)
        start_server 1m
        # Only the surge is scheduled (polls would start 60 s after each add); the drain gets
        # --timeout to send and finish whatever the server has not caught up with.
        loadgen surge1m --devices 1000000 --scenario surge --surge-window 60s \
            --poll-interval 60s --duration 60s --timeout 60s --connections 256 --verify all \
            --threads 1 "${old_way[@]}"
        ;;
    fleet1m)
        # After surge1m on the same server (run both: `measure.sh surge1m fleet1m`).
        [ -n "$server_pid" ] || { echo "fleet1m follows surge1m"; exit 1; }
        # shellcheck disable=SC2086 # FLEET_ARGS: extra flags, word-split on purpose.
        loadgen fleet1m --devices 1000000 --registered --poll-interval 60s --duration 180s \
            --threads 2 --connections 512 --verify 100000 "${old_way[@]}" ${FLEET_ARGS:-}
        ;;
    realistic)
        devices=${DEVICES:-1000000} fleet_secs=${FLEET_SECS:-180}
        limit=(timeout -s INT "${LIMIT:-900}")
        keep_going=1
        # Descriptors: up to --connections sockets (512) in the loadgen and as many in the
        # server, plus the server's RocksDB files; raised to the hard limit (20000 here).
        ulimit -n "$(ulimit -Hn)"
        echo "== ulimit -n $(ulimit -n) (server and loadgen); ip_local_port_range" \
            "$(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range)," \
            "tcp_tw_reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse)," \
            "tcp_max_tw_buckets $(cat /proc/sys/net/ipv4/tcp_max_tw_buckets)," \
            "somaxconn $(cat /proc/sys/net/core/somaxconn)"
        # own: as devices connect (the loadgen's defaults for these scenarios, spelled out),
        # against the server's default quotas; old: as the runs above; single (only with
        # MODES="own single old"): a connection per request, all from 127.0.0.1, quotas raised.
        read -r -a modes <<<"${MODES:-own old}"
        use_mode() {
            case "$1" in
            own)
                server_config="$work/ddnsd-default-quotas.toml"
                flags=(--connection-per-request --per-device-source)
                ;;
            single)
                server_config="$work/ddnsd.toml"
                flags=(--connection-per-request --single-source)
                ;;
            old) server_config="$work/ddnsd.toml" flags=("${old_way[@]}") ;;
            *)
                echo "MODES: own, single, old"
                exit 1
                ;;
            esac
        }
        for mode in "${modes[@]}"; do
            use_mode $mode
            start_server "realistic-$devices-$mode"
            loadgen "realistic-surge-$mode" --devices "$devices" --scenario surge \
                --surge-window 60s --poll-interval 60s --duration 60s --timeout 60s \
                --connections 256 --verify all --threads 1 "${flags[@]}"
            loadgen "realistic-fleet-$mode" --devices "$devices" --registered \
                --poll-interval 60s --duration "${fleet_secs}s" --threads 2 --connections 512 \
                --verify 100000 "${flags[@]}"
        done
        for mode in "${modes[@]}"; do
            use_mode $mode
            start_server "realistic-30k-churn-$mode"
            loadgen "realistic-churn-$mode" --devices 30000 --scenario churn --churn 0.05 \
                --reboot 0.01 --poll-interval 300s --speedup 60 --duration 60s --verify all \
                --threads 1 "${flags[@]}"
        done
        stop_server
        server_config="$work/ddnsd.toml" limit=() keep_going=""
        python3 - "$out" "$devices" "${modes[@]}" <<'PY'
import json, os, sys
out, devices, chosen = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
label = f"{devices // 1_000_000}M" if devices % 1_000_000 == 0 else f"{devices // 1000}k"
runs = [("surge", f"{label} surge in 60 s"), ("fleet", f"{label}, one poll/min"),
        ("churn", "30k churn")]
modes = [(mode, how) for mode, how in [
    ("own", "per request, own source, default quotas"),
    ("single", "per request, one source, raised quotas"),
    ("old", "keep-alive, one source, raised quotas")] if mode in chosen]
def ms(us):
    return f"{us / 1000:.2f}"
def count(n):
    return f"{n:,}" if isinstance(n, int) else "–"
print(f"\n== realistic ({out}): a connection per request from each device's own address "
      "against the default quotas, beside keep-alive from one address")
heads = ["run", "connections", "req/s", "p50 ms", "p99 ms", "p99 after boot ms",
         "errors (911 / connect / timeout / io / unexpected)", "propagation p50 / p99 ms",
         "verify matched / checked", "TCP connections", "server µs/req",
         "CPU cores loadgen / server / others", "server peak RSS", "server fds max",
         "listen overflows", "TIME_WAIT at end, the server's (overflows)"]
print("| " + " | ".join(heads) + " |")
print("|" + " --- |" * len(heads))
for run, title in runs:
    for mode, how in modes:
        name = f"realistic-{run}-{mode}"
        try:
            r = json.load(open(os.path.join(out, name + ".json")))
            facts = dict(line.strip().split("=", 1)
                         for line in open(os.path.join(out, name + ".sys")) if "=" in line)
        except (OSError, ValueError):
            print(f"| {title} | {how} | (no report)" + " |" * (len(heads) - 2))
            continue
        e, c, p = r["errors"], r["cpu"], r["propagation"]["latency"]
        v = r.get("verify") or {}
        cores = [c.get(k) or 0.0 for k in ("loadgen_cores", "server_cores", "machine_cores")]
        per_req = (c.get("server_secs") or 0) / max(r["requests"], 1) * 1e6
        note = "" if facts.get("exit") == "0" else f" (loadgen exit {facts.get('exit')})"
        cells = [
            title, how, f"{r['requests_per_sec']:,.0f}", ms(r["latency"]["p50_us"]),
            ms(r["latency"]["p99_us"]),
            ms(r["latency_after_boot"]["p99_us"]) if r["latency_after_boot"]["count"] else "–",
            f"{e['total']} ({e['flood']} / {e['connect']} / {e['timeout']} / {e['io']} / "
            f"{e['unexpected']}){note}",
            f"{ms(p['p50_us'])} / {ms(p['p99_us'])}" if p["count"] else "–",
            f"{count(v.get('matched'))} / {count(v.get('checked'))}",
            f"{r['schedule']['connections_opened']:,}", f"{per_req:.0f}",
            f"{cores[0]:.2f} / {cores[1]:.2f} / {cores[2] - cores[0] - cores[1]:.2f}",
            f"{int(facts.get('hwm_kb') or 0) / 1024:,.0f} MB", facts.get("fds_max", "–"),
            facts.get("listen_overflows", "–"),
            f"{int(facts.get('time_wait') or 0):,}, server's {int(facts.get('time_wait_server') or 0):,} "
            f"({facts.get('tw_overflows', '–')})",
        ]
        print("| " + " | ".join(cells) + " |")
PY
        ;;
    dvr | dyndns2)
        hosts=${HOSTS:-2000} dur=${DUR:-20} conns=${CONNS:-256} rounds=${ROUNDS:-2}
        # The scenarios side by side: the last is the one measured against the others.
        scenarios=(updates dvr)
        [ "$run" = dvr ] || scenarios+=(dyndns2)
        # Writes are charged per device (vendor + MAC) and per host (its name), and each
        # host's first password check to the host and to the source: none may refuse here.
        server_env=(
            DDNSD_INGEST__FLOOD__DEVICE_UPDATES_PER_MINUTE=1000000
            DDNSD_INGEST__FLOOD__DEVICE_BURST=100000
            DDNSD_INGEST__FLOOD__PASSWORD_GUESSES_PER_HOST_PER_MINUTE=1000000
            DDNSD_INGEST__FLOOD__PASSWORD_GUESSES_PER_SOURCE_PER_MINUTE=1000000000
        )
        start_server "$run"
        server_env=()
        same=(--devices "$hosts" --propagation-sample 0)
        loadgen "$run-register" "${same[@]}" --scenario surge --surge-window 1s \
            --poll-interval 3600s --duration 1s --timeout 120s --connections 256 --verify none
        started=$(date +%s.%N)
        # The hosts are the same for dvr and dyndns2: provisioned (and their passwords checked
        # by argon2 once) here, through the DVR protocol; each later run's own first pass, in
        # its protocol, then finds them remembered.
        loadgen "$run-provision" "${same[@]}" --scenario dvr --provision \
            --admin-socket "$data_dir/admin.sock" --duration 1s --connections 8 --verify none
        echo "   provisioning and first updates: $(echo "$(date +%s.%N) - $started" | bc) s"
        timed=(--duration "${dur}s" --connections "$conns" --verify 1000)
        files=()
        for round in $(seq 1 "$rounds"); do
            order=("${scenarios[@]}")
            if [ $((round % 2)) -eq 0 ]; then
                order=()
                for ((i = ${#scenarios[@]} - 1; i >= 0; i--)); do order+=("${scenarios[i]}"); done
            fi
            for scenario in "${order[@]}"; do
                case $scenario in
                updates) extra=(--registered) ;;
                *) extra=() ;;
                esac
                loadgen "$run-$scenario-$round" "${same[@]}" "${timed[@]}" --scenario "$scenario" \
                    "${extra[@]}"
            done
            # In the table's order, whatever order they ran in.
            for scenario in "${scenarios[@]}"; do files+=("$out/$run-$scenario-$round.json"); done
        done
        python3 - "$hosts" "$conns" "$dur" "${#scenarios[@]}" "${scenarios[@]}" "${files[@]}" <<'PY'
import json, sys
hosts, conns, dur, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
names, files = sys.argv[5:5 + n], sys.argv[5 + n:]
# Per scenario: the kind its requests are counted under, and the reply that acknowledges a
# write (a dyndns2 `nochg` changed nothing, like an `08`: not counted in the rate).
kinds = {"updates": ("update", "09"), "dvr": ("dvr", "ACT"), "dyndns2": ("dyndns2", "good")}
def figures(path, scenario):
    kind, ok = kinds[scenario]
    r = json.load(open(path))
    lat = r["kinds"][kind]["latency"]
    rate = r["replies"].get(kind, {}).get(ok, 0) / r["elapsed_secs"]
    return rate, lat["p50_us"] / 1000, lat["p99_us"] / 1000, r["errors"]["total"]
last, others = names[-1], names[:-1]
print(f"\n== {' beside '.join(names)}: {hosts} devices and {hosts} hosts, "
      f"{conns} connections, {dur} s each, one server; writes/s (acknowledged: "
      + ", ".join(f"{s} {kinds[s][1]}" for s in names) + ")")
head = f"{'round':>5}"
for s in names:
    head += f" {s + '/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'err':>4}"
for o in others:
    head += f" {last + '/' + o:>16}"
print(head)
for i in range(0, len(files), n):
    row = [figures(files[i + j], s) for j, s in enumerate(names)]
    line = f"{i // n + 1:>5}"
    for rate, p50, p99, err in row:
        line += f" {rate:>10,.0f} {p50:>7.2f} {p99:>7.2f} {err:>4}"
    for j in range(len(others)):
        line += f" {row[-1][0] / row[j][0] if row[j][0] else float('nan'):>15.2f}x"
    print(line)
PY
        ;;
    quic)
        n=${N:-10000} movers=${MOVERS:-100}
        limit=(timeout -s INT "${LIMIT:-1800}")
        # A UDP socket per mover in the loadgen: raised as for `realistic`.
        ulimit -n "$(ulimit -Hn)"
        pki="$work/pki"
        mkdir -p "$pki"
        ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        (
            cd "$pki"
            openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 \
                -subj /CN=measure-CA 2>/dev/null
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' \
                >server.ext
            openssl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=localhost \
                2>/dev/null
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 1 \
                -extfile server.ext -out server.pem 2>/dev/null
        )
        cat >"$work/ddnsd-quic.toml" <<EOF
metrics_listen = "127.0.0.1:0"
https_listen = "127.0.0.1:0"
quic_listen = "127.0.0.1:0"

[tls]
cert_file = "$pki/server.pem"
key_file = "$pki/server.key"

[quic]
max_connections = $((n + movers + 1000))
handshakes_per_second = ${HANDSHAKES:-1000}
EOF
        server_config="$work/ddnsd-quic.toml"
        # A mover's rebinds are writes charged to it: ROUNDS every REBIND_EVERY s is past the
        # default 10 a minute. Everything else keeps the server's default quotas.
        server_env=(
            DDNSD_INGEST__FLOOD__DEVICE_UPDATES_PER_MINUTE=1000000
            DDNSD_INGEST__FLOOD__DEVICE_BURST=100000
        )
        start_server "quic-$n"
        server_env=()
        [ -n "$quic" ] || { echo "no quic= in the server's ready line"; exit 1; }
        echo "   $(grep MemAvailable /proc/meminfo)"
        loadgen "quic-$n" --scenario quic --devices "$n" --quic "$quic" \
            --quic-ca "$pki/ca.pem" --quic-endpoints "${ENDPOINTS:-0}" --ramp "${RAMP:-300}" \
            --baseline "${BASELINE:-20}s" --poll-interval "${POLL_INTERVAL:-300}s" \
            --poll-window "${POLL_SECS:-60}s" --idle "${IDLE_SECS:-60}s" --movers "$movers" \
            --rebinds "${ROUNDS:-10}" --rebind-every "${REBIND_EVERY:-4}s" \
            --probe-timeout "${PROBE_TIMEOUT:-15}s" --max-rss-mib "${MAX_RSS_MIB:-8192}" \
            --threads 2
        echo "   server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$server_pid/status")"
        stop_server
        server_config="$work/ddnsd.toml" limit=()
        ;;
    *)
        echo "unknown run $run"
        exit 1
        ;;
    esac
done
