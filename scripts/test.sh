#!/usr/bin/env bash
# The test command from the README: lint, build the guest images, run every test.
# Run as root on a Linux host with KVM (tests that need KVM, netns, dnsmasq or iperf3 skip
# with a printed reason elsewhere, and fail under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
# The probe guest is its own crate (not a workspace member): lint and unit-test it too.
(cd guest-images/probe && cargo fmt -- --check \
    && cargo clippy --release --target x86_64-unknown-linux-gnu --all-targets -- -D warnings \
    && cargo test --target x86_64-unknown-linux-gnu)
# Every fuzz target (fuzz/, libFuzzer on the stable toolchain) for two seconds from its
# seed corpus: builds them, and fails on any crash, panic or hang.
(cd fuzz && cargo fmt -- --check)
bash scripts/fuzz.sh smoke 2
cargo test --workspace -- --nocapture 2>&1 | tee target/test-output.txt
# A test that skips (the host lacks a capability: only off CI; or, by design, the Linux-guest
# tests on hosts without hardware virtualization) prints "SKIP <name>: <reason>" and returns,
# which cargo counts as passed. Count those as skipped, not passed.
skips=$(grep -c '^SKIP ' target/test-output.txt || true)
grep '^SKIP ' target/test-output.txt || true
passed=$( { grep -oE 'test result: ok\. [0-9]+ passed' target/test-output.txt || true; } | awk '{s += $4} END {print s + 0}')
echo "vnetbed tests: $((passed - skips)) passed, 0 failed, ${skips} skipped"
