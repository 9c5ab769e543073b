//! Parsers for what the soak's helpers print: iperf3's per-second interval lines, ping's
//! reply lines, and the guest agent's `@probe {json}` serial lines.

/// One per-interval line of an iperf3 client (text mode with `-i 1 --forceflush`).
#[derive(Debug, Clone, PartialEq)]
pub struct IperfInterval {
    /// Interval start, seconds into the run.
    pub start: f64,
    /// Interval end.
    pub end: f64,
    /// Bits per second in the interval.
    pub bps: f64,
}

fn unit_factor(unit: &str) -> Option<f64> {
    Some(match unit {
        "bits/sec" => 1.0,
        "Kbits/sec" => 1e3,
        "Mbits/sec" => 1e6,
        "Gbits/sec" => 1e9,
        "Tbits/sec" => 1e12,
        _ => return None,
    })
}

/// Parse `[  5]   0.00-1.00   sec  22.4 MBytes   188 Mbits/sec ...`. Summary lines (ending in
/// `sender`/`receiver`) and everything else give `None`.
pub fn iperf_interval(line: &str) -> Option<IperfInterval> {
    let line = line.trim();
    if !line.starts_with('[') || line.ends_with("sender") || line.ends_with("receiver") {
        return None;
    }
    let rest = &line[line.find(']')? + 1..];
    let words: Vec<&str> = rest.split_whitespace().collect();
    let sec = words.iter().position(|w| *w == "sec")?;
    let (a, b) = words.get(sec.checked_sub(1)?)?.split_once('-')?;
    let (start, end) = (a.parse::<f64>().ok()?, b.parse::<f64>().ok()?);
    let unit_at = words.iter().position(|w| unit_factor(w).is_some())?;
    let value: f64 = words.get(unit_at.checked_sub(1)?)?.parse().ok()?;
    Some(IperfInterval {
        start,
        end,
        bps: value * unit_factor(words[unit_at])?,
    })
}

/// One ping outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum PingLine {
    /// A reply with its sequence number and round-trip time in ms.
    Reply {
        /// icmp_seq.
        seq: u64,
        /// RTT in milliseconds.
        rtt_ms: f64,
    },
    /// `ping -O`'s "no answer yet for icmp_seq=N".
    NoAnswer {
        /// icmp_seq.
        seq: u64,
    },
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    line[at..].split_whitespace().next()
}

/// Parse a line of iputils `ping -O`.
pub fn ping_line(line: &str) -> Option<PingLine> {
    let seq: u64 = field(line, "icmp_seq=")?.parse().ok()?;
    if line.contains("no answer yet") {
        return Some(PingLine::NoAnswer { seq });
    }
    let rtt_ms: f64 = field(line, "time=")?.parse().ok()?;
    Some(PingLine::Reply { seq, rtt_ms })
}

/// The JSON object of a guest agent line (`@probe {json}`), wherever it starts in the line.
pub fn probe_line(line: &str) -> Option<serde_json::Value> {
    let at = line.find("@probe ")?;
    let v: serde_json::Value = serde_json::from_str(line[at + 7..].trim()).ok()?;
    v.is_object().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf_tcp_udp_and_reverse_interval_lines() {
        let tcp = "[  5]   3.00-4.00   sec  1.10 GBytes  9.42 Gbits/sec    0   3.01 MBytes       ";
        assert_eq!(
            iperf_interval(tcp),
            Some(IperfInterval {
                start: 3.0,
                end: 4.0,
                bps: 9.42e9
            })
        );
        let udp = "[  5]   0.00-1.00   sec  23.8 MBytes   200 Mbits/sec  17857  ";
        assert_eq!(iperf_interval(udp).unwrap().bps, 200e6);
        let rev = "[  5]   9.00-10.00  sec   512 KBytes  4.19 Mbits/sec  0.005 ms  0/374 (0%)  ";
        assert!((iperf_interval(rev).unwrap().bps - 4.19e6).abs() < 1.0);
        let slow = "[  5]   1.00-2.00   sec  0.00 Bytes  0.00 bits/sec    2   1.41 KBytes       ";
        assert_eq!(iperf_interval(slow).unwrap().bps, 0.0);
    }

    #[test]
    fn iperf_summaries_and_chatter_are_ignored() {
        for l in [
            "[  5]   0.00-10.00  sec  10.9 GBytes  9.38 Gbits/sec    0             sender",
            "[  5]   0.00-10.04  sec  10.9 GBytes  9.34 Gbits/sec                  receiver",
            "[ ID] Interval           Transfer     Bitrate         Retr  Cwnd",
            "Connecting to host 198.18.0.10, port 5201",
            "[  5] local 198.18.0.1 port 40000 connected to 198.18.0.10 port 5201",
            "iperf3: error - unable to connect to server: Connection refused",
        ] {
            assert_eq!(iperf_interval(l), None, "{l}");
        }
    }

    #[test]
    fn ping_replies_and_misses() {
        assert_eq!(
            ping_line("64 bytes from 198.18.0.10: icmp_seq=5 ttl=64 time=0.312 ms"),
            Some(PingLine::Reply {
                seq: 5,
                rtt_ms: 0.312
            })
        );
        assert_eq!(
            ping_line("no answer yet for icmp_seq=6"),
            Some(PingLine::NoAnswer { seq: 6 })
        );
        assert_eq!(
            ping_line("PING 198.18.0.10 (198.18.0.10) 56(84) bytes of data."),
            None
        );
    }

    #[test]
    fn probe_lines_are_found_inside_noise() {
        let v = probe_line("garbage@probe {\"t_us\":1,\"event\":\"dhcp\",\"state\":\"bound\"}")
            .unwrap();
        assert_eq!(v["state"], "bound");
        assert!(probe_line("@probe not json").is_none());
        assert!(probe_line("plain console text").is_none());
    }
}
