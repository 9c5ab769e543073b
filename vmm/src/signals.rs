//! SIGINT/SIGTERM: a clean stop of a running VM.
//!
//! The handler only does async-signal-safe work: it records the signal number and writes the
//! VM's exit eventfd, which the main thread of [`crate::vm::Vm::run`] is blocked on.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

static STOP_FD: AtomicI32 = AtomicI32::new(-1);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop_signal(sig: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    LAST_SIGNAL.store(sig, Ordering::SeqCst);
    let fd = STOP_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid 8-byte value and `fd`
        // is the eventfd registered by `install_stop_handlers`, kept open by the running VM.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Route SIGINT and SIGTERM to `eventfd` (the VM's exit eventfd).
pub fn install_stop_handlers(eventfd: RawFd) -> Result<(), vmm_sys_util::errno::Error> {
    STOP_FD.store(eventfd, Ordering::SeqCst);
    vmm_sys_util::signal::register_signal_handler(libc::SIGINT, on_stop_signal)?;
    vmm_sys_util::signal::register_signal_handler(libc::SIGTERM, on_stop_signal)
}

/// Stop routing signals to the eventfd (the VM is gone).
pub fn clear_stop_fd() {
    STOP_FD.store(-1, Ordering::SeqCst);
}

/// The last stop signal received, if any.
pub fn last_stop_signal() -> Option<i32> {
    match LAST_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
