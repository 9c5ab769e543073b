//! `verify --sut SPEC`: vnetbed::sut::SutSpec.
#![no_main]

use vnetbed::sut::SutSpec;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = text.parse::<SutSpec>() {
        let _ = spec.notify_model();
        let _ = spec.identity();
    }
});
