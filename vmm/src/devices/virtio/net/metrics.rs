//! Per-queue counters of a virtio-net device, shared (lock-free) between the device thread,
//! which bumps them, and readers (the `counters` event, tests, benchmarks).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::events::QueueCounterValues;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counters of one queue (cumulative since the device was created).
        #[derive(Debug, Default)]
        pub struct QueueMetrics {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl QueueMetrics {
            /// All counters now (the `counters` event's fields). The event's type has a
            /// field for each counter, so a counter added here without one does not compile.
            pub fn values(&self) -> QueueCounterValues {
                QueueCounterValues {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Frames moved (rx: into the guest; tx: out to the backend).
    frames,
    /// Frame bytes moved (without the virtio-net header).
    bytes,
    /// Kicks received from the guest.
    kicks,
    /// Interrupts sent.
    interrupts_sent,
    /// Interrupt decisions that found the guest did not want one.
    interrupts_suppressed,
    /// Times the queue had no buffer when the device needed one.
    ring_empty,
    /// Times the device enabled guest notifications.
    notification_enables,
    /// Race windows opened: enables whose store was delayed by the race window (unfenced,
    /// no-recheck: the lost-kick race), and used-index publishes left delayed because no
    /// interrupt followed to drain them (unfenced: the lost-interrupt race).
    race_windows_opened,
    /// Backend reads/writes that returned EAGAIN.
    tap_eagain,
    /// Frames dropped (oversize, backend errors).
    drops,
    /// Of the drops: frames too large for the guest's buffers (never truncated).
    oversize_drops,
    /// Stalls detected: lost kicks.
    stalls_lost_kick,
    /// Stalls detected: lost interrupts.
    stalls_lost_interrupt,
    /// Lost notifications delivered by `--on-stall recover`.
    recovered,
    /// Reported stalls that ended without the watchdog's help (transient: a `recovered`
    /// event says what rescued the queue).
    stalls_recovered,
}

impl QueueMetrics {
    /// Add one.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    /// Add `n`.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    /// Read a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The counters of a virtio-net device.
#[derive(Debug, Default)]
pub struct NetMetrics {
    /// Queue 0.
    pub rx: QueueMetrics,
    /// Queue 1.
    pub tx: QueueMetrics,
}

impl NetMetrics {
    /// The counters of queue `i` (0 rx, 1 tx).
    pub fn queue(&self, i: usize) -> &QueueMetrics {
        if i == 0 {
            &self.rx
        } else {
            &self.tx
        }
    }
}
