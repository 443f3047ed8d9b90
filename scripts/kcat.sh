#!/usr/bin/env bash
# kcat (Debian's package) run against a current librdkafka: Debian's kcat is linked to librdkafka
# 2.0.2, which fails the ApiVersion handshake with the tansu broker. The newer library is built
# once, shared, from the librdkafka sources bundled in the rdkafka-sys crate that ddnsd already
# builds with (so it is the very version ddnsd speaks with), into $DDNSD_TOOLS.
#
#   kcat.sh install        build the library (idempotent; a few minutes on 2 cores)
#   kcat.sh ARGS…          run kcat with it
source "$(dirname "$0")/env.sh"

tools="${DDNSD_TOOLS:-$HOME/.cache/ddnsd-tools}"
root=$(cd "$(dirname "$0")/.." && pwd)

die() {
  echo "kcat.sh: $*" >&2
  exit 1
}

# The rdkafka-sys version in Cargo.lock, e.g. 4.10.0+2.12.1, and the librdkafka version after '+'.
crate_version=$(awk '/^name = "rdkafka-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")
[ -n "$crate_version" ] || die "rdkafka-sys is not in Cargo.lock"
lib_version=${crate_version#*+}
prefix="$tools/librdkafka-$lib_version"

installed() {
  [ -e "$prefix/lib/librdkafka.so.1" ]
}

install() {
  installed && return 0
  command -v kcat >/dev/null || die "kcat is missing: run scripts/setup.sh (apt package kcat)"
  mkdir -p "$tools"
  exec 9>"$tools/.librdkafka-install.lock"
  flock 9
  installed && return 0
  # The crate's sources are in cargo's registry once the workspace is fetched (a fresh machine
  # has not fetched it yet).
  (cd "$root" && cargo fetch --locked) || die "cargo fetch failed: no rdkafka-sys sources to build from"
  local src
  src=$({ find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -mindepth 2 -maxdepth 2 -type d \
    -name "rdkafka-sys-$crate_version" 2>/dev/null || true; } | head -n 1)/librdkafka
  [ -d "$src" ] || die "no librdkafka sources for rdkafka-sys $crate_version in cargo's registry after cargo fetch"
  echo "kcat.sh: building librdkafka $lib_version (shared) into $prefix" >&2
  local build="$tools/librdkafka-build-$lib_version"
  rm -rf "$build"
  # Only what kcat needs to read a plaintext loopback broker: no TLS, SASL or compression codecs
  # beyond the built-in ones.
  nice -n 19 cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRDKAFKA_BUILD_STATIC=OFF \
    -DRDKAFKA_BUILD_EXAMPLES=OFF -DRDKAFKA_BUILD_TESTS=OFF -DWITH_SSL=OFF -DWITH_SASL=OFF \
    -DWITH_ZSTD=OFF -DWITH_CURL=OFF -DENABLE_LZ4_EXT=OFF -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCMAKE_INSTALL_LIBDIR=lib >"$build.log" 2>&1 || { tail -30 "$build.log" >&2; die "cmake failed"; }
  nice -n 19 cmake --build "$build" --target install -j 2 >>"$build.log" 2>&1 \
    || { tail -30 "$build.log" >&2; die "build failed"; }
  rm -rf "$build"
  installed || die "built, but $prefix/lib/librdkafka.so.1 is missing"
}

case "${1:-}" in
  install) install ;;
  "") die "usage: kcat.sh install | kcat.sh KCAT-ARGS…" ;;
  *)
    installed || die "run 'bash scripts/kcat.sh install' first"
    LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec kcat "$@"
    ;;
esac
