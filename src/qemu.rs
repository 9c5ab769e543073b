//! QEMU microvm as a second, independent virtio-mmio device for the probe guest: the tests
//! and `vnetbed bench network` put vnetbed's device next to QEMU's on the same testbed.

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
