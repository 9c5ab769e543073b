//! A Linux-faithful guest virtio-net driver that runs on host threads over the same guest
//! memory as the real device code — for tests and benchmarks without KVM.
//!
//! It follows the 2012 driver, Linux 3.2's `drivers/virtio/virtio_ring.c` (split ring):
//! `virtqueue_add_buf` (ring entry, `virtio_wmb`, `avail->idx`), `virtqueue_kick_prepare`
//! (`virtio_mb`, then `vring_need_event(avail_event, new, old)` or `VRING_USED_F_NO_NOTIFY`),
//! `virtqueue_get_buf` (`used->idx`, `virtio_rmb`, element; re-arm `used_event` and
//! `virtio_mb` while callbacks are on), `virtqueue_disable_cb` (sets
//! `VRING_AVAIL_F_NO_INTERRUPT` only: writing `used_event = 0` there is a 2021 change),
//! `virtqueue_enable_cb` (clear the flag, `used_event = last_used`, `virtio_mb`, then
//! `more_used`), and `virtqueue_enable_cb_delayed`. The two notification decisions, kick
//! and interrupt re-enable, run the shared protocol code
//! ([`crate::devices::virtio::protocol`]), with `virtio_mb` as `fence(SeqCst)`;
//! `virtio_wmb`/`virtio_rmb` are Release/Acquire. The net half follows 3.2's `virtio_net.c`:
//! a NAPI-style rx poll with budget 64 that refills when fewer than half the ring's buffers
//! are posted (`vi->num < vi->max / 2`), and `start_xmit` with `enable_cb_delayed` when the
//! tx ring is full. Interrupts are read from the device's interrupt EventFd (as KVM's irqfd
//! would consume it), acknowledged through InterruptStatus / InterruptACK, and dispatched like
//! `vring_interrupt` (only if `more_used`). Kicks write the queue's kick EventFd, as a KVM
//! ioeventfd would.

use std::io::Write;
use std::num::Wrapping;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU16, AtomicU64, Ordering};

use crate::devices::virtio::protocol::{self, Field, RingMemory};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::backend::NetBackend;
use super::config::{MacAddr, NetOptions};
use super::core::{NET_HDR_LEN, NUM_BUFFERS_OFFSET};
use super::device::Net;
use super::metrics::NetMetrics;
use super::worker::StallExit;
use crate::devices::bus::BusDevice;
use crate::devices::virtio::mmio::{reg, MmioTransport};
use crate::devices::virtio::queue::{
    Descriptor, UsedElem, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VRING_AVAIL_F_NO_INTERRUPT,
};
use crate::devices::virtio::signals::Signals;
use crate::devices::virtio::status::*;
use crate::events::EventSink;

/// Where the driver puts queue `q`'s rings: desc, avail, used (one 64 KiB slot per queue).
pub fn ring_addrs(q: usize) -> (u64, u64, u64) {
    let base = 0x10000 + q as u64 * 0x10000;
    (base, base + 0x4000, base + 0x8000)
}
/// First guest address used for packet buffers.
pub const BUFFERS_START: u64 = 0x100000;

/// Errors of the test driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The device refused FEATURES_OK.
    #[error("the device refused features {0:#x}")]
    FeaturesRefused(u64),
    /// The device did not become active.
    #[error("the device is not active after DRIVER_OK (status {0:#x})")]
    NotActive(u32),
    /// EventFd or thread trouble.
    #[error("driver I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Events captured in memory (an [`EventSink`] writer that tests can parse).
#[derive(Clone, Default)]
pub struct EventLog(Arc<Mutex<Vec<u8>>>);

impl Write for EventLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl EventLog {
    /// Every event of kind `kind` so far.
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == kind)
            .collect()
    }
}

/// The transport shared by the "vCPU" (driver) threads.
pub type SharedTransport = Arc<Mutex<MmioTransport>>;

/// A device + transport + guest memory, ready for a [`GuestNet`] to drive.
pub struct Rig {
    /// The transport (MMIO registers).
    pub transport: SharedTransport,
    /// Guest memory.
    pub mem: GuestMemoryMmap<()>,
    /// Device counters.
    pub metrics: Arc<NetMetrics>,
    /// Captured events.
    pub log: EventLog,
    /// The `--on-stall exit` signal.
    pub stall_exit: StallExit,
    irq: EventFd,
}

impl Rig {
    /// A device with queues of `queue_size` over `backend`, in 16 MiB of guest memory.
    pub fn new(
        queue_size: u16,
        backend: Box<dyn NetBackend>,
        options: NetOptions,
    ) -> Result<Self, DriverError> {
        Self::with_features(queue_size, backend, options, super::device::NET_FEATURES)
    }

    /// As [`Rig::new`], offering only `features`.
    pub fn with_features(
        queue_size: u16,
        backend: Box<dyn NetBackend>,
        options: NetOptions,
        features: u64,
    ) -> Result<Self, DriverError> {
        let log = EventLog::default();
        let events = EventSink::to_writer(Box::new(log.clone()));
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)])
            .map_err(std::io::Error::other)?;
        let net = Net::new(
            MacAddr::DEFAULT,
            queue_size,
            backend,
            options,
            events.clone(),
        )?
        .with_features(features);
        let metrics = net.metrics();
        let stall_exit = net.stall_exit();
        let irq = EventFd::new(libc::EFD_NONBLOCK)?;
        let signals = Signals::new(irq.try_clone()?, events, "virtio-net");
        let transport = MmioTransport::new(Box::new(net), mem.clone(), signals)?;
        Ok(Self {
            transport: Arc::new(Mutex::new(transport)),
            mem,
            metrics,
            log,
            stall_exit,
            irq,
        })
    }

    /// Read a register.
    pub fn read(&self, offset: u64) -> u32 {
        read_reg(&self.transport, offset)
    }

    /// Write a register.
    pub fn write(&self, offset: u64, v: u32) {
        write_reg(&self.transport, offset, v)
    }

    /// Linux's probe: reset, ACKNOWLEDGE, DRIVER, features (all offered ones in `accept`),
    /// FEATURES_OK, queues, DRIVER_OK. Returns the driver's view of the device.
    pub fn bring_up(&self, accept: u64, rx_buf_len: u32) -> Result<GuestNet, DriverError> {
        self.write(reg::STATUS, 0);
        self.write(reg::STATUS, ACKNOWLEDGE);
        self.write(reg::STATUS, ACKNOWLEDGE | DRIVER);
        self.write(reg::DEVICE_FEATURES_SEL, 0);
        let lo = self.read(reg::DEVICE_FEATURES);
        self.write(reg::DEVICE_FEATURES_SEL, 1);
        let hi = self.read(reg::DEVICE_FEATURES);
        let features = ((u64::from(hi) << 32) | u64::from(lo)) & accept;
        self.write(reg::DRIVER_FEATURES_SEL, 0);
        self.write(reg::DRIVER_FEATURES, features as u32);
        self.write(reg::DRIVER_FEATURES_SEL, 1);
        self.write(reg::DRIVER_FEATURES, (features >> 32) as u32);
        self.write(reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        if self.read(reg::STATUS) & FEATURES_OK == 0 {
            return Err(DriverError::FeaturesRefused(features));
        }
        let mut queues = Vec::new();
        for q in 0..2usize {
            self.write(reg::QUEUE_SEL, q as u32);
            let size = self.read(reg::QUEUE_NUM_MAX) as u16;
            let (desc, avail, used) = ring_addrs(q);
            // Zero the rings: a re-used memory area must not leak the previous run's indices.
            let _ = self.mem.write_slice(&[0u8; 0xc000], GuestAddress(desc));
            self.write(reg::QUEUE_NUM, u32::from(size));
            for (lo, v) in [
                (reg::QUEUE_DESC_LOW, desc),
                (reg::QUEUE_DRIVER_LOW, avail),
                (reg::QUEUE_DEVICE_LOW, used),
            ] {
                self.write(lo, v as u32);
                self.write(lo + 4, (v >> 32) as u32);
            }
            self.write(reg::QUEUE_READY, 1);
            let kick = self
                .transport
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .kick_fd(q)
                .ok_or_else(|| std::io::Error::other("no kick fd"))?
                .try_clone()?;
            queues.push(GuestQueue::new(
                self.mem.clone(),
                size,
                desc,
                avail,
                used,
                features,
                kick,
            ));
        }
        self.write(reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        let status = self.read(reg::STATUS);
        if status & DEVICE_NEEDS_RESET != 0
            || !self
                .transport
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_active()
        {
            return Err(DriverError::NotActive(status));
        }
        let tx = queues
            .pop()
            .ok_or_else(|| std::io::Error::other("no tx queue"))?;
        let rx = queues
            .pop()
            .ok_or_else(|| std::io::Error::other("no rx queue"))?;
        Ok(GuestNet {
            transport: self.transport.clone(),
            mem: self.mem.clone(),
            irq: self.irq.try_clone()?,
            features,
            rx,
            tx,
            rx_buf_len,
        })
    }
}

fn read_reg(t: &SharedTransport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.lock()
        .unwrap_or_else(|p| p.into_inner())
        .read(offset, &mut b);
    u32::from_le_bytes(b)
}

fn write_reg(t: &SharedTransport, offset: u64, v: u32) {
    t.lock()
        .unwrap_or_else(|p| p.into_inner())
        .write(offset, &v.to_le_bytes());
}

/// The driver's half of one split virtqueue (Linux `struct vring_virtqueue`).
pub struct GuestQueue {
    mem: GuestMemoryMmap<()>,
    size: u16,
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    event: bool,
    avail_idx_shadow: Wrapping<u16>,
    last_used_idx: Wrapping<u16>,
    num_added: u16,
    no_interrupt_shadow: bool,
    free: Vec<u16>,
    chains: Vec<Vec<u16>>,
    kick: EventFd,
    /// `last_used_idx`, published for the interrupt handler's `more_used`.
    pub last_used_shared: Arc<AtomicU16>,
    /// Kicks sent.
    pub kicks: u64,
}

impl GuestQueue {
    fn new(
        mem: GuestMemoryMmap<()>,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
        features: u64,
        kick: EventFd,
    ) -> Self {
        Self {
            mem,
            size,
            desc: GuestAddress(desc),
            avail: GuestAddress(avail),
            used: GuestAddress(used),
            event: features & (1 << crate::devices::virtio::VIRTIO_RING_F_EVENT_IDX) != 0,
            avail_idx_shadow: Wrapping(0),
            last_used_idx: Wrapping(0),
            num_added: 0,
            no_interrupt_shadow: false,
            free: (0..size).rev().collect(),
            chains: vec![Vec::new(); usize::from(size)],
            kick,
            last_used_shared: Arc::new(AtomicU16::new(0)),
            kicks: 0,
        }
    }

    /// Queue size.
    pub fn size(&self) -> u16 {
        self.size
    }
    /// Free descriptors.
    pub fn num_free(&self) -> usize {
        self.free.len()
    }
    fn used_event(&self) -> GuestAddress {
        GuestAddress(self.avail.0 + 4 + 2 * u64::from(self.size))
    }
    fn avail_event(&self) -> GuestAddress {
        GuestAddress(self.used.0 + 4 + 8 * u64::from(self.size))
    }
    fn field_addr(&self, field: Field) -> GuestAddress {
        match field {
            Field::AvailFlags => self.avail,
            Field::AvailIdx => GuestAddress(self.avail.0 + 2),
            Field::UsedEvent => self.used_event(),
            Field::UsedFlags => self.used,
            Field::UsedIdx => GuestAddress(self.used.0 + 2),
            Field::AvailEvent => self.avail_event(),
        }
    }
    fn store(&self, addr: GuestAddress, v: u16, o: Ordering) {
        let _ = self.mem.store(v, addr, o);
    }
    fn load(&self, addr: GuestAddress, o: Ordering) -> u16 {
        self.mem.load(addr, o).unwrap_or(0)
    }

    /// `virtqueue_add`: one chain of `(addr, len, device_writable)` buffers.
    pub fn add(&mut self, bufs: &[(u64, u32, bool)]) -> Option<u16> {
        if bufs.is_empty() || self.free.len() < bufs.len() {
            return None;
        }
        let ids: Vec<u16> = (0..bufs.len()).filter_map(|_| self.free.pop()).collect();
        for (k, (&(addr, len, write), &id)) in bufs.iter().zip(&ids).enumerate() {
            let last = k + 1 == ids.len();
            let d = Descriptor {
                addr,
                len,
                flags: if write { VIRTQ_DESC_F_WRITE } else { 0 }
                    | if last { 0 } else { VIRTQ_DESC_F_NEXT },
                next: if last { 0 } else { ids[k + 1] },
            };
            let _ = self
                .mem
                .write_obj(d, GuestAddress(self.desc.0 + 16 * u64::from(id)));
        }
        let head = ids[0];
        self.chains[usize::from(head)] = ids;
        let slot = u64::from(self.avail_idx_shadow.0 % self.size);
        self.store(
            GuestAddress(self.avail.0 + 4 + 2 * slot),
            head,
            Ordering::Relaxed,
        );
        self.avail_idx_shadow += Wrapping(1);
        // virtio_wmb before the index: Release.
        self.store(
            GuestAddress(self.avail.0 + 2),
            self.avail_idx_shadow.0,
            Ordering::Release,
        );
        self.num_added += 1;
        Some(head)
    }

    /// `virtqueue_kick_prepare` ([`protocol::driver_kick_prepare`]; `avail->idx` is
    /// already published by `add`, the protocol stores the same value again).
    pub fn kick_prepare(&mut self) -> bool {
        let new = self.avail_idx_shadow.0;
        let old = new.wrapping_sub(self.num_added);
        self.num_added = 0;
        let event = self.event;
        protocol::driver_kick_prepare(&mut DriverRing(self), event, old, new, true)
    }

    /// `virtqueue_notify`: what the ioeventfd does on a QueueNotify write.
    pub fn notify(&mut self) {
        self.kicks += 1;
        let _ = self.kick.write(1);
    }

    /// `virtqueue_kick`.
    pub fn kick(&mut self) {
        if self.kick_prepare() {
            self.notify();
        }
    }

    /// `more_used`.
    pub fn more_used(&self) -> bool {
        // Relaxed: only a test; get_buf re-reads with Acquire before touching the ring.
        self.load(GuestAddress(self.used.0 + 2), Ordering::Relaxed) != self.last_used_idx.0
    }

    /// `virtqueue_get_buf`: `(head, len)` of the next used chain.
    pub fn get_buf(&mut self) -> Option<(u16, u32)> {
        // virtio_rmb after reading used->idx: Acquire.
        if self.load(GuestAddress(self.used.0 + 2), Ordering::Acquire) == self.last_used_idx.0 {
            return None;
        }
        let slot = u64::from(self.last_used_idx.0 % self.size);
        let e: UsedElem = self
            .mem
            .read_obj(GuestAddress(self.used.0 + 4 + 8 * slot))
            .ok()?;
        self.last_used_idx += Wrapping(1);
        self.last_used_shared
            .store(self.last_used_idx.0, Ordering::Release);
        let head = e.id as u16;
        if let Some(ids) = self.chains.get_mut(usize::from(head)) {
            self.free.append(ids);
        }
        if !self.no_interrupt_shadow {
            // virtio_store_mb: re-arm used_event for the next entry, then a full fence.
            self.store(self.used_event(), self.last_used_idx.0, Ordering::Relaxed);
            fence(Ordering::SeqCst);
        }
        Some((head, e.len))
    }

    /// `virtqueue_disable_cb` (Linux 3.2): set `VRING_AVAIL_F_NO_INTERRUPT`. With EVENT_IDX
    /// the device ignores the flag, so `used_event` keeps asking for the next entry, as it did
    /// in 2012 (the `used_event = 0` write is a 2021 change).
    pub fn disable_cb(&mut self) {
        // A plain (Relaxed) store and no barrier, as in Linux: suppression is only a hint, an
        // interrupt that slips through is harmless.
        if !self.no_interrupt_shadow {
            self.no_interrupt_shadow = true;
            self.store(self.avail, VRING_AVAIL_F_NO_INTERRUPT, Ordering::Relaxed);
        }
    }

    /// `virtqueue_enable_cb` (Linux 3.2, [`protocol::driver_enable_cb`]): true when nothing
    /// is pending.
    pub fn enable_cb(&mut self) -> bool {
        self.no_interrupt_shadow = false;
        let (event, last) = (self.event, self.last_used_idx.0);
        protocol::driver_enable_cb(&mut DriverRing(self), event, last, true)
    }

    /// `virtqueue_enable_cb_delayed`: interrupt after ~3/4 of the outstanding buffers.
    pub fn enable_cb_delayed(&mut self) -> bool {
        if self.no_interrupt_shadow {
            self.no_interrupt_shadow = false;
            if !self.event {
                self.store(self.avail, 0, Ordering::Relaxed);
            }
        }
        let bufs = (self.avail_idx_shadow - self.last_used_idx)
            .0
            .wrapping_mul(3)
            / 4;
        self.store(
            self.used_event(),
            (self.last_used_idx + Wrapping(bufs)).0,
            Ordering::Relaxed,
        );
        fence(Ordering::SeqCst);
        let used = self.load(GuestAddress(self.used.0 + 2), Ordering::Relaxed);
        used.wrapping_sub(self.last_used_idx.0) <= bufs
    }
}

/// A driver queue's notification fields in guest memory, for the shared protocol code.
struct DriverRing<'a>(&'a mut GuestQueue);

impl RingMemory for DriverRing<'_> {
    fn load(&mut self, field: Field, order: Ordering) -> u16 {
        let q = &self.0;
        q.load(q.field_addr(field), order)
    }
    fn store(&mut self, field: Field, value: u16, order: Ordering) {
        let q = &self.0;
        q.store(q.field_addr(field), value, order);
    }
    fn full_fence(&mut self) {
        fence(Ordering::SeqCst);
    }
}

/// The driver's view of a brought-up device.
pub struct GuestNet {
    transport: SharedTransport,
    mem: GuestMemoryMmap<()>,
    irq: EventFd,
    /// Negotiated features.
    pub features: u64,
    /// Queue 0.
    pub rx: GuestQueue,
    /// Queue 1.
    pub tx: GuestQueue,
    rx_buf_len: u32,
}

/// What the guest threads saw.
#[derive(Debug, Default)]
pub struct GuestStats {
    /// Frames received.
    pub rx_frames: AtomicU64,
    /// Frame bytes received.
    pub rx_bytes: AtomicU64,
    /// Frames whose sequence number was not the expected next one.
    pub rx_out_of_order: AtomicU64,
    /// Frames whose header or length was inconsistent (num_buffers, short).
    pub rx_malformed: AtomicU64,
    /// Frames sent.
    pub tx_frames: AtomicU64,
    /// Interrupts taken.
    pub interrupts: AtomicU64,
    /// Config-change interrupts (NEEDS_RESET).
    pub config_interrupts: AtomicU64,
}

/// Guest threads running against the device.
pub struct RunningGuest {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Counters of the guest side.
    pub stats: Arc<GuestStats>,
}

impl RunningGuest {
    /// Stop the guest threads and wait for them.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RunningGuest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Wait up to `ms` for `fd` to become readable.
pub fn wait_readable(fd: RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// The sequence number a test frame carries (bytes 14..22, after an Ethernet header).
pub fn frame_seq(frame: &[u8]) -> Option<u64> {
    frame
        .get(14..22)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// A test frame of `len` bytes (at least 22) carrying `seq`.
pub fn make_frame(seq: u64, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(22)];
    f[..6].copy_from_slice(&MacAddr::DEFAULT.0);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    f[14..22].copy_from_slice(&seq.to_le_bytes());
    f
}

impl GuestNet {
    /// Start the interrupt handler and the NAPI rx poller (and, with `tx_frames > 0`, a
    /// transmitter sending that many numbered frames of `tx_len` bytes).
    pub fn start(self, tx_frames: u64, tx_len: usize) -> Result<RunningGuest, DriverError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(GuestStats::default());
        let rx_wake = Arc::new(EventFd::new(libc::EFD_NONBLOCK)?);
        let tx_wake = Arc::new(EventFd::new(libc::EFD_NONBLOCK)?);
        let GuestNet {
            transport,
            mem,
            irq,
            rx,
            tx,
            rx_buf_len,
            features,
        } = self;
        let mrg = features & (1 << virtio_bindings::virtio_net::VIRTIO_NET_F_MRG_RXBUF) != 0;
        let mut threads = Vec::new();
        {
            let (stop, stats, rx_wake, tx_wake) = (
                stop.clone(),
                stats.clone(),
                rx_wake.clone(),
                tx_wake.clone(),
            );
            let (rx_used, tx_used) = (rx.last_used_shared.clone(), tx.last_used_shared.clone());
            let (rx_used_addr, tx_used_addr) = (
                GuestAddress(ring_addrs(0).2 + 2),
                GuestAddress(ring_addrs(1).2 + 2),
            );
            let mem = mem.clone();
            threads.push(std::thread::Builder::new().name("guest-irq".into()).spawn(
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        if !wait_readable(irq.as_raw_fd(), 20) || irq.read().is_err() {
                            continue;
                        }
                        stats.interrupts.fetch_add(1, Ordering::Relaxed);
                        // vm_interrupt: read InterruptStatus, acknowledge it.
                        let status = read_reg(&transport, reg::INTERRUPT_STATUS);
                        write_reg(&transport, reg::INTERRUPT_ACK, status);
                        if status & 2 != 0 {
                            stats.config_interrupts.fetch_add(1, Ordering::Relaxed);
                        }
                        // vring_interrupt: only queues with more_used get their callback.
                        let more = |a, last: &AtomicU16| {
                            mem.load::<u16>(a, Ordering::Acquire).ok()
                                != Some(last.load(Ordering::Acquire))
                        };
                        if more(rx_used_addr, &rx_used) {
                            let _ = rx_wake.write(1);
                        }
                        if more(tx_used_addr, &tx_used) {
                            let _ = tx_wake.write(1);
                        }
                    }
                },
            )?);
        }
        {
            let (stop, stats, mem) = (stop.clone(), stats.clone(), mem.clone());
            let mut rxp = RxPoller {
                q: rx,
                mem,
                buf_len: rx_buf_len,
                mrg,
                next_seq: 0,
                frame: Vec::new(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name("guest-rx".into())
                    .spawn(move || {
                        rxp.run(&stop, &stats, &rx_wake);
                    })?,
            );
        }
        if tx_frames > 0 {
            let (stop, stats) = (stop.clone(), stats.clone());
            let mut txq = tx;
            threads.push(
                std::thread::Builder::new()
                    .name("guest-tx".into())
                    .spawn(move || {
                        transmit(&mut txq, &mem, &stop, &stats, &tx_wake, tx_frames, tx_len);
                    })?,
            );
        }
        Ok(RunningGuest {
            stop,
            threads,
            stats,
        })
    }
}

struct RxPoller {
    q: GuestQueue,
    mem: GuestMemoryMmap<()>,
    buf_len: u32,
    mrg: bool,
    next_seq: u64,
    frame: Vec<u8>,
}

const NAPI_BUDGET: usize = 64;

impl RxPoller {
    fn buf_addr(&self, head: u16) -> u64 {
        BUFFERS_START + u64::from(head) * u64::from(self.buf_len)
    }

    /// `try_fill_recv`: one device-writable buffer per free descriptor.
    fn fill(&mut self) {
        let mut added = false;
        while self.q.num_free() > 0 {
            // The head equals the descriptor used (one-descriptor chains), so the buffer
            // address is known from the head before adding.
            let Some(&next) = self.q.free.last() else {
                break;
            };
            let addr = self.buf_addr(next);
            if self.q.add(&[(addr, self.buf_len, true)]).is_none() {
                break;
            }
            added = true;
        }
        if added {
            self.q.kick();
        }
    }

    fn run(&mut self, stop: &AtomicBool, stats: &GuestStats, wake: &EventFd) {
        self.fill();
        while !stop.load(Ordering::Relaxed) {
            if !wait_readable(wake.as_raw_fd(), 20) || wake.read().is_err() {
                continue;
            }
            // skb_recv_done -> virtqueue_napi_schedule: disable callbacks, poll.
            self.q.disable_cb();
            loop {
                let received = self.receive(stats);
                // Linux 3.2: `if (vi->num < vi->max / 2) try_fill_recv()`: refill once fewer
                // than half the ring's buffers are posted.
                if self.q.num_free() > usize::from(self.q.size()) / 2 {
                    self.fill();
                }
                if received < NAPI_BUDGET {
                    // napi_complete; if virtqueue_enable_cb finds more, poll again.
                    if !self.q.enable_cb() {
                        self.q.disable_cb();
                        continue;
                    }
                    break;
                }
            }
        }
    }

    /// Receive up to the budget; returns frames received.
    fn receive(&mut self, stats: &GuestStats) -> usize {
        let mut n = 0;
        while n < NAPI_BUDGET {
            let Some((head, len)) = self.q.get_buf() else {
                break;
            };
            let mut ok = (len as usize) >= NET_HDR_LEN && len <= self.buf_len;
            let mut hdr = [0u8; NET_HDR_LEN];
            let _ = self
                .mem
                .read_slice(&mut hdr, GuestAddress(self.buf_addr(head)));
            let num_buffers =
                u16::from_le_bytes([hdr[NUM_BUFFERS_OFFSET], hdr[NUM_BUFFERS_OFFSET + 1]]);
            self.frame.clear();
            self.copy_out(head, len as usize);
            if !self.mrg && num_buffers != 1 {
                ok = false;
            }
            for _ in 1..num_buffers.max(1) {
                match self.q.get_buf() {
                    Some((h, l)) => self.copy_out(h, l as usize),
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            n += 1;
            let frame = self.frame.get(NET_HDR_LEN..).unwrap_or(&[]);
            match (ok, frame_seq(frame)) {
                (true, Some(seq)) => {
                    if seq != self.next_seq {
                        stats.rx_out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                    self.next_seq = seq + 1;
                }
                _ => {
                    stats.rx_malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            stats.rx_frames.fetch_add(1, Ordering::Relaxed);
            stats
                .rx_bytes
                .fetch_add(frame.len() as u64, Ordering::Relaxed);
        }
        n
    }

    fn copy_out(&mut self, head: u16, len: usize) {
        let start = self.frame.len();
        let len = len.min(self.buf_len as usize);
        self.frame.resize(start + len, 0);
        let addr = GuestAddress(self.buf_addr(head));
        let _ = self.mem.read_slice(&mut self.frame[start..], addr);
    }
}

/// `start_xmit` for `count` numbered frames: reclaim, add, kick; when the ring is full,
/// stop the queue with `enable_cb_delayed` and wait for the tx interrupt.
fn transmit(
    q: &mut GuestQueue,
    mem: &GuestMemoryMmap<()>,
    stop: &AtomicBool,
    stats: &GuestStats,
    wake: &EventFd,
    count: u64,
    len: usize,
) {
    let tx_base = BUFFERS_START + (8 << 20);
    let slot_len = (NET_HDR_LEN + len.max(22)) as u64;
    let mut seq = 0;
    while seq < count && !stop.load(Ordering::Relaxed) {
        // free_old_xmit_skbs
        while q.get_buf().is_some() {}
        if q.num_free() == 0 {
            // netif_stop_queue; virtqueue_enable_cb_delayed; wait for skb_xmit_done.
            if !q.enable_cb_delayed() {
                q.disable_cb();
                continue;
            }
            if wait_readable(wake.as_raw_fd(), 20) {
                let _ = wake.read();
            }
            q.disable_cb();
            continue;
        }
        let Some(&next) = q.free.last() else { continue };
        let addr = tx_base + u64::from(next) * slot_len;
        let mut buf = vec![0u8; NET_HDR_LEN];
        buf.extend_from_slice(&make_frame(seq, len));
        let _ = mem.write_slice(&buf, GuestAddress(addr));
        if q.add(&[(addr, buf.len() as u32, false)]).is_some() {
            q.kick();
            seq += 1;
            stats.tx_frames.fetch_add(1, Ordering::Relaxed);
        }
    }
    while !stop.load(Ordering::Relaxed) {
        while q.get_buf().is_some() {}
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Keep writing numbered frames of `len` bytes into a blocking peer fd until `stop`.
/// Returns how many were written.
pub fn inject_frames(peer: RawFd, stop: &AtomicBool, len: usize) -> u64 {
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let f = make_frame(seq, len);
        if !wait_writable(peer, 20) {
            continue;
        }
        // SAFETY: `f` is a valid buffer of `f.len()` bytes; `peer` is an open fd.
        let n = unsafe { libc::send(peer, f.as_ptr().cast(), f.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            seq += 1;
        }
    }
    seq
}

/// Wait up to `ms` for `fd` to become writable.
pub fn wait_writable(fd: RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}
