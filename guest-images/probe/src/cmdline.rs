//! The kernel command line: NICs in Linux syntax (`virtio_mmio.device=<size>@<base>:<irq>`)
//! and the probe's own `probe.<name>=<value>` options. Other words (console=...) are ignored.

use crate::rx_policy::{Profile, RefillPolicy};

/// Most virtio-mmio devices we track.
pub const MAX_DEVICES: usize = 4;

/// A virtio-mmio device from `virtio_mmio.device=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    /// Guest-physical base of the register window.
    pub base: u64,
    /// Size of the register window in bytes.
    pub size: u64,
    /// The GSI (IOAPIC input) of its interrupt.
    pub irq: u32,
}

/// A self-test selected with `probe.selftest=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfTest {
    /// Panic in ring 3 (the VM must end with status 3).
    Panic,
    /// Execute `ud2` in ring 3 (the VM must end with status 5).
    Exception,
    /// Sleep through the idle gate on LAPIC timer interrupts, then exit with status 1.
    Timer,
}

/// What the guest stall detector does when it finds a stall (`probe.on_stall=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStall {
    /// Report it (one `stall` line) and leave it be: the stall persists, as in 2012.
    Report,
    /// Report it, then consume (poll, reclaim, kick) and go on; counted.
    Recover,
}

impl OnStall {
    /// The name used in agent lines.
    pub fn name(self) -> &'static str {
        match self {
            OnStall::Report => "report",
            OnStall::Recover => "recover",
        }
    }
}

/// Default `probe.stall_timeout`: 1 s, as vnetbed's device watchdog.
pub const DEFAULT_STALL_TIMEOUT_US: u64 = 1_000_000;

/// Everything the command line configures.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// NICs, in command-line order.
    pub devices: [Option<VirtioMmioDevice>; MAX_DEVICES],
    /// `probe.tsc_khz=`: the TSC frequency; skips PIT calibration.
    pub tsc_khz: Option<u64>,
    /// `probe.event_idx=0` turns VIRTIO_RING_F_EVENT_IDX off (default on).
    pub event_idx: bool,
    /// `probe.mrg_rxbuf=0` turns VIRTIO_NET_F_MRG_RXBUF off (default on).
    pub mrg_rxbuf: bool,
    /// `probe.exit_after_boot=1`: end the VM (status 1) once booted.
    pub exit_after_boot: bool,
    /// `probe.selftest=`.
    pub selftest: Option<SelfTest>,
    /// `probe.stall_timeout=`: how long a stall condition must hold before the guest
    /// detector reports it, in microseconds; 0 turns the detector off.
    pub stall_timeout_us: u64,
    /// `probe.on_stall=report|recover`.
    pub on_stall: OnStall,
    /// `probe.msix=0` makes a PCI NIC use INTx even if it has MSI-X (default on).
    pub msix: bool,
    /// `probe.rx_buf=BYTES`: the rx buffer size posted to the device ([`MIN_RX_BUF`]..=
    /// [`MAX_RX_BUF`]); `None`: 1536, a full frame per buffer. Smaller buffers make a frame
    /// span several (with MRG_RXBUF; without it the driver keeps full-frame buffers).
    pub rx_buf: Option<usize>,
    /// `probe.refill=eager|half|low|trickle:N`; `None`: the profile's default.
    pub refill: Option<RefillPolicy>,
    /// `probe.profile=modern|linux-3.2` (default modern).
    pub profile: Profile,
    /// `probe.virtio_pci=auto|modern|legacy`: which interface of a PCI NIC to drive.
    pub virtio_pci: PciInterface,
}

/// Which interface of a virtio-pci function the driver uses (`probe.virtio_pci=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciInterface {
    /// Modern when the function has the virtio 1.0 capabilities, else legacy (default).
    Auto,
    /// The modern capabilities only (an error without them).
    Modern,
    /// The legacy I/O BAR only, even on a transitional function with modern
    /// capabilities (an error without the BAR).
    Legacy,
}

impl PciInterface {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "auto" => Some(PciInterface::Auto),
            "modern" => Some(PciInterface::Modern),
            "legacy" => Some(PciInterface::Legacy),
            _ => None,
        }
    }
}

/// Smallest `probe.rx_buf`: the virtio-net header plus some data.
pub const MIN_RX_BUF: usize = 64;
/// Largest `probe.rx_buf`: the driver's buffer slots.
pub const MAX_RX_BUF: usize = 2048;

impl Default for Options {
    fn default() -> Self {
        Options {
            devices: [None; MAX_DEVICES],
            tsc_khz: None,
            event_idx: true,
            mrg_rxbuf: true,
            exit_after_boot: false,
            selftest: None,
            stall_timeout_us: DEFAULT_STALL_TIMEOUT_US,
            on_stall: OnStall::Report,
            msix: true,
            rx_buf: None,
            refill: None,
            profile: Profile::Modern,
            virtio_pci: PciInterface::Auto,
        }
    }
}

impl Options {
    /// The NICs found.
    pub fn devices(&self) -> impl Iterator<Item = &VirtioMmioDevice> {
        self.devices.iter().flatten()
    }

    /// The refill policy in force: `probe.refill=`, else the profile's.
    pub fn refill_policy(&self) -> RefillPolicy {
        self.refill.unwrap_or(self.profile.default_refill())
    }
}

/// What is wrong with the command line. The word is quoted so the user sees what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// `virtio_mmio.device=` is not `<size>@<base>:<irq>`.
    BadVirtioMmioDevice(&'a str),
    /// More than MAX_DEVICES virtio-mmio devices.
    TooManyDevices(&'a str),
    /// An unknown `probe.` option.
    UnknownOption(&'a str),
    /// A `probe.` option with a bad value.
    BadValue(&'a str),
}

impl core::fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CmdlineError::BadVirtioMmioDevice(w) => {
                write!(f, "`{w}` is not virtio_mmio.device=<size>@<base>:<irq>")
            }
            CmdlineError::TooManyDevices(w) => {
                write!(
                    f,
                    "`{w}`: at most {MAX_DEVICES} virtio-mmio devices are supported"
                )
            }
            CmdlineError::UnknownOption(w) => write!(
                f,
                "unknown option `{w}` (known: probe.tsc_khz, probe.event_idx, probe.mrg_rxbuf, \
                 probe.exit_after_boot, probe.selftest, probe.stall_timeout, probe.on_stall, probe.msix, \
                 probe.rx_buf, probe.refill, probe.profile, probe.virtio_pci)"
            ),
            CmdlineError::BadValue(w) => write!(f, "bad value in `{w}`"),
        }
    }
}

/// Parse a command line.
pub fn parse(cmdline: &str) -> Result<Options, CmdlineError<'_>> {
    let mut options = Options::default();
    let mut device_count = 0;
    for word in cmdline.split_ascii_whitespace() {
        if let Some(spec) = word.strip_prefix("virtio_mmio.device=") {
            let device = parse_device(spec).ok_or(CmdlineError::BadVirtioMmioDevice(word))?;
            let slot = options
                .devices
                .get_mut(device_count)
                .ok_or(CmdlineError::TooManyDevices(word))?;
            *slot = Some(device);
            device_count += 1;
        } else if let Some(option) = word.strip_prefix("probe.") {
            let (name, value) = option.split_once('=').unwrap_or((option, ""));
            let bad = CmdlineError::BadValue(word);
            match name {
                "tsc_khz" => {
                    options.tsc_khz = Some(parse_u64(value).filter(|&k| k > 0).ok_or(bad)?)
                }
                "event_idx" => options.event_idx = parse_bool(value).ok_or(bad)?,
                "mrg_rxbuf" => options.mrg_rxbuf = parse_bool(value).ok_or(bad)?,
                "msix" => options.msix = parse_bool(value).ok_or(bad)?,
                "rx_buf" => {
                    let bytes = parse_u64(value)
                        .and_then(|b| usize::try_from(b).ok())
                        .filter(|b| (MIN_RX_BUF..=MAX_RX_BUF).contains(b))
                        .ok_or(bad)?;
                    options.rx_buf = Some(bytes);
                }
                "refill" => options.refill = Some(RefillPolicy::parse(value).ok_or(bad)?),
                "profile" => options.profile = Profile::parse(value).ok_or(bad)?,
                "virtio_pci" => options.virtio_pci = PciInterface::parse(value).ok_or(bad)?,
                "exit_after_boot" => options.exit_after_boot = parse_bool(value).ok_or(bad)?,
                "selftest" => {
                    options.selftest = Some(match value {
                        "panic" => SelfTest::Panic,
                        "exception" => SelfTest::Exception,
                        "timer" => SelfTest::Timer,
                        _ => return Err(bad),
                    })
                }
                "stall_timeout" => {
                    options.stall_timeout_us = parse_duration_us(value).ok_or(bad)?
                }
                "on_stall" => {
                    options.on_stall = match value {
                        "report" => OnStall::Report,
                        "recover" => OnStall::Recover,
                        _ => return Err(bad),
                    }
                }
                _ => return Err(CmdlineError::UnknownOption(word)),
            }
        }
    }
    Ok(options)
}

/// `<size>@<base>:<irq>[:<id>]`, size with an optional K/M/G suffix (Linux memparse).
fn parse_device(spec: &str) -> Option<VirtioMmioDevice> {
    let (size, rest) = spec.split_once('@')?;
    let (base, rest) = rest.split_once(':')?;
    let irq = rest.split(':').next()?;
    let device = VirtioMmioDevice {
        size: parse_size(size)?,
        base: parse_u64(base)?,
        irq: u32::try_from(parse_u64(irq)?).ok()?,
    };
    // The window must be non-empty and lie below 4 GiB (our identity map).
    let end = device.base.checked_add(device.size)?;
    (device.size > 0 && end <= 1 << 32).then_some(device)
}

/// A number with an optional K/M/G suffix.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    parse_u64(digits)?.checked_mul(1 << shift)
}

/// A duration in microseconds: `<n>ms`, `<n>s`, or a plain number of milliseconds.
fn parse_duration_us(text: &str) -> Option<u64> {
    let (digits, unit_us) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1_000)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1_000_000)
    } else {
        (text, 1_000)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit_us)
}

/// Decimal, or hexadecimal with a 0x prefix.
fn parse_u64(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u64::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None if !text.is_empty() => text.parse().ok(),
        None => None,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "on" | "yes" | "true" | "" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_microvm_device_and_options() {
        let options = parse(
            "console=ttyS0 probe.tsc_khz=2400000 probe.event_idx=0 virtio_mmio.device=512@0xfeb00e00:12",
        )
        .unwrap();
        let devices: Vec<_> = options.devices().copied().collect();
        assert_eq!(
            devices,
            [VirtioMmioDevice {
                base: 0xfeb0_0e00,
                size: 512,
                irq: 12
            }]
        );
        assert_eq!(options.tsc_khz, Some(2_400_000));
        assert!(!options.event_idx);
        assert!(options.mrg_rxbuf);
        assert!(options.msix);
        assert!(!parse("probe.msix=0").unwrap().msix);
        assert_eq!(options.virtio_pci, PciInterface::Auto);
        assert_eq!(
            parse("probe.virtio_pci=legacy").unwrap().virtio_pci,
            PciInterface::Legacy
        );
        assert_eq!(
            parse("probe.virtio_pci=modern").unwrap().virtio_pci,
            PciInterface::Modern
        );
        assert_eq!(
            parse("probe.virtio_pci=old").err(),
            Some(CmdlineError::BadValue("probe.virtio_pci=old"))
        );
    }

    #[test]
    fn parses_size_suffix_and_device_id() {
        let options = parse("virtio_mmio.device=4K@0xd0000000:5:3").unwrap();
        assert_eq!(
            options.devices[0],
            Some(VirtioMmioDevice {
                base: 0xd000_0000,
                size: 4096,
                irq: 5
            })
        );
    }

    #[test]
    fn parses_stall_options() {
        let options = parse("").unwrap();
        assert_eq!(options.stall_timeout_us, DEFAULT_STALL_TIMEOUT_US);
        assert_eq!(options.on_stall, OnStall::Report);
        let options = parse("probe.stall_timeout=250ms probe.on_stall=recover").unwrap();
        assert_eq!(options.stall_timeout_us, 250_000);
        assert_eq!(options.on_stall, OnStall::Recover);
        assert_eq!(
            parse("probe.stall_timeout=2s").unwrap().stall_timeout_us,
            2_000_000
        );
        assert_eq!(
            parse("probe.stall_timeout=700").unwrap().stall_timeout_us,
            700_000
        );
        assert_eq!(parse("probe.stall_timeout=0").unwrap().stall_timeout_us, 0);
    }

    #[test]
    fn parses_rx_ring_options() {
        let options = parse("").unwrap();
        assert_eq!(options.rx_buf, None);
        assert_eq!(options.profile, Profile::Modern);
        assert_eq!(options.refill_policy(), RefillPolicy::Eager);
        let options = parse("probe.rx_buf=256 probe.refill=trickle:2").unwrap();
        assert_eq!(options.rx_buf, Some(256));
        assert_eq!(options.refill_policy(), RefillPolicy::Trickle(2));
        // verify's race profile on QEMU.
        let options = parse("probe.rx_buf=128 probe.refill=trickle:1").unwrap();
        assert_eq!(options.rx_buf, Some(128));
        assert_eq!(options.refill_policy(), RefillPolicy::Trickle(1));
        let options = parse("probe.profile=linux-3.2").unwrap();
        assert_eq!(options.refill_policy(), RefillPolicy::Half);
        let options = parse("probe.profile=linux-3.2 probe.refill=low").unwrap();
        assert_eq!(options.refill_policy(), RefillPolicy::Low);
        for word in [
            "probe.rx_buf=63",
            "probe.rx_buf=2049",
            "probe.rx_buf=",
            "probe.refill=lazy",
            "probe.profile=linux-2.6",
        ] {
            assert!(
                matches!(parse(word), Err(CmdlineError::BadValue(_))),
                "{word}"
            );
        }
    }

    #[test]
    fn rejects_malformed_input() {
        assert!(matches!(
            parse("virtio_mmio.device=512"),
            Err(CmdlineError::BadVirtioMmioDevice(_))
        ));
        assert!(matches!(
            parse("virtio_mmio.device=x@0x1:1"),
            Err(CmdlineError::BadVirtioMmioDevice(_))
        ));
        assert!(matches!(
            parse("virtio_mmio.device=4G@0xfff00000:1"),
            Err(CmdlineError::BadVirtioMmioDevice(_))
        ));
        assert!(matches!(
            parse("probe.nonsense=1"),
            Err(CmdlineError::UnknownOption(_))
        ));
        assert!(matches!(
            parse("probe.tsc_khz=0"),
            Err(CmdlineError::BadValue(_))
        ));
        assert!(matches!(
            parse("probe.event_idx=maybe"),
            Err(CmdlineError::BadValue(_))
        ));
        for word in [
            "probe.stall_timeout=",
            "probe.stall_timeout=1h",
            "probe.stall_timeout=-1",
            "probe.on_stall=exit",
        ] {
            assert!(
                matches!(parse(word), Err(CmdlineError::BadValue(_))),
                "{word}"
            );
        }
        let five = "virtio_mmio.device=512@0x1000:1 ".repeat(5);
        assert!(matches!(parse(&five), Err(CmdlineError::TooManyDevices(_))));
    }
}
