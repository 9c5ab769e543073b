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
cargo test --workspace -- --nocapture 2>&1 | tee target/test-output.txt
# Count skips: under CI=true there must be none (common::require panics instead).
skips=$(grep -c '^SKIP ' target/test-output.txt || true)
echo "skipped tests: ${skips}"
