#!/usr/bin/env bash
# Build qemu-system-x86_64 from Debian's QEMU source package, optionally with one upstream
# change reverted, into target/qemu-<name>/bin/qemu-system-x86_64. Prints the binary's path
# and sha256 (last line: "<path> sha256=<hex>").
#
#   scripts/build-qemu.sh                    # Debian's QEMU as shipped -> target/qemu-debian/
#   scripts/build-qemu.sh --revert f937309   # minus upstream f937309fbdbb -> target/qemu-revert-f937309/
#
# The repository holds this script and the hunk selection (scripts/qemu-reverts/<commit>.hunks),
# not QEMU's code: the source comes from `apt-get source qemu` at build time (a deb-src entry
# for the archive this machine already uses is added if missing), Debian's patches are applied
# by `dpkg-source -x`, and a revert takes the named change's hunks out of Debian's own
# stable-update patch and applies them in reverse.
#
# The dfsg tarball carries no firmware (SeaBIOS, option ROMs): the build looks for it where
# Debian's own binary does (debian/rules' FIRMWAREPATH: /usr/share/qemu, /usr/share/seabios,
# /usr/lib/ipxe/qemu), which Debian's qemu-system-x86 and its dependencies fill, so the binary
# boots like Debian's, without -L.
#
# Only the x86_64 system emulator is built, KVM only (no TCG), without docs or optional
# features, so the build stays small (about 5 CPU-minutes). A binary built from the same inputs (source
# version, hunk selection, configure flags, this script) is reused.
#
# Run as root (apt). It installs its build dependencies itself (dpkg-dev ninja-build meson
# libglib2.0-dev libpixman-1-dev pkg-config flex bison python3 patch), so that hosts and CI
# runs that never build QEMU do not carry them; qemu-system-x86 (the firmware the binary
# boots with) comes from scripts/install-deps.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
revert=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --revert) revert=${2:?--revert needs a commit}; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build-qemu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

name=debian
hunks=""
if [[ -n $revert ]]; then
  hunks="$root/scripts/qemu-reverts/$revert.hunks"
  [[ -f $hunks ]] || { echo "build-qemu.sh: no hunk selection $hunks" >&2; exit 2; }
  name="revert-$revert"
fi

build_deps=(dpkg-dev ninja-build meson libglib2.0-dev libpixman-1-dev pkg-config flex bison
  python3 patch)
missing=()
for p in "${build_deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "build-qemu.sh: installing the build dependencies: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

work="$root/target/qemu-src"
out="$root/target/qemu-$name"
# Bump when the steps below change what gets built (comment edits need not rebuild).
recipe=2
configure_flags=(--target-list=x86_64-softmmu --without-default-features --enable-kvm
  --disable-tcg --disable-werror --disable-docs)
mkdir -p "$work"

# A deb-src entry for the archive(s) this machine already uses.
ensure_deb_src() {
  if apt-cache showsrc qemu 2>/dev/null | grep -q '^Package: qemu$'; then
    return
  fi
  local list=/etc/apt/sources.list.d/vnetbed-deb-src.sources
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$list"
  elif [[ -f /etc/apt/sources.list ]]; then
    list=/etc/apt/sources.list.d/vnetbed-deb-src.list
    sed -n 's/^deb \(.*\)$/deb-src \1/p' /etc/apt/sources.list >"$list"
  else
    echo "build-qemu.sh: no apt sources to derive a deb-src entry from" >&2
    exit 1
  fi
  echo "build-qemu.sh: added $list" >&2
  apt-get update -qq
}

# The source package, downloaded once per version.
ensure_deb_src
version=$(apt-cache showsrc qemu | sed -n 's/^Version: //p' | sort -V | tail -1)
upstream=${version#*:}
dsc="$work/qemu_${upstream}.dsc"
if [[ ! -f $dsc ]]; then
  (cd "$work" && apt-get source --download-only "qemu=$version" >&2)
fi

inputs=$( {
  echo "version=$version"
  sha256sum "$dsc" | cut -d' ' -f1
  [[ -n $hunks ]] && sha256sum "$hunks" | cut -d' ' -f1
  echo "${configure_flags[*]}"
  echo "recipe=$recipe"
  sha256sum "$root/scripts/qemu-select-hunks.py" | cut -d' ' -f1
} | sha256sum | cut -d' ' -f1)
binary="$out/bin/qemu-system-x86_64"
if [[ -x $binary && -f $out/inputs && $(cat "$out/inputs") == "$inputs" ]]; then
  echo "build-qemu.sh: reusing $binary (same inputs)" >&2
else
  rm -rf "$out"
  mkdir -p "$out/bin"
  start=$(date +%s)
  dpkg-source --no-check -x "$dsc" "$out/src" >&2
  if [[ -n $hunks ]]; then
    # The change's hunks, cut out of the Debian patch that carries it, applied in reverse.
    python3 "$root/scripts/qemu-select-hunks.py" "$hunks" "$out/src" >"$out/revert.diff"
    (cd "$out/src" && patch -R -p1 --fuzz=0 --no-backup-if-mismatch <"$out/revert.diff" >&2)
  fi
  firmware=$(sed -n 's/^FIRMWAREPATH *= *//p' "$out/src/debian/rules")
  [[ -n $firmware ]] || { echo "build-qemu.sh: no FIRMWAREPATH in debian/rules" >&2; exit 1; }
  mkdir -p "$out/build"
  (cd "$out/build" && ../src/configure "${configure_flags[@]}" --firmwarepath="$firmware" >&2 && ninja qemu-system-x86_64 >&2)
  cp "$out/build/qemu-system-x86_64" "$binary"
  echo "$inputs" >"$out/inputs"
  echo "build-qemu.sh: built in $(($(date +%s) - start)) s" >&2
  # The binary is all we keep: the build tree is ~hundreds of MB.
  rm -rf "$out/build" "$out/src" "$out"/*.orig.tar.*
fi
"$binary" --version | head -1 >&2
echo "$binary sha256=$(sha256sum "$binary" | cut -d' ' -f1)"
