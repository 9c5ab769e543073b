//! Issue 13's acceptance checks for the probe guest against vnetbed's own virtio-net device
//! behind a modern virtio-pci function (`vnetbed run --net ...,transport=pci`): the probe
//! finds the ECAM through the ACPI MCFG vnetbed writes, takes the BAR where vnetbed put
//! it, and drives the NIC with MSI-X (one vector each for configuration, rx and tx) or,
//! with `probe.msix=0`, INTx. The checks are those of every other VMM
//! (tests/probe_support/acceptance.rs); each builds its own testbed. The `legacy` tests
//! run them over a transitional function (`legacy=on`) whose legacy I/O BAR the probe
//! drives (`probe.virtio_pci=legacy`).

mod common;
mod probe_support;

use common::require;
use probe_support::acceptance::{self, Vmm};

const VMM: Vmm = Vmm::VnetbedPci;
const LEGACY: Vmm = Vmm::VnetbedPciLegacy;

fn check_dhcp_and_ping(test: &str, append: &str, interrupts: &str) {
    check_dhcp_and_ping_on(VMM, test, append, interrupts);
}

fn check_dhcp_and_ping_on(vmm: Vmm, test: &str, append: &str, interrupts: &str) {
    if require(test, &vmm.caps()) {
        let nic = acceptance::dhcp_and_ping(vmm, append, true);
        assert_eq!(nic["interrupts"], interrupts, "{nic}");
        assert!(nic["pci"].is_string(), "{nic}");
    }
}

#[test]
fn probe_on_vnetbed_pci_binds_dhcp_fast_and_answers_100_pings_over_msix() {
    check_dhcp_and_ping(
        "probe_on_vnetbed_pci_binds_dhcp_fast_and_answers_100_pings_over_msix",
        "",
        "msix",
    );
}

#[test]
fn probe_on_vnetbed_pci_works_with_intx() {
    check_dhcp_and_ping(
        "probe_on_vnetbed_pci_works_with_intx",
        "probe.msix=0",
        "intx",
    );
}

#[test]
fn probe_on_vnetbed_pci_works_without_event_idx() {
    let test = "probe_on_vnetbed_pci_works_without_event_idx";
    if require(test, &VMM.caps()) {
        acceptance::dhcp_and_ping(VMM, "probe.event_idx=0", false);
    }
}

#[test]
fn probe_on_vnetbed_pci_serves_iperf3_tcp_both_directions() {
    let test = "probe_on_vnetbed_pci_serves_iperf3_tcp_both_directions";
    if require(test, &VMM.caps()) {
        acceptance::iperf3_tcp_both_directions(VMM);
    }
}

#[test]
fn probe_on_vnetbed_pci_serves_iperf3_udp_200m_with_under_1_percent_loss() {
    let test = "probe_on_vnetbed_pci_serves_iperf3_udp_200m_with_under_1_percent_loss";
    if require(test, &VMM.caps()) {
        acceptance::iperf3_udp_200m(VMM);
    }
}

#[test]
fn probe_on_vnetbed_pci_legacy_binds_dhcp_fast_and_answers_100_pings_over_msix() {
    check_dhcp_and_ping_on(
        LEGACY,
        "probe_on_vnetbed_pci_legacy_binds_dhcp_fast_and_answers_100_pings_over_msix",
        "",
        "msix",
    );
}

#[test]
fn probe_on_vnetbed_pci_transitional_works_over_its_modern_interface_in_bar4() {
    check_dhcp_and_ping_on(
        Vmm::VnetbedPciTransitional,
        "probe_on_vnetbed_pci_transitional_works_over_its_modern_interface_in_bar4",
        "",
        "msix",
    );
}

#[test]
fn probe_on_vnetbed_pci_legacy_works_with_intx_and_the_10_byte_header() {
    // Without MRG_RXBUF (nor VERSION_1, which legacy lacks) the net header is 10 bytes.
    let test = "probe_on_vnetbed_pci_legacy_works_with_intx_and_the_10_byte_header";
    if require(test, &LEGACY.caps()) {
        let nic =
            acceptance::dhcp_and_ping_with(LEGACY, "probe.msix=0 probe.mrg_rxbuf=0", true, false);
        assert_eq!(nic["interrupts"], "intx", "{nic}");
    }
}

#[test]
fn probe_on_vnetbed_pci_legacy_serves_iperf3_tcp_both_directions() {
    let test = "probe_on_vnetbed_pci_legacy_serves_iperf3_tcp_both_directions";
    if require(test, &LEGACY.caps()) {
        acceptance::iperf3_tcp_both_directions(LEGACY);
    }
}

#[test]
fn probe_on_vnetbed_pci_legacy_serves_iperf3_udp_200m_with_under_1_percent_loss() {
    let test = "probe_on_vnetbed_pci_legacy_serves_iperf3_udp_200m_with_under_1_percent_loss";
    if require(test, &LEGACY.caps()) {
        acceptance::iperf3_udp_200m(LEGACY);
    }
}
