//! Pairs what the DHCP server saw (dnsmasq's log) with what the guest reported, so that each
//! exchange is known as answered or not, and received by the guest or not.
//!
//! An exchange opens with the guest's DISCOVER or REQUEST (from dnsmasq's log) and takes the
//! server's OFFER/ACK/NAK as its reply. It closes:
//! - received, when the guest then reports a state that needs that reply (`bound` after an
//!   ACK, `requesting` after an OFFER);
//! - not received, when the guest sends its next request first, or [`CONFIRM_WAIT_S`] passes;
//! - unanswered, when [`ANSWER_WAIT_S`] passes without a reply (or the next request comes).
//!
//! The phase of a REQUEST (first lease, renewal, rebinding) comes from what the guest said
//! when it sent it: its `dhcp tx` line names its state (`selecting`, `renewing`,
//! `rebinding`) and the transaction id. The guest's serial lines and dnsmasq's log race, so
//! that line may come before or after the server's; it is paired with the server's REQUEST by
//! xid either way. Without it, a REQUEST with the xid of the guest's last DISCOVER is the
//! boot exchange (RFC 2131 §4.4.1: the REQUEST in SELECTING keeps the DISCOVER's xid), even
//! when the guest's `bound` line came first; otherwise the guest's last lease state decides.
//!
//! A reply the guest never confirmed counts as not received, with one exception: when no
//! stall has been seen in the run and the host's tap dropped frames toward the guest while
//! the reply was in flight (its queue overflowed: a busy host, the guest too slow to drain
//! it), the reply was most likely lost to that congestion. Its receipt is then left unknown
//! (`received_by_guest` absent, `host_dropped` set), so that a fenced soak on a loaded
//! machine is not failed for what is not a lost notification.

use crate::net::dhcp_events::{DhcpEvent, DhcpEventKind};
use crate::record::{DhcpExchange, DhcpPhase, LeaseState};

/// How long a reply may go unconfirmed by the guest before it counts as not received.
pub const CONFIRM_WAIT_S: f64 = 5.0;
/// How long a request may go unanswered before it is recorded as such.
pub const ANSWER_WAIT_S: f64 = 10.0;

#[derive(Debug)]
struct Open {
    exchange: DhcpExchange,
    replied_at: Option<f64>,
    /// The tap's dropped-frame total when the reply was seen.
    dropped_at_reply: Option<u64>,
    /// Whether the guest's own line named this exchange's phase.
    phase_named: bool,
}

/// The tracker for one guest MAC.
#[derive(Debug)]
pub struct DhcpTracker {
    mac: String,
    lease: Option<LeaseState>,
    open: Option<Open>,
    done: Vec<DhcpExchange>,
    /// Answers the guest reported before the server's log line for them was seen (the two
    /// streams race): (kind, xid, at).
    early_receipts: Vec<(String, Option<u32>, f64)>,
    /// The host tap's dropped-frame total toward the guest, as last noted.
    tap_dropped: u64,
    /// Whether a stall has been seen in this run.
    stalled: bool,
    /// Phases the guest named for REQUESTs it sent that the server's log has not shown yet:
    /// (xid, phase, at).
    pending_phases: Vec<(u32, DhcpPhase, f64)>,
    /// The xid of the guest's last DISCOVER, as the server saw it.
    discover_xid: Option<u32>,
}

/// The phase of a REQUEST the guest says it sent in `state` (its `dhcp tx` line's word).
pub fn request_phase_from_state(state: LeaseState) -> DhcpPhase {
    match state {
        LeaseState::Renewing => DhcpPhase::Renew,
        LeaseState::Rebinding => DhcpPhase::Rebind,
        _ => DhcpPhase::Request,
    }
}

/// The phase of a server-side event when the guest has not named it: a REQUEST with the xid
/// of the last DISCOVER is the boot exchange; otherwise the guest's last lease state decides.
fn phase_for(
    kind: DhcpEventKind,
    lease: Option<LeaseState>,
    same_xid_as_discover: bool,
) -> DhcpPhase {
    match kind {
        DhcpEventKind::Discover => DhcpPhase::Discover,
        DhcpEventKind::Request if same_xid_as_discover => DhcpPhase::Request,
        DhcpEventKind::Request => match lease {
            Some(LeaseState::Renewing) => DhcpPhase::Renew,
            Some(LeaseState::Rebinding) => DhcpPhase::Rebind,
            // A guest that holds a lease and asks again is renewing, even if its state line
            // has not arrived yet.
            Some(LeaseState::Bound) => DhcpPhase::Renew,
            _ => DhcpPhase::Request,
        },
        _ => DhcpPhase::Other,
    }
}

impl DhcpTracker {
    /// Track the guest with MAC `mac` (any case).
    pub fn new(mac: &str) -> Self {
        Self {
            mac: mac.to_ascii_lowercase(),
            lease: None,
            open: None,
            done: Vec::new(),
            early_receipts: Vec::new(),
            tap_dropped: 0,
            stalled: false,
            pending_phases: Vec::new(),
            discover_xid: None,
        }
    }

    /// The guest sent a REQUEST with transaction id `xid` in `state` (its `dhcp tx` line,
    /// at run time `at`). This names the exchange's phase, whichever of the guest's line and
    /// the server's log line comes first.
    pub fn guest_sent_request(&mut self, xid: Option<u32>, state: LeaseState, at: f64) {
        self.guest_state(state, at);
        let Some(xid) = xid else { return };
        let phase = request_phase_from_state(state);
        // The server's line came first: the open exchange is this one, name its phase.
        if let Some(o) = self.open.as_mut() {
            let open_xid = o.exchange.xid.as_deref().and_then(parse_xid);
            if o.exchange.message == "request" && open_xid == Some(xid) && !o.phase_named {
                o.exchange.phase = phase;
                o.phase_named = true;
                return;
            }
        }
        self.pending_phases
            .retain(|(_, _, t)| at - t < ANSWER_WAIT_S);
        self.pending_phases.push((xid, phase, at));
    }

    /// The host tap's total of frames dropped toward the guest (call about once a second).
    pub fn note_tap_dropped(&mut self, total: u64) {
        self.tap_dropped = total;
    }

    /// A stall was seen: from now on a missing receipt is never put down to congestion.
    pub fn note_stall(&mut self) {
        self.stalled = true;
    }

    /// The guest's last reported lease state.
    pub fn lease(&self) -> Option<LeaseState> {
        self.lease
    }

    fn close(&mut self, received: Option<bool>) {
        if let Some(mut o) = self.open.take() {
            if o.exchange.reply.is_some() {
                o.exchange.received_by_guest = received;
                o.exchange.replied_at = o.replied_at;
                let dropped = o
                    .dropped_at_reply
                    .map_or(0, |d| self.tap_dropped.saturating_sub(d));
                if received == Some(false) && !self.stalled && dropped > 0 {
                    o.exchange.received_by_guest = None;
                    o.exchange.host_dropped = Some(dropped);
                }
            }
            self.done.push(o.exchange);
        }
    }

    /// A server-side event at run time `at`.
    pub fn server_event(&mut self, ev: &DhcpEvent, at: f64) {
        if ev.mac.to_ascii_lowercase() != self.mac {
            return;
        }
        match ev.kind {
            DhcpEventKind::Discover
            | DhcpEventKind::Request
            | DhcpEventKind::Release
            | DhcpEventKind::Decline
            | DhcpEventKind::Inform => {
                // The guest asked again before confirming the previous answer: it did not get it.
                self.close(Some(false));
                if ev.kind == DhcpEventKind::Discover {
                    self.discover_xid = ev.xid;
                }
                let named = match (ev.kind, ev.xid) {
                    (DhcpEventKind::Request, Some(xid)) => self
                        .pending_phases
                        .iter()
                        .position(|(x, _, _)| *x == xid)
                        .map(|i| self.pending_phases.remove(i).1),
                    _ => None,
                };
                let same_xid_as_discover = ev.xid.is_some() && ev.xid == self.discover_xid;
                let phase =
                    named.unwrap_or_else(|| phase_for(ev.kind, self.lease, same_xid_as_discover));
                let exchange = DhcpExchange {
                    at,
                    phase,
                    message: format!("{:?}", ev.kind).to_ascii_lowercase(),
                    xid: ev.xid.map(|x| format!("{x:08x}")),
                    mac: Some(self.mac.clone()),
                    ip: ev.ip.map(|i| i.to_string()),
                    reply: None,
                    received_by_guest: None,
                    replied_at: None,
                    host_dropped: None,
                };
                let one_way = matches!(ev.kind, DhcpEventKind::Release | DhcpEventKind::Decline);
                self.open = Some(Open {
                    exchange,
                    replied_at: None,
                    dropped_at_reply: None,
                    phase_named: named.is_some(),
                });
                if one_way {
                    // Nothing to answer: record it as it is.
                    if let Some(o) = self.open.take() {
                        self.done.push(o.exchange);
                    }
                }
            }
            DhcpEventKind::Offer | DhcpEventKind::Ack | DhcpEventKind::Nak => {
                if let Some(o) = &mut self.open {
                    o.exchange.reply = Some(format!("{:?}", ev.kind).to_ascii_lowercase());
                    if o.exchange.ip.is_none() {
                        o.exchange.ip = ev.ip.map(|i| i.to_string());
                    }
                    o.replied_at = Some(at);
                    o.dropped_at_reply = Some(self.tap_dropped);
                }
                let reply = format!("{:?}", ev.kind).to_ascii_lowercase();
                if let Some(i) = self
                    .early_receipts
                    .iter()
                    .position(|(k, x, _)| *k == reply && self.matches_open(*x))
                {
                    self.early_receipts.remove(i);
                    self.close(Some(true));
                }
            }
        }
    }

    /// The guest reported `state` at run time `at`.
    pub fn guest_state(&mut self, state: LeaseState, _at: f64) {
        self.lease = Some(state);
        let confirms = match self.open.as_ref().and_then(|o| o.exchange.reply.as_deref()) {
            Some("ack") => state == LeaseState::Bound,
            Some("offer") => state == LeaseState::Requesting,
            Some("nak") => matches!(state, LeaseState::Init | LeaseState::Selecting),
            _ => false,
        };
        if confirms {
            self.close(Some(true));
        }
    }

    /// The guest reported receiving a `kind` message (`offer`, `ack`, `nak`) with transaction
    /// id `xid` (when known): the open exchange's answer reached it.
    pub fn guest_received(&mut self, kind: &str, xid: Option<u32>, at: f64) {
        // An ACK that reached a renewing or rebinding guest extends its lease: it is bound
        // again (the probe reports the ACK on its wire rather than a new state line).
        if kind == "ack"
            && matches!(
                self.lease,
                Some(LeaseState::Renewing | LeaseState::Rebinding)
            )
        {
            self.lease = Some(LeaseState::Bound);
        }
        let replied = self.open.as_ref().and_then(|o| o.exchange.reply.as_deref()) == Some(kind);
        if replied && self.matches_open(xid) {
            self.close(Some(true));
        } else {
            // The server's log line for this answer has not been seen yet: keep it a while.
            self.early_receipts
                .retain(|(_, _, t)| at - t < CONFIRM_WAIT_S);
            self.early_receipts.push((kind.to_string(), xid, at));
        }
    }

    fn matches_open(&self, xid: Option<u32>) -> bool {
        let Some(o) = &self.open else { return false };
        match (xid, o.exchange.xid.as_deref()) {
            (Some(x), Some(open)) => parse_xid(open) == Some(x),
            _ => true,
        }
    }

    /// Close exchanges that waited too long (call about once a second).
    pub fn tick(&mut self, now: f64) {
        let Some(o) = &self.open else { return };
        match o.replied_at {
            Some(r) if now - r >= CONFIRM_WAIT_S => self.close(Some(false)),
            None if now - o.exchange.at >= ANSWER_WAIT_S => self.close(None),
            _ => {}
        }
    }

    /// Close whatever is open (the run ends at run time `end_at`): an answer the guest never
    /// confirmed was not received, unless it came too late in the run for the guest to say so
    /// (within [`RECEIPT_GRACE_S`] of the end): that one is unknown, not failed.
    pub fn finish(&mut self, end_at: f64) {
        let late = self
            .open
            .as_ref()
            .and_then(|o| o.replied_at)
            .is_some_and(|at| at > end_at - RECEIPT_GRACE_S);
        self.close(if late { None } else { Some(false) });
    }

    /// Exchanges closed since the last call.
    pub fn take_closed(&mut self) -> Vec<DhcpExchange> {
        std::mem::take(&mut self.done)
    }
}

/// Seconds a guest has, at the end of a run, to report an answer it received.
pub const RECEIPT_GRACE_S: f64 = 2.0;

/// A transaction id as the record writes it (8 hex digits, or `0x`-prefixed).
pub fn parse_xid(text: &str) -> Option<u32> {
    u32::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

/// Map a guest agent's state word to a lease state.
pub fn lease_state_from_word(word: &str) -> Option<LeaseState> {
    Some(match word.to_ascii_lowercase().as_str() {
        "init" | "init_reboot" | "rebooting" => LeaseState::Init,
        "selecting" | "discovering" => LeaseState::Selecting,
        "unbound" => LeaseState::Expired,
        "requesting" => LeaseState::Requesting,
        "bound" | "renewed" | "rebound" | "reboot" => LeaseState::Bound,
        "renewing" | "renew" => LeaseState::Renewing,
        "rebinding" | "rebind" => LeaseState::Rebinding,
        "expired" | "expire" | "released" | "failed" | "fail" | "stopped" => LeaseState::Expired,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MAC: &str = "52:54:00:aa:bb:01";

    fn ev(kind: DhcpEventKind) -> DhcpEvent {
        DhcpEvent {
            kind,
            mac: MAC.to_string(),
            ip: Some(Ipv4Addr::new(198, 18, 0, 50)),
            interface: "br".into(),
            xid: Some(0xec54),
            time_unix_ms: 0,
            detail: String::new(),
        }
    }

    fn ev_xid(kind: DhcpEventKind, xid: u32) -> DhcpEvent {
        DhcpEvent {
            xid: Some(xid),
            ..ev(kind)
        }
    }

    fn phases(done: &[DhcpExchange]) -> Vec<(DhcpPhase, Option<bool>)> {
        done.iter()
            .map(|e| (e.phase, e.received_by_guest))
            .collect()
    }

    /// The boot exchange as a soak sees it when the guest's serial lines win the race with
    /// dnsmasq's log: the guest has sent its REQUEST (saying `selecting`), received the ACK and
    /// reported `bound` before the server's REQUEST line arrives. That REQUEST is the first
    /// lease, not a renewal.
    #[test]
    fn the_boot_request_racing_the_bound_line_is_not_a_renewal() {
        const BOOT: u32 = 0x5a1c_03e2;
        let mut t = DhcpTracker::new(MAC);
        t.guest_state(LeaseState::Selecting, 0.1);
        t.guest_received("offer", Some(BOOT), 0.9);
        t.guest_sent_request(Some(BOOT), LeaseState::Selecting, 1.0);
        t.guest_received("ack", Some(BOOT), 1.1);
        t.guest_state(LeaseState::Bound, 1.1);
        t.server_event(&ev_xid(DhcpEventKind::Discover, BOOT), 1.2);
        t.server_event(&ev_xid(DhcpEventKind::Offer, BOOT), 1.2);
        t.server_event(&ev_xid(DhcpEventKind::Request, BOOT), 1.3);
        t.server_event(&ev_xid(DhcpEventKind::Ack, BOOT), 1.3);
        let done = t.take_closed();
        assert_eq!(
            phases(&done),
            vec![
                (DhcpPhase::Discover, Some(true)),
                (DhcpPhase::Request, Some(true))
            ],
            "{done:?}"
        );
        assert!(!done.iter().any(|e| e.phase.is_renewal()));
    }

    /// The same race from a guest that does not report what it sends (no `dhcp tx` lines):
    /// the REQUEST carries the DISCOVER's xid, so it is the boot exchange.
    #[test]
    fn a_request_with_the_discover_xid_is_the_first_lease_even_after_bound() {
        const BOOT: u32 = 0x0bad_cafe;
        let mut t = DhcpTracker::new(MAC);
        t.server_event(&ev_xid(DhcpEventKind::Discover, BOOT), 0.5);
        t.server_event(&ev_xid(DhcpEventKind::Offer, BOOT), 0.5);
        t.guest_state(LeaseState::Requesting, 0.6);
        t.guest_state(LeaseState::Bound, 0.8);
        t.server_event(&ev_xid(DhcpEventKind::Request, BOOT), 0.9);
        t.server_event(&ev_xid(DhcpEventKind::Ack, BOOT), 0.9);
        t.guest_received("ack", Some(BOOT), 1.0);
        // A renewal at T1 has a new xid: a renewal, though the guest still says `bound`.
        t.server_event(&ev_xid(DhcpEventKind::Request, 0x1111), 30.0);
        t.server_event(&ev_xid(DhcpEventKind::Ack, 0x1111), 30.0);
        t.guest_received("ack", Some(0x1111), 30.1);
        assert_eq!(
            phases(&t.take_closed()),
            vec![
                (DhcpPhase::Discover, Some(true)),
                (DhcpPhase::Request, Some(true)),
                (DhcpPhase::Renew, Some(true))
            ]
        );
    }

    /// When dnsmasq's line comes first, the guest's later `dhcp tx` line still names the
    /// phase: a REQUEST the guest sent while rebinding is a rebind.
    #[test]
    fn the_guests_own_word_names_the_phase_whichever_line_comes_first() {
        let mut t = DhcpTracker::new(MAC);
        t.guest_state(LeaseState::Bound, 1.0);
        t.server_event(&ev_xid(DhcpEventKind::Request, 0x2222), 52.0);
        t.guest_sent_request(Some(0x2222), LeaseState::Rebinding, 52.0);
        t.server_event(&ev_xid(DhcpEventKind::Ack, 0x2222), 52.1);
        t.guest_received("ack", Some(0x2222), 52.2);
        // The guest's line first, for a renewal.
        t.guest_sent_request(Some(0x3333), LeaseState::Renewing, 90.0);
        t.server_event(&ev_xid(DhcpEventKind::Request, 0x3333), 90.1);
        t.server_event(&ev_xid(DhcpEventKind::Ack, 0x3333), 90.1);
        t.guest_received("ack", Some(0x3333), 90.2);
        assert_eq!(
            phases(&t.take_closed()),
            vec![
                (DhcpPhase::Rebind, Some(true)),
                (DhcpPhase::Renew, Some(true))
            ]
        );
    }

    #[test]
    fn a_renewal_answered_and_received() {
        let mut t = DhcpTracker::new(MAC);
        t.guest_state(LeaseState::Bound, 0.0);
        t.guest_state(LeaseState::Renewing, 30.0);
        t.server_event(&ev(DhcpEventKind::Request), 30.1);
        t.server_event(&ev(DhcpEventKind::Ack), 30.1);
        t.guest_state(LeaseState::Bound, 30.2);
        let done = t.take_closed();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].phase, DhcpPhase::Renew);
        assert_eq!(done[0].reply.as_deref(), Some("ack"));
        assert_eq!(done[0].received_by_guest, Some(true));
        assert_eq!(done[0].xid.as_deref(), Some("0000ec54"));
    }

    #[test]
    fn the_2012_pattern_answered_but_never_received() {
        let mut t = DhcpTracker::new(MAC);
        t.guest_state(LeaseState::Renewing, 30.0);
        t.server_event(&ev(DhcpEventKind::Request), 30.0);
        t.server_event(&ev(DhcpEventKind::Ack), 30.0);
        // The guest asks again: it never saw the ACK.
        t.server_event(&ev(DhcpEventKind::Request), 45.0);
        t.server_event(&ev(DhcpEventKind::Ack), 45.0);
        t.guest_state(LeaseState::Rebinding, 52.0);
        t.server_event(&ev(DhcpEventKind::Request), 52.0);
        t.tick(56.0);
        t.server_event(&ev(DhcpEventKind::Ack), 52.1);
        t.tick(57.2);
        let done = t.take_closed();
        let phases: Vec<_> = done
            .iter()
            .map(|e| (e.phase, e.received_by_guest))
            .collect();
        assert_eq!(
            phases,
            vec![
                (DhcpPhase::Renew, Some(false)),
                (DhcpPhase::Renew, Some(false)),
                (DhcpPhase::Rebind, Some(false))
            ]
        );
    }

    #[test]
    fn an_answer_in_the_runs_last_moments_is_unknown_not_failed() {
        let mut t = DhcpTracker::new(MAC);
        t.guest_state(LeaseState::Renewing, 30.0);
        t.server_event(&ev(DhcpEventKind::Request), 30.0);
        t.server_event(&ev(DhcpEventKind::Ack), 30.1);
        t.finish(31.0);
        assert_eq!(t.take_closed()[0].received_by_guest, None);
        let mut t = DhcpTracker::new(MAC);
        t.guest_state(LeaseState::Renewing, 30.0);
        t.server_event(&ev(DhcpEventKind::Request), 30.0);
        t.server_event(&ev(DhcpEventKind::Ack), 30.1);
        t.finish(33.0);
        assert_eq!(t.take_closed()[0].received_by_guest, Some(false));
    }

    #[test]
    fn an_unconfirmed_answer_amid_host_tap_drops_without_a_stall_is_congestion() {
        let mut t = DhcpTracker::new(MAC);
        t.note_tap_dropped(10);
        t.guest_state(LeaseState::Renewing, 30.0);
        t.server_event(&ev(DhcpEventKind::Request), 30.0);
        t.server_event(&ev(DhcpEventKind::Ack), 30.1);
        t.note_tap_dropped(250);
        t.tick(35.2);
        let done = t.take_closed();
        assert_eq!(done[0].received_by_guest, None, "{done:?}");
        assert_eq!(done[0].host_dropped, Some(240));
        assert_eq!(done[0].replied_at, Some(30.1));
        // No drops meanwhile: not received, as before.
        t.server_event(&ev(DhcpEventKind::Request), 40.0);
        t.server_event(&ev(DhcpEventKind::Ack), 40.1);
        t.tick(45.2);
        let done = t.take_closed();
        assert_eq!(done[0].received_by_guest, Some(false));
        assert_eq!(done[0].host_dropped, None);
        // After a stall, drops are the stall's doing: not received.
        t.note_stall();
        t.server_event(&ev(DhcpEventKind::Request), 50.0);
        t.server_event(&ev(DhcpEventKind::Ack), 50.1);
        t.note_tap_dropped(900);
        t.tick(55.2);
        let done = t.take_closed();
        assert_eq!(done[0].received_by_guest, Some(false));
        assert_eq!(done[0].host_dropped, None);
    }

    #[test]
    fn the_guest_reporting_the_ack_on_its_wire_is_receipt() {
        let mut t = DhcpTracker::new(MAC);
        t.guest_state(LeaseState::Renewing, 30.0);
        t.server_event(&ev(DhcpEventKind::Request), 30.0);
        t.server_event(&ev(DhcpEventKind::Ack), 30.0);
        // An answer to another transaction does not count.
        t.guest_received("ack", Some(0x1234), 30.1);
        assert!(t.take_closed().is_empty());
        t.guest_received("ack", Some(0xec54), 30.1);
        let done = t.take_closed();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].received_by_guest, Some(true));
        assert_eq!(
            t.lease(),
            Some(LeaseState::Bound),
            "a received ACK ends RENEWING"
        );

        // The guest's line may come before the server's log line.
        t.guest_state(LeaseState::Renewing, 60.0);
        t.server_event(&ev(DhcpEventKind::Request), 60.0);
        t.guest_received("ack", Some(0xec54), 60.1);
        assert!(t.take_closed().is_empty());
        t.server_event(&ev(DhcpEventKind::Ack), 60.2);
        let done = t.take_closed();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].received_by_guest, Some(true));
    }

    #[test]
    fn unanswered_requests_time_out_without_a_reply() {
        let mut t = DhcpTracker::new(MAC);
        t.guest_state(LeaseState::Renewing, 30.0);
        t.server_event(&ev(DhcpEventKind::Request), 30.0);
        t.tick(35.0);
        assert!(t.take_closed().is_empty());
        t.tick(40.0);
        let done = t.take_closed();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].reply, None);
        assert_eq!(done[0].received_by_guest, None);
    }

    #[test]
    fn other_macs_are_ignored_and_words_map_to_states() {
        let mut t = DhcpTracker::new("52:54:00:00:00:99");
        t.server_event(&ev(DhcpEventKind::Request), 1.0);
        t.finish(10.0);
        assert!(t.take_closed().is_empty());
        assert_eq!(lease_state_from_word("BOUND"), Some(LeaseState::Bound));
        assert_eq!(
            lease_state_from_word("rebinding"),
            Some(LeaseState::Rebinding)
        );
        assert_eq!(lease_state_from_word("expired"), Some(LeaseState::Expired));
        assert_eq!(lease_state_from_word("??"), None);
    }
}
