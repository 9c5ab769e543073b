//! What the soak orchestrator reads from its children: the VMM's event stream (JSON lines,
//! typed as vmm::events and converted by vnetbed::soak::convert), iperf3 and ping output and
//! the probe's agent lines (vnetbed::soak::parse).
#![no_main]

use vmm::events::Event;
use vnetbed::soak::{convert, parse};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        match convert::event_line(line) {
            convert::EventLine::Known(ev, _) => match ev.event {
                Event::Counters(c) => {
                    let _ = convert::queue_counters(&c);
                }
                Event::Stall(s) => {
                    let _ = convert::stall(&s, 1_700_000_000.0);
                }
                _ => {}
            },
            convert::EventLine::Unknown(_, v) => {
                let _ = convert::guest_counters(&v);
            }
            convert::EventLine::Garbage => {}
        }
        let _ = parse::iperf_interval(line);
        let _ = parse::ping_line(line);
        if let Some(v) = parse::probe_line(line) {
            let _ = convert::guest_counters(&v);
            let _ = vnetbed::soak::guest_stall::from_line(&v, 10.0);
        }
    }
});
