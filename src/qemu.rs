//! QEMU as a virtio-net for the probe guest: microvm's virtio-mmio device, and
//! `virtio-net-pci` (modern or legacy) on q35, pc or microvm with PCIe. The soak runs QEMU
//! as a system under test (`--sut qemu...`), and the tests and `vnetbed bench network` put
//! QEMU's device next to vnetbed's on the same testbed.
//!
//! One builder, [`QemuLaunch`], makes every command line, so the soak, the benchmarks and
//! the tests boot the same machine.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The program looked for on PATH when no binary is named.
pub const DEFAULT_BINARY: &str = "qemu-system-x86_64";

/// A QEMU machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `-M q35`: SeaBIOS assigns the BARs and boots the probe through its PVH note; ECAM
    /// from the ACPI MCFG.
    Q35,
    /// `-M pc`: as q35, with configuration ports 0xcf8/0xcfc.
    Pc,
    /// `-M microvm`: no firmware. With `virtio-net-pci` it runs with `pcie=on` (ECAM at
    /// QEMU's fixed address, no PCI I/O space, so no legacy interface); with
    /// `virtio-net-device` the NIC is on virtio-mmio.
    Microvm,
}

impl Machine {
    /// The name in a spec and in records.
    pub fn name(self) -> &'static str {
        match self {
            Machine::Q35 => "q35",
            Machine::Pc => "pc",
            Machine::Microvm => "microvm",
        }
    }
}

/// The virtio-net device QEMU offers the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// `virtio-net-pci`.
    VirtioNetPci,
    /// `virtio-net-device`: virtio-mmio (microvm only).
    VirtioNetDevice,
}

impl Device {
    /// The QEMU device name.
    pub fn name(self) -> &'static str {
        match self {
            Device::VirtioNetPci => "virtio-net-pci",
            Device::VirtioNetDevice => "virtio-net-device",
        }
    }
}

/// One QEMU command line for a guest with one virtio-net NIC on a tap.
#[derive(Debug, Clone)]
pub struct QemuLaunch<'a> {
    /// The QEMU binary.
    pub binary: &'a Path,
    /// The machine.
    pub machine: Machine,
    /// The NIC.
    pub device: Device,
    /// `Some(false)`: only the 0.9.5 legacy interface (`disable-modern=on,disable-legacy=off`
    /// on PCI). `Some(true)`: modern only on PCI (`disable-legacy=on`). `None`: QEMU's
    /// default (a transitional PCI device; the probe drives its modern interface).
    pub modern: Option<bool>,
    /// Extra arguments, appended last.
    pub extra: &'a [String],
    /// Guest memory in MiB.
    pub mem_mib: u64,
    /// The guest kernel (the probe boots through its PVH note).
    pub kernel: &'a Path,
    /// An initrd.
    pub initrd: Option<&'a Path>,
    /// The kernel command line after `console=ttyS0`.
    pub append: &'a str,
    /// The tap (in the namespace QEMU runs in).
    pub tap: Option<&'a str>,
    /// The NIC's MAC address (QEMU's default when absent).
    pub mac: Option<&'a str>,
    /// The NIC's `rx_queue_size` (QEMU takes powers of two from 256 to 1024); absent:
    /// [`DEFAULT_RX_QUEUE_SIZE`].
    pub rx_queue_size: Option<u16>,
}

/// The rx ring QEMU gets unless a run asks for another size: 1024 entries (QEMU's maximum;
/// its own default is 256) buffer about 55 ms of 1500-byte frames at 200 Mbit/s while the
/// vCPU waits for one of the shared cores.
pub const DEFAULT_RX_QUEUE_SIZE: u16 = 1024;

/// The rx queue sizes QEMU accepts: powers of two in this range.
pub const RX_QUEUE_SIZES: std::ops::RangeInclusive<u16> = 256..=1024;

impl QemuLaunch<'_> {
    /// QEMU's arguments.
    pub fn args(&self) -> Vec<String> {
        let machine = match (self.machine, self.device) {
            (Machine::Q35, _) => "q35",
            (Machine::Pc, _) => "pc",
            (Machine::Microvm, Device::VirtioNetPci) => {
                "microvm,pcie=on,x-option-roms=off,isa-serial=on,rtc=off"
            }
            (Machine::Microvm, Device::VirtioNetDevice) => {
                "microvm,x-option-roms=off,isa-serial=on,rtc=off,acpi=off"
            }
        };
        let mut args: Vec<String> = [
            "-M",
            machine,
            "-accel",
            "kvm",
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Threads named after their job (`CPU 0/KVM`, `worker`), so that --pin-vcpu can tell
        // the vCPU thread from the main loop (crate::qemu_pin).
        args.push("-name".into());
        args.push("vnetbed-guest,debug-threads=on".into());
        args.push("-m".into());
        args.push(self.mem_mib.to_string());
        if let Some(tap) = self.tap {
            args.push("-netdev".into());
            args.push(format!("tap,id=n0,ifname={tap},script=no,downscript=no"));
            let mut nic = format!(
                "{},netdev=n0,rx_queue_size={}",
                self.device.name(),
                self.rx_queue_size.unwrap_or(DEFAULT_RX_QUEUE_SIZE)
            );
            if let Some(mac) = self.mac {
                nic.push_str(&format!(",mac={mac}"));
            }
            match (self.device, self.modern) {
                // No option ROM (iPXE): the probe needs none, and SeaBIOS boots faster without.
                (Device::VirtioNetPci, m) => {
                    nic.push_str(",romfile=");
                    match m {
                        Some(false) => nic.push_str(",disable-modern=on,disable-legacy=off"),
                        Some(true) => nic.push_str(",disable-modern=off,disable-legacy=on"),
                        None => {}
                    }
                }
                (Device::VirtioNetDevice, _) => {
                    // QEMU 7.2 defaults virtio-mmio to the legacy interface (version 1); the
                    // probe drives the modern one.
                    args.push("-global".into());
                    args.push("virtio-mmio.force-legacy=false".into());
                }
            }
            args.push("-device".into());
            args.push(nic);
        }
        args.push("-kernel".into());
        args.push(self.kernel.display().to_string());
        if let Some(initrd) = self.initrd {
            args.push("-initrd".into());
            args.push(initrd.display().to_string());
        }
        args.push("-append".into());
        args.push(
            format!("console=ttyS0 {}", self.append)
                .trim_end()
                .to_string(),
        );
        args.extend(self.extra.iter().cloned());
        args
    }

    /// The command, run inside network namespace `netns` (where the tap is).
    pub fn in_netns(&self, netns: &str) -> Command {
        let mut command =
            crate::soak::children::in_netns(netns, &self.binary.display().to_string());
        command.args(self.args());
        command
    }

    /// The command, run in the caller's namespace.
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.binary);
        command.args(self.args());
        command
    }
}

/// The QEMU binary on PATH (`qemu-system-x86_64`), or that name for the shell to report.
pub fn default_binary() -> PathBuf {
    crate::net::preflight::find_program(DEFAULT_BINARY).unwrap_or_else(|| DEFAULT_BINARY.into())
}

/// A launch of the probe with 64 MiB and QEMU's defaults for the rest.
fn probe_launch<'a>(
    binary: &'a Path,
    machine: Machine,
    device: Device,
    modern: Option<bool>,
    image: &'a Path,
    append: &'a str,
    tap: Option<&'a str>,
) -> QemuLaunch<'a> {
    QemuLaunch {
        binary,
        machine,
        device,
        modern,
        extra: &[],
        mem_mib: 64,
        kernel: image,
        initrd: None,
        append,
        tap,
        mac: None,
        rx_queue_size: None,
    }
}

/// QEMU microvm with isa-debug-exit (port 0xf4), booting `image` through its PVH note, with
/// 64 MiB and the serial console on stdio. `tap` adds a virtio-net-device on that tap (QEMU
/// then appends `virtio_mmio.device=` to the command line itself). The command runs in the
/// caller's namespace; see [`microvm_in_netns`].
pub fn microvm(image: &Path, append: &str, tap: Option<&str>) -> Command {
    let binary = default_binary();
    probe_launch(
        &binary,
        Machine::Microvm,
        Device::VirtioNetDevice,
        None,
        image,
        append,
        tap,
    )
    .command()
}

/// [`microvm`] run inside network namespace `netns` (where the tap is).
pub fn microvm_in_netns(netns: &str, image: &Path, append: &str, tap: &str) -> Command {
    let binary = default_binary();
    probe_launch(
        &binary,
        Machine::Microvm,
        Device::VirtioNetDevice,
        None,
        image,
        append,
        Some(tap),
    )
    .in_netns(netns)
}

/// A QEMU machine with `virtio-net-pci`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciMachine {
    /// `-M q35`.
    Q35,
    /// `-M pc`.
    Pc,
    /// `-M microvm,pcie=on`.
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
    let binary = default_binary();
    let machine = match machine {
        PciMachine::Q35 => Machine::Q35,
        PciMachine::Pc => Machine::Pc,
        PciMachine::MicrovmPcie => Machine::Microvm,
    };
    let modern = (interface == PciInterface::Legacy).then_some(false);
    probe_launch(
        &binary,
        machine,
        Device::VirtioNetPci,
        modern,
        image,
        append,
        Some(tap),
    )
    .in_netns(netns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch<'a>(machine: Machine, device: Device, modern: Option<bool>) -> QemuLaunch<'a> {
        QemuLaunch {
            binary: Path::new("/q/qemu"),
            machine,
            device,
            modern,
            extra: &[],
            mem_mib: 64,
            kernel: Path::new("/img/probe"),
            initrd: None,
            append: "probe.stall_timeout=1s",
            tap: Some("vnb0"),
            mac: Some("52:54:00:01:02:03"),
            rx_queue_size: None,
        }
    }

    #[test]
    fn each_machine_and_device_gets_its_command_line() {
        let q35 = launch(Machine::Q35, Device::VirtioNetPci, Some(false)).args();
        let joined = q35.join(" ");
        assert!(joined.starts_with("-M q35 -accel kvm"), "{joined}");
        assert!(
            joined.contains(
                "-device virtio-net-pci,netdev=n0,rx_queue_size=1024,mac=52:54:00:01:02:03,romfile=,disable-modern=on,disable-legacy=off"
            ),
            "{joined}"
        );
        assert!(joined.ends_with("-append console=ttyS0 probe.stall_timeout=1s"));
        assert!(
            joined.contains("-name vnetbed-guest,debug-threads=on"),
            "{joined}"
        );
        let mmio = launch(Machine::Microvm, Device::VirtioNetDevice, None)
            .args()
            .join(" ");
        assert!(mmio.contains("acpi=off"), "{mmio}");
        assert!(mmio.contains("virtio-mmio.force-legacy=false"), "{mmio}");
        assert!(
            mmio.contains("-device virtio-net-device,netdev=n0"),
            "{mmio}"
        );
        let pcie = launch(Machine::Microvm, Device::VirtioNetPci, Some(true))
            .args()
            .join(" ");
        assert!(pcie.contains("microvm,pcie=on"), "{pcie}");
        assert!(pcie.contains("disable-legacy=on"), "{pcie}");
        let mut small = launch(Machine::Q35, Device::VirtioNetPci, None);
        small.rx_queue_size = Some(256);
        let small = small.args().join(" ");
        assert!(small.contains("netdev=n0,rx_queue_size=256,"), "{small}");
    }

    #[test]
    fn extra_arguments_come_last_and_initrd_follows_the_kernel() {
        let extra = vec!["-smp".to_string(), "2".to_string()];
        let mut l = launch(Machine::Pc, Device::VirtioNetPci, None);
        l.extra = &extra;
        l.initrd = Some(Path::new("/img/initrd"));
        let args = l.args();
        assert_eq!(&args[args.len() - 2..], ["-smp", "2"]);
        let k = args.iter().position(|a| a == "-kernel").unwrap();
        assert_eq!(args[k + 2..k + 4], ["-initrd", "/img/initrd"]);
    }
}
