//! Names of everything a testbed creates, all derived from the testbed name so that every
//! namespace, link and file can be traced back to its testbed (and found again by `gc`).

use super::error::{NetError, Result};

/// Prefix of every testbed network namespace: `vnetbed-<name>`.
pub const NETNS_PREFIX: &str = "vnetbed-";
/// Prefix of every link a testbed creates inside its namespace.
pub const LINK_PREFIX: &str = "vnb";
/// The default testbed name.
pub const DEFAULT_NAME: &str = "tb0";
/// Longest testbed name: `vnb` + name + `t` + a 3-digit tap index must fit IFNAMSIZ-1 = 15.
pub const MAX_NAME_LEN: usize = 8;
/// Most taps a testbed may have (the tap index has at most 3 digits).
pub const MAX_TAPS: u32 = 999;

/// Check that a testbed name is usable.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why| {
        Err(NetError::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 8 characters (tap names must fit 15 characters)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("it contains a character other than a-z, 0-9 and '-'");
    }
    if name.starts_with('-') {
        return bad("it starts with '-'");
    }
    Ok(())
}

/// Check a number of taps: 1 to [`MAX_TAPS`].
pub fn validate_taps(taps: u32) -> Result<()> {
    if (1..=MAX_TAPS).contains(&taps) {
        Ok(())
    } else {
        Err(NetError::BadTapCount { taps })
    }
}

/// The network namespace of testbed `name`.
pub fn netns_name(name: &str) -> String {
    format!("{NETNS_PREFIX}{name}")
}

/// The testbed name of a namespace, if the namespace is one of ours.
pub fn testbed_of_netns(netns: &str) -> Option<&str> {
    netns
        .strip_prefix(NETNS_PREFIX)
        .filter(|n| validate_name(n).is_ok())
}

/// The bridge inside the namespace of testbed `name`.
pub fn bridge_name(name: &str) -> String {
    format!("{LINK_PREFIX}{name}br")
}

/// Tap number `index` of testbed `name`, e.g. `vnbtb0t0`.
pub fn tap_name(name: &str, index: u32) -> String {
    format!("{LINK_PREFIX}{name}t{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_and_are_traceable() {
        let longest = "abcdefgh";
        validate_name(longest).unwrap();
        assert!(tap_name(longest, MAX_TAPS).len() <= 15);
        assert!(bridge_name(longest).len() <= 15);
        assert_eq!(tap_name("tb0", 0), "vnbtb0t0");
        assert_eq!(netns_name("tb0"), "vnetbed-tb0");
        assert_eq!(testbed_of_netns("vnetbed-tb0"), Some("tb0"));
        assert_eq!(testbed_of_netns("other-tb0"), None);
    }

    #[test]
    fn tap_counts_outside_1_to_999_have_their_own_error() {
        validate_taps(1).unwrap();
        validate_taps(MAX_TAPS).unwrap();
        for bad in [0, 1000, u32::MAX] {
            let err = validate_taps(bad).unwrap_err();
            assert!(
                matches!(err, NetError::BadTapCount { taps } if taps == bad),
                "{err}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&format!("--taps {bad} is out of range"))
                    && text.contains("1 to 999 taps")
                    && !text.contains("testbed name"),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_names_are_rejected_with_reason() {
        for bad in ["", "abcdefghi", "TB0", "a/b", "-x", "a b"] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains("bad testbed name"), "{bad}: {err}");
        }
    }
}
