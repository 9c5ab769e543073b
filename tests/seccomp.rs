//! Seccomp confinement of `vnetbed run` (issue 18): every kind of VMM thread is stopped,
//! with a message naming it and the system call, when it makes a forbidden system call; and
//! confined runs do their real work: the probe guest binds DHCP and answers pings in a
//! testbed, stops cleanly on SIGTERM with its RSS measured, and `--on-stall exit` ends a
//! stalled run with status 8, and a deleted tap is reported once, not spun on.
//!
//! The forbidden call is made on purpose by the hidden self-test hook
//! (`VNETBED_SECCOMP_SELFTEST=KIND`: a thread of that kind calls `uname` right after it
//! installed its filter).

mod common;
mod probe_support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bounded, require, vnetbed, Capability};
use probe_support::testbed::Testbed;
use probe_support::{parse_agent_lines, probe_image, vnetbed_run};
use serde_json::Value;

/// Exit status of a VMM stopped by its seccomp filter (README, exit statuses).
const STATUS_SECCOMP: i32 = 12;

/// The probe guest on vnetbed's virtio-net, in a testbed.
fn network_caps() -> Vec<Capability> {
    vec![
        Capability::Kvm,
        Capability::Root,
        Capability::Tun,
        Capability::Program("dnsmasq"),
        Capability::Program("ping"),
        Capability::Program("iperf3"),
    ]
}

/// Network checks share the machine's CPU and the testbed names: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The probe, confined, on the testbed's tap, its serial console in a file (the serial path
/// to a file under seccomp) and its events in another.
struct Probe {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Probe {
    fn start(testbed: &Testbed, extra: &[&str]) -> Probe {
        let dir = std::env::temp_dir().join(format!(
            "vnetbed-seccomp-{}-{}",
            std::process::id(),
            testbed.tap
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let child = vnetbed()
            .arg("run")
            .arg("--kernel")
            .arg(probe_image())
            .args(["--mem", "64", "--cmdline", "console=ttyS0"])
            .arg("--serial")
            .arg(format!("file:{}", dir.join("serial.log").display()))
            .arg("--events")
            .arg(dir.join("events.jsonl"))
            .arg("--net")
            .arg(format!("tap={},netns={}", testbed.tap, testbed.netns))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("spawn vnetbed run");
        Probe { child, dir }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    fn serial(&self) -> String {
        std::fs::read_to_string(self.dir.join("serial.log")).unwrap_or_default()
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait up to `limit` for an agent event matching `want`.
    fn wait_for(&mut self, what: &str, limit: Duration, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let serial = self.serial();
            let complete = &serial[..serial.rfind('\n').unwrap_or(0)];
            if let Some(e) = parse_agent_lines(complete).into_iter().find(|e| want(e)) {
                return e;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("vnetbed run ended ({status}) before {what}; serial:\n{serial}");
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {limit:?}; serial:\n{serial}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait up to `limit` for the VMM's exit status (None: still running, killed).
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn selftest_message(kind: &str, thread: &str) -> String {
    format!("vnetbed: seccomp: the {kind} thread `{thread}` made the forbidden system call uname (63); the VMM stops (exit status 12)")
}

fn hang_guest(selftest: &str, seccomp: &str) -> Command {
    let mut c = vnetbed();
    c.args(["run", "--kernel", "builtin:hang", "--serial", "none"])
        .args(["--seccomp", seccomp])
        .env("VNETBED_SECCOMP_SELFTEST", selftest);
    c
}

#[test]
fn a_forbidden_call_stops_the_vcpu_and_main_threads_with_their_names() {
    if !require(
        "a_forbidden_call_stops_the_vcpu_and_main_threads_with_their_names",
        &[Capability::Kvm],
    ) {
        return;
    }
    for (kind, thread) in [("vcpu", "vcpu0"), ("main", "main")] {
        let (status, stderr) = bounded(hang_guest(kind, "on"), Duration::from_secs(60));
        assert_eq!(status, Some(STATUS_SECCOMP), "{kind}: {stderr}");
        assert!(
            stderr.contains(&selftest_message(kind, thread)),
            "{kind}: {stderr}"
        );
    }
    // The second vCPU of two is confined too.
    let mut two = hang_guest("vcpu", "on");
    two.args(["--vcpus", "2"]);
    let (status, stderr) = bounded(two, Duration::from_secs(60));
    assert_eq!(status, Some(STATUS_SECCOMP), "{stderr}");
    assert!(stderr.contains("the vcpu thread `vcpu"), "{stderr}");
}

#[test]
fn without_seccomp_the_selftest_call_is_harmless() {
    if !require(
        "without_seccomp_the_selftest_call_is_harmless",
        &[Capability::Kvm],
    ) {
        return;
    }
    // The same hook with --seccomp off: uname succeeds and the guest ends normally (reset).
    let mut c = vnetbed();
    c.args(["run", "--kernel", "builtin:hello", "--seccomp", "off"])
        .env("VNETBED_SECCOMP_SELFTEST", "vcpu");
    let (status, stderr) = bounded(c, Duration::from_secs(60));
    assert_eq!(status, Some(0), "{stderr}");
    assert!(!stderr.contains("seccomp"), "{stderr}");
}

#[test]
fn a_selftest_hook_naming_no_thread_kind_is_an_error() {
    let out: Output = vnetbed()
        .args(["run", "--kernel", "builtin:hello"])
        .env("VNETBED_SECCOMP_SELFTEST", "gpu")
        .output()
        .expect("run vnetbed");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("VNETBED_SECCOMP_SELFTEST=gpu names no thread kind"),
        "{stderr}"
    );
}

#[test]
fn a_forbidden_call_stops_the_device_worker_and_stall_exit_threads() {
    if !require(
        "a_forbidden_call_stops_the_device_worker_and_stall_exit_threads",
        &network_caps(),
    ) {
        return;
    }
    let _one = exclusive();
    let image = probe_image();
    let testbed = Testbed::up(None);
    for (kind, thread) in [
        ("device-worker", "virtio-net"),
        ("stall-exit", "stall-exit"),
    ] {
        let mut c = vnetbed_run(&image, "");
        c.arg("--net")
            .arg(format!("tap={},netns={}", testbed.tap, testbed.netns))
            .env("VNETBED_SECCOMP_SELFTEST", kind);
        // The device worker starts when the probe's driver sets DRIVER_OK, within a second.
        let (status, stderr) = bounded(c, Duration::from_secs(60));
        assert_eq!(status, Some(STATUS_SECCOMP), "{kind}: {stderr}");
        assert!(
            stderr.contains(&selftest_message(kind, thread)),
            "{kind}: {stderr}"
        );
    }
}

#[test]
fn a_confined_probe_binds_dhcp_answers_pings_and_stops_cleanly_on_sigterm() {
    if !require(
        "a_confined_probe_binds_dhcp_answers_pings_and_stops_cleanly_on_sigterm",
        &network_caps(),
    ) {
        return;
    }
    let _one = exclusive();
    let testbed = Testbed::up(None);
    let mut probe = Probe::start(&testbed, &[]);
    let bound = probe.wait_for("DHCP binding", Duration::from_secs(30), |e| {
        e["event"] == "dhcp_state" && e["state"] == "bound"
    });
    let address = bound["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let ping = testbed
        .command("ping")
        .args(["-c", "20", "-i", "0.05", "-W", "1", "-q", address])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(text.contains(" 20 received"), "{text}");
    // SIGTERM: the clean stop path (signal handler, vCPU kicks, joins, exit event) confined.
    // SAFETY: kill only sends a signal (no memory is touched); the pid is our own
    // child's, not reaped yet, so it cannot have been recycled.
    let rc = unsafe { libc::kill(probe.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = probe.wait_exit(Duration::from_secs(30));
    assert_eq!(status, Some(10), "serial:\n{}", probe.serial());
    let exit = probe
        .events()
        .into_iter()
        .find(|e| e["event"] == "exit")
        .expect("an exit event");
    assert_eq!(exit["reason"], "signal", "{exit}");
    // Measured from the /proc/self/smaps opened before the main thread was confined.
    assert!(exit["vmm_rss_kib"].as_u64().unwrap_or(0) > 0, "{exit}");
}

#[test]
fn a_confined_vmm_ends_a_stalled_run_with_on_stall_exit() {
    if !require(
        "a_confined_vmm_ends_a_stalled_run_with_on_stall_exit",
        &network_caps(),
    ) {
        return;
    }
    let _one = exclusive();
    let testbed = Testbed::up(None);
    let mut probe = Probe::start(
        &testbed,
        &[
            "--notify-model",
            "unfenced",
            "--race-window",
            "2ms",
            "--stall-timeout",
            "1s",
            "--on-stall",
            "exit",
        ],
    );
    // The lost notification can come as early as the boot-time DHCP exchange; otherwise UDP
    // load into the guest, started once it is bound, brings it within seconds.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut load: Option<std::process::Child> = None;
    let status = loop {
        if let Ok(Some(status)) = probe.child.try_wait() {
            break status.code();
        }
        if Instant::now() >= deadline {
            break None;
        }
        if load.is_none() {
            let serial = probe.serial();
            let complete = &serial[..serial.rfind('\n').unwrap_or(0)];
            let bound = parse_agent_lines(complete)
                .into_iter()
                .find(|e| e["event"] == "dhcp_state" && e["state"] == "bound");
            if let Some(address) = bound.as_ref().and_then(|b| b["address"].as_str()) {
                let address = address.split('/').next().unwrap_or(address);
                load = Some(
                    testbed
                        .command("iperf3")
                        .args(["-c", address, "-u", "-b", "200M", "-t", "100"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("iperf3"),
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Some(mut load) = load {
        let _ = load.kill();
        let _ = load.wait();
    }
    assert_eq!(status, Some(8), "serial:\n{}", probe.serial());
    let exit = probe
        .events()
        .into_iter()
        .find(|e| e["event"] == "exit")
        .expect("an exit event");
    assert_eq!(exit["reason"], "stall", "{exit}");
}

#[test]
fn a_confined_vmm_whose_tap_is_deleted_reports_it_once_and_runs_on() {
    if !require(
        "a_confined_vmm_whose_tap_is_deleted_reports_it_once_and_runs_on",
        &network_caps(),
    ) {
        return;
    }
    let _one = exclusive();
    let testbed = Testbed::up(None);
    let mut probe = Probe::start(&testbed, &[]);
    probe.wait_for("DHCP binding", Duration::from_secs(30), |e| {
        e["event"] == "dhcp_state" && e["state"] == "bound"
    });
    let del = Command::new("ip")
        .args(["-n", &testbed.netns, "link", "del", &testbed.tap])
        .status()
        .expect("ip link del");
    assert!(del.success());
    // The device sees the tap's epoll error, says so once and stops polling it. (It used
    // to spin on the error, logging a warning per wake-up: hundreds of thousands a second.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe
        .events()
        .iter()
        .any(|e| e["event"] == "error" && e["kind"] == "backend_gone")
    {
        assert!(
            Instant::now() < deadline,
            "no backend_gone event; stderr:\n{}",
            probe.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let stderr = probe.stderr();
    assert!(
        stderr.lines().count() < 20,
        "{} lines:\n{}",
        stderr.lines().count(),
        &stderr[..stderr.len().min(2000)]
    );
    // Still running, confined; SIGTERM ends it cleanly.
    // SAFETY: kill only sends a signal (no memory is touched); the pid is our own
    // child's, not reaped yet, so it cannot have been recycled.
    let rc = unsafe { libc::kill(probe.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    assert_eq!(
        probe.wait_exit(Duration::from_secs(30)),
        Some(10),
        "{stderr}"
    );
}
