#!/usr/bin/env bash
# Build the probe guest image (guest-images/probe) and print its absolute path as the
# last line of stdout. Incremental: cargo rebuilds only what changed. This script is the
# one recipe: `vnetbed image build probe` runs it, CI and the tests use that command.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
probe="$root/guest-images/probe"
target_dir="$probe/target"
image="$target_dir/x86_64-unknown-linux-gnu/release/probe"
max_bytes=$((2 * 1024 * 1024))

# Settings from a surrounding cargo invocation must not leak into the image build.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_TARGET CARGO_TARGET_DIR CARGO_BUILD_RUSTFLAGS

cd "$probe"
# The explicit --target keeps .cargo/config.toml's target rustflags away from build
# scripts (host == target here). Build output goes to stderr.
"${CARGO:-cargo}" build --release --locked --target x86_64-unknown-linux-gnu \
    --target-dir "$target_dir" 1>&2

size=$(stat -c %s "$image")
if (( size >= max_bytes )); then
    echo "build-probe: $image is $size bytes; the probe image must stay below 2 MiB" >&2
    exit 1
fi
echo "$image"
