//! The legacy register block of a transitional virtio-pci function (virtio 1.x §4.1.4.8
//! "Legacy Interfaces: A Note on PCI Device Layout"), in the function's I/O BAR0:
//!
//! ```text
//!  0  host features (32 bits, RO)      12  queue num (16, RO: the maximum size)
//!  4  guest features (32)              14  queue select (16)
//!  8  queue PFN (32)                   16  queue notify (16; a PIO ioeventfd per queue)
//! 18  device status (8)                19  ISR status (8; reading clears it)
//! 20  with MSI-X enabled: config vector (16), 22 queue vector (16), device config at 24
//!     without MSI-X: device config at 20
//! ```
//!
//! Registers decode onto [`VirtioState`]'s legacy operations; every value the guest writes
//! is checked there (queue select out of range, a PFN whose rings leave guest memory,
//! features not offered). The device is little-endian like its x86 guests, so "guest
//! endian" fields need no conversion.

use super::pci::le;
use super::transport::{Interface, VirtioState};

/// Size of the I/O BAR (the registers and the device configuration; a power of two).
pub const LEGACY_BAR_SIZE: u64 = 0x40;

/// Register offsets.
#[allow(missing_docs)]
pub mod reg {
    pub const HOST_FEATURES: u64 = 0;
    pub const GUEST_FEATURES: u64 = 4;
    pub const QUEUE_PFN: u64 = 8;
    pub const QUEUE_NUM: u64 = 12;
    pub const QUEUE_SEL: u64 = 14;
    pub const QUEUE_NOTIFY: u64 = 16;
    pub const STATUS: u64 = 18;
    pub const ISR: u64 = 19;
    pub const CONFIG_VECTOR: u64 = 20;
    pub const QUEUE_VECTOR: u64 = 22;
    /// Device configuration without MSI-X.
    pub const CONFIG: u64 = 20;
    /// Device configuration with MSI-X enabled.
    pub const CONFIG_MSIX: u64 = 24;
}

/// What a legacy access touches besides the transport state.
pub enum Legacy {
    /// A write to the configuration vector (None) or the selected queue's (Some).
    SetVector(Option<usize>, u16),
    /// Nothing more to do.
    Done,
}

/// Where the device configuration starts: after the vectors while MSI-X is enabled.
pub fn config_offset(msix_enabled: bool) -> u64 {
    if msix_enabled {
        reg::CONFIG_MSIX
    } else {
        reg::CONFIG
    }
}

/// A guest load of `len` bytes at `offset` of the legacy block (offset below the device
/// configuration). Returns the value; unknown offsets and widths read as 0.
pub fn read(state: &VirtioState, offset: u64, len: usize, msix_enabled: bool) -> u64 {
    let s = state;
    match (offset, len) {
        (reg::HOST_FEATURES, 4) => s.device().device_features() & 0xffff_ffff,
        (reg::GUEST_FEATURES, 4) => s.driver_features() & 0xffff_ffff,
        (reg::QUEUE_PFN, 4) => s
            .selected_queue()
            .filter(|q| q.ready)
            .map_or(0, |q| q.desc_table / super::transport::LEGACY_PAGE),
        (reg::QUEUE_NUM, 2) => u64::from(s.queue_num_max()),
        (reg::QUEUE_SEL, 2) => u64::from(s.queue_sel),
        (reg::STATUS, 1) => u64::from(s.status() as u8),
        (reg::ISR, 1) => u64::from(s.signals().take_interrupt_status() as u8),
        (reg::CONFIG_VECTOR, 2) if msix_enabled => u64::from(s.signals().vector(None)),
        (reg::QUEUE_VECTOR, 2) if msix_enabled => {
            let q = s.queue_sel as usize;
            if q < s.queue_count() {
                u64::from(s.signals().vector(Some(q)))
            } else {
                u64::from(crate::devices::pci::msix::NO_VECTOR)
            }
        }
        _ => 0,
    }
}

/// A guest store of `data` at `offset` of the legacy block (below the device
/// configuration). Vector writes are returned for the caller (which owns MSI-X).
pub fn write(state: &mut VirtioState, offset: u64, data: &[u8], msix_enabled: bool) -> Legacy {
    let v = le(data);
    let s = state;
    if (offset, data.len()) == (reg::STATUS, 1) {
        if v == 0 {
            s.write_status(0);
        } else if s.claim(Interface::Legacy, offset) || s.broken() {
            // A broken device still takes FAILED (write_status filters it).
            s.write_status(v as u32);
        }
        return Legacy::Done;
    }
    if (offset, data.len()) == (reg::QUEUE_NOTIFY, 2) {
        // Reached only without the ioeventfd (or for a queue index it does not match).
        s.notify(v as u32);
        return Legacy::Done;
    }
    let known = matches!(
        (offset, data.len()),
        (reg::GUEST_FEATURES, 4) | (reg::QUEUE_PFN, 4) | (reg::QUEUE_SEL, 2)
    ) || (msix_enabled
        && matches!(
            (offset, data.len()),
            (reg::CONFIG_VECTOR, 2) | (reg::QUEUE_VECTOR, 2)
        ));
    if !known {
        s.signals().ignored(
            "legacy_register_write_ignored",
            &format_args!(
                "write of {} bytes at legacy register {offset:#x} (read-only, or not a register of that width)",
                data.len()
            ),
        );
        return Legacy::Done;
    }
    if !s.claim(Interface::Legacy, offset) {
        return Legacy::Done;
    }
    match offset {
        reg::GUEST_FEATURES => s.legacy_write_features(offset, v as u32),
        reg::QUEUE_PFN => s.legacy_write_pfn(offset, v as u32),
        reg::QUEUE_SEL => s.queue_sel = v as u32,
        reg::CONFIG_VECTOR => return Legacy::SetVector(None, v as u16),
        _ => {
            let q = s.queue_sel as usize;
            if q < s.queue_count() {
                return Legacy::SetVector(Some(q), v as u16);
            }
            s.signals().ignored(
                "legacy_queue_select_out_of_range",
                &format_args!(
                    "queue vector written with QueueSel {q}: the device has {} queues",
                    s.queue_count()
                ),
            );
        }
    }
    Legacy::Done
}
