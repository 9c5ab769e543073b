//! The probe's acceptance checks through a vhost-user backend: vnetbed's virtio-mmio device
//! model with DPDK's `dpdk-testpmd` (Debian's `dpdk` package) as the datapath, which the
//! test starts in the testbed's namespace (vhost PMD port + tap PMD port on the bridge, io
//! forwarding). Shared checks: tests/probe_support/acceptance.rs.

mod common;
mod probe_support;

use common::require;
use probe_support::acceptance::{self, Vmm};

const VMM: Vmm = Vmm::Dpdk;

#[test]
fn probe_through_dpdk_binds_dhcp_and_answers_100_pings() {
    if require(
        "probe_through_dpdk_binds_dhcp_and_answers_100_pings",
        &VMM.caps(),
    ) {
        acceptance::dhcp_and_ping(VMM, "", true);
    }
}

#[test]
fn probe_through_dpdk_serves_iperf3_tcp_both_directions() {
    if require(
        "probe_through_dpdk_serves_iperf3_tcp_both_directions",
        &VMM.caps(),
    ) {
        acceptance::iperf3_tcp_both_directions(VMM);
    }
}

#[test]
fn probe_through_dpdk_in_direct_mode_answers_pings_with_kicks_uncounted() {
    if require(
        "probe_through_dpdk_in_direct_mode_answers_pings_with_kicks_uncounted",
        &VMM.caps(),
    ) {
        acceptance::dpdk_direct_mode();
    }
}

#[test]
fn probe_through_dpdk_survives_a_testpmd_restart_with_reconnect() {
    if require(
        "probe_through_dpdk_survives_a_testpmd_restart_with_reconnect",
        &VMM.caps(),
    ) {
        // BENCHMARKS.md's reconnect downtime: VNETBED_RECONNECT_RESTARTS=6 restarts more.
        let restarts = std::env::var("VNETBED_RECONNECT_RESTARTS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        acceptance::dpdk_reconnect(restarts);
    }
}

#[test]
fn a_backend_whose_calls_are_lost_is_judged_lost_interrupt_by_the_relay() {
    if require(
        "a_backend_whose_calls_are_lost_is_judged_lost_interrupt_by_the_relay",
        &VMM.caps(),
    ) {
        acceptance::dpdk_lost_interrupt_is_judged();
    }
}
