//! Regression test for a hang found by the `mmio_registers` fuzz target (issue 18): a backend
//! whose peer hung up reads as 0 bytes forever. The device thread took each 0-byte read as a
//! frame; with rx buffers too small for a header every "frame" was dropped as oversize and
//! the next read tried, so `process_rx` never returned, the thread never saw its stop event,
//! and the guest's device reset (a status write of 0 on a vCPU thread, which joins the
//! device thread) hung for ever.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use vmm::devices::bus::BusDevice;
use vmm::devices::virtio::mmio::reg;
use vmm::devices::virtio::net::backend::socketpair_backend;
use vmm::devices::virtio::net::device::NET_FEATURES;
use vmm::devices::virtio::net::test_driver::Rig;
use vmm::devices::virtio::net::NetOptions;

/// VIRTIO_NET_F_MRG_RXBUF: without it a frame must fit one chain.
const MRG_RXBUF: u64 = 1 << 15;

#[test]
fn a_hung_up_backend_neither_spins_nor_blocks_the_device_reset() {
    let (backend, peer) = socketpair_backend(1 << 16).unwrap();
    drop(peer);
    let rig = Rig::new(64, Box::new(backend), NetOptions::default()).unwrap();
    let mut net = rig.bring_up(NET_FEATURES & !MRG_RXBUF, 4).unwrap();
    // The device notices the hang-up as soon as its thread polls the backend.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rig
        .log
        .events("error")
        .iter()
        .any(|e| e["kind"] == "backend_gone")
    {
        assert!(Instant::now() < deadline, "no backend_gone error event");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Rx buffers of 4 bytes: too small for the 12-byte header, so any frame is oversize.
    for i in 0..8u64 {
        net.rx.add(&[(0x80_0000 + i * 0x1000, 4, true)]).unwrap();
    }
    net.rx.kick();
    let transport = rig.transport.clone();
    let (done, reset_returned) = mpsc::channel();
    std::thread::spawn(move || {
        transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(reg::STATUS, &0u32.to_le_bytes());
        let _ = done.send(());
    });
    // Generous: a working reset takes milliseconds; the bug never returned.
    assert!(
        reset_returned.recv_timeout(Duration::from_secs(60)).is_ok(),
        "the device reset hung: the device thread never returned from rx processing"
    );
}
