//! The virtio-net device over a real tap in a throwaway network namespace, driven by the
//! host-thread test driver (no KVM). An AF_PACKET socket on the tap, inside the namespace,
//! plays the network: it injects frames towards the guest and captures the guest's frames.

mod common;

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{require, Capability};
use vmm::devices::virtio::net::device::NET_FEATURES;
use vmm::devices::virtio::net::metrics::QueueMetrics;
use vmm::devices::virtio::net::tap::{open_or_create_tap, open_tap};
use vmm::devices::virtio::net::test_driver::{frame_seq, make_frame, Rig};
use vmm::devices::virtio::net::test_netns::{ip, packet_socket, recv_incoming, Netns};
use vmm::devices::virtio::net::NetOptions;

const TAP: &str = "vnbt0";

#[test]
fn frames_cross_a_real_tap_in_a_netns_both_ways() {
    if !require(
        "frames_cross_a_real_tap_in_a_netns_both_ways",
        &[Capability::Root, Capability::Tun, Capability::Program("ip")],
    ) {
        return;
    }
    let ns = Netns::create().expect("create a netns");
    let backend = open_or_create_tap(TAP, Some(ns.name())).expect("open tap in netns");
    ip(&["-n", ns.name(), "link", "set", TAP, "up"]).expect("tap up");
    let sock = packet_socket(ns.name(), TAP).expect("packet socket");
    let rig = Rig::new(256, Box::new(backend), NetOptions::default()).unwrap();
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .unwrap()
        .start(1000, 300)
        .unwrap();

    // Guest -> tap: 1000 numbered frames, in order.
    let mut buf = vec![0u8; 2048];
    let mut seen = 0u64;
    while seen < 1000 {
        let n = recv_incoming(sock.as_raw_fd(), &mut buf, 5000).expect("guest frame on the tap");
        if buf[12..14] == [0x88, 0xb5] {
            assert_eq!(n, 300);
            assert_eq!(frame_seq(&buf[..n]), Some(seen), "tx order");
            seen += 1;
        }
    }

    // Tap -> guest: bursts of 64 (below the tap's queue length), each fully received.
    let total = 5000u64;
    let end = Instant::now() + Duration::from_secs(60);
    for seq in 0..total {
        let f = make_frame(seq, 500);
        // SAFETY: `f` is a live buffer of the length given, which send only reads; the
        // socket is open and ours for the whole call.
        let sent = unsafe { libc::send(sock.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        assert_eq!(sent, 500);
        if seq % 64 == 63 || seq + 1 == total {
            while guest.stats.rx_frames.load(Ordering::Relaxed) < seq + 1 {
                assert!(Instant::now() < end, "rx stalled at {seq}");
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    assert_eq!(guest.stats.rx_frames.load(Ordering::Relaxed), total);
    assert_eq!(guest.stats.rx_out_of_order.load(Ordering::Relaxed), 0);
    assert_eq!(guest.stats.rx_malformed.load(Ordering::Relaxed), 0);
    assert_eq!(QueueMetrics::get(&rig.metrics.rx.drops), 0);
    guest.stop();
    drop(rig);
}

#[test]
fn a_missing_netns_is_a_clear_error() {
    let err = open_tap(TAP, Some("vnetbed-no-such-ns"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ip netns add"), "{err}");
}
