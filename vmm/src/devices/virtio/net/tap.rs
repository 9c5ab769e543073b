//! Opening the tap a virtio-net device is bridged to, through the `tun-tap` crate, in the
//! VMM's own or a named network namespace.
//!
//! This is the one tap opener: the device (`vnetbed run --net`), the testbed
//! (`vnetbed::net::open_tap`) and the tests and benchmarks all open their taps here.
//!
//! A tap is looked up by name in the calling thread's network namespace, so for a named
//! namespace the tap is opened through [`crate::netns::run_in`], on a short-lived thread inside
//! `/run/netns/<name>`; the resulting fd keeps working from any thread.
//!
//! [`open_tap`] (what `vnetbed run --net` uses) only opens a tap that already exists, in the
//! given namespace or, without one, in the VMM's own: `TUNSETIFF` on an unknown name would
//! create a fresh, temporary tap attached to nothing, so a misspelt name would give a guest
//! without a network. [`open_or_create_tap`] creates a missing one, for tests and benchmarks
//! that work in a throwaway namespace of their own.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use super::backend::FdBackend;
use crate::netns::{self, NetnsError};

/// Why the tap could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// Network namespace {name} could not be opened.
    #[error("cannot open network namespace `{name}` ({}): {source}; create it with `ip netns add {name}` or drop netns=", netns::path(name).display())]
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
    /// The tap does not exist in the given network namespace.
    #[error(
        "tap `{name}` does not exist in network namespace `{netns}`; check the name: \
         `vnetbed net status --name NAME` lists the taps of testbed NAME (namespace \
         vnetbed-NAME), `vnetbed net up --taps N` makes a testbed with more, and \
         `ip -n {netns} link show type tun` lists what is there"
    )]
    NoSuchTap {
        /// Tap name.
        name: String,
        /// Namespace name.
        netns: String,
    },
    /// The tap does not exist in the VMM's own network namespace (no `netns=` given).
    #[error(
        "tap `{name}` does not exist in the VMM's network namespace; create it first (`ip \
         tuntap add {name} mode tap`, then attach it to a bridge and set it up), or, for a \
         testbed tap, add its namespace: --net tap={name},netns=vnetbed-NAME (see `vnetbed net \
         status`)"
    )]
    NoSuchTapHere {
        /// Tap name.
        name: String,
    },
    /// Another process holds the tap (`TUNSETIFF` returned `EBUSY`).
    #[error(
        "tap `{name}`{where_} is in use by another process (another VMM on the same tap?); \
         stop that process, or give this VMM a tap of its own (`vnetbed net status` lists a \
         testbed's taps; `vnetbed net up --taps N` makes more)"
    )]
    InUse {
        /// Tap name.
        name: String,
        /// ` in network namespace `NS`` or empty.
        where_: String,
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
    /// The opener thread could not be started.
    #[error("cannot start the tap opener thread: {0}")]
    Thread(#[source] io::Error),
}

impl From<NetnsError> for TapError {
    fn from(e: NetnsError) -> Self {
        match e {
            NetnsError::Open { name, source } => TapError::OpenNetns { name, source },
            NetnsError::Enter { name, source } => TapError::Setns { name, source },
            NetnsError::Thread { source, .. } => TapError::Thread(source),
        }
    }
}

/// Open the existing tap `name` without packet info, non-blocking, in network namespace
/// `netns` (`None`: the current one). A tap that does not exist there is an error
/// ([`TapError::NoSuchTap`] / [`TapError::NoSuchTapHere`]), never created; a tap another
/// process holds is [`TapError::InUse`].
pub fn open_tap(name: &str, netns: Option<&str>) -> Result<FdBackend, TapError> {
    open(name, netns, false)
}

/// Like [`open_tap`], but a tap that does not exist is created (a temporary tap, gone when
/// its fd is closed). For tests and benchmarks in a throwaway namespace of their own.
pub fn open_or_create_tap(name: &str, netns: Option<&str>) -> Result<FdBackend, TapError> {
    open(name, netns, true)
}

fn open(name: &str, netns: Option<&str>, create: bool) -> Result<FdBackend, TapError> {
    let fd = match netns {
        None => open_here(name, None, create)?,
        Some(ns) => netns::run_in(ns, || open_here(name, Some(ns), create))??,
    };
    FdBackend::new(fd).map_err(|source| TapError::Open {
        name: name.to_string(),
        source,
    })
}

/// Whether a network interface `name` exists in the calling thread's network namespace.
fn interface_exists(name: &str) -> bool {
    let Ok(cname) = CString::new(name) else {
        return false;
    };
    // SAFETY: cname is a valid NUL-terminated string that lives across the call;
    // if_nametoindex only reads it.
    unsafe { libc::if_nametoindex(cname.as_ptr()) != 0 }
}

/// Open tap `name` in the calling thread's network namespace (which is `netns`, if given).
fn open_here(name: &str, netns: Option<&str>, create: bool) -> Result<OwnedFd, TapError> {
    // Checked first: TUNSETIFF on an unknown name would create a new, unattached tap.
    if !create && !interface_exists(name) {
        return Err(match netns {
            Some(ns) => TapError::NoSuchTap {
                name: name.to_string(),
                netns: ns.to_string(),
            },
            None => TapError::NoSuchTapHere {
                name: name.to_string(),
            },
        });
    }
    let iface =
        tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap).map_err(|source| {
            if source.raw_os_error() == Some(libc::EBUSY) {
                TapError::InUse {
                    name: name.to_string(),
                    where_: netns
                        .map(|ns| format!(" in network namespace `{ns}`"))
                        .unwrap_or_default(),
                }
            } else {
                TapError::Open {
                    name: name.to_string(),
                    source,
                }
            }
        })?;
    // SAFETY: `into_raw_fd` hands over sole ownership of the open tap fd.
    Ok(unsafe { OwnedFd::from_raw_fd(iface.into_raw_fd()) })
}

/// Use an already-open tap fd (e.g. passed by a parent process).
pub fn tap_from_fd(fd: OwnedFd) -> io::Result<FdBackend> {
    FdBackend::new(fd)
}
