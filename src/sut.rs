//! The system under test: the VMM whose virtio-net a soak, `reproduce` or `verify` runs
//! (`--sut SPEC`, and verify's `--control SPEC`).
//!
//! - `vnetbed` or `vnetbed:MODEL`: vnetbed's own VMM with notify model MODEL (`fenced` by
//!   default; `virtio-queue` runs the queues on rust-vmm's `virtio-queue` crate; the buggy
//!   models `unfenced`, `no-recheck`, `missing-enable-fence`, `missing-notify-fence`), and
//!   optionally `,transport=pci` (the device behind a virtio-pci function with an MSI-X
//!   vector per queue, as the 2012 bug's `virtio-net-pci`) or `,transport=mmio` (the
//!   default); with `,transport=pci,legacy=on` the function is transitional and the guest
//!   is told to drive its legacy interface ([`SutSpec::guest_words`]).
//! - `qemu` (the `qemu-system-x86_64` on PATH) or `qemu=PATH`, with options after commas:
//!   `machine=q35|pc|microvm` (default q35), `device=virtio-net-pci|virtio-net-device`
//!   (default virtio-net-pci; virtio-net-device needs microvm), `modern=on|off`,
//!   `rx_queue_size=256|512|1024` (the NIC's rx ring; default 1024), and `extra=...`, which takes the rest of the spec, commas included, as more QEMU arguments
//!   split at white space.
//! - `dpdk` (the `dpdk-testpmd` on PATH) or `dpdk=PATH`: vnetbed's VMM and device model, the
//!   datapath in DPDK's vhost library: vnetbed starts testpmd in the testbed's namespace
//!   with a vhost PMD port (the vhost-user socket its VMM connects to) and a tap PMD port on
//!   the testbed bridge, io forwarding ([`crate::dpdk`]). `,reconnect=SECS`: when testpmd
//!   dies, vnetbed starts it again and the VMM reconnects (waiting up to SECS).
//! - `vhost-user=SOCKET[,port=IFNAME][,reconnect=SECS]`: vnetbed's VMM and device model,
//!   the datapath in a vhost-user backend the user runs, listening on SOCKET. `port=` names
//!   the backend's other port (a tap or veth end in vnetbed's namespace), which vnetbed
//!   moves onto the testbed's bridge for the run and gives back at its end
//!   ([`crate::net::borrow`]); without it, connecting the backend to the testbed is up to
//!   the user. `reconnect=SECS`: the VMM waits up to SECS for a backend that closed its
//!   socket to come back (`--vhost-user ...,reconnect=SECS`).
//!
//! A spec is parsed with the arguments, so a bad one is a usage error before anything
//! starts; [`SutSpec::check`] then finds the QEMU binary, also before anything starts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use vmm::devices::virtio::net::device::queue_backend_identity;
use vmm::devices::virtio::net::{NetTransport, NotifyModel};

use crate::qemu::{Device, Machine};
use crate::record::VmmIdentity;

/// A parsed system-under-test spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SutSpec {
    /// vnetbed's own VMM with this notify model.
    Vnetbed {
        /// The device's notify model (or the `virtio-queue` backend).
        model: NotifyModel,
        /// virtio-mmio (the default) or virtio-pci.
        transport: NetTransport,
        /// On PCI: a transitional function, driven through its legacy I/O BAR.
        legacy: bool,
    },
    /// A QEMU build.
    Qemu(QemuSpec),
    /// vnetbed's device model with DPDK's testpmd as the vhost-user backend, started by
    /// vnetbed; `None`: `dpdk-testpmd` on PATH.
    Dpdk {
        /// The testpmd binary given with `dpdk=PATH`.
        binary: Option<PathBuf>,
        /// `reconnect=SECS`: vnetbed starts testpmd again when it dies, and the VMM waits
        /// up to SECS for it.
        reconnect: Option<u64>,
    },
    /// vnetbed's device model with a vhost-user backend the user runs.
    VhostUser {
        /// The backend's listening socket.
        socket: PathBuf,
        /// The backend's other port, borrowed onto the testbed's bridge for the run.
        port: Option<String>,
        /// How long the VMM waits for the backend to come back, seconds.
        reconnect: Option<u64>,
    },
}

/// `qemu[=PATH][,machine=...][,device=...][,modern=on|off][,rx_queue_size=N][,extra=...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuSpec {
    /// The binary given with `qemu=PATH`; `None`: `qemu-system-x86_64` on PATH.
    pub binary: Option<PathBuf>,
    /// The machine type.
    pub machine: Machine,
    /// The virtio-net device.
    pub device: Device,
    /// `modern=on|off`; `None`: QEMU's default (transitional; the probe drives modern).
    pub modern: Option<bool>,
    /// More QEMU arguments (`extra=`).
    pub extra: Vec<String>,
    /// `rx_queue_size=N` (a power of two, 256..=1024, QEMU's limits); `None`: 1024.
    pub rx_queue_size: Option<u16>,
}

/// Why a spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SutSpecError {
    /// The part before `:`, `=` or `,` is not a known kind of system under test.
    #[error(
        "unknown system under test `{0}`: use `vnetbed`, `vnetbed:MODEL` (MODEL: fenced, \
         virtio-queue, unfenced, no-recheck, missing-enable-fence, missing-notify-fence), \
         `qemu` or `qemu=PATH` with options `,machine=q35|pc|microvm`, \
         `,device=virtio-net-pci|virtio-net-device`, `,modern=on|off`, \
         `,rx_queue_size=256|512|1024`, `,extra=ARGS`, \
         `dpdk` or `dpdk=PATH` (DPDK's testpmd as a vhost-user backend), or \
         `vhost-user=SOCKET[,port=IFNAME][,reconnect=SECS]` (a vhost-user backend you run)"
    )]
    UnknownKind(String),
    /// The notify model after `vnetbed:` is unknown.
    #[error("in `{spec}`: {reason}")]
    BadModel {
        /// The whole spec.
        spec: String,
        /// The notify model's parse error.
        reason: String,
    },
    /// An option of a `qemu` spec is unknown, repeated or has a bad value.
    #[error("in `{spec}`: {reason}")]
    BadOption {
        /// The whole spec.
        spec: String,
        /// What is wrong, and what would be right.
        reason: String,
    },
    /// The QEMU binary is missing or not executable.
    #[error("{0}")]
    NoBinary(String),
    /// `--queue-size` is not one this VMM takes.
    #[error("--queue-size {size} does not fit {sut}: it takes powers of two from {min} to {max}")]
    QueueSize {
        /// The size asked for.
        size: u16,
        /// The VMM (`vnetbed`, `qemu`).
        sut: &'static str,
        /// Its smallest queue.
        min: u16,
        /// Its largest queue.
        max: u16,
    },
}

/// `reconnect=SECS`: whole seconds, 1 to 3600.
fn parse_reconnect(spec: &str, secs: &str) -> Result<u64, SutSpecError> {
    match secs.parse::<u64>() {
        Ok(n) if (1..=3600).contains(&n) && secs.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(SutSpecError::BadOption {
            spec: spec.to_string(),
            reason: format!("`reconnect={secs}`: whole seconds from 1 to 3600"),
        }),
    }
}

/// `SOCKET[,port=IFNAME][,reconnect=SECS]` of `vhost-user=`; `None`: no socket.
fn parse_vhost_user(spec: &str, value: &str) -> Option<Result<SutSpec, SutSpecError>> {
    let mut parts = value.split(',');
    let socket = parts.next().filter(|s| !s.is_empty())?;
    let bad = |reason: String| {
        Some(Err(SutSpecError::BadOption {
            spec: spec.to_string(),
            reason,
        }))
    };
    let (mut port, mut reconnect) = (None, None);
    for option in parts {
        match option.split_once('=') {
            Some(("port", name)) if port.is_none() => {
                if !crate::net::borrow::valid_link_name(name) {
                    return bad(format!(
                        "`port={name}`: an interface name has 1 to 15 characters, without `/`, `:`, `,`, `=` or spaces"
                    ));
                }
                port = Some(name.to_string());
            }
            Some(("reconnect", secs)) if reconnect.is_none() => match parse_reconnect(spec, secs) {
                Ok(n) => reconnect = Some(n),
                Err(e) => return Some(Err(e)),
            },
            Some(("port" | "reconnect", _)) => {
                return bad(format!("`{option}`: given twice"));
            }
            _ => {
                return bad(format!(
                    "unknown option `{option}`: `vhost-user=SOCKET` takes `,port=IFNAME` and `,reconnect=SECS`"
                ))
            }
        }
    }
    Some(Ok(SutSpec::VhostUser {
        socket: PathBuf::from(socket),
        port,
        reconnect,
    }))
}

fn on_off(value: &str) -> Option<bool> {
    match value {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

impl QemuSpec {
    fn parse(
        spec: &str,
        binary: Option<&str>,
        options: Option<&str>,
    ) -> Result<Self, SutSpecError> {
        let bad = |reason: String| SutSpecError::BadOption {
            spec: spec.to_string(),
            reason,
        };
        let binary = match binary {
            Some("") => {
                return Err(bad(
                    "`qemu=` needs a path: `qemu=/path/to/qemu-system-x86_64`".into(),
                ))
            }
            Some(path) => Some(PathBuf::from(path)),
            None => None,
        };
        let (mut machine, mut device, mut modern, mut extra) = (None, None, None, None);
        let mut rx_queue_size = None;
        let mut rest = options;
        while let Some(text) = rest {
            // `extra=` takes everything after it, commas included.
            if let Some(args) = text.strip_prefix("extra=") {
                let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
                if args.is_empty() {
                    return Err(bad(
                        "`extra=` needs QEMU arguments, e.g. `extra=-smp 2`".into()
                    ));
                }
                extra = Some(args);
                break;
            }
            let (option, next) = match text.split_once(',') {
                Some((o, n)) => (o, Some(n)),
                None => (text, None),
            };
            rest = next;
            let Some((key, value)) = option.split_once('=') else {
                return Err(bad(format!(
                    "`{option}` is not KEY=VALUE; the options are machine=, device=, modern=, rx_queue_size= and extra="
                )));
            };
            let repeated = || bad(format!("`{key}` is given twice"));
            match key {
                "machine" => {
                    let m = match value {
                        "q35" => Machine::Q35,
                        "pc" => Machine::Pc,
                        "microvm" => Machine::Microvm,
                        _ => return Err(bad(format!("machine `{value}`: use q35, pc or microvm"))),
                    };
                    if machine.replace(m).is_some() {
                        return Err(repeated());
                    }
                }
                "device" => {
                    let d = match value {
                        "virtio-net-pci" => Device::VirtioNetPci,
                        "virtio-net-device" => Device::VirtioNetDevice,
                        _ => {
                            return Err(bad(format!(
                                "device `{value}`: use virtio-net-pci or virtio-net-device"
                            )))
                        }
                    };
                    if device.replace(d).is_some() {
                        return Err(repeated());
                    }
                }
                "rx_queue_size" => {
                    let size = value
                        .parse::<u16>()
                        .ok()
                        .filter(|n| n.is_power_of_two() && (256..=1024).contains(n))
                        .ok_or_else(|| {
                            bad(format!(
                                "rx_queue_size `{value}`: use 256, 512 or 1024 (QEMU's limits)"
                            ))
                        })?;
                    if rx_queue_size.replace(size).is_some() {
                        return Err(repeated());
                    }
                }
                "modern" => {
                    let Some(m) = on_off(value) else {
                        return Err(bad(format!("modern `{value}`: use on or off")));
                    };
                    if modern.replace(m).is_some() {
                        return Err(repeated());
                    }
                }
                _ => {
                    return Err(bad(format!(
                    "unknown option `{key}`: the options are machine=, device=, modern=, rx_queue_size= and extra="
                )))
                }
            }
        }
        let machine = machine.unwrap_or(Machine::Q35);
        let device = device.unwrap_or(Device::VirtioNetPci);
        match (machine, device, modern) {
            (Machine::Q35 | Machine::Pc, Device::VirtioNetDevice, _) => {
                return Err(bad(
                    "device=virtio-net-device (virtio-mmio) needs machine=microvm".into(),
                ))
            }
            (Machine::Microvm, Device::VirtioNetPci, Some(false)) => {
                return Err(bad(
                    "modern=off (the legacy I/O BAR) needs PCI I/O space, which microvm's PCIe \
                     does not have: use machine=q35 or machine=pc"
                        .into(),
                ))
            }
            (_, Device::VirtioNetDevice, Some(false)) => {
                return Err(bad(
                    "the probe drives only modern (version 2) virtio-mmio; drop modern=off".into(),
                ))
            }
            _ => {}
        }
        Ok(QemuSpec {
            binary,
            machine,
            device,
            modern,
            extra: extra.unwrap_or_default(),
            rx_queue_size,
        })
    }

    /// The binary that runs: the one given, or `qemu-system-x86_64` on PATH.
    pub fn resolve_binary(&self) -> Result<PathBuf, SutSpecError> {
        use std::os::unix::fs::PermissionsExt;
        match &self.binary {
            Some(path) => match std::fs::metadata(path) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(path.clone()),
                Ok(_) => Err(SutSpecError::NoBinary(format!(
                    "{} is not an executable file: give the path of a qemu-system-x86_64 binary",
                    path.display()
                ))),
                Err(e) => Err(SutSpecError::NoBinary(format!(
                    "cannot use QEMU binary {}: {e}; give the path of a qemu-system-x86_64 binary",
                    path.display()
                ))),
            },
            None => {
                crate::net::preflight::find_program(crate::qemu::DEFAULT_BINARY).ok_or_else(|| {
                    SutSpecError::NoBinary(
                    "qemu-system-x86_64 is not on PATH: install it (Debian/Ubuntu: apt-get install \
                     qemu-system-x86) or name a build with `qemu=PATH`"
                        .into(),
                )
                })
            }
        }
    }
}

impl FromStr for SutSpec {
    type Err = SutSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("qemu") {
            // `qemu`, `qemu,OPTIONS`, `qemu=PATH`, `qemu=PATH,OPTIONS`.
            let (binary, options) = match rest.strip_prefix('=') {
                Some(after) => match after.split_once(',') {
                    Some((path, options)) => (Some(path), Some(options)),
                    None => (Some(after), None),
                },
                None if rest.is_empty() => (None, None),
                None => match rest.strip_prefix(',') {
                    Some(options) => (None, Some(options)),
                    None => return Err(SutSpecError::UnknownKind(s.to_string())),
                },
            };
            return QemuSpec::parse(s, binary, options).map(SutSpec::Qemu);
        }
        if let Some(rest) = s.strip_prefix("dpdk") {
            let (path, options) = match rest.strip_prefix('=') {
                Some(value) => match value.split_once(',') {
                    Some((path, options)) => (Some(path), Some(options)),
                    None => (Some(value), None),
                },
                None if rest.is_empty() => (None, None),
                None => match rest.strip_prefix(',') {
                    Some(options) => (None, Some(options)),
                    None => return Err(SutSpecError::UnknownKind(s.to_string())),
                },
            };
            if path == Some("") {
                return Err(SutSpecError::BadOption {
                    spec: s.to_string(),
                    reason: "`dpdk=` needs a path: `dpdk=/path/to/dpdk-testpmd`".into(),
                });
            }
            let mut reconnect = None;
            for option in options.into_iter().flat_map(|o| o.split(',')) {
                match option.split_once('=') {
                    Some(("reconnect", secs)) if reconnect.is_none() => {
                        reconnect = Some(parse_reconnect(s, secs)?);
                    }
                    Some(("reconnect", _)) => {
                        return Err(SutSpecError::BadOption {
                            spec: s.to_string(),
                            reason: format!("`{option}`: given twice"),
                        })
                    }
                    _ => {
                        return Err(SutSpecError::BadOption {
                            spec: s.to_string(),
                            reason: format!(
                                "unknown option `{option}`: `dpdk` takes `,reconnect=SECS`"
                            ),
                        })
                    }
                }
            }
            return Ok(SutSpec::Dpdk {
                binary: path.map(PathBuf::from),
                reconnect,
            });
        }
        if let Some(rest) = s.strip_prefix("vhost-user") {
            let needs = || SutSpecError::BadOption {
                spec: s.to_string(),
                reason: "`vhost-user` needs the backend's socket: `vhost-user=/run/backend.sock`"
                    .into(),
            };
            return match rest.strip_prefix('=') {
                Some(value) => parse_vhost_user(s, value).ok_or_else(needs)?,
                None if rest.is_empty() => Err(needs()),
                None => Err(SutSpecError::UnknownKind(s.to_string())),
            };
        }
        let (head, options) = match s.split_once(',') {
            Some((h, o)) => (h, Some(o)),
            None => (s, None),
        };
        let (kind, model) = match head.split_once(':') {
            Some((k, m)) => (k, Some(m)),
            None => (head, None),
        };
        if kind != "vnetbed" {
            return Err(SutSpecError::UnknownKind(kind.to_string()));
        }
        let model = match model {
            None => NotifyModel::Fenced,
            Some(m) => m.parse().map_err(
                |e: vmm::devices::virtio::net::notify_model::UnknownNotifyModel| {
                    SutSpecError::BadModel {
                        spec: s.to_string(),
                        reason: e.to_string(),
                    }
                },
            )?,
        };
        let mut transport = None;
        let mut legacy = None;
        for option in options.into_iter().flat_map(|o| o.split(',')) {
            let bad = |reason: String| SutSpecError::BadOption {
                spec: s.to_string(),
                reason,
            };
            let unknown = || {
                bad(format!(
                    "unknown vnetbed option `{option}`: use `,transport=mmio|pci` and, with pci, `,legacy=on|off`"
                ))
            };
            let (key, value) = option.split_once('=').ok_or_else(unknown)?;
            match key {
                "transport" => {
                    if transport.is_some() {
                        return Err(bad("`transport=` is given twice".into()));
                    }
                    transport = Some(
                        value
                            .parse::<NetTransport>()
                            .map_err(|e| bad(e.to_string()))?,
                    );
                }
                "legacy" => {
                    if legacy.is_some() {
                        return Err(bad("`legacy=` is given twice".into()));
                    }
                    legacy = Some(match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(bad(format!("`legacy={value}`: use on or off"))),
                    });
                }
                _ => return Err(unknown()),
            }
        }
        let transport = transport.unwrap_or_default();
        let legacy = legacy.unwrap_or(false);
        if legacy && transport != NetTransport::Pci {
            return Err(SutSpecError::BadOption {
                spec: s.to_string(),
                reason: "`legacy=on` needs `transport=pci` (the legacy interface is a virtio-pci I/O BAR)".into(),
            });
        }
        Ok(SutSpec::Vnetbed {
            model,
            transport,
            legacy,
        })
    }
}

impl fmt::Display for SutSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SutSpec::Vnetbed {
                model,
                transport,
                legacy,
            } => {
                write!(f, "vnetbed:{model}")?;
                if *transport != NetTransport::Mmio {
                    write!(f, ",transport={transport}")?;
                }
                if *legacy {
                    write!(f, ",legacy=on")?;
                }
                Ok(())
            }
            SutSpec::Dpdk { binary, reconnect } => {
                write!(f, "dpdk")?;
                if let Some(path) = binary {
                    write!(f, "={}", path.display())?;
                }
                if let Some(secs) = reconnect {
                    write!(f, ",reconnect={secs}")?;
                }
                Ok(())
            }
            SutSpec::VhostUser {
                socket,
                port,
                reconnect,
            } => {
                write!(f, "vhost-user={}", socket.display())?;
                if let Some(port) = port {
                    write!(f, ",port={port}")?;
                }
                if let Some(secs) = reconnect {
                    write!(f, ",reconnect={secs}")?;
                }
                Ok(())
            }
            SutSpec::Qemu(q) => {
                match &q.binary {
                    Some(path) => write!(f, "qemu={}", path.display())?,
                    None => write!(f, "qemu")?,
                }
                write!(
                    f,
                    ",machine={},device={}",
                    q.machine.name(),
                    q.device.name()
                )?;
                if let Some(m) = q.modern {
                    write!(f, ",modern={}", if m { "on" } else { "off" })?;
                }
                if let Some(n) = q.rx_queue_size {
                    write!(f, ",rx_queue_size={n}")?;
                }
                if !q.extra.is_empty() {
                    write!(f, ",extra={}", q.extra.join(" "))?;
                }
                Ok(())
            }
        }
    }
}

impl SutSpec {
    /// vnetbed's own VMM with notify model `model` on virtio-mmio (the default transport).
    pub const fn vnetbed(model: NotifyModel) -> SutSpec {
        SutSpec::Vnetbed {
            model,
            transport: NetTransport::Mmio,
            legacy: false,
        }
    }

    /// Whether a vnetbed system under test is a transitional PCI function driven through
    /// its legacy interface (`,transport=pci,legacy=on`).
    pub fn is_legacy_pci(&self) -> bool {
        matches!(self, SutSpec::Vnetbed { legacy: true, .. })
    }

    /// The `--net` suffix of a vnetbed system under test: `,transport=mmio|pci` and, for a
    /// transitional function, `,legacy=on`.
    pub fn net_options(&self) -> String {
        let transport = self.net_transport().unwrap_or_default();
        let legacy = if self.is_legacy_pci() {
            ",legacy=on"
        } else {
            ""
        };
        format!(",transport={transport}{legacy}")
    }

    /// Kernel command-line words the guest needs for this system under test: on a
    /// transitional function, the words that make the probe (`probe.virtio_pci=legacy`) and
    /// Linux (`virtio_pci.force_legacy=1`) drive the legacy interface, as they would pick
    /// the modern one otherwise.
    pub fn guest_words(&self) -> Option<&'static str> {
        self.is_legacy_pci()
            .then_some("probe.virtio_pci=legacy virtio_pci.force_legacy=1")
    }

    /// vnetbed's notify model, for a vnetbed system under test.
    pub fn notify_model(&self) -> Option<NotifyModel> {
        match self {
            SutSpec::Vnetbed { model, .. } => Some(*model),
            SutSpec::Qemu(_) | SutSpec::Dpdk { .. } | SutSpec::VhostUser { .. } => None,
        }
    }

    /// vnetbed's transport, for a vnetbed system under test on a tap.
    pub fn net_transport(&self) -> Option<NetTransport> {
        match self {
            SutSpec::Vnetbed { transport, .. } => Some(*transport),
            SutSpec::Qemu(_) | SutSpec::Dpdk { .. } | SutSpec::VhostUser { .. } => None,
        }
    }

    /// A short name for directories and headings: the notify model for vnetbed
    /// (`unfenced`, `fenced`, `virtio-queue`), `qemu` for QEMU, `dpdk`, `vhost-user`.
    pub fn label(&self) -> String {
        match self {
            SutSpec::Vnetbed {
                model,
                transport: NetTransport::Mmio,
                ..
            } => model.to_string(),
            SutSpec::Vnetbed {
                model,
                transport,
                legacy: false,
            } => format!("{model}-{transport}"),
            SutSpec::Vnetbed {
                model, transport, ..
            } => format!("{model}-{transport}-legacy"),
            SutSpec::Qemu(_) => "qemu".into(),
            SutSpec::Dpdk { .. } => "dpdk".into(),
            SutSpec::VhostUser { .. } => "vhost-user".into(),
        }
    }

    /// Whether the datapath is a vhost-user backend (`dpdk`, `vhost-user=`). Such a
    /// backend polls its own port and drops what a full rx ring cannot take (DPDK's
    /// testpmd frees it), where vnetbed's device and QEMU leave frames waiting in the tap.
    pub fn is_vhost_user(&self) -> bool {
        matches!(self, SutSpec::Dpdk { .. } | SutSpec::VhostUser { .. })
    }

    /// Whether vnetbed's VMM and device model run, so that the device's watchdog and
    /// counters are in the record (for QEMU only the guest's detector and counters are).
    /// True for the vhost-user backends too: vnetbed relays their kicks and calls and its
    /// watchdog judges them.
    pub fn is_vnetbed(&self) -> bool {
        !matches!(self, SutSpec::Qemu(_))
    }

    /// What can be checked before anything starts: the QEMU binary is there.
    pub fn check(&self) -> Result<(), SutSpecError> {
        match self {
            SutSpec::Vnetbed { .. } => Ok(()),
            SutSpec::Qemu(q) => q.resolve_binary().map(|_| ()),
            SutSpec::Dpdk { binary, .. } => crate::dpdk::resolve_binary(binary.as_deref())
                .map(|_| ())
                .map_err(|e| SutSpecError::NoBinary(e.to_string())),
            SutSpec::VhostUser { socket, port, .. } => {
                use std::os::unix::fs::FileTypeExt;
                match std::fs::metadata(socket) {
                    Ok(m) if m.file_type().is_socket() => {}
                    _ => {
                        return Err(SutSpecError::NoBinary(format!(
                        "{} is not a socket: start the vhost-user backend (listening there) first",
                        socket.display()
                    )))
                    }
                }
                match port {
                    Some(port) if !Path::new("/sys/class/net").join(port).exists() => {
                        Err(SutSpecError::NoBinary(format!(
                            "the backend's port {port} is not a network interface here: create \
                             it (the backend's tap or veth end) before the run"
                        )))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// Whether this VMM takes queues of `size` entries: vnetbed's device powers of two up
    /// to 256 (both queues), QEMU's `rx_queue_size` powers of two from 256 to 1024.
    pub fn check_queue_size(&self, size: u16) -> Result<(), SutSpecError> {
        let (sut, range) = match self {
            SutSpec::Vnetbed { .. } | SutSpec::Dpdk { .. } | SutSpec::VhostUser { .. } => {
                ("vnetbed", 2..=vmm::devices::virtio::queue::MAX_QUEUE_SIZE)
            }
            SutSpec::Qemu(_) => ("qemu", crate::qemu::RX_QUEUE_SIZES),
        };
        if size.is_power_of_two() && range.contains(&size) {
            Ok(())
        } else {
            Err(SutSpecError::QueueSize {
                size,
                sut,
                min: *range.start(),
                max: *range.end(),
            })
        }
    }

    /// What exactly runs, in one line: the queue implementation for vnetbed, with the
    /// `virtio-queue` crate's version and source when that is the backend; the machine and
    /// device for QEMU.
    pub fn identity(&self) -> String {
        match self {
            SutSpec::Vnetbed {
                model,
                transport: NetTransport::Mmio,
                ..
            } => format!("vnetbed ({})", queue_backend_identity(*model)),
            SutSpec::Vnetbed {
                model,
                transport,
                legacy,
            } => format!(
                "vnetbed ({}, virtio-{transport}{})",
                queue_backend_identity(*model),
                if *legacy { " legacy" } else { "" }
            ),
            SutSpec::Dpdk { binary, .. } => format!(
                "vnetbed + {} (vhost-user)",
                binary.as_deref().map_or_else(
                    || crate::dpdk::DEFAULT_BINARY.to_string(),
                    |p| p.display().to_string()
                )
            ),
            SutSpec::VhostUser { socket, .. } => {
                format!("vnetbed + vhost-user backend at {}", socket.display())
            }
            SutSpec::Qemu(q) => format!(
                "QEMU {} ({}, {}{})",
                q.binary.as_deref().map_or_else(
                    || crate::qemu::DEFAULT_BINARY.to_string(),
                    |p| p.display().to_string()
                ),
                q.machine.name(),
                q.device.name(),
                match q.modern {
                    Some(true) => ", modern only",
                    Some(false) => ", legacy only",
                    None => "",
                }
            ),
        }
    }

    /// The identity of the VMM binary that runs this spec: its path, SHA-256, version, the
    /// machine and the device. Fields that cannot be read stay empty; nothing here fails.
    pub fn vmm_identity(&self) -> VmmIdentity {
        match self {
            SutSpec::Vnetbed {
                model,
                transport,
                legacy,
            } => self.vnetbed_identity(format!(
                "virtio-net on virtio-{}, {} notify model, {}",
                match (transport, legacy) {
                    (NetTransport::Mmio, _) => "mmio",
                    (NetTransport::Pci, false) => "pci (MSI-X)",
                    (NetTransport::Pci, true) => "pci (transitional, legacy interface, MSI-X)",
                },
                model,
                queue_backend_identity(*model)
            )),
            SutSpec::Dpdk { binary, .. } => {
                let testpmd = crate::dpdk::resolve_binary(binary.as_deref()).ok();
                let dpdk = testpmd.as_deref().and_then(crate::dpdk::version);
                self.vnetbed_identity(format!(
                    "virtio-net on virtio-mmio, datapath in {} ({}, sha256 {}) over vhost-user, relay mode",
                    testpmd.as_deref().map_or_else(
                        || crate::dpdk::DEFAULT_BINARY.to_string(),
                        |p| p.display().to_string()
                    ),
                    dpdk.as_deref().unwrap_or("DPDK version unknown"),
                    testpmd
                        .as_deref()
                        .and_then(sha256_of)
                        .unwrap_or_else(|| "unknown".into()),
                ))
            }
            SutSpec::VhostUser { socket, port, .. } => self.vnetbed_identity(format!(
                "virtio-net on virtio-mmio, datapath in the vhost-user backend at {} (not identified){}, relay mode",
                socket.display(),
                port.as_ref().map_or_else(String::new, |p| format!(", its port {p} on the testbed bridge"))
            )),
            SutSpec::Qemu(q) => {
                let path = q.resolve_binary().ok();
                VmmIdentity {
                    spec: self.to_string(),
                    sha256: path.as_deref().and_then(sha256_of),
                    version: path.as_deref().and_then(|p| {
                        crate::build_info::first_line_of(&p.display().to_string(), &["--version"])
                    }),
                    path: path.map(|p| p.display().to_string()),
                    machine: q.machine.name().into(),
                    device: format!(
                        "{}{}",
                        q.device.name(),
                        match q.modern {
                            Some(true) => " (modern=on)",
                            Some(false) => " (modern=off)",
                            None => "",
                        }
                    ),
                }
            }
        }
    }
}

impl SutSpec {
    /// The identity of this vnetbed binary running a device described by `device`.
    fn vnetbed_identity(&self, device: String) -> VmmIdentity {
        let path = std::env::current_exe().ok();
        VmmIdentity {
            spec: self.to_string(),
            sha256: path.as_deref().and_then(sha256_of),
            path: path.map(|p| p.display().to_string()),
            version: Some(crate::build_info::version_line()),
            machine: "vnetbed".into(),
            device,
        }
    }
}

/// The SHA-256 of the file at `path`, lower-case hex (`sha256sum`'s).
pub fn sha256_of(path: &Path) -> Option<String> {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let hex = text.split_whitespace().next()?;
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| hex.to_string())
}

/// Parse a spec for clap.
pub fn parse_arg(s: &str) -> Result<SutSpec, String> {
    s.parse::<SutSpec>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_sizes_are_checked_against_the_vmm() {
        let vnetbed: SutSpec = "vnetbed".parse().unwrap();
        let qemu: SutSpec = "qemu".parse().unwrap();
        assert!(vnetbed.check_queue_size(32).is_ok());
        assert!(vnetbed.check_queue_size(256).is_ok());
        assert!(qemu.check_queue_size(256).is_ok());
        assert!(qemu.check_queue_size(1024).is_ok());
        for (spec, size) in [(&vnetbed, 48), (&vnetbed, 512), (&qemu, 128), (&qemu, 2048)] {
            let e = spec.check_queue_size(size).unwrap_err().to_string();
            assert!(e.contains("powers of two"), "{e}");
        }
    }

    #[test]
    fn parses_vnetbed_specs() {
        let fenced = SutSpec::vnetbed(NotifyModel::Fenced);
        assert_eq!("vnetbed".parse::<SutSpec>(), Ok(fenced.clone()));
        assert_eq!("vnetbed:fenced".parse::<SutSpec>(), Ok(fenced.clone()));
        let vq: SutSpec = "vnetbed:virtio-queue".parse().unwrap();
        assert_eq!(vq.notify_model(), Some(NotifyModel::VirtioQueue));
        assert_eq!(vq.to_string(), "vnetbed:virtio-queue");
        assert_eq!(vq.label(), "virtio-queue");
        assert!(
            vq.identity().starts_with("vnetbed (virtio-queue 0."),
            "{}",
            vq.identity()
        );
        assert_eq!(fenced.identity(), "vnetbed (vnetbed)");
        assert_eq!(
            "vnetbed:unfenced"
                .parse::<SutSpec>()
                .unwrap()
                .notify_model(),
            Some(NotifyModel::Unfenced)
        );
    }

    #[test]
    fn parses_the_vnetbed_transport_and_prints_it_back() {
        let pci: SutSpec = "vnetbed:unfenced,transport=pci".parse().unwrap();
        assert_eq!(
            pci,
            SutSpec::Vnetbed {
                model: NotifyModel::Unfenced,
                transport: NetTransport::Pci,
                legacy: false,
            }
        );
        assert_eq!(pci.guest_words(), None);
        let legacy: SutSpec = "vnetbed:fenced,transport=pci,legacy=on".parse().unwrap();
        assert!(legacy.is_legacy_pci());
        assert_eq!(legacy.to_string(), "vnetbed:fenced,transport=pci,legacy=on");
        assert_eq!(legacy.to_string().parse::<SutSpec>().unwrap(), legacy);
        assert_eq!(legacy.label(), "fenced-pci-legacy");
        assert_eq!(legacy.net_options(), ",transport=pci,legacy=on");
        assert!(legacy
            .guest_words()
            .unwrap()
            .contains("probe.virtio_pci=legacy"));
        assert!(legacy.identity().ends_with(", virtio-pci legacy)"));
        let off: SutSpec = "vnetbed,transport=pci,legacy=off".parse().unwrap();
        assert_eq!(off.to_string(), "vnetbed:fenced,transport=pci");
        assert_eq!(pci.to_string(), "vnetbed:unfenced,transport=pci");
        assert_eq!(pci.label(), "unfenced-pci");
        assert_eq!(pci.net_transport(), Some(NetTransport::Pci));
        assert!(
            pci.identity().ends_with(", virtio-pci)"),
            "{}",
            pci.identity()
        );
        let mmio: SutSpec = "vnetbed,transport=mmio".parse().unwrap();
        assert_eq!(mmio, SutSpec::vnetbed(NotifyModel::Fenced));
        assert_eq!(mmio.to_string(), "vnetbed:fenced");
        for bad in [
            "vnetbed:unfenced,transport=usb",
            "vnetbed,transport=pci,transport=pci",
            "vnetbed,speed=fast",
            "vnetbed,legacy=on",
            "vnetbed,transport=mmio,legacy=on",
            "vnetbed,transport=pci,legacy=yes",
            "vnetbed,transport=pci,legacy=on,legacy=on",
            "vnetbed,transport",
            "vnetbed,",
        ] {
            let e = bad.parse::<SutSpec>().unwrap_err();
            assert!(matches!(e, SutSpecError::BadOption { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn parses_qemu_specs_with_defaults_and_options() {
        let SutSpec::Qemu(q) = "qemu".parse::<SutSpec>().unwrap() else {
            panic!("not qemu")
        };
        assert_eq!(
            (q.binary, q.machine, q.device, q.modern, q.extra.len()),
            (None, Machine::Q35, Device::VirtioNetPci, None, 0)
        );
        let s: SutSpec = "qemu=/opt/q11/bin/qemu-system-x86_64,machine=pc,modern=off"
            .parse()
            .unwrap();
        let SutSpec::Qemu(q) = &s else { panic!() };
        assert_eq!(
            q.binary.as_deref(),
            Some(Path::new("/opt/q11/bin/qemu-system-x86_64"))
        );
        assert_eq!((q.machine, q.modern), (Machine::Pc, Some(false)));
        assert_eq!(s.label(), "qemu");
        assert!(!s.is_vnetbed());
        let s: SutSpec = "qemu,machine=microvm,device=virtio-net-device,extra=-smp 2,cores=2"
            .parse()
            .unwrap();
        let SutSpec::Qemu(q) = &s else { panic!() };
        assert_eq!(q.device, Device::VirtioNetDevice);
        assert_eq!(q.extra, ["-smp", "2,cores=2"]);
        assert_eq!(q.rx_queue_size, None);
    }

    #[test]
    fn parses_and_prints_rx_queue_size() {
        let s: SutSpec = "qemu,rx_queue_size=256".parse().unwrap();
        let SutSpec::Qemu(q) = &s else { panic!() };
        assert_eq!(q.rx_queue_size, Some(256));
        assert_eq!(
            s.to_string(),
            "qemu,machine=q35,device=virtio-net-pci,rx_queue_size=256"
        );
        for bad in [
            "qemu,rx_queue_size=128",
            "qemu,rx_queue_size=300",
            "qemu,rx_queue_size=x",
        ] {
            let e = bad.parse::<SutSpec>().unwrap_err().to_string();
            assert!(e.contains("use 256, 512 or 1024"), "{bad}: {e}");
        }
        assert!("qemu,rx_queue_size=512,rx_queue_size=512"
            .parse::<SutSpec>()
            .is_err());
    }

    #[test]
    fn a_spec_prints_as_it_parses() {
        for text in [
            "vnetbed:fenced",
            "vnetbed:missing-notify-fence",
            "qemu,machine=q35,device=virtio-net-pci",
            "qemu=/x/qemu,machine=pc,device=virtio-net-pci,modern=off,extra=-smp 2",
            "qemu,machine=microvm,device=virtio-net-device",
            "dpdk",
            "dpdk=/opt/dpdk/bin/dpdk-testpmd",
            "dpdk,reconnect=10",
            "dpdk=/opt/t,reconnect=3600",
            "vhost-user=/run/ovs/vhu0.sock",
            "vhost-user=/run/b.sock,port=veth-b1",
            "vhost-user=/run/b.sock,reconnect=30",
            "vhost-user=/run/b.sock,port=tap9,reconnect=5",
        ] {
            let spec: SutSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
            assert_eq!(spec.to_string().parse::<SutSpec>(), Ok(spec));
        }
    }

    #[test]
    fn refuses_bad_specs_with_a_clear_message() {
        let e = "xen".parse::<SutSpec>().unwrap_err();
        assert!(e.to_string().contains("use `vnetbed`"), "{e}");
        let e = "vnetbed:fast".parse::<SutSpec>().unwrap_err();
        assert!(matches!(e, SutSpecError::BadModel { .. }));
        assert!(e.to_string().contains("virtio-queue"), "{e}");
        assert!("".parse::<SutSpec>().is_err());
        assert!("vnetbed:".parse::<SutSpec>().is_err());
        assert!("qemux".parse::<SutSpec>().is_err());
        assert!(matches!(
            "dpdkx".parse::<SutSpec>(),
            Err(SutSpecError::UnknownKind(_))
        ));
        assert!(matches!(
            "vhost-users=/x".parse::<SutSpec>(),
            Err(SutSpecError::UnknownKind(_))
        ));
        for (spec, words) in [
            ("qemu=", "needs a path"),
            ("qemu,machine=virt", "use q35, pc or microvm"),
            ("qemu,device=e1000", "virtio-net-pci or virtio-net-device"),
            ("qemu,modern=maybe", "on or off"),
            ("qemu,machine=pc,machine=q35", "given twice"),
            ("qemu,vhost=on", "unknown option `vhost`"),
            ("qemu,pc", "not KEY=VALUE"),
            ("qemu,device=virtio-net-device", "needs machine=microvm"),
            ("qemu,machine=microvm,modern=off", "PCI I/O space"),
            (
                "qemu,machine=microvm,device=virtio-net-device,modern=off",
                "only modern",
            ),
            ("qemu,extra=", "needs QEMU arguments"),
            ("dpdk=", "needs a path"),
            ("dpdk=,reconnect=5", "needs a path"),
            ("dpdk,reconnect=0", "whole seconds"),
            ("dpdk,reconnect=5,reconnect=6", "given twice"),
            ("dpdk,fast", "unknown option `fast`"),
            ("vhost-user", "needs the backend's socket"),
            ("vhost-user=", "needs the backend's socket"),
            ("vhost-user=,port=x", "needs the backend's socket"),
            ("vhost-user=/s,port=a/b", "an interface name"),
            ("vhost-user=/s,port=", "an interface name"),
            ("vhost-user=/s,reconnect=0", "whole seconds"),
            ("vhost-user=/s,reconnect=+5", "whole seconds"),
            ("vhost-user=/s,port=a,port=b", "given twice"),
            ("vhost-user=/s,mac=1", "unknown option `mac=1`"),
        ] {
            let e = spec.parse::<SutSpec>().unwrap_err().to_string();
            assert!(e.contains(words), "{spec}: {e}");
        }
    }

    #[test]
    fn a_missing_binary_is_found_before_anything_starts() {
        let spec: SutSpec = "qemu=/nonexistent/qemu-system-x86_64".parse().unwrap();
        let e = spec.check().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/qemu-system-x86_64"), "{e}");
        let plain = std::env::temp_dir().join(format!("vnetbed-sut-test-{}", std::process::id()));
        std::fs::write(&plain, "not a program").unwrap();
        let spec: SutSpec = format!("qemu={}", plain.display()).parse().unwrap();
        let e = spec.check().unwrap_err().to_string();
        let _ = std::fs::remove_file(&plain);
        assert!(e.contains("not an executable"), "{e}");
        assert!("vnetbed".parse::<SutSpec>().unwrap().check().is_ok());
        let e = "dpdk=/nonexistent/dpdk-testpmd"
            .parse::<SutSpec>()
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/dpdk-testpmd"), "{e}");
        let e = "vhost-user=/nonexistent.sock"
            .parse::<SutSpec>()
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a socket"), "{e}");
    }

    #[test]
    fn vhost_user_specs_are_vnetbed_without_a_notify_model() {
        let d: SutSpec = "dpdk".parse().unwrap();
        assert_eq!(
            d,
            SutSpec::Dpdk {
                binary: None,
                reconnect: None
            }
        );
        assert_eq!(
            (d.label(), d.notify_model(), d.is_vnetbed()),
            ("dpdk".into(), None, true)
        );
        assert_eq!(d.identity(), "vnetbed + dpdk-testpmd (vhost-user)");
        let v: SutSpec = "vhost-user=/run/b.sock".parse().unwrap();
        assert_eq!(v.label(), "vhost-user");
        assert!(v.is_vnetbed());
    }
}
