//! End-to-end virtio-net device tests without KVM: the real device (transport, device
//! thread, notify model, watchdog) against the Linux-faithful test driver on host threads,
//! over a SOCK_SEQPACKET socket pair (the tap itself is tested in the root crate's tests).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress};
use vmm::devices::virtio::mmio::reg;
use vmm::devices::virtio::net::backend::socketpair_backend;
use vmm::devices::virtio::net::device::{offered_features, NET_FEATURES};
use vmm::devices::virtio::net::metrics::QueueMetrics;
use vmm::devices::virtio::net::test_driver::{
    frame_seq, inject_frames, ring_addrs, wait_readable, Rig,
};
use vmm::devices::virtio::net::{NetOptions, NotifyModel, OnStall};
use vmm::devices::virtio::queue::Descriptor;
use vmm::devices::virtio::status::DEVICE_NEEDS_RESET;

const MRG_RXBUF: u64 = 1 << 15;
const EVENT_IDX: u64 = 1 << 29;

/// The queue backends every test that is not about a buggy model runs on: vnetbed's own
/// queue with the fenced notify model, and rust-vmm's `virtio-queue` crate.
macro_rules! on_both_queue_backends {
    ($($name:ident),* $(,)?) => {
        /// vnetbed's own queue, fenced.
        mod vnetbed_queue {
            $(#[test]
            fn $name() {
                super::$name(super::NotifyModel::Fenced)
            })*
        }
        /// rust-vmm's virtio-queue.
        mod virtio_queue {
            $(#[test]
            fn $name() {
                super::$name(super::NotifyModel::VirtioQueue)
            })*
        }
    };
}

on_both_queue_backends!(
    frames_flow_both_ways_in_order_with_correct_num_buffers,
    fenced_survives_a_million_ring_empty_cycles_without_a_stall,
    fenced_bidirectional_flood_has_no_stall,
    counters_are_emitted_every_second_per_queue,
    oversize_frames_are_counted_and_dropped_never_truncated,
    every_bad_guest_input_needs_reset_then_recovers,
    a_frame_read_while_the_ring_is_dry_is_delivered_first_after_the_kick,
    tx_eagain_waits_for_the_backend_and_drops_nothing,
    a_frame_needing_more_merged_buffers_than_posted_waits_without_spinning,
);

/// Default device options on the backend of `model`.
fn opts(model: NotifyModel) -> NetOptions {
    NetOptions {
        notify_model: model,
        ..NetOptions::default()
    }
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    QueueMetrics::get(c)
}

fn wait_until(bound: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + bound;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

fn frames_flow_both_ways_in_order_with_correct_num_buffers(model: NotifyModel) {
    let offered = offered_features(&opts(model));
    for (accept, buf_len) in [
        (NET_FEATURES, 256u32),
        (NET_FEATURES & !MRG_RXBUF, 2048),
        (NET_FEATURES & !EVENT_IDX, 256),
    ] {
        // virtio-queue offers no MRG_RXBUF: every frame must fit one buffer there.
        let buf_len = if accept & offered & MRG_RXBUF == 0 {
            buf_len.max(2048)
        } else {
            buf_len
        };
        let (backend, peer) = socketpair_backend(1 << 20).unwrap();
        let rig = Rig::new(64, Box::new(backend), opts(model)).unwrap();
        let guest = rig
            .bring_up(accept, buf_len)
            .unwrap()
            .start(5000, 1000)
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, fd) = (stop.clone(), peer.as_raw_fd());
        // 1000-byte frames: with 256-byte buffers each spans 4-5 merged buffers.
        let injector = std::thread::spawn(move || inject_frames(fd, &s2, 1000));
        let mut tx_seen = 0u64;
        let mut buf = vec![0u8; 4096];
        let ok = wait_until(Duration::from_secs(60), || {
            while wait_readable(peer.as_raw_fd(), 0) {
                // SAFETY: valid buffer, open fd.
                let n = unsafe {
                    libc::recv(
                        peer.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n <= 0 {
                    break;
                }
                assert_eq!(n, 1000, "tx frame length");
                assert_eq!(frame_seq(&buf[..n as usize]), Some(tx_seen), "tx order");
                tx_seen += 1;
            }
            guest.stats.rx_frames.load(Ordering::Relaxed) >= 20_000 && tx_seen == 5000
        });
        stop.store(true, Ordering::SeqCst);
        injector.join().unwrap();
        let s = &guest.stats;
        assert!(
            ok,
            "rx {} tx {tx_seen}",
            s.rx_frames.load(Ordering::Relaxed)
        );
        assert_eq!(
            s.rx_out_of_order.load(Ordering::Relaxed),
            0,
            "no frame lost or reordered"
        );
        assert_eq!(
            s.rx_malformed.load(Ordering::Relaxed),
            0,
            "num_buffers and lengths right"
        );
        assert_eq!(get(&rig.metrics.rx.drops), 0);
        assert_eq!(get(&rig.metrics.tx.frames), 5000);
        assert!(rig.log.events("stall").is_empty());
        let act = rig.log.events("device_activated");
        assert_eq!(act.len(), 1);
        let names = act[0]["feature_names"].as_array().unwrap().len();
        assert_eq!(names, (accept & offered).count_ones() as usize);
        assert_eq!(
            act[0]["queue_backend"]
                .as_str()
                .unwrap()
                .starts_with("virtio-queue"),
            model == NotifyModel::VirtioQueue
        );
        guest.stop();
    }
}

/// Runs the rx ring dry constantly: a 1-entry ring, frames injected without pause.
fn ring_empty_workload(options: NetOptions, cycles: u64, bound: Duration) -> (Rig, u64, Duration) {
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    let rig = Rig::new(1, Box::new(backend), options).unwrap();
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .unwrap()
        .start(0, 0)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, fd) = (stop.clone(), peer.as_raw_fd());
    let injector = std::thread::spawn(move || inject_frames(fd, &s2, 64));
    let start = Instant::now();
    wait_until(bound, || get(&rig.metrics.rx.ring_empty) >= cycles);
    let took = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    injector.join().unwrap();
    let out_of_order = guest.stats.rx_out_of_order.load(Ordering::Relaxed);
    let malformed = guest.stats.rx_malformed.load(Ordering::Relaxed);
    guest.stop();
    assert_eq!(
        out_of_order, 0,
        "deferred frames are delivered first, none lost"
    );
    assert_eq!(malformed, 0);
    let n = get(&rig.metrics.rx.ring_empty);
    (rig, n, took)
}

fn fenced_survives_a_million_ring_empty_cycles_without_a_stall(model: NotifyModel) {
    let cycles: u64 = std::env::var("VNETBED_RX_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let options = NetOptions {
        stall_timeout: Duration::from_millis(500),
        ..opts(model)
    };
    let (rig, n, took) = ring_empty_workload(options, cycles, Duration::from_secs(600));
    let m = &rig.metrics.rx;
    eprintln!(
        "{model}: {n} ring-empty cycles in {took:?} ({:.0}/s), {} frames, {} enables, {} kicks, {} interrupts",
        n as f64 / took.as_secs_f64(),
        get(&m.frames),
        get(&m.notification_enables),
        get(&m.kicks),
        get(&m.interrupts_sent)
    );
    assert!(n >= cycles, "only {n} ring-empty cycles");
    assert_eq!(get(&m.stalls_lost_kick) + get(&m.stalls_lost_interrupt), 0);
    assert!(rig.log.events("stall").is_empty());
}

fn fenced_bidirectional_flood_has_no_stall(model: NotifyModel) {
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    let options = NetOptions {
        stall_timeout: Duration::from_millis(300),
        ..opts(model)
    };
    let rig = Rig::new(8, Box::new(backend), options).unwrap();
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .unwrap()
        .start(u64::MAX, 64)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, fd) = (stop.clone(), peer.as_raw_fd());
    let injector = std::thread::spawn(move || inject_frames(fd, &s2, 64));
    let reader = drain_peer(fd, stop.clone());
    let (rx, tx) = (&rig.metrics.rx, &rig.metrics.tx);
    // Long enough for many stall timeouts, and for as many cycles as the unfenced test needed
    // to stall several times.
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    injector.join().unwrap();
    reader.join().unwrap();
    guest.stop();
    eprintln!(
        "{model} flood: rx {} frames {} ring-empty; tx {} frames {} ring-empty",
        get(&rx.frames),
        get(&rx.ring_empty),
        get(&tx.frames),
        get(&tx.ring_empty)
    );
    assert!(
        get(&rx.ring_empty) > 100 && get(&tx.ring_empty) > 100,
        "the rings ran dry often"
    );
    let stalls = get(&rx.stalls_lost_kick) + get(&rx.stalls_lost_interrupt);
    assert_eq!(
        stalls + get(&tx.stalls_lost_kick) + get(&tx.stalls_lost_interrupt),
        0
    );
}

fn buggy(model: NotifyModel, on_stall: OnStall) -> NetOptions {
    NetOptions {
        notify_model: model,
        race_window: Duration::from_micros(500),
        stall_timeout: Duration::from_millis(300),
        on_stall,
        ..NetOptions::default()
    }
}

/// Bound on detection: both kinds within this, each stall reported `stall_timeout + 100 ms`
/// after it starts.
const STALL_BOUND: Duration = Duration::from_secs(60);

/// Reads and discards everything the device transmits, until `stop`.
fn drain_peer(fd: i32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            if wait_readable(fd, 20) {
                // SAFETY: valid buffer, open fd.
                if unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) }
                    > 0
                {
                    n += 1;
                }
            }
        }
        n
    })
}

#[test]
fn unfenced_loses_kicks_and_interrupts_and_recover_keeps_it_going() {
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    // An 8-entry ring; the guest receives (injected frames) and transmits continuously.
    let rig = Rig::new(
        8,
        Box::new(backend),
        buggy(NotifyModel::Unfenced, OnStall::Recover),
    )
    .unwrap();
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .unwrap()
        .start(u64::MAX, 64)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, fd) = (stop.clone(), peer.as_raw_fd());
    let injector = std::thread::spawn(move || inject_frames(fd, &s2, 64));
    let reader = drain_peer(fd, stop.clone());
    let (rx, tx) = (&rig.metrics.rx, &rig.metrics.tx);
    let kicks_lost = || get(&rx.stalls_lost_kick) + get(&tx.stalls_lost_kick);
    let irqs_lost = || get(&rx.stalls_lost_interrupt) + get(&tx.stalls_lost_interrupt);
    let start = Instant::now();
    let both = wait_until(STALL_BOUND, || kicks_lost() > 0 && irqs_lost() > 0);
    let took = start.elapsed();
    // After the recoveries, frames keep flowing both ways.
    let (rx0, tx0) = (
        guest.stats.rx_frames.load(Ordering::Relaxed),
        get(&tx.frames),
    );
    let flowing = wait_until(Duration::from_secs(10), || {
        guest.stats.rx_frames.load(Ordering::Relaxed) > rx0 + 100 && get(&tx.frames) > tx0 + 100
    });
    stop.store(true, Ordering::SeqCst);
    injector.join().unwrap();
    reader.join().unwrap();
    let out_of_order = guest.stats.rx_out_of_order.load(Ordering::Relaxed);
    guest.stop();
    eprintln!(
        "unfenced: rx lost kicks {} lost interrupts {}; tx lost kicks {} lost interrupts {}; recovered {} in {took:?}; rx {} race windows, {} ring-empty",
        get(&rx.stalls_lost_kick),
        get(&rx.stalls_lost_interrupt),
        get(&tx.stalls_lost_kick),
        get(&tx.stalls_lost_interrupt),
        get(&rx.recovered) + get(&tx.recovered),
        get(&rx.race_windows_opened),
        get(&rx.ring_empty)
    );
    assert!(both, "both stall kinds within {STALL_BOUND:?}");
    assert!(flowing, "recover mode keeps traffic going");
    assert_eq!(out_of_order, 0);
    let stalls = rig.log.events("stall");
    for kind in ["lost_kick", "lost_interrupt"] {
        let s = stalls
            .iter()
            .find(|s| s["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} event"));
        for field in [
            "queue",
            "detected_at",
            "stalled_since",
            "device_next_avail",
            "device_next_used",
            "guest_avail_idx",
            "guest_used_event",
            "guest_avail_flags",
            "last_kick",
            "last_interrupt",
            "counters",
            "race_at",
        ] {
            assert!(s.get(field).is_some(), "{kind} event has {field}: {s}");
        }
        assert!(s["stalled_ms"].as_u64().unwrap() >= 300);
        let (race, detected) = (
            s["race_at"].as_f64().unwrap(),
            s["detected_at"].as_f64().unwrap(),
        );
        assert!(
            race <= detected && detected - race >= 0.3,
            "{kind}: race {race} detected {detected}"
        );
    }
    let kick = stalls.iter().find(|s| s["kind"] == "lost_kick").unwrap();
    assert_ne!(
        kick["guest_avail_idx"], kick["device_next_avail"],
        "guest moved past the device"
    );
}

#[test]
fn no_recheck_loses_a_kick_and_report_leaves_it_stalled() {
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    let rig = Rig::new(
        2,
        Box::new(backend),
        buggy(NotifyModel::NoRecheck, OnStall::Report),
    )
    .unwrap();
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .unwrap()
        .start(0, 0)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, fd) = (stop.clone(), peer.as_raw_fd());
    let injector = std::thread::spawn(move || inject_frames(fd, &s2, 64));
    let m = &rig.metrics.rx;
    let start = Instant::now();
    let found = wait_until(STALL_BOUND, || get(&m.stalls_lost_kick) > 0);
    eprintln!(
        "no-recheck: lost kick after {:?}, {} cycles",
        start.elapsed(),
        get(&m.ring_empty)
    );
    assert!(found, "lost kick within {STALL_BOUND:?}");
    // Report mode leaves the stall: rx stops for good.
    let frames = guest.stats.rx_frames.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        guest.stats.rx_frames.load(Ordering::Relaxed),
        frames,
        "still stalled"
    );
    assert_eq!(
        get(&m.stalls_lost_interrupt),
        0,
        "no-recheck keeps the fenced interrupt path"
    );
    assert_eq!(get(&m.recovered), 0);
    stop.store(true, Ordering::SeqCst);
    injector.join().unwrap();
    guest.stop();
    assert_eq!(rig.log.events("stall").len(), 1, "one report per stall");
}

#[test]
fn on_stall_exit_tells_the_vmm() {
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    let rig = Rig::new(
        2,
        Box::new(backend),
        buggy(NotifyModel::NoRecheck, OnStall::Exit),
    )
    .unwrap();
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .unwrap()
        .start(0, 0)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, fd) = (stop.clone(), peer.as_raw_fd());
    let injector = std::thread::spawn(move || inject_frames(fd, &s2, 64));
    let fired = wait_until(STALL_BOUND, || rig.stall_exit.fired());
    stop.store(true, Ordering::SeqCst);
    injector.join().unwrap();
    guest.stop();
    assert!(fired);
    assert!(
        wait_readable(rig.stall_exit.event().as_raw_fd(), 0),
        "exit EventFd readable"
    );
}

fn counters_are_emitted_every_second_per_queue(model: NotifyModel) {
    let (backend, _peer) = socketpair_backend(1 << 16).unwrap();
    let rig = Rig::new(16, Box::new(backend), opts(model)).unwrap();
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .unwrap()
        .start(10, 100)
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || rig
        .log
        .events("counters")
        .len()
        >= 4));
    guest.stop();
    let c = rig.log.events("counters");
    assert!(c.iter().any(|e| e["queue"] == "rx") && c.iter().any(|e| e["queue"] == "tx"));
    for key in [
        "frames",
        "bytes",
        "kicks",
        "interrupts_sent",
        "interrupts_suppressed",
        "ring_empty",
        "notification_enables",
        "race_windows_opened",
        "tap_eagain",
        "drops",
    ] {
        assert!(c[0].get(key).is_some(), "counters have {key}");
    }
    assert_eq!(
        c.iter()
            .filter(|e| e["queue"] == "tx")
            .map(|e| e["frames"].as_u64().unwrap())
            .max(),
        Some(10)
    );
}

fn oversize_frames_are_counted_and_dropped_never_truncated(model: NotifyModel) {
    // Without MRG_RXBUF a frame must fit one 256-byte buffer.
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    let rig = Rig::new(8, Box::new(backend), opts(model)).unwrap();
    let guest = rig
        .bring_up(NET_FEATURES & !MRG_RXBUF, 256)
        .unwrap()
        .start(0, 0)
        .unwrap();
    for (seq, len) in [(0u64, 100usize), (1, 1000), (1, 200)] {
        let f = vmm::devices::virtio::net::test_driver::make_frame(seq, len);
        // SAFETY: `f` is a live buffer of the length given, which send only reads; the
        // socket is open and ours for the whole call.
        let sent = unsafe { libc::send(peer.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        assert_eq!(sent, len as isize);
    }
    assert!(wait_until(Duration::from_secs(10), || guest
        .stats
        .rx_frames
        .load(Ordering::Relaxed)
        == 2));
    assert_eq!(get(&rig.metrics.rx.oversize_drops), 1);
    assert_eq!(get(&rig.metrics.rx.drops), 1);
    assert_eq!(guest.stats.rx_malformed.load(Ordering::Relaxed), 0);
    assert_eq!(guest.stats.rx_out_of_order.load(Ordering::Relaxed), 0);
    guest.stop();
}

/// Write a raw chain for queue `q` (bypassing the driver's checks), publish it and kick.
fn inject_bad(rig: &Rig, q: usize, descs: &[(u16, Descriptor)], head: u16, avail_idx: u16) {
    let (desc, avail, _) = ring_addrs(q);
    for (i, d) in descs {
        rig.mem
            .write_obj(*d, GuestAddress(desc + 16 * u64::from(*i)))
            .unwrap();
    }
    rig.mem.write_obj(head, GuestAddress(avail + 4)).unwrap();
    rig.mem
        .store(avail_idx, GuestAddress(avail + 2), Ordering::Release)
        .unwrap();
    rig.write(reg::QUEUE_NOTIFY, q as u32);
}

fn every_bad_guest_input_needs_reset_then_recovers(model: NotifyModel) {
    let w = vmm::devices::virtio::queue::VIRTQ_DESC_F_WRITE;
    let n = vmm::devices::virtio::queue::VIRTQ_DESC_F_NEXT;
    let d = |addr, len, flags, next| Descriptor {
        addr,
        len,
        flags,
        next,
    };
    let loop_all: Vec<(u16, Descriptor)> = (0..8u16)
        .map(|i| (i, d(0x200000, 64, n, (i + 1) % 8)))
        .collect();
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, usize, Vec<(u16, Descriptor)>, u16, u16)> = vec![
        (
            "descriptor_outside_memory",
            1,
            vec![(0, d(0xfff_0000, 64, 0, 0))],
            0,
            1,
        ),
        (
            "descriptor_loop",
            1,
            vec![(0, d(0x200000, 64, n, 1)), (1, d(0x200000, 64, n, 0))],
            0,
            1,
        ),
        ("descriptor_loop", 1, loop_all, 0, 1), // a chain longer than the queue
        (
            "zero_length_buffer",
            1,
            vec![(0, d(0x200000, 0, 0, 0))],
            0,
            1,
        ),
        (
            "wrong_direction_buffer",
            1,
            vec![(0, d(0x200000, 64, w, 0))],
            0,
            1,
        ),
        ("descriptor_index_out_of_range", 1, vec![], 9, 1),
        ("avail_idx_jump", 1, vec![(0, d(0x200000, 64, 0, 0))], 0, 9),
    ];
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    let rig = Rig::new(8, Box::new(backend), opts(model)).unwrap();
    for (kind, q, descs, head, idx) in cases {
        let driver = rig.bring_up(NET_FEATURES, 1536).unwrap();
        inject_bad(&rig, q, &descs, head, idx);
        assert!(
            wait_until(Duration::from_secs(5), || rig.read(reg::STATUS)
                & DEVICE_NEEDS_RESET
                != 0),
            "{kind}: NEEDS_RESET"
        );
        assert_ne!(
            rig.read(reg::INTERRUPT_STATUS) & 2,
            0,
            "{kind}: config-change interrupt"
        );
        assert!(
            rig.log.events("error").iter().any(|e| e["kind"] == kind),
            "{kind}: error event"
        );
        drop(driver);
        // Recovery: reset, bring up again, traffic flows.
        let guest = rig
            .bring_up(NET_FEATURES, 1536)
            .unwrap()
            .start(3, 64)
            .unwrap();
        let f = vmm::devices::virtio::net::test_driver::make_frame(0, 64);
        // SAFETY: `f` is a live buffer of the length given, which send only reads; the
        // socket is open and ours for the whole call.
        let sent = unsafe { libc::send(peer.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        assert_eq!(sent, 64);
        assert!(
            wait_until(Duration::from_secs(5), || guest
                .stats
                .rx_frames
                .load(Ordering::Relaxed)
                == 1),
            "{kind}: rx works after reset"
        );
        let mut buf = [0u8; 128];
        for _ in 0..3 {
            assert!(
                wait_readable(peer.as_raw_fd(), 5000),
                "{kind}: tx works after reset"
            );
            // SAFETY: valid buffer, open fd.
            unsafe { libc::recv(peer.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        }
        guest.stop();
    }
    // rx with a device-readable buffer is the wrong direction too.
    let _driver = rig.bring_up(NET_FEATURES, 1536).unwrap();
    inject_bad(&rig, 0, &[(0, d(0x200000, 64, 0, 0))], 0, 1);
    let f = vmm::devices::virtio::net::test_driver::make_frame(0, 64);
    // SAFETY: valid buffer, open fd.
    unsafe { libc::send(peer.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
    assert!(wait_until(Duration::from_secs(5), || rig.read(reg::STATUS)
        & DEVICE_NEEDS_RESET
        != 0));
}

fn a_frame_read_while_the_ring_is_dry_is_delivered_first_after_the_kick(model: NotifyModel) {
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    let rig = Rig::new(4, Box::new(backend), opts(model)).unwrap();
    // Drive the rx queue by hand: no buffers yet.
    let mut net = rig.bring_up(NET_FEATURES, 1536).unwrap();
    for seq in 0..3 {
        let f = vmm::devices::virtio::net::test_driver::make_frame(seq, 100);
        // SAFETY: `f` is a live buffer of the length given, which send only reads; the
        // socket is open and ours for the whole call.
        let sent = unsafe { libc::send(peer.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        assert_eq!(sent, 100);
    }
    assert!(
        wait_until(Duration::from_secs(5), || get(&rig.metrics.rx.ring_empty)
            >= 1),
        "device found the ring dry"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(get(&rig.metrics.rx.frames), 0);
    assert_eq!(
        get(&rig.metrics.rx.drops),
        0,
        "the frame is kept, not dropped"
    );
    // One buffer, kick: the deferred frame (seq 0) must come first.
    let base = vmm::devices::virtio::net::test_driver::BUFFERS_START;
    for k in 0..3u64 {
        net.rx.add(&[(base + k * 2048, 2048, true)]).unwrap();
        net.rx.kick();
        assert!(
            wait_until(Duration::from_secs(5), || get(&rig.metrics.rx.frames) > k),
            "frame {k} delivered"
        );
        let (_head, len) = net.rx.get_buf().unwrap();
        assert_eq!(len, 12 + 100);
        let mut f = vec![0u8; 100];
        rig.mem
            .read_slice(&mut f, GuestAddress(base + k * 2048 + 12))
            .unwrap();
        assert_eq!(
            frame_seq(&f),
            Some(k),
            "frames in order, deferred one first"
        );
    }
    assert!(net.rx.kicks >= 3);
}

fn tx_eagain_waits_for_the_backend_and_drops_nothing(model: NotifyModel) {
    // A tiny socket buffer and a peer that does not read at first: the device hits EAGAIN.
    let (backend, peer) = socketpair_backend(4096).unwrap();
    let rig = Rig::new(64, Box::new(backend), opts(model)).unwrap();
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .unwrap()
        .start(2000, 1000)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || get(&rig.metrics.tx.tap_eagain)
            > 0),
        "EAGAIN seen"
    );
    let sent_while_blocked = get(&rig.metrics.tx.frames);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        get(&rig.metrics.tx.frames),
        sent_while_blocked,
        "waits while the backend is full"
    );
    let mut seen = 0u64;
    let mut buf = vec![0u8; 4096];
    while seen < 2000 && wait_readable(peer.as_raw_fd(), 5000) {
        // SAFETY: valid buffer, open fd.
        let n = unsafe { libc::recv(peer.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert_eq!(n, 1000);
        assert_eq!(
            frame_seq(&buf[..1000]),
            Some(seen),
            "no tx frame lost or reordered"
        );
        seen += 1;
    }
    guest.stop();
    assert_eq!(seen, 2000);
    assert_eq!(get(&rig.metrics.tx.drops), 0);
}

fn a_frame_needing_more_merged_buffers_than_posted_waits_without_spinning(model: NotifyModel) {
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    let rig = Rig::new(32, Box::new(backend), opts(model)).unwrap();
    let mut net = rig.bring_up(NET_FEATURES, 64).unwrap();
    let base = vmm::devices::virtio::net::test_driver::BUFFERS_START;
    // Two 64-byte buffers: far too few for a 1000-byte frame (12-byte header + 1000).
    for k in 0..2u64 {
        net.rx.add(&[(base + k * 64, 64, true)]).unwrap();
    }
    net.rx.kick();
    let f = vmm::devices::virtio::net::test_driver::make_frame(7, 1000);
    // SAFETY: `f` is a live buffer of the length given, which send only reads; the
    // socket is open and ours for the whole call.
    let sent = unsafe { libc::send(peer.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
    assert_eq!(sent, 1000);
    if model == NotifyModel::VirtioQueue {
        // virtio-queue offers no MRG_RXBUF: a frame that does not fit one buffer is counted
        // and dropped at once (never truncated, never waited for), and the device does not
        // spin over the buffers it saw.
        assert_eq!(net.features & MRG_RXBUF, 0, "MRG_RXBUF is not offered");
        assert!(
            wait_until(Duration::from_secs(5), || get(&rig
                .metrics
                .rx
                .oversize_drops)
                == 1),
            "the frame is dropped as oversize"
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert!(get(&rig.metrics.rx.ring_empty) < 10);
        assert!(get(&rig.metrics.rx.notification_enables) < 10);
        assert!(rig.log.events("stall").is_empty());
        assert_eq!(get(&rig.metrics.rx.frames), 0);
        // A frame that fits (12 + 40 bytes) goes into the first posted buffer.
        let small = vmm::devices::virtio::net::test_driver::make_frame(8, 40);
        // SAFETY: `small` is a live buffer of the length given, which send only reads; the
        // socket is open and ours for the whole call.
        let sent = unsafe { libc::send(peer.as_raw_fd(), small.as_ptr().cast(), small.len(), 0) };
        assert_eq!(sent, 40);
        assert!(wait_until(Duration::from_secs(5), || get(&rig
            .metrics
            .rx
            .frames)
            == 1));
        let mut payload = vec![0u8; 40];
        rig.mem
            .read_slice(&mut payload, GuestAddress(base + 12))
            .unwrap();
        assert_eq!(frame_seq(&payload), Some(8));
        rig.write(reg::STATUS, 0);
        assert_eq!(rig.read(reg::STATUS), 0);
        return;
    }
    assert!(
        wait_until(Duration::from_secs(5), || get(&rig.metrics.rx.ring_empty)
            >= 1),
        "the device found too few buffers"
    );
    // Longer than the watchdog's stall timeout (1 s): the device must wait for new buffers,
    // not spin over the two it has seen, and the watchdog must not call the wait a lost kick.
    std::thread::sleep(Duration::from_millis(1500));
    let empties = get(&rig.metrics.rx.ring_empty);
    let enables = get(&rig.metrics.rx.notification_enables);
    assert!(empties < 10, "device spins: {empties} ring-empty rounds");
    assert!(enables < 10, "device spins: {enables} notification enables");
    assert!(
        rig.log.events("stall").is_empty(),
        "{:?}",
        rig.log.events("stall")
    );
    assert_eq!(get(&rig.metrics.rx.frames), 0);
    // With EVENT_IDX the device asked for a kick past the buffers it has seen.
    // Enough buffers now: 16 x 64 >= 1012.
    for k in 2..17u64 {
        net.rx.add(&[(base + k * 64, 64, true)]).unwrap();
    }
    assert!(net.rx.kick_prepare(), "the guest is asked to kick");
    net.rx.notify();
    assert!(
        wait_until(Duration::from_secs(5), || get(&rig.metrics.rx.frames) == 1),
        "the frame is delivered once there are enough buffers"
    );
    let mut header = [0u8; 12];
    rig.mem.read_slice(&mut header, GuestAddress(base)).unwrap();
    assert_eq!(
        u16::from_le_bytes([header[10], header[11]]),
        16,
        "num_buffers"
    );
    let mut payload = vec![0u8; 52];
    rig.mem
        .read_slice(&mut payload, GuestAddress(base + 12))
        .unwrap();
    assert_eq!(&payload[..], &f[..52]);
    assert_eq!(get(&rig.metrics.rx.drops), 0);
    // A reset completes (the device thread is in its event loop, not spinning).
    rig.write(reg::STATUS, 0);
    assert_eq!(rig.read(reg::STATUS), 0);
}

/// A lost rx interrupt on virtio-mmio's one shared line is rescued by the next tx
/// interrupt, because the guest's handler walks every queue: the watchdog reports the stall,
/// then a `recovered` event naming the shared-line interrupt, and counts it as transient.
#[test]
fn a_lost_rx_interrupt_rescued_by_a_tx_interrupt_is_reported_as_recovered() {
    let (backend, peer) = socketpair_backend(1 << 20).unwrap();
    let options = NetOptions {
        stall_timeout: Duration::from_millis(300),
        ..NetOptions::default()
    };
    let rig = Rig::new(8, Box::new(backend), options).unwrap();
    let mut net = rig.bring_up(NET_FEATURES, 1536).unwrap();
    let base = vmm::devices::virtio::net::test_driver::BUFFERS_START;
    for k in 0..4u64 {
        net.rx.add(&[(base + k * 2048, 2048, true)]).unwrap();
    }
    net.rx.kick();
    // rx used_event far ahead: the device's decisions after the first say "no interrupt".
    let (_, rx_avail, _) = ring_addrs(0);
    let rx_used_event = GuestAddress(rx_avail + 4 + 2 * 8);
    rig.mem
        .store(5u16, rx_used_event, Ordering::SeqCst)
        .unwrap();
    for seq in 0..2u64 {
        let f = vmm::devices::virtio::net::test_driver::make_frame(seq, 100);
        // SAFETY: `f` is a live buffer of the length given, which send only reads; the
        // socket is open and ours for the whole call.
        let sent = unsafe { libc::send(peer.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        assert_eq!(sent, 100);
    }
    assert!(wait_until(Duration::from_secs(5), || get(&rig
        .metrics
        .rx
        .frames)
        == 2));
    assert_eq!(
        get(&rig.metrics.rx.interrupts_sent),
        1,
        "only the first decision"
    );
    // The guest re-armed at entry 1 (the race: the device read the old used_event), so the
    // device owes it an interrupt for entry 2 that it never sends.
    rig.mem
        .store(1u16, rx_used_event, Ordering::SeqCst)
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !rig
            .log
            .events("stall")
            .is_empty()),
        "the watchdog reports the lost interrupt"
    );
    let stall = &rig.log.events("stall")[0];
    assert_eq!(
        (stall["queue"].as_str(), stall["kind"].as_str()),
        (Some("rx"), Some("lost_interrupt"))
    );
    assert!(rig.log.events("recovered").is_empty(), "still stalled");
    // The guest transmits: the tx interrupt comes on the shared line...
    let tx_buf = base + 0x10_0000;
    let frame = vmm::devices::virtio::net::test_driver::make_frame(9, 60);
    let mut chain = vec![0u8; 12];
    chain.extend_from_slice(&frame);
    rig.mem.write_slice(&chain, GuestAddress(tx_buf)).unwrap();
    net.tx.add(&[(tx_buf, chain.len() as u32, false)]).unwrap();
    net.tx.kick();
    assert!(wait_until(Duration::from_secs(5), || get(&rig
        .metrics
        .tx
        .interrupts_sent)
        >= 1));
    // ...and its handler walks the rx queue too (vm_interrupt): consume, re-enable.
    while net.rx.get_buf().is_some() {}
    assert!(net.rx.enable_cb(), "nothing more pending");
    assert!(
        wait_until(Duration::from_secs(5), || !rig
            .log
            .events("recovered")
            .is_empty()),
        "a recovered event"
    );
    let r = &rig.log.events("recovered")[0];
    assert_eq!(r["queue"], "rx", "{r}");
    assert_eq!(r["kind"], "lost_interrupt", "{r}");
    assert_eq!(r["cause"], "shared_line_interrupt", "{r}");
    assert!(r["stalled_ms"].as_u64().unwrap() >= 300, "{r}");
    assert_eq!(get(&rig.metrics.rx.stalls_lost_interrupt), 1);
    assert_eq!(
        get(&rig.metrics.rx.stalls_recovered),
        1,
        "counted as transient"
    );
}

/// Each mutant of the fix (one of the two fences missing) loses its own race, and only that
/// one: the model's other path is fenced. With recovery, `missing-enable-fence` is caught by
/// lost kicks and never loses an interrupt; `missing-notify-fence` the other way round.
///
/// `missing-notify-fence` is driven by rx alone: its enable path keeps 92045d8's fence, and a
/// fence drains the (emulated, as a real) store buffer, so a tx flood, whose every
/// ring-empty enable fences, would publish the delayed `used->idx` within microseconds.
#[test]
fn each_mutant_of_the_fix_loses_only_its_own_race() {
    for (model, loses_kicks, tx_frames) in [
        (NotifyModel::MissingEnableFence, true, u64::MAX),
        (NotifyModel::MissingNotifyFence, false, 0),
    ] {
        let (backend, peer) = socketpair_backend(1 << 20).unwrap();
        let rig = Rig::new(8, Box::new(backend), buggy(model, OnStall::Recover)).unwrap();
        let guest = rig
            .bring_up(NET_FEATURES, 1536)
            .unwrap()
            .start(tx_frames, 64)
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, fd) = (stop.clone(), peer.as_raw_fd());
        let injector = std::thread::spawn(move || inject_frames(fd, &s2, 64));
        let reader = drain_peer(fd, stop.clone());
        let (rx, tx) = (&rig.metrics.rx, &rig.metrics.tx);
        let kicks_lost = || get(&rx.stalls_lost_kick) + get(&tx.stalls_lost_kick);
        let irqs_lost = || get(&rx.stalls_lost_interrupt) + get(&tx.stalls_lost_interrupt);
        let caught = wait_until(STALL_BOUND, || {
            if loses_kicks {
                kicks_lost() >= 2
            } else {
                irqs_lost() >= 2
            }
        });
        stop.store(true, Ordering::SeqCst);
        injector.join().unwrap();
        reader.join().unwrap();
        guest.stop();
        eprintln!(
            "{model}: lost kicks {}, lost interrupts {}, rx race windows {}",
            kicks_lost(),
            irqs_lost(),
            get(&rx.race_windows_opened)
        );
        assert!(caught, "{model}: caught within {STALL_BOUND:?}");
        if loses_kicks {
            assert_eq!(irqs_lost(), 0, "{model} keeps a281ebc: no lost interrupt");
        } else {
            assert_eq!(kicks_lost(), 0, "{model} keeps 92045d8: no lost kick");
        }
    }
}
