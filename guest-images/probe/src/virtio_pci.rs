//! virtio-net on PCI: finding the function, the modern (virtio 1.0) interface through its
//! vendor capabilities (common, notify, ISR, device config), the legacy (0.9.5) I/O-BAR
//! interface, and the interrupt: MSI-X with one vector for config and one per queue
//! (QEMU's default `vectors=3` for one queue pair, as Linux's virtio_pci sets it up), or
//! INTx through the IOAPIC.

use core::cell::Cell;
use core::ptr::{read_volatile, write_volatile};

use crate::bootinfo::RamRanges;
use crate::pci::{self, command, reg, Bar, ConfigAccess, Function, PciError, Window};
use crate::port;
use crate::transport::{QueueAddresses, Transport};
use crate::virtio_net::NetError;

/// Red Hat / virtio vendor ID.
pub const VIRTIO_VENDOR: u16 = 0x1af4;
/// Transitional (and legacy) device IDs: 0x1000-0x103f, the type in the subsystem ID.
const TRANSITIONAL_FIRST: u16 = 0x1000;
const TRANSITIONAL_LAST: u16 = 0x103f;
/// Modern device IDs: 0x1040 + virtio type.
const MODERN_BASE: u16 = 0x1040;
/// virtio type of a network card.
const NET_TYPE: u16 = 1;

const CAP_VENDOR: u8 = 0x09;
const CAP_MSIX: u8 = 0x11;
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;

/// MSI-X entries used: config, rx, tx.
pub const MSIX_ENTRIES: u16 = 3;
/// The 32-bit PCI memory window of QEMU microvm (`pcie=on`), where no firmware assigns
/// BARs: unassigned BARs are placed here.
pub const SELF_ASSIGN_WINDOW: (u64, u64) = (0xc000_0000, 0xe000_0000);

/// Whether QEMU's generic PCIe host bridge (1b36:0008, as on microvm) answers at
/// 00:00.0 of the ECAM at `base`.
pub fn is_microvm_ecam(base: u64) -> bool {
    let access = ConfigAccess::Ecam { base };
    let f = Function {
        bus: 0,
        device: 0,
        function: 0,
    };
    access.read16(f, reg::VENDOR_ID) == 0x1b36 && access.read16(f, reg::DEVICE_ID) == 0x0008
}

/// A virtio function on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioFunction {
    /// Where.
    pub function: Function,
    /// PCI device ID.
    pub device_id: u16,
    /// virtio device type (1 = net).
    pub virtio_type: u16,
}

impl VirtioFunction {
    /// A network card.
    pub fn is_net(&self) -> bool {
        self.virtio_type == NET_TYPE
    }
}

/// Up to 8 virtio functions of bus 0.
pub fn find_virtio(access: &ConfigAccess) -> ([Option<VirtioFunction>; 8], usize) {
    let mut found = [None; 8];
    let mut count = 0;
    pci::scan_bus0(access, |function, vendor, device_id| {
        if vendor != VIRTIO_VENDOR || count >= found.len() {
            return;
        }
        let virtio_type = match device_id {
            TRANSITIONAL_FIRST..=TRANSITIONAL_LAST => access.read16(function, reg::SUBSYSTEM_ID),
            id if id >= MODERN_BASE => id - MODERN_BASE,
            _ => return,
        };
        found[count] = Some(VirtioFunction {
            function,
            device_id,
            virtio_type,
        });
        count += 1;
    });
    (found, count)
}

/// How the NIC interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqMode {
    /// MSI-X: an x86 vector each for config changes, rx and tx.
    MsiX {
        /// Config change vector.
        config: u8,
        /// rx queue vector.
        rx: u8,
        /// tx queue vector.
        tx: u8,
    },
    /// INTx, routed through IOAPIC input `gsi` (edge-triggered, see apic::route_irq).
    Intx {
        /// IOAPIC input (the interrupt line the firmware wrote).
        gsi: u32,
        /// x86 vector.
        vector: u8,
    },
}

/// The NIC's PCI function, set up: its transport and interrupt mode.
pub struct PciNic {
    /// The transport (modern or legacy).
    pub transport: Transport,
    /// The interrupt mode.
    pub irq: IrqMode,
    /// Where.
    pub function: Function,
    /// BARs the probe assigned itself (no firmware had).
    pub bars_assigned: u8,
}

/// What the caller decides about interrupts.
#[derive(Debug, Clone, Copy)]
pub struct IrqChoice {
    /// Use MSI-X when the function has it (`probe.msix=0` turns it off).
    pub msix: bool,
    /// x86 vectors for MSI-X config, rx, tx.
    pub msix_vectors: [u8; 3],
    /// x86 vector for INTx.
    pub intx_vector: u8,
}

pub use probe::cmdline::PciInterface;

/// Set up the virtio-net function `nic`: BARs, the interface (`interface`; `Auto`: modern
/// when its capabilities are there, else legacy), the interrupt mode. Does not touch the
/// device status (the driver does).
pub fn setup(
    access: &ConfigAccess,
    nic: &VirtioFunction,
    ram: &RamRanges,
    interface: PciInterface,
    choice: IrqChoice,
    route_intx: impl FnOnce(u32, u8) -> bool,
) -> Result<PciNic, NetError> {
    let f = nic.function;
    let caps = pci::capabilities(access, f).map_err(NetError::Pci)?;
    let mut window = Window::new(SELF_ASSIGN_WINDOW.0, SELF_ASSIGN_WINDOW.1);
    let mut bars = Bars {
        access,
        f,
        ram,
        window: &mut window,
        assigned: 0,
    };
    let mut virtio_caps: [Option<(u8, u32, u32, u16)>; 5] = [None; 5];
    let mut msix_cap = None;
    for (offset, id) in caps.iter() {
        match id {
            CAP_VENDOR => {
                let cfg_type = access.read8(f, offset + 3);
                let slot = usize::from(cfg_type);
                if (1..=4).contains(&cfg_type) && virtio_caps[slot].is_none() {
                    let bar = access.read8(f, offset + 4);
                    let cap_offset = access.read32(f, offset + 8);
                    let length = access.read32(f, offset + 12);
                    virtio_caps[slot] = Some((bar, cap_offset, length, offset));
                }
            }
            CAP_MSIX => msix_cap = msix_cap.or(Some(offset)),
            _ => {}
        }
    }
    // Decoding and bus mastering on (bus mastering also carries MSI-X writes).
    let command = access.read16(f, reg::COMMAND);
    access.write16(
        f,
        reg::COMMAND,
        command | command::MEMORY | command::IO | command::BUS_MASTER,
    );
    let caps_for_modern = if interface == PciInterface::Legacy {
        [None; 5]
    } else {
        virtio_caps
    };
    let modern = match (
        caps_for_modern[CFG_COMMON as usize],
        caps_for_modern[CFG_NOTIFY as usize],
        caps_for_modern[CFG_ISR as usize],
        caps_for_modern[CFG_DEVICE as usize],
    ) {
        (Some(common), Some(notify), Some(isr), Some(device)) => {
            let at = |bars: &mut Bars<'_>, (bar, offset, length, _): (u8, u32, u32, u16)| {
                let (base, size) = bars.memory(bar)?;
                if u64::from(offset) + u64::from(length) > size {
                    return Err(NetError::Pci(PciError::BadBar(f, bar)));
                }
                Ok((base + u64::from(offset)) as usize)
            };
            Some(ModernPci {
                common: at(&mut bars, common)?,
                notify_base: at(&mut bars, notify)?,
                notify_multiplier: access.read32(f, notify.3 + 16),
                isr: at(&mut bars, isr)?,
                device: at(&mut bars, device)?,
                notify_addresses: [Cell::new(0), Cell::new(0)],
            })
        }
        _ => None,
    };
    // MSI-X: map the table, program three entries, enable.
    let msix = match msix_cap {
        Some(cap) if choice.msix => {
            let control = access.read16(f, cap + 2);
            let table_size = (control & 0x7ff) + 1;
            if table_size < MSIX_ENTRIES {
                None
            } else {
                let table = access.read32(f, cap + 4);
                let (base, size) = bars.memory((table & 7) as u8)?;
                let offset = u64::from(table & !7);
                if offset + 16 * u64::from(table_size) > size {
                    return Err(NetError::Pci(PciError::BadBar(f, (table & 7) as u8)));
                }
                let table = (base + offset) as usize;
                for (entry, vector) in choice.msix_vectors.iter().enumerate() {
                    let at = table + 16 * entry;
                    // Fixed delivery to APIC ID 0, edge.
                    mmio_write32(at, 0xfee0_0000);
                    mmio_write32(at + 4, 0);
                    mmio_write32(at + 8, u32::from(*vector));
                    mmio_write32(at + 12, 0);
                }
                // Enable, unmask the function.
                access.write16(f, cap + 2, (control | 0x8000) & !0x4000);
                Some(IrqMode::MsiX {
                    config: choice.msix_vectors[0],
                    rx: choice.msix_vectors[1],
                    tx: choice.msix_vectors[2],
                })
            }
        }
        _ => None,
    };
    let transport = match modern {
        Some(modern) => Transport::Modern(modern),
        None if interface == PciInterface::Modern => return Err(NetError::NoVirtioInterface(f)),
        None => match bars.read(0) {
            Bar::Io { base, size } if base != 0 && size >= 24 && base + size <= 0x1_0000 => {
                Transport::Legacy(LegacyPci {
                    io: base as u16,
                    config: if msix.is_some() { 24 } else { 20 },
                })
            }
            _ => return Err(NetError::NoVirtioInterface(f)),
        },
    };
    let irq = match msix {
        Some(mode) => {
            access.write16(
                f,
                reg::COMMAND,
                access.read16(f, reg::COMMAND) | command::INTX_DISABLE,
            );
            if !transport_set_config_vector(&transport, 0) {
                return Err(NetError::MsixRefused(f));
            }
            mode
        }
        None => {
            let pin = access.read8(f, reg::INTERRUPT_PIN);
            let line = access.read8(f, reg::INTERRUPT_LINE);
            if pin == 0 || line == 0 || line == 0xff {
                return Err(NetError::NoInterrupt(f));
            }
            access.write16(
                f,
                reg::COMMAND,
                access.read16(f, reg::COMMAND) & !command::INTX_DISABLE,
            );
            if !route_intx(u32::from(line), choice.intx_vector) {
                return Err(NetError::NoInterrupt(f));
            }
            IrqMode::Intx {
                gsi: u32::from(line),
                vector: choice.intx_vector,
            }
        }
    };
    Ok(PciNic {
        transport,
        irq,
        function: f,
        bars_assigned: bars.assigned,
    })
}

fn transport_set_config_vector(transport: &Transport, vector: u16) -> bool {
    match transport {
        Transport::Modern(p) => {
            p.write16(COMMON_MSIX_CONFIG, vector);
            p.read16(COMMON_MSIX_CONFIG) == vector
        }
        Transport::Legacy(p) => {
            port::outw(p.io + LEGACY_MSI_CONFIG_VECTOR, vector);
            port::inw(p.io + LEGACY_MSI_CONFIG_VECTOR) == vector
        }
        Transport::Mmio(_) => false,
    }
}

/// BAR resolution for one function: as assigned, or self-assigned from the window.
struct Bars<'a> {
    access: &'a ConfigAccess,
    f: Function,
    ram: &'a RamRanges,
    window: &'a mut Window,
    assigned: u8,
}

impl Bars<'_> {
    fn read(&self, index: u8) -> Bar {
        pci::read_bar(self.access, self.f, index)
    }

    /// Memory BAR `index`: its base (assigned here if the firmware did not) and size,
    /// checked against RAM and the 4 GiB identity map.
    fn memory(&mut self, index: u8) -> Result<(u64, u64), NetError> {
        let (f, bad) = (self.f, |e| Err(NetError::Pci(e)));
        let Bar::Memory { base, size, wide } = self.read(index) else {
            return bad(PciError::BadBar(f, index));
        };
        let base = if base == 0 {
            let Some(base) = self.window.take(size) else {
                return bad(PciError::WindowFull(f, index, size));
            };
            pci::write_memory_bar(self.access, f, index, base, wide);
            self.assigned += 1;
            base
        } else {
            base
        };
        if base.saturating_add(size) > 1 << 32 {
            return bad(PciError::BarAbove4G(f, index, base));
        }
        if self.ram.overlaps(base, size) {
            return bad(PciError::BarOverlapsRam(f, index, base, size));
        }
        Ok((base, size))
    }
}

// Modern common configuration (virtio 1.x 4.1.4.3).
const COMMON_DEVICE_FEATURE_SELECT: usize = 0;
const COMMON_DEVICE_FEATURE: usize = 4;
const COMMON_DRIVER_FEATURE_SELECT: usize = 8;
const COMMON_DRIVER_FEATURE: usize = 12;
const COMMON_MSIX_CONFIG: usize = 16;
const COMMON_DEVICE_STATUS: usize = 20;
const COMMON_CONFIG_GENERATION: usize = 21;
const COMMON_QUEUE_SELECT: usize = 22;
const COMMON_QUEUE_SIZE: usize = 24;
const COMMON_QUEUE_MSIX_VECTOR: usize = 26;
const COMMON_QUEUE_ENABLE: usize = 28;
const COMMON_QUEUE_NOTIFY_OFF: usize = 30;
const COMMON_QUEUE_DESC: usize = 32;
const COMMON_QUEUE_DRIVER: usize = 40;
const COMMON_QUEUE_DEVICE: usize = 48;

/// The modern (virtio 1.0) PCI interface: addresses of its structures.
pub struct ModernPci {
    common: usize,
    notify_base: usize,
    notify_multiplier: u32,
    isr: usize,
    device: usize,
    /// Notify addresses of queues 0 and 1 (set when they are activated).
    notify_addresses: [Cell<usize>; 2],
}

impl ModernPci {
    fn read8(&self, offset: usize) -> u8 {
        // SAFETY: the common structure lies inside a checked memory BAR below 4 GiB.
        unsafe { read_volatile((self.common + offset) as *const u8) }
    }
    fn write8(&self, offset: usize, value: u8) {
        // SAFETY: as for read8.
        unsafe { write_volatile((self.common + offset) as *mut u8, value) }
    }
    fn read16(&self, offset: usize) -> u16 {
        // SAFETY: as for read8; aligned.
        unsafe { read_volatile((self.common + offset) as *const u16) }
    }
    fn write16(&self, offset: usize, value: u16) {
        // SAFETY: as for read8; aligned.
        unsafe { write_volatile((self.common + offset) as *mut u16, value) }
    }
    fn read32(&self, offset: usize) -> u32 {
        mmio_read32(self.common + offset)
    }
    fn write32(&self, offset: usize, value: u32) {
        mmio_write32(self.common + offset, value)
    }
    fn write64(&self, offset: usize, value: u64) {
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }

    /// Write the device status.
    pub fn set_status(&self, value: u8) {
        self.write8(COMMON_DEVICE_STATUS, value);
    }

    /// Read the device status.
    pub fn status(&self) -> u8 {
        self.read8(COMMON_DEVICE_STATUS)
    }

    /// The 64 feature bits offered.
    pub fn device_features(&self) -> u64 {
        self.write32(COMMON_DEVICE_FEATURE_SELECT, 0);
        let low = self.read32(COMMON_DEVICE_FEATURE);
        self.write32(COMMON_DEVICE_FEATURE_SELECT, 1);
        u64::from(low) | (u64::from(self.read32(COMMON_DEVICE_FEATURE)) << 32)
    }

    /// Write the driver's features.
    pub fn set_driver_features(&self, features: u64) {
        self.write32(COMMON_DRIVER_FEATURE_SELECT, 0);
        self.write32(COMMON_DRIVER_FEATURE, features as u32);
        self.write32(COMMON_DRIVER_FEATURE_SELECT, 1);
        self.write32(COMMON_DRIVER_FEATURE, (features >> 32) as u32);
    }

    /// Queue `index`'s maximum size (0: none).
    pub fn queue_max(&self, index: u16) -> Result<u16, NetError> {
        self.write16(COMMON_QUEUE_SELECT, index);
        if self.read16(COMMON_QUEUE_ENABLE) != 0 {
            return Err(NetError::BadQueue(u32::from(index)));
        }
        Ok(self.read16(COMMON_QUEUE_SIZE))
    }

    /// Size, vector, ring addresses, enable.
    pub fn activate_queue(
        &self,
        index: u16,
        size: u16,
        rings: QueueAddresses,
        vector: Option<u16>,
    ) -> Result<(), NetError> {
        self.write16(COMMON_QUEUE_SELECT, index);
        self.write16(COMMON_QUEUE_SIZE, size);
        if let Some(vector) = vector {
            self.write16(COMMON_QUEUE_MSIX_VECTOR, vector);
            if self.read16(COMMON_QUEUE_MSIX_VECTOR) != vector {
                return Err(NetError::QueueVectorRefused(index));
            }
        }
        self.write64(COMMON_QUEUE_DESC, rings.desc);
        self.write64(COMMON_QUEUE_DRIVER, rings.avail);
        self.write64(COMMON_QUEUE_DEVICE, rings.used);
        let notify_off = usize::from(self.read16(COMMON_QUEUE_NOTIFY_OFF));
        if let Some(slot) = self.notify_addresses.get(usize::from(index)) {
            slot.set(self.notify_base + notify_off * self.notify_multiplier as usize);
        }
        self.write16(COMMON_QUEUE_ENABLE, 1);
        Ok(())
    }

    /// Kick queue `index`.
    pub fn notify(&self, index: u16) {
        if let Some(slot) = self.notify_addresses.get(usize::from(index)) {
            // SAFETY: inside the checked notify BAR region; 16-bit write of the index.
            unsafe { write_volatile(slot.get() as *mut u16, index) }
        }
    }

    /// Read (and so clear) the ISR status.
    pub fn read_isr(&self) -> u8 {
        // SAFETY: inside the checked ISR BAR region.
        unsafe { read_volatile(self.isr as *const u8) }
    }

    /// A byte of device config space.
    pub fn read_config_u8(&self, offset: usize) -> u8 {
        // SAFETY: inside the checked device-config BAR region (the MAC, bytes 0-5).
        unsafe { read_volatile((self.device + offset) as *const u8) }
    }

    /// The config generation counter.
    pub fn config_generation(&self) -> u8 {
        self.read8(COMMON_CONFIG_GENERATION)
    }
}

// Legacy I/O registers (virtio 0.9.5, virtio 1.x 4.1.4.8).
const LEGACY_HOST_FEATURES: u16 = 0;
const LEGACY_GUEST_FEATURES: u16 = 4;
const LEGACY_QUEUE_PFN: u16 = 8;
const LEGACY_QUEUE_NUM: u16 = 12;
const LEGACY_QUEUE_SEL: u16 = 14;
const LEGACY_QUEUE_NOTIFY: u16 = 16;
const LEGACY_STATUS: u16 = 18;
const LEGACY_ISR: u16 = 19;
const LEGACY_MSI_CONFIG_VECTOR: u16 = 20;
const LEGACY_MSI_QUEUE_VECTOR: u16 = 22;

/// The legacy (0.9.5) I/O BAR interface.
pub struct LegacyPci {
    io: u16,
    /// Device config offset: 20, or 24 with MSI-X enabled.
    config: u16,
}

impl LegacyPci {
    /// Write the device status.
    pub fn set_status(&self, value: u8) {
        port::outb(self.io + LEGACY_STATUS, value);
    }

    /// Read the device status.
    pub fn status(&self) -> u8 {
        port::inb(self.io + LEGACY_STATUS)
    }

    /// The 32 feature bits offered.
    pub fn device_features(&self) -> u32 {
        port::inl(self.io + LEGACY_HOST_FEATURES)
    }

    /// Write the driver's features.
    pub fn set_driver_features(&self, features: u32) {
        port::outl(self.io + LEGACY_GUEST_FEATURES, features);
    }

    /// Queue `index`'s size, fixed by the device (0: none).
    pub fn queue_size(&self, index: u16) -> u16 {
        port::outw(self.io + LEGACY_QUEUE_SEL, index);
        port::inw(self.io + LEGACY_QUEUE_NUM)
    }

    /// The vector, then the page frame of the rings (legacy layout: descriptors, then
    /// the available ring, then the used ring at the next 4 KiB boundary).
    pub fn activate_queue(
        &self,
        index: u16,
        rings: QueueAddresses,
        vector: Option<u16>,
    ) -> Result<(), NetError> {
        port::outw(self.io + LEGACY_QUEUE_SEL, index);
        if let Some(vector) = vector {
            port::outw(self.io + LEGACY_MSI_QUEUE_VECTOR, vector);
            if port::inw(self.io + LEGACY_MSI_QUEUE_VECTOR) != vector {
                return Err(NetError::QueueVectorRefused(index));
            }
        }
        if !rings.desc.is_multiple_of(4096) || rings.desc >> 12 > u64::from(u32::MAX) {
            return Err(NetError::BadQueue(u32::from(index)));
        }
        port::outl(self.io + LEGACY_QUEUE_PFN, (rings.desc >> 12) as u32);
        Ok(())
    }

    /// Kick queue `index`.
    pub fn notify(&self, index: u16) {
        port::outw(self.io + LEGACY_QUEUE_NOTIFY, index);
    }

    /// Read (and so clear) the ISR status.
    pub fn read_isr(&self) -> u8 {
        port::inb(self.io + LEGACY_ISR)
    }

    /// A byte of device config space.
    pub fn read_config_u8(&self, offset: usize) -> u8 {
        port::inb(self.io + self.config + offset as u16)
    }
}

fn mmio_read32(address: usize) -> u32 {
    // SAFETY: callers pass addresses inside checked memory BARs below 4 GiB.
    unsafe { read_volatile(address as *const u32) }
}

fn mmio_write32(address: usize, value: u32) {
    // SAFETY: as for mmio_read32.
    unsafe { write_volatile(address as *mut u32, value) }
}
