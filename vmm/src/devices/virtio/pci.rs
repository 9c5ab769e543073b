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
//!
//! A transitional function ([`VirtioPci::transitional`], device ID 0x1000, subsystem ID =
//! the device type) has the legacy register block in an I/O BAR0
//! ([`super::pci_legacy`]) and the modern layout above in BAR4, as QEMU lays it out.
//!
//! Both layouts have the VIRTIO_PCI_CAP_PCI_CFG capability (§4.1.4.9): a window in
//! configuration space through which a driver reaches any BAR offset (the driver writes
//! `bar`, `offset` and `length`, then reads or writes `pci_cfg_data`).

use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use super::pci_legacy::{self, Legacy, LEGACY_BAR_SIZE};
use super::transport::{Interface, RingField, VirtioState};
use crate::devices::pci::config::{BarDef, BarKind, ConfigError, ConfigSpace};
use crate::devices::pci::host::PciFunction;
use crate::devices::pci::ioevents::IoEvents;
use crate::devices::pci::msix::{MsixVectors, NO_VECTOR};

/// The virtio vendor ID.
pub const VIRTIO_PCI_VENDOR: u16 = 0x1af4;
/// Modern device IDs are 0x1040 + the virtio device type.
pub const MODERN_DEVICE_BASE: u16 = 0x1040;
/// Transitional device IDs are 0x1000 + the virtio device type - 1 (network: 0x1000).
pub const TRANSITIONAL_DEVICE_BASE: u16 = 0x1000;
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
const CFG_PCI: u8 = 5;
/// Offsets in the PCI_CFG capability.
const PCI_CFG_BAR: usize = 4;
const PCI_CFG_OFFSET: usize = 8;
const PCI_CFG_LENGTH: usize = 12;
const PCI_CFG_DATA: usize = 16;

/// A virtio device behind a modern virtio-pci function.
pub struct VirtioPci {
    config: ConfigSpace,
    state: VirtioState,
    msix: Arc<MsixVectors>,
    msix_control: usize,
    ioevents: Option<Box<dyn IoEvents>>,
    notify_at: Option<u64>,
    /// The BAR with the modern regions: 0, or 4 on a transitional function.
    modern_bar: usize,
    /// Transitional: the legacy block in I/O BAR0.
    legacy: bool,
    legacy_notify_at: Option<u64>,
    /// Offset of the PCI_CFG capability.
    pci_cfg: usize,
}

fn virtio_cap(cfg_type: u8, bar: usize, offset: u64, length: u64, extra: Option<u32>) -> Vec<u8> {
    let mut c = vec![CAP_VENDOR, 0, 0, cfg_type, bar as u8, 0, 0, 0];
    c.extend_from_slice(&(offset as u32).to_le_bytes());
    c.extend_from_slice(&(length as u32).to_le_bytes());
    if let Some(x) = extra {
        c.extend_from_slice(&x.to_le_bytes());
    }
    c[2] = c.len() as u8;
    c
}

impl VirtioPci {
    /// `state`'s device as a modern-only PCI function with BAR0 at `bar0` (as firmware
    /// would assign it), INTx on `intx_line`, MSI-X through `msix`; kicks through `ioevents`
    /// when given.
    pub fn new(
        state: VirtioState,
        bar0: u64,
        intx_line: u8,
        msix: Arc<MsixVectors>,
        ioevents: Option<Box<dyn IoEvents>>,
    ) -> Self {
        Self::build(state, bar0, None, intx_line, msix, ioevents)
    }

    /// `state`'s device as a transitional PCI function: the legacy registers in I/O BAR0
    /// at port `io_bar0`, the modern regions in 64-bit BAR4 at `bar4`.
    pub fn transitional(
        state: VirtioState,
        bar4: u64,
        io_bar0: u64,
        intx_line: u8,
        msix: Arc<MsixVectors>,
        ioevents: Option<Box<dyn IoEvents>>,
    ) -> Self {
        Self::build(state, bar4, Some(io_bar0), intx_line, msix, ioevents)
    }

    fn build(
        state: VirtioState,
        modern_base: u64,
        legacy_io: Option<u64>,
        intx_line: u8,
        msix: Arc<MsixVectors>,
        ioevents: Option<Box<dyn IoEvents>>,
    ) -> Self {
        let device_type = state.device().device_id() as u16;
        // Class 02/00/00: Ethernet controller. Revision 1: a modern-only device; 0: a
        // transitional one (§4.1.2.1), whose subsystem ID is the device type (§4.1.2.3).
        let (device_id, revision, subsystem) = match legacy_io {
            None => (MODERN_DEVICE_BASE + device_type, 1, 0x40),
            Some(_) => (
                TRANSITIONAL_DEVICE_BASE + device_type.saturating_sub(1),
                0,
                device_type,
            ),
        };
        let mut config = ConfigSpace::new(VIRTIO_PCI_VENDOR, device_id, [2, 0, 0], revision);
        config.set16(0x2c, VIRTIO_PCI_VENDOR);
        config.set16(0x2e, subsystem);
        config.set_interrupt(1, intx_line);
        let modern_bar = if legacy_io.is_some() { 4 } else { 0 };
        if let Some(io) = legacy_io {
            config.set_bar(
                0,
                BarDef {
                    kind: BarKind::Io,
                    size: LEGACY_BAR_SIZE,
                },
                io,
            );
        }
        config.set_bar(
            modern_bar,
            BarDef {
                kind: BarKind::Memory64,
                size: BAR_SIZE,
            },
            modern_base,
        );
        let vectors = (msix.len() as u16).saturating_sub(1);
        let bir = modern_bar as u32;
        let mut cap = vec![CAP_MSIX, 0];
        cap.extend_from_slice(&vectors.to_le_bytes());
        cap.extend_from_slice(&(region::MSIX_TABLE as u32 | bir).to_le_bytes());
        cap.extend_from_slice(&(region::MSIX_PBA as u32 | bir).to_le_bytes());
        let msix_at = config.add_capability(&cap, &[0, 0, 0, 0xc0]);
        config.add_capability(
            &virtio_cap(
                CFG_COMMON,
                modern_bar,
                region::COMMON,
                region::COMMON_LEN,
                None,
            ),
            &[],
        );
        let queues = state.queue_count() as u64;
        config.add_capability(
            &virtio_cap(
                CFG_NOTIFY,
                modern_bar,
                region::NOTIFY,
                queues * u64::from(region::NOTIFY_MULTIPLIER),
                Some(region::NOTIFY_MULTIPLIER),
            ),
            &[],
        );
        config.add_capability(&virtio_cap(CFG_ISR, modern_bar, region::ISR, 1, None), &[]);
        config.add_capability(
            &virtio_cap(
                CFG_DEVICE,
                modern_bar,
                region::DEVICE,
                region::DEVICE_LEN,
                None,
            ),
            &[],
        );
        // PCI_CFG: bar, offset, length and the data window are the driver's to write.
        let mut wmask = vec![0u8; 20];
        wmask[PCI_CFG_BAR] = 0xff;
        wmask[PCI_CFG_OFFSET..].fill(0xff);
        let pci_cfg = config.add_capability(&virtio_cap(CFG_PCI, 0, 0, 0, Some(0)), &wmask);
        Self {
            config,
            state,
            msix,
            msix_control: msix_at + 2,
            ioevents,
            notify_at: None,
            modern_bar,
            legacy: legacy_io.is_some(),
            legacy_notify_at: None,
            pci_cfg,
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
            if v == 0 || s.claim(Interface::Modern, offset) || s.broken() {
                s.write_status(v as u32);
            }
            return;
        }
        // A broken device ignores everything but reset; a driver that used the legacy
        // interface since the last reset breaks the device here.
        if !s.claim(Interface::Modern, offset) {
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

    /// Register (or move) the legacy notify port's ioeventfds: one per queue on the same
    /// port, told apart by the queue index written.
    fn move_legacy_notify(&mut self, base: Option<u64>) {
        let at = base.map(|b| b + pci_legacy::reg::QUEUE_NOTIFY);
        if at == self.legacy_notify_at {
            return;
        }
        let Some(io) = &self.ioevents else { return };
        for q in 0..self.state.queue_count() {
            let Some(fd) = self.state.kick_fd(q) else {
                continue;
            };
            let value = q as u16;
            if let Some(old) = self.legacy_notify_at {
                if let Err(e) = io.unregister_pio(fd, old, value) {
                    tracing::warn!("queue {q}: removing the legacy notify ioeventfd failed: {e}");
                }
            }
            if let Some(new) = at {
                if let Err(e) = io.register_pio(fd, new, value) {
                    tracing::warn!(
                        "queue {q}: legacy notify ioeventfd failed ({e}); kicks exit to the VMM"
                    );
                }
            }
        }
        self.legacy_notify_at = at;
    }

    fn legacy_read(&mut self, offset: u64, data: &mut [u8]) {
        let msix = self.msix.enabled();
        let config = pci_legacy::config_offset(msix);
        if offset >= config {
            return self.state.device().read_config(offset - config, data);
        }
        let v = pci_legacy::read(&self.state, offset, data.len(), msix);
        let n = data.len();
        data.copy_from_slice(&v.to_le_bytes()[..n]);
    }

    fn legacy_write(&mut self, offset: u64, data: &[u8]) {
        let msix = self.msix.enabled();
        let config = pci_legacy::config_offset(msix);
        if offset >= config {
            if self.state.claim(Interface::Legacy, offset) {
                self.state.device_mut().write_config(offset - config, data);
            }
            return;
        }
        if let Legacy::SetVector(queue, v) = pci_legacy::write(&mut self.state, offset, data, msix)
        {
            self.set_vector(queue, v);
        }
    }

    /// The BAR access the PCI_CFG capability's fields describe, if they describe one the
    /// spec allows (length 1, 2 or 4, offset aligned to it); else None, with an event.
    fn pci_cfg_target(&self) -> Option<(usize, u64, usize)> {
        let at = self.pci_cfg;
        let bar = usize::from(self.config.read16(at + PCI_CFG_BAR) as u8);
        let offset = u64::from(self.config.read32(at + PCI_CFG_OFFSET));
        let len = self.config.read32(at + PCI_CFG_LENGTH) as usize;
        if matches!(len, 1 | 2 | 4) && offset % len as u64 == 0 && bar < 6 {
            return Some((bar, offset, len));
        }
        if len == 0 {
            // The window at rest (as built, or after a reset): a dump of configuration
            // space (lspci -xxx) reads it; nothing to access, nothing to report.
            return None;
        }
        self.ignored(
            "pci_cfg_access_invalid",
            format_args!(
                "VIRTIO_PCI_CAP_PCI_CFG access to BAR{bar} offset {offset:#x} length {len}: the length must be 1, 2 or 4 and the offset aligned to it"
            ),
        );
        None
    }

    fn pci_cfg_data(&self, offset: u64, len: usize) -> bool {
        let data = (self.pci_cfg + PCI_CFG_DATA) as u64;
        offset < data + 4 && data < offset + len as u64
    }
}

/// A little-endian guest access of up to 8 bytes as a number.
pub(super) fn le(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..data.len()].copy_from_slice(data);
    u64::from_le_bytes(b)
}

impl PciFunction for VirtioPci {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_read(&mut self, offset: u64, data: &mut [u8]) -> Result<(), ConfigError> {
        self.config.read(offset, data)?;
        if self.pci_cfg_data(offset, data.len()) {
            // A load of pci_cfg_data: the BAR access it stands for (§4.1.4.9.1); the
            // window holds the value in its first `length` bytes.
            let mut window = [0u8; 4];
            if let Some((bar, off, len)) = self.pci_cfg_target() {
                self.bar_read(bar, off, &mut window[..len]);
            }
            let at = (self.pci_cfg + PCI_CFG_DATA) as u64;
            for (i, b) in data.iter_mut().enumerate() {
                let o = offset + i as u64;
                if (at..at + 4).contains(&o) {
                    *b = window[(o - at) as usize];
                }
            }
        }
        Ok(())
    }

    fn config_write(&mut self, offset: u64, data: &[u8]) -> Result<(), ConfigError> {
        self.config.write(offset, data)?;
        let control = self.msix_control as u64;
        if offset < control + 2 && control < offset + data.len() as u64 {
            self.msix.set_control(self.config.read16(self.msix_control));
        }
        if self.pci_cfg_data(offset, data.len()) {
            // A store to pci_cfg_data: the BAR store it stands for, of `length` bytes.
            if let Some((bar, off, len)) = self.pci_cfg_target() {
                let mut window = [0u8; 4];
                let at = self.pci_cfg + PCI_CFG_DATA;
                for (i, b) in window.iter_mut().enumerate() {
                    *b = self.config.read16(at + i) as u8;
                }
                self.bar_write(bar, off, &window[..len]);
            }
        }
        Ok(())
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if self.legacy && bar == 0 && data.len() <= 4 && offset < LEGACY_BAR_SIZE {
            return self.legacy_read(offset, data);
        }
        if bar != self.modern_bar || data.len() > 8 {
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
        if self.legacy && bar == 0 && data.len() <= 4 && offset < LEGACY_BAR_SIZE {
            return self.legacy_write(offset, data);
        }
        if bar != self.modern_bar || data.len() > 8 {
            return;
        }
        match offset {
            o if o < region::COMMON_LEN => self.common_write(o, data.len(), le(data)),
            // (A write the claim refuses matches no other arm.)
            o if (region::DEVICE..region::DEVICE + region::DEVICE_LEN).contains(&o)
                && self.state.claim(Interface::Modern, o) =>
            {
                self.state
                    .device_mut()
                    .write_config(o - region::DEVICE, data)
            }
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
        if bar == self.modern_bar {
            self.move_notify(base);
        } else if self.legacy && bar == 0 {
            self.move_legacy_notify(base);
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
    use crate::devices::virtio::net::device::NET_FEATURES;
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
        /// KVM's side of the INTx resample EventFd: written at the guest's EOI.
        eoi: EventFd,
        _peer: std::os::fd::OwnedFd,
    }

    fn rig() -> Rig {
        rig_with(false)
    }

    fn rig_with(legacy: bool) -> Rig {
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
        let eoi = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let signals = Signals::with_msix(
            intx.try_clone().unwrap(),
            Some(eoi.try_clone().unwrap()),
            EventSink::to_writer(Box::new(events.clone())),
            "virtio-net",
            msix.clone(),
            2,
        );
        let state = VirtioState::new(Box::new(net), mem, signals).unwrap();
        Rig {
            f: if legacy {
                VirtioPci::transitional(state, 0xe010_0000, 0x6000, 23, msix, None)
            } else {
                VirtioPci::new(state, 0xe010_0000, 23, msix, None)
            },
            events,
            intx,
            eoi,
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

    /// Set MSI-X Enable in the function's MSI-X capability (entries stay as they are).
    fn enable_msix(f: &mut VirtioPci) {
        let control = f.msix_control as u64;
        f.config_write(
            control,
            &crate::devices::pci::msix::CONTROL_ENABLE.to_le_bytes(),
        )
        .unwrap();
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
        assert_eq!(seen, [0x111, 1, 2, 3, 4, 5]);
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
        enable_msix(&mut f);
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

    /// INTx is level-triggered: a raise while the line is still asserted (the previous
    /// interrupt in service) is absorbed by KVM, so at the guest's EOI (KVM writes the
    /// resample EventFd) the line is raised again while the ISR holds an unread bit. Without
    /// this, on a level-triggered IOAPIC input that interrupt would be lost. A lone raise is
    /// not repeated (a guest that EOIs before reading the ISR would get a second interrupt).
    #[test]
    fn an_intx_raise_absorbed_by_the_asserted_line_is_raised_again_at_the_eoi() {
        let Rig {
            mut f,
            intx,
            eoi,
            _peer,
            ..
        } = rig();
        bring_up(&mut f);
        let signals = f.state().signals().clone();
        assert!(signals.resample_fd().is_some());
        // One raise, delivered, then the EOI: nothing more.
        signals.signal_queue(0).unwrap();
        assert!(intx.read().is_ok());
        eoi.write(1).unwrap();
        signals.resample().unwrap();
        assert!(intx.read().is_err(), "a lone raise is not repeated");
        // A second raise while the first is in service, then the EOI: raised again.
        signals.signal_queue(0).unwrap();
        signals.signal_queue(1).unwrap();
        assert!(intx.read().is_ok());
        eoi.write(1).unwrap();
        signals.resample().unwrap();
        assert!(intx.read().is_ok(), "the absorbed raise comes back");
        assert!(eoi.read().is_err(), "the resample signal was consumed");
        // The re-raise is delivered; its EOI comes with nothing new: quiet.
        eoi.write(1).unwrap();
        signals.resample().unwrap();
        assert!(intx.read().is_err());
        // Two raises, but the driver read the ISR before the EOI: nothing to raise.
        signals.signal_queue(0).unwrap();
        signals.signal_queue(0).unwrap();
        assert!(intx.read().is_ok());
        assert_eq!(r(&mut f, region::ISR, 1), 1);
        eoi.write(1).unwrap();
        signals.resample().unwrap();
        assert!(intx.read().is_err(), "not raised after the ISR was read");
        // No EOI pending: a stray call raises nothing.
        signals.signal_queue(0).unwrap();
        signals.signal_queue(0).unwrap();
        assert!(intx.read().is_ok());
        signals.resample().unwrap();
        assert!(intx.read().is_err());
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

    use crate::devices::virtio::pci_legacy::reg as lreg;

    fn lw(f: &mut VirtioPci, off: u64, v: u64, len: usize) {
        f.bar_write(0, off, &v.to_le_bytes()[..len]);
    }
    fn lr(f: &mut VirtioPci, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        f.bar_read(0, off, &mut b[..len]);
        u64::from_le_bytes(b)
    }
    /// The MAC as a legacy driver reads it: byte by byte from the I/O BAR.
    fn legacy_mac(f: &mut VirtioPci, config: u64) -> [u8; 6] {
        let mut mac = [0u8; 6];
        for (i, b) in mac.iter_mut().enumerate() {
            *b = lr(f, config + i as u64, 1) as u8;
        }
        mac
    }
    fn error_kinds(events: &Events) -> Vec<String> {
        events
            .events("error")
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// The capability chain as (id or 0x100 | vendor cfg_type, BAR).
    fn capabilities(c: &ConfigSpace) -> Vec<(u16, u8)> {
        let mut at = usize::from(c.read16(0x34) as u8);
        let mut seen = Vec::new();
        while at != 0 {
            let id = c.read16(at) as u8;
            if id == CAP_VENDOR {
                seen.push((c.read16(at + 2) >> 8, c.read16(at + 4) as u8));
            } else {
                seen.push((0x100 | u16::from(id), (c.read32(at + 4) & 7) as u8));
            }
            at = usize::from((c.read16(at) >> 8) as u8);
        }
        seen
    }

    #[test]
    fn transitional_function_has_legacy_io_bar0_and_modern_regions_in_bar4() {
        let Rig { mut f, _peer, .. } = rig_with(true);
        let c = f.config();
        assert_eq!(c.read32(0), 0x1000_1af4, "transitional network device id");
        assert_eq!(c.read16(0x2e), 1, "subsystem id = device type");
        assert_eq!(c.read16(0x08) as u8, 0, "revision 0");
        let (def, base) = c.bar(0).unwrap();
        assert_eq!(
            (def.kind, def.size, base),
            (BarKind::Io, LEGACY_BAR_SIZE, 0x6000)
        );
        assert_eq!(
            c.bar(4).map(|(d, b)| (d.kind, b)),
            Some((BarKind::Memory64, 0xe010_0000))
        );
        assert_eq!(
            capabilities(c),
            [(0x111, 4), (1, 4), (2, 4), (3, 4), (4, 4), (5, 0)]
        );
        // Legacy registers: 32 feature bits (no VERSION_1), QueueNum = the maximum.
        let features = lr(&mut f, lreg::HOST_FEATURES, 4);
        assert_eq!(features, NET_FEATURES & 0xffff_ffff);
        lw(&mut f, lreg::QUEUE_SEL, 1, 2);
        assert_eq!(lr(&mut f, lreg::QUEUE_NUM, 2), 64);
        lw(&mut f, lreg::QUEUE_SEL, 2, 2);
        assert_eq!(lr(&mut f, lreg::QUEUE_NUM, 2), 0, "no queue 2");
        assert_eq!(
            legacy_mac(&mut f, lreg::CONFIG),
            MacAddr::DEFAULT.0,
            "device config at 20 without MSI-X"
        );
        let mut mac = [0u8; 6];
        // The modern common configuration is in BAR4.
        f.bar_read(4, region::DEVICE, &mut mac);
        assert_eq!(mac, MacAddr::DEFAULT.0);
    }

    fn legacy_bring_up(f: &mut VirtioPci) {
        lw(f, lreg::STATUS, u64::from(ACKNOWLEDGE | DRIVER), 1);
        lw(f, lreg::GUEST_FEATURES, 1 << 5, 4);
        for q in 0..2u64 {
            lw(f, lreg::QUEUE_SEL, q, 2);
            lw(f, lreg::QUEUE_PFN, 0x10 + q * 0x10, 4);
        }
        lw(
            f,
            lreg::STATUS,
            u64::from(ACKNOWLEDGE | DRIVER | DRIVER_OK),
            1,
        );
    }

    #[test]
    fn a_legacy_driver_brings_the_device_up_with_the_legacy_ring_layout() {
        let Rig {
            mut f,
            events,
            intx,
            _peer,
            ..
        } = rig_with(true);
        legacy_bring_up(&mut f);
        assert!(f.state().is_active(), "{:?}", error_kinds(&events));
        assert_eq!(
            lr(&mut f, lreg::STATUS, 1),
            u64::from(ACKNOWLEDGE | DRIVER | DRIVER_OK)
        );
        assert_eq!(f.state().driver_features(), 1 << 5, "no VERSION_1");
        lw(&mut f, lreg::QUEUE_SEL, 1, 2);
        assert_eq!(lr(&mut f, lreg::QUEUE_PFN, 4), 0x20);
        let q = *f.state().selected_queue().unwrap();
        // 64 entries at 0x20000: desc 1 KiB, avail right after, used at the next page.
        assert_eq!(
            (q.size, q.desc_table, q.avail_ring, q.used_ring),
            (64, 0x20000, 0x20400, 0x21000)
        );
        // INTx and the ISR register.
        f.state().signals().signal_queue(0).unwrap();
        assert!(intx.read().is_ok());
        assert_eq!(lr(&mut f, lreg::ISR, 1), 1);
        assert_eq!(lr(&mut f, lreg::ISR, 1), 0, "reading the ISR clears it");
        // With MSI-X enabled the vectors sit at 20/22 and the device config moves to 24.
        enable_msix(&mut f);
        lw(&mut f, lreg::QUEUE_SEL, 0, 2);
        lw(&mut f, lreg::QUEUE_VECTOR, 1, 2);
        lw(&mut f, lreg::CONFIG_VECTOR, 0, 2);
        assert_eq!(lr(&mut f, lreg::QUEUE_VECTOR, 2), 1);
        assert_eq!(lr(&mut f, lreg::CONFIG_VECTOR, 2), 0);
        assert_eq!(legacy_mac(&mut f, lreg::CONFIG_MSIX), MacAddr::DEFAULT.0);
        assert!(
            events.events("error").is_empty(),
            "{:?}",
            error_kinds(&events)
        );
        // Reset through the legacy status register.
        lw(&mut f, lreg::STATUS, 0, 1);
        assert!(!f.state().is_active());
        assert_eq!(lr(&mut f, lreg::QUEUE_PFN, 4), 0);
    }

    #[test]
    fn bad_legacy_register_values_are_refused_with_an_event_and_mixing_interfaces_needs_reset() {
        let Rig {
            mut f,
            events,
            _peer,
            ..
        } = rig_with(true);
        let needs_reset =
            |f: &mut VirtioPci| lr(f, lreg::STATUS, 1) & u64::from(DEVICE_NEEDS_RESET) != 0;
        lw(&mut f, lreg::STATUS, u64::from(ACKNOWLEDGE | DRIVER), 1);
        // Read-only registers, odd widths, a queue that does not exist: ignored.
        lw(&mut f, lreg::HOST_FEATURES, 0, 4);
        lw(&mut f, lreg::QUEUE_NUM, 16, 2);
        lw(&mut f, lreg::QUEUE_PFN, 0x10, 2);
        lw(&mut f, lreg::CONFIG_VECTOR, 0, 2); // no MSI-X: device config, read-only MAC
        lw(&mut f, lreg::QUEUE_SEL, 7, 2);
        lw(&mut f, lreg::QUEUE_PFN, 0x10, 4);
        f.bar_write(0, 0, &[0; 8]);
        f.bar_write(0, LEGACY_BAR_SIZE + 4, &[0; 4]);
        assert!(!needs_reset(&mut f));
        assert_eq!(
            error_kinds(&events),
            [
                "legacy_register_write_ignored",
                "legacy_register_write_ignored",
                "legacy_register_write_ignored",
                "legacy_queue_select_out_of_range"
            ]
        );
        // A PFN whose rings leave guest memory (1 MiB here): NEEDS_RESET.
        lw(&mut f, lreg::QUEUE_SEL, 0, 2);
        lw(&mut f, lreg::QUEUE_PFN, 0xffff_ffff, 4);
        assert!(needs_reset(&mut f));
        lw(&mut f, lreg::STATUS, 0, 1);
        assert!(!needs_reset(&mut f));
        // Features the device does not offer: NEEDS_RESET.
        lw(&mut f, lreg::STATUS, u64::from(ACKNOWLEDGE | DRIVER), 1);
        lw(&mut f, lreg::GUEST_FEATURES, 1 << 30, 4);
        assert!(needs_reset(&mut f));
        lw(&mut f, lreg::STATUS, 0, 1);
        // DRIVER_OK with a queue not placed: NEEDS_RESET, the device stays down.
        lw(&mut f, lreg::STATUS, u64::from(ACKNOWLEDGE | DRIVER), 1);
        lw(
            &mut f,
            lreg::STATUS,
            u64::from(ACKNOWLEDGE | DRIVER | DRIVER_OK),
            1,
        );
        assert!(needs_reset(&mut f) && !f.state().is_active());
        lw(&mut f, lreg::STATUS, 0, 1);
        // Legacy, then modern, without a reset between: NEEDS_RESET, modern write dropped.
        lw(&mut f, lreg::STATUS, u64::from(ACKNOWLEDGE | DRIVER), 1);
        f.bar_write(4, common::DRIVER_FEATURE_SELECT, &1u32.to_le_bytes());
        assert!(needs_reset(&mut f));
        assert_eq!(r4(&mut f, common::DRIVER_FEATURE_SELECT, 4), 0);
        lw(&mut f, lreg::STATUS, 0, 1);
        // Modern, then legacy: the same.
        f.bar_write(4, common::DEVICE_STATUS, &[ACKNOWLEDGE as u8]);
        lw(&mut f, lreg::GUEST_FEATURES, 1 << 5, 4);
        assert!(needs_reset(&mut f));
        let kinds = error_kinds(&events);
        assert_eq!(
            kinds[4..],
            [
                "ring_outside_memory",
                "legacy_features_not_offered",
                "queue_not_ready",
                "legacy_and_modern_mixed",
                "legacy_and_modern_mixed"
            ],
            "{kinds:?}"
        );
        // After reset a modern driver can use the transitional function.
        f.bar_write(4, common::DEVICE_STATUS, &[0]);
        assert!(!needs_reset(&mut f));
    }

    fn r4(f: &mut VirtioPci, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        f.bar_read(4, off, &mut b[..len]);
        u64::from_le_bytes(b)
    }

    /// Read the PCI_CFG window: program bar/offset/length, load pci_cfg_data.
    fn cfg_window_read(f: &mut VirtioPci, bar: u8, offset: u32, len: u32) -> u32 {
        let at = f.pci_cfg as u64;
        f.config_write(at + PCI_CFG_BAR as u64, &[bar]).unwrap();
        f.config_write(at + PCI_CFG_OFFSET as u64, &offset.to_le_bytes())
            .unwrap();
        f.config_write(at + PCI_CFG_LENGTH as u64, &len.to_le_bytes())
            .unwrap();
        let mut b = [0u8; 4];
        f.config_read(at + PCI_CFG_DATA as u64, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    fn cfg_window_write(f: &mut VirtioPci, bar: u8, offset: u32, len: u32, v: u32) {
        let at = f.pci_cfg as u64;
        f.config_write(at + PCI_CFG_BAR as u64, &[bar]).unwrap();
        f.config_write(at + PCI_CFG_OFFSET as u64, &offset.to_le_bytes())
            .unwrap();
        f.config_write(at + PCI_CFG_LENGTH as u64, &len.to_le_bytes())
            .unwrap();
        f.config_write(at + PCI_CFG_DATA as u64, &v.to_le_bytes())
            .unwrap();
    }

    #[test]
    fn the_pci_cfg_window_reaches_the_bars_in_both_layouts() {
        for legacy in [false, true] {
            let Rig {
                mut f,
                events,
                _peer,
                ..
            } = rig_with(legacy);
            let bar = if legacy { 4 } else { 0 };
            assert_eq!(
                cfg_window_read(&mut f, bar, common::NUM_QUEUES as u32, 2),
                2,
                "legacy={legacy}"
            );
            assert_eq!(
                cfg_window_read(&mut f, bar, region::DEVICE as u32, 4),
                u32::from_le_bytes(MacAddr::DEFAULT.0[..4].try_into().unwrap())
            );
            cfg_window_write(&mut f, bar, common::DEVICE_STATUS as u32, 1, ACKNOWLEDGE);
            assert_eq!(f.state().status(), ACKNOWLEDGE);
            if legacy {
                assert_eq!(
                    cfg_window_read(&mut f, 0, lreg::HOST_FEATURES as u32, 4) as u64,
                    NET_FEATURES & 0xffff_ffff
                );
            }
            // A length the spec does not allow, or a misaligned offset: nothing, an event.
            assert_eq!(cfg_window_read(&mut f, bar, 0, 3), 0);
            assert_eq!(cfg_window_read(&mut f, bar, 1, 2), 0);
            cfg_window_write(&mut f, bar, common::DEVICE_STATUS as u32, 8, 0);
            assert_eq!(
                f.state().status(),
                ACKNOWLEDGE,
                "no reset through a bad window"
            );
            assert_eq!(
                error_kinds(&events),
                ["pci_cfg_access_invalid"; 3],
                "legacy={legacy}"
            );
        }
    }
}
