//! Named network namespaces: the one way the device, the testbed and the test rig get into
//! one.
//!
//! `ip netns add NAME` makes a handle, the bind mount `/run/netns/NAME`. `setns(2)` with
//! `CLONE_NEWNET` moves only the calling thread, which is allowed in a multi-threaded process.
//! [`run_in`] runs a closure on a dedicated thread that enters the namespace and ends with the
//! closure, so the caller's threads never change namespace. A tap or socket the closure opens
//! stays bound to the namespace it was opened in, and keeps working from any thread.
//!
//! [`enter`] is the bare `setns`, for a forked child between `fork` and `exec` (where no thread
//! can be started): it is async-signal-safe.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;

/// Where `ip netns` keeps its namespace handles.
pub const NETNS_DIR: &str = "/run/netns";

/// The handle path of namespace `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Why a namespace could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace handle could not be opened (no such namespace, or no permission).
    #[error("cannot open network namespace `{name}` ({}): {source}", path(name).display())]
    Open {
        /// Namespace name.
        name: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `setns` failed.
    #[error("cannot enter network namespace `{name}`: {source} (needs root / CAP_SYS_ADMIN)")]
    Enter {
        /// Namespace name.
        name: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The thread that enters the namespace could not be started.
    #[error("cannot start a thread for network namespace `{name}`: {source}")]
    Thread {
        /// Namespace name.
        name: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Open the handle of namespace `name`, to [`enter`] it later (e.g. from a forked child).
pub fn open(name: &str) -> Result<File, NetnsError> {
    File::open(path(name)).map_err(|source| NetnsError::Open {
        name: name.to_string(),
        source,
    })
}

/// Move the calling thread into the namespace whose handle is `ns`. Only this thread changes.
/// Async-signal-safe (one system call, no allocation), so it may run in a `pre_exec` hook.
pub fn enter(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns only reads its two integer arguments; `ns` is a borrowed, open fd for the
    // whole call. With CLONE_NEWNET it changes only the calling thread's network namespace,
    // which is allowed in a multi-threaded process and touches no memory of ours.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run `f` on a dedicated thread inside network namespace `name` and return its result. The
/// calling thread stays where it is; a panic in `f` is passed on to the caller.
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let handle = open(name)?;
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(scope, || {
                enter(handle.as_fd()).map_err(|source| NetnsError::Enter {
                    name: name.to_string(),
                    source,
                })?;
                Ok(f())
            })
            .map_err(|source| NetnsError::Thread {
                name: name.to_string(),
                source,
            })?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_namespace_is_an_open_error() {
        let err = run_in("vnetbed-no-such-netns", || ()).unwrap_err();
        assert!(matches!(err, NetnsError::Open { .. }), "{err}");
        assert!(err.to_string().contains("/run/netns/vnetbed-no-such-netns"));
    }

    #[test]
    fn the_closure_runs_in_the_namespace_and_the_caller_stays() {
        // Needs root and `ip`; a namespace of its own.
        if is_root().is_none() {
            return;
        }
        let name = format!("vnetbed-u{}", std::process::id());
        let made = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status();
        if !made.is_ok_and(|s| s.success()) {
            return;
        }
        let own = std::fs::read_link("/proc/thread-self/ns/net").ok();
        let inside = run_in(&name, || {
            std::fs::read_link("/proc/thread-self/ns/net").ok()
        });
        let after = std::fs::read_link("/proc/thread-self/ns/net").ok();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .status();
        let inside = inside.expect("run_in");
        assert_ne!(inside, own);
        assert_eq!(after, own);
    }

    /// Some(()) when running as root (read from /proc, no unsafe).
    fn is_root() -> Option<()> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let uid = status.lines().find(|l| l.starts_with("Uid:"))?;
        (uid.split_whitespace().nth(1)? == "0").then_some(())
    }
}
