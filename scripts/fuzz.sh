#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) with libFuzzer for a
# fixed number of executions each, then merges the inputs that found new
# coverage into the committed corpus (fuzz/corpus/TARGET). Prints one line
# per target: executions, crashes, corpus size, seconds.
#
#   scripts/fuzz.sh [EXECUTIONS] [TARGET...]     # default 10000000, every target
#
# FUZZ_SANITIZER=none builds without AddressSanitizer (several times the
# executions per second; Rust code is memory-safe outside `unsafe`, which
# ASan runs still cover); FUZZ_SECONDS=N stops each target after N seconds
# when it has not reached EXECUTIONS by then.
#
# Not part of scripts/test.sh (a 10M-execution run takes hours); every
# `cargo test` runs the same bodies on stable for a bounded count
# (tests/fuzz.rs). Needs cargo-fuzz (installed from crates.io if missing);
# a stable toolchain is enough: RUSTC_BOOTSTRAP=1 lets it take the
# sanitizer flags that cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-10000000}"
shift || true
all=(octo_wire octo_rtp tokens topology_yaml dns_query api_bodies signaling whip_whep)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
# Selector and edge targets log through tracing only when asked.
export RUST_LOG="${RUST_LOG:-off}"

sanitizer="${FUZZ_SANITIZER:-address}"
out="${FUZZ_OUT:-target/fuzz-runs}"
mkdir -p "$out"
out=$(cd "$out" && pwd)

printf '%-14s %12s %8s %8s %8s   (sanitizer: %s)\n' target executions crashes corpus seconds "$sanitizer"
for t in "${targets[@]}"; do
  scratch="$out/$t-corpus"
  rm -rf "$scratch" "$out/$t-artifacts"
  mkdir -p "$scratch" "$out/$t-artifacts"
  cp fuzz/corpus/"$t"/* "$scratch"/ 2>/dev/null || true
  start=$(date +%s)
  status=0
  (cd fuzz && cargo fuzz run --release -s "$sanitizer" --target-dir ../target/fuzz "$t" "$scratch" -- \
      -runs="$runs" ${FUZZ_SECONDS:+-max_total_time="$FUZZ_SECONDS"} -max_len=16384 -rss_limit_mb=4096 -detect_leaks=0 -print_final_stats=1 \
      -artifact_prefix="$out/$t-artifacts/" >"$out/$t.log" 2>&1) || status=$?
  secs=$(( $(date +%s) - start ))
  done_runs=$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "$out/$t-artifacts" -type f | wc -l)
  # Keep what found new coverage (libFuzzer's merge), nothing else.
  (cd fuzz && cargo fuzz run --release -s "$sanitizer" --target-dir ../target/fuzz "$t" "corpus/$t" "$scratch" -- \
      -merge=1 -max_len=16384 -rss_limit_mb=4096 -detect_leaks=0 >"$out/$t-merge.log" 2>&1) || true
  size=$(find fuzz/corpus/"$t" -type f | wc -l)
  printf '%-14s %12s %8s %8s %8s' "$t" "${done_runs:-?}" "$crashes" "$size" "$secs"
  [ "$status" -ne 0 ] && printf '   (exit %s: see %s/%s.log)' "$status" "$out" "$t"
  printf '\n'
done
