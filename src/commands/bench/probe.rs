//! The probe guest as a benchmark subject: booted on any system under test (`--sut`:
//! vnetbed's VMM with a notify model, or a QEMU build on q35, pc or microvm), its NIC on a
//! testbed's tap, its `@probe` agent lines read as they arrive.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;
use vmm::devices::virtio::net::{NetTransport, NotifyModel};
use vnetbed::net::Testbed;
use vnetbed::soak::children::{Line, LineChild};
use vnetbed::soak::own_process_group;
use vnetbed::soak::parse::probe_line;
use vnetbed::sut::SutSpec;

use super::BenchError;

/// The name of a system under test in the benchmark's tables: `vnetbed`,
/// `vnetbed (virtio-queue)`, `QEMU q35 virtio-net-pci`, `QEMU pc virtio-net-pci legacy
/// (/opt/q/bin/qemu-system-x86_64)`.
pub fn setup_name(sut: &SutSpec) -> String {
    match sut {
        SutSpec::Vnetbed {
            model: NotifyModel::Fenced,
            transport: NetTransport::Mmio,
            ..
        } => "vnetbed".into(),
        SutSpec::Vnetbed {
            model,
            transport: NetTransport::Mmio,
            ..
        } => format!("vnetbed ({model})"),
        SutSpec::Vnetbed {
            model,
            transport,
            legacy,
        } => {
            let legacy = if *legacy { " legacy" } else { "" };
            match model {
                NotifyModel::Fenced => format!("vnetbed {transport}{legacy}"),
                _ => format!("vnetbed {transport}{legacy} ({model})"),
            }
        }
        SutSpec::Dpdk { binary: None, .. } => "vnetbed + DPDK vhost-user (dpdk-testpmd)".into(),
        SutSpec::Dpdk {
            binary: Some(path), ..
        } => {
            format!("vnetbed + DPDK vhost-user ({})", path.display())
        }
        SutSpec::VhostUser { socket, .. } => format!("vnetbed + vhost-user ({})", socket.display()),
        SutSpec::Qemu(q) => {
            let mut name = format!("QEMU {} {}", q.machine.name(), q.device.name());
            match q.modern {
                Some(false) => name.push_str(" legacy"),
                Some(true) => name.push_str(" modern-only"),
                None => {}
            }
            if let Some(binary) = &q.binary {
                name.push_str(&format!(" ({})", binary.display()));
            }
            if !q.extra.is_empty() {
                name.push_str(&format!(" [{}]", q.extra.join(" ")));
            }
            name
        }
    }
}

/// `vnetbed run` booting `image` with 64 MiB, the console on stdout, and `nic`.
fn vnetbed_run(image: &Path, nic: &[&str], words: &str) -> Result<Command, BenchError> {
    let mut cmd = vnetbed::self_command().map_err(|e| BenchError::Io {
        what: "locate the vnetbed binary".into(),
        source: e,
    })?;
    cmd.arg("run").arg("--kernel").arg(image).args([
        "--mem",
        "64",
        "--serial",
        "stdout",
        "--cmdline",
        format!("console=ttyS0 {words}").trim_end(),
    ]);
    cmd.args(nic);
    Ok(cmd)
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
    name: String,
    /// The `dpdk` system under test's testpmd, stopped after the guest (drop order).
    _backend: Option<vnetbed::dpdk::Testpmd>,
}

impl ProbeGuest {
    /// Boot `image` on `sut`, its NIC on the testbed's first tap; `extra` words go on the
    /// probe's command line after those the system under test needs
    /// ([`SutSpec::guest_words`]), so they win (`probe.virtio_pci=modern` on a
    /// transitional function drives its modern interface).
    pub fn start(
        sut: &SutSpec,
        image: &Path,
        testbed: &Testbed,
        extra: Option<&str>,
    ) -> Result<ProbeGuest, BenchError> {
        let info = testbed.info();
        let tap = info.taps.first().cloned().unwrap_or_default();
        let name = setup_name(sut);
        let words = [sut.guest_words(), extra]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let guest_err = |detail: String| BenchError::Guest {
            vmm: name.clone(),
            detail,
        };
        let mut backend = None;
        let mut cmd = match sut {
            SutSpec::Dpdk { binary, .. } => {
                let binary = vnetbed::dpdk::resolve_binary(binary.as_deref())
                    .map_err(|e| guest_err(e.to_string()))?;
                let testpmd =
                    vnetbed::dpdk::Testpmd::start(&binary, &info.netns, &info.bridge, None)
                        .map_err(|e| guest_err(e.to_string()))?;
                let cmd = vnetbed_run(
                    image,
                    &["--vhost-user", &testpmd.socket().display().to_string()],
                    &words,
                )?;
                backend = Some(testpmd);
                cmd
            }
            SutSpec::VhostUser {
                socket, reconnect, ..
            } => {
                // A `port=` is on the bridge already (`probe_on` borrowed it for the testbed).
                let reconnect = reconnect.map_or_else(String::new, |s| format!(",reconnect={s}"));
                vnetbed_run(
                    image,
                    &["--vhost-user", &format!("{}{reconnect}", socket.display())],
                    &words,
                )?
            }
            SutSpec::Vnetbed { model, .. } => vnetbed_run(
                image,
                &[
                    "--net",
                    &format!("tap={tap},netns={}{}", info.netns, sut.net_options()),
                    "--notify-model",
                    &model.to_string(),
                ],
                &words,
            )?,
            SutSpec::Qemu(q) => {
                let binary = q.resolve_binary().map_err(|e| BenchError::Guest {
                    vmm: name.clone(),
                    detail: e.to_string(),
                })?;
                vnetbed::qemu::QemuLaunch {
                    binary: &binary,
                    machine: q.machine,
                    device: q.device,
                    modern: q.modern,
                    extra: &q.extra,
                    mem_mib: 64,
                    kernel: image,
                    initrd: None,
                    append: &words,
                    tap: Some(&tap),
                    mac: None,
                    rx_queue_size: None,
                }
                .in_netns(&info.netns)
            }
        };
        own_process_group(&mut cmd);
        let started = Instant::now();
        let (child, lines) = LineChild::spawn(&name, cmd).map_err(|e| BenchError::Io {
            what: format!("start the probe on {name}"),
            source: e,
        })?;
        Ok(ProbeGuest {
            child,
            lines,
            started,
            tail: VecDeque::new(),
            name,
            _backend: backend,
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
            vmm: self.name.clone(),
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
                vmm: self.name.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_system_under_test_has_a_row_name_of_its_own() {
        let name = |s: &str| setup_name(&s.parse::<SutSpec>().unwrap());
        assert_eq!(name("vnetbed"), "vnetbed");
        assert_eq!(name("vnetbed:virtio-queue"), "vnetbed (virtio-queue)");
        assert_eq!(name("qemu"), "QEMU q35 virtio-net-pci");
        assert_eq!(
            name("qemu,machine=microvm,device=virtio-net-device"),
            "QEMU microvm virtio-net-device"
        );
        assert_eq!(
            name("qemu=/opt/q/bin/qemu-system-x86_64,machine=pc,modern=off,extra=-smp 2"),
            "QEMU pc virtio-net-pci legacy (/opt/q/bin/qemu-system-x86_64) [-smp 2]"
        );
    }
}
