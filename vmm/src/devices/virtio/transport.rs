//! What every virtio transport shares (virtio 1.x §3.1, §4.1.4.3, §4.2.2): feature
//! negotiation, queue setup, the device status state machine, activation at DRIVER_OK and
//! reset. The transports (virtio-mmio in [`super::mmio`], virtio-pci in [`super::pci`]) only
//! decode their registers onto it.
//!
//! Register writes at the wrong status (e.g. queue setup after DRIVER_OK, DRIVER_OK before
//! FEATURES_OK, features written after FEATURES_OK) and bad queue setup (a size that is not a
//! power of two, rings outside memory) set DEVICE_NEEDS_RESET and emit an `error` event; until
//! the driver writes Status = 0 every other write is ignored. Reset returns the transport and
//! the device to their initial state.
//!
//! A transitional virtio-pci function also has the legacy interface (virtio 1.x §4.1.5.1.3
//! legacy, virtio 0.9.5): no FEATURES_OK step, 32 feature bits, queues placed by one page
//! frame number in the legacy layout. The first write after reset decides which interface
//! the driver uses ([`Interface`]); a write through the other one sets DEVICE_NEEDS_RESET
//! with an error event (`legacy_and_modern_mixed`).

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::queue::{valid_size, QueueConfig, SplitQueue};
use super::signals::Signals;
use super::status::*;
use super::{ActivateContext, VirtioDevice, VIRTIO_F_VERSION_1};

/// Driver mistakes the transport detects.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Register {offset:#x} was written at device status {status:#x}, which does not allow it.
    #[error(
        "register {offset:#x} was written at device status {status:#x}, which does not allow it"
    )]
    WrongStatus {
        /// Register offset (in the transport's own register file).
        offset: u64,
        /// Device status at the time.
        status: u32,
    },
    /// Status {new:#x} is not a legal step from {old:#x}.
    #[error("status {new:#x} is not a legal step from {old:#x} (bits may only be added in order; write 0 to reset)")]
    BadStatus {
        /// Status before.
        old: u32,
        /// Status written.
        new: u32,
    },
    /// Queue {queue} size {size} is not a power of two between 1 and QueueNumMax.
    #[error("queue {queue} size {size} is not a power of two between 1 and {max}")]
    QueueSize {
        /// Queue index.
        queue: usize,
        /// Size written.
        size: u32,
        /// QueueNumMax.
        max: u16,
    },
    /// Queue {0} was not ready at DRIVER_OK.
    #[error("queue {0} was not ready at DRIVER_OK")]
    QueueNotReady(usize),
    /// A queue's rings are malformed.
    #[error("queue {queue}: {source}")]
    Queue {
        /// Queue index.
        queue: usize,
        /// What is wrong.
        #[source]
        source: super::queue::QueueError,
    },
    /// The device failed to start.
    #[error("activation failed: {0}")]
    Activate(#[from] super::ActivateError),
    /// The driver wrote through the legacy and the modern interface without a reset between.
    #[error("register {offset:#x} of the {used:?} interface was written after the driver chose the {chosen:?} interface (no reset between)")]
    MixedInterfaces {
        /// Register offset.
        offset: u64,
        /// The interface written now.
        used: Interface,
        /// The interface the driver started with.
        chosen: Interface,
    },
    /// A legacy driver accepted features the device does not offer.
    #[error("legacy guest features {written:#x} include bits the device does not offer (offered {offered:#x})")]
    LegacyFeatures {
        /// Written.
        written: u32,
        /// Offered (low 32 bits).
        offered: u32,
    },
    /// A legacy queue page frame number puts the rings past 64-bit addresses.
    #[error("queue {queue}: page frame number {pfn:#x} puts the rings outside guest memory")]
    LegacyPfn {
        /// Queue index.
        queue: usize,
        /// Page frame number written.
        pfn: u32,
    },
}

impl TransportError {
    fn kind(&self) -> &'static str {
        match self {
            TransportError::WrongStatus { .. } => "register_write_at_wrong_status",
            TransportError::BadStatus { .. } => "illegal_status_transition",
            TransportError::QueueSize { .. } => "queue_size_not_power_of_two",
            TransportError::QueueNotReady(_) => "queue_not_ready",
            TransportError::Queue { source, .. } => source.kind(),
            TransportError::Activate(_) => "activation_failed",
            TransportError::MixedInterfaces { .. } => "legacy_and_modern_mixed",
            TransportError::LegacyFeatures { .. } => "legacy_features_not_offered",
            TransportError::LegacyPfn { .. } => "legacy_queue_pfn_out_of_range",
        }
    }
}

/// Which ring address a register sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingField {
    /// The descriptor table.
    Desc,
    /// The driver (available) ring.
    Driver,
    /// The device (used) ring.
    Device,
}

/// Which interface of a transitional function a driver programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// virtio 1.x registers (virtio-mmio, the modern virtio-pci capabilities).
    Modern,
    /// The legacy virtio-pci I/O BAR (virtio 0.9.5).
    Legacy,
}

/// The legacy interface's queue alignment (virtio 0.9.5 §2.3: the used ring starts on the
/// next 4096-byte boundary after the available ring) and page size of QueuePFN.
pub const LEGACY_PAGE: u64 = 4096;

/// The legacy split-ring layout of a queue of `size` entries at page frame `pfn`:
/// descriptor table, available ring right after it, used ring at the next page boundary.
/// None if it does not fit 64-bit addresses.
pub fn legacy_ring_layout(pfn: u32, size: u16) -> Option<(u64, u64, u64)> {
    let n = u64::from(size);
    let desc = u64::from(pfn) * LEGACY_PAGE;
    let avail = desc + 16 * n;
    // flags, idx, ring[n], used_event: 6 + 2 n bytes.
    let used = (avail + 6 + 2 * n).checked_next_multiple_of(LEGACY_PAGE)?;
    Some((desc, avail, used))
}

/// A virtio device with the transport-independent state a driver programs.
pub struct VirtioState {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap<()>,
    signals: Signals,
    kicks: Vec<EventFd>,
    status: u32,
    /// DeviceFeaturesSel.
    pub device_features_sel: u32,
    /// DriverFeaturesSel.
    pub driver_features_sel: u32,
    driver_features: u64,
    /// QueueSel.
    pub queue_sel: u32,
    queues: Vec<QueueConfig>,
    config_generation: u32,
    active: bool,
    interface: Option<Interface>,
}

impl VirtioState {
    /// Put `device` on a transport over guest memory `mem`, interrupting through `signals`.
    /// Creates one kick EventFd per queue.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap<()>,
        signals: Signals,
    ) -> std::io::Result<Self> {
        let n = device.queue_max_sizes().len();
        let kicks = (0..n)
            .map(|_| EventFd::new(libc::EFD_NONBLOCK))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            device,
            mem,
            signals,
            kicks,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues: vec![QueueConfig::default(); n],
            config_generation: 0,
            active: false,
            interface: None,
        })
    }

    /// The device behind the transport.
    pub fn device(&self) -> &dyn VirtioDevice {
        self.device.as_ref()
    }

    /// The device, for configuration-space writes.
    pub fn device_mut(&mut self) -> &mut dyn VirtioDevice {
        self.device.as_mut()
    }

    /// The kick EventFd of queue `i`.
    pub fn kick_fd(&self, i: usize) -> Option<&EventFd> {
        self.kicks.get(i)
    }

    /// The signals (interrupts, needs-reset state).
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The device status as the guest reads it.
    pub fn status(&self) -> u32 {
        self.status
            | if self.signals.needs_reset() {
                DEVICE_NEEDS_RESET
            } else {
                0
            }
    }

    /// The features negotiated so far.
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// Whether the device is running (DRIVER_OK reached and accepted).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// ConfigGeneration.
    pub fn config_generation(&self) -> u32 {
        self.config_generation
    }

    /// Number of queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The 32 bits of the offered features DeviceFeaturesSel selects.
    pub fn device_features_word(&self) -> u32 {
        match self.device_features_sel {
            0 => self.device.device_features() as u32,
            1 => (self.device.device_features() >> 32) as u32,
            _ => 0,
        }
    }

    /// The 32 bits of the driver's features DriverFeaturesSel selects.
    pub fn driver_features_word(&self) -> u32 {
        match self.driver_features_sel {
            0 => self.driver_features as u32,
            1 => (self.driver_features >> 32) as u32,
            _ => 0,
        }
    }

    /// QueueNumMax of the selected queue (0: no such queue).
    pub fn queue_num_max(&self) -> u16 {
        self.device
            .queue_max_sizes()
            .get(self.queue_sel as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The selected queue's configuration, if the queue exists.
    pub fn selected_queue(&self) -> Option<&QueueConfig> {
        self.queues.get(self.queue_sel as usize)
    }

    fn selected(&mut self) -> Option<&mut QueueConfig> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// Set DEVICE_NEEDS_RESET for `err`, with an `error` event.
    pub fn fail(&mut self, err: TransportError) {
        let queue = match &err {
            TransportError::QueueSize { queue, .. } | TransportError::Queue { queue, .. } => {
                Some(*queue)
            }
            TransportError::QueueNotReady(q) => Some(*q),
            _ => None,
        };
        self.signals.fail(err.kind(), &err, queue);
    }

    /// Whether writes other than Status are ignored (DEVICE_NEEDS_RESET is set).
    pub fn broken(&self) -> bool {
        self.signals.needs_reset()
    }

    fn reset(&mut self) {
        if self.active {
            self.device.reset();
        }
        self.active = false;
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interface = None;
        self.queues
            .iter_mut()
            .for_each(|q| *q = QueueConfig::default());
        self.signals.reset();
        for k in &self.kicks {
            // Drop kicks that arrived before reset; an empty EventFd reports EAGAIN, fine.
            let _ = k.read();
        }
    }

    /// Whether queue registers may be written now: after FEATURES_OK, before DRIVER_OK
    /// (§3.1.1); a legacy driver has no FEATURES_OK and may set queues up before DRIVER_OK.
    pub fn queue_setup_allowed(&self) -> bool {
        let negotiated = self.status & FEATURES_OK != 0 || self.is_legacy();
        negotiated && self.status & DRIVER_OK == 0
    }

    /// Whether the driver chose the legacy interface (since the last reset).
    pub fn is_legacy(&self) -> bool {
        self.interface == Some(Interface::Legacy)
    }

    /// A write at `offset` through `used`: the first one after reset chooses the interface;
    /// one through the other interface sets DEVICE_NEEDS_RESET. Returns whether the write
    /// may go on (false also when the device is already broken). Status writes of 0 (reset)
    /// go through either interface without this check.
    pub fn claim(&mut self, used: Interface, offset: u64) -> bool {
        if self.broken() {
            return false;
        }
        match self.interface {
            None => {
                self.interface = Some(used);
                true
            }
            Some(chosen) if chosen == used => true,
            Some(chosen) => {
                self.fail(TransportError::MixedInterfaces {
                    offset,
                    used,
                    chosen,
                });
                false
            }
        }
    }

    /// Legacy GuestFeatures (register `offset`) := `v`: the low 32 feature bits, written
    /// before DRIVER_OK; bits the device does not offer set DEVICE_NEEDS_RESET.
    pub fn legacy_write_features(&mut self, offset: u64, v: u32) {
        if self.broken() {
            return;
        }
        if self.status & DRIVER_OK != 0 {
            return self.fail(self.wrong(offset));
        }
        let offered = self.device.device_features() as u32;
        if v & !offered != 0 {
            return self.fail(TransportError::LegacyFeatures {
                written: v,
                offered,
            });
        }
        self.driver_features = u64::from(v);
    }

    /// Legacy QueuePFN (register `offset`) := `pfn` for the selected queue: 0 takes the
    /// queue down, anything else places it (at its maximum size, the legacy layout) and
    /// makes it ready once its rings are checked against guest memory.
    pub fn legacy_write_pfn(&mut self, offset: u64, pfn: u32) {
        if !self.queue_write_allowed(offset) {
            return;
        }
        let queue = self.queue_sel as usize;
        let max = self.queue_num_max();
        if queue >= self.queues.len() {
            return self.signals.ignored(
                "legacy_queue_select_out_of_range",
                &format_args!(
                    "QueuePFN written with QueueSel {queue}: the device has {} queues",
                    self.queues.len()
                ),
            );
        }
        if pfn == 0 {
            self.queues[queue] = QueueConfig::default();
            return;
        }
        let Some((desc, avail, used)) = legacy_ring_layout(pfn, max) else {
            return self.fail(TransportError::LegacyPfn { queue, pfn });
        };
        let cfg = QueueConfig {
            size: max,
            ready: true,
            desc_table: desc,
            avail_ring: avail,
            used_ring: used,
        };
        if let Err(source) = SplitQueue::new(&self.mem, &cfg, max) {
            return self.fail(TransportError::Queue { queue, source });
        }
        self.queues[queue] = cfg;
    }

    /// Whether a queue register (at `offset`) may be written now; a write at the wrong
    /// status sets DEVICE_NEEDS_RESET, a broken device ignores it.
    fn queue_write_allowed(&mut self, offset: u64) -> bool {
        if self.broken() {
            return false;
        }
        if !self.queue_setup_allowed() {
            self.fail(self.wrong(offset));
            return false;
        }
        true
    }

    fn wrong(&self, offset: u64) -> TransportError {
        TransportError::WrongStatus {
            offset,
            status: self.status,
        }
    }

    /// DriverFeatures (register `offset`) := `v` for the selected word.
    pub fn write_driver_features(&mut self, offset: u64, v: u32) {
        if self.broken() {
            return;
        }
        if self.status & DRIVER == 0 || self.status & FEATURES_OK != 0 {
            return self.fail(self.wrong(offset));
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32),
            _ => {}
        }
    }

    /// QueueNum (register `offset`) := `v` for the selected queue.
    pub fn write_queue_size(&mut self, offset: u64, v: u32) {
        if !self.queue_write_allowed(offset) {
            return;
        }
        let queue = self.queue_sel as usize;
        let max = self.queue_num_max();
        if v > u32::from(u16::MAX) || !valid_size(v as u16, max) {
            return self.fail(TransportError::QueueSize {
                queue,
                size: v,
                max,
            });
        }
        if let Some(q) = self.selected() {
            q.size = v as u16;
        }
    }

    /// QueueReady (register `offset`) := `v` for the selected queue; the rings are checked
    /// when it becomes ready.
    pub fn write_queue_ready(&mut self, offset: u64, v: u32) {
        if !self.queue_write_allowed(offset) {
            return;
        }
        let queue = self.queue_sel as usize;
        let max = self.queue_num_max();
        let Some(cfg) = self.queues.get(queue).copied() else {
            return;
        };
        if v == 1 {
            if let Err(source) = SplitQueue::new(&self.mem, &cfg, max) {
                return self.fail(TransportError::Queue { queue, source });
            }
        }
        if let Some(q) = self.selected() {
            q.ready = v == 1;
        }
    }

    /// One 32-bit half (`high`) of a ring address of the selected queue (register `offset`).
    pub fn write_ring_address(&mut self, offset: u64, field: RingField, high: bool, v: u32) {
        if !self.queue_write_allowed(offset) {
            return;
        }
        let Some(q) = self.selected() else { return };
        let field = match field {
            RingField::Desc => &mut q.desc_table,
            RingField::Driver => &mut q.avail_ring,
            RingField::Device => &mut q.used_ring,
        };
        if high {
            *field = (*field & 0xffff_ffff) | (u64::from(v) << 32);
        } else {
            *field = (*field & !0xffff_ffff) | u64::from(v);
        }
    }

    /// A notification of queue `queue` written through the bus: signal its kick EventFd
    /// ourselves, so notifications work without an ioeventfd (with one registered, KVM never
    /// exits for this write). Kicks before DRIVER_OK or for unknown queues are ignored
    /// (§4.2.3.3 allows no such kicks; they carry no state to corrupt).
    pub fn notify(&self, queue: u32) {
        if !self.active {
            return;
        }
        if let Some(k) = self.kicks.get(queue as usize) {
            if let Err(e) = k.write(1) {
                tracing::warn!("queue {queue} kick failed: {e}");
            }
        }
    }

    /// Status := `new`: reset (0), or the next step of §3.1.1.
    pub fn write_status(&mut self, new: u32) {
        if new == 0 {
            return self.reset();
        }
        let old = self.status;
        if self.signals.needs_reset() {
            // Only FAILED may still be added; everything else waits for reset.
            if new & !(old | FAILED) == 0 {
                self.status = new;
            }
            return;
        }
        // Bits are only ever added (§3.1.1), in order: ACKNOWLEDGE, DRIVER, FEATURES_OK,
        // DRIVER_OK. FAILED may be added at any time.
        let added = new & !old;
        // A legacy driver never sets FEATURES_OK: DRIVER_OK follows DRIVER.
        let legal = new & old == old
            && (added & (DRIVER | FEATURES_OK | DRIVER_OK) == 0 || new & ACKNOWLEDGE != 0)
            && (added & (FEATURES_OK | DRIVER_OK) == 0 || new & DRIVER != 0)
            && (added & DRIVER_OK == 0 || old & FEATURES_OK != 0 || self.is_legacy())
            && new & DEVICE_NEEDS_RESET == 0;
        if !legal {
            return self.fail(TransportError::BadStatus { old, new });
        }
        if added & FEATURES_OK != 0 && !self.is_legacy() {
            // §3.1.1 step 5-6: accept only a subset of the offered features that includes
            // VERSION_1 (these transports drive virtio 1.x only); otherwise leave FEATURES_OK
            // clear so the driver sees the refusal when it re-reads Status.
            let offered = self.device.device_features();
            if self.driver_features & !offered != 0
                || self.driver_features & (1 << VIRTIO_F_VERSION_1) == 0
            {
                self.status = new & !FEATURES_OK;
                return;
            }
        }
        if added & DRIVER_OK != 0 {
            if let Some(q) = self.queues.iter().position(|q| !q.ready) {
                self.status = new;
                return self.fail(TransportError::QueueNotReady(q));
            }
            let kicks = match self
                .kicks
                .iter()
                .map(EventFd::try_clone)
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(k) => k,
                Err(e) => {
                    self.status = new;
                    return self.fail(TransportError::Activate(super::ActivateError::Thread(e)));
                }
            };
            let ctx = ActivateContext {
                mem: self.mem.clone(),
                features: self.driver_features,
                queues: self.queues.clone(),
                kicks,
                signals: self.signals.clone(),
            };
            self.status = new;
            match self.device.activate(ctx) {
                Ok(()) => self.active = true,
                Err(e) => self.fail(TransportError::Activate(e)),
            }
            return;
        }
        self.status = new;
    }
}

impl Drop for VirtioState {
    fn drop(&mut self) {
        if self.active {
            self.device.reset();
        }
    }
}
