//! The device's signals to the guest: used-buffer and configuration-change interrupts
//! (InterruptStatus bits, delivered through one interrupt EventFd the VMM registers as a KVM
//! irqfd) and the DEVICE_NEEDS_RESET error path (virtio 1.x §2.1.2).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::events::EventSink;

/// InterruptStatus bit: a queue has new used buffers.
pub const INT_USED_RING: u32 = 1;
/// InterruptStatus bit: the configuration (or DEVICE_NEEDS_RESET) changed.
pub const INT_CONFIG: u32 = 2;

struct Inner {
    interrupt_status: AtomicU32,
    needs_reset: AtomicBool,
    irq: EventFd,
    events: EventSink,
    device: &'static str,
}

/// A cloneable handle shared by the transport (vCPU threads) and the device thread.
#[derive(Clone)]
pub struct Signals {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("interrupt_status", &self.interrupt_status())
            .field("needs_reset", &self.needs_reset())
            .finish()
    }
}

impl Signals {
    /// Signals over the interrupt EventFd `irq`, reporting errors of `device` to `events`.
    pub fn new(irq: EventFd, events: EventSink, device: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                interrupt_status: AtomicU32::new(0),
                needs_reset: AtomicBool::new(false),
                irq,
                events,
                device,
            }),
        }
    }

    /// The event sink errors go to.
    pub fn events(&self) -> &EventSink {
        &self.inner.events
    }

    /// The interrupt EventFd (the VMM registers a clone as irqfd; test drivers read it).
    pub fn irq(&self) -> &EventFd {
        &self.inner.irq
    }

    /// Raise a used-buffer interrupt.
    pub fn signal_used(&self) -> std::io::Result<()> {
        self.raise(INT_USED_RING)
    }

    /// Raise a configuration-change interrupt.
    pub fn signal_config(&self) -> std::io::Result<()> {
        self.raise(INT_CONFIG)
    }

    fn raise(&self, bit: u32) -> std::io::Result<()> {
        // SeqCst so that the status bit is visible before the guest can take the interrupt
        // and read InterruptStatus (the EventFd write is a syscall, itself a full barrier).
        self.inner.interrupt_status.fetch_or(bit, Ordering::SeqCst);
        self.inner.irq.write(1)
    }

    /// The InterruptStatus register.
    pub fn interrupt_status(&self) -> u32 {
        self.inner.interrupt_status.load(Ordering::SeqCst)
    }

    /// InterruptACK: clear the acknowledged bits.
    pub fn ack(&self, bits: u32) {
        self.inner
            .interrupt_status
            .fetch_and(!bits, Ordering::SeqCst);
    }

    /// Whether DEVICE_NEEDS_RESET is set.
    pub fn needs_reset(&self) -> bool {
        self.inner.needs_reset.load(Ordering::SeqCst)
    }

    /// The device met an error it cannot continue from (bad guest input): set
    /// DEVICE_NEEDS_RESET, emit an `error` event and raise a configuration-change interrupt
    /// (§2.1.2: "the device MUST send a device configuration change notification").
    ///
    /// Event fields: `device`, `kind` (a stable short name), `error` (the message),
    /// `queue` (or null), `needs_reset: true`.
    pub fn fail(&self, kind: &str, error: &dyn std::fmt::Display, queue: Option<usize>) {
        let first = !self.inner.needs_reset.swap(true, Ordering::SeqCst);
        tracing::warn!(
            device = self.inner.device,
            kind,
            queue,
            "device needs reset: {error}"
        );
        self.inner
            .events
            .emit(crate::events::Event::Error(crate::events::DeviceError {
                device: self.inner.device.to_string(),
                kind: kind.to_string(),
                error: error.to_string(),
                queue,
                needs_reset: true,
            }));
        if first {
            if let Err(e) = self.signal_config() {
                tracing::warn!("could not raise the config-change interrupt: {e}");
            }
        }
    }

    /// Device reset: clear InterruptStatus and DEVICE_NEEDS_RESET.
    pub fn reset(&self) {
        self.inner.interrupt_status.store(0, Ordering::SeqCst);
        self.inner.needs_reset.store(false, Ordering::SeqCst);
    }
}
