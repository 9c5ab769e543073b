//! virtio 1.x devices on the virtio-mmio (version 2) transport.
//!
//! - [`mmio`]: the register file a guest driver talks to (virtio 1.x §4.2.2);
//! - [`queue`]: the device side of a split virtqueue (§2.7): descriptor walking and used ring;
//! - [`crate_queue`]: the second queue backend, rust-vmm's `virtio-queue` crate, run as the
//!   system under test;
//! - [`protocol`]: the notification protocol's decision code, both halves, shared by the
//!   device, the test driver and the loom model check;
//! - [`signals`]: interrupts to the guest and the DEVICE_NEEDS_RESET path;
//! - [`net`]: the virtio-net device (§5.1), its device thread, notification models and watchdog.

pub mod crate_queue;
pub mod mmio;
pub mod net;
pub mod pci;
pub mod pci_legacy;
pub mod protocol;
pub mod queue;
pub mod signals;
pub mod transport;

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

pub use queue::QueueConfig;
pub use signals::Signals;

/// Device status bits (virtio 1.x §2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest knows how to drive the device.
    pub const DRIVER: u32 = 2;
    /// The driver is ready: the device may use its queues.
    pub const DRIVER_OK: u32 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an unrecoverable error; the driver must reset it.
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u32 = 0x80;
}

/// Feature bit: virtio 1.x device (mandatory on virtio-mmio version 2).
pub const VIRTIO_F_VERSION_1: u32 = virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
/// Feature bit: `used_event` / `avail_event` notification suppression (§2.7.10).
pub const VIRTIO_RING_F_EVENT_IDX: u32 = virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

/// Why a device could not start.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The device needs {expected} queues but the driver configured {found}.
    #[error("the device needs {expected} queues but the driver configured {found}")]
    QueueCount {
        /// Queues the device has.
        expected: usize,
        /// Queues handed over.
        found: usize,
    },
    /// The device thread could not be started.
    #[error("could not start the device thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A queue's rings do not fit the guest memory or are misaligned.
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    /// The device is already running (activate without reset).
    #[error("the device is already active")]
    AlreadyActive,
}

/// Everything a device needs to start serving its queues (handed over at DRIVER_OK).
pub struct ActivateContext {
    /// The guest memory, shared with the vCPUs.
    pub mem: GuestMemoryMmap<()>,
    /// The features the driver accepted.
    pub features: u64,
    /// One configuration per queue, in queue order; every queue is ready.
    pub queues: Vec<QueueConfig>,
    /// One kick EventFd per queue (the VMM's ioeventfd and the QueueNotify handler write it).
    pub kicks: Vec<EventFd>,
    /// Interrupt and needs-reset signalling.
    pub signals: Signals,
}

/// A virtio device behind the MMIO transport: the device-type specific part.
pub trait VirtioDevice: Send {
    /// The virtio device ID (§5): 1 for network.
    fn device_id(&self) -> u32;
    /// The largest size of each queue; the number of entries is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// The features the device offers.
    fn device_features(&self) -> u64;
    /// A guest read of device configuration space at `offset` (never panics).
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// A guest write to device configuration space (never panics).
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Start serving the queues.
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError>;
    /// Stop serving the queues and forget all per-activation state (device reset, §2.1.1).
    fn reset(&mut self);
}
