//! `timeline.jsonl`, read back by `vnetbed report`: vnetbed::record::TimelineReader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(timeline) = vnetbed::record::TimelineReader::parse(&text) {
        let _ = format!("{timeline:?}");
    }
});
