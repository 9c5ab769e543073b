//! DHCP events parsed from dnsmasq's `--log-dhcp` output, and the hub that hands them to
//! subscribers (the soak monitors).
//!
//! dnsmasq 2.90 logs one line per DHCP message, e.g. (with `--log-facility=-`, on stderr):
//!
//! ```text
//! Nov 22 04:40:19 dnsmasq-dhcp[7075]: 2767903268 DHCPDISCOVER(vnbtb0br) a2:99:ed:a8:37:07
//! Nov 22 04:40:19 dnsmasq-dhcp[7075]: 2767903268 DHCPOFFER(vnbtb0br) 198.18.0.139 a2:99:ed:a8:37:07
//! Nov 22 04:40:19 dnsmasq-dhcp[7075]: 2767903268 DHCPREQUEST(vnbtb0br) 198.18.0.139 a2:99:ed:a8:37:07
//! Nov 22 04:40:19 dnsmasq-dhcp[7075]: 2767903268 DHCPACK(vnbtb0br) 198.18.0.139 a2:99:ed:a8:37:07 host
//! ```
//!
//! that is: transaction id (with `--log-dhcp`), `DHCP<TYPE>(<interface>)`, the address when
//! the message carries one, the client's hardware address, then optional text (host name, NAK
//! reason). dnsmasq's own timestamp has one-second resolution and no year, so each event is
//! stamped with the time vnetbed read the line.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The kind of DHCP message dnsmasq logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DhcpEventKind {
    /// Client looks for servers.
    Discover,
    /// Server offers an address.
    Offer,
    /// Client requests (selects, renews or rebinds) an address.
    Request,
    /// Server confirms a lease.
    Ack,
    /// Server refuses a request.
    Nak,
    /// Client gives its address back.
    Release,
    /// Client refuses an offered address.
    Decline,
    /// Client asks for configuration only.
    Inform,
}

impl DhcpEventKind {
    fn from_log(word: &str) -> Option<Self> {
        Some(match word {
            "DISCOVER" => Self::Discover,
            "OFFER" => Self::Offer,
            "REQUEST" => Self::Request,
            "ACK" => Self::Ack,
            "NAK" => Self::Nak,
            "RELEASE" => Self::Release,
            "DECLINE" => Self::Decline,
            "INFORM" => Self::Inform,
            _ => return None,
        })
    }
}

/// One DHCP message seen by dnsmasq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpEvent {
    /// Message type.
    pub kind: DhcpEventKind,
    /// Client hardware address, lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The address the message is about (absent in e.g. a DISCOVER without a requested address).
    pub ip: Option<Ipv4Addr>,
    /// The interface dnsmasq received it on (the testbed bridge).
    pub interface: String,
    /// DHCP transaction id, when logged.
    pub xid: Option<u32>,
    /// When vnetbed read the log line, in milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// Text after the hardware address (host name, NAK reason), possibly empty.
    pub detail: String,
}

impl DhcpEvent {
    /// The event time as a `SystemTime`.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.time_unix_ms)
    }
}

fn is_mac(token: &str) -> bool {
    let parts: Vec<&str> = token.split(':').collect();
    parts.len() >= 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Parse one dnsmasq log line; `None` for lines that are not a DHCP message.
pub fn parse_line(line: &str, time: SystemTime) -> Option<DhcpEvent> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let at = tokens
        .iter()
        .position(|t| t.starts_with("DHCP") && t.ends_with(')') && t.contains('('))?;
    let (kind_word, interface) = tokens[at]
        .strip_prefix("DHCP")?
        .strip_suffix(')')?
        .split_once('(')?;
    let kind = DhcpEventKind::from_log(kind_word)?;
    let xid = at
        .checked_sub(1)
        .and_then(|i| tokens[i].parse::<u32>().ok());
    let mut rest = tokens[at + 1..].iter().peekable();
    let ip = rest.peek().and_then(|t| t.parse::<Ipv4Addr>().ok());
    if ip.is_some() {
        rest.next();
    }
    let mac = rest.next().filter(|t| is_mac(t))?.to_ascii_lowercase();
    let detail = rest.copied().collect::<Vec<_>>().join(" ");
    let time_unix_ms = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Some(DhcpEvent {
        kind,
        mac,
        ip,
        interface: interface.to_string(),
        xid,
        time_unix_ms,
        detail,
    })
}

/// Read an `events.jsonl` journal (as a testbed writes it in its state directory); lines that
/// are not events (e.g. a line cut short while being written) are skipped.
pub fn read_journal(path: &std::path::Path) -> std::io::Result<Vec<DhcpEvent>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// How many past events a hub keeps for late readers.
const HISTORY: usize = 100_000;

#[derive(Default)]
struct HubInner {
    subscribers: Vec<Sender<DhcpEvent>>,
    history: VecDeque<DhcpEvent>,
}

/// Fans DHCP events out to subscribers and keeps a bounded history.
#[derive(Clone, Default)]
pub struct EventHub {
    inner: Arc<Mutex<HubInner>>,
}

impl EventHub {
    /// A new, empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        // A panic while holding the lock cannot leave the queue half-updated in a way that
        // matters here, so recover from poisoning instead of propagating it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deliver an event to every live subscriber and record it.
    pub fn publish(&self, event: DhcpEvent) {
        let mut inner = self.lock();
        inner.subscribers.retain(|s| s.send(event.clone()).is_ok());
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> Receiver<DhcpEvent> {
        let (tx, rx) = channel();
        self.lock().subscribers.push(tx);
        rx
    }

    /// The events seen so far (at most the last 100 000).
    pub fn history(&self) -> Vec<DhcpEvent> {
        self.lock().history.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: fn() -> SystemTime = || UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);

    #[test]
    fn parses_the_four_step_exchange_of_dnsmasq_2_90() {
        let lines = [
            "Nov 22 04:40:19 dnsmasq-dhcp[7075]: 2767903268 DHCPDISCOVER(br0) a2:99:ed:a8:37:07 ",
            "Nov 22 04:40:19 dnsmasq-dhcp[7075]: 2767903268 DHCPOFFER(br0) 198.18.0.139 a2:99:ed:a8:37:07 ",
            "Nov 22 04:40:19 dnsmasq-dhcp[7075]: 2767903268 DHCPREQUEST(br0) 198.18.0.139 a2:99:ed:a8:37:07 ",
            "Nov 22 04:40:19 dnsmasq-dhcp[7075]: 2767903268 DHCPACK(br0) 198.18.0.139 A2:99:ED:A8:37:07 vm",
        ];
        let events: Vec<DhcpEvent> = lines.iter().filter_map(|l| parse_line(l, T())).collect();
        let kinds: Vec<DhcpEventKind> = events.iter().map(|e| e.kind).collect();
        use DhcpEventKind::*;
        assert_eq!(kinds, [Discover, Offer, Request, Ack]);
        assert_eq!(events[0].ip, None);
        assert_eq!(events[3].ip, Some(Ipv4Addr::new(198, 18, 0, 139)));
        assert!(events
            .iter()
            .all(|e| e.mac == "a2:99:ed:a8:37:07" && e.interface == "br0"));
        assert_eq!(events[3].xid, Some(2767903268));
        assert_eq!(events[3].detail, "vm");
        assert_eq!(events[3].time_unix_ms, 1_700_000_000_123);
    }

    #[test]
    fn parses_nak_and_release_and_ignores_other_lines() {
        let nak = parse_line(
            "Nov 22 04:40:19 dnsmasq-dhcp[1]: 17 DHCPNAK(br0) 198.18.0.77 02:00:00:00:00:01 wrong network",
            T(),
        )
        .unwrap();
        assert_eq!(nak.kind, DhcpEventKind::Nak);
        assert_eq!(nak.detail, "wrong network");
        let rel = parse_line(
            "dnsmasq-dhcp[1]: DHCPRELEASE(br0) 198.18.0.77 02:00:00:00:00:01",
            T(),
        )
        .unwrap();
        assert_eq!((rel.kind, rel.xid), (DhcpEventKind::Release, None));
        for other in [
            "Nov 22 04:39:11 dnsmasq-dhcp[6248]: DHCP, IP range 198.18.0.10 -- 198.18.0.250, lease time 2m",
            "Nov 22 04:39:18 dnsmasq-dhcp[6248]: 3952046440 sent size:  4 option: 58 T1  30s",
            "Nov 22 04:39:18 dnsmasq-dhcp[6248]: 3952046440 DHCPFOO(br0) 1.2.3.4 02:00:00:00:00:01",
            "Nov 22 04:39:18 dnsmasq-dhcp[6248]: 3952046440 DHCPACK(br0) 1.2.3.4 not-a-mac",
            "",
        ] {
            assert_eq!(parse_line(other, T()), None, "{other}");
        }
    }

    #[test]
    fn hub_delivers_to_subscribers_and_keeps_history() {
        let hub = EventHub::new();
        let rx = hub.subscribe();
        let ev = parse_line("DHCPACK(br0) 198.18.0.9 02:00:00:00:00:01", T()).unwrap();
        hub.publish(ev.clone());
        assert_eq!(rx.try_recv().unwrap(), ev);
        drop(rx);
        hub.publish(ev.clone());
        assert_eq!(hub.history().len(), 2);
    }
}
