#!/usr/bin/env bash
# Install the Debian/Ubuntu packages vnetbed needs at run time and in its tests.
# Run as root. Idempotent.
set -euo pipefail
packages=(
  iproute2         # ip: namespaces, bridges, taps, veths
  dnsmasq-base     # the DHCP server of the testbed
  iperf3           # the load generator
  busybox-static   # udhcpc, a DHCP client for the testbed's own tests
  isc-dhcp-client  # dhclient: follows T1/T2 (udhcpc renews at lease/2), for the renewal tests
  iputils-ping     # ping from the testbed namespace
  tcpdump          # soak --capture: a pcap ring buffer on the guest's tap
  qemu-system-x86  # QEMU microvm: an independent virtio-mmio peer for the probe guest
  dpdk-dev         # dpdk-testpmd: DPDK's vhost library as a vhost-user backend (`--sut dpdk`)
  librte-net-vhost23 librte-net-tap23 librte-mempool-ring23  # testpmd's vhost and tap ports, its mbuf pool
  librte-net-af-packet23  # testpmd's af_packet port: the tests' own vhost-user backend (`--sut vhost-user=...,port=`)
  acpica-tools     # iasl: disassembles the ACPI tables vnetbed generates
  cpio             # packs the Linux guest's initramfs
  binutils         # readelf/objcopy: the Linux image builder resolves libraries and module deps
  python3          # a real JUnit/JSON consumer in the report tests
  python3-jsonschema   # validates report.json against docs/report.schema.json (tests/report.rs)
  python3-junitparser  # a real JUnit consumer for junit.xml (tests/report.rs)
  procps           # pgrep/pkill, used by tests
  gcc              # the linker driver for the probe guest image
  g++              # libfuzzer-sys compiles libFuzzer (C++) for the fuzz targets (fuzz/)
)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
