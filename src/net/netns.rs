//! Network namespaces: create, list, delete, and run code inside one.
//!
//! # How a VMM reaches a tap inside the testbed namespace
//!
//! The taps live in the testbed's namespace (`vnetbed-<name>`), never in the root namespace.
//! A tap file descriptor stays bound to the namespace it was opened in, whatever namespace
//! the process later works in. So a VMM opens its tap from a thread that has joined the
//! testbed namespace, then uses the descriptor from any thread:
//!
//! - [`open_tap`] does exactly that (`TUNSETIFF` on `/dev/net/tun` from a helper thread in
//!   the namespace) and reports [`NetError::TapInUse`] when another process holds the tap;
//! - [`with_netns`] runs any closure on a helper thread inside the namespace, for a VMM that
//!   opens its tap through another library (e.g. `tun-tap`);
//! - [`enter_netns`] moves the *calling thread* into the namespace for good.
//!
//! The namespace handle is the bind mount `/run/netns/vnetbed-<name>` that `ip netns add`
//! creates; `setns(2)` with `CLONE_NEWNET` on one thread of a multi-threaded process is
//! allowed and affects only that thread.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::error::{NetError, Result};
use super::names;

/// Where `ip netns` keeps its namespace handles.
pub const NETNS_DIR: &str = "/run/netns";

/// The handle path of a namespace.
pub fn netns_path(netns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(netns)
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

/// Open the namespace handle of testbed `testbed`.
fn open_netns(testbed: &str) -> Result<File> {
    let path = netns_path(&names::netns_name(testbed));
    File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NetError::NotRunning(testbed.to_string()),
        _ => NetError::io(format!("cannot open {}", path.display()), e),
    })
}

/// Move the calling thread into the network namespace of testbed `testbed`. Only this thread
/// changes; sockets and taps it opens from now on belong to the testbed namespace.
pub fn enter_netns(testbed: &str) -> Result<()> {
    let ns = open_netns(testbed)?;
    // SAFETY: setns on a valid, open namespace fd; CLONE_NEWNET only changes this thread's
    // network namespace, which is allowed in a multi-threaded process.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(NetError::io(
            format!("cannot enter network namespace of testbed {testbed}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Run `f` on a helper thread inside the network namespace of testbed `testbed`, and return
/// its result. The caller's threads stay where they are.
pub fn with_netns<T: Send>(testbed: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| enter_netns(testbed).map(|()| f()));
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Flags for [`open_tap`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapFlags {
    /// Frames carry a `virtio_net_hdr` (`IFF_VNET_HDR`), as a virtio-net backend wants.
    pub vnet_hdr: bool,
}

/// `struct ifreq` as `TUNSETIFF` reads it: a name and the flags, padded to 40 bytes.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// `TUNSETIFF`, `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Open tap `tap` of testbed `testbed` (non-blocking, close-on-exec, no packet info header).
/// The returned descriptor reads and writes Ethernet frames on the testbed bridge.
pub fn open_tap(testbed: &str, tap: &str, flags: TapFlags) -> Result<OwnedFd> {
    if tap.len() >= libc::IFNAMSIZ {
        return Err(NetError::NoSuchTap {
            testbed: testbed.into(),
            tap: tap.into(),
        });
    }
    with_netns(testbed, || open_tap_here(testbed, tap, flags))?
}

fn open_tap_here(testbed: &str, tap: &str, flags: TapFlags) -> Result<OwnedFd> {
    let cname = std::ffi::CString::new(tap).map_err(|_| NetError::NoSuchTap {
        testbed: testbed.into(),
        tap: tap.into(),
    })?;
    // The tap must already exist: TUNSETIFF on an unknown name would create a new device.
    // SAFETY: cname is a valid NUL-terminated string.
    if unsafe { libc::if_nametoindex(cname.as_ptr()) } == 0 {
        return Err(NetError::NoSuchTap {
            testbed: testbed.into(),
            tap: tap.into(),
        });
    }
    // SAFETY: open with a static NUL-terminated path; the result is checked below.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(NetError::io(
            "cannot open /dev/net/tun",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..tap.len()].copy_from_slice(tap.as_bytes());
    let mut f = libc::IFF_TAP | libc::IFF_NO_PI;
    if flags.vnet_hdr {
        f |= libc::IFF_VNET_HDR;
    }
    req.flags = f as libc::c_short;
    // SAFETY: TUNSETIFF reads a struct ifreq; IfReqFlags has its layout and size (40 bytes),
    // and lives across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReqFlags) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EBUSY) => NetError::TapInUse {
                testbed: testbed.into(),
                tap: tap.into(),
            },
            _ => NetError::io(format!("TUNSETIFF on tap {tap} of testbed {testbed}"), err),
        });
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfReqFlags>(), 40);
    }

    #[test]
    fn unknown_testbed_is_not_running() {
        let err = with_netns("nosuchtb", || ()).unwrap_err();
        assert!(matches!(err, NetError::NotRunning(_)), "{err}");
    }
}
