//! dnsmasq's log lines (its stderr and the journal): vnetbed::net::dhcp_events::parse_line.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for line in text.lines() {
        if let Some(ev) = vnetbed::net::dhcp_events::parse_line(line, at) {
            let _ = ev.time();
            let _ = format!("{ev:?}");
        }
    }
});
