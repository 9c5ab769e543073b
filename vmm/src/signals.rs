//! Stop signals (SIGINT, SIGTERM, ...) and the parent-death signal: the one signal helper of
//! the VMM and the orchestrator.
//!
//! [`route_stop_signals`] installs one handler (through `vmm-sys-util`) that only does
//! async-signal-safe work: it records the signal number, which [`stop_signal`] returns, and,
//! once [`wake_on_stop`] gave it one, writes an eventfd (the VM's exit eventfd, which the main
//! thread of [`crate::vm::Vm::run`] is blocked on). Handlers are installed without
//! `SA_RESTART`, so a blocking system call of the process returns `EINTR` and the caller can
//! look at [`stop_signal`].
//!
//! [`die_with_parent`] is for a child between `fork` and `exec`: the child gets a signal when
//! its parent dies, and gives up if the parent is already gone.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop_signal(sig: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    STOP_SIGNAL.store(sig, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid 8-byte value that lives
        // across the call, and `fd` is the eventfd registered by `wake_on_stop`, kept open by
        // its owner until it calls `clear_wake_fd`.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Route each of `signals` to the stop handler: from then on [`stop_signal`] returns the
/// last one received, and the eventfd given to [`wake_on_stop`] (if any) is written.
pub fn route_stop_signals(signals: &[libc::c_int]) -> Result<(), vmm_sys_util::errno::Error> {
    for &signal in signals {
        vmm_sys_util::signal::register_signal_handler(signal, on_stop_signal)?;
    }
    Ok(())
}

/// Also write `eventfd` (an eventfd the caller keeps open) on every stop signal.
pub fn wake_on_stop(eventfd: RawFd) {
    WAKE_FD.store(eventfd, Ordering::SeqCst);
}

/// Stop writing the eventfd given to [`wake_on_stop`] (its owner is closing it).
pub fn clear_wake_fd() {
    WAKE_FD.store(-1, Ordering::SeqCst);
}

/// The last stop signal received, if any.
pub fn stop_signal() -> Option<i32> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// For a `pre_exec` hook: have the calling (forked) process get `signal` when its parent
/// dies, and fail with `ESRCH` if the parent, whose pid `parent` the caller took before the
/// fork, died already (the child was then reparented and would never get the signal).
/// Async-signal-safe: two system calls, no allocation.
pub fn die_with_parent(signal: libc::c_int, parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integer arguments only and changes only the
    // calling process's parent-death signal; its result is checked.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getppid takes no arguments and cannot fail.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use super::*;

    #[test]
    fn a_routed_signal_is_recorded_and_wakes_the_eventfd() {
        let evt = vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        wake_on_stop(std::os::fd::AsRawFd::as_raw_fd(&evt));
        // SIGUSR2: nothing else in this test process uses it.
        route_stop_signals(&[libc::SIGUSR2]).expect("handler");
        // SAFETY: raise only sends a signal to this thread; the handler just installed does
        // async-signal-safe work only.
        let rc = unsafe { libc::raise(libc::SIGUSR2) };
        assert_eq!(rc, 0);
        clear_wake_fd();
        assert_eq!(stop_signal(), Some(libc::SIGUSR2));
        assert_eq!(evt.read().expect("the handler wrote the eventfd"), 1);
    }

    #[test]
    fn a_child_whose_parent_is_not_the_one_named_does_not_start() {
        let run = |parent: libc::pid_t| {
            let mut cmd = Command::new("true");
            // SAFETY: the hook only makes async-signal-safe system calls (prctl, getppid).
            unsafe {
                cmd.pre_exec(move || die_with_parent(libc::SIGKILL, parent));
            }
            cmd.status()
        };
        let ours = std::process::id() as libc::pid_t;
        assert!(run(ours).expect("started").success());
        let err = run(ours + 1).expect_err("a child of another parent must not start");
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "{err}");
    }
}
