//! Legacy port-I/O devices that end the VM: the i8042 reset line and the debug-exit port.

use crate::devices::bus::BusDevice;
use crate::exit::ExitReason;
use crate::exit_notifier::ExitNotifier;

/// i8042 command port (0x64). Only the reset command (0xfe) is implemented, which is what
/// Linux's `reboot=k` and test guests use; it ends the VM with [`ExitReason::Reset`].
/// Status reads return 0 (output buffer empty, input buffer empty), so a reset sequence that
/// polls the status before writing proceeds at once.
pub struct I8042 {
    exit: ExitNotifier,
}

impl I8042 {
    /// A controller that reports resets to `exit`.
    pub fn new(exit: ExitNotifier) -> Self {
        Self { exit }
    }
}

/// The i8042 "pulse reset line" command.
pub const I8042_CMD_RESET: u8 = 0xfe;

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if data.first() == Some(&I8042_CMD_RESET) {
            self.exit.request(ExitReason::Reset);
        }
    }
}

/// The debug-exit port: a write of `V` (1, 2 or 4 bytes, little endian) ends the VM with exit
/// status `(V << 1) | 1`, as QEMU's `isa-debug-exit`, so one test guest works on both.
pub struct DebugExit {
    exit: ExitNotifier,
}

impl DebugExit {
    /// A port that reports to `exit`.
    pub fn new(exit: ExitNotifier) -> Self {
        Self { exit }
    }
}

impl BusDevice for DebugExit {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let mut v = [0u8; 4];
        let n = data.len().min(4);
        v[..n].copy_from_slice(&data[..n]);
        self.exit
            .request(ExitReason::DebugExit(u32::from_le_bytes(v)));
    }
}
