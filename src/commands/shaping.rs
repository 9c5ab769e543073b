//! How a run shapes its exposure to the notification races: the load's pattern and rate,
//! the queue size and the guest's options. `vnetbed soak` runs plain by default (steady UDP
//! into the VMM's default rings, as in 2012); `vnetbed verify` and `vnetbed bench
//! sensitivity` run the `race` profile, which gives the races the most chances while every
//! mutant of the fix is still caught (BENCHMARKS.md, "Exposure shaping").
//!
//! Every option the user gives wins over the profile.

use clap::ValueEnum;
use vnetbed::record::Shaping;
use vnetbed::soak::load::{LoadKind, DEFAULT_BURST, MAX_BURST};
use vnetbed::sut::SutSpec;

use super::args::{self, Rate};
use super::soak::CommonArgs;

/// A set of defaults for the load and the rings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ShapingProfile {
    /// Steady UDP at 200 Mbit/s into the VMM's default rings (vnetbed 256 entries, QEMU
    /// 1024): the 2012 incident's kind of load. Few lost-kick chances on an idle host.
    #[default]
    Plain,
    /// UDP at 120 Mbit/s in bursts of one and a half rings into 4-entry rings: every burst
    /// drains the rx ring and the gap after it lets the guest refill, so the ring runs dry
    /// and is re-armed about two thousand times a second, whatever else the host is doing.
    /// QEMU's ring cannot be shorter than 256 entries; there the probe guest runs in its
    /// merged-buffer mode with a trickling refill instead. A vhost-user backend (DPDK's
    /// testpmd) keeps its 256-entry rings and takes bursts of 6: it drops what a full ring
    /// cannot take instead of leaving it in the tap, so a burst longer than a short ring
    /// would drop frames, DHCP answers among them. The rate stays well below what the guest
    /// takes in, even on a loaded host, so that no frame, and no DHCP answer, is dropped for
    /// want of room: the races get more chances, the system under test no unfair test.
    Race,
}

/// The `race` profile's rate.
const RACE_RATE: &str = "120M";
/// The `race` profile's queue size for vnetbed's device.
const RACE_QUEUE_SIZE: u16 = 4;
/// The `race` profile's guest options where the ring cannot be made short (QEMU: 256
/// entries at least): the probe's merged-buffer mode (128-byte rx buffers, so a full-size
/// frame takes 12) with a refill one buffer at a time, which keeps QEMU's ring short of
/// buffers for a frame while frames arrive: QEMU's f937309 revert stalls within seconds
/// (with `--pin-vcpu`), after about 900 such waits (BENCHMARKS.md, "QEMU's 2024 lost kick").
const RACE_LONG_RING_GUEST: &str = "probe.rx_buf=128 probe.refill=trickle:1";
/// The `race` profile's burst where the rings keep their length (a vhost-user backend): the
/// burst of a 4-entry ring's profile, each one interrupt and one NAPI round in the guest.
const RACE_BURST_LONG_RING_DROPPING: u32 = 6;
/// The plain profile's rate.
const PLAIN_RATE: &str = "200M";

impl ShapingProfile {
    /// The name in help and records.
    pub fn name(self) -> &'static str {
        match self {
            ShapingProfile::Plain => "plain",
            ShapingProfile::Race => "race",
        }
    }

    fn load(self) -> LoadKind {
        match self {
            ShapingProfile::Plain => LoadKind::Udp,
            ShapingProfile::Race => LoadKind::UdpBurst,
        }
    }

    fn rate(self) -> &'static str {
        match self {
            ShapingProfile::Plain => PLAIN_RATE,
            ShapingProfile::Race => RACE_RATE,
        }
    }

    /// Datagrams per burst for `sut` with a ring of `queue_size`: when racing, one and a
    /// half rings, so that each burst runs the ring dry; a vhost-user backend at its
    /// default ring, bursts of [`RACE_BURST_LONG_RING_DROPPING`].
    fn burst(self, sut: &SutSpec, queue_size: Option<u16>) -> u32 {
        match (self, queue_size) {
            (ShapingProfile::Race, Some(q)) => (u32::from(q) * 3 / 2).clamp(1, MAX_BURST),
            (ShapingProfile::Race, None) if sut.is_vhost_user() => RACE_BURST_LONG_RING_DROPPING,
            _ => DEFAULT_BURST,
        }
    }

    /// The queue size for `sut`: the VMM's default when plain; when racing, 4 entries, or
    /// the smallest the VMM takes if that is larger (QEMU: 256); a vhost-user backend
    /// keeps the default (256): it would drop the frames a burst brings beyond a short
    /// ring (with 4 entries, DPDK's testpmd dropped half of UDP 120M here, DHCP answers
    /// among them: 3 runs in 5 failed a renewal; BENCHMARKS.md).
    fn queue_size(self, sut: &SutSpec) -> Option<u16> {
        match self {
            ShapingProfile::Plain => None,
            ShapingProfile::Race if sut.is_vhost_user() => None,
            ShapingProfile::Race => (1..16)
                .map(|shift| 1u16 << shift)
                .find(|&n| n >= RACE_QUEUE_SIZE && sut.check_queue_size(n).is_ok()),
        }
    }

    /// The probe's options for `sut` when racing: none where the ring can be made short
    /// (a 4-entry ring cannot hold a frame of 256-byte buffers), the merged-buffer mode
    /// where it cannot.
    fn guest_cmdline(self, sut: &SutSpec, guest: super::soak::Guest) -> Option<String> {
        let long_ring = self.queue_size(sut).is_some_and(|q| q > RACE_QUEUE_SIZE);
        (self == ShapingProfile::Race && guest == super::soak::Guest::Probe && long_ring)
            .then(|| RACE_LONG_RING_GUEST.to_string())
    }
}

impl CommonArgs {
    /// The load: `--load`, or the profile's.
    pub fn load(&self) -> LoadKind {
        self.load.unwrap_or(self.profile.load())
    }

    /// The rate: `--rate`, or the profile's.
    pub fn rate(&self) -> Rate {
        match &self.rate {
            Some(r) => r.clone(),
            None => args::rate(self.profile.rate()).unwrap_or(Rate {
                text: PLAIN_RATE.into(),
                bps: 200e6,
            }),
        }
    }

    /// Queue size, bursts and guest options for a run of `sut`.
    pub fn shaping(&self, sut: &SutSpec) -> Shaping {
        let queue_size = self.queue_size.or_else(|| self.profile.queue_size(sut));
        Shaping {
            queue_size,
            burst: (self.load() == LoadKind::UdpBurst)
                .then(|| self.burst.unwrap_or(self.profile.burst(sut, queue_size))),
            guest_cmdline: match self.guest_cmdline.as_deref().map(str::trim) {
                Some("") => None,
                Some(words) => Some(words.to_string()),
                None => self.profile.guest_cmdline(sut, self.guest),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn common(args: &[&str], profile: ShapingProfile) -> CommonArgs {
        let mut argv = vec!["vnetbed"];
        argv.extend_from_slice(args);
        let mut c = Cli::parse_from(argv).common;
        c.profile = profile;
        c
    }

    #[test]
    fn plain_keeps_the_vmms_defaults() {
        let c = common(&[], ShapingProfile::Plain);
        let vnetbed: SutSpec = "vnetbed".parse().unwrap();
        assert_eq!(c.load(), LoadKind::Udp);
        assert_eq!(c.rate().text, "200M");
        assert!(c.shaping(&vnetbed).is_default());
    }

    #[test]
    fn race_shortens_the_rings_each_vmm_allows_and_loads_in_bursts() {
        let c = common(&[], ShapingProfile::Race);
        let vnetbed: SutSpec = "vnetbed:unfenced".parse().unwrap();
        let qemu: SutSpec = "qemu".parse().unwrap();
        assert_eq!(c.load(), LoadKind::UdpBurst);
        assert_eq!(c.rate().text, "120M");
        let s = c.shaping(&vnetbed);
        assert_eq!((s.queue_size, s.burst), (Some(4), Some(6)));
        let q = c.shaping(&qemu);
        assert_eq!((q.queue_size, q.burst), (Some(256), Some(384)));
        // QEMU's ring cannot be short: the probe's merged-buffer mode runs it dry instead;
        // vnetbed's 4-entry ring needs no guest option (and could not hold such a frame).
        assert_eq!(q.guest_cmdline.as_deref(), Some(RACE_LONG_RING_GUEST));
        assert_eq!(s.guest_cmdline, None);
        let given = common(
            &["--guest-cmdline", "probe.refill=half"],
            ShapingProfile::Race,
        );
        assert_eq!(
            given.shaping(&qemu).guest_cmdline.as_deref(),
            Some("probe.refill=half")
        );
        let linux = common(&["--guest", "linux"], ShapingProfile::Race);
        assert_eq!(linux.shaping(&qemu).guest_cmdline, None);
    }

    #[test]
    fn race_keeps_a_vhost_user_backends_rings_and_bursts_short() {
        let c = common(&[], ShapingProfile::Race);
        for spec in ["dpdk", "vhost-user=/run/backend.sock"] {
            let sut: SutSpec = spec.parse().unwrap();
            let s = c.shaping(&sut);
            // The backend drops what a short ring cannot take: its rings stay at the
            // VMM's default, and each burst is short enough for them.
            assert_eq!((s.queue_size, s.burst), (None, Some(6)), "{spec}");
            assert_eq!(s.guest_cmdline, None, "{spec}");
        }
        let given = common(&["--queue-size", "16"], ShapingProfile::Race);
        let dpdk: SutSpec = "dpdk".parse().unwrap();
        let s = given.shaping(&dpdk);
        assert_eq!((s.queue_size, s.burst), (Some(16), Some(24)));
    }

    #[test]
    fn what_the_user_gives_wins_over_the_profile() {
        let c = common(
            &["--load", "udp", "--rate", "300M", "--queue-size", "64"],
            ShapingProfile::Race,
        );
        let vnetbed: SutSpec = "vnetbed".parse().unwrap();
        assert_eq!(c.load(), LoadKind::Udp);
        assert_eq!(c.rate().text, "300M");
        let s = c.shaping(&vnetbed);
        assert_eq!((s.queue_size, s.burst), (Some(64), None));
        let b = common(
            &["--burst", "8", "--load", "udp-burst"],
            ShapingProfile::Plain,
        );
        assert_eq!(b.shaping(&vnetbed).burst, Some(8));
    }
}
