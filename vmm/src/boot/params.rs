//! The zero page (`boot_params`) of the Linux boot protocol: e820 map, command line, initrd.

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::layout::{ram_regions, CMDLINE_START, EBDA_START, HIMEM_START, ZERO_PAGE_START};

const E820_RAM: u32 = 1;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x0100_0000;

/// Errors writing the zero page.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// The e820 table has a fixed number of slots.
    #[error("too many e820 entries")]
    E820Full,
    /// linux-loader could not write boot_params.
    #[error("cannot write boot_params into guest memory: {0}")]
    Write(#[source] linux_loader::configurator::Error),
}

/// Where an initrd was placed.
#[derive(Debug, Clone, Copy)]
pub struct InitrdPlacement {
    /// Guest-physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}

fn add_e820(params: &mut boot_params, addr: u64, size: u64) -> Result<(), ParamsError> {
    let i = params.e820_entries as usize;
    if i >= params.e820_table.len() {
        return Err(ParamsError::E820Full);
    }
    params.e820_table[i] = boot_e820_entry {
        addr,
        size,
        r#type: E820_RAM,
    };
    params.e820_entries += 1;
    Ok(())
}

/// Build and write the zero page. `hdr` is the bzImage setup header, or `None` for an ELF
/// kernel (a minimal header is synthesised). `cmdline_len` includes the NUL. `acpi_rsdp` is
/// the RSDP's address (boot protocol 2.14 `acpi_rsdp_addr`; older kernels scan for it).
pub fn write_boot_params(
    mem: &GuestMemoryMmap,
    hdr: Option<setup_header>,
    cmdline_len: usize,
    initrd: Option<InitrdPlacement>,
    acpi_rsdp: Option<u64>,
) -> Result<(), ParamsError> {
    let mut params = boot_params::default();
    if let Some(h) = hdr {
        params.hdr = h;
    } else {
        params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
        params.hdr.header = KERNEL_HDR_MAGIC;
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some(rsdp) = acpi_rsdp {
        params.acpi_rsdp_addr = rsdp;
    }
    if let Some(i) = initrd {
        params.hdr.ramdisk_image = i.addr as u32;
        params.hdr.ramdisk_size = i.size as u32;
    }
    // Low memory up to the EBDA, then every RAM region from 1 MiB on (the legacy hole
    // 640K-1M and the MMIO gap are left out). The regions come from the same layout function
    // that created `mem`, applied to its total size (not its last address: RAM above 4 GiB
    // starts after the gap).
    add_e820(&mut params, 0, EBDA_START)?;
    let ram_bytes: u64 = mem.iter().map(|r| r.len()).sum();
    for (start, size) in ram_regions(ram_bytes) {
        let s = start.max(HIMEM_START);
        if start + size > s {
            add_e820(&mut params, s, start + size - s)?;
        }
    }
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_START)),
        mem,
    )
    .map_err(ParamsError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::loader::load_initrd;
    use crate::layout::{MMIO_GAP_END, MMIO_GAP_START};
    use crate::memory::create_guest_memory;
    use vm_memory::Bytes;

    // Offsets in the zero page, from the Linux boot protocol (Documentation/arch/x86/zero-page.rst
    // and boot.rst), checked independently of linux-loader's struct.
    const E820_ENTRIES: u64 = 0x1e8;
    const RAMDISK_IMAGE: u64 = 0x218;
    const RAMDISK_SIZE: u64 = 0x21c;
    const CMD_LINE_PTR: u64 = 0x228;
    const CMDLINE_SIZE: u64 = 0x238;
    const E820_TABLE: u64 = 0x2d0;
    const E820_ENTRY_SIZE: u64 = 20;

    fn read<T: vm_memory::ByteValued>(mem: &GuestMemoryMmap, offset: u64) -> T {
        mem.read_obj(GuestAddress(ZERO_PAGE_START + offset))
            .unwrap()
    }

    /// The e820 map written for a guest of `mib` MiB, as (addr, size, type).
    fn e820_for(mib: u64) -> Vec<(u64, u64, u32)> {
        let mem = create_guest_memory(mib).unwrap();
        write_boot_params(&mem, None, 10, None, None).unwrap();
        let n: u8 = read(&mem, E820_ENTRIES);
        (0..u64::from(n))
            .map(|i| {
                let at = E820_TABLE + i * E820_ENTRY_SIZE;
                (read(&mem, at), read(&mem, at + 8), read(&mem, at + 16))
            })
            .collect()
    }

    const MIB: u64 = 1 << 20;
    const LOW: (u64, u64, u32) = (0, EBDA_START, E820_RAM);

    #[test]
    fn e820_for_a_small_guest() {
        assert_eq!(
            e820_for(64),
            vec![LOW, (HIMEM_START, 64 * MIB - HIMEM_START, E820_RAM)]
        );
    }

    #[test]
    fn e820_for_a_guest_filling_the_space_below_the_gap() {
        assert_eq!(
            e820_for(3072),
            vec![LOW, (HIMEM_START, MMIO_GAP_START - HIMEM_START, E820_RAM)]
        );
    }

    #[test]
    fn e820_for_a_guest_crossing_the_gap_lists_ram_above_4g_exactly() {
        // 4096 MiB: [0, 3 GiB) and [4 GiB, 5 GiB), not [4 GiB, 6 GiB).
        assert_eq!(
            e820_for(4096),
            vec![
                LOW,
                (HIMEM_START, MMIO_GAP_START - HIMEM_START, E820_RAM),
                (MMIO_GAP_END, 1 << 30, E820_RAM),
            ]
        );
        // One MiB past the gap start.
        assert_eq!(
            e820_for(3073),
            vec![
                LOW,
                (HIMEM_START, MMIO_GAP_START - HIMEM_START, E820_RAM),
                (MMIO_GAP_END, MIB, E820_RAM),
            ]
        );
    }

    #[test]
    fn e820_matches_the_guest_memory_regions() {
        for mib in [2, 64, 3072, 3073, 4096, 6000] {
            let mem = create_guest_memory(mib).unwrap();
            let regions: Vec<(u64, u64)> =
                mem.iter().map(|r| (r.start_addr().0, r.len())).collect();
            let listed: Vec<(u64, u64)> = e820_for(mib)
                .into_iter()
                .skip(1)
                .map(|(a, s, _)| (a, s))
                .collect();
            // The first region is listed from 1 MiB (below it: the low entry and the hole).
            let mut want = regions.clone();
            want[0] = (HIMEM_START, regions[0].1 - HIMEM_START);
            assert_eq!(listed, want, "--mem {mib}");
        }
    }

    #[test]
    fn command_line_pointer_and_size() {
        let mem = create_guest_memory(64).unwrap();
        write_boot_params(&mem, None, 42, None, None).unwrap();
        assert_eq!(read::<u32>(&mem, CMD_LINE_PTR), CMDLINE_START as u32);
        assert_eq!(read::<u32>(&mem, CMDLINE_SIZE), 42);
        assert_eq!(read::<u32>(&mem, RAMDISK_IMAGE), 0);
        assert_eq!(read::<u32>(&mem, RAMDISK_SIZE), 0);
    }

    #[test]
    fn ramdisk_fields_describe_the_loaded_initrd() {
        let mem = create_guest_memory(64).unwrap();
        let dir = std::env::temp_dir().join(format!("vnetbed-params-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("initrd.img");
        std::fs::write(&path, vec![0x5au8; 300_000]).unwrap();
        let placed = load_initrd(&mem, &path, 2 * MIB).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        write_boot_params(&mem, None, 10, Some(placed), None).unwrap();
        let image = read::<u32>(&mem, RAMDISK_IMAGE);
        assert_eq!(u64::from(image), placed.addr);
        assert_eq!(image % 4096, 0);
        assert_eq!(read::<u32>(&mem, RAMDISK_SIZE), 300_000);
        assert!(u64::from(image) + 300_000 <= 64 * MIB);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(placed.addr)).unwrap(), 0x5a);
    }
}
