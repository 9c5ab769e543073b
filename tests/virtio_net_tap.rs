//! The virtio-net device over a real tap in a throwaway network namespace, driven by the
//! host-thread test driver (no KVM). An AF_PACKET socket on the tap, inside the namespace,
//! plays the network: it injects frames towards the guest and captures the guest's frames.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{require, Capability};
use vmm::devices::virtio::net::device::NET_FEATURES;
use vmm::devices::virtio::net::metrics::QueueMetrics;
use vmm::devices::virtio::net::tap::open_tap;
use vmm::devices::virtio::net::test_driver::{frame_seq, make_frame, wait_readable, Rig};
use vmm::devices::virtio::net::NetOptions;

const TAP: &str = "vnbt0";

/// A network namespace deleted on drop (also when the test panics).
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "vnetbed-t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        // No IPv6 autoconfiguration chatter on the tap: only the test's frames cross it.
        for key in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            let ok = Command::new("ip")
                .args(["netns", "exec", &ns.0, "sysctl", "-qw", key])
                .status();
            assert!(ok.map(|s| s.success()).unwrap_or(false), "sysctl {key}");
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// An AF_PACKET socket bound to `ifname` inside netns `ns`.
fn packet_socket(ns: &str, ifname: &str) -> OwnedFd {
    let ns_file = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
    let ifname = std::ffi::CString::new(ifname).unwrap();
    std::thread::spawn(move || {
        // SAFETY: setns only moves this short-lived thread into the namespace.
        assert_eq!(
            unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket creation.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fd was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `ifname` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        assert!(index > 0);
        // SAFETY: an all-zero sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        // Room for every frame the guest sends in one go (root may exceed rmem_max).
        let size: libc::c_int = 16 << 20;
        // SAFETY: setsockopt reads one c_int of the size given.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        assert_eq!(r, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
        fd
    })
    .join()
    .unwrap()
}

/// Receive one frame that entered the tap from the device (not one we sent).
fn recv_incoming(fd: i32, buf: &mut [u8]) -> Option<usize> {
    loop {
        if !wait_readable(fd, 5000) {
            return None;
        }
        // SAFETY: an all-zero sockaddr_ll is valid for recvfrom to fill.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: valid buffer and address storage for the sizes given.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n > 0 && from.sll_pkttype != libc::PACKET_OUTGOING {
            return Some(n as usize);
        }
    }
}

#[test]
fn frames_cross_a_real_tap_in_a_netns_both_ways() {
    if !require(
        "frames_cross_a_real_tap_in_a_netns_both_ways",
        &[Capability::Root, Capability::Tun, Capability::Program("ip")],
    ) {
        return;
    }
    let ns = Netns::create();
    let backend = open_tap(TAP, Some(&ns.0)).expect("open tap in netns");
    ip(&["-n", &ns.0, "link", "set", TAP, "up"]);
    let sock = packet_socket(&ns.0, TAP);
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
        let n = recv_incoming(sock.as_raw_fd(), &mut buf).expect("guest frame on the tap");
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
        // SAFETY: valid buffer, open fd.
        assert_eq!(
            unsafe { libc::send(sock.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) },
            500
        );
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
