//! The virtio-mmio transport, version 2 (virtio 1.x §4.2.2): the register file the guest
//! driver programs, the device status state machine (§3.1.1) and reset.
//!
//! Register writes at the wrong status (e.g. queue setup after DRIVER_OK, DRIVER_OK before
//! FEATURES_OK, features written after FEATURES_OK) and bad queue setup (a size that is not a
//! power of two, rings outside memory) set DEVICE_NEEDS_RESET and emit an `error` event; until
//! the driver writes Status = 0 every other write is ignored. Reset returns the transport and
//! the device to their initial state.

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::queue::{valid_size, QueueConfig, SplitQueue};
use super::signals::Signals;
use super::status::*;
use super::{ActivateContext, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::devices::bus::BusDevice;

/// "virt" in little endian.
pub const MAGIC_VALUE: u32 = 0x7472_6976;
/// Vendor ID reported to the guest ("VNET").
pub const VENDOR_ID: u32 = 0x544e_4556;

/// Register offsets (§4.2.2).
#[allow(missing_docs)]
pub mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// Driver mistakes the transport detects.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Register {offset:#x} was written at device status {status:#x}, which does not allow it.
    #[error(
        "register {offset:#x} was written at device status {status:#x}, which does not allow it"
    )]
    WrongStatus {
        /// Register offset.
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
        }
    }
}

/// A virtio device on the MMIO transport.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap<()>,
    signals: Signals,
    kicks: Vec<EventFd>,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<QueueConfig>,
    config_generation: u32,
    active: bool,
}

impl MmioTransport {
    /// Put `device` on the transport over guest memory `mem`, interrupting through `signals`.
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
        })
    }

    /// The kick EventFd of queue `i` (the VMM registers it as an ioeventfd at base + 0x50,
    /// datamatch `i`).
    pub fn kick_fd(&self, i: usize) -> Option<&EventFd> {
        self.kicks.get(i)
    }

    /// The signals (interrupt EventFd, needs-reset state).
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

    fn selected(&mut self) -> Option<&mut QueueConfig> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn fail(&mut self, err: TransportError) {
        let queue = match &err {
            TransportError::QueueSize { queue, .. } | TransportError::Queue { queue, .. } => {
                Some(*queue)
            }
            TransportError::QueueNotReady(q) => Some(*q),
            _ => None,
        };
        self.signals.fail(err.kind(), &err, queue);
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
        self.queues
            .iter_mut()
            .for_each(|q| *q = QueueConfig::default());
        self.signals.reset();
        for k in &self.kicks {
            // Drop kicks that arrived before reset; an empty EventFd reports EAGAIN, fine.
            let _ = k.read();
        }
    }

    fn read_reg(&self, offset: u64) -> u32 {
        let q = self.queues.get(self.queue_sel as usize);
        match offset {
            reg::MAGIC_VALUE => MAGIC_VALUE,
            reg::VERSION => 2,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device.device_features() as u32,
                1 => (self.device.device_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self
                .device
                .queue_max_sizes()
                .get(self.queue_sel as usize)
                .copied()
                .map(u32::from)
                .unwrap_or(0),
            reg::QUEUE_READY => q.map(|q| u32::from(q.ready)).unwrap_or(0),
            reg::INTERRUPT_STATUS => self.signals.interrupt_status(),
            reg::STATUS => self.status(),
            reg::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        }
    }

    /// Whether queue registers may be written now: after FEATURES_OK, before DRIVER_OK (§3.1.1).
    fn queue_setup_allowed(&self) -> bool {
        self.status & FEATURES_OK != 0 && self.status & DRIVER_OK == 0
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        if offset == reg::STATUS {
            return self.write_status(v);
        }
        if self.signals.needs_reset() {
            // A broken device ignores everything but reset.
            return;
        }
        let wrong = TransportError::WrongStatus {
            offset,
            status: self.status,
        };
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            reg::DRIVER_FEATURES => {
                if self.status & DRIVER == 0 || self.status & FEATURES_OK != 0 {
                    return self.fail(wrong);
                }
                match self.driver_features_sel {
                    0 => {
                        self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32)
                    }
                    _ => {}
                }
            }
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NUM => {
                if !self.queue_setup_allowed() {
                    return self.fail(wrong);
                }
                let queue = self.queue_sel as usize;
                let max = self
                    .device
                    .queue_max_sizes()
                    .get(queue)
                    .copied()
                    .unwrap_or(0);
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
            reg::QUEUE_READY => {
                if !self.queue_setup_allowed() {
                    return self.fail(wrong);
                }
                let queue = self.queue_sel as usize;
                let max = self
                    .device
                    .queue_max_sizes()
                    .get(queue)
                    .copied()
                    .unwrap_or(0);
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
            reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => {
                if !self.queue_setup_allowed() {
                    return self.fail(wrong);
                }
                let Some(q) = self.selected() else { return };
                let field = match offset {
                    reg::QUEUE_DESC_LOW | reg::QUEUE_DESC_HIGH => &mut q.desc_table,
                    reg::QUEUE_DRIVER_LOW | reg::QUEUE_DRIVER_HIGH => &mut q.avail_ring,
                    _ => &mut q.used_ring,
                };
                if offset & 4 == 0 {
                    *field = (*field & !0xffff_ffff) | u64::from(v);
                } else {
                    *field = (*field & 0xffff_ffff) | (u64::from(v) << 32);
                }
            }
            // Signal the queue's kick EventFd ourselves, so notifications work without an
            // ioeventfd (with one registered, KVM never exits for this write). Kicks before
            // DRIVER_OK or for unknown queues are ignored (§4.2.3.3 allows no such kicks;
            // they carry no state to corrupt).
            reg::QUEUE_NOTIFY if self.active => {
                if let Some(k) = self.kicks.get(v as usize) {
                    if let Err(e) = k.write(1) {
                        tracing::warn!("queue {v} kick failed: {e}");
                    }
                }
            }
            reg::INTERRUPT_ACK => self.signals.ack(v),
            _ => {}
        }
    }

    fn write_status(&mut self, new: u32) {
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
        let legal = new & old == old
            && (added & (DRIVER | FEATURES_OK | DRIVER_OK) == 0 || new & ACKNOWLEDGE != 0)
            && (added & (FEATURES_OK | DRIVER_OK) == 0 || new & DRIVER != 0)
            && (added & DRIVER_OK == 0 || old & FEATURES_OK != 0)
            && new & DEVICE_NEEDS_RESET == 0;
        if !legal {
            return self.fail(TransportError::BadStatus { old, new });
        }
        if added & FEATURES_OK != 0 {
            // §3.1.1 step 5-6: accept only a subset of the offered features that includes
            // VERSION_1 (virtio-mmio v2 is virtio 1.x only); otherwise leave FEATURES_OK clear
            // so the driver sees the refusal when it re-reads Status.
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

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            return self.device.read_config(offset - reg::CONFIG, data);
        }
        // Registers are 32-bit, naturally aligned (§4.2.2.2); anything else reads as zero.
        if data.len() != 4 || offset % 4 != 0 {
            data.fill(0);
            return;
        }
        data.copy_from_slice(&self.read_reg(offset).to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= reg::CONFIG {
            return self.device.write_config(offset - reg::CONFIG, data);
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return;
        };
        if offset % 4 != 0 {
            return;
        }
        self.write_reg(offset, u32::from_le_bytes(bytes));
    }
}

impl Drop for MmioTransport {
    fn drop(&mut self) {
        if self.active {
            self.device.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::net::backend::socketpair_backend;
    use crate::devices::virtio::net::{MacAddr, Net, NetOptions};
    use crate::events::EventSink;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use vm_memory::GuestAddress;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn events(&self, kind: &str) -> Vec<serde_json::Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|v| v["event"] == kind)
                .collect()
        }
    }

    fn transport() -> (MmioTransport, Buf) {
        let buf = Buf::default();
        let events = EventSink::to_writer(Box::new(buf.clone()));
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let (backend, _peer) = socketpair_backend(1 << 16).unwrap();
        let net = Net::new(
            MacAddr::DEFAULT,
            64,
            Box::new(backend),
            NetOptions::default(),
            events.clone(),
        )
        .unwrap();
        let signals = Signals::new(
            EventFd::new(libc::EFD_NONBLOCK).unwrap(),
            events,
            "virtio-net",
        );
        (
            MmioTransport::new(Box::new(net), mem, signals).unwrap(),
            buf,
        )
    }

    fn r(t: &mut MmioTransport, off: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    }
    fn w(t: &mut MmioTransport, off: u64, v: u32) {
        t.write(off, &v.to_le_bytes());
    }

    fn negotiate(t: &mut MmioTransport) {
        w(t, reg::STATUS, ACKNOWLEDGE);
        w(t, reg::STATUS, ACKNOWLEDGE | DRIVER);
        w(t, reg::DRIVER_FEATURES_SEL, 1);
        w(t, reg::DRIVER_FEATURES, 1); // VERSION_1
        w(t, reg::DRIVER_FEATURES_SEL, 0);
        w(t, reg::DRIVER_FEATURES, 1 << 5); // MAC
        w(t, reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_eq!(r(t, reg::STATUS), ACKNOWLEDGE | DRIVER | FEATURES_OK);
    }

    fn setup_queue(t: &mut MmioTransport, q: u32, base: u64) {
        w(t, reg::QUEUE_SEL, q);
        w(t, reg::QUEUE_NUM, 64);
        w(t, reg::QUEUE_DESC_LOW, base as u32);
        w(t, reg::QUEUE_DRIVER_LOW, (base + 0x1000) as u32);
        w(t, reg::QUEUE_DEVICE_LOW, (base + 0x2000) as u32);
        w(t, reg::QUEUE_READY, 1);
        assert_eq!(r(t, reg::QUEUE_READY), 1);
    }

    #[test]
    fn identifies_as_a_version_2_net_device_with_config_space() {
        let (mut t, _) = transport();
        assert_eq!(r(&mut t, reg::MAGIC_VALUE), MAGIC_VALUE);
        assert_eq!(r(&mut t, reg::VERSION), 2);
        assert_eq!(r(&mut t, reg::DEVICE_ID), 1);
        assert_eq!(r(&mut t, reg::VENDOR_ID), VENDOR_ID);
        w(&mut t, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(r(&mut t, reg::DEVICE_FEATURES), 1, "VERSION_1 is bit 32");
        w(&mut t, reg::DEVICE_FEATURES_SEL, 0);
        let f = r(&mut t, reg::DEVICE_FEATURES);
        for bit in [5, 16, 29, 15] {
            assert!(f & (1 << bit) != 0, "feature bit {bit} offered");
        }
        w(&mut t, reg::QUEUE_SEL, 1);
        assert_eq!(r(&mut t, reg::QUEUE_NUM_MAX), 64);
        w(&mut t, reg::QUEUE_SEL, 2);
        assert_eq!(r(&mut t, reg::QUEUE_NUM_MAX), 0, "no third queue");
        let mut mac = [0u8; 6];
        t.read(reg::CONFIG, &mut mac);
        assert_eq!(mac, MacAddr::DEFAULT.0);
        let mut status = [0u8; 2];
        t.read(reg::CONFIG + 6, &mut status);
        assert_eq!(u16::from_le_bytes(status), 1, "link up");
        let mut beyond = [0xaau8; 4];
        t.read(reg::CONFIG + 0xf00, &mut beyond);
        assert_eq!(beyond, [0; 4]);
        assert_eq!(
            r(&mut t, reg::CONFIG_GENERATION),
            r(&mut t, reg::CONFIG_GENERATION)
        );
        // Odd sizes and offsets never panic.
        let mut odd = [0u8; 3];
        t.read(0x71, &mut odd);
        t.write(0x71, &odd);
        t.read(u64::MAX - 1, &mut odd);
        t.write(u64::MAX - 1, &odd);
    }

    #[test]
    fn refuses_features_it_did_not_offer_or_without_version_1() {
        let (mut t, _) = transport();
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER);
        w(&mut t, reg::DRIVER_FEATURES, 1 << 5);
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_eq!(r(&mut t, reg::STATUS) & FEATURES_OK, 0, "no VERSION_1");
        w(&mut t, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut t, reg::DRIVER_FEATURES, 1 | 2); // VERSION_1 + an unoffered bit 33
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_eq!(r(&mut t, reg::STATUS) & FEATURES_OK, 0, "unoffered bit");
        w(&mut t, reg::DRIVER_FEATURES, 1);
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_ne!(r(&mut t, reg::STATUS) & FEATURES_OK, 0);
        assert_eq!(t.driver_features(), 1 << 32 | 1 << 5);
    }

    #[test]
    fn activates_acks_interrupts_and_resets_to_usable() {
        let (mut t, buf) = transport();
        for round in 0..2 {
            negotiate(&mut t);
            setup_queue(&mut t, 0, 0x10000);
            setup_queue(&mut t, 1, 0x20000);
            w(
                &mut t,
                reg::STATUS,
                ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
            );
            assert!(t.is_active(), "round {round}");
            assert_eq!(r(&mut t, reg::STATUS) & DEVICE_NEEDS_RESET, 0);
            t.signals().signal_used().unwrap();
            assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), 1);
            w(&mut t, reg::INTERRUPT_ACK, 1);
            assert_eq!(r(&mut t, reg::INTERRUPT_STATUS), 0);
            w(&mut t, reg::QUEUE_NOTIFY, 0);
            w(&mut t, reg::STATUS, 0);
            assert!(!t.is_active());
            assert_eq!(r(&mut t, reg::STATUS), 0);
            w(&mut t, reg::QUEUE_SEL, 0);
            assert_eq!(r(&mut t, reg::QUEUE_READY), 0, "reset forgets queues");
        }
        assert_eq!(buf.events("device_activated").len(), 2);
        assert!(buf.events("error").is_empty());
    }

    fn expect_needs_reset(t: &mut MmioTransport, buf: &Buf, kind: &str) {
        assert_ne!(
            r(t, reg::STATUS) & DEVICE_NEEDS_RESET,
            0,
            "{kind}: NEEDS_RESET set"
        );
        assert_ne!(
            r(t, reg::INTERRUPT_STATUS) & 2,
            0,
            "{kind}: config interrupt raised"
        );
        let errors = buf.events("error");
        assert!(
            errors.iter().any(|e| e["kind"] == kind),
            "{kind}: error event in {errors:?}"
        );
        // Recovery: reset, then a full bring-up works.
        w(t, reg::STATUS, 0);
        assert_eq!(r(t, reg::STATUS), 0);
        negotiate(t);
        setup_queue(t, 0, 0x10000);
        setup_queue(t, 1, 0x20000);
        w(
            t,
            reg::STATUS,
            ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
        );
        assert!(t.is_active(), "{kind}: usable after reset");
        w(t, reg::STATUS, 0);
    }

    #[test]
    fn wrong_status_writes_and_bad_queue_setup_need_reset() {
        let (mut t, buf) = transport();
        // Queue setup before FEATURES_OK.
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER);
        w(&mut t, reg::QUEUE_NUM, 64);
        expect_needs_reset(&mut t, &buf, "register_write_at_wrong_status");
        // Features written after FEATURES_OK.
        negotiate(&mut t);
        w(&mut t, reg::DRIVER_FEATURES, 0);
        expect_needs_reset(&mut t, &buf, "register_write_at_wrong_status");
        // DRIVER_OK without FEATURES_OK.
        w(&mut t, reg::STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK);
        expect_needs_reset(&mut t, &buf, "illegal_status_transition");
        // Queue size not a power of two.
        negotiate(&mut t);
        w(&mut t, reg::QUEUE_NUM, 48);
        expect_needs_reset(&mut t, &buf, "queue_size_not_power_of_two");
        // Rings outside guest memory.
        negotiate(&mut t);
        w(&mut t, reg::QUEUE_NUM, 64);
        w(&mut t, reg::QUEUE_DESC_LOW, 0);
        w(&mut t, reg::QUEUE_DESC_HIGH, 1);
        w(&mut t, reg::QUEUE_READY, 1);
        expect_needs_reset(&mut t, &buf, "ring_outside_memory");
        // Queue setup after DRIVER_OK.
        negotiate(&mut t);
        setup_queue(&mut t, 0, 0x10000);
        setup_queue(&mut t, 1, 0x20000);
        w(
            &mut t,
            reg::STATUS,
            ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
        );
        w(&mut t, reg::QUEUE_READY, 0);
        expect_needs_reset(&mut t, &buf, "register_write_at_wrong_status");
        // Clearing a status bit without reset.
        negotiate(&mut t);
        w(&mut t, reg::STATUS, ACKNOWLEDGE);
        expect_needs_reset(&mut t, &buf, "illegal_status_transition");
    }
}
