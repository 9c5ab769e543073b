//! The probe guest's iperf3 server protocol (guest-images/probe/src/iperf3_proto.rs, built
//! for the host): the client's parameter JSON, its JSON scanner, UDP connect datagrams, and
//! the UDP receive path (datagram headers into loss/order/jitter statistics).
#![no_main]

use probe::iperf3_proto::{
    for_each_member, parse_params, udp_connect_reply, UdpHeader, UdpReceiver, MAX_LEN, MAX_STREAMS,
};
use vnetbed_fuzz::Input;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.u8() % 3 {
        0 => {
            let json = input.rest();
            if let Ok(p) = parse_params(json) {
                assert!(p.parallel >= 1 && p.parallel <= MAX_STREAMS, "{p:?}");
                assert!(p.len <= MAX_LEN, "{p:?}");
            }
            if let Ok(text) = core::str::from_utf8(json) {
                let _ = for_each_member(text, |_, _| {});
            }
        }
        1 => {
            let _ = udp_connect_reply(input.rest());
        }
        _ => {
            let counters_64bit = input.u8() & 1 != 0;
            let mut rx = UdpReceiver::default();
            while !input.is_empty() {
                let len = usize::from(input.u8() % 24);
                let arrival_s = f64::from(input.u32()) / 1e3;
                let datagram = input.take(len);
                if let Some(h) = UdpHeader::parse(datagram, counters_64bit) {
                    assert!(datagram.len() >= UdpHeader::len(counters_64bit));
                    rx.record(&h, arrival_s);
                    assert!(rx.errors <= rx.packet_count, "{rx:?}");
                }
            }
        }
    }
});
