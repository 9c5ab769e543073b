//! PCI configuration space: ECAM (from ACPI MCFG) or the 0xCF8/0xCFC ports (from ring 3
//! through the TSS I/O bitmap), a scan of bus 0, capability lists (with a bound, so a
//! looping list is an error, not a hang), and BARs: as the firmware left them, or
//! assigned here from a window where no firmware ran.

use core::ptr::{read_volatile, write_volatile};

use crate::port;
use probe::pci_rules::walk_capabilities;
pub use probe::pci_rules::Capabilities;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// Offsets in the configuration header.
pub mod reg {
    /// Vendor ID (16 bits).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device ID (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command (16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Status (16 bits).
    pub const STATUS: u16 = 0x06;
    /// Header type (8 bits; bit 7 = multi-function).
    pub const HEADER_TYPE: u16 = 0x0e;
    /// BAR 0; BAR n is at 0x10 + 4n.
    pub const BAR0: u16 = 0x10;
    /// Subsystem ID (16 bits).
    pub const SUBSYSTEM_ID: u16 = 0x2e;
    /// Capabilities pointer (8 bits).
    pub const CAPABILITIES: u16 = 0x34;
    /// Interrupt line (8 bits, written by firmware).
    pub const INTERRUPT_LINE: u16 = 0x3c;
    /// Interrupt pin (8 bits, 1 = INTA).
    pub const INTERRUPT_PIN: u16 = 0x3d;
}

/// Command register bits.
pub mod command {
    /// I/O space decoding.
    pub const IO: u16 = 1 << 0;
    /// Memory space decoding.
    pub const MEMORY: u16 = 1 << 1;
    /// Bus mastering (DMA, and MSI writes).
    pub const BUS_MASTER: u16 = 1 << 2;
    /// INTx disabled.
    pub const INTX_DISABLE: u16 = 1 << 10;
}

const STATUS_CAPABILITIES: u16 = 1 << 4;

/// A PCI function's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Bus.
    pub bus: u8,
    /// Device (0-31).
    pub device: u8,
    /// Function (0-7).
    pub function: u8,
}

impl core::fmt::Display for Function {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// How configuration space is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigAccess {
    /// Memory-mapped (PCI Express ECAM) at `base` (the address of bus 0).
    Ecam {
        /// Base address from MCFG.
        base: u64,
    },
    /// Configuration mechanism #1, ports 0xCF8/0xCFC.
    Ports,
}

impl ConfigAccess {
    /// The name used in agent lines.
    pub fn name(&self) -> &'static str {
        match self {
            ConfigAccess::Ecam { .. } => "ecam",
            ConfigAccess::Ports => "ports",
        }
    }

    fn ecam_address(base: u64, f: Function, offset: u16) -> usize {
        (base
            + (u64::from(f.bus) << 20)
            + (u64::from(f.device) << 15)
            + (u64::from(f.function) << 12)
            + u64::from(offset)) as usize
    }

    fn select(f: Function, offset: u16) {
        let address = 0x8000_0000
            | (u32::from(f.bus) << 16)
            | (u32::from(f.device) << 11)
            | (u32::from(f.function) << 8)
            | u32::from(offset & 0xfc);
        port::outl(CONFIG_ADDRESS, address);
    }

    /// Read 32 bits at a 4-aligned offset.
    pub fn read32(&self, f: Function, offset: u16) -> u32 {
        match *self {
            // SAFETY: ECAM lies below 4 GiB (checked by acpi.rs), identity-mapped;
            // aligned 32-bit access as ECAM requires.
            ConfigAccess::Ecam { base } => unsafe {
                read_volatile(Self::ecam_address(base, f, offset & !3) as *const u32)
            },
            ConfigAccess::Ports => {
                Self::select(f, offset);
                port::inl(CONFIG_DATA)
            }
        }
    }

    /// Write 32 bits at a 4-aligned offset.
    pub fn write32(&self, f: Function, offset: u16, value: u32) {
        match *self {
            // SAFETY: as for read32.
            ConfigAccess::Ecam { base } => unsafe {
                write_volatile(Self::ecam_address(base, f, offset & !3) as *mut u32, value)
            },
            ConfigAccess::Ports => {
                Self::select(f, offset);
                port::outl(CONFIG_DATA, value);
            }
        }
    }

    /// Read 16 bits at a 2-aligned offset.
    pub fn read16(&self, f: Function, offset: u16) -> u16 {
        (self.read32(f, offset) >> ((offset & 2) * 8)) as u16
    }

    /// Read 8 bits.
    pub fn read8(&self, f: Function, offset: u16) -> u8 {
        (self.read32(f, offset) >> ((offset & 3) * 8)) as u8
    }

    /// Write 16 bits at a 2-aligned offset (a real 16-bit access: no read-modify-write
    /// of the neighbouring register).
    pub fn write16(&self, f: Function, offset: u16, value: u16) {
        match *self {
            // SAFETY: as for read32; aligned 16-bit access.
            ConfigAccess::Ecam { base } => unsafe {
                write_volatile(Self::ecam_address(base, f, offset & !1) as *mut u16, value)
            },
            ConfigAccess::Ports => {
                Self::select(f, offset);
                port::outw(CONFIG_DATA + (offset & 2), value);
            }
        }
    }

    /// Whether anything answers at `f`.
    pub fn present(&self, f: Function) -> bool {
        self.read16(f, reg::VENDOR_ID) != 0xffff
    }
}

/// What is wrong with a PCI function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciError {
    /// The capability list does not end (or points into the header).
    CapabilityLoop(Function),
    /// A BAR lies above the identity map (4 GiB).
    BarAbove4G(Function, u8, u64),
    /// A BAR overlaps guest RAM.
    BarOverlapsRam(Function, u8, u64, u64),
    /// A BAR the driver needs is of the wrong kind (I/O vs memory) or missing.
    BadBar(Function, u8),
    /// The window for self-assigned BARs is exhausted.
    WindowFull(Function, u8, u64),
}

impl core::fmt::Display for PciError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            PciError::CapabilityLoop(fun) => {
                write!(
                    f,
                    "{fun}: the capability list loops or points into the header"
                )
            }
            PciError::BarAbove4G(fun, bar, base) => write!(
                f,
                "{fun}: BAR{bar} at {base:#x} lies above 4 GiB (the probe maps 4 GiB)"
            ),
            PciError::BarOverlapsRam(fun, bar, base, size) => write!(
                f,
                "{fun}: BAR{bar} at {base:#x} (+{size:#x}) overlaps guest RAM"
            ),
            PciError::BadBar(fun, bar) => {
                write!(f, "{fun}: BAR{bar} is missing or of the wrong kind")
            }
            PciError::WindowFull(fun, bar, size) => write!(
                f,
                "{fun}: no room for BAR{bar} ({size:#x} bytes) in the PCI window"
            ),
        }
    }
}

/// A decoded BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    /// Not implemented.
    None,
    /// Memory space.
    Memory {
        /// Base address (0 when unassigned).
        base: u64,
        /// Size in bytes.
        size: u64,
        /// A 64-bit BAR (it uses the next register too).
        wide: bool,
    },
    /// I/O space.
    Io {
        /// Base port (0 when unassigned).
        base: u32,
        /// Size in ports.
        size: u32,
    },
}

/// Read (and size) BAR `index`. Decoding is off while sizing.
pub fn read_bar(access: &ConfigAccess, f: Function, index: u8) -> Bar {
    if index > 5 {
        return Bar::None;
    }
    let offset = reg::BAR0 + 4 * u16::from(index);
    let original = access.read32(f, offset);
    let command = access.read16(f, reg::COMMAND);
    access.write16(f, reg::COMMAND, command & !(command::IO | command::MEMORY));
    access.write32(f, offset, 0xffff_ffff);
    let mask = access.read32(f, offset);
    access.write32(f, offset, original);
    let bar = if original & 1 == 1 {
        let size = (!(mask & !3)).wrapping_add(1) & 0xffff;
        if mask == 0 || size == 0 {
            Bar::None
        } else {
            Bar::Io {
                base: original & !3,
                size,
            }
        }
    } else {
        let wide = (original >> 1) & 3 == 2 && index < 5;
        let (base, mask) = if wide {
            let high_offset = offset + 4;
            let high = access.read32(f, high_offset);
            access.write32(f, high_offset, 0xffff_ffff);
            let high_mask = access.read32(f, high_offset);
            access.write32(f, high_offset, high);
            (
                (u64::from(high) << 32) | u64::from(original & !0xf),
                (u64::from(high_mask) << 32) | u64::from(mask & !0xf),
            )
        } else {
            (
                u64::from(original & !0xf),
                0xffff_ffff_0000_0000 | u64::from(mask & !0xf),
            )
        };
        if mask & 0xffff_ffff == 0 && !wide {
            Bar::None
        } else {
            let size = (!mask).wrapping_add(1);
            if size == 0 {
                Bar::None
            } else {
                Bar::Memory { base, size, wide }
            }
        }
    };
    access.write16(f, reg::COMMAND, command);
    bar
}

/// Program memory BAR `index` to `base`.
pub fn write_memory_bar(access: &ConfigAccess, f: Function, index: u8, base: u64, wide: bool) {
    let offset = reg::BAR0 + 4 * u16::from(index);
    let low = access.read32(f, offset) & 0xf;
    access.write32(f, offset, (base as u32 & !0xf) | low);
    if wide {
        access.write32(f, offset + 4, (base >> 32) as u32);
    }
}

/// A bump allocator for BARs where no firmware assigned them.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    next: u64,
    end: u64,
}

impl Window {
    /// `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Window { next: start, end }
    }

    /// Take a naturally aligned block of `size` bytes.
    pub fn take(&mut self, size: u64) -> Option<u64> {
        let size = size.max(4096);
        let base = self.next.checked_add(size - 1)? & !(size - 1);
        let end = base.checked_add(size)?;
        (end <= self.end).then(|| {
            self.next = end;
            base
        })
    }
}

/// Walk the capability list, refusing one that loops (`probe::pci_rules`).
pub fn capabilities(access: &ConfigAccess, f: Function) -> Result<Capabilities, PciError> {
    if access.read16(f, reg::STATUS) & STATUS_CAPABILITIES == 0 {
        return walk_capabilities(0, |_| 0).map_err(|_| PciError::CapabilityLoop(f));
    }
    walk_capabilities(access.read8(f, reg::CAPABILITIES), |offset| {
        access.read8(f, offset)
    })
    .map_err(|_| PciError::CapabilityLoop(f))
}

/// Every function on bus 0 that answers, with its vendor and device IDs.
pub fn scan_bus0(access: &ConfigAccess, mut visit: impl FnMut(Function, u16, u16)) {
    for device in 0..32u8 {
        for function in 0..8u8 {
            let f = Function {
                bus: 0,
                device,
                function,
            };
            if !access.present(f) {
                if function == 0 {
                    break;
                }
                continue;
            }
            visit(
                f,
                access.read16(f, reg::VENDOR_ID),
                access.read16(f, reg::DEVICE_ID),
            );
            if function == 0 && access.read8(f, reg::HEADER_TYPE) & 0x80 == 0 {
                break;
            }
        }
    }
}
