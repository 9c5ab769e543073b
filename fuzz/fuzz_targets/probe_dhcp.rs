//! The probe guest's DHCP handling, built for the host: every frame it receives goes
//! through its wire watcher (guest-images/probe/src/dhcp_watch.rs, which builds agent lines
//! with agent.rs) and through smoltcp's DHCPv4 client on an interface configured as the
//! probe's is (src/net.rs), which answers, binds, renews and drops leases.
//!
//! The probe's hardware (COM1, the TSC) is replaced by the two small modules below; the
//! watcher and the agent line builder are the image's own source files.
#![no_main]

use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress};
use vnetbed_fuzz::Input;

#[path = "../../guest-images/probe/src/agent.rs"]
#[allow(dead_code)]
mod agent;
#[path = "../../guest-images/probe/src/dhcp_watch.rs"]
mod dhcp_watch;

/// COM1 on the host: the agent line must be one well-formed line.
mod serial {
    pub fn write_bytes(bytes: &[u8]) {
        assert!(
            bytes.starts_with(b"@probe {"),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert!(bytes.ends_with(b"\n"));
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}

/// The TSC on the host: a fixed clock.
mod time {
    pub fn rdtsc() -> u64 {
        0
    }
    pub fn tsc_to_micros_since_entry(tsc: u64) -> u64 {
        tsc
    }
}

/// One fuzzed frame at a time in; frames the client sends are watched and dropped.
struct FuzzDevice {
    rx: Option<Vec<u8>>,
}

struct FrameRx(Vec<u8>);
struct FrameTx;

impl RxToken for FrameRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        dhcp_watch::observe(&self.0, dhcp_watch::Direction::Rx);
        f(&self.0)
    }
}

impl TxToken for FrameTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        dhcp_watch::observe(&buf, dhcp_watch::Direction::Tx);
        r
    }
}

impl Device for FuzzDevice {
    type RxToken<'a> = FrameRx;
    type TxToken<'a> = FrameTx;

    fn receive(&mut self, _: Instant) -> Option<(FrameRx, FrameTx)> {
        self.rx.take().map(|f| (FrameRx(f), FrameTx))
    }

    fn transmit(&mut self, _: Instant) -> Option<FrameTx> {
        Some(FrameTx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mac = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    let mut device = FuzzDevice { rx: None };
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(mac)),
        &mut device,
        Instant::ZERO,
    );
    let mut storage = [SocketStorage::EMPTY; 1];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let dhcp = sockets.add(dhcpv4::Socket::new());
    let mut now_ms = 0i64;
    while !input.is_empty() {
        // Time moves on by up to about 18 hours a step: renewals, rebinding, expiry.
        now_ms += i64::from(input.u16()) * 1000;
        let len = usize::from(input.u16() % 1600);
        device.rx = Some(input.take(len).to_vec());
        let now = Instant::from_millis(now_ms);
        iface.poll(now, &mut device, &mut sockets);
        if let Some(dhcpv4::Event::Configured(config)) =
            sockets.get_mut::<dhcpv4::Socket>(dhcp).poll()
        {
            iface.update_ip_addrs(|addrs| {
                addrs.clear();
                let _ = addrs.push(smoltcp::wire::IpCidr::Ipv4(config.address));
            });
            let _ = dhcp_watch::last_lease();
        }
    }
});
