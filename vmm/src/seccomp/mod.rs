//! Seccomp confinement of the VMM's threads: one allow-list filter per kind of thread,
//! compiled with `seccompiler`, installed by each thread on itself before the guest runs.
//!
//! | kind | thread(s) | installed |
//! |---|---|---|
//! | [`ThreadKind::Main`] | the thread that ran setup and then waits for the VM's end | in [`crate::vm::Vm::run`], after the vCPU threads have installed theirs, before they enter the guest |
//! | [`ThreadKind::Vcpu`] | `vcpu0`, `vcpu1`, ...: `KVM_RUN` and the device models on the buses | first thing in each vCPU thread |
//! | [`ThreadKind::DeviceWorker`] | `virtio-net`: the device's epoll loop, which also runs the stall watchdog on its timerfd | first thing in the thread (it is started by a vCPU thread at DRIVER_OK, so it also inherits the vCPU filter) |
//! | [`ThreadKind::StallExit`] | `stall-exit`: ends the VM when the watchdog fires with `--on-stall exit` | first thing in the thread |
//! | [`ThreadKind::VhostUser`] | `vhost-user`: a vhost-user virtio-net's relay of kicks and calls, its watchdog, and its messages to the backend; `vhost-deadline`: shuts the backend's socket down when an exchange outlives its deadline | first thing in `vhost-deadline`; in `vhost-user` after it has set up its epoll and timer (both are started by the main thread at attach, before the guest runs) |
//! | [`ThreadKind::VhostReconnect`] | `vhost-reconnect` (with `--vhost-user ...,reconnect=SECS`): connects to the backend's socket again after it closed it, and renegotiates (starting a new `vhost-deadline` thread); the only thread that may create a socket (`AF_UNIX` only) | first thing in the thread (started at attach, before the guest runs) |
//!
//! The stall watchdog has no thread of its own: it runs on the device worker's timer. The tap
//! helper thread (`setns` into the testbed's namespace to open the tap) ends before the VM is
//! built, so it needs no filter.
//!
//! A forbidden system call raises SIGSYS (`SeccompAction::Trap`); the handler writes one line
//! naming the thread and the system call to stderr and ends the process with
//! [`STATUS_SECCOMP`]. Filters are only installed when [`enable`] was called (by `vnetbed
//! run` unless `--seccomp off`): library users and tests run unconfined.

mod handler;
pub mod names;
mod rules;

use std::sync::OnceLock;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

pub use handler::STATUS_SECCOMP;

/// The kinds of VMM thread, each with its own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// The main thread: waits for the VM's end, kicks and joins the vCPUs, writes the exit event.
    Main,
    /// A vCPU thread.
    Vcpu,
    /// The virtio-net device thread (with the stall watchdog on its timer).
    DeviceWorker,
    /// The `--on-stall exit` link from the watchdog to the VM's end.
    StallExit,
    /// The vhost-user frontend's relay thread.
    VhostUser,
    /// The vhost-user frontend's reconnecting thread.
    VhostReconnect,
}

impl ThreadKind {
    /// Every kind.
    pub const ALL: [ThreadKind; 6] = [
        ThreadKind::Main,
        ThreadKind::Vcpu,
        ThreadKind::DeviceWorker,
        ThreadKind::StallExit,
        ThreadKind::VhostUser,
        ThreadKind::VhostReconnect,
    ];

    /// The name used in messages and in `VNETBED_SECCOMP_SELFTEST`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadKind::Main => "main",
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::DeviceWorker => "device-worker",
            ThreadKind::StallExit => "stall-exit",
            ThreadKind::VhostUser => "vhost-user",
            ThreadKind::VhostReconnect => "vhost-reconnect",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Errors building or installing a filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A filter could not be built (a bug in the rule tables).
    #[error("cannot build the seccomp filter of the {kind} thread: {source}")]
    Build {
        /// Which kind.
        kind: &'static str,
        /// Why.
        #[source]
        source: seccompiler::BackendError,
    },
    /// A filter could not be compiled to BPF.
    #[error("cannot compile the seccomp filter of the {kind} thread: {source}")]
    Compile {
        /// Which kind.
        kind: &'static str,
        /// Why.
        #[source]
        source: seccompiler::BackendError,
    },
    /// The kernel refused a filter (no seccomp support?).
    #[error("cannot install the seccomp filter of the {kind} thread (does this kernel support seccomp filters? use --seccomp off to run unconfined): {source}")]
    Install {
        /// Which kind.
        kind: &'static str,
        /// Why.
        #[source]
        source: seccompiler::Error,
    },
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler: {0}")]
    Handler(#[source] std::io::Error),
    /// `VNETBED_SECCOMP_SELFTEST` names no thread kind.
    #[error("VNETBED_SECCOMP_SELFTEST={0} names no thread kind: use main, vcpu, device-worker, stall-exit, vhost-user or vhost-reconnect")]
    SelfTest(String),
}

struct Policy {
    filters: [BpfProgram; 6],
    selftest: Option<ThreadKind>,
}

static POLICY: OnceLock<Policy> = OnceLock::new();

/// Environment variable of the self-test: a thread of the named kind makes a forbidden
/// system call (`uname`) right after installing its filter. For the tests only.
#[doc(hidden)]
pub const SELFTEST_ENV: &str = "VNETBED_SECCOMP_SELFTEST";

/// Build every filter and install the SIGSYS handler; from now on [`apply`] confines the
/// calling thread. Call once, before the VM's threads start.
pub fn enable() -> Result<(), SeccompError> {
    let selftest = match std::env::var(SELFTEST_ENV) {
        Ok(v) if !v.is_empty() => Some(
            ThreadKind::ALL
                .into_iter()
                .find(|k| k.as_str() == v)
                .ok_or(SeccompError::SelfTest(v))?,
        ),
        _ => None,
    };
    let filters = [
        compile(ThreadKind::Main)?,
        compile(ThreadKind::Vcpu)?,
        compile(ThreadKind::DeviceWorker)?,
        compile(ThreadKind::StallExit)?,
        compile(ThreadKind::VhostUser)?,
        compile(ThreadKind::VhostReconnect)?,
    ];
    handler::install().map_err(SeccompError::Handler)?;
    let _ = POLICY.set(Policy { filters, selftest });
    Ok(())
}

/// Whether [`enable`] was called.
pub fn enabled() -> bool {
    POLICY.get().is_some()
}

/// Confine the calling thread with the filter of `kind` (nothing unless [`enable`]d).
pub fn apply(kind: ThreadKind) -> Result<(), SeccompError> {
    let Some(policy) = POLICY.get() else {
        return Ok(());
    };
    handler::set_thread(kind, std::thread::current().name().unwrap_or("?"));
    seccompiler::apply_filter(&policy.filters[kind.index()]).map_err(|source| {
        SeccompError::Install {
            kind: kind.as_str(),
            source,
        }
    })?;
    if policy.selftest == Some(kind) {
        // SAFETY: uname with a null buffer only fails with EFAULT; here it never runs, since
        // the filter forbids it and SIGSYS ends the process.
        unsafe { libc::syscall(libc::SYS_uname, std::ptr::null_mut::<libc::utsname>()) };
    }
    Ok(())
}

/// [`apply`], or end the process with a message: a thread that cannot be confined must not
/// run guest-controlled code unconfined.
pub fn apply_or_exit(kind: ThreadKind) {
    if let Err(e) = apply(kind) {
        eprintln!("vnetbed: {e}");
        std::process::exit(crate::exit::STATUS_ERROR);
    }
}

/// The allow-list of `kind`, as system call numbers (for tests and documentation).
pub fn allowed_syscalls(kind: ThreadKind) -> Vec<i64> {
    rules::rules(kind).keys().copied().collect()
}

fn compile(kind: ThreadKind) -> Result<BpfProgram, SeccompError> {
    let filter = SeccompFilter::new(
        rules::rules(kind),
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(|source| SeccompError::Build {
        kind: kind.as_str(),
        source,
    })?;
    filter.try_into().map_err(|source| SeccompError::Compile {
        kind: kind.as_str(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_compiles() {
        for kind in ThreadKind::ALL {
            let bpf = compile(kind).unwrap();
            assert!(!bpf.is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn every_filter_lets_the_sigsys_handler_report_and_exit() {
        for kind in ThreadKind::ALL {
            let allowed = allowed_syscalls(kind);
            for nr in [
                libc::SYS_write,
                libc::SYS_exit_group,
                libc::SYS_rt_sigreturn,
            ] {
                assert!(
                    allowed.contains(&nr),
                    "{kind:?} lacks {:?}",
                    names::name(nr)
                );
            }
        }
    }

    #[test]
    fn the_selftest_syscall_is_forbidden_everywhere() {
        for kind in ThreadKind::ALL {
            assert!(
                !allowed_syscalls(kind).contains(&libc::SYS_uname),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn names_come_from_the_table() {
        assert_eq!(names::name(libc::SYS_uname), Some("uname"));
        assert_eq!(names::name(libc::SYS_clone3), Some("clone3"));
        assert_eq!(names::name(-1), None);
        assert_eq!(names::name(100_000), None);
    }
}
