//! Issue 11's acceptance checks for the probe guest on QEMU's `virtio-net-pci`: the same
//! checks as on virtio-mmio (tests/probe_support/acceptance.rs: DHCP, 100 pings, iperf3
//! TCP both ways and UDP, renewal at T1), on q35 (SeaBIOS assigns the BARs and boots the
//! probe; ECAM from MCFG) with the modern and the legacy interface, and on
//! `microvm,pcie=on` (no firmware: the probe assigns the BARs itself). MSI-X is the
//! default; INTx (`probe.msix=0`) is checked on q35 and on pc, and pc (ports 0xcf8/0xcfc)
//! with both interfaces.
//! Each check builds its own testbed (namespace, bridge, tap, dnsmasq).

mod common;
mod probe_support;

use common::require;
use probe_support::acceptance::{self, PciInterface, PciMachine, Vmm};

const MODERN: Vmm = Vmm::QemuPci(PciMachine::Q35, PciInterface::Modern);
const LEGACY: Vmm = Vmm::QemuPci(PciMachine::Q35, PciInterface::Legacy);
const MICROVM: Vmm = Vmm::QemuPci(PciMachine::MicrovmPcie, PciInterface::Modern);
const PC_LEGACY: Vmm = Vmm::QemuPci(PciMachine::Pc, PciInterface::Legacy);
const PC_MODERN: Vmm = Vmm::QemuPci(PciMachine::Pc, PciInterface::Modern);

fn check_dhcp_and_ping(test: &str, vmm: Vmm, append: &str, interrupts: &str) {
    if require(test, &vmm.caps()) {
        let nic = acceptance::dhcp_and_ping(vmm, append, true);
        assert_eq!(nic["interrupts"], interrupts, "{nic}");
        assert!(nic["pci"].is_string(), "{nic}");
    }
}

#[test]
fn probe_on_qemu_pci_modern_binds_dhcp_fast_and_answers_100_pings() {
    check_dhcp_and_ping(
        "probe_on_qemu_pci_modern_binds_dhcp_fast_and_answers_100_pings",
        MODERN,
        "",
        "msix",
    );
}

#[test]
fn probe_on_qemu_pci_modern_works_with_intx() {
    check_dhcp_and_ping(
        "probe_on_qemu_pci_modern_works_with_intx",
        MODERN,
        "probe.msix=0",
        "intx",
    );
}

#[test]
fn probe_on_qemu_pci_modern_works_without_event_idx() {
    let test = "probe_on_qemu_pci_modern_works_without_event_idx";
    if require(test, &MODERN.caps()) {
        acceptance::dhcp_and_ping(MODERN, "probe.event_idx=0", false);
    }
}

#[test]
fn probe_on_qemu_pci_modern_renews_by_unicast_at_t1() {
    if require(
        "probe_on_qemu_pci_modern_renews_by_unicast_at_t1",
        &MODERN.caps(),
    ) {
        acceptance::renews_at_t1(MODERN);
    }
}

#[test]
fn probe_on_qemu_pci_modern_serves_iperf3_tcp_both_directions() {
    let test = "probe_on_qemu_pci_modern_serves_iperf3_tcp_both_directions";
    if require(test, &MODERN.caps()) {
        acceptance::iperf3_tcp_both_directions(MODERN);
    }
}

#[test]
fn probe_on_qemu_pci_modern_ends_iperf3_tcp_reverse_tests_with_1m_blocks() {
    let test = "probe_on_qemu_pci_modern_ends_iperf3_tcp_reverse_tests_with_1m_blocks";
    if require(test, &MODERN.caps()) {
        acceptance::iperf3_tcp_reverse_with_large_blocks_ends(MODERN);
    }
}

#[test]
fn probe_on_qemu_pci_modern_serves_iperf3_udp_200m_with_under_1_percent_loss() {
    let test = "probe_on_qemu_pci_modern_serves_iperf3_udp_200m_with_under_1_percent_loss";
    if require(test, &MODERN.caps()) {
        acceptance::iperf3_udp_200m(MODERN);
    }
}

#[test]
fn probe_on_qemu_pci_legacy_binds_dhcp_fast_and_answers_100_pings() {
    check_dhcp_and_ping(
        "probe_on_qemu_pci_legacy_binds_dhcp_fast_and_answers_100_pings",
        LEGACY,
        "",
        "msix",
    );
}

#[test]
fn probe_on_qemu_pci_legacy_on_pc_works_with_intx_and_config_ports() {
    check_dhcp_and_ping(
        "probe_on_qemu_pci_legacy_on_pc_works_with_intx_and_config_ports",
        PC_LEGACY,
        "probe.msix=0",
        "intx",
    );
}

#[test]
fn probe_on_qemu_pci_modern_on_pc_works_with_msix_and_config_ports() {
    check_dhcp_and_ping(
        "probe_on_qemu_pci_modern_on_pc_works_with_msix_and_config_ports",
        PC_MODERN,
        "",
        "msix",
    );
}

#[test]
fn probe_on_qemu_pci_legacy_works_without_event_idx() {
    let test = "probe_on_qemu_pci_legacy_works_without_event_idx";
    if require(test, &LEGACY.caps()) {
        acceptance::dhcp_and_ping(LEGACY, "probe.event_idx=0", false);
    }
}

#[test]
fn probe_on_qemu_pci_legacy_renews_by_unicast_at_t1() {
    if require(
        "probe_on_qemu_pci_legacy_renews_by_unicast_at_t1",
        &LEGACY.caps(),
    ) {
        acceptance::renews_at_t1(LEGACY);
    }
}

#[test]
fn probe_on_qemu_pci_legacy_serves_iperf3_tcp_both_directions() {
    let test = "probe_on_qemu_pci_legacy_serves_iperf3_tcp_both_directions";
    if require(test, &LEGACY.caps()) {
        acceptance::iperf3_tcp_both_directions(LEGACY);
    }
}

#[test]
fn probe_on_qemu_pci_legacy_serves_iperf3_udp_200m_with_under_1_percent_loss() {
    let test = "probe_on_qemu_pci_legacy_serves_iperf3_udp_200m_with_under_1_percent_loss";
    if require(test, &LEGACY.caps()) {
        acceptance::iperf3_udp_200m(LEGACY);
    }
}

#[test]
fn probe_on_qemu_microvm_pcie_assigns_bars_binds_dhcp_and_answers_100_pings() {
    check_dhcp_and_ping(
        "probe_on_qemu_microvm_pcie_assigns_bars_binds_dhcp_and_answers_100_pings",
        MICROVM,
        "",
        "msix",
    );
}

#[test]
fn probe_on_qemu_microvm_pcie_serves_iperf3_udp_200m_with_under_1_percent_loss() {
    let test = "probe_on_qemu_microvm_pcie_serves_iperf3_udp_200m_with_under_1_percent_loss";
    if require(test, &MICROVM.caps()) {
        acceptance::iperf3_udp_200m(MICROVM);
    }
}

/// Bad input: the only virtio function is not a network card (virtio-rng). The probe
/// says what it found and ends through the debug-exit port (status 9), never hangs.
#[test]
fn probe_on_qemu_pci_reports_a_virtio_function_that_is_not_a_nic_and_exits() {
    let test = "probe_on_qemu_pci_reports_a_virtio_function_that_is_not_a_nic_and_exits";
    if !require(
        test,
        &[
            common::Capability::Kvm,
            common::Capability::Program("qemu-system-x86_64"),
        ],
    ) {
        return;
    }
    let mut command = std::process::Command::new("qemu-system-x86_64");
    command
        .args(["-M", "q35", "-accel", "kvm", "-m", "64", "-nographic"])
        .args(["-no-reboot", "-nodefaults", "-serial", "stdio"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .args(["-device", "virtio-rng-pci,romfile="])
        .arg("-kernel")
        .arg(probe_support::probe_image())
        .args(["-append", "console=ttyS0"]);
    let run = probe_support::run_bounded(command, std::time::Duration::from_secs(300));
    assert_eq!(
        run.code(),
        probe_support::debug_exit_status(4),
        "console:\n{}",
        run.serial
    );
    let found = run.events_named("pci_device");
    assert!(
        found
            .iter()
            .any(|e| e["virtio_type"] == 4 && e["net"] == false),
        "console:\n{}",
        run.serial
    );
    let fatal = run.events_named("fatal");
    assert_eq!(fatal.len(), 1, "console:\n{}", run.serial);
    assert_eq!(fatal[0]["reason"], "nic");
    assert!(
        fatal[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("is not a network card"),
        "{}",
        fatal[0]
    );
}

/// Bad input: a device that does not accept FEATURES_OK. QEMU's modern-only
/// virtio-net-pci with `iommu_platform=on` offers VIRTIO_F_ACCESS_PLATFORM (bit 33),
/// which the probe does not take, and QEMU refuses such a feature set (it clears
/// FEATURES_OK). The probe says so and ends through the debug-exit port (status 9).
/// On `microvm,pcie=on`: no firmware, so it takes well under a second.
#[test]
fn probe_on_qemu_pci_reports_a_device_that_refuses_features_ok_and_exits() {
    let test = "probe_on_qemu_pci_reports_a_device_that_refuses_features_ok_and_exits";
    if !require(
        test,
        &[
            common::Capability::Kvm,
            common::Capability::Program("qemu-system-x86_64"),
        ],
    ) {
        return;
    }
    let mut command = std::process::Command::new("qemu-system-x86_64");
    command
        .args([
            "-M",
            "microvm,pcie=on,x-option-roms=off,isa-serial=on,rtc=off",
        ])
        .args(["-accel", "kvm", "-m", "64", "-nographic"])
        .args(["-no-reboot", "-nodefaults", "-serial", "stdio"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .args([
            "-device",
            "virtio-net-pci,romfile=,disable-legacy=on,iommu_platform=on",
        ])
        .arg("-kernel")
        .arg(probe_support::probe_image())
        .args(["-append", "console=ttyS0"]);
    let run = probe_support::run_bounded(command, std::time::Duration::from_secs(120));
    assert_eq!(
        run.code(),
        probe_support::debug_exit_status(4),
        "console:\n{}",
        run.serial
    );
    let nic = run.events_named("pci_nic");
    assert!(
        nic.iter().any(|e| e["transport"] == "virtio-pci-modern"),
        "console:\n{}",
        run.serial
    );
    let fatal = run.events_named("fatal");
    assert_eq!(fatal.len(), 1, "console:\n{}", run.serial);
    assert_eq!(fatal[0]["reason"], "nic");
    assert!(
        fatal[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("did not accept our features"),
        "{}",
        fatal[0]
    );
    // The probe never brought the NIC up.
    assert!(
        run.events_named("nic").is_empty(),
        "console:\n{}",
        run.serial
    );
}
