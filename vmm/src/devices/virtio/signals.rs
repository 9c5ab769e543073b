//! The device's signals to the guest: used-buffer and configuration-change interrupts
//! (InterruptStatus bits, delivered through one interrupt EventFd the VMM registers as a KVM
//! irqfd, or, on virtio-pci with MSI-X enabled, through the MSI-X vector the driver gave the
//! queue or the configuration) and the DEVICE_NEEDS_RESET error path (virtio 1.x §2.1.2).
//!
//! The device decides *whether* to interrupt (its notify model); this decides *how*: the
//! shared line of virtio-mmio and PCI INTx, where one interrupt serves every queue, or one
//! MSI-X vector per queue, where an interrupt for tx says nothing about rx.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::devices::pci::msix::{MsixVectors, NO_VECTOR};
use crate::events::EventSink;

/// InterruptStatus bit: a queue has new used buffers.
pub const INT_USED_RING: u32 = 1;
/// InterruptStatus bit: the configuration (or DEVICE_NEEDS_RESET) changed.
pub const INT_CONFIG: u32 = 2;

struct Inner {
    interrupt_status: AtomicU32,
    needs_reset: AtomicBool,
    irq: EventFd,
    /// PCI INTx only: KVM's resample EventFd of the level-triggered irqfd `irq` (see
    /// [`Signals::with_msix`]).
    resample: Option<EventFd>,
    /// INTx raises since the line was last lowered by the guest's EOI (resample).
    intx_raises: AtomicU32,
    events: EventSink,
    device: &'static str,
    msix: Option<MsixRouting>,
}

/// MSI-X delivery: the function's vectors and which vector each queue and the
/// configuration change use (virtio-pci `queue_msix_vector`, `msix_config`).
struct MsixRouting {
    vectors: Arc<MsixVectors>,
    config: AtomicU16,
    queues: Vec<AtomicU16>,
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
        Self::build(irq, None, events, device, None)
    }

    fn build(
        irq: EventFd,
        resample: Option<EventFd>,
        events: EventSink,
        device: &'static str,
        msix: Option<MsixRouting>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                interrupt_status: AtomicU32::new(0),
                needs_reset: AtomicBool::new(false),
                irq,
                resample,
                intx_raises: AtomicU32::new(0),
                events,
                device,
                msix,
            }),
        }
    }

    /// Signals of a PCI function with `queues` queues: through `vectors` while the driver
    /// has MSI-X enabled, through the INTx EventFd `irq` otherwise.
    ///
    /// INTx is a level-triggered line: the VMM registers `irq` as a KVM irqfd with
    /// `resample` as its resample EventFd (KVM_IRQFD_FLAG_RESAMPLE), which keeps the line
    /// asserted until the guest's EOI and then signals `resample`. A plain irqfd only pulses
    /// the line: on a level-triggered IOAPIC input (what ACPI's _PRT gives PCI INTx, and
    /// what Linux programs), a pulse that arrives while the previous interrupt is still in
    /// service is forgotten at the EOI: a lost interrupt made by the VMM, not by the device
    /// under test. The device thread polls `resample` and calls [`Signals::resample`].
    pub fn with_msix(
        irq: EventFd,
        resample: Option<EventFd>,
        events: EventSink,
        device: &'static str,
        vectors: Arc<MsixVectors>,
        queues: usize,
    ) -> Self {
        let routing = MsixRouting {
            vectors,
            config: AtomicU16::new(NO_VECTOR),
            queues: (0..queues).map(|_| AtomicU16::new(NO_VECTOR)).collect(),
        };
        Self::build(irq, resample, events, device, Some(routing))
    }

    /// KVM's INTx resample EventFd, if the line is level-triggered (for the device thread's
    /// poll set).
    pub fn resample_fd(&self) -> Option<&EventFd> {
        self.inner.resample.as_ref()
    }

    /// The guest ended an INTx interrupt (KVM signalled the resample EventFd and lowered the
    /// line): consume that signal and, if the device raised the line again while it was
    /// still asserted (that raise was absorbed) and InterruptStatus still holds a bit the
    /// driver has not read, raise the line again, as a level-triggered source would still
    /// be asserted. The one raise that was delivered is not repeated: a guest that routes
    /// the input edge-triggered and ends the interrupt before it reads the ISR (the probe
    /// does) gets no extra interrupts. With MSI-X enabled INTx is not used.
    pub fn resample(&self) -> std::io::Result<()> {
        let Some(fd) = &self.inner.resample else {
            return Ok(());
        };
        match fd.read() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
        if self
            .inner
            .msix
            .as_ref()
            .is_some_and(|m| m.vectors.enabled())
        {
            return Ok(());
        }
        // SeqCst pairs with `raise` (status bit, count, then the EventFd write) and with the
        // ISR read on a vCPU thread (`take_interrupt_status`): an absorbed raise is counted
        // and its bit visible here; a bit the driver already read is not raised twice.
        let raises = self.inner.intx_raises.swap(0, Ordering::SeqCst);
        if raises > 1 && self.inner.interrupt_status.load(Ordering::SeqCst) != 0 {
            self.inner.intx_raises.fetch_add(1, Ordering::SeqCst);
            self.inner.irq.write(1)?;
        }
        Ok(())
    }

    /// The MSI-X vector of queue `queue` (`None` for the configuration vector); NO_VECTOR
    /// without MSI-X.
    pub fn vector(&self, queue: Option<usize>) -> u16 {
        let Some(m) = &self.inner.msix else {
            return NO_VECTOR;
        };
        let slot = match queue {
            None => Some(&m.config),
            Some(q) => m.queues.get(q),
        };
        slot.map(|v| v.load(Ordering::SeqCst)).unwrap_or(NO_VECTOR)
    }

    /// Give queue `queue` (`None`: configuration changes) MSI-X vector `vector`. A vector
    /// the function does not have reads back as NO_VECTOR (virtio 1.x §4.1.5.1.2.1), and
    /// the return value says whether it was taken.
    pub fn set_vector(&self, queue: Option<usize>, vector: u16) -> bool {
        let Some(m) = &self.inner.msix else {
            return false;
        };
        let slot = match queue {
            None => Some(&m.config),
            Some(q) => m.queues.get(q),
        };
        let Some(slot) = slot else { return false };
        let ok = vector == NO_VECTOR || usize::from(vector) < m.vectors.len();
        slot.store(if ok { vector } else { NO_VECTOR }, Ordering::SeqCst);
        ok
    }

    /// The event sink errors go to.
    pub fn events(&self) -> &EventSink {
        &self.inner.events
    }

    /// The interrupt EventFd (the VMM registers a clone as irqfd; test drivers read it).
    pub fn irq(&self) -> &EventFd {
        &self.inner.irq
    }

    /// Raise a used-buffer interrupt (on the shared line, or the first queue's vector).
    pub fn signal_used(&self) -> std::io::Result<()> {
        self.raise(INT_USED_RING, Some(0))
    }

    /// Raise a used-buffer interrupt for queue `queue`: on MSI-X, that queue's vector only.
    pub fn signal_queue(&self, queue: usize) -> std::io::Result<()> {
        self.raise(INT_USED_RING, Some(queue))
    }

    /// Raise a configuration-change interrupt.
    pub fn signal_config(&self) -> std::io::Result<()> {
        self.raise(INT_CONFIG, None)
    }

    fn raise(&self, bit: u32, queue: Option<usize>) -> std::io::Result<()> {
        // SeqCst so that the status bit is visible before the guest can take the interrupt
        // and read InterruptStatus (the EventFd write is a syscall, itself a full barrier).
        self.inner.interrupt_status.fetch_or(bit, Ordering::SeqCst);
        if let Some(m) = &self.inner.msix {
            if m.vectors.enabled() {
                // With MSI-X on, NO_VECTOR means no interrupt at all (§4.1.5.1.2).
                let vector = self.vector(queue);
                if vector == NO_VECTOR {
                    return Ok(());
                }
                return m.vectors.signal(vector);
            }
        }
        // Counted before the write: a raise that finds the line still asserted (its write
        // is absorbed) is then seen by the resample that follows the EOI.
        self.inner.intx_raises.fetch_add(1, Ordering::SeqCst);
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

    /// Device reset: clear InterruptStatus and DEVICE_NEEDS_RESET, and forget the MSI-X
    /// vectors the driver chose.
    pub fn reset(&self) {
        self.inner.interrupt_status.store(0, Ordering::SeqCst);
        self.inner.needs_reset.store(false, Ordering::SeqCst);
        self.inner.intx_raises.store(0, Ordering::SeqCst);
        if let Some(m) = &self.inner.msix {
            m.config.store(NO_VECTOR, Ordering::SeqCst);
            m.queues
                .iter()
                .for_each(|q| q.store(NO_VECTOR, Ordering::SeqCst));
        }
    }

    /// Read and clear InterruptStatus (the virtio-pci ISR register's read side effect).
    pub fn take_interrupt_status(&self) -> u32 {
        self.inner.interrupt_status.swap(0, Ordering::SeqCst)
    }

    /// Report a guest mistake that is ignored (no DEVICE_NEEDS_RESET): an `error` event with
    /// `needs_reset: false`.
    pub fn ignored(&self, kind: &str, error: &dyn std::fmt::Display) {
        report_ignored(&self.inner.events, self.inner.device, kind, error);
    }
}

/// Emit an `error` event for an ignored guest mistake of `device` (no DEVICE_NEEDS_RESET).
pub fn report_ignored(events: &EventSink, device: &str, kind: &str, error: &dyn std::fmt::Display) {
    tracing::warn!(device, kind, "ignored: {error}");
    events.emit(crate::events::Event::Error(crate::events::DeviceError {
        device: device.to_string(),
        kind: kind.to_string(),
        error: error.to_string(),
        queue: None,
        needs_reset: false,
    }));
}
