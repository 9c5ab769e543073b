//! Issue 5's acceptance checks for the probe guest against vnetbed's own virtio-net device (`vnetbed run --net`, Linux 64-bit entry), in a test network of
//! its own (netns, bridge, tap, dnsmasq; tests/probe_support/testbed.rs). The image is
//! built by the test (`vnetbed image build probe`). The checks are shared with
//! tests/probe_qemu.rs (tests/probe_support/acceptance.rs).

mod common;
mod probe_support;

use common::require;
use probe_support::acceptance::{self, Vmm};

const VMM: Vmm = Vmm::Vnetbed;

#[test]
fn probe_on_vnetbed_binds_dhcp_fast_and_answers_100_pings() {
    if require(
        "probe_on_vnetbed_binds_dhcp_fast_and_answers_100_pings",
        &VMM.caps(),
    ) {
        acceptance::dhcp_and_ping(VMM, "", true);
    }
}

#[test]
fn probe_on_vnetbed_works_without_event_idx() {
    if require("probe_on_vnetbed_works_without_event_idx", &VMM.caps()) {
        acceptance::dhcp_and_ping(VMM, "probe.event_idx=0", false);
    }
}

#[test]
fn probe_on_vnetbed_renews_by_unicast_at_t1() {
    if require("probe_on_vnetbed_renews_by_unicast_at_t1", &VMM.caps()) {
        acceptance::renews_at_t1(VMM);
    }
}

#[test]
fn probe_on_vnetbed_serves_iperf3_tcp_both_directions() {
    if require(
        "probe_on_vnetbed_serves_iperf3_tcp_both_directions",
        &VMM.caps(),
    ) {
        acceptance::iperf3_tcp_both_directions(VMM);
    }
}

#[test]
fn probe_on_vnetbed_ends_iperf3_tcp_reverse_tests_with_1m_blocks() {
    if require(
        "probe_on_vnetbed_ends_iperf3_tcp_reverse_tests_with_1m_blocks",
        &VMM.caps(),
    ) {
        acceptance::iperf3_tcp_reverse_with_large_blocks_ends(VMM);
    }
}

#[test]
fn probe_on_vnetbed_serves_iperf3_udp_200m_with_under_1_percent_loss() {
    if require(
        "probe_on_vnetbed_serves_iperf3_udp_200m_with_under_1_percent_loss",
        &VMM.caps(),
    ) {
        acceptance::iperf3_udp_200m(VMM);
    }
}
