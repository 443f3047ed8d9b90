#!/usr/bin/env bash
# The longer fuzz run: each fuzz target (or only TARGET) under afl-fuzz for SECONDS (default 60),
# then its executions and coverage from afl's fuzzer_stats. What a run finds is left in
# ~/.cache/ddnsd-fuzz/<target>/ (queue/ for new inputs, crashes/ and hangs/ for failures);
# fuzz/README.md says how to add them to the corpus.
#
#   bash scripts/fuzz.sh [TARGET|all] [SECONDS]
#
# Installs what it needs once, into ~/.cache/ddnsd-tools: cargo-afl (crates.io), which builds
# AFL++ from the source it ships, for the installed rustc (no nightly). The test command does not
# need any of this: it replays fuzz/corpus/ through the same checks with `cargo test`.
source "$(dirname "$0")/env.sh"
cd "$(dirname "$0")/.."

target="${1:-all}"
seconds="${2:-60}"
tools="$HOME/.cache/ddnsd-tools"
out_root="$HOME/.cache/ddnsd-fuzz"
# cargo-afl keeps AFL++ under XDG_DATA_HOME/afl.rs: ours, not ~/.local/share.
export XDG_DATA_HOME="$tools/xdg"
export PATH="$tools/bin:$PATH"
# Instrumented builds differ from normal ones in every crate: a target dir of their own.
afl_target_dir="$HOME/.cache/ddnsd-fuzz-target"
host="$(rustc -vV | sed -n 's/^host: //p')"

targets=(codec dns device_api dyndns2 dvr acme http_framing token zonefile portal quic_wire)
if [ "$target" != all ]; then
  [[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz.sh: no target $target (${targets[*]})" >&2; exit 2; }
  targets=("$target")
fi
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { echo "fuzz.sh: SECONDS must be a positive number" >&2; exit 2; }

# cargo-afl at the version of the `afl` crate in Cargo.lock (the two must match).
afl_version="$(grep -A1 '^name = "afl"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
if ! cargo afl --version 2>/dev/null | grep -q "cargo-afl $afl_version"; then
  echo "fuzz.sh: installing cargo-afl $afl_version into $tools (builds AFL++, a few minutes, once)"
  cargo install cargo-afl --version "$afl_version" --locked --root "$tools" >"$tools/cargo-afl-install.log" 2>&1 \
    || { tail -n 20 "$tools/cargo-afl-install.log" >&2; exit 1; }
fi
# AFL++ itself, for this rustc (installing cargo-afl builds it; a new rustc needs it again).
if ! config="$(cargo afl config --build 2>&1)"; then
  grep -q "already built" <<<"$config" || { echo "$config" >&2; exit 1; }
fi

# `--target`: the instrumentation flags then reach only the code that runs under the fuzzer,
# not build scripts and proc macros.
echo "fuzz.sh: building the harnesses (instrumented, release) in $afl_target_dir"
CARGO_TARGET_DIR="$afl_target_dir" cargo afl build --release --locked --target "$host" \
  -p ddns-fuzz --features afl --bins
bin_dir="$afl_target_dir/$host/release"

# afl-fuzz refuses to start on a machine whose core dumps go to a helper, or whose CPU governor
# is not `performance`; neither matters for a bounded run.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1 AFL_NO_AFFINITY=1
# Seeds that time out under the fuzzer are still fuzzed from (a slow machine, a cold RocksDB).
export AFL_IGNORE_SEED_PROBLEMS=1
# The harnesses keep their projectors' snapshot directories here; removed after each run.
export TMPDIR="$out_root/tmp"

summary=()
for name in "${targets[@]}"; do
  out="$out_root/$name"
  rm -rf "$out" "$TMPDIR"
  mkdir -p "$out" "$TMPDIR"
  echo "fuzz.sh: $name for $seconds s"
  # -V: stop after SECONDS; -t: an input taking over 5 s is a hang; the outer timeout bounds
  # the whole run even if afl-fuzz does not stop by itself.
  timeout --kill-after=30 $((seconds + 120)) \
    cargo afl fuzz -V "$seconds" -t 5000 -i "fuzz/corpus/$name" -o "$out" "$bin_dir/$name" \
    >"$out/afl.log" 2>&1 || { tail -n 30 "$out/afl.log" >&2; echo "fuzz.sh: afl-fuzz failed on $name" >&2; exit 1; }
  stats="$out/default/fuzzer_stats"
  stat() { sed -n "s/^$1 *: //p" "$stats"; }
  crashes="$(find "$out/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)"
  hangs="$(find "$out/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)"
  line="$(printf '%-13s execs_done %9s  execs/s %7s  edges %6s/%-6s  bitmap_cvg %7s  corpus %5s  crashes %s  hangs %s' \
    "$name" "$(stat execs_done)" "$(stat execs_per_sec)" "$(stat edges_found)" "$(stat total_edges)" \
    "$(stat bitmap_cvg)" "$(stat corpus_count)" "$crashes" "$hangs")"
  echo "$line"
  summary+=("$line")
  rm -rf "$TMPDIR"
done

echo
echo "fuzz.sh: $seconds s per target (findings in $out_root/<target>/default/{crashes,hangs,queue})"
printf '%s\n' "${summary[@]}"
