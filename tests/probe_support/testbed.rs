//! The probe guest's test network: vnetbed's own testbed (`vnetbed::net::Testbed`: a network
//! namespace with a bridge at 198.18.0.1/24, a tap and a supervised dnsmasq), with a name
//! unique to this test process. Dropping it tears everything down, also when a test panics.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use vnetbed::net::{Testbed as NetTestbed, TestbedConfig};

/// The host side of the test subnet.
pub const HOST_ADDRESS: &str = "198.18.0.1";

/// A running testbed.
pub struct Testbed {
    inner: NetTestbed,
    /// Namespace name (`vnetbed-<name>`).
    pub netns: String,
    /// The tap the VMM attaches to, inside the namespace.
    pub tap: String,
    /// The bridge dnsmasq serves.
    pub bridge: String,
}

impl Testbed {
    /// Bring up a testbed whose dnsmasq sends T1/T2 of `schedule` (seconds), or the
    /// one-minute defaults (30/52) with `None`.
    pub fn up(schedule: Option<(u64, u64)>) -> Testbed {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "p{:x}{}",
            std::process::id() & 0xfffff,
            COUNTER.fetch_add(1, Ordering::Relaxed) % 10
        );
        let inner = NetTestbed::up(TestbedConfig {
            name,
            renew_after: schedule.map(|s| Duration::from_secs(s.0)),
            rebind_after: schedule.map(|s| Duration::from_secs(s.1)),
            taps: 1,
            ..TestbedConfig::default()
        })
        .expect("bring up the testbed");
        let info = inner.info().clone();
        Testbed {
            netns: info.netns,
            tap: info.taps.first().cloned().expect("one tap"),
            bridge: info.bridge,
            inner,
        }
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns, program]);
        command
    }

    /// dnsmasq's log so far.
    pub fn dnsmasq_log_text(&self) -> String {
        self.inner.dnsmasq_output().join("\n")
    }
}
