//! After DHCP binds, ping the router once (up to 3 tries) and report the round trip.
//!
//! Besides checking the path, this resolves the router's MAC address: smoltcp drops a
//! reply whose next hop is not yet in its ARP cache (Linux would queue it), so without
//! this the first ping from the testbed would go unanswered.

use core::net::Ipv4Addr;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

use crate::agent::Event;
use crate::statics::Once;

const IDENT: u16 = 0x7072; // "pr"
const ATTEMPTS: u8 = 3;
const RETRY_US: u64 = 1_000_000;
const PAYLOAD: &[u8] = b"vnetbed-probe";

static RX_META: Once<[icmp::PacketMetadata; 4]> = Once::new([icmp::PacketMetadata::EMPTY; 4]);
static RX_DATA: Once<[u8; 512]> = Once::new([0; 512]);
static TX_META: Once<[icmp::PacketMetadata; 4]> = Once::new([icmp::PacketMetadata::EMPTY; 4]);
static TX_DATA: Once<[u8; 512]> = Once::new([0; 512]);

/// The router check.
pub struct GatewayCheck {
    handle: SocketHandle,
    target: Option<Ipv4Addr>,
    attempts: u8,
    next_at_us: u64,
    sent_at_us: u64,
    done: bool,
}

impl GatewayCheck {
    /// Add the ICMP socket.
    pub fn new(sockets: &mut SocketSet<'static>) -> Self {
        let mut socket = icmp::Socket::new(
            icmp::PacketBuffer::new(&mut RX_META.take()[..], &mut RX_DATA.take()[..]),
            icmp::PacketBuffer::new(&mut TX_META.take()[..], &mut TX_DATA.take()[..]),
        );
        // Binding an unused identifier cannot fail.
        let _ = socket.bind(icmp::Endpoint::Ident(IDENT));
        GatewayCheck {
            handle: sockets.add(socket),
            target: None,
            attempts: 0,
            next_at_us: 0,
            sent_at_us: 0,
            done: true,
        }
    }

    /// Check `router` (after a new DHCP binding).
    pub fn start(&mut self, router: Ipv4Addr, now_us: u64) {
        *self = GatewayCheck {
            target: Some(router),
            attempts: 0,
            next_at_us: now_us,
            sent_at_us: 0,
            done: false,
            ..*self
        };
    }

    /// Send or receive as due.
    pub fn poll(&mut self, sockets: &mut SocketSet<'static>, now_us: u64) {
        let socket = sockets.get_mut::<icmp::Socket>(self.handle);
        while let Ok((data, from)) = socket.recv() {
            let Ok(packet) = Icmpv4Packet::new_checked(data) else {
                continue;
            };
            let Ok(Icmpv4Repr::EchoReply {
                ident: IDENT,
                seq_no,
                ..
            }) = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
            else {
                continue;
            };
            if !self.done {
                self.done = true;
                Event::new("gateway")
                    .str("state", "reachable")
                    .fmt("address", format_args!("{from}"))
                    .u64("seq", u64::from(seq_no))
                    .u64("rtt_us", now_us.saturating_sub(self.sent_at_us))
                    .emit();
            }
        }
        let Some(target) = self.target else { return };
        if self.done || now_us < self.next_at_us {
            return;
        }
        if self.attempts == ATTEMPTS {
            self.done = true;
            Event::new("gateway")
                .str("state", "unreachable")
                .fmt("address", format_args!("{target}"))
                .emit();
            return;
        }
        let repr = Icmpv4Repr::EchoRequest {
            ident: IDENT,
            seq_no: u16::from(self.attempts),
            data: PAYLOAD,
        };
        let Ok(buffer) = socket.send(repr.buffer_len(), IpAddress::Ipv4(target)) else {
            return;
        };
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(buffer),
            &ChecksumCapabilities::default(),
        );
        self.attempts += 1;
        self.sent_at_us = now_us;
        self.next_at_us = now_us + RETRY_US;
    }

    /// Microseconds until the next send is due, if one is pending.
    pub fn poll_delay_us(&self, now_us: u64) -> Option<u64> {
        (!self.done && self.target.is_some()).then(|| self.next_at_us.saturating_sub(now_us))
    }
}
