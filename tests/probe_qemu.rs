//! Issue 5's acceptance checks for the probe guest against QEMU microvm's virtio-net (an independent virtio-mmio device), in a test network of
//! its own (netns, bridge, tap, dnsmasq; tests/probe_support/testbed.rs). The image is
//! built by the test (`vnetbed image build probe`). The checks are shared with
//! tests/probe_vnetbed.rs (tests/probe_support/acceptance.rs).

mod common;
mod probe_support;

use common::require;
use probe_support::acceptance::{self, Vmm};

const VMM: Vmm = Vmm::Qemu;

#[test]
fn probe_on_qemu_binds_dhcp_fast_and_answers_100_pings() {
    if require(
        "probe_on_qemu_binds_dhcp_fast_and_answers_100_pings",
        &VMM.caps(),
    ) {
        acceptance::dhcp_and_ping(VMM, "", true);
    }
}

#[test]
fn probe_on_qemu_works_without_event_idx() {
    if require("probe_on_qemu_works_without_event_idx", &VMM.caps()) {
        acceptance::dhcp_and_ping(VMM, "probe.event_idx=0", false);
    }
}

#[test]
fn probe_on_qemu_renews_by_unicast_at_t1() {
    if require("probe_on_qemu_renews_by_unicast_at_t1", &VMM.caps()) {
        acceptance::renews_at_t1(VMM);
    }
}

#[test]
fn probe_on_qemu_serves_iperf3_tcp_both_directions() {
    if require(
        "probe_on_qemu_serves_iperf3_tcp_both_directions",
        &VMM.caps(),
    ) {
        acceptance::iperf3_tcp_both_directions(VMM);
    }
}

#[test]
fn probe_on_qemu_serves_iperf3_udp_200m_with_under_1_percent_loss() {
    if require(
        "probe_on_qemu_serves_iperf3_udp_200m_with_under_1_percent_loss",
        &VMM.caps(),
    ) {
        acceptance::iperf3_udp_200m(VMM);
    }
}
