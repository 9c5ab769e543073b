//! Issue 13's acceptance checks for the probe guest against vnetbed's own virtio-net device
//! behind a modern virtio-pci function (`vnetbed run --net ...,transport=pci`): the probe
//! finds the ECAM through the ACPI MCFG vnetbed writes, takes the BAR where vnetbed put
//! it, and drives the NIC with MSI-X (one vector each for configuration, rx and tx) or,
//! with `probe.msix=0`, INTx. The checks are those of every other VMM
//! (tests/probe_support/acceptance.rs); each builds its own testbed.

mod common;
mod probe_support;

use common::require;
use probe_support::acceptance::{self, Vmm};

const VMM: Vmm = Vmm::VnetbedPci;

fn check_dhcp_and_ping(test: &str, append: &str, interrupts: &str) {
    if require(test, &VMM.caps()) {
        let nic = acceptance::dhcp_and_ping(VMM, append, true);
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
