//! `--sut SPEC` / `--control SPEC`: vnetbed::sut::SutSpec. Any text either parses or is
//! refused with an error (never a panic), and a spec that parses prints as a spec that
//! parses back to itself (the record keeps the printed form).
#![no_main]

use vnetbed::sut::SutSpec;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<SutSpec>() {
        Ok(spec) => {
            let _ = spec.notify_model();
            let _ = spec.identity();
            let _ = spec.label();
            let _ = (spec.net_options(), spec.guest_words());
            let printed = spec.to_string();
            assert_eq!(
                printed.parse::<SutSpec>().as_ref(),
                Ok(&spec),
                "{text:?} printed as {printed:?}"
            );
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
});
