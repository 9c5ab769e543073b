//! The network main loop: the virtio-net driver under smoltcp (ARP, IPv4, ICMP echo,
//! UDP, TCP), the DHCP client, per-second counters, and idling between events.

use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

use crate::agent::Event;
use crate::apic;
use crate::dhcp_watch::{self, Direction};
use crate::exit::ExitCode;
use crate::gateway::GatewayCheck;
use crate::iperf3;
use crate::pci::Function;
use crate::stall_watch::StallWatch;
use crate::statics::Once;
use crate::transport::Transport;
use crate::virtio_net::{feature, NetError, VirtioNet, MAX_FRAME};
use crate::{idle, start, time};
use probe::cmdline::Options;
use probe::stall::Queue;

/// Where the NIC is.
#[derive(Debug, Clone, Copy)]
pub enum Location {
    /// A virtio-mmio window at this base.
    Mmio(u64),
    /// A PCI function.
    Pci(Function),
}

/// How the NIC interrupts.
#[derive(Debug, Clone, Copy)]
pub enum NicIrq {
    /// One line for everything (virtio-mmio, or PCI INTx) on this vector: acknowledge,
    /// then look at both queues.
    Line {
        /// x86 vector.
        vector: u8,
        /// `intx` (PCI) or `line` (virtio-mmio's own interrupt).
        mode: &'static str,
    },
    /// MSI-X: a vector each for config, rx, tx; rx work only on the rx vector.
    MsiX {
        /// Config change vector.
        config: u8,
        /// rx vector.
        rx: u8,
        /// tx vector.
        tx: u8,
    },
}

/// A NIC found and ready to be driven.
pub struct NicSetup {
    /// Its transport.
    pub transport: Transport,
    /// Its interrupt.
    pub irq: NicIrq,
    /// Where it is.
    pub location: Location,
}

/// Most sockets at once: DHCP + iperf3 control + data streams.
const MAX_SOCKETS: usize = 12;
/// Counter report period.
const COUNTER_PERIOD_US: u64 = 1_000_000;
/// Longest sleep without checking anything.
const MAX_SLEEP_US: u64 = 1_000_000;

static SOCKET_STORAGE: Once<[SocketStorage<'static>; MAX_SOCKETS]> =
    Once::new([SocketStorage::EMPTY; MAX_SOCKETS]);

/// smoltcp's view of the NIC.
pub struct Nic {
    net: VirtioNet,
    frame: [u8; MAX_FRAME],
    error: Option<NetError>,
}

/// A received frame.
pub struct FrameRx<'a>(&'a [u8]);

/// Room for one frame to send.
pub struct FrameTx<'a> {
    net: &'a mut VirtioNet,
}

impl RxToken for FrameRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        dhcp_watch::observe(self.0, Direction::Rx);
        f(self.0)
    }
}

impl TxToken for FrameTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.net.transmit_frame(len, |buffer| {
            let result = f(buffer);
            dhcp_watch::observe(buffer, Direction::Tx);
            result
        })
    }
}

impl Device for Nic {
    type RxToken<'a> = FrameRx<'a>;
    type TxToken<'a> = FrameTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(FrameRx<'_>, FrameTx<'_>)> {
        // rx does not wait for tx room (Linux's rx NAPI does not either): a full tx ring
        // must not stop frames from being taken off the rx ring, or under a heavy send
        // the device runs out of rx buffers and the host drops what it sends us (control
        // messages included). A reply smoltcp makes at once (ARP, ICMP echo, RST) is
        // dropped when the tx ring is full, as by a full queue.
        if self.error.is_some() {
            return None;
        }
        let len = match self.net.receive_frame() {
            Ok(Some(frame)) => {
                let len = frame.len();
                self.frame[..len].copy_from_slice(frame);
                len
            }
            Ok(None) => return None,
            Err(error) => {
                self.error = Some(error);
                return None;
            }
        };
        Some((FrameRx(&self.frame[..len]), FrameTx { net: &mut self.net }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<FrameTx<'_>> {
        if self.error.is_some() || !self.ready_to_transmit() {
            return None;
        }
        Some(FrameTx { net: &mut self.net })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = None;
        caps
    }
}

impl Nic {
    fn ready_to_transmit(&mut self) -> bool {
        match self.net.can_transmit() {
            Ok(ready) => ready,
            Err(error) => {
                self.error = Some(error);
                false
            }
        }
    }
}

/// The current time for smoltcp.
pub fn now() -> Instant {
    Instant::from_micros(time::micros_since_entry() as i64)
}

/// Bring up the NIC and run the network forever.
pub fn run(options: &Options, setup: NicSetup) -> ! {
    let NicSetup {
        transport,
        irq,
        location,
    } = setup;
    let queue_vectors = match irq {
        NicIrq::MsiX { .. } => [Some(1), Some(2)],
        NicIrq::Line { .. } => [None, None],
    };
    let net = match VirtioNet::new(transport, options, queue_vectors) {
        Some(Ok(net)) => net,
        Some(Err(error)) => start::fatal(ExitCode::DeviceError, "nic", format_args!("{error}")),
        None => start::fatal(
            ExitCode::DeviceError,
            "nic",
            format_args!("NIC memory already in use"),
        ),
    };
    let [a, b, c, d, e, f] = net.mac;
    let (rx_size, tx_size) = net.queue_sizes();
    let mut event = Event::new("nic").str("transport", net.transport_name());
    event = match location {
        Location::Mmio(base) => event.hex("base", base),
        Location::Pci(function) => event.fmt("pci", format_args!("{function}")),
    };
    event = match irq {
        NicIrq::Line { vector, mode } => event
            .str("interrupts", mode)
            .u64("vector", u64::from(vector)),
        NicIrq::MsiX { config, rx, tx } => event
            .str("interrupts", "msix")
            .u64("config_vector", u64::from(config))
            .u64("rx_vector", u64::from(rx))
            .u64("tx_vector", u64::from(tx)),
    };
    event
        .fmt(
            "mac",
            format_args!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}"),
        )
        .hex("features", net.features)
        .bool("event_idx", net.features & feature::EVENT_IDX != 0)
        .bool("mrg_rxbuf", net.features & feature::MRG_RXBUF != 0)
        .u64("rx_queue_size", u64::from(rx_size))
        .u64("tx_queue_size", u64::from(tx_size))
        .u64("rx_buffer_len", net.rx_buffer_len() as u64)
        .fmt("refill", format_args!("{}", net.rx_policy().0))
        .str("profile", net.rx_policy().1.name())
        .emit();
    let mut nic = Nic {
        net,
        frame: [0; MAX_FRAME],
        error: None,
    };
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(nic.net.mac)));
    config.random_seed = time::rdtsc();
    let mut iface = Interface::new(config, &mut nic, now());
    let mut sockets = SocketSet::new(&mut SOCKET_STORAGE.take()[..]);
    let dhcp = sockets.add(dhcpv4::Socket::new());
    let mut gateway = GatewayCheck::new(&mut sockets);
    let mut iperf = iperf3::Server::new(&mut sockets);
    Event::new("dhcp_state").str("state", "discovering").emit();

    let mut stall_watch = StallWatch::new(
        options,
        nic.net.transport_name(),
        time::micros_since_entry(),
    );
    let mut bound = false;
    let mut next_counters = time::micros_since_entry() + COUNTER_PERIOD_US;
    loop {
        let pending = idle::take_pending();
        if let Err(error) = service_interrupts(&mut nic.net, irq, pending) {
            nic.error = Some(error);
        }
        nic.net.begin_poll_round();
        let timestamp = now();
        iface.poll(timestamp, &mut nic, &mut sockets);
        if let Err(error) = nic.net.end_poll_round() {
            nic.error = Some(error);
        }
        if let Err(error) = stall_watch.poll(&mut nic.net, time::micros_since_entry()) {
            nic.error = Some(error);
        }
        if let Some(error) = nic.error {
            start::fatal(ExitCode::DeviceError, "nic", format_args!("{error}"));
        }
        if let Some(router) = handle_dhcp(
            &mut iface,
            sockets.get_mut::<dhcpv4::Socket>(dhcp),
            &mut bound,
        ) {
            gateway.start(router, time::micros_since_entry());
        }
        gateway.poll(&mut sockets, time::micros_since_entry());
        iperf.poll(&mut sockets, time::micros_since_entry());

        let now_us = time::micros_since_entry();
        if now_us >= next_counters {
            report_counters(&nic.net, &stall_watch);
            next_counters = now_us + COUNTER_PERIOD_US;
        }
        if nic.net.rx_scheduled() || nic.net.refill_pending() {
            continue;
        }
        let stack_delay = iface.poll_delay(now(), &sockets).map(|d| d.total_micros());
        let mut sleep_us = next_counters
            .saturating_sub(time::micros_since_entry())
            .min(MAX_SLEEP_US);
        let now_us = time::micros_since_entry();
        let delays = [
            stack_delay,
            gateway.poll_delay_us(now_us),
            iperf.poll_delay_us(now_us),
            stall_watch.poll_delay_us(now_us),
        ];
        for delay in delays.into_iter().flatten() {
            sleep_us = sleep_us.min(delay);
        }
        if sleep_us == 0 {
            continue;
        }
        apic::arm_timer(sleep_us);
        idle::wait_for_interrupt();
    }
}

/// Act on the NIC's pending interrupts.
fn service_interrupts(net: &mut VirtioNet, irq: NicIrq, pending: u64) -> Result<(), NetError> {
    match irq {
        NicIrq::Line { vector, .. } => {
            if pending & idle::vector_bit(vector) != 0 {
                net.handle_interrupt();
                net.service_tx()?;
            }
        }
        NicIrq::MsiX { config, rx, tx } => {
            // Config changes (link status) need nothing from us; the vector is there so
            // that the device has one, as Linux sets it up.
            let _ = pending & idle::vector_bit(config);
            if pending & idle::vector_bit(rx) != 0 {
                net.handle_queue_interrupt(Queue::Rx)?;
            }
            if pending & idle::vector_bit(tx) != 0 {
                net.handle_queue_interrupt(Queue::Tx)?;
            }
        }
    }
    Ok(())
}

/// Apply DHCP configuration changes; returns the router of a new binding.
fn handle_dhcp(
    iface: &mut Interface,
    socket: &mut dhcpv4::Socket,
    bound: &mut bool,
) -> Option<core::net::Ipv4Addr> {
    match socket.poll() {
        None => None,
        Some(dhcpv4::Event::Configured(config)) => {
            let address = config.address;
            iface.update_ip_addrs(|addrs| {
                addrs.clear();
                let _ = addrs.push(IpCidr::Ipv4(address));
            });
            match config.router {
                Some(router) => {
                    let _ = iface.routes_mut().add_default_ipv4_route(router);
                }
                None => {
                    iface.routes_mut().remove_default_ipv4_route();
                }
            }
            *bound = true;
            let (lease, t1, t2) = dhcp_watch::last_lease();
            let mut event = Event::new("dhcp_state")
                .str("state", "bound")
                .fmt("address", format_args!("{}", address))
                .fmt("server", format_args!("{}", config.server.address));
            if let Some(router) = config.router {
                event = event.fmt("router", format_args!("{router}"));
            }
            for (key, value) in [("lease_s", lease), ("t1_s", t1), ("t2_s", t2)] {
                if let Some(seconds) = value {
                    event = event.u64(key, u64::from(seconds));
                }
            }
            event.emit();
            config.router
        }
        Some(dhcpv4::Event::Deconfigured) => {
            iface.update_ip_addrs(|addrs| addrs.clear());
            iface.routes_mut().remove_default_ipv4_route();
            // smoltcp also reports Deconfigured once at start; only a lost lease counts.
            if core::mem::take(bound) {
                Event::new("dhcp_state")
                    .str("state", "unbound")
                    .str("reason", "lease expired or NAK; discovering again")
                    .emit();
            }
            None
        }
    }
}

fn report_counters(net: &VirtioNet, stall_watch: &StallWatch) {
    let c = &net.counters;
    let (rx_unposted, tx_in_flight, rx_callbacks) = net.ring_state();
    Event::new("counters")
        .u64("rx_packets", c.rx_packets)
        .u64("rx_bytes", c.rx_bytes)
        .u64("tx_packets", c.tx_packets)
        .u64("tx_bytes", c.tx_bytes)
        .u64("rx_refills", c.rx_refills)
        .u64("kicks", c.kicks)
        .u64("kicks_suppressed", c.kicks_suppressed)
        .u64("interrupts", c.interrupts)
        .u64("interrupts_without_status", c.interrupts_without_status)
        .u64("polls", c.polls)
        .u64("rx_ring_empty", c.rx_ring_empty)
        .u64("rx_rechecks", c.rx_rechecks)
        .u64("rx_cb_enables", c.rx_cb_enables)
        .u64("rx_merged", c.rx_merged)
        .u64("rx_errors", c.rx_errors)
        .u64("tx_ring_full", c.tx_ring_full)
        .u64("irqs_total", idle::interrupt_count())
        .u64("rx_unposted", u64::from(rx_unposted))
        .u64("tx_in_flight", u64::from(tx_in_flight))
        .bool("rx_callbacks", rx_callbacks)
        .bool("rx_polling", net.rx_scheduled())
        .u64("stalls", stall_watch.stalls)
        .u64("stalls_recovered", stall_watch.recovered)
        .u64("rx_buffer_len", net.rx_buffer_len() as u64)
        .fmt("refill", format_args!("{}", net.rx_policy().0))
        .str("profile", net.rx_policy().1.name())
        .emit();
}
