#!/usr/bin/env bash
# Build and run the fuzz targets of fuzz/ (libFuzzer through the libfuzzer-sys crate, on the
# stable toolchain: coverage comes from LLVM's SanitizerCoverage pass, which stable rustc
# runs with -Cpasses=sancov-module; no nightly, no cargo-fuzz).
#
#   scripts/fuzz.sh list                 the targets
#   scripts/fuzz.sh build                build them all (fuzz/target/...)
#   scripts/fuzz.sh smoke [SECONDS]      each target for SECONDS (default 5) from its seed corpus
#   scripts/fuzz.sh run TARGET RUNS [libFuzzer options...]
#                                        one campaign of RUNS executions; new inputs go to
#                                        fuzz/target/corpus/TARGET, crashes to fuzz/target/artifacts
#
# A crash, a panic, a failed assertion, a leak of the input's time budget (-timeout, default
# 10 s per input: a hang) or an out-of-memory (-rss_limit_mb) makes it exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
triple=x86_64-unknown-linux-gnu
# --target keeps these flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
bin=target/$triple/release

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^vnetbed-fuzz$'; }

build() { cargo build --release --locked --target "$triple" --bins; }

run_one() { # TARGET RUNS-OR-SECONDS-FLAG [options...]
  local t=$1; shift
  mkdir -p "target/corpus/$t" target/artifacts
  "$bin/$t" "target/corpus/$t" "corpus/$t" -artifact_prefix="target/artifacts/$t-" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
}

case "${1:-}" in
  list) targets ;;
  build) build ;;
  smoke)
    secs=${2:-5}
    build
    n=0
    for t in $(targets); do
      log=target/smoke-$t.log
      if run_one "$t" -max_total_time="$secs" >"$log" 2>&1; then
        echo "fuzz smoke: $t ok: $(grep -E '#[0-9]+.*DONE' "$log" | tail -1)"
        n=$((n + 1))
      else
        tail -40 "$log"
        echo "fuzz smoke: $t FAILED (input in fuzz/target/artifacts/$t-*)"
        exit 1
      fi
    done
    echo "fuzz smoke: $n targets ran, 0 crashes, 0 hangs"
    ;;
  run)
    t=${2:?target}; runs=${3:?runs}; shift 3
    build
    run_one "$t" -runs="$runs" "$@"
    ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
