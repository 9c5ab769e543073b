//! Why a VM ended, and the process exit status each reason maps to.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | the guest reset the machine (i8042 reset, port 0x64 <- 0xfe): a normal end |
//! | odd `(V << 1) \| 1` | the guest wrote `V` to the debug-exit port 0xf4 (QEMU `isa-debug-exit` convention) |
//! | 2 | vnetbed error: bad options, no KVM, unusable kernel, ... (nothing ran) |
//! | 4 | the guest triple-faulted (KVM shutdown exit) |
//! | 6 | KVM could not run the guest: internal/emulation error, failed entry, unexpected exit |
//! | 8 | a virtio-net stall was detected and `--on-stall exit` was given |
//! | 10 | stopped by SIGINT or SIGTERM, after a clean shutdown |
//! | 12 | a VMM thread made a system call its seccomp filter forbids ([`crate::seccomp`]); stderr names it |
//! | 14 | the vhost-user backend of a virtio-net device died (closed its socket) and the run cannot go on: no `reconnect=SECS`, no backend back within SECS, or one with fewer features |

use std::fmt;
use std::time::Instant;

/// Exit status for a vnetbed error before or outside the guest (bad input, no KVM, ...).
pub const STATUS_ERROR: i32 = 2;

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest asked for a reset (i8042 0xfe): vnetbed treats it as power-off.
    Reset,
    /// The guest wrote `value` to the debug-exit port.
    DebugExit(u32),
    /// A vCPU triple-faulted; `registers` is a dump of its state.
    TripleFault {
        /// vCPU index.
        vcpu: usize,
        /// Register dump at the time of the fault.
        registers: String,
    },
    /// KVM failed to run a vCPU.
    InternalError {
        /// vCPU index.
        vcpu: usize,
        /// What KVM reported.
        detail: String,
        /// Register dump.
        registers: String,
    },
    /// The device's stall watchdog fired and asked the VM to end.
    StallDetected(String),
    /// SIGINT or SIGTERM (the signal number).
    Signal(i32),
    /// The vhost-user backend of a virtio-net device went away (what happened, in words).
    BackendDied(String),
}

impl ExitReason {
    /// The process exit status for this reason (see the module table).
    pub fn status(&self) -> i32 {
        match self {
            ExitReason::Reset => 0,
            ExitReason::DebugExit(v) => (((v << 1) | 1) & 0xff) as i32,
            ExitReason::TripleFault { .. } => 4,
            ExitReason::InternalError { .. } => 6,
            ExitReason::StallDetected(_) => 8,
            ExitReason::Signal(_) => 10,
            ExitReason::BackendDied(_) => 14,
        }
    }

    /// A short machine-readable name, used in the `exit` event.
    pub fn kind(&self) -> &'static str {
        match self {
            ExitReason::Reset => "reset",
            ExitReason::DebugExit(_) => "debug_exit",
            ExitReason::TripleFault { .. } => "triple_fault",
            ExitReason::InternalError { .. } => "internal_error",
            ExitReason::StallDetected(_) => "stall",
            ExitReason::Signal(_) => "signal",
            ExitReason::BackendDied(_) => "backend_died",
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Reset => write!(f, "the guest reset the machine"),
            ExitReason::DebugExit(v) => write!(f, "the guest wrote {v:#x} to the debug-exit port"),
            ExitReason::TripleFault { vcpu, registers } => {
                write!(
                    f,
                    "vCPU {vcpu} triple-faulted (KVM shutdown exit)\n{registers}"
                )
            }
            ExitReason::InternalError {
                vcpu,
                detail,
                registers,
            } => {
                write!(f, "KVM could not run vCPU {vcpu}: {detail}\n{registers}")
            }
            ExitReason::StallDetected(s) => write!(f, "virtio-net stall detected: {s}"),
            ExitReason::Signal(s) => write!(f, "stopped by signal {s}"),
            ExitReason::BackendDied(s) => write!(f, "the vhost-user backend died: {s}"),
        }
    }
}

/// The outcome of a finished VM.
#[derive(Debug, Clone)]
pub struct VmExit {
    /// Why it ended.
    pub reason: ExitReason,
    /// When the reason was recorded (the vCPU exit, the port write, or the signal).
    pub at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_distinct_and_documented() {
        assert_eq!(ExitReason::Reset.status(), 0);
        assert_eq!(ExitReason::DebugExit(0).status(), 1);
        assert_eq!(ExitReason::DebugExit(0x10).status(), 33);
        let tf = ExitReason::TripleFault {
            vcpu: 0,
            registers: String::new(),
        };
        assert_eq!(tf.status(), 4);
        let ie = ExitReason::InternalError {
            vcpu: 0,
            detail: String::new(),
            registers: String::new(),
        };
        assert_eq!(ie.status(), 6);
        assert_eq!(ExitReason::StallDetected(String::new()).status(), 8);
        assert_eq!(ExitReason::Signal(15).status(), 10);
        assert_eq!(ExitReason::BackendDied(String::new()).status(), 14);
        // Every status vnetbed itself uses is even, so none collides with a debug-exit status.
        for s in [STATUS_ERROR, 4, 6, 8, 10, 12, 14] {
            assert_eq!(s % 2, 0);
        }
    }
}
