//! The 16550 UART at 0x3f8 (COM1, IRQ 4), from `vm-superio`, with its interrupt on an irqfd.

use std::io::Write;

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::devices::bus::BusDevice;

/// Raises the UART's interrupt by writing an eventfd registered as a KVM irqfd.
pub struct EventFdTrigger(pub EventFd);

impl Trigger for EventFdTrigger {
    type E = std::io::Error;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.write(1)
    }
}

/// A COM1 UART writing the guest's output to `W`.
pub struct SerialDevice {
    inner: Serial<EventFdTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>,
}

impl SerialDevice {
    /// A UART that interrupts through `irq` and writes output to `out`.
    pub fn new(irq: EventFd, out: Box<dyn Write + Send>) -> Self {
        Self {
            inner: Serial::new(EventFdTrigger(irq), out),
        }
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if data.len() != 1 || offset > 7 {
            data.fill(0xff);
            return;
        }
        data[0] = self.inner.read(offset as u8);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() != 1 || offset > 7 {
            return;
        }
        if let Err(e) = self.inner.write(offset as u8, data[0]) {
            tracing::warn!("serial output failed: {e}");
        }
    }
}

/// An output sink that throws the guest's serial output away (`--serial none`).
pub struct Discard;

impl Write for Discard {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
