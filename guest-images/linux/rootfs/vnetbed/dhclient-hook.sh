#!/bin/sh
# dhclient's script (dhclient -sf): configures the interface as dhclient-script would, for
# the few reasons the guest meets, and reports every call as one `@probe` "dhcp_state" line.
# dhclient runs this script when a step has *finished*: RENEW means the lease was renewed
# (the client is bound again), so it is reported as "renewed", REBIND as "rebound".
# dhclient passes its state in the environment: reason, interface, new_ip_address,
# new_subnet_mask, new_routers, new_dhcp_lease_time, new_dhcp_renewal_time,
# new_dhcp_rebinding_time, new_dhcp_server_identifier, and old_* for the lease it drops.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
. "${0%/*}/lib.sh"

case $reason in
  PREINIT) state=init ;;
  BOUND | REBOOT) state=bound ;;
  RENEW) state=renewed ;;
  REBIND) state=rebound ;;
  EXPIRE) state=expired ;;
  RELEASE | STOP) state=released ;;
  FAIL | TIMEOUT) state=failed ;;
  *) state=other ;;
esac

case $state in
  bound | renewed | rebound)
    ip=$new_ip_address mask=$new_subnet_mask lease=$new_dhcp_lease_time
    t1=$new_dhcp_renewal_time t2=$new_dhcp_rebinding_time server=$new_dhcp_server_identifier
    ;;
  *)
    ip=$old_ip_address mask=$old_subnet_mask lease=$old_dhcp_lease_time
    t1=$old_dhcp_renewal_time t2=$old_dhcp_rebinding_time server=$old_dhcp_server_identifier
    ;;
esac

probe_emit "\"event\":\"dhcp_state\",\"t_ms\":$(probe_t_ms),\"state\":\"$state\",\"reason\":$(probe_name "$reason"),\"interface\":$(probe_name "$interface"),\"ip\":$(probe_ip "$ip"),\"lease_s\":$(probe_num "$lease"),\"t1_s\":$(probe_num "$t1"),\"t2_s\":$(probe_num "$t2"),\"server\":$(probe_ip "$server")"

# Configure only with values that passed the checks above.
[ "$(probe_name "$interface")" != null ] || exit 0
case $state in
  init)
    busybox ip link set dev "$interface" up
    ;;
  bound | renewed | rebound)
    if [ "$(probe_ip "$ip")" = null ] || [ "$(probe_ip "$mask")" = null ]; then
      probe_error dhcp_bad_address
      exit 1
    fi
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$ip" ]; then
      busybox ip -4 addr flush dev "$interface"
    fi
    busybox ifconfig "$interface" "$ip" netmask "$mask" up
    for r in $new_routers; do
      [ "$(probe_ip "$r")" != null ] && busybox route add default gw "$r" dev "$interface" 2>/dev/null
      break
    done
    ;;
  expired | released | failed)
    busybox ip -4 addr flush dev "$interface"
    ;;
esac
exit 0
