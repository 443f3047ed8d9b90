#!/usr/bin/env bash
# The tansu broker (a Kafka-protocol broker, a cargo package) that KafkaLog's tests run against.
#
#   tansu.sh install                    install it once, outside the clone (idempotent)
#   tansu.sh bin                        print the binary's path
#   tansu.sh start DIR PORT             start a broker on 127.0.0.1:PORT storing in DIR/tansu.db,
#                                       wait until it accepts connections, print its pid
#   tansu.sh topic PORT NAME PARTITIONS create a topic (the broker never auto-creates one)
#   tansu.sh stop DIR                   stop the broker started in DIR (SIGTERM, then SIGKILL)
#
# Installed into $DDNSD_TOOLS (default ~/.cache/ddnsd-tools): building it takes ~20 minutes on
# 2 cores, so a fresh clone (and CI) reuses it. Known traps (issue 4): its memory:// storage
# reports wrong high watermarks and keeps nothing, so DIR's SQLite file is always used; the
# sqlite:// path is relative to the working directory, so the broker runs from inside DIR.
source "$(dirname "$0")/env.sh"

TANSU_VERSION=0.6.0
tools="${DDNSD_TOOLS:-$HOME/.cache/ddnsd-tools}"
bin="$tools/bin/tansu"

die() {
  echo "tansu.sh: $*" >&2
  exit 1
}

installed() {
  [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"
}

install() {
  installed && return 0
  mkdir -p "$tools"
  # One install at a time: a second caller waits for the first, then finds the binary.
  exec 9>"$tools/.tansu-install.lock"
  flock 9
  installed && return 0
  echo "tansu.sh: installing tansu $TANSU_VERSION into $tools (about 20 minutes on 2 cores)" >&2
  nice -n 19 cargo install tansu --version "$TANSU_VERSION" --locked \
    --no-default-features --features libsql --root "$tools" --target-dir "$tools/target"
  installed || die "cargo install finished but $bin --version does not say $TANSU_VERSION"
}

start() {
  local dir=$1 port=$2
  installed || die "tansu is not installed: run 'bash scripts/tansu.sh install'"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/tansu.pid" ] && kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null; then
    die "a broker is already running from $dir (pid $(cat "$dir/tansu.pid"))"
  fi
  # From inside DIR: the storage URL's path is relative to the working directory. Every address
  # is given, so nothing listens beyond loopback and no .env default applies.
  (
    cd "$dir"
    exec nohup "$bin" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "sqlite://tansu.db" \
      >>"$dir/tansu.log" 2>&1 </dev/null
  ) &
  local pid=$!
  echo "$pid" >"$dir/tansu.pid"
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/tansu.log" >&2; die "the broker exited at start"; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$pid"
      return 0
    fi
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  die "the broker did not accept connections on 127.0.0.1:$port within 30 s (see $dir/tansu.log)"
}

topic() {
  local port=$1 name=$2 partitions=$3
  installed || die "tansu is not installed: run 'bash scripts/tansu.sh install'"
  "$bin" topic create "$name" --partitions "$partitions" --broker "tcp://127.0.0.1:$port"
}

stop() {
  local dir=$1 pid
  [ -f "$dir/tansu.pid" ] || die "no broker was started from $dir"
  pid=$(cat "$dir/tansu.pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/tansu.pid"
}

case "${1:-}" in
  install) install ;;
  bin) installed || die "tansu is not installed: run 'bash scripts/tansu.sh install'"; echo "$bin" ;;
  start) [ $# -eq 3 ] || die "usage: tansu.sh start DIR PORT"; start "$2" "$3" ;;
  topic) [ $# -eq 4 ] || die "usage: tansu.sh topic PORT NAME PARTITIONS"; topic "$2" "$3" "$4" ;;
  stop) [ $# -eq 2 ] || die "usage: tansu.sh stop DIR"; stop "$2" ;;
  *) die "usage: tansu.sh install | bin | start DIR PORT | topic PORT NAME PARTITIONS | stop DIR" ;;
esac
