//! What the VMM told us at entry: the boot protocol, the command line and the memory map.
//!
//! `boot.s` stores the protocol and the guest-physical address of the boot structure in
//! the statics below; everything is reachable through the identity map.

use core::sync::atomic::{AtomicU64, Ordering};

pub use probe::pci_rules::RamRanges;

/// 1 = Linux 64-bit boot protocol (rsi = boot_params), 2 = PVH (ebx = hvm_start_info).
#[no_mangle]
pub static PROBE_BOOT_PROTOCOL: AtomicU64 = AtomicU64::new(0);
/// Guest-physical address of boot_params or hvm_start_info.
#[no_mangle]
pub static PROBE_BOOT_INFO: AtomicU64 = AtomicU64::new(0);

/// Highest address the identity map covers (4 GiB).
const MAPPED_LIMIT: u64 = 1 << 32;
/// Longest command line we read.
const MAX_CMDLINE: usize = 4096;

// boot_params (Linux Documentation/arch/x86/zero-page.rst).
const BP_ACPI_RSDP_ADDR: u64 = 0x070;
const BP_EXT_CMD_LINE_PTR: u64 = 0x0c8;
const BP_E820_ENTRIES: u64 = 0x1e8;
const BP_CMD_LINE_PTR: u64 = 0x228;
const BP_E820_TABLE: u64 = 0x2d0;
const BP_E820_MAX: u64 = 128;
const E820_ENTRY_SIZE: u64 = 20;

// hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h).
const PVH_MAGIC: u32 = 0x336e_c578;
const PVH_VERSION: u64 = 0x04;
const PVH_CMDLINE_PADDR: u64 = 0x18;
const PVH_RSDP_PADDR: u64 = 0x20;
const PVH_MEMMAP_PADDR: u64 = 0x28;
const PVH_MEMMAP_ENTRIES: u64 = 0x30;
const PVH_MEMMAP_ENTRY_SIZE: u64 = 24;
const PVH_MEMMAP_MAX: u64 = 128;

/// E820 / PVH memory type of usable RAM.
const MEMORY_TYPE_RAM: u32 = 1;

/// The boot protocol the VMM used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    /// Linux x86-64 64-bit boot protocol, boot_params in rsi.
    Linux64,
    /// PVH, hvm_start_info in ebx.
    Pvh,
}

impl BootProtocol {
    /// Name used in agent lines.
    pub fn name(self) -> &'static str {
        match self {
            BootProtocol::Linux64 => "linux64",
            BootProtocol::Pvh => "pvh",
        }
    }
}

/// Why the boot information is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// The entry code recorded no known boot protocol.
    UnknownProtocol(u64),
    /// A boot structure lies outside the mapped 4 GiB or at address 0.
    BadAddress(u64),
    /// hvm_start_info has the wrong magic number.
    BadPvhMagic(u32),
    /// The command line is not valid UTF-8.
    CmdlineNotUtf8,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootInfoError::UnknownProtocol(p) => write!(f, "unknown boot protocol {p}"),
            BootInfoError::BadAddress(a) => {
                write!(
                    f,
                    "boot structure at {a:#x} is outside guest memory below 4 GiB"
                )
            }
            BootInfoError::BadPvhMagic(m) => {
                write!(f, "hvm_start_info magic {m:#x} is not 0x336ec578")
            }
            BootInfoError::CmdlineNotUtf8 => write!(f, "the kernel command line is not UTF-8"),
        }
    }
}

/// The boot information, read once.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    /// How we were entered.
    pub protocol: BootProtocol,
    /// The kernel command line (empty if none was given).
    pub cmdline: &'static str,
    /// Usable RAM in bytes according to the memory map.
    pub ram_bytes: u64,
    /// Entries in the memory map.
    pub memory_map_entries: u64,
    /// The ACPI RSDP's address if the boot protocol gave one.
    pub rsdp: Option<u64>,
    /// The usable RAM ranges (the first [`MAX_RAM_RANGES`]).
    pub ram: RamRanges,
}

/// Read the boot information the entry code recorded.
pub fn read() -> Result<BootInfo, BootInfoError> {
    let info = PROBE_BOOT_INFO.load(Ordering::Relaxed);
    match PROBE_BOOT_PROTOCOL.load(Ordering::Relaxed) {
        1 => read_linux(info),
        2 => read_pvh(info),
        other => Err(BootInfoError::UnknownProtocol(other)),
    }
}

fn read_linux(params: u64) -> Result<BootInfo, BootInfoError> {
    check_range(params, 4096)?;
    let cmdline_addr = u64::from(read_u32(params + BP_CMD_LINE_PTR))
        | (u64::from(read_u32(params + BP_EXT_CMD_LINE_PTR)) << 32);
    let cmdline = read_cmdline(cmdline_addr)?;
    let entries = u64::from(read_u8(params + BP_E820_ENTRIES)).min(BP_E820_MAX);
    let mut ram_bytes = 0u64;
    let mut ram = RamRanges::default();
    for i in 0..entries {
        let entry = params + BP_E820_TABLE + i * E820_ENTRY_SIZE;
        if read_u32(entry + 16) == MEMORY_TYPE_RAM {
            ram_bytes = ram_bytes.saturating_add(read_u64(entry + 8));
            ram.push(read_u64(entry), read_u64(entry + 8));
        }
    }
    let rsdp = read_u64(params + BP_ACPI_RSDP_ADDR);
    Ok(BootInfo {
        protocol: BootProtocol::Linux64,
        cmdline,
        ram_bytes,
        memory_map_entries: entries,
        rsdp: (rsdp != 0).then_some(rsdp),
        ram,
    })
}

fn read_pvh(start_info: u64) -> Result<BootInfo, BootInfoError> {
    check_range(start_info, 0x38)?;
    let magic = read_u32(start_info);
    if magic != PVH_MAGIC {
        return Err(BootInfoError::BadPvhMagic(magic));
    }
    let cmdline = read_cmdline(read_u64(start_info + PVH_CMDLINE_PADDR))?;
    let mut ram_bytes = 0u64;
    let mut ram = RamRanges::default();
    let mut entries = 0;
    if read_u32(start_info + PVH_VERSION) >= 1 {
        let map = read_u64(start_info + PVH_MEMMAP_PADDR);
        entries = u64::from(read_u32(start_info + PVH_MEMMAP_ENTRIES)).min(PVH_MEMMAP_MAX);
        if entries > 0 {
            check_range(map, entries * PVH_MEMMAP_ENTRY_SIZE)?;
        }
        for i in 0..entries {
            let entry = map + i * PVH_MEMMAP_ENTRY_SIZE;
            if read_u32(entry + 16) == MEMORY_TYPE_RAM {
                ram_bytes = ram_bytes.saturating_add(read_u64(entry + 8));
                ram.push(read_u64(entry), read_u64(entry + 8));
            }
        }
    }
    let rsdp = read_u64(start_info + PVH_RSDP_PADDR);
    Ok(BootInfo {
        protocol: BootProtocol::Pvh,
        cmdline,
        ram_bytes,
        memory_map_entries: entries,
        rsdp: (rsdp != 0).then_some(rsdp),
        ram,
    })
}

/// Read the NUL-terminated command line at `addr` (0 means none).
fn read_cmdline(addr: u64) -> Result<&'static str, BootInfoError> {
    if addr == 0 {
        return Ok("");
    }
    check_range(addr, 1)?;
    let limit = (MAPPED_LIMIT - addr).min(MAX_CMDLINE as u64) as usize;
    let mut len = 0;
    while len < limit && read_u8(addr + len as u64) != 0 {
        len += 1;
    }
    // SAFETY: [addr, addr + len) is identity-mapped guest memory below 4 GiB (checked),
    // which nothing writes after boot; we only read it.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    core::str::from_utf8(bytes).map_err(|_| BootInfoError::CmdlineNotUtf8)
}

fn check_range(addr: u64, len: u64) -> Result<(), BootInfoError> {
    if addr == 0 || addr.checked_add(len).is_none_or(|end| end > MAPPED_LIMIT) {
        return Err(BootInfoError::BadAddress(addr));
    }
    Ok(())
}

fn read_u8(addr: u64) -> u8 {
    // SAFETY: callers check the range lies in the identity map below 4 GiB.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

fn read_u32(addr: u64) -> u32 {
    // SAFETY: as for read_u8; unaligned reads are fine on x86.
    unsafe { core::ptr::read_unaligned(addr as *const u32) }
}

fn read_u64(addr: u64) -> u64 {
    // SAFETY: as for read_u8.
    unsafe { core::ptr::read_unaligned(addr as *const u64) }
}
