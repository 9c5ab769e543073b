//! QEMU as a second, independent virtio-net for the probe guest: microvm's virtio-mmio
//! device, and `virtio-net-pci` (modern or legacy) on q35, pc or microvm with PCIe. The
//! tests and `vnetbed bench network` put vnetbed's device next to QEMU's on the same
//! testbed.

use std::path::Path;
use std::process::Command;

/// QEMU microvm with isa-debug-exit (port 0xf4), booting `image` through its PVH note, with
/// 64 MiB and the serial console on stdio. `tap` adds a virtio-net-device on that tap (QEMU
/// then appends `virtio_mmio.device=` to the command line itself). The command runs in the
/// caller's namespace; see [`microvm_in_netns`].
pub fn microvm(image: &Path, append: &str, tap: Option<&str>) -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    command.args(microvm_args(image, append, tap));
    command
}

/// [`microvm`] run inside network namespace `netns` (where the tap is).
pub fn microvm_in_netns(netns: &str, image: &Path, append: &str, tap: &str) -> Command {
    let mut command = crate::soak::children::in_netns(netns, "qemu-system-x86_64");
    command.args(microvm_args(image, append, Some(tap)));
    command
}

fn microvm_args(image: &Path, append: &str, tap: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "-M",
        "microvm,x-option-roms=off,isa-serial=on,rtc=off,acpi=off",
        "-accel",
        "kvm",
        "-m",
        "64",
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        // QEMU 7.2 defaults virtio-mmio to the legacy interface (version 1); the probe
        // drives the modern one.
        "-global",
        "virtio-mmio.force-legacy=false",
        "-kernel",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(image.display().to_string());
    if let Some(tap) = tap {
        args.push("-netdev".into());
        args.push(format!("tap,id=n0,ifname={tap},script=no,downscript=no"));
        // A 1024-entry rx ring (QEMU's maximum; default 256) buffers about 55 ms of
        // 1500-byte frames at 200 Mbit/s while the vCPU waits for one of the shared cores.
        args.push("-device".into());
        args.push("virtio-net-device,netdev=n0,rx_queue_size=1024".into());
    }
    args.push("-append".into());
    args.push(format!("console=ttyS0 {append}"));
    args
}

/// A QEMU machine with `virtio-net-pci`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciMachine {
    /// `-M q35`: SeaBIOS assigns the BARs and boots the probe through its PVH note; ECAM
    /// from the ACPI MCFG.
    Q35,
    /// `-M pc`: as q35, with configuration ports 0xcf8/0xcfc.
    Pc,
    /// `-M microvm,pcie=on`: no BARs assigned by firmware, ECAM at QEMU's fixed address.
    /// No PCI I/O space, so no legacy interface.
    MicrovmPcie,
}

/// The `virtio-net-pci` interface offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciInterface {
    /// QEMU's default: a transitional device, driven through its virtio 1.0 capabilities.
    Modern,
    /// `disable-modern=on,disable-legacy=off`: only the 0.9.5 I/O-BAR interface.
    Legacy,
}

/// [`PciMachine`] with `virtio-net-pci` on `tap`, run inside network namespace `netns`,
/// with isa-debug-exit and the serial console on stdio, booting `image` (PVH).
pub fn pci_in_netns(
    netns: &str,
    machine: PciMachine,
    interface: PciInterface,
    image: &Path,
    append: &str,
    tap: &str,
) -> Command {
    let mut command = crate::soak::children::in_netns(netns, "qemu-system-x86_64");
    command.args(pci_args(machine, interface, image, append, tap));
    command
}

fn pci_args(
    machine: PciMachine,
    interface: PciInterface,
    image: &Path,
    append: &str,
    tap: &str,
) -> Vec<String> {
    let machine = match machine {
        PciMachine::Q35 => "q35",
        PciMachine::Pc => "pc",
        PciMachine::MicrovmPcie => "microvm,pcie=on,x-option-roms=off,isa-serial=on,rtc=off",
    };
    // No option ROM (iPXE): the probe needs none, and SeaBIOS boots faster without. A
    // 1024-entry rx ring as for microvm's virtio-mmio device (see microvm_args).
    let mut device = String::from("virtio-net-pci,netdev=n0,romfile=,rx_queue_size=1024");
    if interface == PciInterface::Legacy {
        device.push_str(",disable-modern=on,disable-legacy=off");
    }
    let mut args: Vec<String> = [
        "-M",
        machine,
        "-accel",
        "kvm",
        "-m",
        "64",
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-netdev",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("tap,id=n0,ifname={tap},script=no,downscript=no"));
    args.push("-device".into());
    args.push(device);
    args.push("-kernel".into());
    args.push(image.display().to_string());
    args.push("-append".into());
    args.push(format!("console=ttyS0 {append}"));
    args
}
