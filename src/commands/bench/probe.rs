//! The probe guest as a benchmark subject: booted on vnetbed (`vnetbed run --net`), on QEMU
//! microvm (virtio-net-device) or on QEMU q35 (virtio-net-pci), its NIC on a testbed's tap,
//! its `@probe` agent lines read as they arrive.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;
use vnetbed::net::Testbed;
use vnetbed::soak::children::{Line, LineChild};
use vnetbed::soak::own_process_group;
use vnetbed::soak::parse::probe_line;

use super::BenchError;

/// The VMM a probe runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vmm {
    /// vnetbed's own virtio-net device, fenced model.
    Vnetbed,
    /// vnetbed's virtio-net device with its queues on rust-vmm's virtio-queue crate.
    VnetbedVirtioQueue,
    /// QEMU microvm's virtio-net-device.
    Qemu,
    /// QEMU q35's virtio-net-pci (modern, MSI-X; SeaBIOS boots the probe).
    QemuPci,
}

impl Vmm {
    /// Name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Vmm::Vnetbed => "vnetbed",
            Vmm::VnetbedVirtioQueue => "vnetbed (virtio-queue)",
            Vmm::Qemu => "QEMU microvm virtio-net-device",
            Vmm::QemuPci => "QEMU q35 virtio-net-pci",
        }
    }
}

/// The probe's DHCP binding, and how long it took.
#[derive(Debug, Clone)]
pub struct Bound {
    /// The guest's address, without prefix length.
    pub address: String,
    /// Process start -> the `bound` line read by the host.
    pub wall: Duration,
    /// The guest's own clock at binding (from its first instruction).
    pub guest: Duration,
}

/// A running probe guest; killed on drop.
pub struct ProbeGuest {
    child: LineChild,
    lines: Receiver<Line>,
    started: Instant,
    tail: VecDeque<String>,
    vmm: Vmm,
}

impl ProbeGuest {
    /// Boot `image` on `vmm`, its NIC on the testbed's first tap.
    pub fn start(vmm: Vmm, image: &Path, testbed: &Testbed) -> Result<ProbeGuest, BenchError> {
        let info = testbed.info();
        let tap = info.taps.first().cloned().unwrap_or_default();
        let mut cmd = match vmm {
            Vmm::Vnetbed | Vmm::VnetbedVirtioQueue => {
                let exe = std::env::current_exe().map_err(|e| BenchError::Io {
                    what: "locate the vnetbed binary".into(),
                    source: e,
                })?;
                let mut cmd = Command::new(exe);
                cmd.arg("run").arg("--kernel").arg(image).args([
                    "--mem",
                    "64",
                    "--serial",
                    "stdout",
                    "--cmdline",
                    "console=ttyS0",
                    "--net",
                    &format!("tap={tap},netns={}", info.netns),
                ]);
                if vmm == Vmm::VnetbedVirtioQueue {
                    cmd.args(["--notify-model", "virtio-queue"]);
                }
                cmd
            }
            Vmm::Qemu => vnetbed::qemu::microvm_in_netns(&info.netns, image, "", &tap),
            Vmm::QemuPci => vnetbed::qemu::pci_in_netns(
                &info.netns,
                vnetbed::qemu::PciMachine::Q35,
                vnetbed::qemu::PciInterface::Modern,
                image,
                "",
                &tap,
            ),
        };
        own_process_group(&mut cmd);
        let started = Instant::now();
        let (child, lines) = LineChild::spawn(vmm.name(), cmd).map_err(|e| BenchError::Io {
            what: format!("start the probe on {}", vmm.name()),
            source: e,
        })?;
        Ok(ProbeGuest {
            child,
            lines,
            started,
            tail: VecDeque::new(),
            vmm,
        })
    }

    /// Wait up to `limit` for an agent event matching `want`; returns it and when it was read.
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Result<(Value, Instant), BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    if self.tail.len() == 20 {
                        self.tail.pop_front();
                    }
                    self.tail.push_back(line.text.clone());
                    if let Some(v) = probe_line(&line.text) {
                        if want(&v) {
                            return Ok((v, line.at));
                        }
                    }
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure(what, "the VMM exited"));
                }
            }
            if vnetbed::soak::stop_signal().is_some() {
                return Err(BenchError::Interrupted);
            }
            if Instant::now() >= deadline {
                return Err(self.failure(what, &format!("not within {limit:?}")));
            }
        }
    }

    fn failure(&mut self, what: &str, why: &str) -> BenchError {
        let status = self
            .child
            .try_wait()
            .map_or("still running".to_string(), |s| s.to_string());
        BenchError::Guest {
            vmm: self.vmm.name(),
            detail: format!(
                "no {what}: {why} ({status}); console, last lines:\n{}",
                Vec::from(self.tail.clone()).join("\n")
            ),
        }
    }

    /// Wait for the DHCP binding and the guest's iperf3 server (in either order).
    pub fn wait_ready(&mut self, limit: Duration) -> Result<Bound, BenchError> {
        let is_bound = |e: &Value| e["event"] == "dhcp_state" && e["state"] == "bound";
        let is_listening = |e: &Value| e["event"] == "iperf3" && e["state"] == "listening";
        let mut listening = false;
        let (v, at) = loop {
            let (v, at) =
                self.wait_for("DHCP binding", limit, |e| is_bound(e) || is_listening(e))?;
            if !is_listening(&v) {
                break (v, at);
            }
            listening = true;
        };
        if !listening {
            self.wait_for("iperf3 server", limit, is_listening)?;
        }
        let address = v["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .ok_or_else(|| BenchError::Guest {
                vmm: self.vmm.name(),
                detail: format!("a bound event without an address: {v}"),
            })?
            .to_string();
        Ok(Bound {
            address,
            wall: at.saturating_duration_since(self.started),
            guest: Duration::from_micros(v["t_us"].as_u64().unwrap_or(0)),
        })
    }

    /// Stop the guest (SIGTERM, then SIGKILL).
    pub fn stop(mut self) {
        self.child.stop(libc::SIGTERM, Duration::from_secs(3));
    }
}
