#!/usr/bin/env bash
# cargo-deny's checks of the dependency graph (deny.toml): licenses, bans (duplicate versions,
# wildcards) and sources. Installs cargo-deny once into $DDNSD_TOOLS (default
# ~/.cache/ddnsd-tools; about 5 minutes on 2 cores).
#
#   deny.sh            check licenses, bans and sources
#
# Advisories need the RustSec database, which is fetched from GitHub; this machine reaches
# only package registries. With DDNSD_ADVISORY_DB=DIR (a git clone of
# github.com/rustsec/advisory-db) the advisories are checked against it too, offline.
source "$(dirname "$0")/env.sh"
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
tools="${DDNSD_TOOLS:-$HOME/.cache/ddnsd-tools}"
bin="$tools/bin/cargo-deny"

installed() {
  [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$DENY_VERSION"
}

if ! installed; then
  mkdir -p "$tools"
  exec 9>"$tools/.deny-install.lock"
  flock 9
  if ! installed; then
    echo "deny.sh: installing cargo-deny $DENY_VERSION into $tools (about 5 minutes)" >&2
    nice -n 19 cargo install cargo-deny --version "$DENY_VERSION" --locked --root "$tools" \
      --target-dir "$tools/target"
  fi
fi

checks=(licenses bans sources)
if [ -n "${DDNSD_ADVISORY_DB:-}" ]; then
  # cargo-deny keeps the database under db-path, in a git checkout named by its URL's hash;
  # point that name at the given checkout and stay offline.
  db_path=$(mktemp -d)
  trap 'rm -rf "$db_path"' EXIT
  ln -s "$(realpath "$DDNSD_ADVISORY_DB")" "$db_path/advisory-db-3157b0e258782691"
  sed "s|^\[advisories\]|[advisories]\ndb-path = \"$db_path\"|" deny.toml >"$db_path/deny.toml"
  "$bin" deny --offline --config "$db_path/deny.toml" check advisories
fi
"$bin" deny --offline check "${checks[@]}"
