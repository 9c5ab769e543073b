//! The events the VMM writes, as serde types shared by the writer (the VMM) and the reader
//! (the soak orchestrator). Field names are the event stream's schema; the README's "Event
//! stream" section describes them for users.

use serde::{Deserialize, Serialize};

/// One line of the stream: when, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// Wall-clock time, seconds since the Unix epoch.
    pub ts: f64,
    /// Milliseconds since the VMM started (monotonic).
    pub t_ms: u64,
    /// The event, tagged by `"event"`.
    #[serde(flatten)]
    pub event: Event,
}

/// Every kind of event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The VMM is about to run the guest.
    Start(Start),
    /// The VMM is done.
    Exit(Exit),
    /// The guest's driver set DRIVER_OK on the virtio-net device.
    DeviceActivated(DeviceActivated),
    /// One queue's counters, every second.
    Counters(Counters),
    /// The watchdog found a stall.
    Stall(Stall),
    /// A reported stall ended without the watchdog's help.
    Recovered(Recovered),
    /// A device error (the device needs a reset, or its thread failed).
    Error(DeviceError),
    /// A vhost-user backend went away or came back (`--vhost-user ...,reconnect=SECS`).
    Backend(BackendEvent),
}

impl Event {
    /// The `"event"` tag.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Start(_) => "start",
            Event::Exit(_) => "exit",
            Event::DeviceActivated(_) => "device_activated",
            Event::Counters(_) => "counters",
            Event::Stall(_) => "stall",
            Event::Recovered(_) => "recovered",
            Event::Error(_) => "error",
            Event::Backend(_) => "backend",
        }
    }
}

/// `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// The VMM's pid.
    pub pid: u32,
    /// vCPUs.
    pub vcpus: usize,
    /// Guest memory, MiB.
    pub mem_mib: u64,
    /// `Elf` or `BzImage`.
    pub kernel_format: String,
    /// The kernel's 64-bit entry point.
    pub entry: u64,
    /// The kernel command line, with the devices' additions.
    pub cmdline: String,
}

/// `exit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exit {
    /// The VMM's exit status.
    pub status: i32,
    /// A stable short name of the reason.
    pub reason: String,
    /// The reason in words.
    pub message: String,
    /// The VMM's own resident memory beyond guest RAM, KiB, when it could be read.
    pub vmm_rss_kib: Option<u64>,
}

/// `device_activated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceActivated {
    /// `virtio-net`.
    pub device: String,
    /// The negotiated feature bits.
    pub features: u64,
    /// Their names (`VERSION_1`, `MAC`, `EVENT_IDX`, ...).
    pub feature_names: Vec<String>,
    /// `[rx, tx]` queue sizes.
    pub queue_sizes: [u16; 2],
    /// The notify model.
    pub notify_model: String,
    /// The queue implementation (`vnetbed`, `virtio-queue VERSION (SOURCE)`).
    pub queue_backend: String,
    /// The buggy models' race window, µs.
    pub race_window_us: u64,
    /// Which queues the race window delays.
    pub race_queues: String,
    /// The watchdog's timeout, ms.
    pub stall_timeout_ms: u64,
    /// What the watchdog does about a stall.
    pub on_stall: String,
    /// The device's MAC address.
    pub mac: String,
}

/// The counters of one queue, cumulative since the device was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueCounterValues {
    /// Frames moved (rx: into the guest; tx: out to the backend).
    pub frames: u64,
    /// Frame bytes moved (without the virtio-net header).
    pub bytes: u64,
    /// Kicks received from the guest.
    pub kicks: u64,
    /// Interrupts sent.
    pub interrupts_sent: u64,
    /// Interrupt decisions that found the guest did not want one.
    pub interrupts_suppressed: u64,
    /// Times the queue had no buffer when the device needed one.
    pub ring_empty: u64,
    /// Times the device enabled guest notifications.
    pub notification_enables: u64,
    /// Race windows the buggy models opened.
    pub race_windows_opened: u64,
    /// Backend reads/writes that returned EAGAIN.
    pub tap_eagain: u64,
    /// Frames dropped.
    pub drops: u64,
    /// Of the drops: frames too large for the guest's buffers.
    pub oversize_drops: u64,
    /// Stalls detected: lost kicks.
    pub stalls_lost_kick: u64,
    /// Stalls detected: lost interrupts.
    pub stalls_lost_interrupt: u64,
    /// Lost notifications delivered by `--on-stall recover`.
    pub recovered: u64,
    /// Reported stalls that ended without the watchdog's help.
    pub stalls_recovered: u64,
}

/// `counters`: one queue's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// `virtio-net`.
    pub device: String,
    /// `rx` or `tx`.
    pub queue: String,
    /// The counters.
    #[serde(flatten)]
    pub counters: QueueCounterValues,
}

/// The kind of a lost notification: the one vocabulary of the device's watchdog, the guest's
/// detector and the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StallKind {
    /// The guest published buffers and did not kick a device that asked for kicks.
    LostKick,
    /// The device published used entries the guest asked to be interrupted for, without an
    /// interrupt; the guest sleeps.
    LostInterrupt,
    /// The device owes progress (buffers pending) and makes none, with neither signature.
    /// Only the guest's detector names this (a hung device, not a lost notification); the
    /// device's watchdog always knows which notification is missing.
    NoProgress,
}

impl StallKind {
    /// The name used in events, records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            StallKind::LostKick => "lost_kick",
            StallKind::LostInterrupt => "lost_interrupt",
            StallKind::NoProgress => "no_progress",
        }
    }
}

/// `stall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// `virtio-net`.
    pub device: String,
    /// `rx` or `tx`.
    pub queue: String,
    /// 0 (rx) or 1 (tx).
    pub queue_index: usize,
    /// Which notification was lost.
    pub kind: StallKind,
    /// When the watchdog detected it (Unix seconds).
    pub detected_at: f64,
    /// Its first look at the stalled state (Unix seconds).
    pub stalled_since: f64,
    /// `detected_at - stalled_since`, ms.
    pub stalled_ms: u64,
    /// When the race most likely happened: the device's last enable (lost kick) or its last
    /// publish of `used->idx` (lost interrupt), Unix seconds.
    pub race_at: Option<f64>,
    /// The device's `next_avail`.
    pub device_next_avail: u16,
    /// The device's `next_used`.
    pub device_next_used: u16,
    /// The guest's `avail->idx`, read at detection.
    pub guest_avail_idx: u16,
    /// The guest's `used_event`, read at detection.
    pub guest_used_event: u16,
    /// The guest's `avail->flags`, read at detection.
    pub guest_avail_flags: u16,
    /// `used->idx` as the guest sees it, read at detection.
    pub guest_visible_used_idx: u16,
    /// Whether the device was waiting for a kick.
    pub waiting_for_kick: bool,
    /// The last kick (Unix seconds).
    pub last_kick: Option<f64>,
    /// The last interrupt (Unix seconds).
    pub last_interrupt: Option<f64>,
    /// `used->idx` at the last interrupt.
    pub last_interrupt_used_idx: u16,
    /// The notify model.
    pub notify_model: String,
    /// The queue implementation.
    pub queue_backend: String,
    /// What the watchdog does about it.
    pub on_stall: String,
    /// The queue's counters.
    pub counters: QueueCounterValues,
}

/// What ended a reported stall without the watchdog's help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryCause {
    /// The guest kicked the queue after all (for tx: it transmitted again).
    Kick,
    /// An interrupt for this queue.
    Interrupt,
    /// An interrupt for the other queue, on the one shared line.
    SharedLineInterrupt,
    /// The guest moved on by itself (polling).
    GuestProgress,
}

impl RecoveryCause {
    /// The name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryCause::Kick => "kick",
            RecoveryCause::Interrupt => "interrupt",
            RecoveryCause::SharedLineInterrupt => "shared_line_interrupt",
            RecoveryCause::GuestProgress => "guest_progress",
        }
    }
}

/// `recovered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovered {
    /// `virtio-net`.
    pub device: String,
    /// `rx` or `tx`.
    pub queue: String,
    /// 0 (rx) or 1 (tx).
    pub queue_index: usize,
    /// The stall's kind.
    pub kind: StallKind,
    /// What rescued the queue.
    pub cause: RecoveryCause,
    /// When it stalled (Unix seconds).
    pub stalled_since: f64,
    /// When it moved again (Unix seconds).
    pub recovered_at: f64,
    /// How long it stood, ms.
    pub stalled_ms: u64,
    /// The queue's counters.
    pub counters: QueueCounterValues,
}

/// `error`: the device flagged DEVICE_NEEDS_RESET, or its thread failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceError {
    /// `virtio-net`.
    pub device: String,
    /// A stable short name (`avail_idx_jump`, `descriptor_loop`, `device_thread`,
    /// `backend_gone`, ...).
    pub kind: String,
    /// The message.
    pub error: String,
    /// The queue, when one is concerned.
    #[serde(default)]
    pub queue: Option<usize>,
    /// Whether the device set DEVICE_NEEDS_RESET.
    #[serde(default)]
    pub needs_reset: bool,
}

/// The state a `backend` event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    /// The backend closed its socket; the VMM is trying to reconnect, the device's watchdog
    /// is suspended (a dead backend is not a lost notification).
    Disconnected,
    /// A backend is connected again and the vrings run from where the guest's used rings
    /// stand; the watchdog is back.
    Reconnected,
}

/// `backend`: a vhost-user backend went away or came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendEvent {
    /// `virtio-net`.
    pub device: String,
    /// The backend's socket.
    pub socket: String,
    /// Disconnected or reconnected.
    pub state: BackendState,
    /// What happened, in words.
    pub message: String,
    /// `reconnected`: how long the backend was away (from the disconnect to the vrings
    /// running again), ms.
    #[serde(default)]
    pub downtime_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_flat_object_tagged_by_its_kind() {
        let line = Stamped {
            ts: 1.5e9,
            t_ms: 12,
            event: Event::Counters(Counters {
                device: "virtio-net".into(),
                queue: "rx".into(),
                counters: QueueCounterValues {
                    frames: 3,
                    notification_enables: 2,
                    ..Default::default()
                },
            }),
        };
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["event"], "counters");
        assert_eq!(json["frames"], 3);
        assert_eq!(json["notification_enables"], 2);
        assert_eq!(json["t_ms"], 12);
        let back: Stamped = serde_json::from_value(json).unwrap();
        assert_eq!(back, line);
    }

    #[test]
    fn an_unknown_kind_does_not_parse_as_a_known_one() {
        let text = r#"{"event":"telemetry","ts":1.0,"t_ms":1,"x":1}"#;
        assert!(serde_json::from_str::<Stamped>(text).is_err());
        assert_eq!(
            serde_json::to_value(StallKind::NoProgress).unwrap(),
            "no_progress"
        );
    }
}
