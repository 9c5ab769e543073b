//! The virtio-pci transport, modern interface (virtio 1.x §4.1): a PCI function with the
//! virtio vendor capabilities (common configuration, notifications, ISR status, device
//! configuration) and an MSI-X capability, all in one 64-bit memory BAR (BAR0). Registers
//! are decoded onto the shared state machine of [`super::transport`].
//!
//! ```text
//! BAR0 + 0x0000  common configuration (0x38 bytes)
//!        0x1000  ISR status (1 byte; reading clears it)
//!        0x2000  device configuration (virtio-net's)
//!        0x3000  notifications: queue i at 0x3000 + 4 i (ioeventfd, any width)
//!        0x4000  MSI-X table (one entry per vector: configuration, then one per queue)
//!        0x5000  MSI-X PBA
//! ```
//!
//! With MSI-X enabled each queue interrupts on the vector the driver gave it, so an
//! interrupt for one queue does nothing for another; otherwise INTx (an irqfd on the GSI
//! in the interrupt line register) serves all of them, as virtio-mmio's line does.
//! A vector number the function does not have reads back as NO_VECTOR, with an `error`
//! event; the driver sees the refusal (§4.1.5.1.2.1).

use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use super::transport::{RingField, VirtioState};
use crate::devices::pci::config::{BarDef, BarKind, ConfigError, ConfigSpace};
use crate::devices::pci::host::PciFunction;
use crate::devices::pci::ioevents::IoEvents;
use crate::devices::pci::msix::{MsixVectors, NO_VECTOR};

/// The virtio vendor ID.
pub const VIRTIO_PCI_VENDOR: u16 = 0x1af4;
/// Modern device IDs are 0x1040 + the virtio device type.
pub const MODERN_DEVICE_BASE: u16 = 0x1040;
/// Size of BAR0.
pub const BAR_SIZE: u64 = 0x8000;
/// Offsets in BAR0.
#[allow(missing_docs)]
pub mod region {
    pub const COMMON: u64 = 0x0000;
    pub const COMMON_LEN: u64 = 0x38;
    pub const ISR: u64 = 0x1000;
    pub const DEVICE: u64 = 0x2000;
    pub const DEVICE_LEN: u64 = 0x100;
    pub const NOTIFY: u64 = 0x3000;
    pub const NOTIFY_MULTIPLIER: u32 = 4;
    pub const MSIX_TABLE: u64 = 0x4000;
    pub const MSIX_PBA: u64 = 0x5000;
}

/// Common configuration offsets (§4.1.4.3).
#[allow(missing_docs)]
pub mod common {
    pub const DEVICE_FEATURE_SELECT: u64 = 0;
    pub const DEVICE_FEATURE: u64 = 4;
    pub const DRIVER_FEATURE_SELECT: u64 = 8;
    pub const DRIVER_FEATURE: u64 = 12;
    pub const MSIX_CONFIG: u64 = 16;
    pub const NUM_QUEUES: u64 = 18;
    pub const DEVICE_STATUS: u64 = 20;
    pub const CONFIG_GENERATION: u64 = 21;
    pub const QUEUE_SELECT: u64 = 22;
    pub const QUEUE_SIZE: u64 = 24;
    pub const QUEUE_MSIX_VECTOR: u64 = 26;
    pub const QUEUE_ENABLE: u64 = 28;
    pub const QUEUE_NOTIFY_OFF: u64 = 30;
    pub const QUEUE_DESC: u64 = 32;
    pub const QUEUE_DRIVER: u64 = 40;
    pub const QUEUE_DEVICE: u64 = 48;
}

const CAP_VENDOR: u8 = 0x09;
const CAP_MSIX: u8 = 0x11;
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;

/// A virtio device behind a modern virtio-pci function.
pub struct VirtioPci {
    config: ConfigSpace,
    state: VirtioState,
    msix: Arc<MsixVectors>,
    msix_control: usize,
    ioevents: Option<Box<dyn IoEvents>>,
    notify_at: Option<u64>,
}

fn virtio_cap(cfg_type: u8, offset: u64, length: u64, extra: Option<u32>) -> Vec<u8> {
    let mut c = vec![CAP_VENDOR, 0, 0, cfg_type, 0, 0, 0, 0];
    c.extend_from_slice(&(offset as u32).to_le_bytes());
    c.extend_from_slice(&(length as u32).to_le_bytes());
    if let Some(x) = extra {
        c.extend_from_slice(&x.to_le_bytes());
    }
    c[2] = c.len() as u8;
    c
}

impl VirtioPci {
    /// `state`'s device as a PCI function with BAR0 at `bar0` (as firmware would assign
    /// it), INTx on `intx_line`, MSI-X through `msix`; kicks through `ioevents` when given.
    pub fn new(
        state: VirtioState,
        bar0: u64,
        intx_line: u8,
        msix: Arc<MsixVectors>,
        ioevents: Option<Box<dyn IoEvents>>,
    ) -> Self {
        let device_id = MODERN_DEVICE_BASE + state.device().device_id() as u16;
        // Class 02/00/00: Ethernet controller. Revision 1: a modern-only device (§4.1.2.1).
        let mut config = ConfigSpace::new(VIRTIO_PCI_VENDOR, device_id, [2, 0, 0], 1);
        config.set16(0x2c, VIRTIO_PCI_VENDOR);
        config.set16(0x2e, 0x40);
        config.set_interrupt(1, intx_line);
        config.set_bar(
            0,
            BarDef {
                kind: BarKind::Memory64,
                size: BAR_SIZE,
            },
            bar0,
        );
        let vectors = (msix.len() as u16).saturating_sub(1);
        let mut cap = vec![CAP_MSIX, 0];
        cap.extend_from_slice(&vectors.to_le_bytes());
        cap.extend_from_slice(&(region::MSIX_TABLE as u32).to_le_bytes()); // BIR 0
        cap.extend_from_slice(&(region::MSIX_PBA as u32).to_le_bytes()); // BIR 0
        let msix_at = config.add_capability(&cap, &[0, 0, 0, 0xc0]);
        config.add_capability(
            &virtio_cap(CFG_COMMON, region::COMMON, region::COMMON_LEN, None),
            &[],
        );
        let queues = state.queue_count() as u64;
        config.add_capability(
            &virtio_cap(
                CFG_NOTIFY,
                region::NOTIFY,
                queues * u64::from(region::NOTIFY_MULTIPLIER),
                Some(region::NOTIFY_MULTIPLIER),
            ),
            &[],
        );
        config.add_capability(&virtio_cap(CFG_ISR, region::ISR, 1, None), &[]);
        config.add_capability(
            &virtio_cap(CFG_DEVICE, region::DEVICE, region::DEVICE_LEN, None),
            &[],
        );
        Self {
            config,
            state,
            msix,
            msix_control: msix_at + 2,
            ioevents,
            notify_at: None,
        }
    }

    /// The transport state (status, signals, kicks).
    pub fn state(&self) -> &VirtioState {
        &self.state
    }

    fn ignored(&self, kind: &str, error: std::fmt::Arguments<'_>) {
        self.state.signals().ignored(kind, &error);
    }

    fn selected_vector(&self) -> u16 {
        let q = self.state.queue_sel as usize;
        if q < self.state.queue_count() {
            self.state.signals().vector(Some(q))
        } else {
            NO_VECTOR
        }
    }

    fn common_read(&self, offset: u64, len: usize) -> u64 {
        let s = &self.state;
        let q = s.selected_queue().copied().unwrap_or_default();
        let ring = |addr: u64, off: u64| match (off, len) {
            (0, 8) => addr,
            (0, 4) => addr & 0xffff_ffff,
            (4, 4) => addr >> 32,
            _ => 0,
        };
        match (offset, len) {
            (common::DEVICE_FEATURE_SELECT, 4) => u64::from(s.device_features_sel),
            (common::DEVICE_FEATURE, 4) => u64::from(s.device_features_word()),
            (common::DRIVER_FEATURE_SELECT, 4) => u64::from(s.driver_features_sel),
            (common::DRIVER_FEATURE, 4) => u64::from(s.driver_features_word()),
            (common::MSIX_CONFIG, 2) => u64::from(s.signals().vector(None)),
            (common::NUM_QUEUES, 2) => s.queue_count() as u64,
            (common::DEVICE_STATUS, 1) => u64::from(s.status() as u8),
            (common::CONFIG_GENERATION, 1) => u64::from(s.config_generation() as u8),
            (common::QUEUE_SELECT, 2) => u64::from(s.queue_sel),
            (common::QUEUE_SIZE, 2) => u64::from(if q.size == 0 {
                s.queue_num_max()
            } else {
                q.size
            }),
            (common::QUEUE_MSIX_VECTOR, 2) => u64::from(self.selected_vector()),
            (common::QUEUE_ENABLE, 2) => u64::from(q.ready),
            (common::QUEUE_NOTIFY_OFF, 2) => u64::from(s.queue_sel),
            (o @ common::QUEUE_DESC..=55, _) => {
                let (base, field) = match o {
                    32..=39 => (common::QUEUE_DESC, q.desc_table),
                    40..=47 => (common::QUEUE_DRIVER, q.avail_ring),
                    _ => (common::QUEUE_DEVICE, q.used_ring),
                };
                ring(field, o - base)
            }
            _ => 0,
        }
    }

    fn common_write(&mut self, offset: u64, len: usize, v: u64) {
        let s = &mut self.state;
        if (offset, len) == (common::DEVICE_STATUS, 1) {
            return s.write_status(v as u32);
        }
        if s.broken() {
            // A broken device ignores everything but reset.
            return;
        }
        let v32 = v as u32;
        match (offset, len) {
            (common::DEVICE_FEATURE_SELECT, 4) => s.device_features_sel = v32,
            (common::DRIVER_FEATURE_SELECT, 4) => s.driver_features_sel = v32,
            (common::DRIVER_FEATURE, 4) => s.write_driver_features(offset, v32),
            (common::MSIX_CONFIG, 2) => self.set_vector(None, v as u16),
            (common::QUEUE_SELECT, 2) => s.queue_sel = v32,
            (common::QUEUE_SIZE, 2) => s.write_queue_size(offset, v32),
            (common::QUEUE_MSIX_VECTOR, 2) => {
                let q = s.queue_sel as usize;
                if q < s.queue_count() {
                    self.set_vector(Some(q), v as u16);
                }
            }
            (common::QUEUE_ENABLE, 2) => {
                // A driver that keeps the offered size need not write queue_size.
                if v32 == 1 && s.selected_queue().is_some_and(|q| q.size == 0) {
                    let max = u32::from(s.queue_num_max());
                    s.write_queue_size(common::QUEUE_SIZE, max);
                }
                s.write_queue_ready(offset, v32)
            }
            (o @ common::QUEUE_DESC..=55, 4 | 8) if o % 4 == 0 => {
                let (base, field) = match o {
                    32..=39 => (common::QUEUE_DESC, RingField::Desc),
                    40..=47 => (common::QUEUE_DRIVER, RingField::Driver),
                    _ => (common::QUEUE_DEVICE, RingField::Device),
                };
                if len == 8 {
                    s.write_ring_address(o, field, false, v32);
                    s.write_ring_address(o, field, true, (v >> 32) as u32);
                } else {
                    s.write_ring_address(o, field, o - base == 4, v32);
                }
            }
            _ => self.ignored(
                "common_config_write_ignored",
                format_args!(
                    "write of {len} bytes at common configuration offset {offset:#x} (read-only, or not a field of that width)"
                ),
            ),
        }
    }

    fn set_vector(&mut self, queue: Option<usize>, vector: u16) {
        if !self.state.signals().set_vector(queue, vector) {
            self.ignored(
                "msix_vector_out_of_range",
                format_args!(
                    "vector {vector} for {} is out of range: the function has {} vectors; it reads back as NO_VECTOR",
                    queue.map_or("the configuration".to_string(), |q| format!("queue {q}")),
                    self.msix.len()
                ),
            );
        }
    }

    fn move_notify(&mut self, base: Option<u64>) {
        let at = base.map(|b| b + region::NOTIFY);
        if at == self.notify_at {
            return;
        }
        let Some(io) = &self.ioevents else { return };
        for q in 0..self.state.queue_count() {
            let Some(fd) = self.state.kick_fd(q) else {
                continue;
            };
            let off = q as u64 * u64::from(region::NOTIFY_MULTIPLIER);
            if let Some(old) = self.notify_at {
                if let Err(e) = io.unregister(fd, old + off) {
                    tracing::warn!("queue {q}: removing the notify ioeventfd failed: {e}");
                }
            }
            if let Some(new) = at {
                if let Err(e) = io.register(fd, new + off) {
                    tracing::warn!(
                        "queue {q}: notify ioeventfd failed ({e}); kicks exit to the VMM"
                    );
                }
            }
        }
        self.notify_at = at;
    }
}

fn le(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..data.len()].copy_from_slice(data);
    u64::from_le_bytes(b)
}

impl PciFunction for VirtioPci {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_write(&mut self, offset: u64, data: &[u8]) -> Result<(), ConfigError> {
        self.config.write(offset, data)?;
        let control = self.msix_control as u64;
        if offset < control + 2 && control < offset + data.len() as u64 {
            self.msix.set_control(self.config.read16(self.msix_control));
        }
        Ok(())
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if bar != 0 || data.len() > 8 {
            data.fill(0);
            return;
        }
        match offset {
            o if o < region::COMMON_LEN => {
                let v = self.common_read(o, data.len());
                let n = data.len();
                data.copy_from_slice(&v.to_le_bytes()[..n]);
            }
            region::ISR => {
                data.fill(0);
                data[0] = self.state.signals().take_interrupt_status() as u8;
            }
            o if (region::DEVICE..region::DEVICE + region::DEVICE_LEN).contains(&o) => {
                self.state.device().read_config(o - region::DEVICE, data)
            }
            o if (region::MSIX_TABLE..region::MSIX_PBA).contains(&o) => {
                self.msix.table_read(o - region::MSIX_TABLE, data)
            }
            o if (region::MSIX_PBA..BAR_SIZE).contains(&o) => {
                self.msix.pba_read(o - region::MSIX_PBA, data)
            }
            _ => data.fill(0),
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if bar != 0 || data.len() > 8 {
            return;
        }
        match offset {
            o if o < region::COMMON_LEN => self.common_write(o, data.len(), le(data)),
            o if (region::DEVICE..region::DEVICE + region::DEVICE_LEN).contains(&o) => self
                .state
                .device_mut()
                .write_config(o - region::DEVICE, data),
            o if (region::NOTIFY..region::MSIX_TABLE).contains(&o) => {
                // Reached only without an ioeventfd (or before one is registered).
                let q = (o - region::NOTIFY) / u64::from(region::NOTIFY_MULTIPLIER);
                self.state.notify(q as u32);
            }
            o if (region::MSIX_TABLE..region::MSIX_PBA).contains(&o) => {
                self.msix.table_write(o - region::MSIX_TABLE, data)
            }
            o if (region::MSIX_PBA..BAR_SIZE).contains(&o) => {
                self.msix.pba_write(o - region::MSIX_PBA, data)
            }
            _ => {}
        }
    }

    fn bar_mapped(&mut self, bar: usize, base: Option<u64>) {
        if bar == 0 {
            self.move_notify(base);
        }
    }
}

/// An EventFd per MSI-X vector: one for configuration changes and one per queue.
pub fn vector_fds(queues: usize) -> std::io::Result<Vec<EventFd>> {
    (0..=queues)
        .map(|_| EventFd::new(libc::EFD_NONBLOCK))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pci::routing::RecordedRoutes;
    use crate::devices::virtio::net::backend::socketpair_backend;
    use crate::devices::virtio::net::test_driver::EventLog as Events;
    use crate::devices::virtio::net::{MacAddr, Net, NetOptions};
    use crate::devices::virtio::status::*;
    use crate::devices::virtio::Signals;
    use crate::events::EventSink;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    struct Rig {
        f: VirtioPci,
        events: Events,
        intx: EventFd,
        _peer: std::os::fd::OwnedFd,
    }

    fn rig() -> Rig {
        let events = Events::default();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let (backend, peer) = socketpair_backend(1 << 16).unwrap();
        let net = Net::new(
            MacAddr::DEFAULT,
            64,
            Box::new(backend),
            NetOptions::default(),
            EventSink::to_writer(Box::new(events.clone())),
        )
        .unwrap();
        let msix = Arc::new(MsixVectors::new(
            vector_fds(2).unwrap(),
            24,
            Arc::new(RecordedRoutes::default()),
            EventSink::to_writer(Box::new(events.clone())),
            "virtio-net",
        ));
        let intx = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let signals = Signals::with_msix(
            intx.try_clone().unwrap(),
            EventSink::to_writer(Box::new(events.clone())),
            "virtio-net",
            msix.clone(),
            2,
        );
        let state = VirtioState::new(Box::new(net), mem, signals).unwrap();
        Rig {
            f: VirtioPci::new(state, 0xe010_0000, 23, msix, None),
            events,
            intx,
            _peer: peer,
        }
    }

    fn w(f: &mut VirtioPci, off: u64, v: u64, len: usize) {
        f.bar_write(0, off, &v.to_le_bytes()[..len]);
    }
    fn r(f: &mut VirtioPci, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        f.bar_read(0, off, &mut b[..len]);
        u64::from_le_bytes(b)
    }

    fn bring_up(f: &mut VirtioPci) {
        w(f, common::DEVICE_STATUS, u64::from(ACKNOWLEDGE | DRIVER), 1);
        w(f, common::DRIVER_FEATURE_SELECT, 1, 4);
        w(f, common::DRIVER_FEATURE, 1, 4);
        w(f, common::DRIVER_FEATURE_SELECT, 0, 4);
        w(f, common::DRIVER_FEATURE, 1 << 5, 4);
        w(
            f,
            common::DEVICE_STATUS,
            u64::from(ACKNOWLEDGE | DRIVER | FEATURES_OK),
            1,
        );
        for q in 0..2u64 {
            w(f, common::QUEUE_SELECT, q, 2);
            w(f, common::QUEUE_MSIX_VECTOR, q + 1, 2);
            w(f, common::QUEUE_DESC, 0x10000 + q * 0x10000, 8);
            w(f, common::QUEUE_DRIVER, 0x11000 + q * 0x10000, 8);
            w(f, common::QUEUE_DEVICE, 0x12000 + q * 0x10000, 8);
            w(f, common::QUEUE_ENABLE, 1, 2);
        }
        w(
            f,
            common::DEVICE_STATUS,
            u64::from(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK),
            1,
        );
    }

    #[test]
    fn capabilities_and_common_configuration_are_what_a_modern_driver_reads() {
        let Rig {
            mut f,
            events,
            _peer,
            ..
        } = rig();
        let c = f.config();
        assert_eq!(c.read32(0), 0x1041_1af4);
        assert_eq!(c.bar(0).map(|(_, b)| b), Some(0xe010_0000));
        // The capability list: MSI-X, then common, notify, ISR, device.
        let mut at = usize::from(c.read16(0x34) as u8);
        let mut seen = Vec::new();
        while at != 0 {
            let id = c.read16(at) as u8;
            seen.push(if id == CAP_VENDOR {
                c.read16(at + 2) >> 8
            } else {
                0x100 | u16::from(id)
            });
            at = usize::from((c.read16(at) >> 8) as u8);
        }
        assert_eq!(seen, [0x111, 1, 2, 3, 4]);
        assert_eq!(r(&mut f, common::NUM_QUEUES, 2), 2);
        w(&mut f, common::QUEUE_SELECT, 1, 2);
        assert_eq!(r(&mut f, common::QUEUE_SIZE, 2), 64);
        assert_eq!(r(&mut f, common::QUEUE_NOTIFY_OFF, 2), 1);
        assert_eq!(
            r(&mut f, common::QUEUE_MSIX_VECTOR, 2),
            u64::from(NO_VECTOR)
        );
        let mut mac = [0u8; 6];
        f.bar_read(0, region::DEVICE, &mut mac);
        assert_eq!(mac, MacAddr::DEFAULT.0);
        bring_up(&mut f);
        assert!(f.state().is_active());
        w(&mut f, common::QUEUE_SELECT, 1, 2);
        assert_eq!(r(&mut f, common::QUEUE_DESC, 8), 0x20000);
        assert_eq!(r(&mut f, common::QUEUE_MSIX_VECTOR, 2), 2);
        assert!(
            events.events("error").is_empty(),
            "{:?}",
            events.events("error")
        );
        w(&mut f, common::DEVICE_STATUS, 0, 1);
        assert!(!f.state().is_active());
        assert_eq!(
            r(&mut f, common::QUEUE_MSIX_VECTOR, 2),
            u64::from(NO_VECTOR),
            "reset"
        );
    }

    #[test]
    fn each_queue_interrupts_on_its_own_vector_and_intx_serves_all_without_msix() {
        let Rig {
            mut f, intx, _peer, ..
        } = rig();
        bring_up(&mut f);
        let signals = f.state().signals().clone();
        // MSI-X off: the shared INTx line, with the ISR bit.
        signals.signal_queue(1).unwrap();
        assert!(intx.read().is_ok());
        assert_eq!(r(&mut f, region::ISR, 1), 1);
        assert_eq!(r(&mut f, region::ISR, 1), 0, "reading the ISR clears it");
        // MSI-X on, entries unmasked: queue i on vector i + 1 only.
        let control = f.msix_control as u64;
        f.config_write(
            control,
            &crate::devices::pci::msix::CONTROL_ENABLE.to_le_bytes(),
        )
        .unwrap();
        for v in 0..3u64 {
            w(&mut f, region::MSIX_TABLE + 16 * v, 0xfee0_0000, 4);
            w(&mut f, region::MSIX_TABLE + 16 * v + 8, 0x30 + v, 4);
            w(&mut f, region::MSIX_TABLE + 16 * v + 12, 0, 4);
        }
        signals.signal_queue(0).unwrap();
        assert!(f.msix.irqfd(1).unwrap().read().is_ok());
        assert!(
            f.msix.irqfd(2).unwrap().read().is_err(),
            "tx's vector stays quiet"
        );
        assert!(intx.read().is_err(), "no INTx with MSI-X on");
        signals.signal_queue(1).unwrap();
        assert!(f.msix.irqfd(2).unwrap().read().is_ok());
        assert!(
            f.msix.irqfd(1).unwrap().read().is_err(),
            "rx's vector stays quiet"
        );
    }

    #[test]
    fn bad_vectors_and_writes_are_ignored_with_an_event_and_bad_setup_needs_reset() {
        let Rig {
            mut f,
            events,
            _peer,
            ..
        } = rig();
        w(&mut f, common::MSIX_CONFIG, 3, 2);
        assert_eq!(r(&mut f, common::MSIX_CONFIG, 2), u64::from(NO_VECTOR));
        w(&mut f, common::QUEUE_SELECT, 0, 2);
        w(&mut f, common::QUEUE_MSIX_VECTOR, 0x7ff, 2);
        assert_eq!(
            r(&mut f, common::QUEUE_MSIX_VECTOR, 2),
            u64::from(NO_VECTOR)
        );
        // Read-only fields and odd widths.
        w(&mut f, common::NUM_QUEUES, 9, 2);
        w(&mut f, common::DEVICE_FEATURE, 9, 4);
        w(&mut f, common::QUEUE_SELECT, 0, 4);
        // Beyond the BAR, other BARs, wide accesses: nothing happens.
        f.bar_write(0, BAR_SIZE + 8, &[1; 4]);
        f.bar_write(2, 0, &[1; 4]);
        f.bar_write(0, 0, &[1; 16]);
        let mut big = [0xaau8; 16];
        f.bar_read(0, 0, &mut big);
        assert_eq!(big, [0; 16]);
        let kinds: Vec<String> = events
            .events("error")
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "msix_vector_out_of_range",
                "msix_vector_out_of_range",
                "common_config_write_ignored",
                "common_config_write_ignored",
                "common_config_write_ignored"
            ]
        );
        assert!(events
            .events("error")
            .iter()
            .all(|e| e["needs_reset"] == false));
        assert_eq!(
            r(&mut f, common::DEVICE_STATUS, 1),
            0,
            "no NEEDS_RESET for ignored writes"
        );
        // Queue setup at the wrong status and a size that is not a power of two: NEEDS_RESET.
        w(
            &mut f,
            common::DEVICE_STATUS,
            u64::from(ACKNOWLEDGE | DRIVER),
            1,
        );
        w(&mut f, common::QUEUE_SIZE, 48, 2);
        assert_ne!(
            r(&mut f, common::DEVICE_STATUS, 1) & u64::from(DEVICE_NEEDS_RESET),
            0
        );
        w(&mut f, common::DEVICE_STATUS, 0, 1);
        assert_eq!(r(&mut f, common::DEVICE_STATUS, 1), 0);
        bring_up(&mut f);
        w(&mut f, common::QUEUE_SELECT, 0, 2);
        w(&mut f, common::QUEUE_ENABLE, 0, 2);
        assert_ne!(
            r(&mut f, common::DEVICE_STATUS, 1) & u64::from(DEVICE_NEEDS_RESET),
            0
        );
        assert!(events
            .events("error")
            .iter()
            .any(|e| e["kind"] == "register_write_at_wrong_status" && e["needs_reset"] == true));
        // Configuration writes out of range are refused, not applied.
        assert!(f.config_write(4096, &[0; 4]).is_err());
        assert!(f.config_write(0x3e, &[0; 4]).is_err());
    }
}
