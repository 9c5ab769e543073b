//! Reports DHCP as it happens on the wire: every DHCP message the probe sends or receives
//! becomes an agent line. smoltcp's DHCP client reports only configuration changes;
//! renewals (unicast REQUEST at T1) and rebinding (broadcast REQUEST at T2) are seen here.

use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicU32, Ordering};

use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet,
    UdpPacket, DHCP_CLIENT_PORT, DHCP_SERVER_PORT,
};

use crate::agent::Event;

/// Lease, T1 and T2 (seconds) of the last ACK seen; u32::MAX when absent.
static LAST_LEASE: AtomicU32 = AtomicU32::new(u32::MAX);
static LAST_T1: AtomicU32 = AtomicU32::new(u32::MAX);
static LAST_T2: AtomicU32 = AtomicU32::new(u32::MAX);

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received.
    Rx,
    /// Sent.
    Tx,
}

/// Lease, T1, T2 in seconds from the last ACK (None where the ACK had no such option).
pub fn last_lease() -> (Option<u32>, Option<u32>, Option<u32>) {
    let get = |v: &AtomicU32| Some(v.load(Ordering::Relaxed)).filter(|&s| s != u32::MAX);
    (get(&LAST_LEASE), get(&LAST_T1), get(&LAST_T2))
}

/// Look at an Ethernet frame; report it if it is DHCP. Malformed frames are ignored.
pub fn observe(frame: &[u8], direction: Direction) {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return;
    };
    if ethernet.ethertype() != EthernetProtocol::Ipv4 {
        return;
    }
    let Ok(ip) = Ipv4Packet::new_checked(ethernet.payload()) else {
        return;
    };
    if ip.next_header() != IpProtocol::Udp {
        return;
    }
    let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
        return;
    };
    let ports = (udp.src_port(), udp.dst_port());
    if ports != (DHCP_CLIENT_PORT, DHCP_SERVER_PORT)
        && ports != (DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
    {
        return;
    }
    let Ok(packet) = DhcpPacket::new_checked(udp.payload()) else {
        return;
    };
    let Ok(repr) = DhcpRepr::parse(&packet) else {
        return;
    };
    let kind = message_name(repr.message_type);
    let mut event = Event::new("dhcp")
        .str(
            "dir",
            if direction == Direction::Rx {
                "rx"
            } else {
                "tx"
            },
        )
        .str("type", kind)
        .hex("xid", u64::from(repr.transaction_id))
        .fmt("src", format_args!("{}", ip.src_addr()))
        .fmt("dst", format_args!("{}", ip.dst_addr()));
    if direction == Direction::Tx && repr.message_type == DhcpMessageType::Request {
        // RFC 2131 4.3.2: ciaddr is set only when renewing/rebinding; renewing is unicast
        // to the server, rebinding is broadcast.
        let state = if repr.client_ip == Ipv4Addr::UNSPECIFIED {
            "selecting"
        } else if ip.dst_addr() == Ipv4Addr::BROADCAST {
            "rebinding"
        } else {
            "renewing"
        };
        event = event
            .str("state", state)
            .fmt("ciaddr", format_args!("{}", repr.client_ip));
    }
    if direction == Direction::Rx {
        event = event.fmt("yiaddr", format_args!("{}", repr.your_ip));
        if let Some(server) = repr.server_identifier {
            event = event.fmt("server", format_args!("{server}"));
        }
        for (key, value) in [
            ("lease_s", repr.lease_duration),
            ("t1_s", repr.renew_duration),
            ("t2_s", repr.rebind_duration),
        ] {
            if let Some(seconds) = value {
                event = event.u64(key, u64::from(seconds));
            }
        }
        if repr.message_type == DhcpMessageType::Ack {
            LAST_LEASE.store(repr.lease_duration.unwrap_or(u32::MAX), Ordering::Relaxed);
            LAST_T1.store(repr.renew_duration.unwrap_or(u32::MAX), Ordering::Relaxed);
            LAST_T2.store(repr.rebind_duration.unwrap_or(u32::MAX), Ordering::Relaxed);
        }
    }
    event.emit();
}

fn message_name(kind: DhcpMessageType) -> &'static str {
    match kind {
        DhcpMessageType::Discover => "discover",
        DhcpMessageType::Offer => "offer",
        DhcpMessageType::Request => "request",
        DhcpMessageType::Decline => "decline",
        DhcpMessageType::Ack => "ack",
        DhcpMessageType::Nak => "nak",
        DhcpMessageType::Release => "release",
        DhcpMessageType::Inform => "inform",
        DhcpMessageType::Unknown(_) => "unknown",
    }
}
