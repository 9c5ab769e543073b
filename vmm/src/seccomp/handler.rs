//! The SIGSYS handler: names the thread and the forbidden system call on stderr and ends
//! the process with [`STATUS_SECCOMP`].
//!
//! It is async-signal-safe: it reads the system call number from the `siginfo_t`, the
//! thread's kind and name from thread-local cells set before the filter was installed
//! (const-initialised, no destructor: plain TLS loads), the name from a static table, formats
//! into a stack buffer and calls only `write(2)` and `_exit(2)`, which every filter allows.

use std::cell::Cell;

use super::{names, ThreadKind};

/// Exit status of a VMM stopped by its seccomp filter (a thread made a forbidden system call).
pub const STATUS_SECCOMP: i32 = 12;

/// Longest thread name kept (Linux thread names are at most 15 bytes).
const NAME_LEN: usize = 16;

thread_local! {
    static KIND: Cell<Option<ThreadKind>> = const { Cell::new(None) };
    static NAME: Cell<[u8; NAME_LEN]> = const { Cell::new([0; NAME_LEN]) };
}

/// Record the calling thread's kind and name for the handler.
pub(super) fn set_thread(kind: ThreadKind, name: &str) {
    let mut buf = [0u8; NAME_LEN];
    let n = name.len().min(NAME_LEN);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    KIND.with(|k| k.set(Some(kind)));
    NAME.with(|c| c.set(buf));
}

/// Offset of `si_syscall` in the x86_64 `siginfo_t` of a SIGSYS (`_sigsys`: `_call_addr` at
/// 16, `_syscall` at 24, `_arch` at 28).
const SI_SYSCALL_OFFSET: usize = 24;

/// A fixed buffer to build the message in, without allocating.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn number(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// Build the message for system call `nr` made by a thread of `kind` named `name`.
fn message(nr: i64, kind: Option<ThreadKind>, name: &[u8]) -> Line {
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    line.push(b"vnetbed: seccomp: the ");
    line.push(kind.map_or("unconfined", |k| k.as_str()).as_bytes());
    line.push(b" thread `");
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    line.push(&name[..end]);
    line.push(b"` made the forbidden system call ");
    line.push(names::name(nr).unwrap_or("unknown").as_bytes());
    line.push(b" (");
    if nr < 0 {
        line.push(b"-");
    }
    line.number(nr.unsigned_abs());
    line.push(b"); the VMM stops (exit status ");
    line.number(STATUS_SECCOMP as u64);
    line.push(b"). Rerun with --seccomp off to debug, and report it.\n");
    line
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SIGSYS (SA_SIGINFO), whose `_sigsys`
    // member holds the 32-bit system call number at SI_SYSCALL_OFFSET.
    let nr = unsafe {
        info.cast::<u8>()
            .add(SI_SYSCALL_OFFSET)
            .cast::<i32>()
            .read()
    };
    let kind = KIND.with(Cell::get);
    let name = NAME.with(Cell::get);
    let line = message(i64::from(nr), kind, &name);
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer lives on this stack.
    unsafe {
        libc::write(2, line.buf.as_ptr().cast(), line.len);
        libc::_exit(STATUS_SECCOMP);
    }
}

/// Install the SIGSYS handler for the process.
pub(super) fn install() -> std::io::Result<()> {
    vmm_sys_util::signal::register_signal_handler(libc::SIGSYS, on_sigsys)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_thread_and_syscall() {
        let mut name = [0u8; NAME_LEN];
        name[..5].copy_from_slice(b"vcpu0");
        let line = message(libc::SYS_uname, Some(ThreadKind::Vcpu), &name);
        let text = std::str::from_utf8(&line.buf[..line.len]).unwrap();
        assert_eq!(
            text,
            "vnetbed: seccomp: the vcpu thread `vcpu0` made the forbidden system call uname (63); \
             the VMM stops (exit status 12). Rerun with --seccomp off to debug, and report it.\n"
        );
        let line = message(9999, None, &[0; NAME_LEN]);
        let text = std::str::from_utf8(&line.buf[..line.len]).unwrap();
        assert!(text.contains("call unknown (9999)"), "{text}");
    }
}
