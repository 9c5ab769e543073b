//! Just enough ACPI to find PCI Express ECAM: the RSDP (from the boot protocol, or by
//! scanning the EBDA and the BIOS area 0xE0000-0xFFFFF as the ACPI spec describes),
//! the RSDT/XSDT, and the MCFG table's entry for segment 0. Every table is checked
//! (signature, length, checksum) before it is believed.

/// Highest address the identity map covers.
const MAPPED_LIMIT: u64 = 1 << 32;
/// Largest table we read.
const MAX_TABLE_LEN: u32 = 64 * 1024;
/// Entries of the RSDT/XSDT we look at.
const MAX_TABLES: u32 = 64;

/// ECAM for PCI segment 0, from the MCFG table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecam {
    /// The configuration space base as MCFG states it (the address bus 0 would have).
    pub base: u64,
    /// First bus decoded.
    pub start_bus: u8,
    /// Last bus decoded.
    pub end_bus: u8,
}

/// Where the RSDP was found, and the MCFG's ECAM if there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiInfo {
    /// The RSDP's address.
    pub rsdp: u64,
    /// How it was found: `boot_info` or `bios_scan`.
    pub found_by: &'static str,
    /// ECAM of segment 0, if an MCFG describes it.
    pub ecam: Option<Ecam>,
    /// Signatures of the tables the RSDT/XSDT lists (the first 16), for the report.
    pub tables: [[u8; 4]; 16],
    /// How many of `tables` are filled.
    pub table_count: usize,
}

impl AcpiInfo {
    /// The signatures found, as text ("FACP APIC ...").
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables[..self.table_count]
            .iter()
            .map(|s| core::str::from_utf8(s).unwrap_or("????"))
    }
}

/// Find the RSDP (`hint` from the boot protocol first) and the MCFG. None if there is
/// no valid RSDP.
pub fn find(hint: Option<u64>) -> Option<AcpiInfo> {
    let (rsdp, found_by) = match hint.filter(|&a| valid_rsdp(a)) {
        Some(address) => (address, "boot_info"),
        None => (scan_for_rsdp()?, "bios_scan"),
    };
    let mut info = AcpiInfo {
        rsdp,
        found_by,
        ecam: find_table(rsdp, b"MCFG").and_then(parse_mcfg),
        tables: [[0; 4]; 16],
        table_count: 0,
    };
    if let Some((root, entry_size, count)) = root_table(rsdp) {
        for i in 0..count.min(16) {
            let table = entry(root, entry_size, i);
            if table != 0 && table + 4 <= MAPPED_LIMIT {
                info.tables[info.table_count] = read_bytes::<4>(table);
                info.table_count += 1;
            }
        }
    }
    Some(info)
}

fn scan_for_rsdp() -> Option<u64> {
    // The first KiB of the EBDA (its segment is at 0x40E), then the BIOS area.
    let ebda = u64::from(read_u16(0x40e)) << 4;
    let ebda_range = (0x80000..0xa0000)
        .contains(&ebda)
        .then_some((ebda, ebda + 1024));
    ebda_range
        .into_iter()
        .chain(core::iter::once((0xe0000, 0x100000)))
        .find_map(|(start, end)| (start..end).step_by(16).find(|&a| valid_rsdp(a)))
}

fn valid_rsdp(address: u64) -> bool {
    if address == 0 || address + 36 > MAPPED_LIMIT || read_bytes::<8>(address) != *b"RSD PTR " {
        return false;
    }
    if !checksum_ok(address, 20) {
        return false;
    }
    // ACPI 2.0+: the extended checksum covers the whole 36-byte structure.
    read_u8(address + 15) < 2 || checksum_ok(address, read_u32(address + 20).min(36))
}

/// The XSDT (or RSDT): its address, entry size and entry count.
fn root_table(rsdp: u64) -> Option<(u64, u32, u32)> {
    let revision = read_u8(rsdp + 15);
    let xsdt = if revision >= 2 {
        read_u64(rsdp + 24)
    } else {
        0
    };
    let (root, entry_size) = if xsdt != 0 && table_ok(xsdt, b"XSDT") {
        (xsdt, 8)
    } else {
        let rsdt = u64::from(read_u32(rsdp + 16));
        if !table_ok(rsdt, b"RSDT") {
            return None;
        }
        (rsdt, 4)
    };
    let count = ((read_u32(root + 4) - 36) / entry_size).min(MAX_TABLES);
    Some((root, entry_size, count))
}

fn entry(root: u64, entry_size: u32, i: u32) -> u64 {
    let at = root + 36 + u64::from(i * entry_size);
    if entry_size == 8 {
        read_u64(at)
    } else {
        u64::from(read_u32(at))
    }
}

/// The address of the first table with `signature` listed by the XSDT (or RSDT).
fn find_table(rsdp: u64, signature: &[u8; 4]) -> Option<u64> {
    let (root, entry_size, count) = root_table(rsdp)?;
    (0..count)
        .map(|i| entry(root, entry_size, i))
        .find(|&table| table_ok(table, signature))
}

/// A table at `address` with `signature`, a sane length and a correct checksum.
fn table_ok(address: u64, signature: &[u8; 4]) -> bool {
    if address == 0 || address + 36 > MAPPED_LIMIT || read_bytes::<4>(address) != *signature {
        return false;
    }
    let length = read_u32(address + 4);
    (36..=MAX_TABLE_LEN).contains(&length)
        && address + u64::from(length) <= MAPPED_LIMIT
        && checksum_ok(address, length)
}

/// MCFG: a 44-byte header, then 16-byte entries (base, segment, start bus, end bus).
fn parse_mcfg(mcfg: u64) -> Option<Ecam> {
    let length = read_u32(mcfg + 4);
    let entries = length.saturating_sub(44) / 16;
    (0..entries).find_map(|i| {
        let entry = mcfg + 44 + u64::from(i) * 16;
        let base = read_u64(entry);
        let segment = read_u16(entry + 8);
        (segment == 0 && base != 0 && base < MAPPED_LIMIT).then(|| Ecam {
            base,
            start_bus: read_u8(entry + 10),
            end_bus: read_u8(entry + 11),
        })
    })
}

fn checksum_ok(address: u64, length: u32) -> bool {
    (0..u64::from(length)).fold(0u8, |sum, i| sum.wrapping_add(read_u8(address + i))) == 0
}

fn read_bytes<const N: usize>(address: u64) -> [u8; N] {
    let mut bytes = [0u8; N];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = read_u8(address + i as u64);
    }
    bytes
}

fn read_u8(address: u64) -> u8 {
    // SAFETY: callers keep addresses below 4 GiB, all identity-mapped; firmware tables
    // and the BIOS area are plain memory (reads of unbacked addresses return all ones).
    unsafe { core::ptr::read_volatile(address as *const u8) }
}

fn read_u16(address: u64) -> u16 {
    u16::from_le_bytes(read_bytes::<2>(address))
}

fn read_u32(address: u64) -> u32 {
    u32::from_le_bytes(read_bytes::<4>(address))
}

fn read_u64(address: u64) -> u64 {
    u64::from_le_bytes(read_bytes::<8>(address))
}
