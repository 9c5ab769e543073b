//! Attaching virtio-net devices to a VM over PCI: the VM's bus 0 (host bridge, ECAM,
//! ports 0xCF8/0xCFC, BAR windows, KVM GSI routes) and, per NIC, a modern virtio-pci
//! function with an MSI-X vector per queue and for configuration changes (each an irqfd on
//! its own KVM MSI route), INTx as the fallback, and notify ioeventfds. With
//! `legacy=on` the function is transitional: the legacy registers in an I/O BAR0 (notify
//! through a PIO ioeventfd) and the modern regions in BAR4.

use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

use crate::acpi::PciHost;
use crate::devices::bus::SharedDevice;
use crate::devices::pci::host::{BarWindow, ConfigPorts, Ecam, PciRoot, SharedRoot, Window};
use crate::devices::pci::ioevents::KvmIoEvents;
use crate::devices::pci::msix::MsixVectors;
use crate::devices::pci::routing::KvmRoutes;
use crate::devices::virtio::net::{NetConfig, NetOptions};
use crate::devices::virtio::pci::{vector_fds, VirtioPci, BAR_SIZE};
use crate::devices::virtio::pci_legacy::LEGACY_BAR_SIZE;
use crate::devices::virtio::signals::Signals;
use crate::devices::virtio::transport::VirtioState;
use crate::layout::{
    self, PCI_CONFIG_PORTS, PCI_ECAM_SIZE, PCI_ECAM_START, PCI_IO_END, PCI_IO_START, PCI_MMIO_END,
    PCI_MMIO_START,
};
use crate::netdev::{open_net, NetDevError};
use crate::vm::{Vm, VmError};

/// The VM's PCI bus 0 and its interrupt routes.
pub struct PciBus {
    root: SharedRoot,
    routes: Arc<KvmRoutes>,
    intx: Vec<(usize, u32)>,
}

fn shared<T: crate::devices::bus::BusDevice + 'static>(d: T) -> SharedDevice {
    Arc::new(Mutex::new(d))
}

impl PciBus {
    /// Bus 0 for `vm` (with `mem_bytes` of RAM): the root on the MMIO and port buses and
    /// KVM's routing table taken over.
    pub(crate) fn create(vm: &mut Vm, mem_bytes: u64) -> Result<Self, VmError> {
        let root = Arc::new(Mutex::new(PciRoot::new(
            Window {
                start: PCI_MMIO_START,
                end: PCI_MMIO_END,
            },
            Window {
                start: PCI_IO_START,
                end: PCI_IO_END,
            },
            layout::ram_regions(mem_bytes),
            vm.events().clone(),
        )));
        vm.add_mmio_device(PCI_ECAM_START, PCI_ECAM_SIZE, shared(Ecam(root.clone())))?;
        vm.add_pio_device(PCI_CONFIG_PORTS, 8, shared(ConfigPorts::new(root.clone())))?;
        vm.add_mmio_device(
            PCI_MMIO_START,
            PCI_MMIO_END - PCI_MMIO_START,
            shared(BarWindow::new(root.clone(), false, PCI_MMIO_START)),
        )?;
        vm.add_pio_device(
            PCI_IO_START as u16,
            (PCI_IO_END - PCI_IO_START) as u16,
            shared(BarWindow::new(root.clone(), true, PCI_IO_START)),
        )?;
        let routes = KvmRoutes::new(vm.dup_vm_fd()?).map_err(|e| VmError::Host {
            what: "KVM GSI routing",
            source: std::io::Error::other(e),
        })?;
        Ok(Self {
            root,
            routes: Arc::new(routes),
            intx: Vec::new(),
        })
    }

    /// The bus as ACPI describes it (MCFG, PCI0).
    pub fn acpi(&self) -> PciHost {
        PciHost {
            ecam: PCI_ECAM_START,
            ecam_size: PCI_ECAM_SIZE,
            mmio: (PCI_MMIO_START, PCI_MMIO_END),
            io: (PCI_IO_START, PCI_IO_END),
            intx: self.intx.clone(),
        }
    }

    fn root(&self) -> std::sync::MutexGuard<'_, PciRoot> {
        self.root.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A NIC on PCI.
#[derive(Debug, Clone, Copy)]
pub struct AttachedPciNet {
    /// Its device number on bus 0 (function 0).
    pub device: usize,
    /// INTx GSI.
    pub intx_gsi: u32,
    /// GSI of MSI-X vector 0 (configuration); queue i's vector is at + 1 + i.
    pub first_msi_gsi: u32,
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> NetDevError {
    move |source| NetDevError::Kvm { what, source }
}

/// Open the tap of `cfg`, create the device and put it on the VM's PCI bus 0.
pub fn attach_pci_net(
    vm: &mut Vm,
    cfg: &NetConfig,
    options: NetOptions,
) -> Result<AttachedPciNet, NetDevError> {
    let net = open_net(vm, cfg, options)?;
    let events = vm.events().clone();
    let queues = 2;
    let mem = vm.memory().clone();
    let ioevents = KvmIoEvents(vm.dup_vm_fd()?);
    let intx = EventFd::new(libc::EFD_NONBLOCK)?;
    let bus = vm.pci_bus()?;
    let device = bus.root().free_device()?;
    let intx_gsi = layout::pci_intx_gsi(device);
    let fds = vector_fds(queues)?;
    let first_msi_gsi = bus.routes.allocate(fds.len() as u32)?;
    let bar_mem = bus.root().allocate(false, BAR_SIZE)?;
    let bar_io = if cfg.legacy {
        Some(bus.root().allocate(true, LEGACY_BAR_SIZE)?)
    } else {
        None
    };
    let routes = bus.routes.clone();
    bus.intx.push((device, intx_gsi));
    let vm_fd = vm.vm_fd();
    // INTx is level-triggered: KVM holds the line until the guest's EOI and then signals
    // `intx_resample` (see Signals::with_msix).
    let intx_resample = EventFd::new(libc::EFD_NONBLOCK)?;
    vm_fd
        .register_irqfd_with_resample(&intx, &intx_resample, intx_gsi)
        .map_err(kvm("INTx irqfd"))?;
    for (i, fd) in fds.iter().enumerate() {
        vm_fd
            .register_irqfd(fd, first_msi_gsi + i as u32)
            .map_err(kvm("MSI-X irqfd"))?;
    }
    let msix = Arc::new(MsixVectors::new(
        fds,
        first_msi_gsi,
        routes,
        events.clone(),
        "virtio-net",
    ));
    let signals = Signals::with_msix(
        intx,
        Some(intx_resample),
        events,
        "virtio-net",
        msix.clone(),
        queues,
    );
    let state = VirtioState::new(Box::new(net), mem, signals)?;
    let ioevents: Option<Box<dyn crate::devices::pci::ioevents::IoEvents>> =
        Some(Box::new(ioevents));
    let function = match bar_io {
        None => VirtioPci::new(state, bar_mem, intx_gsi as u8, msix, ioevents),
        Some(io) => VirtioPci::transitional(state, bar_mem, io, intx_gsi as u8, msix, ioevents),
    };
    vm.pci_bus()?
        .root()
        .insert(device, Arc::new(Mutex::new(function)));
    Ok(AttachedPciNet {
        device,
        intx_gsi,
        first_msi_gsi,
    })
}
