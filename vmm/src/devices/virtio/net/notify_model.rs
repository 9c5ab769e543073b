//! The notification models: the one place that decides how the device enables guest
//! notifications (kicks) and whether it interrupts the guest, and every store, fence and load
//! on the notification fields (`used->flags`, `avail_event`, `used->idx`, `used_event`,
//! `avail->flags`) that goes with it.
//!
//! The race (virtio 1.x §2.7.10, §2.7.13): each side stores one field, then loads the other
//! side's field. That is the store-buffering pattern; on x86 a load may complete before an
//! earlier store to another address is visible, so *both* sides need a full fence between the
//! store and the load, or a wake-up is lost.
//!
//! - [`NotifyModel::Fenced`] — QEMU >= 1.1, Firecracker, rust-vmm: store, `fence(SeqCst)`,
//!   re-read `avail->idx` when enabling; store `used->idx`, `fence(SeqCst)`, read `used_event`
//!   when deciding to interrupt.
//! - [`NotifyModel::Unfenced`] (alias `qemu-kvm-1.0`) — the same code without the two fences,
//!   plus an emulated x86-TSO store buffer ([`StoreBuffer`]): the device's stores to the
//!   notification fields become visible to the guest only after the race window, while its
//!   following loads of guest-written fields run at once. A race window of zero means no
//!   emulation (only real hardware reordering).
//! - [`NotifyModel::NoRecheck`] — QEMU before 06b1297 (2010): enable notifications and wait,
//!   with no re-check of `avail->idx`; the race window delays the enable after the emptiness
//!   check. Interrupt decisions stay fenced, so this model loses kicks only.
//! - [`NotifyModel::VirtioQueue`] — not a model of vnetbed's: the device runs its queues on
//!   rust-vmm's `virtio-queue` crate ([`crate::devices::virtio::crate_queue`]), which makes
//!   every notification decision with its own fences. The [`Notifier`] is not consulted for
//!   it; should it be, it behaves as `fenced`.

use std::collections::VecDeque;
use std::num::Wrapping;
use std::str::FromStr;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::devices::virtio::queue::{
    vring_need_event, QueueError, SplitQueue, VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY,
};

/// How the device orders its notification stores and loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifyModel {
    /// Full fences on both paths (correct).
    #[default]
    Fenced,
    /// No fences, emulated store buffer (qemu-kvm 1.0).
    Unfenced,
    /// Enable and wait without re-checking (pre-2010 QEMU).
    NoRecheck,
    /// The queues and every notification decision are rust-vmm's `virtio-queue` crate's.
    VirtioQueue,
}

impl NotifyModel {
    /// Whether this is one of the re-created buggy models (opt-in only).
    pub fn is_buggy(self) -> bool {
        matches!(self, NotifyModel::Unfenced | NotifyModel::NoRecheck)
    }
}

/// `--notify-model` was not one of the known names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown notify model `{0}`: use fenced, unfenced (alias qemu-kvm-1.0), no-recheck or virtio-queue")]
pub struct UnknownNotifyModel(pub String);

impl FromStr for NotifyModel {
    type Err = UnknownNotifyModel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fenced" => Ok(NotifyModel::Fenced),
            "unfenced" | "qemu-kvm-1.0" => Ok(NotifyModel::Unfenced),
            "no-recheck" => Ok(NotifyModel::NoRecheck),
            "virtio-queue" => Ok(NotifyModel::VirtioQueue),
            other => Err(UnknownNotifyModel(other.to_string())),
        }
    }
}

impl std::fmt::Display for NotifyModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotifyModel::Fenced => "fenced",
            NotifyModel::Unfenced => "unfenced",
            NotifyModel::NoRecheck => "no-recheck",
            NotifyModel::VirtioQueue => "virtio-queue",
        })
    }
}

/// Which queues' notification stores the emulated store buffer holds for the race window
/// (`--race-queues`). The unfenced code is the same for both queues; only the stretched delay
/// is selective. The default, `rx`, follows the 2012 incident: an rx lost kick, where the
/// guest could still transmit (its renewals reached the server) but received nothing. With
/// `all`, tx lost kicks dominate, because the probe guest transmits in bursts of two frames
/// within a window far more often than it refills an empty rx ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RaceQueues {
    /// The receive queue only.
    #[default]
    Rx,
    /// The transmit queue only.
    Tx,
    /// Both queues.
    All,
}

impl RaceQueues {
    /// Whether queue `i` (0 rx, 1 tx) gets the stretched delay.
    pub fn covers(self, i: usize) -> bool {
        matches!(
            (self, i),
            (RaceQueues::All, _) | (RaceQueues::Rx, 0) | (RaceQueues::Tx, 1)
        )
    }
}

impl FromStr for RaceQueues {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rx" => Ok(RaceQueues::Rx),
            "tx" => Ok(RaceQueues::Tx),
            "all" => Ok(RaceQueues::All),
            other => Err(format!(
                "unknown --race-queues `{other}`: use rx, tx or all"
            )),
        }
    }
}

impl std::fmt::Display for RaceQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RaceQueues::Rx => "rx",
            RaceQueues::Tx => "tx",
            RaceQueues::All => "all",
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct PendingStore {
    visible_at: Instant,
    addr: GuestAddress,
    value: u16,
}

/// An emulated x86-TSO store buffer for the device thread's stores to notification fields.
///
/// Faithful to x86-TSO: FIFO (a later store never becomes visible before an earlier one,
/// because entries drain strictly in order and their deadlines are non-decreasing); the
/// device's own loads of a buffered address see the newest pending value (store forwarding,
/// [`StoreBuffer::load_own`]); only loads of guest-written fields pass it. The device's other
/// stores (frame data, used elements) go straight to memory: the guest cannot observe them
/// before the `used->idx` store that publishes them, which is buffered behind them, so the
/// execution stays TSO-equivalent.
#[derive(Debug)]
pub struct StoreBuffer {
    window: Duration,
    pending: VecDeque<PendingStore>,
}

impl StoreBuffer {
    /// A store buffer that holds each store for `window` (zero: stores go straight through).
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            pending: VecDeque::new(),
        }
    }

    /// Store `value` at `addr`, visible to the guest after the window.
    pub fn store(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        addr: GuestAddress,
        value: u16,
        now: Instant,
    ) {
        self.store_after(mem, addr, value, now, self.window);
    }

    /// Store `value` at `addr`, visible after `delay` but never before an earlier pending
    /// store (FIFO). A zero delay with nothing pending goes straight to memory.
    pub fn store_after(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        addr: GuestAddress,
        value: u16,
        now: Instant,
        delay: Duration,
    ) {
        if delay.is_zero() && self.pending.is_empty() {
            // Release: on x86 a plain store; keeps earlier data/used-element stores before it.
            let _ = mem.store(value, addr, Ordering::Release);
            return;
        }
        // x86-TSO is FIFO: a store may not become visible before one issued earlier.
        let earliest = self.pending.back().map_or(now, |p| p.visible_at);
        self.pending.push_back(PendingStore {
            visible_at: (now + delay).max(earliest),
            addr,
            value,
        });
    }

    /// Make every store whose deadline passed visible, oldest first. Returns how many.
    pub fn drain_due(&mut self, mem: &GuestMemoryMmap<()>, now: Instant) -> usize {
        let mut n = 0;
        while let Some(s) = self.pending.front().copied() {
            if s.visible_at > now {
                break;
            }
            // Release: orders the used elements written before the buffered store ahead of it.
            let _ = mem.store(s.value, s.addr, Ordering::Release);
            self.pending.pop_front();
            n += 1;
        }
        n
    }

    /// Drain everything now (device stop: a real store buffer drains within nanoseconds).
    pub fn flush(&mut self, mem: &GuestMemoryMmap<()>) {
        while let Some(s) = self.pending.pop_front() {
            let _ = mem.store(s.value, s.addr, Ordering::Release);
        }
    }

    /// When the oldest pending store must become visible.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.front().map(|s| s.visible_at)
    }

    /// A device load of a field the device itself writes: store forwarding from the newest
    /// pending store to `addr`, else memory.
    pub fn load_own(&self, mem: &GuestMemoryMmap<()>, addr: GuestAddress) -> Option<u16> {
        match self.pending.iter().rev().find(|s| s.addr == addr) {
            Some(s) => Some(s.value),
            None => mem.load(addr, Ordering::Acquire).ok(),
        }
    }

    /// Stores not yet visible.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no store is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Per-queue notification state kept by the device.
#[derive(Debug, Clone, Default)]
pub struct QueueNotifyState {
    /// `used->idx` at the last interrupt decision (vhost's `signalled_used`); `None` until the
    /// first decision, which always interrupts.
    pub signalled_used: Option<Wrapping<u16>>,
    /// `used->idx` when the last interrupt was actually sent.
    pub last_interrupt_used: Wrapping<u16>,
}

/// What [`Notifier::enable`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnableOutcome {
    /// The re-check found new available entries: the caller must keep draining.
    pub more: bool,
    /// The enabling store was delayed (a race window opened).
    pub window_opened: bool,
}

/// The device's notification logic under one model.
#[derive(Debug)]
pub struct Notifier {
    model: NotifyModel,
    event_idx: bool,
    buffer: StoreBuffer,
    race_queues: RaceQueues,
}

impl Notifier {
    /// A notifier for `model`; `race_window` is ignored by `fenced`.
    pub fn new(model: NotifyModel, race_window: Duration, event_idx: bool) -> Self {
        let window = if model.is_buggy() {
            race_window
        } else {
            Duration::ZERO
        };
        Self {
            model,
            event_idx,
            buffer: StoreBuffer::new(window),
            race_queues: RaceQueues::All,
        }
    }

    /// Stretch only the stores of `queues` (see [`RaceQueues`]).
    pub fn with_race_queues(mut self, queues: RaceQueues) -> Self {
        self.race_queues = queues;
        self
    }

    /// The emulated store-buffer delay for queue `i`'s notification stores.
    fn delay_for(&self, i: usize) -> Duration {
        if self.race_queues.covers(i) {
            self.buffer.window
        } else {
            Duration::ZERO
        }
    }

    /// The model.
    pub fn model(&self) -> NotifyModel {
        self.model
    }

    /// The store buffer (the device thread drains it on time).
    pub fn buffer(&mut self) -> &mut StoreBuffer {
        &mut self.buffer
    }

    /// When the next buffered store is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.buffer.next_deadline()
    }

    fn store_notify_field(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        addr: GuestAddress,
        value: u16,
        i: usize,
    ) {
        match self.model {
            // Fenced: a plain (Release) store; the SeqCst fence that must follow is placed by
            // the caller right after, next to the load it orders.
            NotifyModel::Fenced | NotifyModel::VirtioQueue => {
                let _ = mem.store(value, addr, Ordering::Release);
            }
            // Unfenced and no-recheck: the store sits in the (emulated) store buffer for the
            // race window.
            NotifyModel::Unfenced | NotifyModel::NoRecheck => {
                let delay = self.delay_for(i);
                self.buffer
                    .store_after(mem, addr, value, Instant::now(), delay)
            }
        }
    }

    /// Suppress kicks while the device drains the queue (§2.7.10). With EVENT_IDX the device
    /// simply stops moving `avail_event` (as virtio-queue and Firecracker do); without it, it
    /// sets `VRING_USED_F_NO_NOTIFY`. No fence: a kick that arrives anyway is harmless.
    pub fn disable(&mut self, mem: &GuestMemoryMmap<()>, q: &SplitQueue, i: usize) {
        if !self.event_idx {
            self.store_notify_field(mem, q.used_flags_addr(), VRING_USED_F_NO_NOTIFY, i);
        }
    }

    /// Ask for a kick when the guest adds buffers beyond the `beyond` available entries the
    /// device has already seen and could not use (0 unless a mergeable-rx frame needs more
    /// buffers than are posted), then (except `no-recheck`) re-check `avail->idx` for entries
    /// that arrived meanwhile.
    pub fn enable(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        q: &SplitQueue,
        i: usize,
        beyond: u16,
    ) -> Result<EnableOutcome, QueueError> {
        let (addr, value) = if self.event_idx {
            // §2.7.10: kick me when avail->idx moves past next_avail + beyond: the entries
            // already seen do not make a frame deliverable, so a kick for them would be
            // useless, and an avail_event behind avail->idx would never trigger one at all.
            (q.avail_event_addr(), (q.next_avail + Wrapping(beyond)).0)
        } else {
            (q.used_flags_addr(), 0)
        };
        let window_opened = self.model.is_buggy() && !self.delay_for(i).is_zero();
        self.store_notify_field(mem, addr, value, i);
        let more = match self.model {
            NotifyModel::Fenced | NotifyModel::VirtioQueue => {
                // Store-buffering pattern, device half: the enable store must be globally
                // visible before we re-read avail->idx, or the guest may (after its own
                // virtio_mb in virtqueue_kick_prepare) still read the old avail_event while we
                // read its old avail->idx — a lost kick. A full fence is the only barrier that
                // orders a store before a later load (QEMU 92045d8, virtio-queue
                // `enable_notification`).
                fence(Ordering::SeqCst);
                q.available(mem)? > beyond
            }
            // qemu-kvm 1.0: the re-check is there (06b1297) but without the fence it can read
            // avail->idx before the enable store is visible (here: before the window ends).
            NotifyModel::Unfenced => q.available(mem)? > beyond,
            // Pre-2010 QEMU: no re-check at all.
            NotifyModel::NoRecheck => false,
        };
        Ok(EnableOutcome {
            more,
            window_opened,
        })
    }

    /// Publish `used->idx = next_used`, making the used elements written so far visible
    /// (§2.7.8: elements before the index — the Release store orders them).
    /// Returns whether the store was delayed (it stays in the emulated store buffer unless an
    /// interrupt drains it).
    pub fn publish_used(&mut self, mem: &GuestMemoryMmap<()>, q: &SplitQueue, i: usize) -> bool {
        let value = q.next_used.0;
        match self.model {
            // no-recheck only removes the re-check; its interrupt path is the fenced one.
            NotifyModel::Fenced | NotifyModel::NoRecheck | NotifyModel::VirtioQueue => {
                let _ = mem.store(value, q.used_idx_addr(), Ordering::Release);
                false
            }
            NotifyModel::Unfenced => {
                let delay = self.delay_for(i);
                self.buffer
                    .store_after(mem, q.used_idx_addr(), value, Instant::now(), delay);
                !delay.is_zero()
            }
        }
    }

    /// Whether the guest wants an interrupt for the entries published since the last decision
    /// (§2.7.10 `used_event`, or `VRING_AVAIL_F_NO_INTERRUPT` without EVENT_IDX).
    pub fn needs_interrupt(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        q: &SplitQueue,
        state: &mut QueueNotifyState,
    ) -> Result<bool, QueueError> {
        match self.model {
            // Store-buffering pattern, interrupt half: the used->idx store must be visible
            // before we read used_event, or the guest (after its virtio_mb in
            // virtqueue_enable_cb) may read our old used->idx while we read its old
            // used_event — a lost interrupt (QEMU a281ebc, virtio-queue `needs_notification`).
            NotifyModel::Fenced | NotifyModel::NoRecheck | NotifyModel::VirtioQueue => {
                fence(Ordering::SeqCst)
            }
            // qemu-kvm 1.0: no fence; the load of the guest-written used_event passes the
            // buffered used->idx store.
            NotifyModel::Unfenced => {}
        }
        let new = q.next_used;
        let old = state.signalled_used.replace(new);
        // Relaxed loads: in the fenced models the SeqCst fence above already orders them after
        // the used->idx store; in the unfenced model they are deliberately unordered.
        if !self.event_idx {
            let flags = q.load_u16(mem, q.avail_flags_addr(), Ordering::Relaxed)?;
            return Ok(flags & VRING_AVAIL_F_NO_INTERRUPT == 0);
        }
        let Some(old) = old else { return Ok(true) };
        let used_event = q.load_u16(mem, q.used_event_addr(), Ordering::Relaxed)?;
        Ok(vring_need_event(used_event, new.0, old.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::queue::QueueConfig;
    use vm_memory::GuestMemoryMmap;

    fn setup() -> (GuestMemoryMmap<()>, SplitQueue) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let cfg = QueueConfig {
            size: 4,
            ready: true,
            desc_table: 0x1000,
            avail_ring: 0x2000,
            used_ring: 0x3000,
        };
        let q = SplitQueue::new(&mem, &cfg, 256).unwrap();
        (mem, q)
    }

    #[test]
    fn parses_every_model_name() {
        assert_eq!(
            "fenced".parse::<NotifyModel>().unwrap(),
            NotifyModel::Fenced
        );
        assert_eq!(
            "qemu-kvm-1.0".parse::<NotifyModel>().unwrap(),
            NotifyModel::Unfenced
        );
        assert_eq!(
            "unfenced".parse::<NotifyModel>().unwrap(),
            NotifyModel::Unfenced
        );
        assert_eq!(
            "no-recheck".parse::<NotifyModel>().unwrap(),
            NotifyModel::NoRecheck
        );
        assert_eq!(
            "virtio-queue".parse::<NotifyModel>().unwrap(),
            NotifyModel::VirtioQueue
        );
        for m in [
            NotifyModel::Fenced,
            NotifyModel::Unfenced,
            NotifyModel::NoRecheck,
            NotifyModel::VirtioQueue,
        ] {
            assert_eq!(m.to_string().parse::<NotifyModel>().unwrap(), m);
        }
        assert!(!NotifyModel::VirtioQueue.is_buggy() && !NotifyModel::Fenced.is_buggy());
        assert!("fast"
            .parse::<NotifyModel>()
            .unwrap_err()
            .to_string()
            .contains("fenced"));
    }

    #[test]
    fn store_buffer_is_fifo_forwards_and_drains_on_time() {
        let (mem, q) = setup();
        let mut sb = StoreBuffer::new(Duration::from_millis(5));
        let t0 = Instant::now();
        sb.store(&mem, q.avail_event_addr(), 7, t0);
        sb.store(&mem, q.used_idx_addr(), 3, t0 + Duration::from_millis(1));
        sb.store(&mem, q.avail_event_addr(), 9, t0 + Duration::from_millis(2));
        let guest = |a| mem.load::<u16>(a, Ordering::SeqCst).unwrap();
        assert_eq!(
            guest(q.avail_event_addr()),
            0,
            "not visible inside the window"
        );
        assert_eq!(
            sb.load_own(&mem, q.avail_event_addr()),
            Some(9),
            "store forwarding sees the newest"
        );
        assert_eq!(sb.drain_due(&mem, t0 + Duration::from_millis(5)), 1);
        assert_eq!(guest(q.avail_event_addr()), 7);
        assert_eq!(guest(q.used_idx_addr()), 0);
        assert_eq!(sb.next_deadline(), Some(t0 + Duration::from_millis(6)));
        assert_eq!(sb.drain_due(&mem, t0 + Duration::from_millis(10)), 2);
        assert_eq!(
            (guest(q.avail_event_addr()), guest(q.used_idx_addr())),
            (9, 3)
        );
        assert!(sb.is_empty());
    }

    #[test]
    fn unfenced_recheck_misses_what_fenced_sees_only_through_ordering() {
        let (mem, mut q) = setup();
        // Guest published one buffer already: both models' re-check must see it.
        mem.store(1u16, q.avail_idx_addr(), Ordering::SeqCst)
            .unwrap();
        for model in [NotifyModel::Fenced, NotifyModel::Unfenced] {
            let mut n = Notifier::new(model, Duration::from_secs(1), true);
            assert!(n.enable(&mem, &q, 0, 0).unwrap().more);
        }
        let mut n = Notifier::new(NotifyModel::NoRecheck, Duration::from_secs(1), true);
        let out = n.enable(&mem, &q, 0, 0).unwrap();
        assert!(!out.more && out.window_opened, "no-recheck never re-checks");
        q.next_avail = Wrapping(1);
        let mut fenced = Notifier::new(NotifyModel::Fenced, Duration::ZERO, true);
        assert!(!fenced.enable(&mem, &q, 0, 0).unwrap().more);
        assert_eq!(
            mem.load::<u16>(q.avail_event_addr(), Ordering::SeqCst)
                .unwrap(),
            1
        );
    }

    #[test]
    fn race_queues_select_the_stretched_queue_and_keep_fifo_order() {
        assert!(RaceQueues::Rx.covers(0) && !RaceQueues::Rx.covers(1));
        assert!(RaceQueues::Tx.covers(1) && !RaceQueues::Tx.covers(0));
        assert!(RaceQueues::All.covers(0) && RaceQueues::All.covers(1));
        assert_eq!("all".parse::<RaceQueues>(), Ok(RaceQueues::All));
        assert!("both".parse::<RaceQueues>().is_err());
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        let mut sb = StoreBuffer::new(Duration::from_millis(5));
        let t = Instant::now();
        // A zero-delay store with nothing pending is visible at once.
        sb.store_after(&mem, GuestAddress(0x10), 1, t, Duration::ZERO);
        assert_eq!(
            mem.load::<u16>(GuestAddress(0x10), Ordering::Relaxed)
                .unwrap(),
            1
        );
        // Behind a stretched store, a zero-delay store waits its turn (FIFO).
        sb.store_after(&mem, GuestAddress(0x20), 2, t, Duration::from_millis(5));
        sb.store_after(&mem, GuestAddress(0x30), 3, t, Duration::ZERO);
        assert_eq!(sb.drain_due(&mem, t + Duration::from_millis(1)), 0);
        assert_eq!(
            mem.load::<u16>(GuestAddress(0x30), Ordering::Relaxed)
                .unwrap(),
            0
        );
        assert_eq!(sb.drain_due(&mem, t + Duration::from_millis(5)), 2);
        assert_eq!(
            mem.load::<u16>(GuestAddress(0x30), Ordering::Relaxed)
                .unwrap(),
            3
        );
    }

    #[test]
    fn a_zero_race_window_means_no_emulation() {
        let (mem, q) = setup();
        let mut n = Notifier::new(NotifyModel::Unfenced, Duration::ZERO, true);
        let out = n.enable(&mem, &q, 0, 0).unwrap();
        assert!(!out.window_opened);
        assert!(n.buffer().is_empty(), "the store went straight to memory");
        let mut n = Notifier::new(NotifyModel::Unfenced, Duration::from_millis(1), true);
        assert!(n.enable(&mem, &q, 0, 0).unwrap().window_opened);
        assert_eq!(n.buffer().len(), 1);
    }

    #[test]
    fn interrupt_decision_follows_used_event() {
        let (mem, mut q) = setup();
        let mut n = Notifier::new(NotifyModel::Fenced, Duration::ZERO, true);
        let mut st = QueueNotifyState::default();
        q.next_used = Wrapping(1);
        assert!(
            n.needs_interrupt(&mem, &q, &mut st).unwrap(),
            "first decision interrupts"
        );
        mem.store(5u16, q.used_event_addr(), Ordering::SeqCst)
            .unwrap();
        q.next_used = Wrapping(3);
        assert!(!n.needs_interrupt(&mem, &q, &mut st).unwrap());
        q.next_used = Wrapping(6);
        assert!(
            n.needs_interrupt(&mem, &q, &mut st).unwrap(),
            "crossing used_event interrupts"
        );
    }
}
