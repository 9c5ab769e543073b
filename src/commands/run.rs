//! `vnetbed run`: boot a guest kernel in a KVM virtual machine.

use std::path::PathBuf;

use std::time::Duration;

use clap::Args;
use vmm::devices::virtio::net::vhost_user::VhostUserConfig;
use vmm::devices::virtio::net::{NetConfig, NetOptions, NotifyModel, OnStall, RaceQueues};
use vmm::events::EventSink;
use vmm::exit::{ExitReason, STATUS_ERROR};
use vmm::testguest::TestGuest;
use vmm::vm::{SerialOutput, Vm, VmConfig};

/// The default kernel command line.
pub const DEFAULT_CMDLINE: &str = vnetbed::DEFAULT_GUEST_CMDLINE;

/// Arguments of `vnetbed run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest kernel: an ELF64 (vmlinux-style, entered at e_entry) or a bzImage. `builtin:NAME`
    /// boots a built-in test guest: hello (prints a line, resets: status 0),
    /// hello-debug-exit (prints, debug-exit 0: status 1), triple-fault, reset, hang, speed-test,
    /// sse-in-ring0 (an internal error where guest ring 0 is emulated).
    #[arg(long, value_name = "PATH")]
    pub kernel: String,
    /// Initial ramdisk, placed at the top of low memory.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (devices append their `virtio_mmio.device=` announcements).
    #[arg(long, value_name = "STR", default_value = DEFAULT_CMDLINE)]
    pub cmdline: String,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    pub mem: u64,
    /// Number of vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub vcpus: usize,
    /// Serial console output: `stdout`, `file:PATH` or `none`.
    #[arg(long, value_name = "DEST", default_value = "stdout", value_parser = parse_serial)]
    pub serial: SerialDest,
    /// Write the VMM's event stream (JSON lines) to PATH.
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    /// A virtio-net device on a tap:
    /// `tap=NAME[,mac=MAC][,queue-size=N][,netns=NS][,transport=mmio|pci][,legacy=on|off]`,
    /// where NS is a network namespace under /var/run/netns (a testbed's is
    /// `vnetbed-<name>`), `transport=pci` puts the device behind a virtio-pci function with
    /// MSI-X (default mmio), and `legacy=on` makes that function transitional (the legacy
    /// virtio 0.9.5 registers in an I/O BAR0, the modern ones in BAR4). Repeatable.
    #[arg(long, value_name = "SPEC", value_parser = |s: &str| s.parse::<NetConfig>().map_err(|e| e.to_string()))]
    pub net: Vec<NetConfig>,
    /// A virtio-net device whose datapath is a vhost-user backend listening on SOCKET:
    /// `SOCKET[,mac=MAC][,queue-size=N][,mode=relay|direct]`. vnetbed keeps the device
    /// model; in relay mode (default) it counts and passes on every kick and call and its
    /// watchdog judges lost ones; in direct mode kicks go from KVM straight to the backend,
    /// uncounted. A backend that dies ends the VM with status 14. Repeatable.
    #[arg(long, value_name = "SPEC", value_parser = |s: &str| s.parse::<VhostUserConfig>().map_err(|e| e.to_string()))]
    pub vhost_user: Vec<VhostUserConfig>,
    /// How the device enables notifications and decides to interrupt: fenced (correct; QEMU >= 1.1),
    /// unfenced (alias qemu-kvm-1.0: no fences, emulated store buffer), no-recheck (QEMU before 2010),
    /// missing-enable-fence / missing-notify-fence (the fix with one of its two fences missing),
    /// or virtio-queue (the queues run on rust-vmm's virtio-queue crate, which decides itself).
    #[arg(long, default_value = "fenced", value_parser = super::args::notify_model)]
    pub notify_model: NotifyModel,
    /// How long the buggy models' notification stores stay invisible to the guest (0: none; at most 10s).
    #[arg(long, value_parser = |s: &str| super::args::bounded_duration(s, vmm::duration::MAX_RACE_WINDOW))]
    pub race_window: Option<Duration>,
    /// Which queues' notification stores the race window delays: rx (default: the 2012
    /// incident's symptom, rx dies while tx works; measured, most first stalls are rx lost
    /// interrupts, some rx lost kicks), tx or all. qemu-kvm 1.0 ran the same code on both
    /// queues: stretching some only is a choice made for reproduction, not history.
    #[arg(long, default_value = "rx", value_parser = |s: &str| s.parse::<RaceQueues>())]
    pub race_queues: RaceQueues,
    /// How long a queue may be stalled before the watchdog reports it (at most 1h).
    #[arg(long, value_parser = |s: &str| super::args::bounded_duration(s, vmm::duration::MAX_STALL_TIMEOUT))]
    pub stall_timeout: Option<Duration>,
    /// What to do about a stall: report (leave it), recover (deliver the lost notification) or exit (status 8).
    #[arg(long, default_value = "report", value_parser = |s: &str| s.parse::<OnStall>().map_err(|e| e.to_string()))]
    pub on_stall: OnStall,
    /// Confine every VMM thread (vCPUs, device worker, stall-exit, main) with its own seccomp
    /// filter before the guest runs: `on` (default) or `off` (for debugging). A forbidden
    /// system call ends the VMM with a message naming it and exit status 12.
    #[arg(long, value_name = "on|off", default_value = "on", action = clap::ArgAction::Set, value_parser = parse_on_off)]
    pub seccomp: bool,
}

/// An `on|off` switch (`--seccomp`, `--pin-vcpu`).
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}` is neither on nor off")),
    }
}

/// A parsed `--serial` value.
#[derive(Debug, Clone)]
pub enum SerialDest {
    /// stdout.
    Stdout,
    /// A file.
    File(PathBuf),
    /// Nowhere.
    None,
}

fn parse_serial(s: &str) -> Result<SerialDest, String> {
    match s {
        "stdout" => Ok(SerialDest::Stdout),
        "none" => Ok(SerialDest::None),
        _ => match s.strip_prefix("file:") {
            Some(p) if !p.is_empty() => Ok(SerialDest::File(PathBuf::from(p))),
            _ => Err(format!(
                "`{s}` is not a serial destination; use stdout, none or file:PATH"
            )),
        },
    }
}

/// Resolve `builtin:NAME`.
pub fn builtin_guest(name: &str) -> Option<TestGuest> {
    Some(match name {
        "hello" => TestGuest::HelloReset,
        "hello-debug-exit" => TestGuest::Hello(0),
        "triple-fault" => TestGuest::TripleFault,
        "reset" => TestGuest::Reset,
        "hang" => TestGuest::Hang,
        "speed-test" => TestGuest::SpeedTest,
        "sse-in-ring0" => TestGuest::SseInRing0,
        _ => return None,
    })
}

/// Errors of `vnetbed run` before the guest runs.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Unknown `builtin:` name.
    #[error("unknown built-in guest `{0}`; use builtin:hello, builtin:hello-debug-exit, builtin:triple-fault, builtin:reset, builtin:hang, builtin:speed-test or builtin:sse-in-ring0")]
    UnknownBuiltin(String),
    /// The built-in image could not be written.
    #[error("cannot write the built-in guest image to {path}: {source}")]
    WriteBuiltin {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The event file could not be created.
    #[error("cannot create the event stream file {path}: {source}")]
    Events {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A vhost-user NIC could not be attached.
    #[error("--vhost-user {socket}: {source}")]
    VhostUser {
        /// The backend's socket.
        socket: String,
        /// Why.
        #[source]
        source: vmm::vhost_netdev::VhostNetDevError,
    },
    /// The VM could not be built or started.
    #[error(transparent)]
    Vm(#[from] vmm::vm::VmError),
    /// The seccomp filters could not be built.
    #[error(transparent)]
    Seccomp(#[from] vmm::seccomp::SeccompError),
    /// A NIC could not be attached.
    #[error("--net tap={tap}: {source}")]
    Net {
        /// The tap.
        tap: String,
        /// Why.
        #[source]
        source: vmm::netdev::NetDevError,
    },
}

/// A kernel path, materialising `builtin:` guests into a temporary file removed on drop.
pub struct KernelPath {
    path: PathBuf,
    temporary: bool,
}

impl KernelPath {
    /// Resolve the `--kernel` argument.
    pub fn resolve(arg: &str) -> Result<Self, RunError> {
        let Some(name) = arg.strip_prefix("builtin:") else {
            return Ok(Self {
                path: PathBuf::from(arg),
                temporary: false,
            });
        };
        let guest =
            builtin_guest(name).ok_or_else(|| RunError::UnknownBuiltin(name.to_string()))?;
        let path =
            std::env::temp_dir().join(format!("vnetbed-builtin-{name}-{}.elf", std::process::id()));
        vmm::testguest::write_elf(guest, &path).map_err(|source| RunError::WriteBuiltin {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            temporary: true,
        })
    }

    /// The file to load.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for KernelPath {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn run(args: RunArgs) -> Result<i32, RunError> {
    if args.seccomp {
        // Threads confine themselves as they start (the stall-exit thread in attach_net).
        vmm::seccomp::enable()?;
    }
    let kernel = KernelPath::resolve(&args.kernel)?;
    let events = match &args.events {
        Some(p) => EventSink::to_file(p).map_err(|source| RunError::Events {
            path: p.clone(),
            source,
        })?,
        None => EventSink::none(),
    };
    let serial = match args.serial {
        SerialDest::Stdout => SerialOutput::Stdout,
        SerialDest::File(p) => SerialOutput::File(p),
        SerialDest::None => SerialOutput::None,
    };
    let config = VmConfig {
        kernel: kernel.path().to_path_buf(),
        initrd: args.initrd,
        cmdline: args.cmdline,
        mem_mib: args.mem,
        vcpus: args.vcpus,
        serial,
        events,
    };
    let mut vm = Vm::new(config)?;
    // Loaded: a built-in image's temporary file goes now, while files may still be removed.
    drop(kernel);
    let mut options = NetOptions {
        notify_model: args.notify_model,
        on_stall: args.on_stall,
        race_queues: args.race_queues,
        ..NetOptions::default()
    };
    // Each buggy model has its own default window (no-recheck's is a delay in program order).
    options.race_window = args.notify_model.default_race_window();
    if let Some(w) = args.race_window {
        options.race_window = w;
    }
    if let Some(t) = args.stall_timeout {
        options.stall_timeout = t;
    }
    for cfg in &args.net {
        vmm::netdev::attach_net(&mut vm, cfg, options).map_err(|source| RunError::Net {
            tap: cfg.tap.clone(),
            source,
        })?;
    }
    for cfg in &args.vhost_user {
        vmm::vhost_netdev::attach_vhost_user_net(&mut vm, cfg, options.stall_timeout).map_err(
            |source| RunError::VhostUser {
                socket: cfg.socket.display().to_string(),
                source,
            },
        )?;
    }
    let exit = vm.run()?;
    match &exit.reason {
        ExitReason::Reset => tracing::info!("{}", exit.reason),
        ExitReason::DebugExit(_) => tracing::info!("{}", exit.reason),
        ExitReason::Signal(sig) => {
            eprintln!("vnetbed run: stopped by signal {sig}; the VM was shut down cleanly")
        }
        other => eprintln!("vnetbed run: {other}"),
    }
    Ok(exit.reason.status())
}

/// Print an error and its chain of causes.
pub fn report_error(prefix: &str, e: &dyn std::error::Error) {
    let mut msg = format!("{prefix}: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg += &format!(": {text}");
        }
        src = s.source();
    }
    eprintln!("{msg}");
}

/// Boot the guest; returns the exit status.
pub fn main(args: RunArgs) -> i32 {
    match run(args) {
        Ok(status) => status,
        Err(e) => {
            report_error("vnetbed run", &e);
            STATUS_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seccomp_is_on_or_off() {
        assert_eq!(parse_on_off("on"), Ok(true));
        assert_eq!(parse_on_off("off"), Ok(false));
        assert!(parse_on_off("true")
            .unwrap_err()
            .contains("neither on nor off"));
    }

    #[test]
    fn serial_destinations_parse() {
        assert!(matches!(parse_serial("stdout"), Ok(SerialDest::Stdout)));
        assert!(matches!(parse_serial("none"), Ok(SerialDest::None)));
        assert!(
            matches!(parse_serial("file:/tmp/x"), Ok(SerialDest::File(p)) if p == std::path::Path::new("/tmp/x"))
        );
        assert!(parse_serial("file:").unwrap_err().contains("file:PATH"));
        assert!(parse_serial("tty").is_err());
    }
}
