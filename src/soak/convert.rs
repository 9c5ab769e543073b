//! Turns the VMM's events (typed: `vmm::events`) and the guest agent's lines into the
//! record's types.

use serde_json::Value;

use crate::record::{GuestCounters, QueueCounters, Stall, StallSource};
use vmm::events::{Counters, Stamped};

/// One line of the VMM's event stream, read.
#[derive(Debug, Clone, PartialEq)]
pub enum EventLine {
    /// An event this vnetbed knows, and the line as JSON (kept for the record's last events).
    Known(Box<Stamped>, Value),
    /// A JSON object this vnetbed does not know (a newer VMM's event, or a field it cannot
    /// read): kept and reported, never dropped. The `"event"` tag, when it has one.
    Unknown(Option<String>, Value),
    /// Not JSON at all.
    Garbage,
}

/// Read one line of the event stream.
pub fn event_line(text: &str) -> EventLine {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return EventLine::Garbage;
    };
    match serde_json::from_value::<Stamped>(value.clone()) {
        Ok(event) => EventLine::Known(Box::new(event), value),
        Err(_) => EventLine::Unknown(
            value
                .get("event")
                .and_then(Value::as_str)
                .map(str::to_string),
            value,
        ),
    }
}

/// A `counters` event (one queue) to the record's per-queue counters.
pub fn queue_counters(ev: &Counters) -> QueueCounters {
    let c = &ev.counters;
    QueueCounters {
        queue: ev.queue.clone(),
        frames: c.frames,
        bytes: c.bytes,
        kicks: c.kicks,
        interrupts_sent: c.interrupts_sent,
        interrupts_suppressed: c.interrupts_suppressed,
        ring_empty: c.ring_empty,
        notify_enables: c.notification_enables,
        race_windows: c.race_windows_opened,
        tap_eagain: c.tap_eagain,
        drops: c.drops,
    }
}

/// A `stall` event to the record's stall signature, with times relative to the run's start.
pub fn stall(ev: &vmm::events::Stall, started_unix: f64) -> Stall {
    let run_time = |t: f64| t - started_unix;
    Stall {
        source: StallSource::Device,
        queue: ev.queue.clone(),
        kind: ev.kind,
        detected_at: run_time(ev.detected_at),
        stalled_since: run_time(ev.stalled_since),
        device_next_avail: ev.device_next_avail,
        device_next_used: ev.device_next_used,
        guest_last_used_idx: None,
        host_evidence: None,
        guest_avail_idx: ev.guest_avail_idx,
        guest_used_event: Some(ev.guest_used_event),
        guest_avail_flags: ev.guest_avail_flags,
        last_kick_at: ev.last_kick.map(run_time),
        last_interrupt_at: ev.last_interrupt.map(run_time),
    }
}

fn u(v: &Value, keys: &[&str]) -> u64 {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_u64))
        .unwrap_or(0)
}

/// A guest agent `counters` line to the record's guest counters.
pub fn guest_counters(line: &Value) -> GuestCounters {
    GuestCounters {
        rx_packets: u(line, &["rx_packets"]),
        rx_bytes: u(line, &["rx_bytes"]),
        tx_packets: u(line, &["tx_packets"]),
        tx_bytes: u(line, &["tx_bytes"]),
        refills: u(line, &["rx_refills"]),
        kicks_sent: u(line, &["kicks"]),
        kicks_suppressed: u(line, &["kicks_suppressed"]),
        interrupts: u(line, &["interrupts"]),
        polls: u(line, &["polls"]),
        ring_empty: u(line, &["rx_ring_empty"]),
        rx_cb_enables: u(line, &["rx_cb_enables"]),
        rx_rechecks: u(line, &["rx_rechecks"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::StallKind;
    use vmm::events::Event;

    #[test]
    fn counters_and_stalls_convert_with_run_relative_times() {
        let line = r#"{"event":"counters","ts":1.0,"t_ms":5,"device":"virtio-net","queue":"rx","frames":10,"notification_enables":7,"race_windows_opened":3}"#;
        let EventLine::Known(ev, _) = event_line(line) else {
            panic!("not read")
        };
        let Event::Counters(c) = ev.event else {
            panic!("not counters")
        };
        let c = queue_counters(&c);
        assert_eq!(
            (c.queue.as_str(), c.frames, c.notify_enables, c.race_windows),
            ("rx", 10, 7, 3)
        );
        let line = r#"{"event":"stall","ts":101.5,"t_ms":5,"device":"virtio-net","queue":"rx","queue_index":0,"kind":"lost_kick","detected_at":101.5,"stalled_since":100.2,"stalled_ms":1300,"race_at":null,
            "device_next_avail":5,"device_next_used":5,"guest_avail_idx":9,"guest_used_event":4,"guest_avail_flags":0,"guest_visible_used_idx":5,"waiting_for_kick":true,
            "last_kick":100.1,"last_interrupt":null,"last_interrupt_used_idx":5,"notify_model":"unfenced","queue_backend":"vnetbed","on_stall":"report","counters":{}}"#;
        let EventLine::Known(ev, _) = event_line(line) else {
            panic!("not read")
        };
        let Event::Stall(s) = ev.event else {
            panic!("not a stall")
        };
        let s = stall(&s, 100.0);
        assert_eq!(s.kind, StallKind::LostKick);
        assert!((s.detected_at - 1.5).abs() < 1e-9 && (s.stalled_since - 0.2).abs() < 1e-9);
        assert_eq!(
            (s.guest_avail_idx, s.guest_used_event, s.last_interrupt_at),
            (9, Some(4), None)
        );
    }

    #[test]
    fn unknown_events_are_kept_with_their_name_and_garbage_is_told_apart() {
        match event_line(r#"{"event":"telemetry","ts":1.0,"t_ms":1,"x":1}"#) {
            EventLine::Unknown(Some(name), v) => {
                assert_eq!(name, "telemetry");
                assert_eq!(v["x"], 1);
            }
            other => panic!("{other:?}"),
        }
        // A known kind with a field it cannot read is not silently zeroed: it is unknown.
        assert!(matches!(
            event_line(r#"{"event":"stall","ts":1.0,"t_ms":1,"queue":"rx","kind":"other"}"#),
            EventLine::Unknown(Some(_), _)
        ));
        assert_eq!(event_line("not json"), EventLine::Garbage);
    }
}
