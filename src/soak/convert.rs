//! Turns the VMM's event-stream lines and the guest agent's lines into the record's types.
//! Field names follow the event stream's schema; a few aliases keep older names readable.

use serde_json::Value;

use crate::record::{GuestCounters, QueueCounters, Stall, StallKind};

fn u(v: &Value, keys: &[&str]) -> u64 {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_u64))
        .unwrap_or(0)
}

/// A `counters` event (one queue) to the record's per-queue counters.
pub fn queue_counters(ev: &Value) -> Option<QueueCounters> {
    let queue = ev.get("queue")?.as_str()?.to_string();
    Some(QueueCounters {
        queue,
        frames: u(ev, &["frames"]),
        bytes: u(ev, &["bytes"]),
        kicks: u(ev, &["kicks"]),
        interrupts_sent: u(ev, &["interrupts_sent"]),
        interrupts_suppressed: u(ev, &["interrupts_suppressed"]),
        ring_empty: u(ev, &["ring_empty"]),
        notify_enables: u(ev, &["notify_enables", "notification_enables"]),
        race_windows: u(ev, &["race_windows", "race_windows_opened"]),
        tap_eagain: u(ev, &["tap_eagain"]),
        drops: u(ev, &["drops"]),
    })
}

/// Seconds since the run started, from a wall-clock time in Unix seconds (the event
/// stream's unit, like its `ts`).
fn run_time(v: Option<&Value>, started_unix: f64) -> Option<f64> {
    Some(v?.as_f64()? - started_unix)
}

/// A `stall` event to the record's stall signature.
pub fn stall(ev: &Value, started_unix: f64) -> Option<Stall> {
    let kind = match ev.get("kind")?.as_str()? {
        "lost_kick" => StallKind::LostKick,
        "lost_interrupt" => StallKind::LostInterrupt,
        _ => return None,
    };
    let small = |k: &str| ev.get(k).and_then(Value::as_u64).map(|x| x as u16);
    Some(Stall {
        source: crate::record::StallSource::Device,
        guest_last_used_idx: None,
        host_evidence: None,
        queue: ev.get("queue")?.as_str()?.to_string(),
        kind,
        detected_at: run_time(ev.get("detected_at"), started_unix)?,
        stalled_since: run_time(ev.get("stalled_since"), started_unix)?,
        device_next_avail: small("device_next_avail").unwrap_or(0),
        device_next_used: small("device_next_used").unwrap_or(0),
        guest_avail_idx: small("guest_avail_idx").unwrap_or(0),
        guest_used_event: small("guest_used_event"),
        guest_avail_flags: small("guest_avail_flags").unwrap_or(0),
        last_kick_at: run_time(ev.get("last_kick"), started_unix),
        last_interrupt_at: run_time(ev.get("last_interrupt"), started_unix),
    })
}

/// A guest agent `counters` line to the record's guest counters.
pub fn guest_counters(line: &Value) -> GuestCounters {
    GuestCounters {
        rx_packets: u(line, &["rx_packets"]),
        rx_bytes: u(line, &["rx_bytes"]),
        tx_packets: u(line, &["tx_packets"]),
        tx_bytes: u(line, &["tx_bytes"]),
        refills: u(line, &["refills", "rx_refills"]),
        kicks_sent: u(line, &["kicks_sent", "kicks"]),
        kicks_suppressed: u(line, &["kicks_suppressed"]),
        interrupts: u(line, &["interrupts", "irqs"]),
        polls: u(line, &["polls"]),
        ring_empty: u(line, &["ring_empty", "rx_ring_empty"]),
        rx_cb_enables: u(line, &["rx_cb_enables"]),
        rx_rechecks: u(line, &["rx_rechecks"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counters_and_stalls_convert_with_run_relative_times() {
        let c = queue_counters(&json!({"event":"counters","queue":"rx","frames":10,"notification_enables":7,"race_windows_opened":3})).unwrap();
        assert_eq!(
            (c.queue.as_str(), c.frames, c.notify_enables, c.race_windows),
            ("rx", 10, 7, 3)
        );
        let s = stall(
            &json!({"event":"stall","queue":"rx","kind":"lost_kick","detected_at":101.5,"stalled_since":100.2,
                    "device_next_avail":5,"device_next_used":5,"guest_avail_idx":9,"guest_used_event":4,"guest_avail_flags":0,
                    "last_kick":100.1,"last_interrupt":null}),
            100.0,
        )
        .unwrap();
        assert_eq!(s.kind, StallKind::LostKick);
        assert!((s.detected_at - 1.5).abs() < 1e-9 && (s.stalled_since - 0.2).abs() < 1e-9);
        assert_eq!(
            (s.guest_avail_idx, s.guest_used_event, s.last_interrupt_at),
            (9, Some(4), None)
        );
        assert!(stall(&json!({"kind":"other"}), 0.0).is_none());
    }
}
