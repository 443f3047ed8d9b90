#!/usr/bin/env bash
# Installs what building ddnsd needs, idempotently: Debian packages (only those missing, so a
# set-up machine runs no apt at all) and a Rust toolchain check. `--tests` adds what only the
# tests use; the tests also need the tansu broker and a current librdkafka for kcat, which
# scripts/test.sh installs (running the server needs neither).
source "$(dirname "$0")/env.sh"

packages=(
  clang libclang-dev    # bindgen, for RocksDB's bindings
  librocksdb-dev        # RocksDB itself, linked instead of compiled (see Cargo.toml)
  pkg-config libssl-dev # the device-side C token sealer's tests (OpenSSL)
  bind9-dnsutils        # dig, used by the tests and the README walkthrough
  curl                  # the README walkthrough
  cmake build-essential # librdkafka (rdkafka's cmake-build), compiled from its bundled source
  zlib1g-dev            # librdkafka's zlib compression (rdkafka's libz feature)
  # librdkafka 2.12's rdkafka_conf.c includes <curl/curl.h> under `#ifdef WITH_OAUTHBEARER_OIDC`,
  # which its cmake config always defines (to 0 or 1), so the header is needed even with curl off.
  libcurl4-openssl-dev
)
if [ "${1:-}" = --tests ]; then
  packages+=(kcat)      # reads the Kafka topic in the cluster tests (scripts/kcat.sh)
  packages+=(openssl)   # the HTTPS tests' CA and certificates (ddnsd/tests/https.rs)
  packages+=(ddclient inadyn) # the dyndns2 clients of the field (ddnsd/tests/dyndns2_clients.rs)
  packages+=(libio-socket-ssl-perl) # ddclient's HTTPS: only recommended, and we skip recommends
  # The portal's browser test: Debian's Chromium and its driver (same version), headless.
  packages+=(chromium chromium-driver)
  # ACME DNS-01 end to end (ddnsd/tests/acme.rs): Let's Encrypt's test CA and lego's httpreq.
  packages+=(pebble lego)
  # DNS over QUIC's clients (ddnsd/tests/doq.rs): kdig +quic, and python3-venv for the
  # dnspython + aioquic venv that scripts/doq-venv.sh makes below.
  packages+=(knot-dnsutils python3-venv)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  apt_log=$(mktemp)
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    echo "setup: apt-get could not install ${missing[*]} (its last lines are above)" >&2
    exit 1
  fi
  rm -f "$apt_log"
  # Debian's ddclient enables a daemon that polls a public DDNS provider; the tests run their
  # own ddclient, so the machine's is switched off.
  if [[ " ${missing[*]} " == *" ddclient "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now ddclient.service >/dev/null 2>&1 || true
  fi
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi

if [ "${1:-}" = --tests ]; then
  bash "$(dirname "$0")/doq-venv.sh"
fi

