//! The PCI path a guest programs (vmm::devices::pci and vmm::devices::virtio::pci): ECAM
//! configuration reads and writes of any size and offset (the host bridge, the virtio-net
//! function, empty slots; BARs moved anywhere, over RAM, over each other), loads and stores
//! anywhere in the BAR window (common configuration, ISR, device configuration, notify,
//! MSI-X table and PBA), with the real virtio-net device behind it (activation starts its
//! thread over the fuzzed rings) and guest-memory writes between them. The function is
//! modern-only or transitional (then the legacy registers in the I/O BAR are fuzzed too,
//! mixed with the modern ones). Nothing may panic.
#![no_main]

use std::sync::{Arc, Mutex};

use vm_memory::GuestMemoryMmap;
use vmm::devices::bus::BusDevice;
use vmm::devices::pci::host::{BarWindow, Ecam, PciRoot, Window};
use vmm::devices::pci::msix::MsixVectors;
use vmm::devices::pci::routing::{MsiMessage, MsiRoutes, RouteError};
use vmm::devices::virtio::net::{MacAddr, Net, NetOptions, NotifyModel};
use vmm::devices::virtio::pci::{vector_fds, VirtioPci, BAR_SIZE};
use vmm::devices::virtio::pci_legacy::LEGACY_BAR_SIZE;
use vmm::devices::virtio::transport::VirtioState;
use vmm::devices::virtio::Signals;
use vmm::events::EventSink;
use vmm_sys_util::eventfd::EventFd;
use vnetbed_fuzz::queue_ops::poke;
use vnetbed_fuzz::{closed_backend, reused_guest_memory, Input};

const MMIO: Window = Window {
    start: 0xe010_0000,
    end: 0xf000_0000,
};
const IO: Window = Window {
    start: 0x6000,
    end: 0x7000,
};

/// KVM takes any route; what the table asks of it is all there is to check here.
struct AnyRoutes;
impl MsiRoutes for AnyRoutes {
    fn set_route(&self, _gsi: u32, _m: Option<MsiMessage>) -> Result<(), RouteError> {
        Ok(())
    }
}

fn root(
    model: NotifyModel,
    legacy: bool,
    mem: &GuestMemoryMmap<()>,
) -> Option<Arc<Mutex<PciRoot>>> {
    let events = EventSink::none();
    let options = NetOptions {
        notify_model: model,
        ..NetOptions::default()
    };
    let net = Net::new(
        MacAddr::DEFAULT,
        16,
        Box::new(closed_backend()?),
        options,
        events.clone(),
    )
    .ok()?;
    let msix = Arc::new(MsixVectors::new(
        vector_fds(2).ok()?,
        24,
        Arc::new(AnyRoutes),
        events.clone(),
        "virtio-net",
    ));
    let irq = EventFd::new(libc::EFD_NONBLOCK).ok()?;
    let signals = Signals::with_msix(irq, None, events.clone(), "virtio-net", msix.clone(), 2);
    let state = VirtioState::new(Box::new(net), mem.clone(), signals).ok()?;
    let mut root = PciRoot::new(MMIO, IO, vec![(0, 0x1_0000)], events);
    let bar_mem = root.allocate(false, BAR_SIZE).ok()?;
    let device = root.free_device().ok()?;
    let function = if legacy {
        let io = root.allocate(true, LEGACY_BAR_SIZE).ok()?;
        VirtioPci::transitional(state, bar_mem, io, 23, msix, None)
    } else {
        VirtioPci::new(state, bar_mem, 23, msix, None)
    };
    root.insert(device, Arc::new(Mutex::new(function)));
    Some(Arc::new(Mutex::new(root)))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let first = input.u8();
    let legacy = first & 0x80 != 0;
    let model = match (first & 0x7f) % 3 {
        0 => NotifyModel::Fenced,
        1 => NotifyModel::Unfenced,
        _ => NotifyModel::VirtioQueue,
    };
    let n = usize::from(input.u8());
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        ops.push((input.u8(), input.u16(), input.u64()));
    }
    let mem = reused_guest_memory(input.rest());
    let Some(root) = root(model, legacy, &mem) else {
        return;
    };
    let mut ecam = Ecam(root.clone());
    let mut window = BarWindow::new(root.clone(), false, MMIO.start);
    let mut ports = BarWindow::new(root, true, IO.start);
    for (kind, at, value) in ops {
        let len = 1usize << ((kind >> 1) & 3);
        // ECAM: devices 0-3 (bridge, the NIC, empty slots), any register and a little beyond.
        let config = ((u64::from(at >> 12) & 3) << 15)
            | ((u64::from(at) & 0xfff) + u64::from(kind >> 7) * 0xffe);
        // BAR window: the first 64 KiB (where BAR0 is, and where the guest may move it).
        let bar = u64::from(at);
        let mut buf = [0u8; 8];
        match kind & 0x71 {
            0x00 => ecam.read(config, &mut buf[..len]),
            0x01 => ecam.write(config, &value.to_le_bytes()[..len]),
            0x10 | 0x20 => window.read(bar, &mut buf[..len]),
            0x11 | 0x21 | 0x31 => window.write(bar, &value.to_le_bytes()[..len]),
            // The I/O window: the legacy block (and beyond it).
            0x40 => ports.read(bar & 0xff, &mut buf[..len]),
            0x41 => ports.write(bar & 0xff, &value.to_le_bytes()[..len]),
            _ => poke(&mem, value & 0xfff, (value >> 16) as u16),
        }
    }
    // Dropping the root drops the function, which resets an active device and joins its
    // thread.
});
