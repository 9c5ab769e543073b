//! The guest's own stall detector, device-agnostic: it looks at the driver's rings at a
//! low rate, consumes nothing (so it never rescues a stall, as Linux in 2012 would not
//! have), and tells two kinds apart, in the vocabulary of vnetbed's device watchdog:
//!
//! - **lost_interrupt**: `used->idx` has moved past what the driver consumed, the driver
//!   asked for an interrupt for it (callbacks on; with EVENT_IDX `used_event` lies in the
//!   unconsumed range), and no interrupt for the queue came for the stall timeout.
//! - **device_stalled**: the device owes progress and `used->idx` has not moved for the
//!   timeout. On tx that is "chains are pending" (`avail->idx != used->idx`): a tx ring
//!   with nothing pending is idle. On rx, posted buffers alone prove nothing (no frames
//!   may be coming), so rx is reported only with the **lost-kick signature**: the
//!   driver's last kick decision was "no kick needed", the device's notification request
//!   (`avail_event`, or `used->flags` without NO_NOTIFY) now asks for a kick for buffers
//!   published since the last real kick, and the "no kick needed" decision that published
//!   the requested index read a different request (it decided on a stale view) from a
//!   device whose request then lagged behind its own progress (`avail_event` behind
//!   `used->idx`: a device that moves its request only when it runs dry, so a new request
//!   means "I ran dry, kick me"). A device that moves `avail_event` with every buffer it
//!   takes (QEMU) has its request at its position at every decision, so waiting for
//!   frames with buffers in hand is never taken for a lost kick; nor is any idle ring
//!   whose request has not changed since the decision. The other way a request proves the
//!   device was waiting is being **ahead** of its `used->idx`: a device (QEMU with
//!   MRG_RXBUF) that holds buffers yet asks for a kick at a later index found too few for a
//!   frame it has. If the driver had already published past that index on a decision that
//!   read an older request, the device wrote its request from an out-of-date `avail->idx`:
//!   QEMU's 2024 mergeable-rx lost kick (fixed by f937309fbdbb), whose request lags the
//!   ring, not the device's own progress.
//!
//! This module is the pure logic (host-tested); the probe's `stall_watch` feeds it.

use crate::virtqueue::{vring_need_event, VRING_USED_F_NO_NOTIFY};

/// The driver's last kick decision (`virtqueue_kick_prepare`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickDecision {
    /// No decision yet.
    None,
    /// The device asked for a notification: the driver kicked.
    Kicked,
    /// The device's `avail_event` / NO_NOTIFY said no kick was needed.
    Suppressed,
}

impl KickDecision {
    /// The name used in agent lines.
    pub fn name(self) -> &'static str {
        match self {
            KickDecision::None => "none",
            KickDecision::Kicked => "kicked",
            KickDecision::Suppressed => "no_kick_needed",
        }
    }
}

/// A "no kick needed" decision: it published `[old, new)` having read `request` while
/// the device's `used->idx` was `used_idx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SuppressedDecision {
    /// `avail->idx` before the batch.
    pub old: u16,
    /// `avail->idx` after it.
    pub new: u16,
    /// The notification request read (avail_event, or the NO_NOTIFY bit).
    pub request: u16,
    /// `used->idx` read at the decision.
    pub used_idx: u16,
}

/// How many suppressed decisions since the last kick are remembered: as many as a queue
/// has entries. After a lost kick the device takes no buffer, so at most that many
/// decisions can follow the one that published the requested index: it is never lost.
pub const SUPPRESSED_KEPT: usize = crate::virtqueue::MAX_QUEUE_SIZE;

/// The last [`SUPPRESSED_KEPT`] "no kick needed" decisions since the last kick (a ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    decisions: [SuppressedDecision; SUPPRESSED_KEPT],
    next: usize,
    len: usize,
}

impl Default for Suppressed {
    fn default() -> Self {
        Self::new()
    }
}

impl Suppressed {
    /// None yet.
    pub const fn new() -> Self {
        Suppressed {
            decisions: [SuppressedDecision {
                old: 0,
                new: 0,
                request: 0,
                used_idx: 0,
            }; SUPPRESSED_KEPT],
            next: 0,
            len: 0,
        }
    }

    /// Forget them all (the driver kicked).
    pub fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
    }

    /// Remember one more, forgetting the oldest when full.
    pub fn push(&mut self, decision: SuppressedDecision) {
        self.decisions[self.next] = decision;
        self.next = (self.next + 1) % SUPPRESSED_KEPT;
        self.len = (self.len + 1).min(SUPPRESSED_KEPT);
    }

    /// The decisions kept (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = &SuppressedDecision> {
        self.decisions[..self.len].iter()
    }
}

/// One queue's ring state, as the driver sees it at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingView {
    /// `avail->idx` the driver published.
    pub avail_idx: u16,
    /// `avail->flags` (NO_INTERRUPT without EVENT_IDX).
    pub avail_flags: u16,
    /// `used_event` as the driver wrote it (EVENT_IDX).
    pub used_event: u16,
    /// `used->idx` read fresh.
    pub used_idx: u16,
    /// `used->flags` read fresh (NO_NOTIFY without EVENT_IDX).
    pub used_flags: u16,
    /// `avail_event` read fresh (EVENT_IDX).
    pub avail_event: u16,
    /// How far the driver consumed the used ring.
    pub last_used_idx: u16,
    /// VIRTIO_RING_F_EVENT_IDX negotiated.
    pub event_idx: bool,
    /// The driver wants interrupts for this queue.
    pub callbacks_enabled: bool,
    /// `avail->idx` at the driver's last real kick.
    pub kicked_avail_idx: u16,
    /// The last kick decision.
    pub last_decision: KickDecision,
    /// The notification request (avail_event, or the NO_NOTIFY bit) that decision read.
    pub decided_request: u16,
    /// The "no kick needed" decisions since the last kick.
    pub suppressed: Suppressed,
}

impl RingView {
    /// The device used buffers past what the driver consumed, and the driver asked to
    /// be interrupted for them.
    pub fn interrupt_owed(&self) -> bool {
        self.callbacks_enabled
            && self.used_idx != self.last_used_idx
            && (!self.event_idx
                || vring_need_event(self.used_event, self.used_idx, self.last_used_idx))
    }

    /// The device's notification request as it is now.
    fn request_now(&self) -> u16 {
        if self.event_idx {
            self.avail_event
        } else {
            self.used_flags & VRING_USED_F_NO_NOTIFY
        }
    }

    /// The device now asks for a kick for buffers published since the driver's last kick.
    pub fn kick_requested_now(&self) -> bool {
        self.avail_idx != self.kicked_avail_idx
            && if self.event_idx {
                vring_need_event(self.avail_event, self.avail_idx, self.kicked_avail_idx)
            } else {
                self.used_flags & VRING_USED_F_NO_NOTIFY == 0
            }
    }

    /// The lost-kick signature (see the module documentation). On rx the decision that
    /// published the requested index must have read another request, one that lagged
    /// behind the device's `used->idx`.
    pub fn lost_kick_signature(&self, queue: Queue) -> bool {
        if self.last_decision != KickDecision::Suppressed || !self.kick_requested_now() {
            return false;
        }
        if queue == Queue::Tx {
            return true;
        }
        let now = self.request_now();
        self.suppressed.iter().any(|d| {
            if !self.event_idx {
                // NO_NOTIFY was set at the decision and is clear now.
                return d.request != now;
            }
            let published_it = vring_need_event(now, d.new, d.old);
            let request_lagged = (d.used_idx.wrapping_sub(d.request) as i16) > 0;
            let request_ahead = (now.wrapping_sub(self.used_idx) as i16) > 0;
            published_it && d.request != now && (request_lagged || request_ahead)
        })
    }

    /// The device holds buffers or chains it has not used.
    pub fn device_holds_buffers(&self) -> bool {
        self.avail_idx != self.used_idx
    }
}

/// Which queue of the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Receive queue 0.
    Rx,
    /// Transmit queue 1.
    Tx,
}

impl Queue {
    /// The name used in agent lines (as the device watchdog's `queue`).
    pub fn name(self) -> &'static str {
        match self {
            Queue::Rx => "rx",
            Queue::Tx => "tx",
        }
    }
}

/// What the detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallKind {
    /// An interrupt the driver asked for never came.
    LostInterrupt,
    /// The device owes progress and makes none (with or without the lost-kick signature).
    DeviceStalled,
}

impl StallKind {
    /// The name used in agent lines.
    pub fn name(self) -> &'static str {
        match self {
            StallKind::LostInterrupt => "lost_interrupt",
            StallKind::DeviceStalled => "device_stalled",
        }
    }
}

/// A stall that held for the whole timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// The kind.
    pub kind: StallKind,
    /// When the condition was first seen (microseconds since boot).
    pub since_us: u64,
    /// The lost-kick signature held (device_stalled only).
    pub lost_kick_signature: bool,
}

/// What a stall condition looks like, to tell "the same stall" from a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    kind: StallKind,
    since_us: u64,
    /// lost_interrupt: the driver's consumed index; device_stalled: `used->idx`.
    key: u16,
}

/// Per-queue detector state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watch {
    candidate: Option<Candidate>,
    reported: bool,
}

impl Watch {
    /// A fresh detector.
    pub const fn new() -> Self {
        Watch {
            candidate: None,
            reported: false,
        }
    }

    /// The condition at this look, if any. As in the device watchdog, a lost kick is
    /// named first: when the device both waits for a kick and owes an interrupt, the
    /// kick is what it waits for.
    fn condition(queue: Queue, view: &RingView) -> Option<(StallKind, u16)> {
        if view.device_holds_buffers() && view.lost_kick_signature(queue) {
            return Some((StallKind::DeviceStalled, view.used_idx));
        }
        if view.interrupt_owed() {
            return Some((StallKind::LostInterrupt, view.last_used_idx));
        }
        let owes_progress = queue == Queue::Tx && view.device_holds_buffers();
        owes_progress.then_some((StallKind::DeviceStalled, view.used_idx))
    }

    /// One look at `queue`. `last_interrupt_us` is when the queue's interrupt last came.
    /// Returns a finding once per stall, when its condition has held, unchanged and
    /// without an interrupt for the queue, for `timeout_us`.
    pub fn look(
        &mut self,
        queue: Queue,
        view: &RingView,
        now_us: u64,
        last_interrupt_us: Option<u64>,
        timeout_us: u64,
    ) -> Option<Finding> {
        let Some((kind, key)) = Self::condition(queue, view) else {
            *self = Watch::new();
            return None;
        };
        let same = self.candidate.is_some_and(|c| {
            c.kind == kind
                && c.key == key
                // An interrupt for the queue since the condition began: not lost (the
                // driver will act on it); start over.
                && !(kind == StallKind::LostInterrupt
                    && last_interrupt_us.is_some_and(|at| at >= c.since_us))
        });
        if !same {
            *self = Watch {
                candidate: Some(Candidate {
                    kind,
                    since_us: now_us,
                    key,
                }),
                reported: false,
            };
            return None;
        }
        let candidate = self.candidate?;
        if self.reported || now_us.saturating_sub(candidate.since_us) < timeout_us {
            return None;
        }
        self.reported = true;
        Some(Finding {
            kind,
            since_us: candidate.since_us,
            lost_kick_signature: kind == StallKind::DeviceStalled
                && view.lost_kick_signature(queue),
        })
    }

    /// Forget the current stall (after recovering from it).
    pub fn reset(&mut self) {
        *self = Watch::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_rx() -> RingView {
        // 256 buffers posted and kicked, nothing used, callbacks on.
        RingView {
            avail_idx: 256,
            avail_flags: 0,
            used_event: 0,
            used_idx: 0,
            used_flags: 0,
            avail_event: 0,
            last_used_idx: 0,
            event_idx: true,
            callbacks_enabled: true,
            kicked_avail_idx: 256,
            last_decision: KickDecision::Kicked,
            decided_request: 0,
            suppressed: Suppressed::new(),
        }
    }

    fn suppressed(list: &[(u16, u16, u16, u16)]) -> Suppressed {
        let mut s = Suppressed::new();
        for &(old, new, request, used_idx) in list {
            s.push(SuppressedDecision {
                old,
                new,
                request,
                used_idx,
            });
        }
        s
    }

    const T: u64 = 1_000_000;

    fn run(watch: &mut Watch, queue: Queue, view: &RingView, irq: Option<u64>) -> Vec<Finding> {
        (0..=30)
            .filter_map(|i| watch.look(queue, view, i * 100_000, irq, T))
            .collect()
    }

    #[test]
    fn idle_rx_is_never_reported() {
        let mut watch = Watch::new();
        assert!(run(&mut watch, Queue::Rx, &idle_rx(), None).is_empty());
        // Idle after traffic on a device that moves avail_event with every buffer it
        // takes (QEMU): the refill that published index 300 read avail_event 240 while
        // the device was at 240; the device then took buffers up to 300.
        let view = RingView {
            avail_idx: 256 + 300,
            used_idx: 300,
            last_used_idx: 300,
            used_event: 300,
            avail_event: 300,
            kicked_avail_idx: 256,
            last_decision: KickDecision::Suppressed,
            decided_request: 299,
            suppressed: suppressed(&[(256, 496, 240, 240), (496, 556, 299, 299)]),
            ..idle_rx()
        };
        assert!(
            view.kick_requested_now(),
            "QEMU's avail_event is behind avail->idx"
        );
        assert!(!view.lost_kick_signature(Queue::Rx));
        assert!(run(&mut Watch::new(), Queue::Rx, &view, None).is_empty());
        // The device stopped at 300 having already asked for 300 when the refill read it.
        let view = RingView {
            suppressed: suppressed(&[(256, 556, 300, 300)]),
            decided_request: 300,
            ..view
        };
        assert!(!view.lost_kick_signature(Queue::Rx));
        // A device that moves avail_event only when it runs dry, idle with buffers: its
        // request (100) has not changed since the refills read it.
        let view = RingView {
            avail_event: 100,
            suppressed: suppressed(&[(256, 496, 100, 240), (496, 556, 100, 299)]),
            decided_request: 100,
            ..view
        };
        assert!(!view.lost_kick_signature(Queue::Rx));
    }

    #[test]
    fn rx_lost_kick_is_device_stalled_with_the_signature() {
        // The device used everything it saw (used 256), asked for a kick at 256; the
        // driver refilled to 512 in four NAPI rounds, the first having read the old
        // avail_event (0), the later ones the new one: no kick.
        let view = RingView {
            avail_idx: 512,
            used_idx: 256,
            last_used_idx: 256,
            used_event: 256,
            avail_event: 256,
            kicked_avail_idx: 256,
            last_decision: KickDecision::Suppressed,
            decided_request: 256,
            suppressed: suppressed(&[
                (256, 320, 0, 256),
                (320, 384, 256, 256),
                (384, 448, 256, 256),
                (448, 512, 256, 256),
            ]),
            ..idle_rx()
        };
        let found = run(&mut Watch::new(), Queue::Rx, &view, None);
        assert_eq!(found.len(), 1, "reported once");
        // The same with the device's used->idx still in its store buffer at the first
        // decision (the refill read 250, not 256).
        let delayed = RingView {
            suppressed: suppressed(&[(256, 320, 0, 250), (320, 512, 256, 256)]),
            ..view
        };
        assert!(delayed.lost_kick_signature(Queue::Rx));
        assert_eq!(found[0].kind, StallKind::DeviceStalled);
        assert!(found[0].lost_kick_signature);
        assert_eq!(found[0].since_us, 0);
    }

    #[test]
    fn qemu_2024_mergeable_lost_kick_has_the_signature() {
        // QEMU took buffers up to 300 (avail_event 300 from its last pop, used 300). A
        // 6-buffer frame came with 3 posted (303): QEMU read avail->idx 303, the driver
        // published 303..304 reading avail_event 300 (no kick), QEMU wrote avail_event 303
        // (stale), re-checked 4 < 6 buffers and waits; the driver posted on to 556 seeing
        // 303 behind it: no kick.
        let view = RingView {
            avail_idx: 556,
            used_idx: 300,
            last_used_idx: 300,
            used_event: 300,
            avail_event: 303,
            kicked_avail_idx: 301,
            last_decision: KickDecision::Suppressed,
            decided_request: 303,
            suppressed: suppressed(&[
                (301, 302, 300, 300),
                (302, 303, 300, 300),
                (303, 304, 300, 300),
                (304, 556, 303, 300),
            ]),
            ..idle_rx()
        };
        assert!(view.lost_kick_signature(Queue::Rx));
        let found = run(&mut Watch::new(), Queue::Rx, &view, None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, StallKind::DeviceStalled);
        assert!(found[0].lost_kick_signature);
        // The fixed QEMU writes the index it re-checks: 304 after the driver's 303..304, so
        // the next batch (304..556) kicks; were it suppressed having read 304 itself, the
        // request is not one the driver had passed on a stale view: no signature.
        let fixed = RingView {
            avail_event: 304,
            decided_request: 304,
            suppressed: suppressed(&[(303, 304, 300, 300), (304, 556, 304, 300)]),
            ..view
        };
        assert!(!fixed.lost_kick_signature(Queue::Rx));
    }

    #[test]
    fn the_decision_that_published_the_request_is_kept_through_a_queue_of_later_ones() {
        let mut list = suppressed(&[(256, 257, 0, 256)]);
        for i in 257..(257 + 1023) {
            list.push(SuppressedDecision {
                old: i,
                new: i + 1,
                request: 256,
                used_idx: 256,
            });
        }
        let view = RingView {
            avail_idx: 257 + 1023,
            used_idx: 256,
            last_used_idx: 256,
            used_event: 256,
            avail_event: 256,
            kicked_avail_idx: 256,
            last_decision: KickDecision::Suppressed,
            decided_request: 256,
            suppressed: list,
            ..idle_rx()
        };
        assert!(view.lost_kick_signature(Queue::Rx));
    }

    #[test]
    fn rx_lost_kick_without_event_idx() {
        let view = RingView {
            event_idx: false,
            avail_idx: 300,
            used_idx: 44,
            last_used_idx: 44,
            used_flags: 0,
            kicked_avail_idx: 256,
            last_decision: KickDecision::Suppressed,
            decided_request: VRING_USED_F_NO_NOTIFY,
            suppressed: suppressed(&[(256, 300, VRING_USED_F_NO_NOTIFY, 44)]),
            ..idle_rx()
        };
        let found = run(&mut Watch::new(), Queue::Rx, &view, None);
        assert_eq!(found.len(), 1);
        assert!(found[0].lost_kick_signature);
        // Still NO_NOTIFY: the device is busy, not waiting for a kick.
        let busy = RingView {
            used_flags: VRING_USED_F_NO_NOTIFY,
            ..view
        };
        assert!(run(&mut Watch::new(), Queue::Rx, &busy, None).is_empty());
    }

    #[test]
    fn a_lost_kick_is_named_before_an_owed_interrupt() {
        // The device published 12112 without the interrupt the driver asked for, and
        // waits for a kick for the buffers the driver then posted without one.
        let view = RingView {
            avail_idx: 12367,
            used_idx: 12112,
            last_used_idx: 12111,
            used_event: 12111,
            avail_event: 12112,
            kicked_avail_idx: 12112,
            last_decision: KickDecision::Suppressed,
            decided_request: 12048,
            suppressed: suppressed(&[(12112, 12367, 12048, 12111)]),
            ..idle_rx()
        };
        assert!(view.interrupt_owed());
        let found = run(&mut Watch::new(), Queue::Rx, &view, None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, StallKind::DeviceStalled);
        assert!(found[0].lost_kick_signature);
    }

    #[test]
    fn lost_interrupt_needs_silence_for_the_timeout() {
        let view = RingView {
            used_idx: 10,
            ..idle_rx()
        };
        assert!(view.interrupt_owed());
        let found = run(&mut Watch::new(), Queue::Rx, &view, None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, StallKind::LostInterrupt);
        // An interrupt at 0.5 s restarts the clock; one more second is needed.
        let mut watch = Watch::new();
        let mut found = Vec::new();
        for i in 0..=30u64 {
            let irq = (i >= 5).then_some(500_000);
            found.extend(watch.look(Queue::Rx, &view, i * 100_000, irq, T));
        }
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].since_us, 600_000);
        // Callbacks off (NAPI polling): nothing is owed.
        let polling = RingView {
            callbacks_enabled: false,
            ..view
        };
        assert!(run(&mut Watch::new(), Queue::Rx, &polling, None).is_empty());
    }

    #[test]
    fn progress_resets_the_watch() {
        let mut watch = Watch::new();
        let mut view = RingView {
            used_idx: 10,
            ..idle_rx()
        };
        for i in 0..30u64 {
            // The driver consumes a little every look: never the same stall.
            view.last_used_idx = i as u16;
            view.used_event = i as u16;
            view.used_idx = i as u16 + 5;
            assert_eq!(watch.look(Queue::Rx, &view, i * 100_000, None, T), None);
        }
    }

    #[test]
    fn tx_pending_without_progress_is_device_stalled() {
        let tx = RingView {
            avail_idx: 20,
            used_idx: 18,
            last_used_idx: 10,
            used_event: 0,
            callbacks_enabled: false,
            kicked_avail_idx: 20,
            last_decision: KickDecision::Kicked,
            decided_request: 18,
            avail_event: 18,
            ..idle_rx()
        };
        let found = run(&mut Watch::new(), Queue::Tx, &tx, None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, StallKind::DeviceStalled);
        assert!(!found[0].lost_kick_signature, "the driver kicked");
        // Nothing pending (all used, not yet reclaimed): idle.
        let done = RingView { used_idx: 20, ..tx };
        assert!(run(&mut Watch::new(), Queue::Tx, &done, None).is_empty());
        // Lost kick on tx: suppressed, and avail_event asks for one of the new chains.
        let lost = RingView {
            kicked_avail_idx: 18,
            last_decision: KickDecision::Suppressed,
            ..tx
        };
        let found = run(&mut Watch::new(), Queue::Tx, &lost, None);
        assert!(found[0].lost_kick_signature);
    }
}
