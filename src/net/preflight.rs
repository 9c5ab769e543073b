//! Checks before anything is created: privileges and the programs the testbed runs.

use std::path::PathBuf;

use super::error::{NetError, Result};

/// CAP_NET_ADMIN: create links, addresses, taps.
const CAP_NET_ADMIN: u32 = 12;
/// CAP_SYS_ADMIN: create and enter network namespaces.
const CAP_SYS_ADMIN: u32 = 21;

/// Check the privileges of this process (effective uid and effective capabilities).
pub fn check_privileges() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| NetError::io("cannot read /proc/self/status", e))?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    check_capabilities(euid, cap_eff)
}

/// Check an effective uid and effective capability set (the `CapEff` mask of
/// /proc/<pid>/status); separated from [`check_privileges`] so it can be tested.
pub fn check_capabilities(euid: u32, cap_eff: u64) -> Result<()> {
    let missing: Vec<&str> = [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| cap_eff & (1u64 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(NetError::NotPrivileged {
        euid,
        missing: format!(", missing {}", missing.join(" and ")),
    })
}

/// Look a program up on PATH (only PATH: an override of PATH is honoured).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Find dnsmasq on PATH, or say which package to install.
pub fn find_dnsmasq() -> Result<PathBuf> {
    find_program("dnsmasq").ok_or(NetError::ProgramMissing {
        program: "dnsmasq",
        package: "dnsmasq-base",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_check_names_what_is_missing() {
        let all = (1u64 << CAP_NET_ADMIN) | (1u64 << CAP_SYS_ADMIN);
        check_capabilities(0, all).unwrap();
        let err = check_capabilities(1000, 0).unwrap_err().to_string();
        assert!(err.contains("needs root"), "{err}");
        assert!(err.contains("uid is 1000"), "{err}");
        assert!(err.contains("CAP_NET_ADMIN and CAP_SYS_ADMIN"), "{err}");
        let err = check_capabilities(0, 1u64 << CAP_NET_ADMIN)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing CAP_SYS_ADMIN"), "{err}");
    }
}
