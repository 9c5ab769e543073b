//! Stalls the probe guest's own detector reports (`@probe` `stall` lines), confirmed on the
//! host before they count.
//!
//! vnetbed cannot see inside another VMM's device, so for QEMU the guest is the detector. A
//! guest's finding counts as a stall only when the host confirms it in the seconds after the
//! report, from the guest's tap in the testbed namespace:
//! - rx: the VMM took no frame from the tap (`tx_packets` flat) while frames for the guest
//!   waited: the tap dropped some (`tx_dropped` grew) or iperf3 was sending to the guest;
//! - tx: no frame from the guest reached the tap (`rx_packets` flat).
//!
//! A finding the host contradicts (the VMM kept moving frames) is kept as a note, not as a
//! stall.

use std::collections::VecDeque;

use serde_json::Value;

use crate::record::{Stall, StallKind, StallSource};

/// How long after a guest's report the host watches the tap before it decides.
pub const CONFIRM_S: f64 = 2.0;

/// How much tap history is kept, seconds.
const HISTORY_S: f64 = 30.0;

/// The guest tap's counters, as `ip -s -j link` gives them. The tap's tx is toward the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Frames the VMM read from the tap (toward the guest).
    pub tx_packets: u64,
    /// Frames dropped toward the guest because the tap's queue was full.
    pub tx_dropped: u64,
    /// Frames the VMM wrote to the tap (from the guest).
    pub rx_packets: u64,
}

impl TapStats {
    /// From the JSON of `ip -s -j link show dev TAP`.
    pub fn from_ip_json(json: &str) -> Option<TapStats> {
        let links: Value = serde_json::from_str(json).ok()?;
        let stats = links.get(0)?.get("stats64")?;
        let n = |dir: &str, key: &str| stats.get(dir)?.get(key)?.as_u64();
        Some(TapStats {
            tx_packets: n("tx", "packets")?,
            tx_dropped: n("tx", "dropped")?,
            rx_packets: n("rx", "packets")?,
        })
    }
}

/// A guest `stall` line as a stall record (`source: guest`), timed by the run-elapsed
/// second `at` at which the line arrived; the guest's own microsecond clock (`t_us`) times
/// the rest relative to it. `None` for a line that is not a well-formed stall.
pub fn from_line(line: &Value, at: f64) -> Option<Stall> {
    let queue = line.get("queue")?.as_str()?;
    if queue != "rx" && queue != "tx" {
        return None;
    }
    let kind = match line.get("kind")?.as_str()? {
        "lost_interrupt" => StallKind::LostInterrupt,
        "device_stalled" if line.get("lost_kick_signature")?.as_bool()? => StallKind::LostKick,
        "device_stalled" => StallKind::NoProgress,
        _ => return None,
    };
    let u16_of = |k: &str| {
        line.get(k)
            .and_then(Value::as_u64)
            .and_then(|v| u16::try_from(v).ok())
    };
    let now_us = line.get("t_us").and_then(Value::as_u64);
    // A guest time in microseconds as run-elapsed seconds, through the line's own clock.
    let guest_time = |k: &str| {
        let then = line.get(k)?.as_u64()?;
        let now = now_us?;
        Some(at - now.saturating_sub(then) as f64 / 1e6)
    };
    let stalled_ms = line.get("stalled_ms").and_then(Value::as_u64).unwrap_or(0);
    let event_idx = line
        .get("event_idx")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some(Stall {
        source: StallSource::Guest,
        queue: queue.to_string(),
        kind,
        detected_at: at,
        stalled_since: guest_time("stalled_since_us")
            .unwrap_or(at - stalled_ms as f64 / 1000.0)
            .max(0.0),
        device_next_avail: u16_of("device_avail_event").unwrap_or(0),
        device_next_used: u16_of("guest_visible_used_idx").unwrap_or(0),
        guest_last_used_idx: u16_of("guest_last_used_idx"),
        host_evidence: None,
        guest_avail_idx: u16_of("guest_avail_idx").unwrap_or(0),
        guest_used_event: u16_of("guest_used_event").filter(|_| event_idx),
        guest_avail_flags: u16_of("guest_avail_flags").unwrap_or(0),
        last_kick_at: guest_time("last_kick_us").map(|t| t.max(0.0)),
        last_interrupt_at: guest_time("last_interrupt_us").map(|t| t.max(0.0)),
    })
}

/// What became of a guest's report.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// The host confirmed it: a stall, with `host_evidence` filled in.
    Confirmed(Stall),
    /// The host contradicted it, or could not tell: the reason.
    Unconfirmed(Stall, String),
}

/// One reading: run-elapsed second, value.
type Reading<T> = (f64, T);

/// Readings of one counter source over the last [`HISTORY_S`] seconds, by run-elapsed
/// second.
#[derive(Debug)]
struct Readings<T>(VecDeque<Reading<T>>);

impl<T> Default for Readings<T> {
    fn default() -> Self {
        Self(VecDeque::new())
    }
}

impl<T: Copy> Readings<T> {
    fn push(&mut self, at: f64, value: T) {
        self.0.push_back((at, value));
        while self.0.front().is_some_and(|(t, _)| *t < at - HISTORY_S) {
            self.0.pop_front();
        }
    }

    /// The watch of a report made at `at`: the last reading at or before it, and the last
    /// reading of the watch (up to a second after it ends), when there are such readings.
    fn watch(&self, at: f64) -> (Option<Reading<T>>, Option<Reading<T>>) {
        let last_until = |end: f64| self.0.iter().rev().find(|(t, _)| *t <= end).copied();
        (last_until(at), last_until(at + CONFIRM_S + 1.0))
    }

    fn first(&self) -> Option<Reading<T>> {
        self.0.front().copied()
    }

    fn last(&self) -> Option<Reading<T>> {
        self.0.back().copied()
    }
}

/// Guest reports waiting for the host's word, and the tap's recent history.
#[derive(Debug, Default)]
pub struct GuestStalls {
    pending: Vec<Stall>,
    history: Readings<TapStats>,
    /// The guest's received-frames counter.
    guest_rx: Readings<u64>,
}

impl GuestStalls {
    /// A new, empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// A guest reported `stall`.
    pub fn report(&mut self, stall: Stall) {
        self.pending.push(stall);
    }

    /// The tap's counters at run-elapsed second `at`.
    pub fn observe_tap(&mut self, at: f64, stats: TapStats) {
        self.history.push(at, stats);
    }

    /// The guest's `rx_packets` at run-elapsed second `at` (its counters line).
    pub fn observe_guest_rx(&mut self, at: f64, rx_packets: u64) {
        self.guest_rx.push(at, rx_packets);
    }

    /// Frames the guest received over the watch of a report made at `at`, when known.
    fn guest_received(&self, at: f64) -> Option<u64> {
        let (Some(from), Some(to)) = self.guest_rx.watch(at) else {
            return None;
        };
        (to.0 > from.0).then(|| to.1.saturating_sub(from.1))
    }

    /// Whether reports are waiting.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Decide every report whose watch is over at run-elapsed second `now`.
    /// `load_to_guest`: whether iperf3 was sending to the guest during the watch.
    pub fn settle(&mut self, now: f64, load_to_guest: bool) -> Vec<Settled> {
        let mut settled = Vec::new();
        let mut waiting = Vec::new();
        for stall in std::mem::take(&mut self.pending) {
            let end = stall.detected_at + CONFIRM_S;
            if now < end {
                waiting.push(stall);
                continue;
            }
            settled.push(self.judge(stall, load_to_guest));
        }
        self.pending = waiting;
        settled
    }

    /// Decide every waiting report now (the run is ending).
    pub fn settle_all(&mut self, load_to_guest: bool) -> Vec<Settled> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|s| self.judge(s, load_to_guest))
            .collect()
    }

    fn judge(&self, mut stall: Stall, load_to_guest: bool) -> Settled {
        // From the last reading at or before the report to the last reading of the watch.
        let (from, to) = self.history.watch(stall.detected_at);
        let (Some((t0, a)), Some((t1, b))) = (
            from.or_else(|| self.history.first()),
            to.or_else(|| self.history.last()),
        ) else {
            return Settled::Unconfirmed(stall, "no reading of the tap's counters".into());
        };
        if t1 <= t0 {
            return Settled::Unconfirmed(
                stall,
                "the run ended before the tap could be watched".into(),
            );
        }
        let span = t1 - t0;
        let d = |x: u64, y: u64| y.saturating_sub(x);
        let (taken, dropped, from_guest) = (
            d(a.tx_packets, b.tx_packets),
            d(a.tx_dropped, b.tx_dropped),
            d(a.rx_packets, b.rx_packets),
        );
        let guest_received = self.guest_received(stall.detected_at);
        let verdict = if stall.queue == "rx" {
            if taken > 0 && guest_received == Some(0) {
                // A lost interrupt with room left in the ring: the VMM goes on filling it,
                // and none of it reaches the guest's stack.
                Ok(format!(
                    "over {span:.1} s from the report the VMM took {taken} frames from the tap \
                     and the guest received none of them (rx_packets +0): they wait in the ring"
                ))
            } else if taken > 0 {
                Err(format!(
                    "the VMM kept taking frames from the tap for the guest ({taken} in {span:.1} s)"
                ))
            } else if dropped > 0 {
                Ok(format!(
                    "over {span:.1} s from the report the VMM took no frame from the tap \
                     (tx_packets +0) while the tap dropped {dropped} toward the guest (tx_dropped +{dropped})"
                ))
            } else if load_to_guest {
                Ok(format!(
                    "over {span:.1} s from the report the VMM took no frame from the tap \
                     (tx_packets +0) while iperf3 was sending to the guest"
                ))
            } else {
                Err(format!(
                    "the tap was quiet for {span:.1} s, but no frame was waiting for the guest, \
                     so the host cannot tell a stall from an idle network"
                ))
            }
        } else if from_guest > 0 {
            Err(format!(
                "frames from the guest kept reaching the tap ({from_guest} in {span:.1} s)"
            ))
        } else {
            Ok(format!(
                "over {span:.1} s from the report no frame from the guest reached the tap (rx_packets +0)"
            ))
        };
        match verdict {
            Ok(evidence) => {
                stall.host_evidence = Some(evidence);
                Settled::Confirmed(stall)
            }
            Err(why) => Settled::Unconfirmed(stall, why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(queue: &str, kind: &str, signature: bool) -> Value {
        json!({"t_us": 10_000_000u64, "event": "stall", "detector": "guest", "queue": queue,
               "kind": kind, "lost_kick_signature": signature, "stalled_since_us": 8_500_000u64,
               "stalled_ms": 1500, "guest_avail_idx": 300, "guest_avail_flags": 0,
               "guest_used_event": 41, "guest_last_used_idx": 40, "guest_visible_used_idx": 44,
               "device_avail_event": 300, "event_idx": true, "last_interrupt_us": 8_400_000u64})
    }

    #[test]
    fn a_guest_line_becomes_a_guest_stall_timed_by_its_arrival() {
        let s = from_line(&line("rx", "lost_interrupt", false), 20.0).unwrap();
        assert_eq!(
            (s.source, s.kind, s.queue.as_str()),
            (StallSource::Guest, StallKind::LostInterrupt, "rx")
        );
        assert!((s.stalled_since - 18.5).abs() < 1e-9, "{}", s.stalled_since);
        assert!((s.last_interrupt_at.unwrap() - 18.4).abs() < 1e-9);
        assert_eq!(s.last_kick_at, None);
        assert_eq!(
            (
                s.device_next_used,
                s.guest_last_used_idx,
                s.guest_used_event
            ),
            (44, Some(40), Some(41))
        );
        let k = from_line(&line("tx", "device_stalled", true), 20.0).unwrap();
        assert_eq!(k.kind, StallKind::LostKick);
        let n = from_line(&line("tx", "device_stalled", false), 20.0).unwrap();
        assert_eq!(n.kind, StallKind::NoProgress);
        assert!(from_line(&line("rx2", "lost_interrupt", false), 1.0).is_none());
        assert!(from_line(&line("rx", "gremlins", false), 1.0).is_none());
        assert!(from_line(&json!({"event": "stall"}), 1.0).is_none());
    }

    fn tap(tx_packets: u64, tx_dropped: u64, rx_packets: u64) -> TapStats {
        TapStats {
            tx_packets,
            tx_dropped,
            rx_packets,
        }
    }

    #[test]
    fn an_rx_stall_counts_when_the_vmm_stops_taking_frames_that_wait() {
        let mut g = GuestStalls::new();
        g.observe_tap(19.0, tap(1000, 0, 50));
        g.observe_tap(20.0, tap(1200, 0, 55));
        g.report(from_line(&line("rx", "lost_interrupt", false), 20.3).unwrap());
        g.observe_tap(21.0, tap(1200, 300, 56));
        assert!(
            g.settle(21.5, true).is_empty(),
            "decided before the watch ended"
        );
        g.observe_tap(22.0, tap(1200, 700, 57));
        g.observe_tap(23.0, tap(1200, 900, 58));
        let settled = g.settle(23.0, true);
        let [Settled::Confirmed(s)] = settled.as_slice() else {
            panic!("{settled:?}")
        };
        let evidence = s.host_evidence.as_deref().unwrap();
        assert!(evidence.contains("tx_dropped +900"), "{evidence}");
        assert!(!g.has_pending());
    }

    #[test]
    fn the_host_contradicts_a_guest_report_when_frames_keep_moving() {
        let mut g = GuestStalls::new();
        g.observe_tap(10.0, tap(100, 0, 10));
        g.report(from_line(&line("rx", "lost_interrupt", false), 10.2).unwrap());
        g.report(from_line(&line("tx", "device_stalled", true), 10.2).unwrap());
        g.observe_tap(11.0, tap(150, 0, 30));
        g.observe_tap(12.0, tap(180, 0, 40));
        g.observe_tap(13.0, tap(200, 0, 60));
        let settled = g.settle(13.0, true);
        assert_eq!(settled.len(), 2);
        for s in &settled {
            assert!(matches!(s, Settled::Unconfirmed(..)), "{s:?}");
        }
        // rx silence with nothing waiting cannot be told from an idle network.
        let mut g = GuestStalls::new();
        g.observe_tap(10.0, tap(100, 0, 10));
        g.report(from_line(&line("rx", "lost_interrupt", false), 10.0).unwrap());
        g.observe_tap(12.0, tap(100, 0, 10));
        let settled = g.settle(12.0, false);
        let [Settled::Unconfirmed(_, why)] = settled.as_slice() else {
            panic!("{settled:?}")
        };
        assert!(why.contains("idle network"), "{why}");
        // A tx stall: nothing from the guest reaches the tap.
        let mut g = GuestStalls::new();
        g.observe_tap(10.0, tap(100, 0, 10));
        g.report(from_line(&line("tx", "device_stalled", true), 10.0).unwrap());
        g.observe_tap(12.0, tap(180, 0, 10));
        assert!(matches!(
            g.settle(12.0, false).as_slice(),
            [Settled::Confirmed(_)]
        ));
    }

    #[test]
    fn tap_counters_are_read_from_ip_json() {
        let json = r#"[{"ifname":"vnb0","stats64":{"rx":{"bytes":1,"packets":7,"dropped":0},"tx":{"bytes":2,"packets":9,"dropped":3}}}]"#;
        assert_eq!(TapStats::from_ip_json(json), Some(tap(9, 3, 7)));
        assert_eq!(TapStats::from_ip_json("[]"), None);
        assert_eq!(TapStats::from_ip_json("not json"), None);
    }
}
