#!/usr/bin/env bash
# Build the Linux guest image from Debian packages: the unmodified linux-image-cloud-amd64
# bzImage and a reproducible initramfs (busybox, dhclient, iperf3, ethtool, the virtio modules
# of the same kernel package, and the vnetbed agent from rootfs/).
#
# Usage: guest-images/linux/build.sh [OUT_DIR]     (default: <repo>/target/linux-image)
#
# Everything comes from .deb files fetched with `apt-get download` and unpacked with
# `dpkg -x`; nothing is installed on the host and nothing is taken from the host's /lib.
# Assumes `apt-get update` has been run. Same package versions and same rootfs/ give a
# bit-identical initramfs (fixed mtimes, sorted file list, fixed owner, gzip -n).
#
# Environment:
#   SOURCE_DATE_EPOCH  mtime of every file in the initramfs (default 0: a constant, so that the
#                      image does not depend on checkout or commit times, e.g. shallow clones)
#   VNETBED_DEB_CACHE  where downloaded .debs are kept (default: <repo>/target/debian-debs)
#
# The last two lines of output are the kernel path and the initramfs path.
set -euo pipefail
umask 022
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/target/linux-image}
debs=${VNETBED_DEB_CACHE:-$repo/target/debian-debs}

# Packages whose files go into the initramfs. Their library dependencies are added below.
packages=(busybox-static isc-dhcp-client iperf3 libiperf0 ethtool)
# The virtio-net stack, as loadable modules of the cloud kernel (CONFIG_VIRTIO_MMIO=m,
# CONFIG_VIRTIO_NET=m). Their dependencies are read from each module's .modinfo section.
modules=(virtio_mmio virtio_net)
# Programs copied from the unpacked packages (with the shared libraries they need).
programs=(
  bin/busybox
  sbin/dhclient
  usr/bin/iperf3
  sbin/ethtool
)

die() {
  echo "build.sh: $*" >&2
  exit 1
}

for tool in apt-get apt-cache dpkg cpio gzip readelf objcopy find sort; do
  command -v "$tool" >/dev/null || die "\`$tool\` is not on PATH; run scripts/install-deps.sh (Debian/Ubuntu host)"
done

case ${SOURCE_DATE_EPOCH:=0} in
  '' | *[!0-9]*) die "SOURCE_DATE_EPOCH must be seconds since 1970, not '$SOURCE_DATE_EPOCH'" ;;
esac
export SOURCE_DATE_EPOCH

# ---- 1. the kernel (scripts/fetch-debian-kernel.sh resolves and unpacks the versioned package)
vmlinuz=$("$repo/scripts/fetch-debian-kernel.sh" | tail -n1)
[ -f "$vmlinuz" ] || die "fetch-debian-kernel.sh did not produce a kernel"
kver=${vmlinuz##*/vmlinuz-}
kroot=${vmlinuz%/boot/vmlinuz-*}
moddir=$kroot/lib/modules/$kver
[ -d "$moddir" ] || die "no modules for kernel $kver in $moddir"

# ---- 2. the user-space packages and their library dependencies (Depends: lib*), recursively
candidate() { # package -> candidate version, or empty when apt knows no such package
  apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'
}
for p in "${packages[@]}"; do
  v=$(candidate "$p")
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then
    die "apt knows no candidate for package $p: run 'apt-get update' first (Debian/Ubuntu hosts only)"
  fi
done
declare -A seen=()
queue=("${packages[@]}")
all=()
while [ ${#queue[@]} -gt 0 ]; do
  p=${queue[0]}
  queue=("${queue[@]:1}")
  [ -n "${seen[$p]:-}" ] && continue
  seen[$p]=1
  all+=("$p")
  while read -r dep; do
    case $dep in
      lib*) queue+=("$dep") ;;
    esac
  done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$p" 2>/dev/null | awk '$1 == "Depends:" || $1 == "PreDepends:" {print $2}' | grep -v '^<')
done
mapfile -t all < <(printf '%s\n' "${all[@]}" | sort)

mkdir -p "$debs"
deb_files=()
for p in "${all[@]}"; do
  # `--print-uris` names the exact file (package_version_arch.deb) apt would download.
  file=$(apt-get download --print-uris "$p" 2>/dev/null | awk '{print $2; exit}')
  [ -n "$file" ] || die "apt-get cannot download $p: run 'apt-get update' first"
  if [ ! -f "$debs/$file" ]; then
    (cd "$debs" && apt-get download -q "$p" >&2) || die "apt-get download $p failed"
  fi
  deb_files+=("$debs/$file")
done

work=$(mktemp -d "${TMPDIR:-/tmp}/vnetbed-linux-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
pkgroot=$work/packages
staging=$work/initramfs
mkdir -p "$pkgroot" "$staging"
for d in "${deb_files[@]}"; do
  dpkg -x "$d" "$pkgroot"
done

# ---- 3. programs and the shared libraries they need (NEEDED entries, resolved in the packages)
libdirs=(lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib64 lib usr/lib)
resolve() { # path relative to pkgroot -> absolute path of the file it names, following
  # symlinks inside pkgroot (an absolute link target means pkgroot/target, never the host's)
  local p=$pkgroot/$1 t n=0
  while [ -L "$p" ]; do
    t=$(readlink "$p")
    case $t in
      /*) p=$pkgroot$t ;;
      *) p=$(dirname "$p")/$t ;;
    esac
    n=$((n + 1))
    [ $n -lt 40 ] || die "symlink loop at $1"
  done
  echo "$p"
}
copy_file() { # path relative to pkgroot, with symlinks resolved, to the same path in staging
  local rel=$1 src
  src=$(resolve "$rel")
  [ -f "$src" ] || die "$rel is missing from the unpacked packages"
  mkdir -p "$staging/$(dirname "$rel")"
  cp "$src" "$staging/$rel"
}
find_lib() { # soname -> path relative to pkgroot
  local d
  for d in "${libdirs[@]}"; do
    if [ -e "$pkgroot/$d/$1" ] || [ -L "$pkgroot/$d/$1" ]; then
      echo "$d/$1"
      return 0
    fi
  done
  return 1
}
needed() { # ELF file -> its NEEDED sonames
  readelf -d "$1" | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]/\1/p'
}
interp() { # ELF file -> its program interpreter, if any
  readelf -l "$1" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p'
}
declare -A copied=()
todo=("${programs[@]}")
while [ ${#todo[@]} -gt 0 ]; do
  rel=${todo[0]}
  todo=("${todo[@]:1}")
  [ -n "${copied[$rel]:-}" ] && continue
  copied[$rel]=1
  copy_file "$rel"
  i=$(interp "$staging/$rel")
  if [ -n "$i" ]; then
    # The interpreter path (/lib64/ld-linux-x86-64.so.2) is a symlink in libc6; keep the
    # link and copy its target.
    target=$(resolve "${i#/}")
    target=$(realpath -s -m --relative-to="$pkgroot" "$target")
    [ -f "$pkgroot/$target" ] || die "interpreter $i of $rel is not in the packages"
    todo+=("$target")
    if [ "$target" != "${i#/}" ] && [ ! -e "$staging$i" ] && [ ! -L "$staging$i" ]; then
      mkdir -p "$staging$(dirname "$i")"
      ln -s "/$target" "$staging$i"
    fi
  fi
  for so in $(needed "$staging/$rel"); do
    lib=$(find_lib "$so") || die "$rel needs $so, which none of the packages (${all[*]}) provides"
    todo+=("$lib")
  done
done

# ---- 4. kernel modules in dependency order (from each module's .modinfo `depends=`)
modinfo_field() { # module file, field -> value
  objcopy -O binary --only-section=.modinfo "$1" "$work/modinfo" 2>/dev/null \
    || die "cannot read .modinfo of $1"
  tr '\0' '\n' <"$work/modinfo" | sed -n "s/^$2=//p" | head -n1
}
find_module() { # name -> path relative to the module directory
  local f
  f=$(cd "$moddir" && find kernel \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \
    -o -name "$1.ko.gz" \) | sort | head -n1)
  [ -n "$f" ] || die "kernel $kver has no module $1 (is it built in? check modules.builtin)"
  echo "$f"
}
declare -A mod_done=()
load_order=()
add_module() { # depth-first: dependencies before the module itself
  local name=$1 file dep
  [ -n "${mod_done[$name]:-}" ] && return 0
  mod_done[$name]=1
  file=$(find_module "$name")
  case $file in
    *.ko) ;;
    *) die "module $file is compressed; busybox insmod loads only plain .ko files: decompress it here first" ;;
  esac
  for dep in $(modinfo_field "$moddir/$file" depends | tr ',' ' '); do
    add_module "$dep"
  done
  mkdir -p "$staging/lib/modules/$kver/$(dirname "$file")"
  cp "$moddir/$file" "$staging/lib/modules/$kver/$file"
  load_order+=("$file")
}
for m in "${modules[@]}"; do
  add_module "$m"
done
printf '%s\n' "${load_order[@]}" >"$staging/lib/modules/$kver/load-order"

# ---- 5. the agent, init and configuration
cp -R "$here/rootfs/." "$staging/"
chmod 0755 "$staging/init" "$staging/vnetbed/agent.sh" "$staging/vnetbed/dhclient-hook.sh"
chmod 0644 "$staging/vnetbed/lib.sh" "$staging/etc/dhcp/dhclient.conf"
mkdir -p "$staging"/{dev,proc,sys,run,tmp,var/lib/dhcp,sbin,usr/bin,usr/sbin}
# Modes must not depend on the umask of the checkout: directories 0755, files 0755 or 0644.
find "$staging" -type d -exec chmod 0755 {} +
find "$staging" -type f -perm /111 -exec chmod 0755 {} +
find "$staging" -type f ! -perm /111 -exec chmod 0644 {} +
chmod 1777 "$staging/tmp"

# ---- 6. a reproducible cpio archive
out_tmp=$out.tmp.$$
rm -rf "$out_tmp"
mkdir -p "$out_tmp"
find "$staging" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$staging" && find . -mindepth 1 | sort | cpio --quiet --reproducible -o -H newc --owner=0:0) \
  | gzip -9 -n >"$out_tmp/initramfs.cpio.gz"
cp "$vmlinuz" "$out_tmp/vmlinuz"
{
  echo "kernel_package_version=$kver"
  for d in "${deb_files[@]}"; do echo "deb=${d##*/}"; done
  echo "source_date_epoch=$SOURCE_DATE_EPOCH"
} >"$out_tmp/manifest.txt"
mkdir -p "$out"
for f in vmlinuz initramfs.cpio.gz manifest.txt; do
  mv -f "$out_tmp/$f" "$out/$f"
done
rmdir "$out_tmp"
echo "initramfs: $(stat -c %s "$out/initramfs.cpio.gz") bytes, modules: ${load_order[*]##*/}" >&2
echo "$out/vmlinuz"
echo "$out/initramfs.cpio.gz"
