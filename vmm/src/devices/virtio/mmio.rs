//! The virtio-mmio transport, version 2 (virtio 1.x §4.2.2): the register file the guest
//! driver programs, decoded onto the shared state machine of [`super::transport`] (feature
//! negotiation, queue setup, status, activation, reset and the DEVICE_NEEDS_RESET path).

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::signals::Signals;
use super::transport::{RingField, VirtioState};
use super::VirtioDevice;
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

pub use super::transport::TransportError;

/// A virtio device on the MMIO transport.
pub struct MmioTransport {
    state: VirtioState,
}

impl MmioTransport {
    /// Put `device` on the transport over guest memory `mem`, interrupting through `signals`.
    /// Creates one kick EventFd per queue.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap<()>,
        signals: Signals,
    ) -> std::io::Result<Self> {
        Ok(Self {
            state: VirtioState::new(device, mem, signals)?,
        })
    }

    /// The kick EventFd of queue `i` (the VMM registers it as an ioeventfd at base + 0x50,
    /// datamatch `i`).
    pub fn kick_fd(&self, i: usize) -> Option<&EventFd> {
        self.state.kick_fd(i)
    }

    /// The signals (interrupt EventFd, needs-reset state).
    pub fn signals(&self) -> &Signals {
        self.state.signals()
    }

    /// The device status as the guest reads it.
    pub fn status(&self) -> u32 {
        self.state.status()
    }

    /// The features negotiated so far.
    pub fn driver_features(&self) -> u64 {
        self.state.driver_features()
    }

    /// Whether the device is running (DRIVER_OK reached and accepted).
    pub fn is_active(&self) -> bool {
        self.state.is_active()
    }

    fn read_reg(&self, offset: u64) -> u32 {
        let s = &self.state;
        match offset {
            reg::MAGIC_VALUE => MAGIC_VALUE,
            reg::VERSION => 2,
            reg::DEVICE_ID => s.device().device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => s.device_features_word(),
            reg::QUEUE_NUM_MAX => u32::from(s.queue_num_max()),
            reg::QUEUE_READY => s.selected_queue().map(|q| u32::from(q.ready)).unwrap_or(0),
            reg::INTERRUPT_STATUS => s.signals().interrupt_status(),
            reg::STATUS => s.status(),
            reg::CONFIG_GENERATION => s.config_generation(),
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        let s = &mut self.state;
        if offset == reg::STATUS {
            return s.write_status(v);
        }
        if s.broken() {
            // A broken device ignores everything but reset.
            return;
        }
        match offset {
            reg::DEVICE_FEATURES_SEL => s.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => s.driver_features_sel = v,
            reg::DRIVER_FEATURES => s.write_driver_features(offset, v),
            reg::QUEUE_SEL => s.queue_sel = v,
            reg::QUEUE_NUM => s.write_queue_size(offset, v),
            reg::QUEUE_READY => s.write_queue_ready(offset, v),
            reg::QUEUE_DESC_LOW | reg::QUEUE_DESC_HIGH => {
                s.write_ring_address(offset, RingField::Desc, offset & 4 != 0, v)
            }
            reg::QUEUE_DRIVER_LOW | reg::QUEUE_DRIVER_HIGH => {
                s.write_ring_address(offset, RingField::Driver, offset & 4 != 0, v)
            }
            reg::QUEUE_DEVICE_LOW | reg::QUEUE_DEVICE_HIGH => {
                s.write_ring_address(offset, RingField::Device, offset & 4 != 0, v)
            }
            reg::QUEUE_NOTIFY => s.notify(v),
            reg::INTERRUPT_ACK => s.signals().ack(v),
            _ => {}
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            return self.state.device().read_config(offset - reg::CONFIG, data);
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
            return self
                .state
                .device_mut()
                .write_config(offset - reg::CONFIG, data);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::net::backend::socketpair_backend;
    use crate::devices::virtio::net::{MacAddr, Net, NetOptions};
    use crate::devices::virtio::status::*;
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

    /// The transport, its events, and the backend's peer (kept open: a closed peer makes
    /// the device report `backend_gone` as soon as its thread polls the backend).
    fn transport() -> (MmioTransport, Buf, std::os::fd::OwnedFd) {
        let buf = Buf::default();
        let events = EventSink::to_writer(Box::new(buf.clone()));
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let (backend, peer) = socketpair_backend(1 << 16).unwrap();
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
            peer,
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
        let (mut t, _, _peer) = transport();
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
        let (mut t, _, _peer) = transport();
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
        let (mut t, buf, _peer) = transport();
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
        let (mut t, buf, _peer) = transport();
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
