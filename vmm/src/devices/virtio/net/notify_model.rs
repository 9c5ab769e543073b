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
//! - [`NotifyModel::NoRecheck`] — QEMU before 06b1297 (2010, e.g. QEMU 0.12), as it was:
//!   - only rx lost the re-check (`virtio_net_has_buffers` enabled notifications and returned
//!     "no buffers"); the tx path kept its enable-then-flush-again, i.e. a re-check;
//!   - EVENT_IDX is not offered: it arrived in June 2011 (bcbabae8f), so the device uses
//!     `VRING_USED_F_NO_NOTIFY` and the driver `VRING_AVAIL_F_NO_INTERRUPT`;
//!   - the race window is a delay *in program order* between the rx emptiness check and the
//!     enable (the device thread spins for it), not a buffered store: the guest refills and
//!     sees NO_NOTIFY still set, does not kick, and the device then enables and waits for
//!     good;
//!   - its fences are QEMU 0.12's: none (92045d8 and a281ebc are 2012). Its interrupt
//!     decision (`virtio_notify` reading NO_INTERRUPT) is therefore unfenced, but the
//!     emulator does not stretch it: without EVENT_IDX no device can tell a lost interrupt
//!     from a guest that consumed by polling, so vnetbed's watchdog could not judge it; only
//!     real hardware reordering can lose one there, and the guest-side detector would see it.
//!
//!   So this model loses rx kicks, through the missing re-check. Its default window is
//!   [`NO_RECHECK_DEFAULT_WINDOW`].
//! - [`NotifyModel::MissingEnableFence`] — a mutant of the fix: QEMU 92045d8 (the fence after
//!   enabling notifications) absent, a281ebc (the fence before reading `used_event`) present.
//!   It can lose kicks only.
//! - [`NotifyModel::MissingNotifyFence`] — the other half: a281ebc absent, 92045d8 present.
//!   It can lose interrupts only.
//!
//! Every model runs the same protocol code ([`crate::devices::virtio::protocol`]); a model
//! only chooses, per path, whether the full fence is there and whether the re-check is, and
//! the device's stores to the notification fields go through the emulated store buffer
//! ([`StoreBuffer`]) for the race window (zero for `fenced`). A full fence drains the buffer,
//! as `mfence` drains a real one, so a mutant with one fence loses only the other race.
//! - [`NotifyModel::VirtioQueue`] — not a model of vnetbed's: the device runs its queues on
//!   rust-vmm's `virtio-queue` crate ([`crate::devices::virtio::crate_queue`]), which makes
//!   every notification decision with its own fences. The [`Notifier`] is not consulted for
//!   it; should it be, it behaves as `fenced`.

use std::collections::VecDeque;
use std::num::Wrapping;
use std::str::FromStr;
use std::sync::atomic::{fence, Ordering};

use crate::devices::virtio::protocol::{self, Field, RingMemory};
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::config::DEFAULT_RACE_WINDOW;
use crate::devices::virtio::queue::{QueueError, SplitQueue, VRING_USED_F_NO_NOTIFY};

/// `no-recheck`'s default window: the device's delay in program order between finding the
/// rx ring empty and enabling notifications. Measured (BENCHMARKS.md, "sensitivity"): with
/// the probe guest under the soak's UDP load, 5 us caught it in 1 of 4 runs within 60 s,
/// 50 us in 4 of 4 with a maximum of 58 s, 200 us in 4 of 4 within 7 s. The device thread
/// spins for it once per ring-empty cycle (a few hundred a minute).
pub const NO_RECHECK_DEFAULT_WINDOW: Duration = Duration::from_micros(200);

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
    /// Mutant: no fence after enabling notifications (QEMU 92045d8 absent).
    MissingEnableFence,
    /// Mutant: no fence before reading `used_event` (QEMU a281ebc absent).
    MissingNotifyFence,
}

/// Which parts of the protocol a model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Paths {
    /// The full fence between the enable store and the re-check (92045d8).
    enable_fence: bool,
    /// The re-check of `avail->idx` after enabling (06b1297).
    recheck: bool,
    /// The full fence between the `used->idx` store and the `used_event` load (a281ebc).
    notify_fence: bool,
}

impl NotifyModel {
    /// Whether the device offers VIRTIO_RING_F_EVENT_IDX with this model (`no-recheck`
    /// re-creates QEMU before EVENT_IDX existed).
    pub fn offers_event_idx(self) -> bool {
        self != NotifyModel::NoRecheck
    }

    /// The race window this model uses unless `--race-window` says otherwise: the emulated
    /// store buffer's hold time ([`DEFAULT_RACE_WINDOW`], 5 us), or for `no-recheck` the
    /// program-order delay before the rx enable ([`NO_RECHECK_DEFAULT_WINDOW`], 200 us).
    pub fn default_race_window(self) -> Duration {
        match self {
            NotifyModel::NoRecheck => NO_RECHECK_DEFAULT_WINDOW,
            _ => DEFAULT_RACE_WINDOW,
        }
    }

    /// Every model, in the order `--help` lists them.
    pub const ALL: [NotifyModel; 6] = [
        NotifyModel::Fenced,
        NotifyModel::Unfenced,
        NotifyModel::NoRecheck,
        NotifyModel::MissingEnableFence,
        NotifyModel::MissingNotifyFence,
        NotifyModel::VirtioQueue,
    ];

    /// Whether this is one of the re-created buggy models or mutants (opt-in only).
    pub fn is_buggy(self) -> bool {
        !matches!(self, NotifyModel::Fenced | NotifyModel::VirtioQueue)
    }

    /// The protocol's parts on queue `i` (0 rx, 1 tx).
    fn paths(self, i: usize) -> Paths {
        let (enable_fence, recheck, notify_fence) = match self {
            NotifyModel::Fenced | NotifyModel::VirtioQueue => (true, true, true),
            NotifyModel::Unfenced => (false, true, false),
            // QEMU 0.12: no fence anywhere; rx without the re-check, tx with its flush again.
            NotifyModel::NoRecheck => (false, i != 0, false),
            NotifyModel::MissingEnableFence => (false, true, true),
            NotifyModel::MissingNotifyFence => (true, true, false),
        };
        Paths {
            enable_fence,
            recheck,
            notify_fence,
        }
    }
}

/// `--notify-model` was not one of the known names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown notify model `{0}`: use fenced, unfenced (alias qemu-kvm-1.0), no-recheck, missing-enable-fence, missing-notify-fence or virtio-queue")]
pub struct UnknownNotifyModel(pub String);

impl FromStr for NotifyModel {
    type Err = UnknownNotifyModel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fenced" => Ok(NotifyModel::Fenced),
            "unfenced" | "qemu-kvm-1.0" => Ok(NotifyModel::Unfenced),
            "no-recheck" => Ok(NotifyModel::NoRecheck),
            "virtio-queue" => Ok(NotifyModel::VirtioQueue),
            "missing-enable-fence" => Ok(NotifyModel::MissingEnableFence),
            "missing-notify-fence" => Ok(NotifyModel::MissingNotifyFence),
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
            NotifyModel::MissingEnableFence => "missing-enable-fence",
            NotifyModel::MissingNotifyFence => "missing-notify-fence",
        })
    }
}

/// Which queues' notification stores the emulated store buffer holds for the race window
/// (`--race-queues`). The unfenced code is the same for both queues, as it was in qemu-kvm
/// 1.0, which ran one `virtio.c` for every queue; stretching only some queues is a choice
/// made for reproduction, not history. The default, `rx`, shows the 2012 incident's symptom
/// (the guest still transmits, nothing comes back). Measured (BENCHMARKS.md), the first stall
/// with `rx` is most often an rx lost *interrupt*, sometimes an rx lost kick. With `all`, tx
/// lost kicks come first, because the probe guest transmits bursts of two frames within a
/// window far more often than it refills an empty rx ring.
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
/// A probability amplifier, not a new behaviour: a real store buffer drains within
/// nanoseconds, and the locked instructions of every syscall the device thread makes drain
/// it too, whereas this one holds the stores for the race window across the device's own
/// syscalls. That makes the lost-notification race thousands of times likelier, yet every
/// stall it produces is still a legal x86-TSO execution of the unfenced code: x86 allows a
/// store to stay invisible for any time while later loads complete, and this buffer only
/// picks long such times.
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
    /// `no-recheck`'s program-order delay between the rx emptiness check and the enable.
    program_delay: Duration,
}

impl Notifier {
    /// A notifier for `model`; `race_window` is ignored by `fenced`.
    pub fn new(model: NotifyModel, race_window: Duration, event_idx: bool) -> Self {
        // The store-buffer amplifier for the unfenced stores; `no-recheck` puts its window in
        // program order instead (see the module docs).
        let (window, program_delay) = match model {
            NotifyModel::NoRecheck => (Duration::ZERO, race_window),
            m if m.is_buggy() => (race_window, Duration::ZERO),
            _ => (Duration::ZERO, Duration::ZERO),
        };
        Self {
            model,
            event_idx,
            buffer: StoreBuffer::new(window),
            race_queues: RaceQueues::All,
            program_delay,
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

    /// The queue's notification fields as the device sees them, with its stores delayed by
    /// queue `i`'s race window.
    fn ring<'a>(
        &'a mut self,
        mem: &'a GuestMemoryMmap<()>,
        q: &'a SplitQueue,
        i: usize,
    ) -> DeviceRing<'a> {
        let delay = self.delay_for(i);
        DeviceRing {
            mem,
            q,
            buffer: &mut self.buffer,
            delay,
            error: None,
        }
    }

    /// Suppress kicks while the device drains the queue (§2.7.10). With EVENT_IDX the device
    /// simply stops moving `avail_event` (as virtio-queue and Firecracker do); without it, it
    /// sets `VRING_USED_F_NO_NOTIFY`. No fence: a kick that arrives anyway is harmless.
    pub fn disable(&mut self, mem: &GuestMemoryMmap<()>, q: &SplitQueue, i: usize) {
        if !self.event_idx {
            self.ring(mem, q, i)
                .store(Field::UsedFlags, VRING_USED_F_NO_NOTIFY, Ordering::Release);
        }
    }

    /// Ask for a kick when the guest adds buffers beyond the `beyond` available entries the
    /// device has already seen and could not use (0 unless a mergeable-rx frame needs more
    /// buffers than are posted), then (except `no-recheck`) re-check `avail->idx` for entries
    /// that arrived meanwhile ([`protocol::device_enable`]).
    pub fn enable(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        q: &SplitQueue,
        i: usize,
        beyond: u16,
    ) -> Result<EnableOutcome, QueueError> {
        let paths = self.model.paths(i);
        let program_window = i == 0 && !self.program_delay.is_zero();
        if program_window {
            // no-recheck: the device is still between "the ring is empty" and the enable;
            // the guest may refill meanwhile, see NO_NOTIFY and not kick.
            spin_for(self.program_delay);
        }
        // §2.7.10: kick me when avail->idx moves past next_avail + beyond: the entries
        // already seen do not make a frame deliverable, so a kick for them would be useless,
        // and an avail_event behind avail->idx would never trigger one at all.
        let kick_after = (q.next_avail + Wrapping(beyond)).0;
        let event_idx = self.event_idx;
        let mut ring = self.ring(mem, q, i);
        let delayed = !ring.delay.is_zero();
        let avail_idx =
            protocol::device_enable(&mut ring, event_idx, kick_after, paths.enable_fence);
        if let Some(e) = ring.error {
            return Err(e);
        }
        let more = if paths.recheck {
            let pending = (Wrapping(avail_idx) - q.next_avail).0;
            if pending > q.size() {
                return Err(QueueError::AvailIdxJump {
                    next_avail: q.next_avail.0,
                    avail_idx,
                    size: q.size(),
                });
            }
            pending > beyond
        } else {
            // Pre-2010 QEMU: no re-check at all; the value read is ignored.
            false
        };
        Ok(EnableOutcome {
            more,
            // The enable store stays invisible past the re-check unless a fence drained it.
            window_opened: program_window || (delayed && !(paths.enable_fence && paths.recheck)),
        })
    }

    /// Publish `used->idx = next_used`, making the used elements written so far visible
    /// (§2.7.8), and decide whether the guest wants an interrupt for the entries published
    /// since the last decision (§2.7.10 `used_event`, or `VRING_AVAIL_F_NO_INTERRUPT` without
    /// EVENT_IDX) ([`protocol::device_publish_and_decide`]).
    pub fn publish_and_decide(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        q: &SplitQueue,
        i: usize,
        state: &mut QueueNotifyState,
    ) -> Result<PublishOutcome, QueueError> {
        let paths = self.model.paths(i);
        let new = q.next_used;
        let old = state.signalled_used.replace(new);
        let event_idx = self.event_idx;
        let mut ring = self.ring(mem, q, i);
        let delayed = !ring.delay.is_zero() && !paths.notify_fence;
        let interrupt = protocol::device_publish_and_decide(
            &mut ring,
            event_idx,
            new.0,
            old.map(|o| o.0),
            paths.notify_fence,
        );
        if let Some(e) = ring.error {
            return Err(e);
        }
        Ok(PublishOutcome { interrupt, delayed })
    }
}

/// Busy-wait for `d` (microseconds: far below a sleep's granularity).
fn spin_for(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// What [`Notifier::publish_and_decide`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOutcome {
    /// The guest wants an interrupt.
    pub interrupt: bool,
    /// The `used->idx` store is still in the emulated store buffer (a lost-interrupt race
    /// window is open unless the interrupt drains it).
    pub delayed: bool,
}

/// One queue's notification fields as the device thread sees them: loads of guest-written
/// fields read guest memory at once; stores to device-written fields go through the
/// emulated store buffer (visible after `delay`, FIFO); a full fence drains the buffer.
struct DeviceRing<'a> {
    mem: &'a GuestMemoryMmap<()>,
    q: &'a SplitQueue,
    buffer: &'a mut StoreBuffer,
    delay: Duration,
    /// The first guest-memory error (the rings were checked at activation, so none is
    /// expected; one is reported, never unwrapped).
    error: Option<QueueError>,
}

impl DeviceRing<'_> {
    fn addr(&self, field: Field) -> GuestAddress {
        let q = self.q;
        match field {
            Field::AvailFlags => q.avail_flags_addr(),
            Field::AvailIdx => q.avail_idx_addr(),
            Field::UsedEvent => q.used_event_addr(),
            Field::UsedFlags => q.used_flags_addr(),
            Field::UsedIdx => q.used_idx_addr(),
            Field::AvailEvent => q.avail_event_addr(),
        }
    }
}

impl RingMemory for DeviceRing<'_> {
    fn load(&mut self, field: Field, order: Ordering) -> u16 {
        match self.q.load_u16(self.mem, self.addr(field), order) {
            Ok(v) => v,
            Err(e) => {
                self.error.get_or_insert(e);
                0
            }
        }
    }

    fn store(&mut self, field: Field, value: u16, _order: Ordering) {
        // Zero delay with nothing pending: a Release store to guest memory at once (a plain
        // store on x86, keeping earlier used-element stores before it). Otherwise the store
        // waits its turn in the emulated store buffer (x86-TSO: FIFO).
        let addr = self.addr(field);
        self.buffer
            .store_after(self.mem, addr, value, Instant::now(), self.delay);
    }

    fn full_fence(&mut self) {
        // mfence: every buffered store becomes visible before any later load.
        self.buffer.flush(self.mem);
        fence(Ordering::SeqCst);
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
        for m in NotifyModel::ALL {
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
        let mut n = Notifier::new(NotifyModel::NoRecheck, Duration::from_millis(1), true);
        let out = n.enable(&mem, &q, 0, 0).unwrap();
        assert!(
            !out.more && out.window_opened,
            "no-recheck never re-checks rx"
        );
        assert!(
            n.enable(&mem, &q, 1, 0).unwrap().more,
            "no-recheck keeps tx's enable-then-flush"
        );
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
            n.publish_and_decide(&mem, &q, 0, &mut st)
                .unwrap()
                .interrupt,
            "first decision interrupts"
        );
        mem.store(5u16, q.used_event_addr(), Ordering::SeqCst)
            .unwrap();
        q.next_used = Wrapping(3);
        assert!(
            !n.publish_and_decide(&mem, &q, 0, &mut st)
                .unwrap()
                .interrupt
        );
        q.next_used = Wrapping(6);
        assert!(
            n.publish_and_decide(&mem, &q, 0, &mut st)
                .unwrap()
                .interrupt,
            "crossing used_event interrupts"
        );
    }

    #[test]
    fn each_mutant_leaves_exactly_one_race_window_open() {
        let window = Duration::from_millis(50);
        // (model, kick window, enable store buffered, interrupt window)
        for (model, kick_window, buffered, interrupt_window) in [
            (NotifyModel::Fenced, false, false, false),
            (NotifyModel::Unfenced, true, true, true),
            (NotifyModel::MissingEnableFence, true, true, false),
            (NotifyModel::MissingNotifyFence, false, false, true),
            // A delay in program order before the enable, not a buffered store.
            (NotifyModel::NoRecheck, true, false, false),
        ] {
            let (mem, mut q) = setup();
            let mut n = Notifier::new(model, window, true);
            let out = n.enable(&mem, &q, 0, 0).unwrap();
            assert_eq!(out.window_opened, kick_window, "{model}: enable");
            // A fenced enable is visible before the re-check; a window leaves it buffered.
            assert_eq!(n.buffer().is_empty(), !buffered, "{model}: buffered enable");
            n.buffer().flush(&mem);
            q.next_used = Wrapping(1);
            let mut st = QueueNotifyState::default();
            let out = n.publish_and_decide(&mem, &q, 0, &mut st).unwrap();
            assert!(out.interrupt, "{model}: the first decision interrupts");
            assert_eq!(out.delayed, interrupt_window, "{model}: publish");
            let visible = mem
                .load::<u16>(q.used_idx_addr(), Ordering::SeqCst)
                .unwrap();
            assert_eq!(
                visible == 1,
                !interrupt_window,
                "{model}: used->idx visible"
            );
            assert_eq!(model.is_buggy(), model != NotifyModel::Fenced);
        }
    }
}
