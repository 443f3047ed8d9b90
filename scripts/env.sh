# Sourced by the scripts: the shared build cache outside the clone (a fresh clone reuses a
# previous build; without it, a cold build still works, just slower).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ddnsd-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
