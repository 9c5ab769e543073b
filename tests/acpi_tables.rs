//! The ACPI tables vnetbed writes for stock kernels, disassembled by a real ACPI tool
//! (`iasl -d` from acpica-tools): no errors, and the expected devices, addresses and
//! interrupts.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{require, Capability};
use vmm::acpi::{build, build_with_pci, MmioDevice, PciHost};
use vmm::layout::{
    pci_intx_gsi, virtio_irq, virtio_mmio_base, PCI_ECAM_SIZE, PCI_ECAM_START, PCI_IO_END,
    PCI_IO_START, PCI_MMIO_END, PCI_MMIO_START, VIRTIO_MMIO_DEVICE_SIZE,
};

fn disassemble(name: &str, bytes: &[u8], dir: &PathBuf) -> String {
    let dat = dir.join(format!("{}.dat", name.to_lowercase()));
    std::fs::write(&dat, bytes).unwrap();
    let out = Command::new("iasl")
        .arg("-d")
        .arg(&dat)
        .current_dir(dir)
        .output()
        .expect("run iasl");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "iasl -d {name} failed:\n{log}");
    assert!(
        !log.contains("Error"),
        "iasl reported errors for {name}:\n{log}"
    );
    std::fs::read_to_string(dat.with_extension("dsl")).unwrap()
}

#[test]
fn iasl_disassembles_every_table_with_the_expected_contents() {
    if !require("acpi_iasl", &[Capability::Program("iasl")]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vnetbed-acpi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let devices: Vec<MmioDevice> = (0..2)
        .map(|i| MmioDevice {
            base: virtio_mmio_base(i),
            size: VIRTIO_MMIO_DEVICE_SIZE,
            irq: virtio_irq(i),
        })
        .collect();
    let tables = build(3, &devices).unwrap();
    let mut text = std::collections::HashMap::new();
    for (name, _, bytes) in &tables.tables {
        if *name == "RSDP" {
            continue;
        }
        text.insert(*name, disassemble(name, bytes, &dir));
    }

    let fadt = &text["FACP"];
    assert!(fadt.contains("Hardware Reduced (V5) : 1"), "{fadt}");
    let dsdt_addr = tables.tables.iter().find(|t| t.0 == "DSDT").unwrap().1;
    assert!(
        fadt.to_uppercase().contains(&format!("{dsdt_addr:016X}")),
        "FADT must point at the DSDT:\n{fadt}"
    );

    let madt = &text["APIC"];
    assert_eq!(madt.matches("Processor Local APIC").count(), 3, "{madt}");
    assert!(madt.contains("FEC00000"), "{madt}");
    assert!(madt.contains("FEE00000"), "{madt}");
    assert!(madt.contains("Interrupt Source Override"), "{madt}");

    let xsdt = &text["XSDT"];
    assert_eq!(xsdt.matches("ACPI Table Address").count(), 2, "{xsdt}");

    let dsdt = &text["DSDT"];
    assert_eq!(dsdt.matches("\"LNRO0005\"").count(), 2, "{dsdt}");
    for (i, d) in devices.iter().enumerate() {
        assert!(dsdt.contains(&format!("Device (VR{i:02X})")), "{dsdt}");
        assert!(
            dsdt.to_uppercase().contains(&format!("0X{:08X}", d.base)),
            "base {:#x} missing:\n{dsdt}",
            d.base
        );
        assert!(
            dsdt.to_uppercase().contains(&format!("0X{:08X},", d.irq)),
            "irq {} missing:\n{dsdt}",
            d.irq
        );
    }
    assert!(dsdt.contains("PNP0501"), "{dsdt}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13: with a PCI root the tables gain an MCFG (the ECAM of bus 0) and a PCI0 root
/// bridge in the DSDT (its `_CRS` windows, `_PRT`, and the ECAM reserved as a motherboard
/// resource); `iasl -d` still disassembles every table without errors.
#[test]
fn iasl_disassembles_the_tables_with_a_pci_root() {
    if !require("acpi_iasl_pci", &[Capability::Program("iasl")]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vnetbed-acpi-pci-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pci = PciHost {
        ecam: PCI_ECAM_START,
        ecam_size: PCI_ECAM_SIZE,
        mmio: (PCI_MMIO_START, PCI_MMIO_END),
        io: (PCI_IO_START, PCI_IO_END),
        intx: vec![(1, pci_intx_gsi(1))],
    };
    let tables = build_with_pci(2, &[], Some(&pci)).unwrap();
    let mut text = std::collections::HashMap::new();
    for (name, _, bytes) in &tables.tables {
        if *name != "RSDP" {
            text.insert(*name, disassemble(name, bytes, &dir));
        }
    }
    let xsdt = &text["XSDT"];
    assert_eq!(xsdt.matches("ACPI Table Address").count(), 3, "{xsdt}");
    let mcfg = &text["MCFG"];
    assert!(
        mcfg.to_uppercase()
            .contains(&format!("{PCI_ECAM_START:016X}")),
        "{mcfg}"
    );
    let dsdt = &text["DSDT"];
    for needle in [
        "Device (PCI0)",
        "EisaId (\"PNP0A08\")",
        "EisaId (\"PNP0A03\")",
        "WordBusNumber",
        "DWordMemory",
        "WordIO",
        "_PRT",
        "EisaId (\"PNP0C02\")",
    ] {
        assert!(dsdt.contains(needle), "{needle} missing:\n{dsdt}");
    }
    let upper = dsdt.to_uppercase();
    assert!(upper.contains("0XE0100000"), "memory window:\n{dsdt}");
    assert!(upper.contains("0X0CF8"), "config ports:\n{dsdt}");
    assert!(
        upper.contains("0X0001FFFF"),
        "_PRT entry of device 1:\n{dsdt}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
