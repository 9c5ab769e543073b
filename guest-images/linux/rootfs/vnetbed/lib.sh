# vnetbed Linux guest agent: the `@probe {json}` serial protocol (see guest-images/linux/README.md).
# Sourced by /init, /vnetbed/agent.sh and /vnetbed/dhclient-hook.sh; runs under busybox sh.
# Every value that comes from outside (DHCP server, kernel counters) is checked before it is
# put into JSON: numbers must be digits, addresses dotted quads, names [A-Za-z0-9_.-];
# anything else becomes null.

# Print one protocol line. $1 is the body of the JSON object, without braces.
probe_emit() {
  printf '@probe {%s}\n' "$1"
}

# Milliseconds since the kernel started, from /proc/uptime ("12.34 56.78").
probe_t_ms() {
  local up rest s cs
  read -r up rest 2>/dev/null </proc/uptime || {
    echo 0
    return
  }
  s=${up%%.*}
  cs=${up#*.}
  case $s in '' | *[!0-9]*) s=0 ;; esac
  case $cs in '' | *[!0-9]*) cs=0 ;; esac
  cs=${cs#0} # "05" must not be read as octal
  echo $((s * 1000 + ${cs:-0} * 10))
}

# A non-negative integer (at most 19 digits) as JSON, else null.
probe_num() {
  case $1 in
    '' | *[!0-9]*) echo null ;;
    ????????????????????*) echo null ;;
    *) echo "$1" ;;
  esac
}

# An IPv4 address as a JSON string, else null.
probe_ip() {
  case $1 in
    '' | *[!0-9.]* | ????????????????*) echo null ;;
    *.*.*.*) echo "\"$1\"" ;;
    *) echo null ;;
  esac
}

# A name (interface, statistic, dhclient reason) as a JSON string, else null.
probe_name() {
  case $1 in
    '' | *[!A-Za-z0-9_.-]* | ?????????????????????????????????*) echo null ;;
    *) echo "\"$1\"" ;;
  esac
}

# A boot milestone: probe_boot STAGE.
probe_boot() {
  probe_emit "\"event\":\"boot\",\"t_ms\":$(probe_t_ms),\"stage\":$(probe_name "$1")"
}

# Something went wrong: probe_error NAME (a fixed word chosen by the caller).
probe_error() {
  probe_emit "\"event\":\"error\",\"t_ms\":$(probe_t_ms),\"what\":$(probe_name "$1")"
}

# The standard counters of an interface (/sys/class/net/IF/statistics).
probe_counters() {
  local dir=/sys/class/net/$1/statistics body='' k v
  [ -d "$dir" ] || return 1
  for k in rx_packets rx_bytes tx_packets tx_bytes rx_dropped tx_dropped rx_errors tx_errors; do
    v=''
    read -r v 2>/dev/null <"$dir/$k"
    body="$body,\"$k\":$(probe_num "$v")"
  done
  probe_emit "\"event\":\"counters\",\"t_ms\":$(probe_t_ms),\"interface\":$(probe_name "$1")$body"
}

# The driver's own statistics (`ethtool -S`: for virtio_net the per-queue packets, bytes,
# drops, kicks and tx timeouts). /sys/class/net has only the standard counters.
probe_driver_stats() {
  local body
  body=$(ethtool -S "$1" 2>/dev/null | awk -F: 'NR > 1 && NF == 2 {
      gsub(/[ \t]/, "", $1); gsub(/[ \t]/, "", $2)
      if ($1 ~ /^[A-Za-z0-9_]+$/ && length($1) <= 48 && $2 ~ /^[0-9]+$/ && length($2) <= 19)
        printf ",\"%s\":%s", $1, $2
    }')
  [ -n "$body" ] || return 1
  probe_emit "\"event\":\"virtio_net\",\"t_ms\":$(probe_t_ms),\"interface\":$(probe_name "$1")$body"
}

# Run dhclient on IF in the foreground of a background job and report when it exits:
# probe_dhclient_supervise IF &
probe_dhclient_supervise() {
  local pid status
  mkdir -p /var/lib/dhcp /run
  dhclient -4 -d -v -sf /vnetbed/dhclient-hook.sh -cf /etc/dhcp/dhclient.conf \
    -lf /var/lib/dhcp/dhclient.leases -pf /run/dhclient.pid "$1" &
  pid=$!
  probe_emit "\"event\":\"dhclient\",\"t_ms\":$(probe_t_ms),\"state\":\"running\",\"pid\":$(probe_num "$pid")"
  wait "$pid"
  status=$?
  probe_emit "\"event\":\"dhclient\",\"t_ms\":$(probe_t_ms),\"state\":\"exited\",\"pid\":$(probe_num "$pid"),\"status\":$(probe_num "$status")"
}
