//! A virtio-net driver over any of the transports of src/transport.rs (virtio-mmio
//! version 2, virtio-pci modern and legacy), following Linux's virtio_net:
//!
//! - the rx ring is kept full: every poll round ends with a refill, then
//!   `virtqueue_kick_prepare` decides whether the device needs a kick;
//! - rx is NAPI-style: the interrupt disables rx callbacks and schedules polling; a round
//!   polls up to a budget; a short round re-enables callbacks with fence and re-check
//!   (`virtqueue_enable_cb`) and keeps polling if work raced in;
//! - tx reclaims completed buffers on the next transmit; tx interrupts stay off until the
//!   ring is full, then `virtqueue_enable_cb_delayed` asks for one at 3/4;
//! - EVENT_IDX and MRG_RXBUF are negotiated when offered unless turned off.
//!
//! The fences themselves are in the shared `probe::virtqueue` (host-tested).

use core::cell::UnsafeCell;

use crate::pci::{Function, PciError};
use crate::transport::{status, QueueAddresses, Transport};

use probe::cmdline::Options;
use probe::rx_policy::{buffers_per_frame, merge_frame, Profile, RefillPolicy};
use probe::stall::{Queue, RingView, StallKind};
use probe::virtqueue::{ring_bytes, QueueMemory, SplitQueue, MAX_QUEUE_SIZE};

/// Feature bits the driver knows.
pub mod feature {
    /// VIRTIO_NET_F_MAC: the device has a MAC address in its config space.
    pub const MAC: u64 = 1 << 5;
    /// VIRTIO_NET_F_MRG_RXBUF: a received packet may span several buffers.
    pub const MRG_RXBUF: u64 = 1 << 15;
    /// VIRTIO_NET_F_STATUS: link status in config space.
    pub const STATUS: u64 = 1 << 16;
    /// VIRTIO_RING_F_EVENT_IDX: used_event/avail_event notification suppression.
    pub const EVENT_IDX: u64 = 1 << 29;
    /// VIRTIO_F_VERSION_1: the modern (1.x) device interface.
    pub const VERSION_1: u64 = 1 << 32;
}

/// InterruptStatus / ISR bit 0: the device used buffers.
const INTERRUPT_USED_BUFFER: u32 = 1;

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
/// virtio_net_hdr_v1 (12 bytes with VERSION_1 or, in legacy, with MRG_RXBUF;
/// num_buffers at offset 10). Legacy without MRG_RXBUF: 10 bytes.
pub const NET_HDR_LEN: usize = 12;
const LEGACY_NET_HDR_LEN: usize = 10;
/// Bytes per rx and tx buffer.
const BUFFER_LEN: usize = 2048;
/// Default rx buffer size: a full-size frame plus header (1514 + 12 bytes) fits, as with
/// Linux's GOOD_PACKET_LEN-sized buffers. With MRG_RXBUF a device may still spread a packet
/// over several buffers (num_buffers), which the driver merges; `probe.rx_buf=` makes the
/// buffers smaller so that it must.
const RX_BUFFER_LEN: usize = 1536;
/// Largest frame we accept: Ethernet MTU 1500 + 14-byte header (no VLAN, no GSO).
pub const MAX_FRAME: usize = 1514;
/// NAPI budget: packets per poll round.
pub const NAPI_BUDGET: u32 = 64;

/// Driver counters, reported once a second.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Frames received / bytes (without the virtio header).
    pub rx_packets: u64,
    /// See rx_packets.
    pub rx_bytes: u64,
    /// Frames sent / bytes.
    pub tx_packets: u64,
    /// See tx_packets.
    pub tx_bytes: u64,
    /// rx buffers re-posted to the device.
    pub rx_refills: u64,
    /// Refills that found the rx ring completely empty (the device had no buffer).
    pub rx_ring_empty: u64,
    /// Kicks sent / suppressed (rx + tx).
    pub kicks: u64,
    /// See kicks.
    pub kicks_suppressed: u64,
    /// Interrupts handled for this NIC.
    pub interrupts: u64,
    /// Interrupts whose InterruptStatus had no used-buffer bit (nothing scheduled; as in
    /// Linux, work the status does not announce waits for the next interrupt).
    pub interrupts_without_status: u64,
    /// NAPI poll rounds.
    pub polls: u64,
    /// `enable_cb` found work that raced in (poll again).
    pub rx_rechecks: u64,
    /// Times rx callbacks were re-enabled after a short poll round (`enable_cb`): each is an
    /// rx interrupt decision the device must get right, one chance for the lost interrupt.
    pub rx_cb_enables: u64,
    /// Frames that came in more than one buffer (MRG_RXBUF).
    pub rx_merged: u64,
    /// Malformed rx completions dropped (bad length, missing merge buffers).
    pub rx_errors: u64,
    /// Times the tx ring was full.
    pub tx_ring_full: u64,
}

/// Why the NIC could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// No virtio-mmio magic at the base address.
    NoDevice(u32),
    /// Legacy virtio-mmio (version 1).
    UnsupportedVersion(u32),
    /// Not a network device.
    NotNet(u32),
    /// The device does not offer VIRTIO_F_VERSION_1.
    NoVersion1,
    /// The device refused our features (FEATURES_OK did not stick).
    FeaturesRejected,
    /// A queue is missing or already in use.
    BadQueue(u32),
    /// The device broke the virtqueue contract.
    Queue(probe::virtqueue::QueueError),
    /// The PCI function is unusable (capabilities, BARs).
    Pci(PciError),
    /// Neither the modern capabilities nor a legacy I/O BAR.
    NoVirtioInterface(Function),
    /// MSI-X is enabled but the device refused the config vector.
    MsixRefused(Function),
    /// The device refused a queue's MSI-X vector.
    QueueVectorRefused(u16),
    /// No MSI-X and no usable INTx line.
    NoInterrupt(Function),
    /// A legacy device's fixed queue size is not one the driver can use.
    LegacyQueueSize(u16, u16),
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::NoDevice(m) => write!(f, "no virtio-mmio device (magic {m:#x})"),
            NetError::UnsupportedVersion(v) => write!(
                f,
                "virtio-mmio version {v}; only version 2 is supported (QEMU: -global virtio-mmio.force-legacy=false)"
            ),
            NetError::NotNet(id) => write!(f, "virtio device id {id} is not a network device (1)"),
            NetError::NoVersion1 => write!(f, "the device does not offer VIRTIO_F_VERSION_1"),
            NetError::FeaturesRejected => write!(f, "the device did not accept our features"),
            NetError::BadQueue(q) => write!(f, "virtqueue {q} is unavailable or already in use"),
            NetError::Queue(e) => write!(f, "{e}"),
            NetError::Pci(e) => write!(f, "{e}"),
            NetError::NoVirtioInterface(fun) => write!(
                f,
                "{fun}: neither virtio 1.0 capabilities nor a legacy I/O BAR"
            ),
            NetError::MsixRefused(fun) => {
                write!(f, "{fun}: the device refused the MSI-X config vector")
            }
            NetError::QueueVectorRefused(q) => {
                write!(f, "the device refused the MSI-X vector of queue {q}")
            }
            NetError::NoInterrupt(fun) => write!(
                f,
                "{fun}: no MSI-X and no INTx line (interrupt pin/line unset, or no such IOAPIC input)"
            ),
            NetError::LegacyQueueSize(q, size) => write!(
                f,
                "legacy queue {q} has size {size}; the driver needs a power of two up to {MAX_QUEUE_SIZE}"
            ),
        }
    }
}

/// Bytes of one queue's ring region: for MAX_QUEUE_SIZE, descriptors (16 KiB), the
/// available ring right after them, the used ring at the next 4 KiB boundary (the legacy
/// layout, which suits every transport).
const RING_REGION: usize = 32 * 1024;

/// The legacy layout of a queue of `size` inside a region at `base`: (desc, avail, used).
fn ring_layout(base: *mut u8, size: u16) -> QueueMemory {
    let (desc, avail, _) = ring_bytes(size);
    // The used_event word follows the available ring: + 2 bytes.
    let used_offset = (desc + avail + 2).div_ceil(4096) * 4096;
    QueueMemory {
        desc: base,
        avail: base.wrapping_add(desc),
        used: base.wrapping_add(used_offset),
    }
}

const _: () = {
    // The region holds the largest queue, including the avail_event word.
    let (desc, avail, used) = ring_bytes(MAX_QUEUE_SIZE as u16);
    assert!((desc + avail + 2).div_ceil(4096) * 4096 + used + 2 <= RING_REGION);
};

/// Guest memory the device reads and writes: rings and buffers, identity-mapped.
#[repr(C, align(4096))]
struct NicMemory {
    rx_ring: [u8; RING_REGION],
    tx_ring: [u8; RING_REGION],
    rx_buffers: [[u8; BUFFER_LEN]; MAX_QUEUE_SIZE],
    tx_buffers: [[u8; BUFFER_LEN]; MAX_QUEUE_SIZE],
}

struct DmaCell(UnsafeCell<NicMemory>);

// SAFETY: the probe is single-threaded; the memory is handed to exactly one driver (see
// `VirtioNet::new`'s claim flag).
unsafe impl Sync for DmaCell {}

static NIC_MEMORY: DmaCell = DmaCell(UnsafeCell::new(NicMemory {
    rx_ring: [0; RING_REGION],
    tx_ring: [0; RING_REGION],
    rx_buffers: [[0; BUFFER_LEN]; MAX_QUEUE_SIZE],
    tx_buffers: [[0; BUFFER_LEN]; MAX_QUEUE_SIZE],
}));
static NIC_MEMORY_CLAIMED: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// The driver.
pub struct VirtioNet {
    transport: Transport,
    /// Bytes of the virtio-net header in every buffer.
    hdr_len: usize,
    /// The MAC address (from the device, or locally administered).
    pub mac: [u8; 6],
    /// Negotiated features.
    pub features: u64,
    rx: SplitQueue,
    tx: SplitQueue,
    rx_buffer_len: usize,
    /// `probe.refill=` in force.
    refill: RefillPolicy,
    /// `probe.profile=` in force.
    profile: Profile,
    /// Buffers the largest frame needs (1 with full-size buffers).
    per_frame: u16,
    memory: *mut NicMemory,
    /// NAPI: rx is being polled (callbacks disabled).
    rx_scheduled: bool,
    /// Packets left in this poll round's budget.
    budget_left: u32,
    /// Packets received in this poll round.
    round_received: u32,
    /// A received frame, gathered from its buffers.
    frame: [u8; MAX_FRAME],
    /// A device error met where it could not be returned (inside a transmit).
    deferred_error: Option<NetError>,
    /// Counters.
    pub counters: Counters,
    /// When each queue (rx, tx) last had an interrupt / was kicked (microseconds since
    /// entry), for the stall detector.
    last_interrupt_us: [Option<u64>; 2],
    last_kick_us: [Option<u64>; 2],
}

impl VirtioNet {
    /// Bring up the virtio-net device behind `transport`; `queue_vectors` are the MSI-X
    /// vector indices of rx and tx (PCI with MSI-X). Only one NIC is supported (one set
    /// of static rings); a second call returns None.
    /// `options` gives the features to ask for and the rx ring's buffer size, refill policy
    /// and profile.
    pub fn new(
        transport: Transport,
        options: &Options,
        queue_vectors: [Option<u16>; 2],
    ) -> Option<Result<Self, NetError>> {
        if NIC_MEMORY_CLAIMED.swap(true, core::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        Some(Self::init(transport, options, queue_vectors))
    }

    fn init(
        transport: Transport,
        options: &Options,
        queue_vectors: [Option<u16>; 2],
    ) -> Result<Self, NetError> {
        let (event_idx, mrg_rxbuf) = (options.event_idx, options.mrg_rxbuf);
        let legacy = transport.is_legacy();
        // 3.1.1 Driver Requirements: Device Initialization.
        transport.set_status(0);
        transport.set_status(status::ACKNOWLEDGE);
        transport.set_status(status::ACKNOWLEDGE | status::DRIVER);
        let offered = transport.device_features();
        if !legacy && offered & feature::VERSION_1 == 0 {
            transport.set_status(status::FAILED);
            return Err(NetError::NoVersion1);
        }
        let mut wanted = feature::MAC | feature::STATUS;
        if !legacy {
            wanted |= feature::VERSION_1;
        }
        if event_idx {
            wanted |= feature::EVENT_IDX;
        }
        if mrg_rxbuf {
            wanted |= feature::MRG_RXBUF;
        }
        let features = offered & wanted;
        transport.set_driver_features(features);
        let mut driver_status = status::ACKNOWLEDGE | status::DRIVER;
        if !legacy {
            driver_status |= status::FEATURES_OK;
            transport.set_status(driver_status);
            if transport.status() & status::FEATURES_OK == 0 {
                transport.set_status(status::FAILED);
                return Err(NetError::FeaturesRejected);
            }
        }
        let hdr_len = if legacy && features & feature::MRG_RXBUF == 0 {
            LEGACY_NET_HDR_LEN
        } else {
            NET_HDR_LEN
        };
        let memory = NIC_MEMORY.0.get();
        let use_event_idx = features & feature::EVENT_IDX != 0;
        // SAFETY: NIC_MEMORY is claimed once (flag in `new`); the regions are
        // page-aligned and RING_REGION holds the largest queue (checked above).
        let (rx_region, tx_region) = unsafe {
            (
                (*memory).rx_ring.as_mut_ptr(),
                (*memory).tx_ring.as_mut_ptr(),
            )
        };
        let mut rx = setup_queue(
            &transport,
            RX_QUEUE,
            rx_region,
            use_event_idx,
            queue_vectors[0],
        )?;
        let mut tx = setup_queue(
            &transport,
            TX_QUEUE,
            tx_region,
            use_event_idx,
            queue_vectors[1],
        )?;
        let flags_only = options.profile == Profile::Linux32;
        rx.set_flags_only_disable_cb(flags_only);
        tx.set_flags_only_disable_cb(flags_only);
        // Buffers smaller than a frame only with MRG_RXBUF: without it a frame must fit one.
        let rx_buffer_len = match options.rx_buf {
            Some(bytes) if features & feature::MRG_RXBUF != 0 => bytes,
            Some(bytes) => bytes.max(RX_BUFFER_LEN),
            None => RX_BUFFER_LEN,
        };
        let mac = if features & feature::MAC != 0 {
            transport.read_mac()
        } else {
            [0x02, 0x00, 0x00, 0x00, 0x00, 0x01]
        };
        let mut net = VirtioNet {
            transport,
            hdr_len,
            mac,
            features,
            rx,
            tx,
            rx_buffer_len,
            refill: options.refill_policy(),
            profile: options.profile,
            per_frame: buffers_per_frame(rx_buffer_len, hdr_len, MAX_FRAME),
            memory,
            rx_scheduled: false,
            budget_left: 0,
            round_received: 0,
            frame: [0; MAX_FRAME],
            deferred_error: None,
            counters: Counters::default(),
            last_interrupt_us: [None; 2],
            last_kick_us: [None; 2],
        };
        // tx interrupts stay off until the ring fills (see `transmit_frame`).
        net.tx.disable_cb();
        net.transport.set_status(driver_status | status::DRIVER_OK);
        net.refill_rx();
        Ok(net)
    }

    /// Driver-side ring state for stall diagnosis: rx buffers not posted, tx buffers in
    /// flight, whether rx callbacks are on.
    pub fn ring_state(&self) -> (u16, u16, bool) {
        (
            self.rx.num_free(),
            self.tx.size() - self.tx.num_free(),
            self.rx.callbacks_enabled(),
        )
    }

    /// Queue sizes (rx, tx).
    pub fn queue_sizes(&self) -> (u16, u16) {
        (self.rx.size(), self.tx.size())
    }

    /// rx buffer size posted to the device.
    pub fn rx_buffer_len(&self) -> usize {
        self.rx_buffer_len
    }

    /// The refill policy and profile in force.
    pub fn rx_policy(&self) -> (RefillPolicy, Profile) {
        (self.refill, self.profile)
    }

    /// Whether rx buffers wait to be posted by a trickling refill (the main loop must go on
    /// without sleeping so that they reach the device).
    pub fn refill_pending(&self) -> bool {
        self.refill.trickles() && self.rx.num_free() > 0
    }

    /// The NIC's interrupt fired: acknowledge it first (so that any later completion
    /// raises a new edge), then schedule rx polling if rx has work (Linux's
    /// vring_interrupt -> skb_recv_done -> virtqueue_napi_schedule).
    pub fn handle_interrupt(&mut self) {
        let status = self.transport.ack_interrupt();
        self.counters.interrupts += 1;
        if status & INTERRUPT_USED_BUFFER == 0 {
            self.counters.interrupts_without_status += 1;
        } else {
            // One shared line: a used-buffer interrupt is for both queues.
            let now = crate::time::micros_since_entry();
            self.last_interrupt_us = [Some(now); 2];
        }
        if status & INTERRUPT_USED_BUFFER != 0 && !self.rx_scheduled && self.rx.has_used() {
            self.rx.disable_cb();
            self.rx_scheduled = true;
        }
    }

    /// MSI-X: queue `queue`'s own vector fired (Linux's vp_vring_interrupt ->
    /// vring_interrupt for that queue only). rx schedules polling if it has work; tx
    /// reclaims. No ISR read: with MSI-X the ISR is not used.
    pub fn handle_queue_interrupt(&mut self, queue: Queue) -> Result<(), NetError> {
        self.counters.interrupts += 1;
        let now = crate::time::micros_since_entry();
        self.last_interrupt_us[queue_index(queue) as usize] = Some(now);
        match queue {
            Queue::Rx => {
                if !self.rx_scheduled && self.rx.has_used() {
                    self.rx.disable_cb();
                    self.rx_scheduled = true;
                }
                Ok(())
            }
            Queue::Tx => self.service_tx(),
        }
    }

    /// The transport's name.
    pub fn transport_name(&self) -> &'static str {
        self.transport.name()
    }

    /// Whether rx polling is scheduled (the main loop must not sleep).
    pub fn rx_scheduled(&self) -> bool {
        self.rx_scheduled
    }

    /// Start a NAPI poll round (call before the network stack polls the device).
    pub fn begin_poll_round(&mut self) {
        if self.rx_scheduled {
            self.counters.polls += 1;
            self.budget_left = NAPI_BUDGET;
            self.round_received = 0;
        } else {
            self.budget_left = 0;
        }
    }

    /// End a NAPI poll round: refill and kick; if the round was short, re-enable rx
    /// callbacks with the fenced re-check (virtqueue_napi_complete).
    pub fn end_poll_round(&mut self) -> Result<(), NetError> {
        self.refill_rx();
        if self.rx_scheduled && self.round_received < NAPI_BUDGET {
            self.counters.rx_cb_enables += 1;
            if self.rx.enable_cb() {
                self.rx_scheduled = false;
            } else {
                // Work raced in between the last poll and enable: keep polling.
                self.counters.rx_rechecks += 1;
                self.rx.disable_cb();
            }
        }
        self.budget_left = 0;
        match self.deferred_error.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Post free rx buffers as the refill policy says (every one by default), then kick if
    /// the device wants it.
    fn refill_rx(&mut self) {
        let free = self.rx.num_free();
        let size = self.rx.size();
        let count = self.refill.to_post(size - free, free, size, self.per_frame);
        if count == 0 {
            return;
        }
        if free == size {
            self.counters.rx_ring_empty += 1;
        }
        for _ in 0..count {
            let Some(id) = self.rx.peek_free() else {
                break;
            };
            // SAFETY: id < queue size <= MAX_QUEUE_SIZE; the buffer is not in flight.
            let addr = unsafe { (*self.memory).rx_buffers[id as usize].as_ptr() } as u64;
            if self.rx.add(addr, self.rx_buffer_len as u32, true).is_none() {
                break;
            }
            self.counters.rx_refills += 1;
        }
        self.kick(RX_QUEUE);
    }

    fn kick(&mut self, queue: u16) {
        let queue_state = if queue == RX_QUEUE {
            &mut self.rx
        } else {
            &mut self.tx
        };
        if queue_state.kick_prepare() {
            self.transport.notify(queue);
            self.last_kick_us[queue as usize] = Some(crate::time::micros_since_entry());
            self.counters.kicks += 1;
        } else {
            self.counters.kicks_suppressed += 1;
        }
    }

    /// Take the next received frame within this round's budget; None when the budget
    /// is spent or the ring has nothing more.
    pub fn receive_frame(&mut self) -> Result<Option<&[u8]>, NetError> {
        loop {
            if self.budget_left == 0 {
                return Ok(None);
            }
            let Some(first) = self.rx.get_buf().map_err(NetError::Queue)? else {
                return Ok(None);
            };
            let len = first.len as usize;
            if len < self.hdr_len || len > self.rx_buffer_len {
                self.counters.rx_errors += 1;
                continue;
            }
            let buffer = &self.rx_buffer(first.id)[..len];
            let mergeable = self.features & feature::MRG_RXBUF != 0;
            let (rx, limit) = (&mut self.rx, self.rx_buffer_len);
            let mut merged = 0u16;
            let mut queue_error = None;
            // Further buffers of a merged frame (probe::rx_policy::merge_frame, host-tested).
            let next = || {
                merged += 1;
                match rx.get_buf() {
                    Ok(Some(used)) if used.len as usize <= limit => {
                        // SAFETY: as rx_buffer: get_buf checked the id; the device is done.
                        let buffers = unsafe { &(*self.memory).rx_buffers };
                        Some(&buffers[used.id as usize][..used.len as usize])
                    }
                    Ok(_) => None,
                    Err(error) => {
                        queue_error = Some(error);
                        None
                    }
                }
            };
            let result = merge_frame(buffer, self.hdr_len, mergeable, next, &mut self.frame);
            if let Some(error) = queue_error {
                return Err(NetError::Queue(error));
            }
            if merged > 0 {
                self.counters.rx_merged += 1;
            }
            let Ok(frame_len) = result else {
                self.counters.rx_errors += 1;
                continue;
            };
            self.budget_left -= 1;
            self.round_received += 1;
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += frame_len as u64;
            return Ok(Some(&self.frame[..frame_len]));
        }
    }

    fn rx_buffer(&self, id: u16) -> &'static [u8] {
        // SAFETY: id < queue size (checked by get_buf); the device is done with this
        // buffer (it was used) and we only read it before re-posting it at refill.
        let buffers = unsafe { &(*self.memory).rx_buffers };
        &buffers[id as usize][..]
    }

    /// Reclaim completed tx buffers (free_old_xmit).
    fn reclaim_tx(&mut self) -> Result<(), NetError> {
        while self.tx.get_buf().map_err(NetError::Queue)?.is_some() {}
        Ok(())
    }

    /// Whether a frame can be sent now. When the ring is full, arm a tx interrupt at
    /// 3/4 of the outstanding buffers (enable_cb_delayed), as virtio_net stops its queue.
    pub fn can_transmit(&mut self) -> Result<bool, NetError> {
        if self.tx.num_free() == 0 {
            self.reclaim_tx()?;
        }
        if self.tx.num_free() > 0 {
            return Ok(true);
        }
        self.counters.tx_ring_full += 1;
        if !self.tx.enable_cb_delayed() {
            // Already past the threshold: reclaim now and turn callbacks off again.
            self.reclaim_tx()?;
            if self.tx.num_free() > 0 {
                self.tx.disable_cb();
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Send one frame of `len` bytes, filled by `fill`. Call only after
    /// [`VirtioNet::can_transmit`] said yes; otherwise the frame is dropped.
    pub fn transmit_frame<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> R {
        let hdr_len = self.hdr_len;
        let len = len.min(BUFFER_LEN - hdr_len);
        let id = match self.tx.peek_free() {
            Some(id) => id,
            None => {
                // No room: let the stack build the frame into scratch space and drop it.
                self.counters.tx_ring_full += 1;
                return fill(&mut self.frame[..len.min(MAX_FRAME)]);
            }
        };
        // SAFETY: id < queue size; the buffer is not in flight (it is free).
        let buffer = unsafe { &mut (*self.memory).tx_buffers[id as usize] };
        buffer[..hdr_len].fill(0);
        let result = fill(&mut buffer[hdr_len..hdr_len + len]);
        let addr = buffer.as_ptr() as u64;
        if self.tx.add(addr, (hdr_len + len) as u32, false).is_some() {
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += len as u64;
            self.kick(TX_QUEUE);
        }
        // The stack's token cannot fail, so a device error here is kept for
        // end_poll_round to report.
        let housekeeping = if self.tx.num_free() == 0 {
            // The queue is now full ("netif_stop_queue"): arm the delayed tx interrupt
            // now so that the completion wakes us.
            self.can_transmit().map(|_| ())
        } else if self.tx.num_free() < self.tx.size() / 2 {
            self.reclaim_tx()
        } else {
            Ok(())
        };
        if let Err(error) = housekeeping {
            self.deferred_error.get_or_insert(error);
        }
        result
    }

    /// The ring state of `queue`, read without consuming (stall detector).
    pub fn view(&self, queue: Queue) -> RingView {
        self.queue(queue).view()
    }

    /// When `queue` last had an interrupt and a kick (microseconds since entry).
    pub fn last_interrupt_and_kick_us(&self, queue: Queue) -> (Option<u64>, Option<u64>) {
        let i = queue_index(queue) as usize;
        (self.last_interrupt_us[i], self.last_kick_us[i])
    }

    fn queue(&self, queue: Queue) -> &SplitQueue {
        match queue {
            Queue::Rx => &self.rx,
            Queue::Tx => &self.tx,
        }
    }

    /// `probe.on_stall=recover`: do what the lost notification would have made happen.
    /// A lost interrupt: schedule rx polling (rx) or reclaim (tx), as the interrupt
    /// handler would. A stalled device: notify it.
    pub fn recover(&mut self, queue: Queue, kind: StallKind) -> Result<(), NetError> {
        match (kind, queue) {
            (StallKind::LostInterrupt, Queue::Rx) => {
                if !self.rx_scheduled {
                    self.rx.disable_cb();
                    self.rx_scheduled = true;
                }
                Ok(())
            }
            (StallKind::LostInterrupt, Queue::Tx) => {
                self.reclaim_tx()?;
                if self.tx.num_free() > 0 {
                    self.tx.disable_cb();
                }
                Ok(())
            }
            (StallKind::DeviceStalled, _) => {
                let index = queue_index(queue);
                self.transport.notify(index);
                self.last_kick_us[index as usize] = Some(crate::time::micros_since_entry());
                self.counters.kicks += 1;
                Ok(())
            }
        }
    }

    /// After an interrupt: reclaim tx and turn tx callbacks off again if room came free.
    pub fn service_tx(&mut self) -> Result<(), NetError> {
        if self.tx.callbacks_enabled() {
            self.reclaim_tx()?;
            if self.tx.num_free() > 0 {
                self.tx.disable_cb();
            }
        }
        Ok(())
    }
}

fn queue_index(queue: Queue) -> u16 {
    match queue {
        Queue::Rx => RX_QUEUE,
        Queue::Tx => TX_QUEUE,
    }
}

fn setup_queue(
    transport: &Transport,
    index: u16,
    region: *mut u8,
    event_idx: bool,
    vector: Option<u16>,
) -> Result<SplitQueue, NetError> {
    let (max, fixed) = transport.queue_max(index)?;
    if max == 0 {
        return Err(NetError::BadQueue(u32::from(index)));
    }
    let size = if fixed {
        // Legacy: the device's size is the size.
        if usize::from(max) > MAX_QUEUE_SIZE || !max.is_power_of_two() {
            return Err(NetError::LegacyQueueSize(index, max));
        }
        max
    } else {
        // Split rings are powers of two; take the largest that fits.
        let size = max.min(MAX_QUEUE_SIZE as u16);
        1u16 << (15 - size.leading_zeros().min(15))
    };
    let memory = ring_layout(region, size);
    // SAFETY: the caller passes a page-aligned RING_REGION of the claimed NIC_MEMORY,
    // which holds the layout of any size up to MAX_QUEUE_SIZE.
    let queue = unsafe { SplitQueue::new(memory, size, event_idx) };
    transport.activate_queue(
        index,
        size,
        QueueAddresses {
            desc: memory.desc as u64,
            avail: memory.avail as u64,
            used: memory.used as u64,
        },
        vector,
    )?;
    Ok(queue)
}
