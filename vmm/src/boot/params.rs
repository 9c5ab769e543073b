//! The zero page (`boot_params`) of the Linux boot protocol: e820 map, command line, initrd.

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

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
    // Low memory up to the EBDA, then everything from 1 MiB on (the legacy hole 640K-1M and
    // the MMIO gap are left out).
    add_e820(&mut params, 0, EBDA_START)?;
    let end = mem.last_addr().raw_value() + 1;
    for (start, size) in ram_regions(end.max(HIMEM_START)) {
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
