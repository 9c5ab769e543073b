//! vnetbed as a library: the parts the subcommands share and the tests use directly.
//!
//! - [`net`]: the testbed network (namespace, bridge, taps, supervised dnsmasq);
//! - [`record`]: the crash-safe run record, `timeline.jsonl`;
//! - [`report`]: the verdict and the reports built from it;
//! - [`soak`]: the soak engine behind soak, reproduce and verify;
//! - [`verify`]: verify's A/B verdict and its outputs, from the run directories;
//! - [`qemu`]: QEMU's command lines for the probe guest (microvm, q35, pc);
//! - [`sut`]: the system under test (`--sut`, `--control`): vnetbed's VMM or a QEMU build;
//! - [`build_info`]: the revision this binary was built from.

pub mod build_info;
pub mod dpdk;
pub mod net;
pub mod qemu;
pub mod record;
pub mod report;
pub mod soak;
pub mod sut;
pub mod verify;

/// The guest kernel command line `vnetbed run` uses when none is given (its devices append
/// their `virtio_mmio.device=` announcements).
pub const DEFAULT_GUEST_CMDLINE: &str = "console=ttyS0 reboot=k panic=1 pci=off";
