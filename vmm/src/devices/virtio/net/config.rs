//! Configuration of one virtio-net device: the `--net` option and the device options
//! (`--notify-model`, `--race-window`, `--stall-timeout`, `--on-stall`).

use std::str::FromStr;
use std::time::Duration;

use super::notify_model::NotifyModel;
use crate::devices::virtio::queue::MAX_QUEUE_SIZE;

/// The default queue size of rx and tx.
pub const DEFAULT_QUEUE_SIZE: u16 = 256;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// vnetbed's default guest MAC (locally administered, unicast).
    pub const DEFAULT: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = NetConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NetConfigError::BadMac(s.to_string());
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if mac[0] & 1 != 0 {
            return Err(NetConfigError::MulticastMac(s.to_string()));
        }
        Ok(MacAddr(mac))
    }
}

/// A malformed `--net` or device option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetConfigError {
    /// `--net` needs `tap=NAME`.
    #[error("--net needs tap=NAME (e.g. --net tap=vnb0,mac=52:54:00:12:34:56,queue-size=256,netns=testbed)")]
    MissingTap,
    /// The tap name is empty or longer than 15 bytes.
    #[error("tap name `{0}` must be 1 to 15 characters without `/` or spaces")]
    BadTapName(String),
    /// Not a MAC address.
    #[error("`{0}` is not a MAC address: use six hex pairs like 52:54:00:12:34:56")]
    BadMac(String),
    /// A multicast MAC.
    #[error("MAC `{0}` is a multicast address: the first byte must be even")]
    MulticastMac(String),
    /// Bad queue size.
    #[error("queue-size `{0}` must be a power of two from 2 to {MAX_QUEUE_SIZE}")]
    BadQueueSize(String),
    /// Bad namespace name.
    #[error("netns `{0}` must be a plain name (it is opened as /var/run/netns/NAME)")]
    BadNetns(String),
    /// Unknown transport.
    #[error("--net transport `{0}` is unknown: use mmio (the default) or pci")]
    BadTransport(String),
    /// `legacy=` is neither on nor off.
    #[error("--net legacy `{0}` must be on or off")]
    BadLegacy(String),
    /// `legacy=on` without `transport=pci`.
    #[error("--net legacy=on needs transport=pci (the legacy interface is a virtio-pci I/O BAR)")]
    LegacyNeedsPci,
    /// Unknown key.
    #[error("unknown --net key `{0}`: use tap, mac, queue-size, netns, transport or legacy")]
    UnknownKey(String),
    /// A key without `=`.
    #[error("--net item `{0}` must be KEY=VALUE")]
    NotKeyValue(String),
    /// Unknown `--on-stall` value.
    #[error("unknown --on-stall `{0}`: use report, recover or exit")]
    BadOnStall(String),
}

/// How the NIC reaches the guest (`--net ...,transport=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetTransport {
    /// virtio-mmio version 2: one interrupt line for every queue (the default).
    #[default]
    Mmio,
    /// A modern virtio-pci function with an MSI-X vector per queue.
    Pci,
}

impl std::fmt::Display for NetTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetTransport::Mmio => "mmio",
            NetTransport::Pci => "pci",
        })
    }
}

impl FromStr for NetTransport {
    type Err = NetConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mmio" => Ok(NetTransport::Mmio),
            "pci" => Ok(NetTransport::Pci),
            other => Err(NetConfigError::BadTransport(other.to_string())),
        }
    }
}

/// `--net tap=NAME[,mac=MAC][,queue-size=N][,netns=NS][,transport=mmio|pci][,legacy=on|off]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The tap device's name.
    pub tap: String,
    /// The guest's MAC address.
    pub mac: MacAddr,
    /// Size of the rx and tx queues (QueueNumMax).
    pub queue_size: u16,
    /// The network namespace the tap lives in (`None`: the VMM's own).
    pub netns: Option<String>,
    /// virtio-mmio or virtio-pci.
    pub transport: NetTransport,
    /// On PCI: a transitional function with the legacy I/O BAR too (`legacy=on`).
    pub legacy: bool,
}

fn plain_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.contains(['/', ' ', '\0']) && s != "." && s != ".."
}

impl FromStr for NetConfig {
    type Err = NetConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut tap, mut mac, mut queue_size, mut netns) =
            (None, MacAddr::DEFAULT, DEFAULT_QUEUE_SIZE, None);
        let mut transport = NetTransport::default();
        let mut legacy = false;
        for item in s.split(',').filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| NetConfigError::NotKeyValue(item.to_string()))?;
            match k {
                "tap" => {
                    if !plain_name(v, 15) {
                        return Err(NetConfigError::BadTapName(v.to_string()));
                    }
                    tap = Some(v.to_string());
                }
                "mac" => mac = v.parse()?,
                "queue-size" => {
                    queue_size = v
                        .parse::<u16>()
                        .ok()
                        .filter(|n| *n >= 2 && *n <= MAX_QUEUE_SIZE && n.is_power_of_two())
                        .ok_or_else(|| NetConfigError::BadQueueSize(v.to_string()))?
                }
                "netns" => {
                    if !plain_name(v, 255) {
                        return Err(NetConfigError::BadNetns(v.to_string()));
                    }
                    netns = Some(v.to_string());
                }
                "transport" => transport = v.parse()?,
                "legacy" => {
                    legacy = match v {
                        "on" => true,
                        "off" => false,
                        _ => return Err(NetConfigError::BadLegacy(v.to_string())),
                    }
                }
                other => return Err(NetConfigError::UnknownKey(other.to_string())),
            }
        }
        if legacy && transport != NetTransport::Pci {
            return Err(NetConfigError::LegacyNeedsPci);
        }
        Ok(NetConfig {
            tap: tap.ok_or(NetConfigError::MissingTap)?,
            mac,
            queue_size,
            netns,
            transport,
            legacy,
        })
    }
}

/// What the watchdog does about a stall (`--on-stall`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStall {
    /// Emit the event and leave the stall, so that its consequences unfold.
    #[default]
    Report,
    /// Deliver the lost notification, count it, go on.
    Recover,
    /// Ask the VMM to end with its stall exit status.
    Exit,
}

impl FromStr for OnStall {
    type Err = NetConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "report" => Ok(OnStall::Report),
            "recover" => Ok(OnStall::Recover),
            "exit" => Ok(OnStall::Exit),
            other => Err(NetConfigError::BadOnStall(other.to_string())),
        }
    }
}

impl std::fmt::Display for OnStall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnStall::Report => "report",
            OnStall::Recover => "recover",
            OnStall::Exit => "exit",
        })
    }
}

/// The default race window of the buggy models, chosen by measurement (BENCHMARKS.md, "race
/// window"): with the probe guest and UDP 200 Mbit/s into it, 2, 5 and 10 us gave no stall in
/// 5 s of idle pinging and a first stall 0.1-1.7 s after the load started (9 of 9 runs, all rx
/// lost interrupts); 20 us already stalled during the boot-time DHCP exchange, before any
/// load. 5 us is the middle of the range that stalls under load only.
pub const DEFAULT_RACE_WINDOW: Duration = Duration::from_micros(5);
/// The default stall timeout.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Device behaviour options shared by all virtio-net devices of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetOptions {
    /// `--notify-model`.
    pub notify_model: NotifyModel,
    /// `--race-window` (ignored by `fenced`).
    pub race_window: Duration,
    /// `--race-queues`: which queues' notification stores get the race window.
    pub race_queues: super::notify_model::RaceQueues,
    /// `--stall-timeout`.
    pub stall_timeout: Duration,
    /// `--on-stall`.
    pub on_stall: OnStall,
    /// How often the watchdog looks (about 100 ms).
    pub watchdog_period: Duration,
    /// How often per-queue counters are emitted (1 s).
    pub counters_period: Duration,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self {
            notify_model: NotifyModel::Fenced,
            race_window: DEFAULT_RACE_WINDOW,
            race_queues: super::notify_model::RaceQueues::Rx,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            on_stall: OnStall::Report,
            watchdog_period: Duration::from_millis(100),
            counters_period: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_on_needs_pci() {
        let c: NetConfig = "tap=t,transport=pci,legacy=on".parse().unwrap();
        assert!(c.legacy && c.transport == NetTransport::Pci);
        let c: NetConfig = "tap=t,transport=pci,legacy=off".parse().unwrap();
        assert!(!c.legacy);
        assert!(!"tap=t,transport=pci".parse::<NetConfig>().unwrap().legacy);
        assert_eq!(
            "tap=t,legacy=on".parse::<NetConfig>(),
            Err(NetConfigError::LegacyNeedsPci)
        );
        assert_eq!(
            "tap=t,transport=pci,legacy=1".parse::<NetConfig>(),
            Err(NetConfigError::BadLegacy("1".into()))
        );
    }

    #[test]
    fn parses_a_full_net_option() {
        let c: NetConfig = "tap=vnb0,mac=52:54:00:aa:bb:cc,queue-size=64,netns=tb1"
            .parse()
            .unwrap();
        assert_eq!(c.tap, "vnb0");
        assert_eq!(c.mac.to_string(), "52:54:00:aa:bb:cc");
        assert_eq!(c.queue_size, 64);
        assert_eq!(c.netns.as_deref(), Some("tb1"));
        let d: NetConfig = "tap=t".parse().unwrap();
        assert_eq!(
            (d.mac, d.queue_size, d.netns),
            (MacAddr::DEFAULT, 256, None)
        );
    }

    #[test]
    fn rejects_bad_net_options_with_clear_errors() {
        let err = |s: &str| s.parse::<NetConfig>().unwrap_err();
        assert_eq!(err("mac=52:54:00:aa:bb:cc"), NetConfigError::MissingTap);
        assert!(matches!(
            err("tap=a,queue-size=100"),
            NetConfigError::BadQueueSize(_)
        ));
        assert!(matches!(
            err("tap=a,queue-size=512"),
            NetConfigError::BadQueueSize(_)
        ));
        assert!(matches!(
            err("tap=a,mac=01:00:00:00:00:00"),
            NetConfigError::MulticastMac(_)
        ));
        assert!(matches!(err("tap=a,mac=zz"), NetConfigError::BadMac(_)));
        assert!(matches!(
            err("tap=averyverylongname0"),
            NetConfigError::BadTapName(_)
        ));
        assert!(matches!(
            err("tap=a,netns=../x"),
            NetConfigError::BadNetns(_)
        ));
        assert!(matches!(
            err("tap=a,speed=10"),
            NetConfigError::UnknownKey(_)
        ));
        assert!(matches!(err("tap"), NetConfigError::NotKeyValue(_)));
        assert!(err("tap=a,speed=10").to_string().contains("queue-size"));
        assert_eq!("exit".parse::<OnStall>().unwrap(), OnStall::Exit);
        assert!("panic".parse::<OnStall>().is_err());
    }
}
