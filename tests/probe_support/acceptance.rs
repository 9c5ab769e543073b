//! The acceptance checks of issue 5, run against either VMM: QEMU microvm and vnetbed.
//! Each check builds its own testbed (namespace, bridge, tap, dnsmasq) and boots the probe.

use std::time::Duration;

use serde_json::Value;

use super::call_dropper::CallDropper;
use super::testbed::{Testbed, HOST_ADDRESS};
use super::*;
use crate::common::Capability;
pub use vnetbed::qemu::{PciInterface, PciMachine};

/// The checks measure loss and throughput on a shared machine: run them one at a time
/// (cargo runs the tests of one binary in parallel threads).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The VMM a check runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vmm {
    /// QEMU microvm's virtio-net-device (PVH entry).
    Qemu,
    /// `vnetbed run --net` (Linux 64-bit entry).
    Vnetbed,
    /// `vnetbed run --net ...,transport=pci`: vnetbed's device behind a modern virtio-pci
    /// function with MSI-X.
    VnetbedPci,
    /// `vnetbed run --net ...,transport=pci,legacy=on`: a transitional function, the
    /// probe told to drive its legacy I/O BAR (`probe.virtio_pci=legacy`).
    VnetbedPciLegacy,
    /// The same transitional function, the probe on its modern interface (in BAR4), its
    /// default choice as Linux's.
    VnetbedPciTransitional,
    /// QEMU's virtio-net-pci on a machine, with an interface (PVH entry).
    QemuPci(PciMachine, PciInterface),
    /// `vnetbed run --vhost-user`: vnetbed's device model, DPDK's testpmd as the datapath
    /// (vhost PMD + tap PMD on the testbed bridge, io forwarding).
    Dpdk,
}

impl Vmm {
    /// Capabilities every network check needs on this VMM.
    pub fn caps(self) -> Vec<Capability> {
        let mut caps = vec![
            Capability::Kvm,
            Capability::Root,
            Capability::Tun,
            Capability::Program("dnsmasq"),
            Capability::Program("ping"),
            Capability::Program("iperf3"),
        ];
        match self {
            Vmm::Vnetbed
            | Vmm::VnetbedPci
            | Vmm::VnetbedPciLegacy
            | Vmm::VnetbedPciTransitional => {}
            Vmm::Dpdk => caps.push(Capability::Program("dpdk-testpmd")),
            _ => caps.push(Capability::Program("qemu-system-x86_64")),
        }
        caps
    }

    /// How long the probe may take to boot and bind: generous, because SeaBIOS (q35,
    /// pc) runs in guest ring 0, which KVM emulates on nested hosts (seconds when the
    /// machine is idle, much longer when it is busy). Never a speed check.
    pub fn boot_limit(self) -> Duration {
        match self {
            Vmm::QemuPci(PciMachine::Q35 | PciMachine::Pc, _) => Duration::from_secs(180),
            _ => Duration::from_secs(20),
        }
    }

    /// The transport the probe must report driving (its `nic` line).
    pub fn transport(self) -> &'static str {
        match self {
            Vmm::Qemu | Vmm::Vnetbed | Vmm::Dpdk => "virtio-mmio",
            Vmm::QemuPci(_, PciInterface::Modern)
            | Vmm::VnetbedPci
            | Vmm::VnetbedPciTransitional => "virtio-pci-modern",
            Vmm::QemuPci(_, PciInterface::Legacy) | Vmm::VnetbedPciLegacy => "virtio-pci-legacy",
        }
    }

    /// Boot the probe with `append` on this VMM, its NIC on the testbed's tap.
    pub fn start(self, testbed: &Testbed, append: &str) -> RunningGuest {
        let image = probe_image();
        let command = match self {
            Vmm::Qemu => qemu_microvm_in(testbed, &image, append),
            Vmm::QemuPci(machine, interface) => vnetbed::qemu::pci_in_netns(
                &testbed.netns,
                machine,
                interface,
                &image,
                append,
                &testbed.tap,
            ),
            Vmm::Vnetbed => {
                let mut command = vnetbed_run(&image, append);
                command
                    .arg("--net")
                    // vnetbed's device offers at most 256 entries per queue.
                    .arg(format!("tap={},netns={}", testbed.tap, testbed.netns));
                command
            }
            Vmm::VnetbedPci => {
                let mut command = vnetbed_run(&image, append);
                command.arg("--net").arg(format!(
                    "tap={},netns={},transport=pci",
                    testbed.tap, testbed.netns
                ));
                command
            }
            Vmm::VnetbedPciLegacy | Vmm::VnetbedPciTransitional => {
                let interface = if self == Vmm::VnetbedPciLegacy {
                    "legacy"
                } else {
                    "auto"
                };
                let mut command =
                    vnetbed_run(&image, &format!("probe.virtio_pci={interface} {append}"));
                command.arg("--net").arg(format!(
                    "tap={},netns={},transport=pci,legacy=on",
                    testbed.tap, testbed.netns
                ));
                command
            }
            Vmm::Dpdk => return start_on_testpmd(testbed, append, "", None),
        };
        RunningGuest::start(command)
    }
}

fn is_bound(e: &Value) -> bool {
    e["event"] == "dhcp_state" && e["state"] == "bound"
}

/// The guest's address without the prefix length.
fn address(bound: &Value) -> String {
    bound["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// Ping `count` times from the namespace; returns the replies received.
fn ping(testbed: &Testbed, target: &str, count: u32) -> u32 {
    let out = testbed
        .command("ping")
        .args([
            "-c",
            &count.to_string(),
            "-i",
            "0.01",
            "-W",
            "1",
            "-q",
            target,
        ])
        .output()
        .expect("run ping");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(", ")
        .find_map(|part| part.strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected ping output:\n{text}"))
}

/// DHCP bound within 2 s of boot, 100/100 pings, counters. Returns the `nic` line.
pub fn dhcp_and_ping(vmm: Vmm, append: &str, event_idx: bool) -> Value {
    dhcp_and_ping_with(vmm, append, event_idx, true)
}

/// [`dhcp_and_ping`], with the MRG_RXBUF the `nic` line must report (`probe.mrg_rxbuf=0`).
pub fn dhcp_and_ping_with(vmm: Vmm, append: &str, event_idx: bool, mrg_rxbuf: bool) -> Value {
    let _serial = exclusive();
    let testbed = Testbed::up(None);
    let mut guest = vmm.start(&testbed, append);
    let nic = guest.wait_for("nic event", vmm.boot_limit(), |e| e["event"] == "nic");
    assert_eq!(nic["event_idx"], event_idx, "{nic}");
    assert_eq!(nic["transport"], vmm.transport(), "{nic}");
    assert_eq!(nic["mrg_rxbuf"], mrg_rxbuf, "{nic}");
    let bound = guest.wait_for("DHCP binding", vmm.boot_limit(), is_bound);
    // Acceptance: bound within 2 s of boot (t_us counts from the first instruction).
    assert!(bound["t_us"].as_u64().unwrap() < 2_000_000, "{bound}");
    assert_eq!(bound["server"], HOST_ADDRESS);
    assert_eq!(bound["lease_s"], 120, "dnsmasq's floor for a 1m lease");
    assert_eq!(bound["t1_s"], 30);
    assert_eq!(bound["t2_s"], 52);
    guest.wait_for("gateway check", Duration::from_secs(5), |e| {
        e["event"] == "gateway" && e["state"] == "reachable"
    });
    // Acceptance: 100 of 100 pings answered.
    let replies = ping(&testbed, &address(&bound), 100);
    assert_eq!(replies, 100, "console:\n{}", guest.console());
    // The driver's counters saw the traffic (reported once a second).
    let counters = guest.wait_for("counters with the pings", Duration::from_secs(5), |e| {
        e["event"] == "counters" && e["rx_packets"].as_u64().unwrap_or(0) >= 100
    });
    assert!(
        counters["tx_packets"].as_u64().unwrap() >= 100,
        "{counters}"
    );
    assert!(counters["interrupts"].as_u64().unwrap() > 0, "{counters}");
    assert_eq!(counters["rx_errors"], 0, "{counters}");
    nic
}

/// Renewal by unicast at a shortened T1, answered by the server.
pub fn renews_at_t1(vmm: Vmm) {
    let _serial = exclusive();
    // A shortened schedule: renew after 3 s, rebind after 6 s (lease 120 s).
    let testbed = Testbed::up(Some((3, 6)));
    let mut guest = vmm.start(&testbed, "");
    let bound = guest.wait_for("DHCP binding", vmm.boot_limit(), is_bound);
    assert_eq!(bound["t1_s"], 3);
    let bound_at = bound["t_us"].as_u64().unwrap();
    let renew = guest.wait_for("renewal", Duration::from_secs(10), |e| {
        e["event"] == "dhcp" && e["dir"] == "tx" && e["state"] == "renewing"
    });
    // RFC 2131 4.4.5: at T1, a REQUEST unicast to the server, with ciaddr set.
    assert_eq!(renew["dst"], HOST_ADDRESS, "{renew}");
    assert_eq!(renew["ciaddr"], address(&bound), "{renew}");
    let after_s = (renew["t_us"].as_u64().unwrap() - bound_at) as f64 / 1e6;
    assert!(
        after_s >= 2.9,
        "renewed {after_s} s after binding, before T1 = 3 s"
    );
    assert!(after_s < 5.0, "renewed {after_s} s after binding, T1 = 3 s");
    let renew_xid = renew["xid"].clone();
    guest.wait_for("ACK of the renewal", Duration::from_secs(5), |e| {
        e["event"] == "dhcp" && e["dir"] == "rx" && e["type"] == "ack" && e["xid"] == renew_xid
    });
    // The server saw it too.
    let log = testbed.dnsmasq_log_text();
    assert!(
        log.matches(&format!("DHCPREQUEST({}) ", testbed.bridge))
            .count()
            >= 2,
        "dnsmasq log:\n{log}"
    );
    assert!(
        log.matches(&format!("DHCPACK({}) ", testbed.bridge))
            .count()
            >= 2,
        "dnsmasq log:\n{log}"
    );
}

/// The end of the guest's console, for failure messages: the last 12 lines other than
/// the once-a-second `counters`, then the last `counters` line.
fn console_tail(guest: &RunningGuest) -> String {
    let console = guest.console();
    let lines: Vec<&str> = console.lines().collect();
    let is_counters = |l: &&str| l.contains("\"event\":\"counters\"");
    let others: Vec<&str> = lines.iter().copied().filter(|l| !is_counters(l)).collect();
    let mut tail: Vec<&str> = others[others.len().saturating_sub(12)..].to_vec();
    tail.extend(lines.iter().copied().rev().find(is_counters));
    tail.join("\n")
}

/// Run the real iperf3 client from the namespace with `-J`; returns its JSON report. A
/// client that never ends is killed by `timeout` after 60 s and fails the check.
fn iperf3(testbed: &Testbed, guest: &RunningGuest, server: &str, args: &[&str]) -> Value {
    let out = testbed
        .command("timeout")
        .args(["60", "iperf3", "-c", server, "-J"])
        .args(args)
        .output()
        .expect("run iperf3");
    assert!(
        out.status.code() != Some(124),
        "iperf3 {args:?}: the client never ended (killed after 60 s)\nguest console (end):\n{}",
        console_tail(guest)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 {args:?}: no JSON ({e}):\n{}\nguest console (end):\n{}",
            String::from_utf8_lossy(&out.stdout),
            console_tail(guest)
        )
    });
    assert!(
        report.get("error").is_none(),
        "iperf3 {args:?} failed: {}\nguest console (end):\n{}",
        report["error"],
        console_tail(guest)
    );
    assert!(
        out.status.success(),
        "iperf3 {args:?} exited with {}",
        out.status
    );
    report
}

/// Check the parts of a -J report every test has, and that it ran for about `seconds`.
fn check_report(report: &Value, protocol: &str, reverse: bool, seconds: u64) {
    let start = &report["start"];
    assert_eq!(start["test_start"]["protocol"], protocol, "{start}");
    assert_eq!(
        start["test_start"]["reverse"],
        u64::from(reverse),
        "{start}"
    );
    assert_eq!(start["test_start"]["duration"], seconds, "{start}");
    assert!(
        !start["connected"].as_array().unwrap().is_empty(),
        "{start}"
    );
    // Interval reports exist; the client's timer decides how many (a starved client
    // may merge some), so only their presence is checked.
    let intervals = report["intervals"].as_array().unwrap();
    assert!(!intervals.is_empty(), "no interval reports");
    assert!(
        report["end"]["streams"]
            .as_array()
            .is_some_and(|s| s.len() == 1),
        "{}",
        report["end"]
    );
    assert!(
        report["end"]["cpu_utilization_percent"]["remote_total"].is_number(),
        "{}",
        report["end"]
    );
}

fn mbit(bits_per_second: &Value) -> f64 {
    bits_per_second.as_f64().unwrap_or(0.0) / 1e6
}

/// iperf3 TCP for 10 s, both directions, with complete -J reports.
pub fn iperf3_tcp_both_directions(vmm: Vmm) {
    let _serial = exclusive();
    let testbed = Testbed::up(None);
    let mut guest = vmm.start(&testbed, "");
    let bound = guest.wait_for("DHCP binding", vmm.boot_limit(), is_bound);
    let server = address(&bound);
    guest.wait_for("iperf3 server", Duration::from_secs(5), |e| {
        e["event"] == "iperf3" && e["state"] == "listening"
    });
    for reverse in [false, true] {
        let args: &[&str] = if reverse {
            &["-t", "10", "-R"]
        } else {
            &["-t", "10"]
        };
        let report = iperf3(&testbed, &guest, &server, args);
        check_report(&report, "TCP", reverse, 10);
        let sent = &report["end"]["sum_sent"];
        let received = &report["end"]["sum_received"];
        assert!(received["bytes"].as_u64().unwrap() > 0, "{received}");
        // Bytes received never exceed bytes sent; the receiver gets nearly all of it.
        assert!(
            received["bytes"].as_u64() <= sent["bytes"].as_u64(),
            "{sent} {received}"
        );
        assert!(received["seconds"].as_f64().unwrap() > 9.0, "{received}");
        eprintln!(
            "{vmm:?} iperf3 TCP {}: sent {:.1} Mbit/s, received {:.1} Mbit/s",
            if reverse {
                "guest->host (-R)"
            } else {
                "host->guest"
            },
            mbit(&sent["bits_per_second"]),
            mbit(&received["bits_per_second"])
        );
    }
    // The guest reported both tests, and is ready for more (like iperf3 -s).
    let ends = guest.wait_for("the last iperf3 end", Duration::from_secs(5), |e| {
        e["event"] == "iperf3" && e["state"] == "end" && e["test"] == 2
    });
    assert!(ends["bytes"].as_u64().unwrap() > 0, "{ends}");
    assert_no_guest_stall(&guest);
}

/// TCP `-R` tests with 1 MiB blocks (`-l 1M`) all end. The iperf3 3.12 client, once its
/// time is up, reads its now blocking data sockets a whole block at a time until it has
/// read EXCHANGE_RESULTS; a server that stopped sending mid block without ending the
/// stream left it blocked in read() for good (guest-images/probe/README.md, "Ending a
/// reverse test"). With 1 MiB blocks the 256 KiB the guest still has queued at TEST_END
/// rarely completes a block, so nearly every run hung (11 of 12); with the default 128
/// KiB it was about 1 run in 10 to 50.
pub fn iperf3_tcp_reverse_with_large_blocks_ends(vmm: Vmm) {
    let _serial = exclusive();
    let testbed = Testbed::up(None);
    let mut guest = vmm.start(&testbed, "");
    let bound = guest.wait_for("DHCP binding", vmm.boot_limit(), is_bound);
    let server = address(&bound);
    guest.wait_for("iperf3 server", Duration::from_secs(5), |e| {
        e["event"] == "iperf3" && e["state"] == "listening"
    });
    for _ in 0..5 {
        let report = iperf3(&testbed, &guest, &server, &["-t", "2", "-R", "-l", "1M"]);
        check_report(&report, "TCP", true, 2);
        let received = &report["end"]["sum_received"];
        assert!(received["bytes"].as_u64().unwrap() > 0, "{received}");
    }
    assert_no_guest_stall(&guest);
}

/// The guest's stall detector saw nothing (a correct device under load and idle).
fn assert_no_guest_stall(guest: &RunningGuest) {
    let stalls: Vec<Value> = guest
        .events()
        .into_iter()
        .filter(|e| e["event"] == "stall")
        .collect();
    assert!(stalls.is_empty(), "guest stall reports: {stalls:#?}");
}

/// The frames the host dropped toward the guest at the tap's queue (its `tx_dropped`).
fn tap_tx_dropped(testbed: &Testbed) -> u64 {
    let out = testbed
        .command("ip")
        .args(["-s", "-j", "link", "show", "dev", &testbed.tap])
        .output()
        .expect("ip -s link");
    vnetbed::soak::guest_stall::TapStats::from_ip_json(&String::from_utf8_lossy(&out.stdout))
        .map_or(0, |stats| stats.tx_dropped)
}

/// iperf3 UDP -b 200M for 10 s with < 1 % loss in the datapath (datagrams the host's tap
/// queue dropped while the VMM waited for a CPU do not count); reverse UDP completes.
pub fn iperf3_udp_200m(vmm: Vmm) {
    let _serial = exclusive();
    let testbed = Testbed::up(None);
    let mut guest = vmm.start(&testbed, "");
    let bound = guest.wait_for("DHCP binding", vmm.boot_limit(), is_bound);
    let server = address(&bound);
    guest.wait_for("iperf3 server", Duration::from_secs(5), |e| {
        e["event"] == "iperf3" && e["state"] == "listening"
    });
    let dropped_before = tap_tx_dropped(&testbed);
    let report = iperf3(
        &testbed,
        &guest,
        &server,
        &["-u", "-b", "200M", "-l", "1400", "-t", "10"],
    );
    let host_dropped = tap_tx_dropped(&testbed).saturating_sub(dropped_before);
    check_report(&report, "UDP", false, 10);
    let sum = &report["end"]["sum"];
    let lost_percent = sum["lost_percent"].as_f64().unwrap();
    let packets = sum["packets"].as_u64().unwrap();
    let lost = sum["lost_packets"].as_u64().unwrap();
    eprintln!(
        "{vmm:?} iperf3 UDP host->guest -b 200M -l 1400: {:.1} Mbit/s, {lost} of {packets} lost ({lost_percent:.3} %), {host_dropped} of them dropped by the host's tap queue before the VMM read them, jitter {:.3} ms",
        mbit(&sum["bits_per_second"]),
        sum["jitter_ms"].as_f64().unwrap_or(0.0)
    );
    assert!(packets > 100_000, "{sum}");
    // The datapath's own loss: what the host dropped at the tap's queue while the VMM's
    // threads waited for a CPU (a busy shared machine) is the host's, not the datapath's.
    let datapath_lost = lost.saturating_sub(host_dropped);
    assert!(
        (datapath_lost as f64) < packets as f64 * 0.01,
        "{datapath_lost} datagrams lost beyond the {host_dropped} the host dropped: {sum}"
    );
    // Reverse UDP: the guest paces datagrams itself; the report must be complete.
    let report = iperf3(
        &testbed,
        &guest,
        &server,
        &["-u", "-b", "50M", "-l", "1400", "-t", "3", "-R"],
    );
    check_report(&report, "UDP", true, 3);
    let sum = &report["end"]["sum"];
    assert!(sum["packets"].as_u64().unwrap() > 1000, "{sum}");
    assert_no_guest_stall(&guest);
    eprintln!(
        "{vmm:?} iperf3 UDP guest->host -b 50M -l 1400 -R: {:.1} Mbit/s, {} of {} lost",
        mbit(&sum["bits_per_second"]),
        sum["lost_packets"],
        sum["packets"]
    );
}

/// Start DPDK's testpmd in the testbed (its tap port on the bridge) and the probe with
/// `append` on vnetbed's VMM with `--vhost-user SOCKET{options}`, the VMM's events to
/// `events` if given. testpmd goes down with the returned guest.
fn start_on_testpmd(
    testbed: &Testbed,
    append: &str,
    options: &str,
    events: Option<&std::path::Path>,
) -> RunningGuest {
    let testpmd = testpmd_in(testbed);
    let mut command = vnetbed_run(&probe_image(), append);
    command
        .arg("--vhost-user")
        .arg(format!("{}{options}", testpmd.socket().display()));
    if let Some(events) = events {
        command.arg("--events").arg(events);
    }
    RunningGuest::start(command).with_backend(testpmd)
}

/// DPDK's testpmd in the testbed's namespace, its tap port on the bridge.
fn testpmd_in(testbed: &Testbed) -> vnetbed::dpdk::Testpmd {
    let binary = vnetbed::dpdk::resolve_binary(None).expect("dpdk-testpmd");
    vnetbed::dpdk::Testpmd::start(&binary, &testbed.netns, &testbed.bridge, None)
        .expect("start dpdk-testpmd")
}

/// A real backend that loses interrupts: testpmd behind a [`CallDropper`], which passes
/// everything on until it drops every call. Before the drop the guest binds and answers
/// pings; after it, testpmd goes on completing rx buffers for frames sent to the guest and
/// signalling into the void, and the relay's watchdog, which sees only the rings and the
/// calls that reach it, reports a `stall`: `lost_interrupt` on rx. Returns that event.
pub fn dpdk_lost_interrupt_is_judged() -> Value {
    let _serial = exclusive();
    let testbed = Testbed::up(None);
    let testpmd = testpmd_in(&testbed);
    let proxy = CallDropper::start(
        std::env::temp_dir().join(format!("vnetbed-call-dropper-{}.sock", std::process::id())),
        testpmd.socket(),
    );
    let events = events_file("call-dropper");
    let mut command = vnetbed_run(&probe_image(), "");
    command
        .arg("--vhost-user")
        .arg(proxy.socket())
        .arg("--events")
        .arg(&events);
    let mut guest = RunningGuest::start(command).with_backend(testpmd);
    let bound = guest.wait_for("DHCP binding", Vmm::Dpdk.boot_limit(), is_bound);
    let target = address(&bound);
    assert_eq!(ping(&testbed, &target, 10), 10, "through the proxy");
    let stalls = |text: &str| -> Vec<Value> {
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "stall")
            .collect()
    };
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    assert!(
        stalls(&text).is_empty(),
        "a stall before any call was dropped:\n{text}"
    );
    assert!(
        proxy.passed() > 0,
        "no call passed the proxy before the drop"
    );
    proxy.drop_calls();
    // Frames for the guest: testpmd completes rx buffers past the guest's used_event.
    let answered = ping(&testbed, &target, 50);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let stall = loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if let Some(stall) = stalls(&text).into_iter().find(|e| e["queue"] == "rx") {
            break stall;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rx stall reported within 20 s of dropping the calls ({} dropped, {answered} of 50 pings answered):\n{text}",
            proxy.dropped()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_file(&events);
    assert_eq!(stall["kind"], "lost_interrupt", "{stall}");
    assert!(proxy.dropped() > 0, "{stall}");
    // The guest asked for the interrupt: used->idx is past its used_event.
    let used = stall["guest_visible_used_idx"].as_u64().unwrap();
    let event = stall["guest_used_event"].as_u64().unwrap();
    assert_ne!(used, event, "{stall}");
    eprintln!(
        "{} calls passed, {} dropped, {answered} of 50 pings answered after the drop; stall: {stall}",
        proxy.passed(),
        proxy.dropped()
    );
    stall
}

/// A per-process file for a VMM's event stream.
fn events_file(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "vnetbed-{what}-events-{}.jsonl",
        std::process::id()
    ))
}

/// vnetbed's device model with testpmd as the datapath in direct mode (`--vhost-user
/// SOCKET,mode=direct`): KVM's ioeventfd is the backend's kick eventfd. DHCP binds and 20
/// pings are answered; the device counted the backend's calls but none of the guest's kicks,
/// while the frames moved.
pub fn dpdk_direct_mode() {
    let _serial = exclusive();
    let testbed = Testbed::up(None);
    let events = events_file("direct");
    let mut guest = start_on_testpmd(&testbed, "", ",mode=direct", Some(&events));
    let bound = guest.wait_for("DHCP binding", Vmm::Dpdk.boot_limit(), is_bound);
    assert_eq!(ping(&testbed, &address(&bound), 20), 20);
    // The relay writes counters every second: wait for one after the pings.
    std::thread::sleep(Duration::from_millis(2500));
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    let _ = std::fs::remove_file(&events);
    let last = |queue: &str| -> Value {
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["event"] == "counters" && e["queue"] == queue)
            .unwrap_or_else(|| panic!("no {queue} counters in the event stream:\n{text}"))
    };
    let (rx, tx) = (last("rx"), last("tx"));
    assert_eq!(tx["kicks"], 0, "{tx}");
    assert_eq!(rx["kicks"], 0, "{rx}");
    assert!(tx["frames"].as_u64().unwrap() >= 20, "{tx}");
    assert!(rx["frames"].as_u64().unwrap() >= 20, "{rx}");
    assert!(rx["interrupts_sent"].as_u64().unwrap() > 0, "{rx}");
}

/// The `backend` events of an event stream, in order: (state, downtime_ms).
fn backend_events(text: &str) -> Vec<(String, Option<u64>)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "backend")
        .map(|e| {
            (
                e["state"].as_str().unwrap_or("?").to_string(),
                e["downtime_ms"].as_u64(),
            )
        })
        .collect()
}

/// vnetbed's device model with testpmd as the datapath and `reconnect=SECS`: testpmd is
/// killed (SIGKILL) and started again on the same socket `restarts` times while the guest
/// runs. Each time the VMM reports `disconnected` then `reconnected`, pings are answered
/// again, and the device's watchdog reports no stall. Returns the downtimes, ms.
pub fn dpdk_reconnect(restarts: usize) -> Vec<u64> {
    let _serial = exclusive();
    let testbed = Testbed::up(None);
    let events = events_file("reconnect");
    let mut guest = start_on_testpmd(&testbed, "", ",reconnect=60", Some(&events));
    let bound = guest.wait_for("DHCP binding", Vmm::Dpdk.boot_limit(), is_bound);
    let target = address(&bound);
    assert_eq!(ping(&testbed, &target, 5), 5);
    let mut downtimes = Vec::new();
    for n in 1..=restarts {
        guest
            .backend()
            .expect("testpmd")
            .restart()
            .expect("restart dpdk-testpmd");
        // The VMM reconnects within the window; wait for its word (generous: a busy host).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let seen = loop {
            let seen = backend_events(&std::fs::read_to_string(&events).unwrap_or_default());
            if seen.len() >= 2 * n || std::time::Instant::now() > deadline {
                break seen;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(
            seen.len(),
            2 * n,
            "backend events after restart {n}: {seen:?}"
        );
        assert_eq!(seen[2 * n - 2].0, "disconnected", "{seen:?}");
        assert_eq!(seen[2 * n - 1].0, "reconnected", "{seen:?}");
        downtimes.push(seen[2 * n - 1].1.expect("downtime_ms"));
        // Traffic flows again: the first pings may go before the bridge has learnt the new
        // tap, so of 20 most are answered.
        let answered = ping(&testbed, &target, 20);
        assert!(
            answered >= 10,
            "after restart {n}: {answered}/20 pings answered"
        );
    }
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    let _ = std::fs::remove_file(&events);
    assert!(
        !text.contains("\"event\":\"stall\""),
        "the watchdog reported a stall across the restarts:\n{text}"
    );
    if let Err(e) = guest.is_running() {
        panic!("{e}\nconsole:\n{}", console_tail(&guest));
    }
    eprintln!("reconnect downtimes (ms): {downtimes:?}");
    downtimes
}
