//! ACPI tables for stock kernels: RSDP, XSDT, a hardware-reduced FADT, a MADT with one LAPIC
//! per vCPU and the IOAPIC, with a PCI root an MCFG (its ECAM) and a PCI0 device in the
//! DSDT, and a DSDT that describes the UART and every virtio-mmio device
//! (`LNRO0005`, the ID Linux's virtio_mmio driver matches). Debian's kernels are built without
//! `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`, so this is how they find the NIC; the command-line
//! announcement stays for guests that read it (the probe).
//!
//! Tables are built with rust-vmm's `acpi_tables` crate; the one MADT entry it lacks (the
//! interrupt source override for the PIT) is a `zerocopy` struct here.

use acpi_tables::{aml, fadt, madt, mcfg::MCFG, rsdp::Rsdp, sdt::Sdt, xsdt::XSDT, Aml};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::{Immutable, IntoBytes};

use crate::layout::{
    ACPI_END, ACPI_START, IOAPIC_START, LAPIC_START, PCI_CONFIG_PORTS, SERIAL_IRQ, SERIAL_PORT_BASE,
};

const OEM_ID: [u8; 6] = *b"VNETBD";
const OEM_REVISION: u32 = 1;

/// A virtio-mmio device as the DSDT describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDevice {
    /// MMIO base.
    pub base: u64,
    /// Window size.
    pub size: u64,
    /// GSI.
    pub irq: u32,
}

/// The PCI root as the MCFG and the DSDT's PCI0 describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciHost {
    /// ECAM base (bus 0).
    pub ecam: u64,
    /// ECAM size (1 MiB per bus).
    pub ecam_size: u64,
    /// Memory window for BARs `[start, end)`.
    pub mmio: (u64, u64),
    /// I/O window for BARs `[start, end)`.
    pub io: (u64, u64),
    /// INTA of each device: (device number, GSI), for `_PRT`.
    pub intx: Vec<(usize, u32)>,
}

/// Errors writing the tables.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    /// The tables outgrew their area.
    #[error("ACPI tables need {need} bytes but the ACPI area has {have}")]
    TooLarge {
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// A device above 4 GiB cannot be described with Memory32Fixed.
    #[error("virtio-mmio device at {0:#x} is above 4 GiB")]
    DeviceAbove4G(u64),
    /// Writing guest memory failed.
    #[error("cannot write ACPI tables into guest memory: {0}")]
    Write(#[source] vm_memory::GuestMemoryError),
}

/// The MADT "Interrupt Source Override" (type 2): ISA IRQ `source` is GSI `gsi`.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct InterruptSourceOverride {
    r#type: u8,
    length: u8,
    bus: u8,
    source: u8,
    gsi: u32,
    flags: u16,
}

impl Aml for InterruptSourceOverride {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(self.as_bytes());
    }
}

fn bytes_of(t: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    t.to_aml_bytes(&mut v);
    v
}

/// The tables, each as bytes, with the addresses they will have.
#[derive(Debug, Clone)]
pub struct AcpiTables {
    /// (name, guest address, bytes), RSDP first.
    pub tables: Vec<(&'static str, u64, Vec<u8>)>,
}

impl AcpiTables {
    /// The RSDP's address.
    pub fn rsdp_addr(&self) -> u64 {
        self.tables[0].1
    }
}

/// Already-serialised AML, so that each device can be built in one expression (the crate's
/// builders borrow their children).
struct RawAml(Vec<u8>);

impl Aml for RawAml {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(&self.0);
    }
}

fn com1_device() -> RawAml {
    RawAml(bytes_of(&aml::Device::new(
        "COM1".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new(
                "_CRS".into(),
                &aml::ResourceTemplate::new(vec![
                    &aml::IO::new(SERIAL_PORT_BASE, SERIAL_PORT_BASE, 1, 8),
                    &aml::Interrupt::new(true, true, false, false, SERIAL_IRQ),
                ]),
            ),
        ],
    )))
}

fn virtio_device(index: usize, d: &MmioDevice) -> Result<RawAml, AcpiError> {
    let base = u32::try_from(d.base).map_err(|_| AcpiError::DeviceAbove4G(d.base))?;
    let name = format!("VR{index:02X}");
    Ok(RawAml(bytes_of(&aml::Device::new(
        name.as_str().into(),
        vec![
            &aml::Name::new("_HID".into(), &"LNRO0005"),
            &aml::Name::new("_UID".into(), &(index as u32)),
            &aml::Name::new(
                "_CRS".into(),
                &aml::ResourceTemplate::new(vec![
                    &aml::Memory32Fixed::new(true, base, d.size as u32),
                    // virtio-mmio interrupts are edge-triggered, active high: the device
                    // raises them through an irqfd, which KVM delivers as an edge.
                    &aml::Interrupt::new(true, true, false, false, d.irq),
                ]),
            ),
        ],
    ))))
}

/// PCI0: a PCI Express root (`PNP0A08`, compatible `PNP0A03`) whose `_CRS` gives bus 0,
/// the configuration ports and the BAR windows, with a `_PRT` routing each device's INTA
/// to its GSI; and a motherboard resource (`PNP0C02`) reserving the ECAM, which Linux
/// requires before it trusts the MCFG.
fn pci_devices(p: &PciHost) -> Result<Vec<RawAml>, AcpiError> {
    let above = |a: u64| AcpiError::DeviceAbove4G(a);
    let ecam = u32::try_from(p.ecam).map_err(|_| above(p.ecam))?;
    let mmio_start = u32::try_from(p.mmio.0).map_err(|_| above(p.mmio.0))?;
    let mmio_last = u32::try_from(p.mmio.1 - 1).map_err(|_| above(p.mmio.1))?;
    let io = (p.io.0 as u16, (p.io.1 - 1) as u16);
    let prt_entries: Vec<RawAml> = p
        .intx
        .iter()
        .map(|&(device, gsi)| {
            let address = ((device as u32) << 16) | 0xffff;
            RawAml(bytes_of(&aml::Package::new(vec![
                &address,
                &aml::ZERO,
                &aml::ZERO,
                &gsi,
            ])))
        })
        .collect();
    let prt_refs: Vec<&dyn Aml> = prt_entries.iter().map(|e| e as &dyn Aml).collect();
    let pci0 = RawAml(bytes_of(&aml::Device::new(
        "PCI0".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0A08")),
            &aml::Name::new("_CID".into(), &aml::EISAName::new("PNP0A03")),
            &aml::Name::new("_ADR".into(), &aml::ZERO),
            &aml::Name::new("_SEG".into(), &aml::ZERO),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_BBN".into(), &aml::ZERO),
            &aml::Name::new(
                "_CRS".into(),
                &aml::ResourceTemplate::new(vec![
                    &aml::AddressSpace::new_bus_number(0u16, 0u16),
                    &aml::IO::new(PCI_CONFIG_PORTS, PCI_CONFIG_PORTS, 1, 8),
                    &aml::AddressSpace::new_io(io.0, io.1, None),
                    &aml::AddressSpace::new_memory(
                        aml::AddressSpaceCacheable::NotCacheable,
                        true,
                        mmio_start,
                        mmio_last,
                        None,
                    ),
                ]),
            ),
            &aml::Name::new("_PRT".into(), &aml::Package::new(prt_refs)),
        ],
    )));
    let reserved = RawAml(bytes_of(&aml::Device::new(
        "MRES".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0C02")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new(
                "_CRS".into(),
                &aml::ResourceTemplate::new(vec![&aml::Memory32Fixed::new(
                    false,
                    ecam,
                    p.ecam_size as u32,
                )]),
            ),
        ],
    )));
    Ok(vec![pci0, reserved])
}

fn dsdt(devices: &[MmioDevice], pci: Option<&PciHost>) -> Result<Vec<u8>, AcpiError> {
    let mut children = vec![com1_device()];
    for (i, d) in devices.iter().enumerate() {
        children.push(virtio_device(i, d)?);
    }
    if let Some(p) = pci {
        children.extend(pci_devices(p)?);
    }
    let refs: Vec<&dyn Aml> = children.iter().map(|c| c as &dyn Aml).collect();
    let sb = aml::Scope::new("_SB_".into(), refs);
    let mut table = Sdt::new(*b"DSDT", 36, 6, OEM_ID, *b"VNBDSDT ", OEM_REVISION);
    table.append_slice(&bytes_of(&sb));
    Ok(table.as_slice().to_vec())
}

fn madt(vcpus: usize) -> Vec<u8> {
    let mut m = madt::MADT::new(
        *b"VNETBD",
        *b"VNBMADT ",
        OEM_REVISION,
        madt::LocalInterruptController::Address(LAPIC_START as u32),
    );
    // `Vm::new` caps vCPUs at `vm::MAX_VCPUS` (255), so the 8-bit IDs do not wrap.
    for i in 0..vcpus {
        m.add_structure(madt::ProcessorLocalApic::new(
            i as u8,
            i as u8,
            madt::EnabledStatus::Enabled,
        ));
    }
    m.add_structure(madt::IoApic::new(0, IOAPIC_START as u32, 0));
    // KVM routes GSI 0 (the PIT) to IOAPIC pin 2, as PC firmware does: say so.
    m.add_structure(InterruptSourceOverride {
        r#type: 2,
        length: 10,
        bus: 0,
        source: 0,
        gsi: 2,
        flags: 0,
    });
    bytes_of(&m)
}

fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Build every table for `vcpus` vCPUs and `devices`, laid out from [`ACPI_START`].
pub fn build(vcpus: usize, devices: &[MmioDevice]) -> Result<AcpiTables, AcpiError> {
    build_with_pci(vcpus, devices, None)
}

fn mcfg(p: &PciHost) -> Vec<u8> {
    let mut m = MCFG::new(OEM_ID, *b"VNBMCFG ", OEM_REVISION);
    let last_bus = (p.ecam_size >> 20).saturating_sub(1).min(255) as u8;
    m.add_ecam(p.ecam, 0, 0, last_bus);
    bytes_of(&m)
}

/// [`build`], and with `pci` an MCFG and the DSDT's PCI0 for the PCI root.
pub fn build_with_pci(
    vcpus: usize,
    devices: &[MmioDevice],
    pci: Option<&PciHost>,
) -> Result<AcpiTables, AcpiError> {
    let rsdp_addr = ACPI_START;
    let xsdt_addr = align(rsdp_addr + Rsdp::len() as u64, 16);
    let dsdt_bytes = dsdt(devices, pci)?;
    let madt_bytes = madt(vcpus);
    let mcfg_bytes = pci.map(mcfg);
    // The XSDT has two or three entries (FADT, MADT, MCFG): header 36 + 8 bytes each.
    let entries = 2 + u64::from(mcfg_bytes.is_some());
    let fadt_addr = align(xsdt_addr + 36 + 8 * entries, 16);
    let fadt_len = fadt::FADT::len() as u64;
    let madt_addr = align(fadt_addr + fadt_len, 16);
    let mcfg_addr = align(madt_addr + madt_bytes.len() as u64, 16);
    let dsdt_addr = align(
        mcfg_addr + mcfg_bytes.as_ref().map_or(0, |m| m.len() as u64),
        16,
    );
    let end = dsdt_addr + dsdt_bytes.len() as u64;
    if end > ACPI_END {
        return Err(AcpiError::TooLarge {
            need: end - ACPI_START,
            have: ACPI_END - ACPI_START,
        });
    }
    let fadt = fadt::FADTBuilder::new(OEM_ID, *b"VNBFACP ", OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(fadt::Flags::HwReducedAcpi)
        .flag(fadt::Flags::PwrButton)
        .flag(fadt::Flags::SlpButton)
        .finalize();
    let mut xsdt = XSDT::new(OEM_ID, *b"VNBXSDT ", OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    if mcfg_bytes.is_some() {
        xsdt.add_entry(mcfg_addr);
    }
    let rsdp = Rsdp::new(OEM_ID, xsdt_addr);
    let mut tables = vec![
        ("RSDP", rsdp_addr, bytes_of(&rsdp)),
        ("XSDT", xsdt_addr, bytes_of(&xsdt)),
        ("FACP", fadt_addr, bytes_of(&fadt)),
        ("APIC", madt_addr, madt_bytes),
    ];
    if let Some(m) = mcfg_bytes {
        tables.push(("MCFG", mcfg_addr, m));
    }
    tables.push(("DSDT", dsdt_addr, dsdt_bytes));
    Ok(AcpiTables { tables })
}

/// Write `tables` into guest memory; returns the RSDP address for boot_params.
pub fn write(mem: &GuestMemoryMmap, tables: &AcpiTables) -> Result<u64, AcpiError> {
    for (_, addr, bytes) in &tables.tables {
        mem.write_slice(bytes, GuestAddress(*addr))
            .map_err(AcpiError::Write)?;
    }
    Ok(tables.rsdp_addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_ok(b: &[u8]) -> bool {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x)) == 0
    }

    #[test]
    fn tables_are_laid_out_in_order_with_valid_checksums() {
        let devs = [MmioDevice {
            base: 0xd000_0000,
            size: 0x1000,
            irq: 5,
        }];
        let t = build(2, &devs).unwrap();
        let names: Vec<&str> = t.tables.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, ["RSDP", "XSDT", "FACP", "APIC", "DSDT"]);
        let mut end = 0;
        for (name, addr, bytes) in &t.tables {
            assert!(*addr >= end, "{name} overlaps the previous table");
            end = addr + bytes.len() as u64;
            if *name == "RSDP" {
                assert!(checksum_ok(&bytes[..20]) && checksum_ok(bytes));
            } else {
                assert_eq!(&bytes[0..4], name.as_bytes());
                let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
                assert_eq!(len, bytes.len(), "{name} length field");
                assert!(checksum_ok(bytes), "{name} checksum");
            }
        }
        assert!(end <= ACPI_END);
        let dsdt = &t.tables[4].2;
        assert!(dsdt.windows(8).any(|w| w == b"LNRO0005"));
    }

    #[test]
    fn a_pci_root_adds_an_mcfg_and_pci0() {
        let pci = PciHost {
            ecam: 0xe000_0000,
            ecam_size: 1 << 20,
            mmio: (0xe010_0000, 0xf000_0000),
            io: (0x6000, 0x7000),
            intx: vec![(1, 23)],
        };
        let t = build_with_pci(1, &[], Some(&pci)).unwrap();
        let names: Vec<&str> = t.tables.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, ["RSDP", "XSDT", "FACP", "APIC", "MCFG", "DSDT"]);
        let (_, mcfg_addr, mcfg) = &t.tables[4];
        assert!(checksum_ok(mcfg));
        // Entry: base (8), segment (2), start bus, end bus.
        assert_eq!(&mcfg[44..52], &0xe000_0000u64.to_le_bytes());
        assert_eq!((mcfg[54], mcfg[55]), (0, 0));
        let xsdt = &t.tables[1].2;
        assert_eq!(xsdt.len(), 36 + 24);
        assert_eq!(&xsdt[52..60], &mcfg_addr.to_le_bytes());
        let dsdt = &t.tables[5].2;
        assert!(dsdt.windows(4).any(|w| w == b"PCI0"));
        assert!(dsdt.windows(4).any(|w| w == b"_PRT"));
        assert!(checksum_ok(dsdt));
    }

    #[test]
    fn devices_above_4g_are_refused() {
        let devs = [MmioDevice {
            base: 0x1_0000_0000,
            size: 0x1000,
            irq: 5,
        }];
        assert!(matches!(build(1, &devs), Err(AcpiError::DeviceAbove4G(_))));
    }
}
