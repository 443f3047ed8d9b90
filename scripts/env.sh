# Sourced first by every script: the shared build cache outside the clone (a fresh clone reuses a
# previous build; without it, a cold build still works, just slower), and a failing step that says
# what failed instead of ending the script with a bare exit status.
set -Eeuo pipefail
trap 'echo "${0##*/}: line $LINENO: \`$BASH_COMMAND\` failed (exit status $?)" >&2' ERR
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ddnsd-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
