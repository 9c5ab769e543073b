//! A virtio-net driver over virtio-mmio version 2, following Linux's virtio_net:
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
use core::ptr::{read_volatile, write_volatile};

use probe::stall::{Queue, RingView, StallKind};
use probe::virtqueue::{ring_bytes, QueueMemory, SplitQueue, MAX_QUEUE_SIZE};

// virtio-mmio registers (virtio 1.x, 4.2.2).
const MAGIC_VALUE: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const INTERRUPT_STATUS: usize = 0x060;
const INTERRUPT_ACK: usize = 0x064;
const STATUS: usize = 0x070;
const QUEUE_DESC_LOW: usize = 0x080;
const QUEUE_DESC_HIGH: usize = 0x084;
const QUEUE_DRIVER_LOW: usize = 0x090;
const QUEUE_DRIVER_HIGH: usize = 0x094;
const QUEUE_DEVICE_LOW: usize = 0x0a0;
const QUEUE_DEVICE_HIGH: usize = 0x0a4;
const CONFIG_GENERATION: usize = 0x0fc;
const CONFIG: usize = 0x100;

const MAGIC: u32 = 0x7472_6976; // "virt"
const NET_DEVICE_ID: u32 = 1;

const STATUS_ACKNOWLEDGE: u32 = 1;
const STATUS_DRIVER: u32 = 2;
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;
const STATUS_FAILED: u32 = 128;

const INTERRUPT_USED_BUFFER: u32 = 1;

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

const RX_QUEUE: u32 = 0;
const TX_QUEUE: u32 = 1;
/// virtio_net_hdr_v1 (12 bytes with VERSION_1, num_buffers at offset 10).
pub const NET_HDR_LEN: usize = 12;
const NUM_BUFFERS_OFFSET: usize = 10;
/// Bytes per rx and tx buffer.
const BUFFER_LEN: usize = 2048;
/// rx buffer size: a full-size frame plus header (1514 + 12 bytes) fits, as with Linux's
/// GOOD_PACKET_LEN-sized buffers. With MRG_RXBUF a device may still spread a packet over
/// several buffers (num_buffers), which the driver merges.
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
        }
    }
}

/// Ring sizes for MAX_QUEUE_SIZE, rounded up to whole pages (which keeps every part
/// aligned: descriptors 16, avail 2, used 4 bytes).
const DESC_BYTES: usize = page_round(ring_bytes(MAX_QUEUE_SIZE as u16).0);
const AVAIL_BYTES: usize = page_round(ring_bytes(MAX_QUEUE_SIZE as u16).1 + 2);
const USED_BYTES: usize = page_round(ring_bytes(MAX_QUEUE_SIZE as u16).2 + 2);

const fn page_round(bytes: usize) -> usize {
    bytes.div_ceil(4096) * 4096
}

/// Guest memory the device reads and writes: rings and buffers, identity-mapped.
#[repr(C, align(4096))]
struct NicMemory {
    rx_desc: [u8; DESC_BYTES],
    rx_avail: [u8; AVAIL_BYTES],
    rx_used: [u8; USED_BYTES],
    tx_desc: [u8; DESC_BYTES],
    tx_avail: [u8; AVAIL_BYTES],
    tx_used: [u8; USED_BYTES],
    rx_buffers: [[u8; BUFFER_LEN]; MAX_QUEUE_SIZE],
    tx_buffers: [[u8; BUFFER_LEN]; MAX_QUEUE_SIZE],
}

struct DmaCell(UnsafeCell<NicMemory>);

// SAFETY: the probe is single-threaded; the memory is handed to exactly one driver (see
// `VirtioNet::new`'s claim flag).
unsafe impl Sync for DmaCell {}

static NIC_MEMORY: DmaCell = DmaCell(UnsafeCell::new(NicMemory {
    rx_desc: [0; DESC_BYTES],
    rx_avail: [0; AVAIL_BYTES],
    rx_used: [0; USED_BYTES],
    tx_desc: [0; DESC_BYTES],
    tx_avail: [0; AVAIL_BYTES],
    tx_used: [0; USED_BYTES],
    rx_buffers: [[0; BUFFER_LEN]; MAX_QUEUE_SIZE],
    tx_buffers: [[0; BUFFER_LEN]; MAX_QUEUE_SIZE],
}));
static NIC_MEMORY_CLAIMED: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// The driver.
pub struct VirtioNet {
    base: usize,
    /// The MAC address (from the device, or locally administered).
    pub mac: [u8; 6],
    /// Negotiated features.
    pub features: u64,
    rx: SplitQueue,
    tx: SplitQueue,
    rx_buffer_len: usize,
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
    /// Bring up the virtio-net device at `base`. Only one NIC is supported (one set of
    /// static rings); a second call returns None.
    pub fn new(base: u64, event_idx: bool, mrg_rxbuf: bool) -> Option<Result<Self, NetError>> {
        if NIC_MEMORY_CLAIMED.swap(true, core::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        Some(Self::init(base as usize, event_idx, mrg_rxbuf))
    }

    fn init(base: usize, event_idx: bool, mrg_rxbuf: bool) -> Result<Self, NetError> {
        let read = |offset| mmio_read(base, offset);
        let write = |offset, value| mmio_write(base, offset, value);
        let magic = read(MAGIC_VALUE);
        if magic != MAGIC {
            return Err(NetError::NoDevice(magic));
        }
        match read(VERSION) {
            2 => {}
            v => return Err(NetError::UnsupportedVersion(v)),
        }
        match read(DEVICE_ID) {
            NET_DEVICE_ID => {}
            id => return Err(NetError::NotNet(id)),
        }
        // 3.1.1 Driver Requirements: Device Initialization.
        write(STATUS, 0);
        write(STATUS, STATUS_ACKNOWLEDGE);
        write(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        write(DEVICE_FEATURES_SEL, 0);
        let low = read(DEVICE_FEATURES);
        write(DEVICE_FEATURES_SEL, 1);
        let offered = u64::from(low) | (u64::from(read(DEVICE_FEATURES)) << 32);
        if offered & feature::VERSION_1 == 0 {
            write(STATUS, STATUS_FAILED);
            return Err(NetError::NoVersion1);
        }
        let mut wanted = feature::VERSION_1 | feature::MAC | feature::STATUS;
        if event_idx {
            wanted |= feature::EVENT_IDX;
        }
        if mrg_rxbuf {
            wanted |= feature::MRG_RXBUF;
        }
        let features = offered & wanted;
        write(DRIVER_FEATURES_SEL, 0);
        write(DRIVER_FEATURES, features as u32);
        write(DRIVER_FEATURES_SEL, 1);
        write(DRIVER_FEATURES, (features >> 32) as u32);
        write(
            STATUS,
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
        );
        if read(STATUS) & STATUS_FEATURES_OK == 0 {
            write(STATUS, STATUS_FAILED);
            return Err(NetError::FeaturesRejected);
        }
        let memory = NIC_MEMORY.0.get();
        let use_event_idx = features & feature::EVENT_IDX != 0;
        // SAFETY: NIC_MEMORY is claimed once (flag in `new`); the rings are page-aligned
        // and sized for MAX_QUEUE_SIZE including the event words (DESC/AVAIL/USED_BYTES).
        let (rx_mem, tx_mem) = unsafe {
            (
                QueueMemory {
                    desc: (*memory).rx_desc.as_mut_ptr(),
                    avail: (*memory).rx_avail.as_mut_ptr(),
                    used: (*memory).rx_used.as_mut_ptr(),
                },
                QueueMemory {
                    desc: (*memory).tx_desc.as_mut_ptr(),
                    avail: (*memory).tx_avail.as_mut_ptr(),
                    used: (*memory).tx_used.as_mut_ptr(),
                },
            )
        };
        let rx = setup_queue(base, RX_QUEUE, rx_mem, use_event_idx)?;
        let tx = setup_queue(base, TX_QUEUE, tx_mem, use_event_idx)?;
        let mac = if features & feature::MAC != 0 {
            read_mac(base)
        } else {
            [0x02, 0x00, 0x00, 0x00, 0x00, 0x01]
        };
        let mut net = VirtioNet {
            base,
            mac,
            features,
            rx,
            tx,
            rx_buffer_len: RX_BUFFER_LEN,
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
        write(
            STATUS,
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
        );
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

    /// The NIC's interrupt fired: acknowledge it first (so that any later completion
    /// raises a new edge), then schedule rx polling if rx has work (Linux's
    /// vring_interrupt -> skb_recv_done -> virtqueue_napi_schedule).
    pub fn handle_interrupt(&mut self) {
        let status = mmio_read(self.base, INTERRUPT_STATUS);
        mmio_write(self.base, INTERRUPT_ACK, status);
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

    /// Post every free rx buffer, then kick if the device wants it.
    fn refill_rx(&mut self) {
        if self.rx.num_free() == 0 {
            return;
        }
        if self.rx.num_free() == self.rx.size() {
            self.counters.rx_ring_empty += 1;
        }
        while let Some(id) = self.rx.peek_free() {
            // SAFETY: id < queue size <= MAX_QUEUE_SIZE; the buffer is not in flight.
            let addr = unsafe { (*self.memory).rx_buffers[id as usize].as_ptr() } as u64;
            if self.rx.add(addr, self.rx_buffer_len as u32, true).is_none() {
                break;
            }
            self.counters.rx_refills += 1;
        }
        self.kick(RX_QUEUE);
    }

    fn kick(&mut self, queue: u32) {
        let queue_state = if queue == RX_QUEUE {
            &mut self.rx
        } else {
            &mut self.tx
        };
        if queue_state.kick_prepare() {
            mmio_write(self.base, QUEUE_NOTIFY, queue);
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
            let buffer = self.rx_buffer(first.id);
            if len < NET_HDR_LEN || len > self.rx_buffer_len {
                self.counters.rx_errors += 1;
                continue;
            }
            let num_buffers = if self.features & feature::MRG_RXBUF != 0 {
                u16::from_le_bytes([buffer[NUM_BUFFERS_OFFSET], buffer[NUM_BUFFERS_OFFSET + 1]])
            } else {
                1
            };
            let mut frame_len = 0;
            let mut ok = self.append(&buffer[NET_HDR_LEN..len], &mut frame_len);
            for _ in 1..num_buffers {
                match self.rx.get_buf().map_err(NetError::Queue)? {
                    Some(next) if next.len as usize <= self.rx_buffer_len => {
                        let more = self.rx_buffer(next.id);
                        ok &= self.append(&more[..next.len as usize], &mut frame_len);
                    }
                    _ => ok = false,
                }
            }
            if num_buffers > 1 {
                self.counters.rx_merged += 1;
            }
            if !ok || num_buffers == 0 {
                self.counters.rx_errors += 1;
                continue;
            }
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

    fn append(&mut self, bytes: &[u8], frame_len: &mut usize) -> bool {
        let end = *frame_len + bytes.len();
        if end > MAX_FRAME {
            return false;
        }
        self.frame[*frame_len..end].copy_from_slice(bytes);
        *frame_len = end;
        true
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
        let len = len.min(BUFFER_LEN - NET_HDR_LEN);
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
        buffer[..NET_HDR_LEN].fill(0);
        let result = fill(&mut buffer[NET_HDR_LEN..NET_HDR_LEN + len]);
        let addr = buffer.as_ptr() as u64;
        if self
            .tx
            .add(addr, (NET_HDR_LEN + len) as u32, false)
            .is_some()
        {
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
                mmio_write(self.base, QUEUE_NOTIFY, index);
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

fn queue_index(queue: Queue) -> u32 {
    match queue {
        Queue::Rx => RX_QUEUE,
        Queue::Tx => TX_QUEUE,
    }
}

fn setup_queue(
    base: usize,
    index: u32,
    memory: QueueMemory,
    event_idx: bool,
) -> Result<SplitQueue, NetError> {
    mmio_write(base, QUEUE_SEL, index);
    if mmio_read(base, QUEUE_READY) != 0 {
        return Err(NetError::BadQueue(index));
    }
    let max = mmio_read(base, QUEUE_NUM_MAX);
    if max == 0 {
        return Err(NetError::BadQueue(index));
    }
    let size = max.min(MAX_QUEUE_SIZE as u32) as u16;
    // Queue sizes are powers of two for split rings; take the largest that fits.
    let size = 1u16 << (15 - size.leading_zeros().min(15));
    // SAFETY: the caller passes page-sized, page-aligned regions of the claimed
    // NIC_MEMORY, large enough for MAX_QUEUE_SIZE.
    let queue = unsafe { SplitQueue::new(memory, size, event_idx) };
    mmio_write(base, QUEUE_NUM, u32::from(size));
    for (low, high, addr) in [
        (QUEUE_DESC_LOW, QUEUE_DESC_HIGH, memory.desc as u64),
        (QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, memory.avail as u64),
        (QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, memory.used as u64),
    ] {
        mmio_write(base, low, addr as u32);
        mmio_write(base, high, (addr >> 32) as u32);
    }
    mmio_write(base, QUEUE_READY, 1);
    Ok(queue)
}

fn read_mac(base: usize) -> [u8; 6] {
    loop {
        let generation = mmio_read(base, CONFIG_GENERATION);
        let mut mac = [0u8; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            // SAFETY: config space bytes 0-5 (the MAC) of the mapped device window.
            *byte = unsafe { read_volatile((base + CONFIG + i) as *const u8) };
        }
        if mmio_read(base, CONFIG_GENERATION) == generation {
            return mac;
        }
    }
}

fn mmio_read(base: usize, offset: usize) -> u32 {
    // SAFETY: `base` is the device window from the command line (below 4 GiB, checked
    // by the parser), identity-mapped and user-accessible; 32-bit aligned access.
    unsafe { read_volatile((base + offset) as *const u32) }
}

fn mmio_write(base: usize, offset: usize, value: u32) {
    // SAFETY: as for mmio_read.
    unsafe { write_volatile((base + offset) as *mut u32, value) }
}
