//! Durations on the command line: a whole number with a unit, `ns`, `us`, `ms`, `s`, `m` or
//! `h` (`200us`, `1s`, `90m`). A bare number is seconds.

use std::time::Duration;

/// Parse `text`; the error says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!("`{text}` is not a duration: use a whole number with ns, us, ms, s, m or h (e.g. 200us, 1s)")
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let d = match unit {
        "ns" => Duration::from_nanos(n),
        "us" | "µs" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(d)
}

/// [`parse_duration`], refusing anything longer than `max` (`what` names the option).
pub fn parse_duration_at_most(text: &str, max: Duration, what: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d > max {
        return Err(format!(
            "{what} `{text}` is longer than the most it may be, {max:?}: give a shorter one"
        ));
    }
    Ok(d)
}

/// Longest `--race-window`: a store buffer that holds a store for seconds is already far
/// beyond any real one; longer would only make every notification late.
pub const MAX_RACE_WINDOW: Duration = Duration::from_secs(10);
/// Longest `--stall-timeout`.
pub const MAX_STALL_TIMEOUT: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_durations_refuse_what_is_too_long() {
        assert_eq!(
            parse_duration_at_most("5us", MAX_RACE_WINDOW, "--race-window"),
            Ok(Duration::from_micros(5))
        );
        let err = parse_duration_at_most("18446744073709551615s", MAX_RACE_WINDOW, "--race-window")
            .unwrap_err();
        assert!(
            err.contains("--race-window") && err.contains("shorter"),
            "{err}"
        );
        assert!(parse_duration_at_most("2h", MAX_STALL_TIMEOUT, "--stall-timeout").is_err());
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("200us"), Ok(Duration::from_micros(200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5ms"), Ok(Duration::from_millis(5)));
        assert!(parse_duration("1.5s").unwrap_err().contains("whole number"));
        assert!(parse_duration("fast").is_err());
    }
}
