//! `--vhost-user SOCKET[,mac=MAC][,queue-size=N][,mode=relay|direct][,reconnect=SECS]`: a
//! virtio-net device whose datapath is a vhost-user backend listening on SOCKET.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::devices::virtio::net::MacAddr;

/// Where the guest's kicks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The guest's kicks and the backend's calls pass through vnetbed, which counts them and
    /// judges lost kicks and lost interrupts (the default).
    Relay,
    /// The guest's kicks go from KVM's ioeventfd straight to the backend: vnetbed neither
    /// sees nor counts them and cannot judge a lost kick. The backend's calls still pass
    /// through vnetbed, because virtio-mmio's InterruptStatus register must be set before
    /// the interrupt is raised (an irqfd alone would interrupt with InterruptStatus 0).
    Direct,
}

impl Mode {
    /// `relay` or `direct`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Relay => "relay",
            Mode::Direct => "direct",
        }
    }
}

/// A parsed `--vhost-user` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhostUserConfig {
    /// The backend's listening socket.
    pub socket: PathBuf,
    /// The guest's MAC (vnetbed's device model owns the configuration space).
    pub mac: MacAddr,
    /// The largest queue size offered to the guest.
    pub queue_size: u16,
    /// Relay (default) or direct kicks.
    pub mode: Mode,
    /// How long to try to reconnect to a backend that closed its socket; `None`: the VM
    /// ends with status 14 at once.
    pub reconnect: Option<Duration>,
}

/// The longest `reconnect=SECS`.
pub const MAX_RECONNECT_SECS: u64 = 3600;

/// Why a `--vhost-user` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VhostUserConfigError {
    /// No socket path.
    #[error("--vhost-user needs the backend's socket path first: --vhost-user /run/backend.sock[,mac=MAC][,queue-size=N][,mode=relay|direct][,reconnect=SECS]")]
    NoSocket,
    /// An option is unknown or has a bad value.
    #[error("--vhost-user option `{0}`: the options are mac=MAC, queue-size=N (a power of two, 2 to 256), mode=relay|direct and reconnect=SECS (whole seconds, 1 to 3600)")]
    BadOption(String),
}

impl FromStr for VhostUserConfig {
    type Err = VhostUserConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(',');
        let socket = match parts.next() {
            Some(p) if !p.is_empty() && !p.contains('=') => PathBuf::from(p),
            _ => return Err(VhostUserConfigError::NoSocket),
        };
        let mut config = VhostUserConfig {
            socket,
            mac: MacAddr::DEFAULT,
            queue_size: 256,
            mode: Mode::Relay,
            reconnect: None,
        };
        for option in parts {
            let bad = || VhostUserConfigError::BadOption(option.to_string());
            let (key, value) = option.split_once('=').ok_or_else(bad)?;
            match key {
                "mac" => config.mac = value.parse().map_err(|_| bad())?,
                "queue-size" => {
                    let n: u16 = value.parse().map_err(|_| bad())?;
                    if !(2..=256).contains(&n) || !n.is_power_of_two() {
                        return Err(bad());
                    }
                    config.queue_size = n;
                }
                "mode" => {
                    config.mode = match value {
                        "relay" => Mode::Relay,
                        "direct" => Mode::Direct,
                        _ => return Err(bad()),
                    }
                }
                "reconnect" => {
                    let secs: u64 = value.parse().map_err(|_| bad())?;
                    if !(1..=MAX_RECONNECT_SECS).contains(&secs) {
                        return Err(bad());
                    }
                    config.reconnect = Some(Duration::from_secs(secs));
                }
                _ => return Err(bad()),
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_socket_and_options() {
        let c: VhostUserConfig = "/run/b.sock".parse().unwrap();
        assert_eq!(c.socket, PathBuf::from("/run/b.sock"));
        assert_eq!((c.queue_size, c.mode), (256, Mode::Relay));
        let c: VhostUserConfig = "/s,mac=52:54:00:00:00:01,queue-size=64,mode=direct"
            .parse()
            .unwrap();
        assert_eq!(c.mac.to_string(), "52:54:00:00:00:01");
        assert_eq!((c.queue_size, c.mode), (64, Mode::Direct));
        assert_eq!(c.reconnect, None);
        let c: VhostUserConfig = "/s,reconnect=10".parse().unwrap();
        assert_eq!(c.reconnect, Some(Duration::from_secs(10)));
    }

    #[test]
    fn refuses_bad_values_with_the_option_named() {
        assert_eq!(
            "".parse::<VhostUserConfig>(),
            Err(VhostUserConfigError::NoSocket)
        );
        assert_eq!(
            "mac=52:54:00:00:00:01".parse::<VhostUserConfig>(),
            Err(VhostUserConfigError::NoSocket)
        );
        for bad in [
            "/s,mode=fast",
            "/s,queue-size=3",
            "/s,queue-size=512",
            "/s,x=1",
            "/s,mac=1",
            "/s,reconnect=0",
            "/s,reconnect=1.5",
            "/s,reconnect=3601",
        ] {
            let e = bad.parse::<VhostUserConfig>().unwrap_err().to_string();
            assert!(e.contains(bad.split(',').nth(1).unwrap()), "{bad}: {e}");
        }
    }
}
