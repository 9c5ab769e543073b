//! The state the device thread owns while the device is active: both queues, the
//! notification model, the backend, the deferred rx frame and the pending tx frame. The
//! rx path ([`super::rx`]), tx path ([`super::tx`]) and watchdog ([`super::watchdog`]) are
//! `impl` blocks on [`NetCore`].

use std::sync::Arc;
use std::time::Instant;

use virtio_bindings::virtio_net::VIRTIO_NET_F_MRG_RXBUF;
use vm_memory::GuestMemoryMmap;

use super::backend::NetBackend;
use super::config::NetOptions;
use super::metrics::{NetMetrics, QueueMetrics};
use super::notify_model::{Notifier, QueueNotifyState};
use super::ring::Ring;
use super::watchdog::WatchState;
use crate::devices::virtio::queue::QueueError;
use crate::devices::virtio::VIRTIO_F_VERSION_1;
use crate::devices::virtio::{Signals, VIRTIO_RING_F_EVENT_IDX};
use crate::events::EventSink;

/// Size of `struct virtio_net_hdr_v1` (§5.1.6: always 12 bytes with VERSION_1).
pub const NET_HDR_LEN: usize = 12;
/// Offset of `num_buffers` in the header.
pub const NUM_BUFFERS_OFFSET: usize = 10;
/// Size of the legacy `struct virtio_net_hdr` (§5.1.6.1 legacy interface: a driver that
/// negotiated neither VERSION_1 nor MRG_RXBUF uses the header without `num_buffers`).
pub const LEGACY_NET_HDR_LEN: usize = 10;

/// The net header length the driver uses with `features`: 12 bytes with VERSION_1 or
/// MRG_RXBUF, else the legacy 10 bytes.
pub fn net_hdr_len(features: u64) -> usize {
    if features & ((1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MRG_RXBUF)) != 0 {
        NET_HDR_LEN
    } else {
        LEGACY_NET_HDR_LEN
    }
}
/// The largest frame the device moves (a 64 KiB tap read; anything larger is never
/// delivered truncated: it is counted and dropped).
pub const MAX_FRAME_LEN: usize = 65535;

/// Queue indices.
pub const RX: usize = 0;
/// Queue indices.
pub const TX: usize = 1;

/// One queue as the device thread sees it.
#[derive(Debug)]
pub struct QueueRuntime {
    /// 0 rx, 1 tx.
    pub index: usize,
    /// The ring (vnetbed's queue or virtio-queue).
    pub queue: Ring,
    /// Interrupt-suppression state.
    pub notify: QueueNotifyState,
    /// Notifications are enabled and the device waits for a kick.
    pub waiting_kick: bool,
    /// While waiting: available entries the device has already seen and could not use (the
    /// buffers of a mergeable-rx frame that needs more than the guest has posted). The
    /// device waits for entries beyond these, and so does the watchdog.
    pub waiting_beyond: u16,
    /// Last kick received.
    pub last_kick: Option<Instant>,
    /// Last interrupt sent.
    pub last_interrupt: Option<Instant>,
    /// When the device last started waiting for a kick (enable found nothing).
    pub waiting_since: Option<Instant>,
    /// When the device last published `used->idx`.
    pub last_publish: Option<Instant>,
    /// Watchdog bookkeeping.
    pub watch: WatchState,
}

impl QueueRuntime {
    /// A queue that has not run yet.
    pub fn new(index: usize, queue: Ring) -> Self {
        Self {
            index,
            queue,
            notify: QueueNotifyState::default(),
            waiting_kick: false,
            waiting_beyond: 0,
            last_kick: None,
            last_interrupt: None,
            waiting_since: None,
            last_publish: None,
            watch: WatchState::default(),
        }
    }

    /// "rx" or "tx".
    pub fn name(&self) -> &'static str {
        if self.index == RX {
            "rx"
        } else {
            "tx"
        }
    }
}

/// A tx frame read from the guest that the backend could not take yet (EAGAIN).
#[derive(Debug, Clone, Copy)]
pub struct PendingTx {
    /// Chain head to return once sent.
    pub head: u16,
    /// Frame length in `NetCore::tx_buf`.
    pub len: usize,
}

/// Everything the device thread works on. Built by [`NetCore::new`] when the driver
/// activates the device; only the device's own modules see its fields.
pub struct NetCore {
    /// Guest memory.
    pub(super) mem: GuestMemoryMmap<()>,
    /// Queue 0.
    pub(super) rx: QueueRuntime,
    /// Queue 1.
    pub(super) tx: QueueRuntime,
    /// The notification model.
    pub(super) notifier: Notifier,
    /// The frame backend.
    pub(super) backend: Box<dyn NetBackend>,
    /// Interrupts and needs-reset.
    pub(super) signals: Signals,
    /// Counters.
    pub(super) metrics: Arc<NetMetrics>,
    /// Event stream.
    pub(super) events: EventSink,
    /// Options.
    pub(super) options: NetOptions,
    /// VIRTIO_NET_F_MRG_RXBUF negotiated.
    pub(super) mrg_rxbuf: bool,
    /// The net header length for the negotiated features ([`net_hdr_len`]).
    pub(super) hdr_len: usize,
    /// VIRTIO_RING_F_EVENT_IDX negotiated.
    pub(super) event_idx: bool,
    /// rx: header + frame read from the backend but not delivered yet.
    pub(super) rx_buf: Vec<u8>,
    /// rx: length of the deferred frame in `rx_buf` (after the header), if any.
    pub(super) deferred: Option<usize>,
    /// tx: gathered frame.
    pub(super) tx_buf: Vec<u8>,
    /// tx: a frame waiting for the backend to become writable.
    pub(super) tx_pending: Option<PendingTx>,
    /// A queue error stopped the device until reset.
    pub(super) broken: bool,
    /// Set when `--on-stall exit` fired.
    pub(super) exit_requested: bool,
}

impl NetCore {
    /// The state of a device the driver has just activated: guest memory `mem`, the rx and
    /// tx `rings`, the frame `backend`, the interrupt `signals`, the `features` the driver
    /// negotiated, and the device's `options`, counters and event stream.
    #[allow(clippy::too_many_arguments)] // one per piece the device thread takes over
    pub(super) fn new(
        mem: GuestMemoryMmap<()>,
        rings: [Ring; 2],
        backend: Box<dyn NetBackend>,
        signals: Signals,
        features: u64,
        options: NetOptions,
        metrics: Arc<NetMetrics>,
        events: EventSink,
    ) -> Self {
        let event_idx = features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        let [rx, tx] = rings;
        Self {
            notifier: Notifier::new(options.notify_model, options.race_window, event_idx)
                .with_race_queues(options.race_queues),
            rx: QueueRuntime::new(RX, rx),
            tx: QueueRuntime::new(TX, tx),
            mem,
            backend,
            signals,
            metrics,
            events,
            options,
            mrg_rxbuf: features & (1 << VIRTIO_NET_F_MRG_RXBUF) != 0,
            hdr_len: net_hdr_len(features),
            event_idx,
            rx_buf: Vec::new(),
            deferred: None,
            tx_buf: Vec::new(),
            tx_pending: None,
            broken: false,
            exit_requested: false,
        }
    }

    /// The queue runtime `i`.
    pub fn queue(&mut self, i: usize) -> &mut QueueRuntime {
        if i == RX {
            &mut self.rx
        } else {
            &mut self.tx
        }
    }

    /// The counters of queue `i`.
    pub fn counters(&self, i: usize) -> &QueueMetrics {
        self.metrics.queue(i)
    }

    /// After adding used entries to queue `i`: publish `used->idx` and interrupt if the guest
    /// wants it (decided by the notify model, or by virtio-queue on that backend).
    pub fn publish_and_notify(&mut self, i: usize) -> Result<(), QueueError> {
        let (mem, notifier) = (&self.mem, &mut self.notifier);
        let q = if i == RX { &mut self.rx } else { &mut self.tx };
        let (delayed, wanted) = match &mut q.queue {
            Ring::Vnetbed(ring) => {
                let out = notifier.publish_and_decide(mem, ring, i, &mut q.notify)?;
                (out.delayed, out.interrupt)
            }
            // The crate published used->idx in add_used (a Release store per element);
            // needs_notification fences (SeqCst) and reads used_event itself.
            Ring::VirtioQueue(ring) => (false, ring.needs_notification(mem)?),
        };
        q.last_publish = Some(Instant::now());
        let c = self.metrics.queue(i);
        if wanted {
            // The interrupt drains the store buffer: no window stays open.
            self.send_interrupt(i);
        } else {
            QueueMetrics::inc(&c.interrupts_suppressed);
            if delayed {
                // The guest may re-enable interrupts reading the old used->idx meanwhile.
                QueueMetrics::inc(&c.race_windows_opened);
            }
        }
        Ok(())
    }

    /// Send a used-buffer interrupt for queue `i`.
    pub fn send_interrupt(&mut self, i: usize) {
        // The interrupt goes out through an EventFd write: a syscall whose locked
        // instructions drain a real x86 store buffer before KVM can inject the interrupt. So
        // the emulated store buffer drains here too; otherwise the guest would take an
        // interrupt for used entries it cannot see yet, which x86 never allows.
        self.notifier.buffer().flush(&self.mem);
        let q = if i == RX { &mut self.rx } else { &mut self.tx };
        q.last_interrupt = Some(Instant::now());
        q.notify.last_interrupt_used = q.queue.next_used();
        QueueMetrics::inc(&self.metrics.queue(i).interrupts_sent);
        if let Err(e) = self.signals.signal_queue(i) {
            tracing::warn!("interrupt for queue {i} failed: {e}");
        }
    }

    /// The guest kicked queue `i` (or the watchdog delivers a lost kick): stop waiting for a
    /// kick and serve the queue.
    pub fn kicked(&mut self, i: usize) -> Result<(), QueueError> {
        let q = self.queue(i);
        q.waiting_kick = false;
        if i == RX {
            self.process_rx()
        } else {
            self.process_tx()
        }
    }

    /// Enable notifications on queue `i`; returns whether the re-check found more work.
    pub fn enable_notifications(&mut self, i: usize) -> Result<bool, QueueError> {
        self.enable_notifications_beyond(i, 0)
    }

    /// Ask for a kick once the guest adds entries beyond the `beyond` available ones the
    /// device has already seen and could not use; true if such entries are already there.
    /// (`beyond` is always 0 on virtio-queue, which offers no MRG_RXBUF.)
    pub fn enable_notifications_beyond(
        &mut self,
        i: usize,
        beyond: u16,
    ) -> Result<bool, QueueError> {
        let (mem, notifier) = (&self.mem, &mut self.notifier);
        let q = if i == RX { &mut self.rx } else { &mut self.tx };
        let (more, window_opened) = match &mut q.queue {
            Ring::Vnetbed(ring) => {
                let out = notifier.enable(mem, ring, i, beyond)?;
                (out.more, out.window_opened)
            }
            // The crate: store avail_event = next_avail (or clear NO_NOTIFY), fence(SeqCst),
            // re-read avail->idx. No emulated window: nothing is delayed.
            Ring::VirtioQueue(ring) => (ring.enable_notification(mem)?, false),
        };
        q.waiting_beyond = beyond;
        let c = self.metrics.queue(i);
        QueueMetrics::inc(&c.notification_enables);
        if window_opened {
            QueueMetrics::inc(&c.race_windows_opened);
        }
        q.waiting_kick = !more;
        if !more {
            q.waiting_since = Some(Instant::now());
        }
        Ok(more)
    }

    /// Suppress kicks on queue `i` while draining it.
    pub fn disable_notifications(&mut self, i: usize) -> Result<(), QueueError> {
        let (mem, notifier) = (&self.mem, &mut self.notifier);
        let q = if i == RX { &mut self.rx } else { &mut self.tx };
        match &mut q.queue {
            Ring::Vnetbed(ring) => {
                notifier.disable(mem, ring, i);
                Ok(())
            }
            Ring::VirtioQueue(ring) => ring.disable_notification(mem),
        }
    }
}
