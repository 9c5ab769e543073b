//! vnetbed as a library: the parts the subcommands share and the tests use directly.
//!
//! - [`net`]: the testbed network (namespace, bridge, taps, supervised dnsmasq);
//! - [`record`]: the crash-safe run record, `timeline.jsonl`;
//! - [`report`]: the verdict and the reports built from it;
//! - [`soak`]: the soak engine behind soak, reproduce and verify;
//! - [`verify`]: verify's A/B verdict and its outputs, from the run directories;
//! - [`qemu`]: QEMU's command lines for the probe guest (microvm, q35, pc);
//! - [`qemu_pin`]: QEMU's vCPU thread pinned apart from its other threads;
//! - [`sut`]: the system under test (`--sut`, `--control`): vnetbed's VMM or a QEMU build;
//! - [`build_info`]: the revision this binary was built from.

pub mod build_info;
pub mod dpdk;
pub mod net;
pub mod qemu;
pub mod qemu_pin;
pub mod record;
pub mod report;
pub mod soak;
pub mod sut;
pub mod verify;

/// The guest kernel command line `vnetbed run` uses when none is given (its devices append
/// their `virtio_mmio.device=` announcements).
pub const DEFAULT_GUEST_CMDLINE: &str = "console=ttyS0 reboot=k panic=1 pci=off";

/// A command that runs this very vnetbed binary again, for the child processes it starts (a
/// soak's VMM, the testbed supervisor, a benchmark's guests). It executes
/// `/proc/<pid>/exe`, which names the file this process started from even after that file
/// was replaced on disk (a `cargo build` during a 48-hour soak) or deleted, where
/// [`std::env::current_exe`] would then name a missing file or different code. The parent
/// resolves it (its own pid, not `/proc/self`: the child may start as `ip netns exec`), and
/// the child's `argv[0]` stays the binary's path, so `ps` and `pgrep` show `vnetbed run ...`
/// as before. Without /proc it is `current_exe()`.
pub fn self_command() -> std::io::Result<std::process::Command> {
    use std::os::unix::process::CommandExt;
    let mut path = std::env::current_exe()?;
    // After the file was replaced, the kernel's link reads "<path> (deleted)".
    if let Some(live) = path.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
        path = live.into();
    }
    let proc_exe = std::path::PathBuf::from(format!("/proc/{}/exe", std::process::id()));
    if !proc_exe.exists() {
        return Ok(std::process::Command::new(path));
    }
    let mut command = std::process::Command::new(proc_exe);
    command.arg0(path);
    Ok(command)
}
