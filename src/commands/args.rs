//! One grammar for the values on vnetbed's command line, checked by clap before anything
//! runs (a bad value is a usage error, exit status 2):
//! - durations: `humantime`'s grammar (`500ms`, `30s`, `2m`, `48h`, `1h30m`, `5us`); a bare
//!   number is seconds;
//! - rates: bits/s with an optional decimal unit, `k`, `M` or `G` (`200M`, `1.5G`, `800k`);
//! - closed sets: clap `ValueEnum`s, or the device's own `FromStr` (notify model, on-stall).

use std::time::Duration;

use vmm::devices::virtio::net::NotifyModel;

/// A duration in vnetbed's grammar.
pub fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| format!("`{text}`: {e}"));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{text}` is not a duration ({e}): use a number with ms, s, m or h (500ms, 30s, 2m, 48h); a bare number is seconds")
    })
}

/// A duration that must be longer than zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d.is_zero() {
        return Err(format!("`{text}` is zero: give a length longer than 0 s"));
    }
    Ok(d)
}

/// A duration of whole seconds, kept as given (the testbed's lease schedule: DHCP times are
/// whole seconds), and passed on to the testbed's supervisor as text.
pub fn whole_seconds(text: &str) -> Result<String, String> {
    let d = positive_duration(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("`{text}`: DHCP times are whole seconds"));
    }
    Ok(text.to_string())
}

/// A duration longer than zero and at most `max` (for the VMM's bounded options).
pub fn bounded_duration(text: &str, max: Duration) -> Result<Duration, String> {
    let d = duration(text)?;
    if d > max {
        return Err(format!(
            "`{text}` is longer than the most it may be, {}: give a shorter one",
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// A rate in bits/s, as given (for iperf3 and the record) and as a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// The text the user gave (`200M`).
    pub text: String,
    /// The same in bits/s.
    pub bps: f64,
}

/// A rate in vnetbed's grammar.
pub fn rate(text: &str) -> Result<Rate, String> {
    match vnetbed::soak::load::parse_rate_bps(text) {
        Some(bps) => Ok(Rate {
            text: text.trim().to_string(),
            bps,
        }),
        None => Err(format!(
            "`{text}` is not a rate: use bits/s, with k, M or G for 10^3, 10^6, 10^9 (200M, 1.5G, 800k)"
        )),
    }
}

/// A notify model, parsed by the device's own `FromStr`, so that every model the device
/// knows is accepted here and nowhere is there a second list.
pub fn notify_model(text: &str) -> Result<NotifyModel, String> {
    text.parse::<NotifyModel>().map_err(|e| e.to_string())
}

/// A notify model for verify's A runs: any model but `fenced`, the fix itself.
pub fn buggy_model(text: &str) -> Result<NotifyModel, String> {
    let m = notify_model(text)?;
    if !m.is_buggy() {
        return Err(format!(
            "`{m}` is not a buggy model (it is the fix, or a system under test: see --sut): use unfenced, no-recheck, missing-enable-fence or missing-notify-fence"
        ));
    }
    Ok(m)
}

/// A testbed name (1-8 characters a-z, 0-9, '-').
pub fn testbed_name(text: &str) -> Result<String, String> {
    vnetbed::net::names::validate_name(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_duration_grammar() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("48h"), Ok(Duration::from_secs(172_800)));
        assert_eq!(duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("5us"), Ok(Duration::from_micros(5)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(duration("fast")
            .unwrap_err()
            .contains("bare number is seconds"));
        assert!(duration("").is_err());
        assert!(positive_duration("0s").unwrap_err().contains("zero"));
        assert!(positive_duration("0").is_err());
        assert!(bounded_duration("11s", Duration::from_secs(10)).is_err());
        assert_eq!(
            bounded_duration("2us", Duration::from_secs(10)),
            Ok(Duration::from_micros(2))
        );
    }

    #[test]
    fn rates_take_decimal_units() {
        assert_eq!(rate("50M").map(|r| r.bps), Ok(50e6));
        assert_eq!(rate("1.5G").map(|r| r.bps), Ok(1.5e9));
        assert_eq!(rate("800k").map(|r| r.bps), Ok(800e3));
        assert_eq!(rate("1000").map(|r| r.bps), Ok(1000.0));
        assert_eq!(rate("200M").map(|r| r.text), Ok("200M".to_string()));
        assert!(rate("fast").is_err());
        assert!(rate("-5M").is_err());
        assert!(rate("0").is_err());
    }

    #[test]
    fn closed_sets_come_from_the_device() {
        assert_eq!(notify_model("qemu-kvm-1.0"), Ok(NotifyModel::Unfenced));
        assert!(notify_model("bogus").unwrap_err().contains("bogus"));
        assert!(buggy_model("fenced").is_err());
        assert!(testbed_name("waytoolongname").is_err());
        assert_eq!(testbed_name("vf"), Ok("vf".to_string()));
    }
}
