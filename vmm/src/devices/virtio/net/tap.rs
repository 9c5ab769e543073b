//! Opening the tap a virtio-net device is bridged to, through the `tun-tap` crate, in the
//! VMM's own or a named network namespace.
//!
//! A tap is looked up by name in the calling thread's network namespace, so for a named
//! namespace the tap is opened on a short-lived thread that first `setns()`s into
//! `/var/run/netns/<name>`; the resulting fd keeps working from any thread.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use super::backend::FdBackend;

/// Why the tap could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// Network namespace {name} could not be opened.
    #[error("cannot open network namespace `{name}` (/var/run/netns/{name}): {source}; create it with `ip netns add {name}` or drop netns=")]
    OpenNetns {
        /// Namespace name.
        name: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// setns failed.
    #[error("cannot enter network namespace `{name}`: {source} (needs root / CAP_SYS_ADMIN)")]
    Setns {
        /// Namespace name.
        name: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The tap could not be opened.
    #[error("cannot open tap `{name}`: {source} (needs /dev/net/tun and CAP_NET_ADMIN; create it with `ip tuntap add {name} mode tap`)")]
    Open {
        /// Tap name.
        name: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The opener thread died.
    #[error("the tap opener thread failed")]
    Thread,
}

/// Open (or create, if it does not exist) tap `name` without packet info, non-blocking, in
/// network namespace `netns` (`None`: the current one).
pub fn open_tap(name: &str, netns: Option<&str>) -> Result<FdBackend, TapError> {
    let fd = match netns {
        None => open_here(name)?,
        Some(ns) => {
            let ns_file = File::open(format!("/var/run/netns/{ns}")).map_err(|source| {
                TapError::OpenNetns {
                    name: ns.to_string(),
                    source,
                }
            })?;
            let (name, ns) = (name.to_string(), ns.to_string());
            std::thread::spawn(move || {
                // SAFETY: setns on a valid netns fd only changes this (short-lived) thread's
                // network namespace.
                if unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(TapError::Setns {
                        name: ns,
                        source: io::Error::last_os_error(),
                    });
                }
                open_here(&name)
            })
            .join()
            .map_err(|_| TapError::Thread)??
        }
    };
    FdBackend::new(fd).map_err(|source| TapError::Open {
        name: name.to_string(),
        source,
    })
}

fn open_here(name: &str) -> Result<OwnedFd, TapError> {
    let iface =
        tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap).map_err(|source| {
            TapError::Open {
                name: name.to_string(),
                source,
            }
        })?;
    // SAFETY: `into_raw_fd` hands over sole ownership of the open tap fd.
    Ok(unsafe { OwnedFd::from_raw_fd(iface.into_raw_fd()) })
}

/// Use an already-open tap fd (e.g. passed by a parent process).
pub fn tap_from_fd(fd: OwnedFd) -> io::Result<FdBackend> {
    FdBackend::new(fd)
}
