//! virtio-net device benchmark (prints numbers; asserts nothing).
//!
//! `cargo bench -p vmm --bench virtio_net` (root and /dev/net/tun for the tap phases;
//! `VNETBED_BENCH_SECS` sets seconds per phase, default 3; `VNETBED_STALL_SECS` each
//! time-to-stall run, default 30; `VNETBED_STALL_WINDOWS_US` e.g. `20,200,1000` the race
//! windows to measure, default the default window).
//!
//! 1. Device-only frames/s with the host-thread test driver as the guest, for both queue
//!    backends (vnetbed's own queue, fenced; rust-vmm's virtio-queue):
//!    - tap -> rx ring (frames injected on the tap through AF_PACKET in a throwaway netns),
//!      next to a raw loop reading the same tap fd directly;
//!    - tx ring -> tap, next to a raw loop writing the tap fd directly;
//!    - the same two device paths over a socket pair (no tap: the device's own ceiling).
//! 2. Time-to-stall distribution of the `unfenced` model at the default race window: one
//!    long run with `--on-stall recover`; for each stall, the time from the previous
//!    recovery (or the start) to its `race_at` (the device's last enable / publish).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vmm::devices::virtio::net::backend::{socketpair_backend, FdBackend, NetBackend};
use vmm::devices::virtio::net::config::DEFAULT_RACE_WINDOW;
use vmm::devices::virtio::net::device::NET_FEATURES;
use vmm::devices::virtio::net::metrics::QueueMetrics;
use vmm::devices::virtio::net::tap::open_or_create_tap;
use vmm::devices::virtio::net::test_driver::{inject_frames, make_frame, wait_readable, Rig};
use vmm::devices::virtio::net::test_netns::{ip, packet_socket, recv_incoming, Netns};
use vmm::devices::virtio::net::{NetOptions, NotifyModel, OnStall};

const TAP: &str = "vnbb0";

/// The two queue backends: vnetbed's own queue (fenced) and rust-vmm's virtio-queue.
const BACKENDS: [NotifyModel; 2] = [NotifyModel::Fenced, NotifyModel::VirtioQueue];

fn label(model: NotifyModel) -> &'static str {
    match model {
        NotifyModel::VirtioQueue => "[virtio-queue]",
        _ => "[vnetbed]",
    }
}

fn secs_env(key: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:>10.0} frames/s", n as f64 / d.as_secs_f64())
}

/// A thread that runs `f(stop)` until stopped, returning its count.
fn spawn_counter(
    f: impl FnOnce(&AtomicBool) -> u64 + Send + 'static,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    (stop, std::thread::spawn(move || f(&s)))
}

fn af_packet_sender(fd: RawFd, len: usize) -> impl FnOnce(&AtomicBool) -> u64 + Send {
    move |stop| {
        let f = make_frame(0, len);
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: valid buffer, open fd.
            if unsafe { libc::send(fd, f.as_ptr().cast(), f.len(), 0) } > 0 {
                n += 1;
            }
        }
        n
    }
}

fn af_packet_receiver(fd: RawFd) -> impl FnOnce(&AtomicBool) -> u64 + Send {
    move |stop| {
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            if recv_incoming(fd, &mut buf, 20).is_some() {
                n += 1;
            }
        }
        n
    }
}

struct TapSetup {
    ns: Netns,
}

impl TapSetup {
    /// A fresh tap (up) and its AF_PACKET peer.
    fn open(&self) -> std::io::Result<(FdBackend, OwnedFd)> {
        let tap = open_or_create_tap(TAP, Some(self.ns.name())).map_err(std::io::Error::other)?;
        ip(&[
            "-n",
            self.ns.name(),
            "link",
            "set",
            TAP,
            "txqueuelen",
            "10000",
            "up",
        ])?;
        let sock = packet_socket(self.ns.name(), TAP)?;
        Ok((tap, sock))
    }
}

fn raw_tap_rx(setup: &TapSetup, len: usize, d: Duration) -> std::io::Result<(u64, u64)> {
    let (mut tap, sock) = setup.open()?;
    let (stop, sender) = spawn_counter(af_packet_sender(sock.as_raw_fd(), len));
    let mut buf = vec![0u8; 65536];
    let (mut n, end) = (0u64, Instant::now() + d);
    while Instant::now() < end {
        match tap.recv(&mut buf) {
            Ok(_) => n += 1,
            Err(_) => {
                wait_readable(tap.as_raw_fd(), 10);
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    Ok((sender.join().unwrap_or(0), n))
}

fn raw_tap_tx(setup: &TapSetup, len: usize, d: Duration) -> std::io::Result<(u64, u64)> {
    let (mut tap, sock) = setup.open()?;
    let (stop, receiver) = spawn_counter(af_packet_receiver(sock.as_raw_fd()));
    let f = make_frame(0, len);
    let (mut n, end) = (0u64, Instant::now() + d);
    while Instant::now() < end {
        if tap.send(&f).is_ok() {
            n += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    Ok((n, receiver.join().unwrap_or(0)))
}

/// Device rx: frames injected by `inject` into the backend's peer, received by the guest.
fn device_rx(
    model: NotifyModel,
    backend: Box<dyn NetBackend>,
    inject: impl FnOnce(&AtomicBool) -> u64 + Send + 'static,
    d: Duration,
) -> (u64, u64, u64) {
    let options = NetOptions {
        notify_model: model,
        ..NetOptions::default()
    };
    let rig = Rig::new(256, backend, options).expect("rig");
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .expect("bring up")
        .start(0, 0)
        .expect("guest");
    let (stop, sender) = spawn_counter(inject);
    std::thread::sleep(Duration::from_millis(200));
    let (f0, t0) = (
        guest.stats.rx_frames.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(d);
    let frames = guest.stats.rx_frames.load(Ordering::Relaxed) - f0;
    let took = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let sent = sender.join().unwrap_or(0);
    guest.stop();
    let empty = QueueMetrics::get(&rig.metrics.rx.ring_empty);
    (
        sent,
        (frames as f64 * d.as_secs_f64() / took.as_secs_f64()) as u64,
        empty,
    )
}

/// Device tx: the guest transmits flat out; `drain` reads the backend's peer.
fn device_tx(
    model: NotifyModel,
    backend: Box<dyn NetBackend>,
    drain: impl FnOnce(&AtomicBool) -> u64 + Send + 'static,
    len: usize,
    d: Duration,
) -> (u64, u64) {
    let options = NetOptions {
        notify_model: model,
        ..NetOptions::default()
    };
    let rig = Rig::new(256, backend, options).expect("rig");
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .expect("bring up")
        .start(u64::MAX, len)
        .expect("guest");
    let (stop, receiver) = spawn_counter(drain);
    std::thread::sleep(Duration::from_millis(200));
    let f0 = QueueMetrics::get(&rig.metrics.tx.frames);
    std::thread::sleep(d);
    let frames = QueueMetrics::get(&rig.metrics.tx.frames) - f0;
    guest.stop();
    stop.store(true, Ordering::SeqCst);
    (frames, receiver.join().unwrap_or(0))
}

fn socket_drain(fd: RawFd) -> impl FnOnce(&AtomicBool) -> u64 + Send {
    move |stop| {
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            if wait_readable(fd, 20) {
                // SAFETY: valid buffer, open fd.
                while unsafe {
                    libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                } > 0
                {
                    n += 1;
                }
            }
        }
        n
    }
}

fn throughput(d: Duration) {
    // SAFETY: geteuid has no preconditions.
    let tap = (unsafe { libc::geteuid() } == 0 && std::path::Path::new("/dev/net/tun").exists())
        .then(Netns::create)
        .and_then(|r| r.map_err(|e| println!("no tap phases: {e}")).ok())
        .map(|ns| TapSetup { ns });
    if tap.is_none() {
        println!("(tap phases skipped: need root and /dev/net/tun)");
    }
    for len in [64usize, 1400] {
        println!("\n## {len}-byte frames, {} s per phase", d.as_secs());
        if let Some(t) = &tap {
            match raw_tap_rx(t, len, d) {
                Ok((sent, got)) => println!(
                    "raw tap read loop      (AF_PACKET -> tap fd):        {}  (sender {})",
                    rate(got, d),
                    rate(sent, d)
                ),
                Err(e) => println!("raw tap rx failed: {e}"),
            }
            for model in BACKENDS {
                match t.open() {
                    Ok((backend, sock)) => {
                        let fd = sock.as_raw_fd();
                        let (sent, got, _) =
                            device_rx(model, Box::new(backend), af_packet_sender(fd, len), d);
                        println!(
                            "device rx via tap      (AF_PACKET -> tap -> rx ring) {:<13} {}  (sender {})",
                            label(model),
                            rate(got, d),
                            rate(sent, d)
                        );
                        drop(sock);
                    }
                    Err(e) => println!("device rx via tap failed: {e}"),
                }
            }
            match raw_tap_tx(t, len, d) {
                Ok((wrote, got)) => println!(
                    "raw tap write loop     (tap fd -> AF_PACKET):        {}  (peer saw {})",
                    rate(wrote, d),
                    rate(got, d)
                ),
                Err(e) => println!("raw tap tx failed: {e}"),
            }
            for model in BACKENDS {
                match t.open() {
                    Ok((backend, sock)) => {
                        let (frames, got) = device_tx(
                            model,
                            Box::new(backend),
                            af_packet_receiver(sock.as_raw_fd()),
                            len,
                            d,
                        );
                        println!(
                            "device tx via tap      (tx ring -> tap -> AF_PACKET) {:<13} {}  (peer saw {})",
                            label(model),
                            rate(frames, d),
                            rate(got, d)
                        );
                    }
                    Err(e) => println!("device tx via tap failed: {e}"),
                }
            }
        }
        for model in BACKENDS {
            let (backend, peer) = socketpair_backend(1 << 20).expect("socketpair");
            let fd = peer.as_raw_fd();
            let (sent, got, empty) = device_rx(
                model,
                Box::new(backend),
                move |s| inject_frames(fd, s, len),
                d,
            );
            println!(
                "device rx, socketpair  (peer -> rx ring)             {:<13} {}  (sender {}, {} ring-empty)",
                label(model),
                rate(got, d),
                rate(sent, d),
                empty
            );
            drop(peer);
            let (backend, peer) = socketpair_backend(1 << 20).expect("socketpair");
            let (frames, _) = device_tx(
                model,
                Box::new(backend),
                socket_drain(peer.as_raw_fd()),
                len,
                d,
            );
            println!(
                "device tx, socketpair  (tx ring -> peer)             {:<13} {}",
                label(model),
                rate(frames, d)
            );
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn time_to_stall(window: Duration, d: Duration) {
    let options = NetOptions {
        notify_model: NotifyModel::Unfenced,
        race_window: window,
        stall_timeout: Duration::from_millis(200),
        on_stall: OnStall::Recover,
        ..NetOptions::default()
    };
    let (backend, peer) = socketpair_backend(1 << 20).expect("socketpair");
    let rig = Rig::new(256, Box::new(backend), options).expect("rig");
    let start_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let guest = rig
        .bring_up(NET_FEATURES, 1536)
        .expect("bring up")
        .start(u64::MAX, 64)
        .expect("guest");
    let fd = peer.as_raw_fd();
    let (stop, injector) = spawn_counter(move |s| inject_frames(fd, s, 64));
    let (stop2, drainer) = spawn_counter(socket_drain(fd));
    std::thread::sleep(d);
    stop.store(true, Ordering::SeqCst);
    stop2.store(true, Ordering::SeqCst);
    let _ = (injector.join(), drainer.join());
    guest.stop();
    let mut last = start_wall;
    let mut gaps: Vec<(String, f64)> = Vec::new();
    for s in rig.log.events("stall") {
        let (Some(since), Some(detected)) = (s["race_at"].as_f64(), s["detected_at"].as_f64())
        else {
            continue;
        };
        let label = format!(
            "{} {}",
            s["queue"].as_str().unwrap_or("?"),
            s["kind"].as_str().unwrap_or("?")
        );
        gaps.push((label, (since - last).max(0.0)));
        last = detected;
    }
    println!(
        "\n## time to stall, unfenced, race window {} us, 256-entry rings, rx flood + tx flood, {} s",
        window.as_micros(),
        d.as_secs()
    );
    let mut all: Vec<f64> = gaps.iter().map(|g| g.1).collect();
    all.sort_by(f64::total_cmp);
    println!(
        "stalls {:>4}: min {:.3} s  p50 {:.3} s  p90 {:.3} s  max {:.3} s",
        all.len(),
        percentile(&all, 0.0),
        percentile(&all, 0.5),
        percentile(&all, 0.9),
        percentile(&all, 1.0)
    );
    let mut kinds: Vec<String> = gaps.iter().map(|g| g.0.clone()).collect();
    kinds.sort();
    kinds.dedup();
    for k in kinds {
        println!("  {k}: {}", gaps.iter().filter(|g| g.0 == k).count());
    }
    println!(
        "  rx race windows opened: {}",
        QueueMetrics::get(&rig.metrics.rx.race_windows_opened)
    );
    println!("  (time to stall: from the start or the previous recovery to the stall's race_at)");
}

fn main() {
    let d = secs_env("VNETBED_BENCH_SECS", 3);
    println!("# virtio-net device benchmark (host-thread test driver as guest, no KVM)");
    throughput(d);
    let stall_secs = secs_env("VNETBED_STALL_SECS", 30);
    // VNETBED_STALL_WINDOWS_US: comma-separated race windows (default: the default window).
    let windows: Vec<Duration> = std::env::var("VNETBED_STALL_WINDOWS_US")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|w| w.trim().parse().ok())
                .map(Duration::from_micros)
                .collect()
        })
        .unwrap_or_else(|| vec![DEFAULT_RACE_WINDOW]);
    for w in windows {
        time_to_stall(w, stall_secs);
    }
}
