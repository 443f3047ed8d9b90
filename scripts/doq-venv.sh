#!/usr/bin/env bash
# The DNS-over-QUIC tests' second client nobody here wrote: dnspython with aioquic, from PyPI
# (Debian packages neither aioquic nor a dnspython with DoQ), in a venv outside the clone.
#
#   doq-venv.sh          create the venv if it is missing or broken (idempotent; quiet when ready)
#   doq-venv.sh python   print the venv's python
#
# It lives in $DDNSD_TOOLS/doq-venv (default ~/.cache/ddnsd-tools/doq-venv), where
# ddnsd/tests/doq.rs looks for it; the test fails, naming this script, when it is missing.
source "$(dirname "$0")/env.sh"

# Versions the tests were written against (dnspython's dns.query.quic sets the message ID to 0,
# as RFC 9250 requires, since 2.3).
PACKAGES=(dnspython==2.9.2 aioquic==1.7.2)

tools="${DDNSD_TOOLS:-$HOME/.cache/ddnsd-tools}"
venv="$tools/doq-venv"
python="$venv/bin/python"

ready() {
  [ -x "$python" ] && "$python" -c 'import aioquic, dns.query; dns.query.quic' >/dev/null 2>&1
}

case "${1:-install}" in
  python)
    echo "$python"
    ;;
  install)
    ready && exit 0
    # Debian's python3 (python3-venv, installed by setup.sh --tests) when there is one.
    base=python3
    [ -x /usr/bin/python3 ] && base=/usr/bin/python3
    echo "doq-venv.sh: creating $venv (${PACKAGES[*]})" >&2
    mkdir -p "$tools"
    rm -rf "$venv"
    "$base" -m venv "$venv"
    pip_log=$(mktemp)
    if ! "$python" -m pip install -q --disable-pip-version-check "${PACKAGES[@]}" >"$pip_log" 2>&1; then
      tail -n 20 "$pip_log" >&2
      echo "doq-venv.sh: pip could not install ${PACKAGES[*]} (its last lines are above)" >&2
      exit 1
    fi
    rm -f "$pip_log"
    ready || { echo "doq-venv.sh: $python cannot import dns.query.quic and aioquic" >&2; exit 1; }
    ;;
  *)
    echo "usage: doq-venv.sh [install|python]" >&2
    exit 2
    ;;
esac
