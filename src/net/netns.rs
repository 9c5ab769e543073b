//! The testbeds' network namespaces: find them, and open a tap inside one.
//!
//! # How a VMM reaches a tap inside the testbed namespace
//!
//! The taps live in the testbed's namespace (`vnetbed-<name>`), never in the root namespace.
//! A tap file descriptor stays bound to the namespace it was opened in, whatever namespace
//! the process later works in. So a VMM opens its tap from a thread that has joined the
//! testbed namespace, then uses the descriptor from any thread. [`open_tap`] does exactly
//! that, through the VMM's one tap opener and namespace helper ([`vmm::netns::run_in`]), and
//! reports [`NetError::TapInUse`] when another process holds the tap.
//!
//! The namespace handle is the bind mount `/run/netns/vnetbed-<name>` that `ip netns add`
//! creates.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use vmm::devices::virtio::net::backend::FdBackend;
use vmm::devices::virtio::net::tap::{self, TapError};

use super::error::{NetError, Result};
use super::names;

pub use vmm::netns::NETNS_DIR;

/// The handle path of a namespace.
pub fn netns_path(netns: &str) -> PathBuf {
    vmm::netns::path(netns)
}

/// Whether a namespace of that name exists.
pub fn netns_exists(netns: &str) -> bool {
    netns_path(netns).exists()
}

/// All namespaces whose name starts with the vnetbed prefix.
pub fn list_vnetbed_netns() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| names::testbed_of_netns(n).is_some())
        .collect();
    found.sort();
    found
}

/// The inode that identifies a namespace (as in `/proc/<pid>/ns/net -> net:[inode]`).
pub fn netns_inode(netns: &str) -> Option<u64> {
    std::fs::metadata(netns_path(netns)).ok().map(|m| m.ino())
}

/// Pids of the processes that live in the namespace.
pub fn processes_in_netns(netns: &str) -> Vec<u32> {
    let Some(inode) = netns_inode(netns) else {
        return Vec::new();
    };
    let wanted = format!("net:[{inode}]");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .map(|l| l.to_string_lossy() == wanted)
                .unwrap_or(false)
        })
        .collect()
}

/// Open tap `tap` of testbed `testbed` through the one tap opener
/// ([`vmm::devices::virtio::net::tap::open_tap`]): non-blocking, close-on-exec, no packet
/// info header. The returned backend reads and writes Ethernet frames on the testbed bridge.
pub fn open_tap(testbed: &str, tap: &str) -> Result<FdBackend> {
    let netns = names::netns_name(testbed);
    tap::open_tap(tap, Some(&netns)).map_err(|e| match e {
        TapError::OpenNetns { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            NetError::NotRunning(testbed.to_string())
        }
        TapError::NoSuchTap { .. } => NetError::NoSuchTap {
            testbed: testbed.into(),
            tap: tap.into(),
        },
        TapError::InUse { .. } => NetError::TapInUse {
            testbed: testbed.into(),
            tap: tap.into(),
        },
        other => NetError::io(
            format!("cannot open tap {tap} of testbed {testbed}"),
            std::io::Error::other(other),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_testbed_is_not_running() {
        let err = open_tap("nosuchtb", "vnbnosuchtbt0").unwrap_err();
        assert!(matches!(err, NetError::NotRunning(_)), "{err}");
    }
}
