//! What the soak orchestrator reads from its children: the VMM's event stream (JSON lines,
//! vnetbed::soak::convert), iperf3 and ping output and the probe's agent lines
//! (vnetbed::soak::parse).
#![no_main]

use vnetbed::soak::{convert, parse};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) {
            let _ = convert::queue_counters(&ev);
            let _ = convert::stall(&ev, 1_700_000_000.0);
            let _ = convert::guest_counters(&ev);
        }
        let _ = parse::iperf_interval(line);
        let _ = parse::ping_line(line);
        if let Some(v) = parse::probe_line(line) {
            let _ = convert::guest_counters(&v);
        }
    }
});
