//! DPDK's vhost library as the system under test (`--sut dpdk`): vnetbed's virtio-mmio
//! device model, `dpdk-testpmd` (Debian's `dpdk-dev`) as the datapath, started by vnetbed
//! in the testbed's namespace. verify against the default positive control, and testpmd
//! killed mid-soak. One soak at a time.

mod common;
#[path = "probe_support/mod.rs"]
mod probe_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::soak::{
    check, no_testbed_left, out_dir, pid_of, report, reports_are_valid, text, wait_for_samples,
};
use common::{require, vnetbed, Capability};
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
    Capability::Program("dpdk-testpmd"),
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

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The acceptance: `verify --sut dpdk` passes against vnetbed's unfenced model (the
/// default positive control), its B run is a fenced-protocol soak through DPDK that passes,
/// and the identity names the testpmd binary and the DPDK version.
#[test]
fn verify_passes_dpdk_against_the_default_control() {
    if !require("sut_dpdk_verify", CAPS) {
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
    let testpmd = common::find_program("dpdk-testpmd").unwrap();
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
    if !require("sut_dpdk_killed", CAPS) {
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
