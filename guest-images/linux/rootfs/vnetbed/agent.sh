#!/bin/sh
# vnetbed Linux guest agent: once a second, the interface's counters and its driver's
# statistics as `@probe` lines. Usage: agent.sh [IF] (default eth0). /init execs it last, so
# it runs as PID 1 and never exits.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
. "${0%/*}/lib.sh"
iface=${1:-eth0}
probe_boot agent
while :; do
  probe_counters "$iface" || probe_error no_interface
  probe_driver_stats "$iface"
  sleep 1
done
