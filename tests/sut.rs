//! End-to-end tests of the system under test (`--sut`, `--control`) on the real stack: the
//! distribution's QEMU (Debian 12: 7.2) running the probe on virtio-net-pci in a testbed
//! namespace, vnetbed's own VMM as the control, dnsmasq and iperf3; and DPDK's testpmd as a
//! vhost-user backend behind vnetbed's device model (`--sut dpdk`). One soak at a time.

mod common;
#[path = "probe_support/mod.rs"]
mod probe_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::reports::python_with_modules;
use common::soak::{
    check, json_file, no_testbed_left, out_dir, pid_of, report, reports_are_valid, text,
    wait_for_samples,
};
use common::{find_program, require, vnetbed, vnetbed_bin, Capability};
use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const CAPS: &[Capability] = &[
    Capability::Kvm,
    Capability::Root,
    Capability::Tun,
    Capability::Program("ip"),
    Capability::Program("dnsmasq"),
    Capability::Program("iperf3"),
    Capability::Program("ping"),
    Capability::Program("qemu-system-x86_64"),
    Capability::Program("sha256sum"),
];

fn run_cmd(sub: &str, out: &Path, name: &str) -> Command {
    let mut c = vnetbed();
    c.arg(sub)
        .arg("--out")
        .arg(out)
        .args(["--quiet", "--name", name]);
    c.arg("--kernel").arg(probe_support::probe_image());
    c
}

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn qemu_binary() -> PathBuf {
    find_program("qemu-system-x86_64").expect("qemu-system-x86_64 on PATH")
}

fn records(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("timeline.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// No QEMU process is left on the testbed's tap.
fn no_qemu_left(name: &str) {
    let tap = format!("ifname=vnb{name}t0");
    assert_eq!(
        pid_of(&format!("qemu-system-x86_64.*{tap}")),
        None,
        "a QEMU process on {tap} was left behind"
    );
}

/// verify.json and every junit.xml under `out` are valid for their consumers.
fn verify_outputs_are_valid(test: &str, out: &Path) {
    let Some(python) = python_with_modules(test) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = Command::new(python)
        .arg(root.join("tests/check_verify.py"))
        .arg(out)
        .arg(root.join("docs/verify.schema.json"))
        .arg(root.join("docs/report.schema.json"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));
}

/// A fenced soak of QEMU's virtio-net-pci on q35 passes, and the record names exactly what
/// ran: the QEMU binary (path, sha256, version, machine, device), vnetbed's build, the probe
/// image, the tools and the host.
#[test]
fn a_soak_of_qemu_passes_and_names_what_ran() {
    if !require("sut_qemu_soak", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sut-qemu-soak");
    let o = run_cmd("soak", &out, "qs")
        .args(["--sut", "qemu", "--duration", "40s", "--run-length", "15s"])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let r = report(&out);
    assert_eq!(r["verdict"], "pass", "{r:#}");
    assert_eq!(check(&r, "every_renewal_answered_and_received"), "pass");

    let header = &records(&out)[0];
    let vmm = &header["config"]["vmm"];
    let qemu = qemu_binary();
    assert_eq!(vmm["path"], qemu.display().to_string(), "{vmm:#}");
    assert_eq!(vmm["sha256"], sha256(&qemu), "{vmm:#}");
    assert!(
        vmm["version"]
            .as_str()
            .unwrap()
            .starts_with("QEMU emulator version"),
        "{vmm:#}"
    );
    assert_eq!(
        (vmm["machine"].as_str(), vmm["device"].as_str()),
        (Some("q35"), Some("virtio-net-pci"))
    );
    assert_eq!(
        header["config"]["sut"],
        "qemu,machine=q35,device=virtio-net-pci"
    );
    assert_eq!(header["config"]["notify_model"], "qemu");
    let id = &header["identity"];
    assert_eq!(
        id["kernel_sha256"],
        sha256(&probe_support::probe_image()),
        "{id:#}"
    );
    let revision = id["revision"].as_str().unwrap_or("");
    assert!(
        revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()),
        "{id:#}"
    );
    assert!(id["dirty"].is_boolean(), "{id:#}");
    assert!(
        id["tools"]["iperf3"]
            .as_str()
            .unwrap()
            .starts_with("iperf 3"),
        "{id:#}"
    );
    assert!(
        id["tools"]["dnsmasq"].as_str().unwrap().contains("nsmasq"),
        "{id:#}"
    );
    let uname = Command::new("uname").arg("-r").output().unwrap();
    assert_eq!(
        id["host"]["kernel"],
        String::from_utf8_lossy(&uname.stdout).trim(),
        "{id:#}"
    );

    // The probe drove QEMU's PCI function, and counted its side of the exposure.
    let serial = std::fs::read_to_string(out.join("serial.log")).unwrap();
    assert!(
        serial.contains("\"event\":\"pci_nic\""),
        "no PCI NIC in the serial log"
    );
    let enables = records(&out)
        .iter()
        .filter_map(|r| r["guest"]["rx_cb_enables"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        enables > 0,
        "no rx callback re-enables counted by the guest"
    );
    reports_are_valid("sut_qemu_soak", &out);
    no_qemu_left("qs");
    no_testbed_left("qs");
}

/// The issue's main job: QEMU as the system under test, against vnetbed's unfenced model as
/// the positive control in the same run.
#[test]
fn verify_passes_qemu_against_the_default_control() {
    if !require("sut_qemu_verify", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sut-qemu-verify");
    let o = run_cmd("verify", &out, "qv")
        .args([
            "--sut",
            "qemu",
            "--runs",
            "1",
            "--timeout",
            "60s",
            "--duration",
            "30s",
        ])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let v = json_file(&out.join("verify.json"));
    assert_eq!(v["verdict"], "pass", "{v:#}");
    assert_eq!(v["plan"]["control"], "vnetbed:unfenced", "{v:#}");
    assert_eq!(v["a_runs"][0]["dir"], "A1-unfenced");
    assert_eq!(v["a_runs"][0]["stalled"], true, "{v:#}");
    let b = &v["b"];
    assert_eq!(b["dir"], "B-qemu", "{b:#}");
    assert_eq!(b["exposure_source"], "guest", "{b:#}");
    assert!(b["rx_interrupt_decisions"].as_u64().unwrap() > 0, "{b:#}");
    assert!(b["duration_s"].as_f64().unwrap() >= 30.0, "{b:#}");
    // verify's race shaping: QEMU's smallest rx ring, and the probe's merged-buffer mode
    // runs it short of buffers (chances for the lost kick the guest counts).
    let b_report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("B-qemu").join("report.json")).unwrap(),
    )
    .unwrap();
    let shaping = &b_report["run"]["config"]["shaping"];
    assert_eq!(shaping["queue_size"], 256, "{shaping:#}");
    assert_eq!(
        shaping["guest_cmdline"], "probe.rx_buf=256 probe.refill=trickle:2",
        "{shaping:#}"
    );
    assert!(
        b["guest_exposure"]["ring_empty_refills"].as_u64().unwrap() > 0,
        "{b:#}"
    );
    let id = &v["identity"];
    assert_eq!(id["sut_vmm"]["sha256"], sha256(&qemu_binary()), "{id:#}");
    assert_eq!(id["sut_vmm"]["machine"], "q35", "{id:#}");
    assert_eq!(
        id["control_vmm"]["path"],
        vnetbed_bin().canonicalize().unwrap().display().to_string(),
        "{id:#}"
    );
    assert_eq!(
        id["control_vmm"]["sha256"],
        sha256(&vnetbed_bin()),
        "{id:#}"
    );
    assert!(id["sut"].as_str().unwrap().starts_with("QEMU "), "{id:#}");
    verify_outputs_are_valid("sut_qemu_verify", &out);
    for dir in ["A1-unfenced", "B-qemu"] {
        reports_are_valid("sut_qemu_verify", &out.join(dir));
    }
    no_qemu_left("qv");
    no_testbed_left("qv");
}

/// A system under test with the bug fails verify (exit 1), with the stall named.
#[test]
fn verify_fails_an_unfenced_system_under_test() {
    if !require("sut_unfenced_verify", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sut-unfenced-verify");
    let o = run_cmd("verify", &out, "qu")
        .args([
            "--sut",
            "vnetbed:unfenced",
            "--runs",
            "1",
            "--timeout",
            "60s",
            "--duration",
            "20s",
        ])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let v = json_file(&out.join("verify.json"));
    assert_eq!(v["verdict"], "fail", "{v:#}");
    assert!(
        v["reason"].as_str().unwrap().contains("failed its checks"),
        "{v:#}"
    );
    assert_eq!(v["b"]["dir"], "B-unfenced");
    let b = report(&out.join("B-unfenced"));
    assert_eq!(check(&b, "no_stall"), "fail", "{b:#}");
    verify_outputs_are_valid("sut_unfenced_verify", &out);
    no_testbed_left("qu");
}

/// A control that cannot show the bug makes verify say that this run could not have caught
/// it (exit 2), and it does not go on to run the system under test.
#[test]
fn a_control_that_does_not_stall_gives_no_verdict() {
    if !require("sut_fenced_control", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sut-fenced-control");
    let o = run_cmd("verify", &out, "qc")
        .args([
            "--control",
            "vnetbed:fenced",
            "--runs",
            "2",
            "--timeout",
            "20s",
            "--duration",
            "10s",
        ])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    let v = json_file(&out.join("verify.json"));
    assert_eq!(v["verdict"], "error", "{v:#}");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("A1-fenced (vnetbed:fenced) did not stall")
            && reason.contains("could not have caught the bug"),
        "{reason}"
    );
    assert_eq!(v["a_runs"][0]["status"], "no_stall", "{v:#}");
    assert_eq!(v["a_runs"][1]["status"], "not_run", "{v:#}");
    assert!(
        !out.join("B-fenced").exists(),
        "B ran after the control failed"
    );
    verify_outputs_are_valid("sut_fenced_control", &out);
    no_testbed_left("qc");
}

fn spawn_qemu_soak(out: &Path, name: &str) -> std::process::Child {
    run_cmd("soak", out, name)
        .args(["--sut", "qemu", "--duration", "10m", "--run-length", "10s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// QEMU killed mid-soak is the VMM dying, with its signal; a soak stopped with SIGTERM ends
/// its record and reports; a soak killed with SIGKILL takes QEMU with it, and `net gc`
/// removes its testbed. After each, no QEMU, netns, tap or dnsmasq is left.
#[test]
fn qemu_killed_or_the_soak_stopped_leaves_nothing_behind() {
    if !require("sut_qemu_killed", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sut-qemu-killed");
    let child = spawn_qemu_soak(&out, "qk");
    wait_for_samples(&out, 15, Duration::from_secs(90));
    let qemu = pid_of("qemu-system-x86_64.*ifname=vnbqkt0").expect("the QEMU process");
    // SAFETY: kill(2) on the QEMU process the soak started.
    unsafe { libc::kill(qemu, libc::SIGKILL) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = report(&out);
    assert_eq!(check(&r, "vmm_survived"), "fail", "{r:#}");
    assert_eq!(r["vmm_exit"]["signal"], 9, "{r:#}");
    assert!(
        r["vmm_exit"]["cause"]
            .as_str()
            .unwrap()
            .contains("signal 9"),
        "{r:#}"
    );
    reports_are_valid("sut_qemu_killed", &out);
    no_qemu_left("qk");
    no_testbed_left("qk");

    let out = out_dir("sut-qemu-sigterm");
    let child = spawn_qemu_soak(&out, "qt");
    wait_for_samples(&out, 15, Duration::from_secs(90));
    // SAFETY: kill(2) on the soak this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    // Interrupted: the record ends, and the run cannot be judged.
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let r = report(&out);
    assert_eq!(r["record"]["outcome"], "interrupted", "{r:#}");
    assert_eq!(r["vmm_exit"]["expected"], true, "{r:#}");
    reports_are_valid("sut_qemu_sigterm", &out);
    no_qemu_left("qt");
    no_testbed_left("qt");

    // SIGKILL of the orchestrator: QEMU dies with it (parent-death signal), and `net gc`
    // removes the testbed it left.
    let out = out_dir("sut-qemu-sigkill");
    let mut child = spawn_qemu_soak(&out, "qx");
    wait_for_samples(&out, 6, Duration::from_secs(90));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pid_of("qemu-system-x86_64.*ifname=vnbqxt0").is_some()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    no_qemu_left("qx");
    let o = vnetbed().args(["net", "gc"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    no_testbed_left("qx");
}

/// The guest's stall detector, not the device watchdog (held off with a long timeout),
/// catches vnetbed's unfenced race, and the host confirms it from the tap: the stall is in
/// the record with `source: guest` and the evidence, as it would be for QEMU.
#[test]
fn a_guest_detected_stall_is_confirmed_by_the_host() {
    if !require("sut_guest_stall", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sut-guest-stall");
    let o = run_cmd("soak", &out, "qg")
        .args([
            "--sut",
            "vnetbed:unfenced",
            "--stall-timeout",
            "10m",
            "--duration",
            "30s",
        ])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let stalls: Vec<Value> = records(&out)
        .into_iter()
        .filter(|r| r["record"] == "stall")
        .collect();
    assert!(!stalls.is_empty(), "no stall recorded: {t}");
    for s in &stalls {
        assert_eq!(s["source"], "guest", "{s:#}");
        assert_eq!(s["queue"], "rx", "{s:#}");
        // The VMM stopped taking frames, or took some that never reached the guest.
        let evidence = s["host_evidence"].as_str().unwrap_or("");
        assert!(
            evidence.contains("tx_packets +0") || evidence.contains("rx_packets +0"),
            "{s:#}"
        );
    }
    let r = report(&out);
    assert_eq!(check(&r, "no_stall"), "fail", "{r:#}");
    reports_are_valid("sut_guest_stall", &out);
    no_testbed_left("qg");
}

/// DPDK's vhost library as the system under test (`--sut dpdk`): vnetbed's virtio-mmio
/// device model, `dpdk-testpmd` (Debian's `dpdk-dev`) as the datapath, started by vnetbed in
/// the testbed's namespace.
const DPDK_CAPS: &[Capability] = &[
    Capability::Kvm,
    Capability::Root,
    Capability::Tun,
    Capability::Program("ip"),
    Capability::Program("dnsmasq"),
    Capability::Program("iperf3"),
    Capability::Program("ping"),
    Capability::Program("dpdk-testpmd"),
    Capability::Program("sha256sum"),
];

/// No testpmd of the soak with orchestrator pid `pid` is running, and it left no socket and
/// no DPDK runtime directory.
fn no_testpmd_left(pid: u32) {
    let prefix = format!("vnetbed-dpdk-{pid}-");
    assert_eq!(
        pid_of(&format!("file-prefix {prefix}")),
        None,
        "a testpmd of soak {pid} was left behind"
    );
    for dir in [std::env::temp_dir(), "/var/run/dpdk".into()] {
        let left: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
    }
}

/// The issue's acceptance: `verify --sut dpdk` passes against vnetbed's unfenced model (the
/// default positive control), its B run is a fenced-protocol soak through DPDK that passes,
/// and the identity names the testpmd binary and the DPDK version.
#[test]
fn verify_passes_dpdk_against_the_default_control() {
    if !require("sut_dpdk_verify", DPDK_CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sut-dpdk-verify");
    let child = run_cmd("verify", &out, "dv")
        .args([
            "--sut",
            "dpdk",
            "--runs",
            "1",
            "--timeout",
            "60s",
            "--duration",
            "20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let v = json_file(&out.join("verify.json"));
    assert_eq!(v["verdict"], "pass", "{v:#}");
    assert_eq!(v["plan"]["control"], "vnetbed:unfenced", "{v:#}");
    assert_eq!(v["a_runs"][0]["stalled"], true, "{v:#}");
    let b = &v["b"];
    assert_eq!(b["dir"], "B-dpdk", "{b:#}");
    assert_eq!(b["verdict"], "pass", "{b:#}");
    // vnetbed relayed the backend's calls: the device counted them.
    assert_eq!(b["exposure_source"], "device", "{b:#}");
    assert!(b["rx_interrupt_decisions"].as_u64().unwrap() > 0, "{b:#}");
    let sut = &v["identity"]["sut_vmm"];
    assert_eq!(sut["spec"], "dpdk", "{sut:#}");
    let device = sut["device"].as_str().unwrap();
    let testpmd = find_program("dpdk-testpmd").unwrap();
    assert!(
        device.contains(&testpmd.display().to_string()) && device.contains("(DPDK 2"),
        "{device}"
    );
    let b_report = report(&out.join("B-dpdk"));
    assert_eq!(check(&b_report, "no_stall"), "pass", "{b_report:#}");
    assert_eq!(check(&b_report, "vmm_survived"), "pass", "{b_report:#}");
    reports_are_valid("sut_dpdk_verify", &out.join("B-dpdk"));
    no_testpmd_left(pid);
    no_testbed_left("dv");
}

/// testpmd killed mid-soak is the backend dying: the VMM ends with status 14 and says so,
/// the record names it, and no testpmd, socket, runtime directory or testbed is left.
#[test]
fn testpmd_killed_mid_soak_is_the_backend_dying() {
    if !require("sut_dpdk_killed", DPDK_CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sut-dpdk-killed");
    let child = run_cmd("soak", &out, "dk")
        .args(["--sut", "dpdk", "--duration", "10m", "--run-length", "10s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for_samples(&out, 3, Duration::from_secs(90));
    // The guest's driver has started the vrings: the relay writes counters every second.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::fs::read_to_string(out.join("vmm-events.jsonl"))
        .unwrap_or_default()
        .matches("\"event\":\"counters\"")
        .count()
        < 6
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the vrings did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let testpmd = pid_of(&format!("file-prefix vnetbed-dpdk-{pid}-")).expect("testpmd");
    // SAFETY: kill(2) on the testpmd process the soak started.
    unsafe { libc::kill(testpmd, libc::SIGKILL) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = report(&out);
    assert_eq!(check(&r, "vmm_survived"), "fail", "{r:#}");
    assert_eq!(r["vmm_exit"]["status"], 14, "{r:#}");
    let cause = r["vmm_exit"]["cause"].as_str().unwrap();
    assert!(
        cause.contains("backend died") && cause.contains("closed its vhost-user socket"),
        "{cause}"
    );
    reports_are_valid("sut_dpdk_killed", &out);
    no_testpmd_left(pid);
    no_testbed_left("dk");
}
