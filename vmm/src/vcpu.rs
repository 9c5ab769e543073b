//! A vCPU thread: `KVM_RUN` in a loop, dispatching port I/O and MMIO exits to the buses and
//! turning fatal exits into an [`ExitReason`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};

use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::devices::bus::Bus;
use crate::exit::ExitReason;
use crate::exit_notifier::ExitNotifier;
use crate::seccomp::{self, ThreadKind};

/// The signal used to kick a vCPU thread out of `KVM_RUN` (its handler does nothing; the
/// interrupted ioctl returns EINTR and the loop sees the stop flag).
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn noop_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Install the (empty) kick signal handler once per process.
pub fn install_kick_handler() -> Result<(), vmm_sys_util::errno::Error> {
    vmm_sys_util::signal::register_signal_handler(kick_signal(), noop_handler)
}

/// Everything a vCPU thread needs.
pub struct VcpuContext {
    /// vCPU index.
    pub index: usize,
    /// The vCPU.
    pub fd: VcpuFd,
    /// Port I/O devices.
    pub pio: Bus,
    /// MMIO devices.
    pub mmio: Bus,
    /// Where to report the end of the VM.
    pub exit: ExitNotifier,
    /// Met twice before the guest runs: once this thread has confined itself with its
    /// seccomp filter, and once the main thread has.
    pub confined: Arc<Barrier>,
}

/// Run until the VM is asked to stop or this vCPU hits a fatal exit.
pub fn run_vcpu(mut ctx: VcpuContext) {
    seccomp::apply_or_exit(ThreadKind::Vcpu);
    ctx.confined.wait();
    ctx.confined.wait();
    loop {
        if ctx.exit.stop_flag().load(Ordering::Acquire) {
            return;
        }
        let fatal = match ctx.fd.run() {
            Ok(exit) => match exit {
                VcpuExit::IoOut(port, data) => {
                    if !ctx.pio.write(u64::from(port), data) {
                        tracing::trace!(port, "write to unclaimed port");
                    }
                    None
                }
                VcpuExit::IoIn(port, data) => {
                    ctx.pio.read(u64::from(port), data);
                    None
                }
                VcpuExit::MmioWrite(addr, data) => {
                    if !ctx.mmio.write(addr, data) {
                        tracing::debug!(addr, "MMIO write to unclaimed address");
                    }
                    None
                }
                VcpuExit::MmioRead(addr, data) => {
                    if !ctx.mmio.read(addr, data) {
                        tracing::debug!(addr, "MMIO read from unclaimed address");
                    }
                    None
                }
                VcpuExit::Shutdown => Some(ExitReason::TripleFault {
                    vcpu: ctx.index,
                    registers: String::new(),
                }),
                VcpuExit::SystemEvent(kind, _) => match kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET
                    | kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => Some(ExitReason::Reset),
                    other => Some(internal(
                        ctx.index,
                        format!("unexpected system event {other}"),
                    )),
                },
                VcpuExit::InternalError => Some(internal(ctx.index, String::new())),
                VcpuExit::FailEntry(reason, cpu) => Some(internal(
                    ctx.index,
                    format!("KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x} on host cpu {cpu}"),
                )),
                VcpuExit::Hlt => Some(internal(
                    ctx.index,
                    "unexpected HLT exit (the in-kernel irqchip should handle HLT)".into(),
                )),
                VcpuExit::Intr => None,
                other => Some(internal(ctx.index, format!("unhandled exit {other:?}"))),
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
            Err(e) => Some(internal(ctx.index, format!("KVM_RUN failed: {e}"))),
        };
        if let Some(mut reason) = fatal {
            if let ExitReason::InternalError { detail, .. } = &mut reason {
                if detail.is_empty() {
                    *detail = internal_error_detail(&mut ctx.fd);
                }
            }
            let reason = attach_registers(reason, &ctx.fd);
            ctx.exit.request(reason);
            return;
        }
    }
}

/// Describe a KVM_EXIT_INTERNAL_ERROR from its suberror (linux/kvm.h).
fn internal_error_detail(fd: &mut VcpuFd) -> String {
    // SAFETY: after an exit with reason KVM_EXIT_INTERNAL_ERROR, `internal` is the active
    // member of the kvm_run exit union (KVM's ABI).
    let (suberror, ndata) = unsafe {
        let internal = &fd.get_kvm_run().__bindgen_anon_1.internal;
        (internal.suberror, internal.ndata)
    };
    let what = match suberror {
        1 => "instruction emulation failure (KVM's emulator cannot execute the guest's instruction; on hosts where guest ring 0 is emulated, SSE in ring 0 does this)",
        2 => "simultaneous exceptions",
        3 => "delivery event failure",
        4 => "unexpected exit reason",
        _ => "unknown suberror",
    };
    format!("KVM_EXIT_INTERNAL_ERROR, suberror {suberror}: {what} ({ndata} data words)")
}

fn internal(vcpu: usize, detail: String) -> ExitReason {
    ExitReason::InternalError {
        vcpu,
        detail,
        registers: String::new(),
    }
}

fn attach_registers(reason: ExitReason, fd: &VcpuFd) -> ExitReason {
    match reason {
        ExitReason::TripleFault { vcpu, .. } => ExitReason::TripleFault {
            vcpu,
            registers: dump_registers(fd),
        },
        ExitReason::InternalError { vcpu, detail, .. } => ExitReason::InternalError {
            vcpu,
            detail,
            registers: dump_registers(fd),
        },
        other => other,
    }
}

/// A human-readable dump of a vCPU's registers.
pub fn dump_registers(fd: &VcpuFd) -> String {
    let mut s = String::new();
    match fd.get_regs() {
        Ok(r) => {
            s += &format!(
                "  rip={:#018x} rsp={:#018x} rbp={:#018x} rflags={:#x}\n  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n  rsi={:#018x} rdi={:#018x} r8={:#018x} r9={:#018x}\n",
                r.rip, r.rsp, r.rbp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.r8, r.r9
            );
        }
        Err(e) => s += &format!("  (registers unavailable: {e})\n"),
    }
    match fd.get_sregs() {
        Ok(r) => {
            s += &format!(
                "  cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x} cs={:#x} (dpl {}) ss={:#x}",
                r.cr0, r.cr2, r.cr3, r.cr4, r.efer, r.cs.selector, r.cs.dpl, r.ss.selector
            );
        }
        Err(e) => s += &format!("  (special registers unavailable: {e})"),
    }
    s
}
