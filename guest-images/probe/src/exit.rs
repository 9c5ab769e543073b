//! Ending the VM through the debug-exit port (QEMU's isa-debug-exit at 0xf4, and
//! vnetbed's equivalent): writing V makes the VMM exit with status (V << 1) | 1.

use crate::port;

/// The debug-exit I/O port.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Why the probe ended the VM. The VMM's exit status is `(code << 1) | 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Finished on purpose (`probe.exit_after_boot=1`): status 1.
    Success = 0,
    /// A Rust panic: status 3.
    Panic = 1,
    // 2 (status 5): a CPU exception, written by the ring-0 stub in boot.s.
    /// The boot information or command line is unusable: status 7.
    BadBootInfo = 3,
    /// The NIC failed: negotiation refused, or the device broke the virtqueue contract:
    /// status 9.
    DeviceError = 4,
}

/// End the VM with `code`. If the VMM has no debug-exit device, halt forever via the
/// idle gate with interrupts still serviced (never spin).
pub fn exit(code: ExitCode) -> ! {
    port::outl(DEBUG_EXIT_PORT, code as u32);
    loop {
        crate::idle::wait_for_interrupt();
    }
}
