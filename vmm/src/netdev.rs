//! Attaching virtio-net devices to a VM: tap, virtio-mmio slot, irqfd, one ioeventfd per
//! queue, and the `--on-stall exit` link to the VM's exit. PCI NICs
//! (`--net ...,transport=pci`) are attached by [`crate::pci_netdev`].

use std::sync::{Arc, Mutex};

use kvm_ioctls::IoEventAddress;
use vmm_sys_util::eventfd::EventFd;

use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::virtio::net::tap::{open_tap, TapError};
use crate::devices::virtio::net::{Net, NetConfig, NetOptions, NetTransport, StallExit};
use crate::devices::virtio::signals::Signals;
use crate::devices::virtio::VirtioDevice;
use crate::exit::ExitReason;
use crate::exit_notifier::ExitNotifier;
use crate::pci_netdev::{attach_pci_net, AttachedPciNet};
use crate::vm::{VirtioSlot, Vm, VmError};

/// Offset of the QueueNotify register in a virtio-mmio window (§4.2.2).
const QUEUE_NOTIFY_OFFSET: u64 = 0x50;

/// Errors attaching a NIC.
#[derive(Debug, thiserror::Error)]
pub enum NetDevError {
    /// The tap.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// Slot allocation or bus placement.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// eventfds.
    #[error("virtio-net setup: {0}")]
    Io(#[from] std::io::Error),
    /// PCI bus placement.
    #[error(transparent)]
    Pci(#[from] crate::devices::pci::host::PciError),
    /// MSI routes.
    #[error(transparent)]
    Route(#[from] crate::devices::pci::routing::RouteError),
    /// KVM irqfd / ioeventfd.
    #[error("KVM {what} for the virtio-net device failed: {source}")]
    Kvm {
        /// Which registration.
        what: &'static str,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// An attached NIC.
pub enum AttachedNet {
    /// On virtio-mmio.
    Mmio {
        /// Where it sits.
        slot: VirtioSlot,
        /// The transport (shared with the MMIO bus).
        transport: Arc<Mutex<MmioTransport>>,
    },
    /// On PCI.
    Pci(AttachedPciNet),
}

/// Open the tap of `cfg`, create the device and put it on the VM, on the transport `cfg`
/// asks for.
pub fn attach_net(
    vm: &mut Vm,
    cfg: &NetConfig,
    options: NetOptions,
) -> Result<AttachedNet, NetDevError> {
    if cfg.transport == NetTransport::Pci {
        return attach_pci_net(vm, cfg, options).map(AttachedNet::Pci);
    }
    let net = open_net(vm, cfg, options)?;
    let slot = vm.allocate_virtio_slot()?;
    place_on_mmio(vm, slot, Box::new(net))
}

/// Put a virtio-net device model on the VM at `slot`: its irqfd, its transport on the MMIO
/// bus, and one ioeventfd per queue.
pub(crate) fn place_on_mmio(
    vm: &mut Vm,
    slot: VirtioSlot,
    device: Box<dyn VirtioDevice>,
) -> Result<AttachedNet, NetDevError> {
    let irq = EventFd::new(libc::EFD_NONBLOCK)?;
    vm.vm_fd()
        .register_irqfd(&irq, slot.irq)
        .map_err(|source| NetDevError::Kvm {
            what: "irqfd",
            source,
        })?;
    let signals = Signals::new(irq, vm.events().clone(), "virtio-net");
    let transport = MmioTransport::new(device, vm.memory().clone(), signals)?;
    // QueueNotify writes of queue index i go straight to queue i's kick eventfd, without an
    // exit to the VMM (the transport also signals it itself when written through the bus).
    for i in 0..2usize {
        if let Some(fd) = transport.kick_fd(i) {
            vm.vm_fd()
                .register_ioevent(
                    fd,
                    &IoEventAddress::Mmio(slot.base + QUEUE_NOTIFY_OFFSET),
                    i as u32,
                )
                .map_err(|source| NetDevError::Kvm {
                    what: "ioeventfd",
                    source,
                })?;
        }
    }
    let transport = Arc::new(Mutex::new(transport));
    vm.add_mmio_device(slot.base, slot.size, transport.clone())?;
    Ok(AttachedNet::Mmio { slot, transport })
}

/// The device of `cfg` on its tap, its `--on-stall exit` linked to the VM's exit.
pub(crate) fn open_net(vm: &Vm, cfg: &NetConfig, options: NetOptions) -> Result<Net, NetDevError> {
    let backend = open_tap(&cfg.tap, cfg.netns.as_deref())?;
    let net = Net::new(
        cfg.mac,
        cfg.queue_size,
        Box::new(backend),
        options,
        vm.events().clone(),
    )?;
    watch_stall_exit(net.stall_exit(), vm.exit_notifier())?;
    Ok(net)
}

/// End the VM with [`ExitReason::StallDetected`] when the device's watchdog fires with
/// `--on-stall exit`.
fn watch_stall_exit(stall: StallExit, exit: ExitNotifier) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("stall-exit".into())
        .spawn(move || {
            use std::sync::atomic::Ordering;
            crate::seccomp::apply_or_exit(crate::seccomp::ThreadKind::StallExit);
            loop {
                if stall.fired() {
                    exit.request(ExitReason::StallDetected(
                        "the watchdog fired with --on-stall exit".into(),
                    ));
                    return;
                }
                if exit.stop_flag().load(Ordering::Acquire) {
                    return;
                }
                // Wait for the stall eventfd, waking every 200 ms to notice the VM ending.
                let mut pfd = libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(stall.event()),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut pfd, 1, 200) };
            }
        })?;
    Ok(())
}
