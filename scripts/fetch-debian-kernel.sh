#!/usr/bin/env bash
# Fetch Debian's cloud kernel (linux-image-cloud-amd64) without installing it:
# apt-get download + dpkg -x into a cache directory. Prints the vmlinuz path as its last line.
# Usage: scripts/fetch-debian-kernel.sh [CACHE_DIR]   (default: target/debian-kernel)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-$here/target/debian-kernel}
mkdir -p "$cache"
cd "$cache"
existing=$(ls -1 "$cache"/root/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
if [ -n "$existing" ]; then
  echo "$existing"
  exit 0
fi
# The meta package depends on the versioned image package; resolve it.
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
  echo "cannot resolve linux-image-cloud-amd64: run 'apt-get update' first (Debian/Ubuntu hosts only)" >&2
  exit 1
fi
apt-get download -q "$pkg" >&2
deb=$(ls -1 "$cache"/"$pkg"_*.deb | head -n1)
dpkg -x "$deb" "$cache/root"
rm -f "$deb"
ls -1 "$cache"/root/boot/vmlinuz-* | head -n1
