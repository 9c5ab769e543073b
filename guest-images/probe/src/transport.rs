//! The virtio transports the NIC driver speaks, behind one interface: virtio-mmio
//! version 2 (this file), and virtio-pci modern (1.0) and legacy (0.9.5) (src/virtio_pci.rs).

use core::ptr::{read_volatile, write_volatile};

use crate::virtio_net::NetError;
use crate::virtio_pci::{LegacyPci, ModernPci};

/// Device status bits (virtio 1.x 2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete (not in legacy).
    pub const FEATURES_OK: u8 = 8;
    /// The guest gave up.
    pub const FAILED: u8 = 128;
}

/// Where a queue's rings are (guest-physical).
#[derive(Debug, Clone, Copy)]
pub struct QueueAddresses {
    /// Descriptor table.
    pub desc: u64,
    /// Available ring.
    pub avail: u64,
    /// Used ring.
    pub used: u64,
}

/// One virtio device, on one of the transports.
pub enum Transport {
    /// virtio-mmio version 2.
    Mmio(Mmio),
    /// virtio-pci 1.0 (modern).
    Modern(ModernPci),
    /// virtio-pci 0.9.5 (legacy I/O BAR).
    Legacy(LegacyPci),
}

impl Transport {
    /// The name used in agent lines.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Mmio(_) => "virtio-mmio",
            Transport::Modern(_) => "virtio-pci-modern",
            Transport::Legacy(_) => "virtio-pci-legacy",
        }
    }

    /// The legacy interface: no VERSION_1, no FEATURES_OK, fixed queue sizes, a
    /// 10-byte net header without MRG_RXBUF.
    pub fn is_legacy(&self) -> bool {
        matches!(self, Transport::Legacy(_))
    }

    /// Write the device status (0 resets the device).
    pub fn set_status(&self, value: u8) {
        match self {
            Transport::Mmio(m) => m.write(MMIO_STATUS, u32::from(value)),
            Transport::Modern(p) => p.set_status(value),
            Transport::Legacy(p) => p.set_status(value),
        }
    }

    /// Read the device status.
    pub fn status(&self) -> u8 {
        match self {
            Transport::Mmio(m) => m.read(MMIO_STATUS) as u8,
            Transport::Modern(p) => p.status(),
            Transport::Legacy(p) => p.status(),
        }
    }

    /// The features the device offers (legacy: 32 bits).
    pub fn device_features(&self) -> u64 {
        match self {
            Transport::Mmio(m) => {
                m.write(MMIO_DEVICE_FEATURES_SEL, 0);
                let low = m.read(MMIO_DEVICE_FEATURES);
                m.write(MMIO_DEVICE_FEATURES_SEL, 1);
                u64::from(low) | (u64::from(m.read(MMIO_DEVICE_FEATURES)) << 32)
            }
            Transport::Modern(p) => p.device_features(),
            Transport::Legacy(p) => u64::from(p.device_features()),
        }
    }

    /// Tell the device which features the driver uses.
    pub fn set_driver_features(&self, features: u64) {
        match self {
            Transport::Mmio(m) => {
                m.write(MMIO_DRIVER_FEATURES_SEL, 0);
                m.write(MMIO_DRIVER_FEATURES, features as u32);
                m.write(MMIO_DRIVER_FEATURES_SEL, 1);
                m.write(MMIO_DRIVER_FEATURES, (features >> 32) as u32);
            }
            Transport::Modern(p) => p.set_driver_features(features),
            Transport::Legacy(p) => p.set_driver_features(features as u32),
        }
    }

    /// The largest size queue `index` may have (0: no such queue), and whether that
    /// size is fixed (legacy: the driver cannot choose).
    pub fn queue_max(&self, index: u16) -> Result<(u16, bool), NetError> {
        match self {
            Transport::Mmio(m) => {
                m.write(MMIO_QUEUE_SEL, u32::from(index));
                if m.read(MMIO_QUEUE_READY) != 0 {
                    return Err(NetError::BadQueue(u32::from(index)));
                }
                Ok((
                    m.read(MMIO_QUEUE_NUM_MAX).min(u32::from(u16::MAX)) as u16,
                    false,
                ))
            }
            Transport::Modern(p) => p.queue_max(index).map(|max| (max, false)),
            Transport::Legacy(p) => Ok((p.queue_size(index), true)),
        }
    }

    /// Give queue `index` of `size` its rings and turn it on. `vector` is its MSI-X
    /// vector (PCI with MSI-X only).
    pub fn activate_queue(
        &self,
        index: u16,
        size: u16,
        rings: QueueAddresses,
        vector: Option<u16>,
    ) -> Result<(), NetError> {
        match self {
            Transport::Mmio(m) => {
                m.write(MMIO_QUEUE_SEL, u32::from(index));
                m.write(MMIO_QUEUE_NUM, u32::from(size));
                for (low, high, addr) in [
                    (MMIO_QUEUE_DESC_LOW, MMIO_QUEUE_DESC_HIGH, rings.desc),
                    (MMIO_QUEUE_DRIVER_LOW, MMIO_QUEUE_DRIVER_HIGH, rings.avail),
                    (MMIO_QUEUE_DEVICE_LOW, MMIO_QUEUE_DEVICE_HIGH, rings.used),
                ] {
                    m.write(low, addr as u32);
                    m.write(high, (addr >> 32) as u32);
                }
                m.write(MMIO_QUEUE_READY, 1);
                Ok(())
            }
            Transport::Modern(p) => p.activate_queue(index, size, rings, vector),
            Transport::Legacy(p) => p.activate_queue(index, rings, vector),
        }
    }

    /// Notify (kick) queue `index`.
    pub fn notify(&self, index: u16) {
        match self {
            Transport::Mmio(m) => m.write(MMIO_QUEUE_NOTIFY, u32::from(index)),
            Transport::Modern(p) => p.notify(index),
            Transport::Legacy(p) => p.notify(index),
        }
    }

    /// Read and acknowledge the interrupt status (bit 0: used buffers, bit 1: config);
    /// for the shared line (INTx, virtio-mmio), not MSI-X.
    pub fn ack_interrupt(&self) -> u32 {
        match self {
            Transport::Mmio(m) => {
                let status = m.read(MMIO_INTERRUPT_STATUS);
                m.write(MMIO_INTERRUPT_ACK, status);
                status
            }
            Transport::Modern(p) => u32::from(p.read_isr()),
            Transport::Legacy(p) => u32::from(p.read_isr()),
        }
    }

    /// The MAC address from device config space (offsets 0-5), read consistently.
    pub fn read_mac(&self) -> [u8; 6] {
        let read = |mac: &mut [u8; 6]| {
            for (i, byte) in mac.iter_mut().enumerate() {
                *byte = match self {
                    Transport::Mmio(m) => m.read_config_u8(i),
                    Transport::Modern(p) => p.read_config_u8(i),
                    Transport::Legacy(p) => p.read_config_u8(i),
                };
            }
        };
        let mut mac = [0u8; 6];
        // The generation counter makes a torn read visible (modern only; legacy has
        // none, and a MAC does not change under us).
        for _ in 0..16 {
            let before = self.config_generation();
            read(&mut mac);
            if self.config_generation() == before {
                break;
            }
        }
        mac
    }

    fn config_generation(&self) -> u32 {
        match self {
            Transport::Mmio(m) => m.read(MMIO_CONFIG_GENERATION),
            Transport::Modern(p) => u32::from(p.config_generation()),
            Transport::Legacy(_) => 0,
        }
    }
}

// virtio-mmio registers (virtio 1.x, 4.2.2).
const MMIO_MAGIC_VALUE: usize = 0x000;
const MMIO_VERSION: usize = 0x004;
const MMIO_DEVICE_ID: usize = 0x008;
const MMIO_DEVICE_FEATURES: usize = 0x010;
const MMIO_DEVICE_FEATURES_SEL: usize = 0x014;
const MMIO_DRIVER_FEATURES: usize = 0x020;
const MMIO_DRIVER_FEATURES_SEL: usize = 0x024;
const MMIO_QUEUE_SEL: usize = 0x030;
const MMIO_QUEUE_NUM_MAX: usize = 0x034;
const MMIO_QUEUE_NUM: usize = 0x038;
const MMIO_QUEUE_READY: usize = 0x044;
const MMIO_QUEUE_NOTIFY: usize = 0x050;
const MMIO_INTERRUPT_STATUS: usize = 0x060;
const MMIO_INTERRUPT_ACK: usize = 0x064;
const MMIO_STATUS: usize = 0x070;
const MMIO_QUEUE_DESC_LOW: usize = 0x080;
const MMIO_QUEUE_DESC_HIGH: usize = 0x084;
const MMIO_QUEUE_DRIVER_LOW: usize = 0x090;
const MMIO_QUEUE_DRIVER_HIGH: usize = 0x094;
const MMIO_QUEUE_DEVICE_LOW: usize = 0x0a0;
const MMIO_QUEUE_DEVICE_HIGH: usize = 0x0a4;
const MMIO_CONFIG_GENERATION: usize = 0x0fc;
const MMIO_CONFIG: usize = 0x100;

const MMIO_MAGIC: u32 = 0x7472_6976; // "virt"
/// virtio device ID of a network card.
pub const NET_DEVICE_ID: u32 = 1;

/// A virtio-mmio register window.
pub struct Mmio {
    base: usize,
}

impl Mmio {
    /// The virtio-mmio version 2 network device at `base`, checked.
    pub fn probe(base: u64) -> Result<Self, NetError> {
        let mmio = Mmio {
            base: base as usize,
        };
        let magic = mmio.read(MMIO_MAGIC_VALUE);
        if magic != MMIO_MAGIC {
            return Err(NetError::NoDevice(magic));
        }
        match mmio.read(MMIO_VERSION) {
            2 => {}
            v => return Err(NetError::UnsupportedVersion(v)),
        }
        match mmio.read(MMIO_DEVICE_ID) {
            NET_DEVICE_ID => Ok(mmio),
            id => Err(NetError::NotNet(id)),
        }
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `base` is the device window from the command line (below 4 GiB, checked
        // by the parser), identity-mapped and user-accessible; 32-bit aligned access.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as for read.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn read_config_u8(&self, offset: usize) -> u8 {
        // SAFETY: as for read; device config space follows the registers.
        unsafe { read_volatile((self.base + MMIO_CONFIG + offset) as *const u8) }
    }
}
