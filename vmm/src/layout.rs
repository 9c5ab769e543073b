//! The guest physical memory map, in one place.
//!
//! ```text
//! 0x0000_0000  real-mode IVT / BDA (left zero)
//! 0x0000_0500  GDT (boot)                 BOOT_GDT_START
//! 0x0000_0520  IDT (boot, empty)          BOOT_IDT_START
//! 0x0000_7000  boot_params (zero page)    ZERO_PAGE_START
//! 0x0000_8ff0  initial stack pointer      BOOT_STACK_POINTER
//! 0x0000_9000  PML4                       PML4_START
//! 0x0000_a000  PDPT                       PDPTE_START
//! 0x0000_b000  PD (4 x 512 2 MiB pages)   PDE_START   (identity maps the first 4 GiB)
//! 0x0002_0000  kernel command line        CMDLINE_START (CMDLINE_MAX_SIZE bytes)
//! 0x0009_fc00  end of low RAM in the e820 map (EBDA above)
//! 0x000e_0000  ACPI tables: RSDP, XSDT, FADT, MADT, DSDT   ACPI_START (in the BIOS area Linux scans)
//! 0x0010_0000  kernel load address        HIMEM_START
//! ...          initrd: placed at the top of low RAM, page aligned
//! 0xd000_0000  virtio-mmio window         MMIO_WINDOW_START, one VIRTIO_MMIO_DEVICE_SIZE slot per device
//! 0xe000_0000  PCI ECAM, bus 0 (1 MiB)    PCI_ECAM_START (in the ACPI MCFG)
//! 0xe010_0000  PCI 32-bit memory window   PCI_MMIO_START .. PCI_MMIO_END (BARs)
//! 0xfec0_0000  IOAPIC                     IOAPIC_START
//! 0xfee0_0000  LAPIC                      LAPIC_START
//! 0xfffb_c000  KVM EPT identity-map page (KVM's default)  KVM_IDENTITY_MAP_START
//! 0xfffb_d000  KVM TSS, 3 pages (KVM_SET_TSS_ADDR)         KVM_TSS_START .. KVM_PRIVATE_END
//! 0x1_0000_0000 RAM above 4 GiB, when the guest has more than MMIO_GAP_START bytes
//! ```
//!
//! RAM occupies `[0, min(mem, MMIO_GAP_START))` and, for larger guests,
//! `[4 GiB, 4 GiB + rest)`. The gap `[MMIO_GAP_START, 4 GiB)` holds device MMIO.

/// Boot GDT: null, code64, data, TSS (each 8 bytes).
pub const BOOT_GDT_START: u64 = 0x500;
/// Boot IDT: a zero-length IDT; the guest installs its own.
pub const BOOT_IDT_START: u64 = 0x520;
/// The Linux boot protocol's `boot_params` ("zero page").
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial `rsp` for the first instruction of the kernel.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Level-4 page table.
pub const PML4_START: u64 = 0x9000;
/// Level-3 page table (one entry per GiB).
pub const PDPTE_START: u64 = 0xa000;
/// Level-2 page tables: four consecutive pages, 2 MiB pages, identity map of 0..4 GiB.
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Largest command line, including the terminating NUL.
pub const CMDLINE_MAX_SIZE: usize = 4096;
/// End of the usable low memory reported in e820 (the EBDA starts here).
pub const EBDA_START: u64 = 0x9fc00;
/// ACPI tables (RSDP first, 16-byte aligned, inside the 0xe0000-0xfffff BIOS area that
/// Linux scans for the RSDP; vnetbed also passes its address in boot_params).
pub const ACPI_START: u64 = 0xe_0000;
/// End of the ACPI area.
pub const ACPI_END: u64 = 0x10_0000;
/// Where kernels are loaded (1 MiB).
pub const HIMEM_START: u64 = 0x10_0000;

/// Start of the 32-bit MMIO gap; RAM beyond this goes above 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the MMIO gap (4 GiB).
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// First virtio-mmio device.
pub const MMIO_WINDOW_START: u64 = 0xd000_0000;
/// Size of one virtio-mmio device's register window.
pub const VIRTIO_MMIO_DEVICE_SIZE: u64 = 0x1000;
/// Most virtio-mmio devices one VM can have (one IRQ each, see [`VIRTIO_IRQ_BASE`]).
pub const MAX_VIRTIO_DEVICES: usize = (IRQ_MAX - VIRTIO_IRQ_BASE + 1) as usize;
/// PCI ECAM for bus 0: 32 devices x 8 functions x 4 KiB.
pub const PCI_ECAM_START: u64 = 0xe000_0000;
/// Size of the ECAM window (bus 0 only).
pub const PCI_ECAM_SIZE: u64 = 1 << 20;
/// PCI memory BARs are assigned in `[PCI_MMIO_START, PCI_MMIO_END)`.
pub const PCI_MMIO_START: u64 = PCI_ECAM_START + PCI_ECAM_SIZE;
/// End of the PCI memory window.
pub const PCI_MMIO_END: u64 = 0xf000_0000;
/// PCI I/O BARs are assigned in `[PCI_IO_START, PCI_IO_END)` (ports).
pub const PCI_IO_START: u64 = 0x6000;
/// End of the PCI I/O window.
pub const PCI_IO_END: u64 = 0x7000;
/// PCI configuration mechanism #1: CONFIG_ADDRESS (0xCF8) and CONFIG_DATA (0xCFC-0xCFF).
pub const PCI_CONFIG_PORTS: u16 = 0xcf8;
/// IOAPIC registers.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// Local APIC registers.
pub const LAPIC_START: u64 = 0xfee0_0000;
/// KVM's EPT identity-map page table (one page, Intel only, used while the guest runs
/// unpaged). vnetbed does not call `KVM_SET_IDENTITY_MAP_ADDR`, so KVM uses its default,
/// `VMX_EPT_IDENTITY_PAGETABLE_ADDR`, one page below [`KVM_TSS_START`].
pub const KVM_IDENTITY_MAP_START: u64 = 0xfffb_c000;
/// KVM's TSS pages (`KVM_SET_TSS_ADDR`: three pages, Intel only; unused by 64-bit guests but
/// required by KVM). In the MMIO gap, above the LAPIC: no guest RAM or device may overlap
/// `[KVM_IDENTITY_MAP_START, KVM_PRIVATE_END)`.
pub const KVM_TSS_START: u64 = 0xfffb_d000;
/// End of KVM's private pages (after the three TSS pages).
pub const KVM_PRIVATE_END: u64 = KVM_TSS_START + 3 * 0x1000;

/// Legacy COM1 port base.
pub const SERIAL_PORT_BASE: u16 = 0x3f8;
/// COM1 interrupt line.
pub const SERIAL_IRQ: u32 = 4;
/// i8042 command port; writing 0xfe resets (ends) the VM.
pub const I8042_PORT: u16 = 0x64;
/// Debug-exit port: a 1-, 2- or 4-byte write of value `V` ends the VM with process exit status
/// `((V << 1) | 1) & 0xff` (see [`crate::exit::ExitReason::status`] and the exit-status table in
/// the README), the convention of QEMU's `isa-debug-exit`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// First GSI handed to virtio-mmio devices (GSIs 5.. as Firecracker; 4 is the UART).
pub const VIRTIO_IRQ_BASE: u32 = 5;
/// Last GSI routed by the in-kernel IOAPIC.
pub const IRQ_MAX: u32 = 23;

/// The INTx GSI of PCI device number `device` (1..): from the top of the IOAPIC's inputs
/// down, away from the virtio-mmio GSIs, which count up from [`VIRTIO_IRQ_BASE`].
pub fn pci_intx_gsi(device: usize) -> u32 {
    IRQ_MAX + 1 - (device as u32).clamp(1, IRQ_MAX - VIRTIO_IRQ_BASE)
}

/// Smallest guest memory vnetbed accepts, in MiB.
pub const MIN_MEM_MIB: u64 = 2;

/// Base address of the `index`th virtio-mmio device.
pub fn virtio_mmio_base(index: usize) -> u64 {
    MMIO_WINDOW_START + index as u64 * VIRTIO_MMIO_DEVICE_SIZE
}

/// GSI of the `index`th virtio-mmio device.
pub fn virtio_irq(index: usize) -> u32 {
    VIRTIO_IRQ_BASE + index as u32
}

/// The guest RAM regions `(start, size)` for `mem_bytes` of memory.
pub fn ram_regions(mem_bytes: u64) -> Vec<(u64, u64)> {
    if mem_bytes <= MMIO_GAP_START {
        vec![(0, mem_bytes)]
    } else {
        vec![
            (0, MMIO_GAP_START),
            (MMIO_GAP_END, mem_bytes - MMIO_GAP_START),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_guest_is_one_region() {
        assert_eq!(ram_regions(64 << 20), vec![(0, 64 << 20)]);
    }

    #[test]
    fn large_guest_skips_the_mmio_gap() {
        let r = ram_regions(4 << 30);
        assert_eq!(
            r,
            vec![
                (0, MMIO_GAP_START),
                (MMIO_GAP_END, (4 << 30) - MMIO_GAP_START)
            ]
        );
    }

    #[test]
    fn device_windows_sit_inside_the_gap_and_below_the_ioapic() {
        let last = virtio_mmio_base(MAX_VIRTIO_DEVICES - 1) + VIRTIO_MMIO_DEVICE_SIZE;
        const { assert!(MMIO_WINDOW_START >= MMIO_GAP_START) };
        assert!(last <= IOAPIC_START);
        // KVM's private pages sit in the gap, above the LAPIC page.
        const { assert!(KVM_IDENTITY_MAP_START >= LAPIC_START + 0x1000) };
        const { assert!(KVM_IDENTITY_MAP_START + 0x1000 == KVM_TSS_START) };
        const { assert!(KVM_PRIVATE_END <= MMIO_GAP_END) };
        assert_eq!(virtio_irq(MAX_VIRTIO_DEVICES - 1), IRQ_MAX);
        // PCI sits between the virtio-mmio slots and the IOAPIC.
        assert!(last <= PCI_ECAM_START);
        const { assert!(PCI_MMIO_END <= IOAPIC_START) };
        assert_eq!(pci_intx_gsi(1), IRQ_MAX);
    }
}
