//! The boot CPU state of the Linux x86-64 64-bit boot protocol: a flat GDT with a 64-bit code
//! segment, identity-mapped page tables for the first 4 GiB, long mode, `rsi` = boot_params.
//! Also the CPUID table handed to each vCPU.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs, CpuId};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::{
    BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, PDE_START, PDPTE_START, PML4_START,
    ZERO_PAGE_START,
};

/// Errors while writing the boot CPU state.
#[derive(Debug, thiserror::Error)]
pub enum CpuSetupError {
    /// Writing boot tables into guest memory failed (guest memory too small?).
    #[error("cannot write the boot {what} into guest memory: {source}")]
    GuestMemory {
        /// Which table.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

/// GDT selectors of the boot GDT, as the Linux boot protocol expects (`__BOOT_CS` = 0x10 in
/// Linux; any flat 64-bit code segment works, so vnetbed uses index 1).
pub const BOOT_CS: u16 = 0x08;
/// Boot data segment selector.
pub const BOOT_DS: u16 = 0x10;
/// Boot TSS selector (KVM needs a valid TR in long mode).
pub const BOOT_TSS: u16 = 0x18;

const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// Encode a GDT descriptor from `flags` (access byte in bits 0..8, flags nibble in 12..16),
/// `base` and `limit`.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << 32)
        | ((flags as u64 & 0xf0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << 32)
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0xffff)
}

/// The boot GDT: null, 64-bit code, data, TSS.
pub const BOOT_GDT: [u64; 4] = [
    0,
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
];

/// The KVM segment register image of GDT entry `index`.
pub fn segment_from_gdt(entry: u64, index: u16) -> kvm_segment {
    let g = ((entry >> 55) & 1) as u8;
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let present = ((entry >> 47) & 1) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: if present == 1 { 0 } else { 1 },
        padding: 0,
    }
}

fn write<T: vm_memory::ByteValued>(
    mem: &GuestMemoryMmap,
    addr: u64,
    v: T,
    what: &'static str,
) -> Result<(), CpuSetupError> {
    mem.write_obj(v, GuestAddress(addr))
        .map_err(|source| CpuSetupError::GuestMemory { what, source })
}

/// Write the boot GDT, an empty IDT and the identity-mapping page tables (2 MiB pages, 0..4 GiB).
pub fn write_boot_tables(mem: &GuestMemoryMmap) -> Result<(), CpuSetupError> {
    for (i, e) in BOOT_GDT.iter().enumerate() {
        write(mem, BOOT_GDT_START + 8 * i as u64, *e, "GDT")?;
    }
    write(mem, BOOT_IDT_START, 0u64, "IDT")?;
    // PML4[0] -> PDPT; PDPT[0..4] -> four page directories; each PD maps 1 GiB in 2 MiB pages.
    // Flags: present | writable (0x3); PD entries add PS (0x80) for 2 MiB pages.
    write(mem, PML4_START, PDPTE_START | 0x3, "PML4")?;
    for gib in 0..4u64 {
        let pd = PDE_START + gib * 0x1000;
        write(mem, PDPTE_START + gib * 8, pd | 0x3, "PDPT")?;
        for i in 0..512u64 {
            let phys = (gib << 30) | (i << 21);
            write(mem, pd + i * 8, phys | 0x83, "page directory")?;
        }
    }
    Ok(())
}

/// Special registers for entering a 64-bit kernel: long mode, paging on, flat segments.
pub fn boot_sregs(mut sregs: kvm_sregs) -> kvm_sregs {
    let code = segment_from_gdt(BOOT_GDT[1], 1);
    let data = segment_from_gdt(BOOT_GDT[2], 2);
    let tss = segment_from_gdt(BOOT_GDT[3], 3);
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = (BOOT_GDT.len() * 8 - 1) as u16;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    sregs.cr3 = PML4_START;
    sregs.cr4 |= X86_CR4_PAE;
    sregs.cr0 |= X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
    sregs
}

/// General registers at the kernel entry point.
pub fn boot_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rflags: 0x2,
        rip: entry,
        rsp: BOOT_STACK_POINTER,
        rbp: BOOT_STACK_POINTER,
        rsi: ZERO_PAGE_START,
        ..Default::default()
    }
}

/// x87/SSE state at reset (FCW 0x37f, MXCSR 0x1f80).
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

/// Adjust KVM's supported CPUID for vCPU `index` of `count`: the APIC IDs in leaves 0x1 and
/// 0xb, and the logical processor count.
pub fn cpuid_for_vcpu(mut cpuid: CpuId, index: usize, count: usize) -> CpuId {
    for e in cpuid.as_mut_slice() {
        match e.function {
            0x1 => {
                // EBX[31:24] initial APIC ID, EBX[23:16] logical processors; EDX bit 28 HTT.
                e.ebx = (e.ebx & 0x0000_ffff)
                    | ((index as u32) << 24)
                    | ((count.min(255) as u32) << 16);
                if count > 1 {
                    e.edx |= 1 << 28;
                }
            }
            0xb => {
                e.edx = index as u32;
            }
            _ => {}
        }
    }
    cpuid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_decode_to_flat_long_mode_segments() {
        let cs = segment_from_gdt(BOOT_GDT[1], 1);
        assert_eq!(
            (cs.selector, cs.l, cs.db, cs.present, cs.type_, cs.s),
            (BOOT_CS, 1, 0, 1, 0xb, 1)
        );
        assert_eq!(cs.limit, 0xffff_ffff);
        let ds = segment_from_gdt(BOOT_GDT[2], 2);
        assert_eq!((ds.selector, ds.db, ds.type_), (BOOT_DS, 1, 0x3));
        let tss = segment_from_gdt(BOOT_GDT[3], 3);
        assert_eq!((tss.selector, tss.type_, tss.s), (BOOT_TSS, 0xb, 0));
    }

    #[test]
    fn page_tables_identity_map_four_gib() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_boot_tables(&mem).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4, PDPTE_START | 3);
        let last_pd: u64 = mem
            .read_obj(GuestAddress(PDE_START + 3 * 0x1000 + 511 * 8))
            .unwrap();
        assert_eq!(last_pd, ((3u64 << 30) | (511 << 21)) | 0x83);
    }
}
