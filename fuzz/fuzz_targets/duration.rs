//! `--race-window`, `--stall-timeout` and soak durations: vmm::duration.
#![no_main]

use std::time::Duration;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = vmm::duration::parse_duration(text) {
        // Whatever parses also passes a bound at or above it, and fails one below it.
        assert!(vmm::duration::parse_duration_at_most(text, d, "--x").is_ok());
        if let Some(below) = d.checked_sub(Duration::from_nanos(1)) {
            assert!(vmm::duration::parse_duration_at_most(text, below, "--x").is_err());
        }
    } else {
        assert!(vmm::duration::parse_duration_at_most(text, Duration::MAX, "--x").is_err());
    }
});
