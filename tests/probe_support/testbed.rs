//! A minimal test network for the probe guest: a network namespace with a bridge
//! (198.18.0.1/24), a tap for the VMM and dnsmasq serving DHCP on the bridge. Everything
//! is torn down on drop (also when the test panics); namespaces left behind by a killed
//! test run are removed by the next run (their names carry the owning pid).
//!
//! This stands in for `vnetbed net up` until that lands in main.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const PREFIX: &str = "vnbprobe-";
/// The host side of the test subnet.
pub const HOST_ADDRESS: &str = "198.18.0.1";
/// The tap the VMM attaches to, inside the namespace.
pub const TAP: &str = "tap0";

/// A running testbed.
pub struct Testbed {
    /// Namespace name.
    pub netns: String,
    dnsmasq: Child,
    /// dnsmasq's log (DHCP transactions).
    pub dnsmasq_log: PathBuf,
    lease_file: PathBuf,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed: {status}");
}

/// Remove namespaces of earlier test processes that no longer exist.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl Testbed {
    /// Create the namespace, bridge, tap and start dnsmasq with `dhcp_options` added
    /// (e.g. `--dhcp-option=option:T1,4`). Leases are one minute, as OpenStack's were
    /// (dnsmasq raises them to its 120 s floor); `--no-ping` so that a fresh address is
    /// offered at once instead of after dnsmasq's 3 s ICMP probe.
    pub fn up(dhcp_options: &[&str]) -> Testbed {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        remove_stale();
        let netns = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &netns]);
        let exec = |args: &[&str]| {
            let mut full = vec!["netns", "exec", &netns, "ip"];
            full.extend_from_slice(args);
            ip(&full);
        };
        exec(&["link", "set", "lo", "up"]);
        exec(&["link", "add", "br0", "type", "bridge"]);
        exec(&["addr", "add", &format!("{HOST_ADDRESS}/24"), "dev", "br0"]);
        exec(&["link", "set", "br0", "up"]);
        exec(&["tuntap", "add", "dev", TAP, "mode", "tap"]);
        exec(&["link", "set", TAP, "master", "br0"]);
        exec(&["link", "set", TAP, "up"]);
        let dir = std::env::temp_dir();
        let dnsmasq_log = dir.join(format!("{netns}.dnsmasq.log"));
        let lease_file = dir.join(format!("{netns}.leases"));
        let log = std::fs::File::create(&dnsmasq_log).expect("create dnsmasq log");
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            &netns,
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
        ]);
        command.args([
            "--interface=br0",
            "--bind-interfaces",
            "--port=0",
            "--log-dhcp",
            "--no-ping",
        ]);
        command.arg("--dhcp-range=198.18.0.100,198.18.0.200,1m");
        command.arg(format!("--dhcp-leasefile={}", lease_file.display()));
        command.args(dhcp_options);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let dnsmasq = command.spawn().expect("start dnsmasq");
        let testbed = Testbed {
            netns,
            dnsmasq,
            dnsmasq_log,
            lease_file,
        };
        // dnsmasq binds within milliseconds; wait until it logs that it is serving.
        for _ in 0..100 {
            if testbed.dnsmasq_log_text().contains("DHCP, IP range") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        testbed
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns, program]);
        command
    }

    /// dnsmasq's log so far.
    pub fn dnsmasq_log_text(&self) -> String {
        std::fs::read_to_string(&self.dnsmasq_log).unwrap_or_default()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.dnsmasq.kill();
        let _ = self.dnsmasq.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::fs::remove_file(&self.lease_file);
        let _ = std::fs::remove_file(&self.dnsmasq_log);
    }
}
