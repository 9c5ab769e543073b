//! End-to-end tests of `vnetbed soak` and `vnetbed reproduce` on the real stack: KVM, the
//! probe guest, vnetbed's virtio-net device on a tap in a testbed namespace, dnsmasq and
//! iperf3. The soaks in this file run one at a time (they share two CPU cores).

mod common;
#[path = "probe_support/mod.rs"]
mod probe_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::reports::python_with_modules;
use common::soak::{
    check, healthy_run_checks_pass, no_testbed_left, out_dir, pid_of, report, reports_are_valid,
    text, wait_elapsed, wait_for_samples,
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
    // The fenced soak and reproduce tests run with --capture dhcp.
    Capability::Program("tcpdump"),
];

fn soak_cmd(sub: &str, out: &Path, name: &str) -> Command {
    soak_cmd_of(&common::vnetbed_bin(), sub, out, name)
}

/// [`soak_cmd`] run by another copy of the vnetbed binary.
fn soak_cmd_of(program: &Path, sub: &str, out: &Path, name: &str) -> Command {
    let mut c = Command::new(program);
    c.arg(sub)
        .arg("--out")
        .arg(out)
        .args(["--quiet", "--name", name]);
    c.arg("--kernel").arg(probe_support::probe_image());
    c
}

/// DHCP packets in a pcap file (tcpdump's classic format): (to the server, to the client).
fn dhcp_packets(path: &Path) -> (usize, usize) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() >= 24, "{}: no pcap header", path.display());
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
        "{}: not a little-endian pcap",
        path.display()
    );
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let (mut to_server, mut to_client) = (0, 0);
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32_at(at + 8);
        let frame = &bytes[(at + 16).min(bytes.len())..(at + 16 + len).min(bytes.len())];
        at += 16 + len;
        // Ethernet, IPv4, UDP: the ports follow the IP header.
        if frame.len() < 14 + 20 + 4 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
            continue;
        }
        let udp = 14 + usize::from(frame[14] & 0x0f) * 4;
        let Some(ports) = frame.get(udp..udp + 4) else {
            continue;
        };
        match (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
        ) {
            (68, 67) => to_server += 1,
            (67, 68) => to_client += 1,
            _ => {}
        }
    }
    (to_server, to_client)
}

#[test]
fn fenced_soak_of_60s_passes_with_valid_reports() {
    if !require("fenced_soak", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("fenced");
    let o = soak_cmd("soak", &out, "sf")
        .args([
            "--duration",
            "60s",
            "--notify-model",
            "fenced",
            "--run-length",
            "20s",
        ])
        .args([
            "--renew-after",
            "10s",
            "--rebind-after",
            "20s",
            "--throughput-floor",
            "10M",
            "--json",
            "--capture",
            "dhcp",
        ])
        .output()
        .unwrap();
    let r = report(&out);
    assert_eq!(o.status.code(), Some(0), "{}\nreport: {r:#}", text(&o));
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["run"]["config"]["throughput_floor_bps"], 10e6);
    // --json: stdout is report.json, and nothing else (the progress went to stderr).
    let printed: Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    assert_eq!(printed, r);
    // The boot exchange is the first lease, not a renewal, whichever of the guest's lines and
    // dnsmasq's log came first.
    let timeline = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap();
    let exchanges: Vec<Value> = timeline
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| match v["record"].as_str() {
            Some("dhcp") => vec![v],
            Some("sample") => v["dhcp"].as_array().cloned().unwrap_or_default(),
            _ => vec![],
        })
        .collect();
    let first_request = exchanges
        .iter()
        .find(|e| e["message"] == "request")
        .expect("a DHCP request");
    assert_eq!(first_request["phase"], "request", "{exchanges:#?}");
    // --capture dhcp: the ring on the guest's tap has the DHCP of the whole run, both ways:
    // the boot's DISCOVER and REQUEST with their answers, and every renewal the record holds
    // with its answer; nothing failed, so nothing else was kept.
    let (to_server, to_client) = dhcp_packets(&out.join("capture/ring.pcap0"));
    let count = |what: &str| r["renewals"][what].as_u64().unwrap() as usize;
    assert!(
        to_server >= 2 + count("attempted") && to_client >= 2 + count("answered"),
        "{to_server} to the server, {to_client} to the client: {r:#}"
    );
    let kept: Vec<_> = std::fs::read_dir(out.join("capture"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("ring.pcap"))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
    healthy_run_checks_pass(&r);
    // T1 = 10 s over a minute: the guest renewed several times (the boot exchange is not one
    // of them), and no renewal failed. An answer lost to the host's own tap drops on a busy
    // machine is unresolved, not failed (docs/reports.md), so it is not counted as received.
    let renewals = &r["renewals"];
    // At least the renewal at T1 and the rebinding at T2; on a busy host whose tap drops the
    // answers (unresolved), the guest retries rebinding only rarely, so not more.
    let attempted = renewals["attempted"].as_u64().unwrap();
    assert!(attempted >= 2, "{r:#}");
    assert_eq!(
        renewals["received"].as_u64().unwrap() + renewals["unresolved"].as_u64().unwrap(),
        attempted,
        "{r:#}"
    );
    assert_eq!(check(&r, "resources_flat"), "pass", "{r:#}");
    assert!(r["exposure"]["cycles"].as_u64().unwrap() > 0, "{r:#}");
    reports_are_valid("fenced_soak", &out);
    no_testbed_left("sf");
}

#[test]
fn reproduce_stalls_and_names_the_signature() {
    if !require("reproduce", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("reproduce");
    // T1 10 s, T2 20 s: after the stall the renewals fail at once; the lease itself expires
    // at dnsmasq's 120 s floor, so the whole incident fits in about two and a half minutes.
    let started = Instant::now();
    let o = soak_cmd("reproduce", &out, "sr")
        .args([
            "--timeout",
            "240s",
            "--renew-after",
            "10s",
            "--rebind-after",
            "20s",
            "--capture",
            "dhcp",
            "--json",
        ])
        .output()
        .unwrap();
    let r = report(&out);
    // --json: stdout is the summary alone, with the run's report.json in it.
    let printed: Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    assert_eq!(printed["schema"], "vnetbed.reproduce/1");
    assert_eq!(printed["reproduced"], true, "{printed:#}");
    assert_eq!(printed["exit_status"], 0);
    assert_eq!(printed["report"], r);
    let stall = &r["first_stall"];
    assert!(stall.is_object(), "no stall: {}\n{r:#}", text(&o));
    // The stall came within 60 s of the start, with its full signature.
    assert!(stall["stalled_since"].as_f64().unwrap() < 60.0, "{stall:#}");
    let kind = stall["kind"].as_str().unwrap();
    assert!(kind == "lost_kick" || kind == "lost_interrupt", "{stall:#}");
    for f in [
        "queue",
        "detected_at",
        "device_next_avail",
        "device_next_used",
        "guest_avail_idx",
        "signature",
    ] {
        assert!(!stall[f].is_null(), "{f} missing: {stall:#}");
    }
    let out_text = text(&o);
    assert!(
        out_text.contains(kind),
        "the printed summary names the signature:\n{out_text}"
    );
    // Its consequences: renewals answered by the server but never received, then the lease lost.
    assert_eq!(
        check(&r, "every_renewal_answered_and_received"),
        "fail",
        "{r:#}"
    );
    assert_eq!(check(&r, "lease_never_lost"), "fail", "{r:#}");
    assert_eq!(r["incident_reproduced"], true, "{r:#}");
    assert_eq!(o.status.code(), Some(0), "{out_text}");
    // --capture dhcp kept the packets around the stall and each failed renewal: the server's
    // answers went out on the tap, toward a guest that never took them.
    let kept: Vec<PathBuf> = std::fs::read_dir(out.join("capture"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let named = |prefix: &str| {
        kept.iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(!named("stall-1-at-").is_empty(), "{kept:?}");
    let renewals = named("failed-renewal-1-at-");
    assert!(!renewals.is_empty(), "{kept:?}");
    let answers: usize = renewals.iter().map(|p| dhcp_packets(p).1).sum();
    assert!(answers >= 1, "no answer toward the guest in {renewals:?}");
    eprintln!("reproduced in {:.0} s", started.elapsed().as_secs_f64());
    reports_are_valid("reproduce", &out);
    no_testbed_left("sr");
}

fn spawn_soak(out: &Path, name: &str, duration: &str) -> std::process::Child {
    soak_cmd("soak", out, name)
        .args([
            "--duration",
            duration,
            "--notify-model",
            "fenced",
            "--run-length",
            "10s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigterm_mid_soak_yields_complete_reports() {
    if !require("soak_sigterm", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sigterm");
    let child = spawn_soak(&out, "st", "10m");
    wait_for_samples(&out, 8, Duration::from_secs(60));
    // SAFETY: kill(2) on our child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let r = report(&out);
    // Cut short: the run cannot vouch for the time it did not record.
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(r["record"]["outcome"], "interrupted", "{r:#}");
    assert_eq!(check(&r, "no_stall"), "pass");
    assert!(out.join("junit.xml").exists() && out.join("report.html").exists());
    reports_are_valid("soak_sigterm", &out);
    no_testbed_left("st");
}

#[test]
fn sigkill_then_report_rebuilds_and_gc_cleans_up() {
    if !require("soak_sigkill", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("sigkill");
    let mut child = spawn_soak(&out, "sk", "10m");
    wait_for_samples(&out, 8, Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.join("report.json").exists(),
        "no report can have been written"
    );
    let o = vnetbed().arg("report").arg(&out).output().unwrap();
    // No end record: an error verdict, but every report is rebuilt from the record.
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let r = report(&out);
    assert!(r["record"]["samples"].as_u64().unwrap() >= 8, "{r:#}");
    reports_are_valid("soak_sigkill", &out);
    // The VMM and iperf3 died with the orchestrator (parent-death signal); gc removes the testbed.
    let o = vnetbed().args(["net", "gc"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    no_testbed_left("sk");
}

#[test]
fn killing_the_vmm_mid_soak_is_a_failure_with_its_cause() {
    if !require("soak_vmm_killed", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("vmmkill");
    let child = spawn_soak(&out, "sv", "10m");
    wait_for_samples(&out, 6, Duration::from_secs(60));
    let vmm = pid_of("vnetbed run .*tap=vnbsvt0").expect("the VMM process");
    // SAFETY: kill(2) on the VMM the soak started.
    unsafe { libc::kill(vmm, libc::SIGKILL) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = report(&out);
    assert_eq!(check(&r, "vmm_survived"), "fail", "{r:#}");
    let exit = &r["vmm_exit"];
    assert_eq!(exit["signal"], 9, "{exit:#}");
    assert!(
        exit["cause"].as_str().unwrap().contains("signal 9"),
        "{exit:#}"
    );
    reports_are_valid("soak_vmm_killed", &out);
    no_testbed_left("sv");
}

#[test]
fn killing_dnsmasq_mid_soak_restarts_it_and_renewals_continue() {
    if !require("soak_dnsmasq_killed", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("dnskill");
    let child = soak_cmd("soak", &out, "sd")
        .args([
            "--duration",
            "45s",
            "--notify-model",
            "fenced",
            "--run-length",
            "10s",
        ])
        .args(["--renew-after", "5s", "--rebind-after", "10s"])
        // TCP load: congestion-controlled, so on a busy host the tap does not overflow and
        // drop the server's answers, which this test needs the guest to receive.
        .args(["--load", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_samples(&out, 12, Duration::from_secs(60));
    let dnsmasq = pid_of("dnsmasq.*vnbsdbr").expect("the testbed's dnsmasq");
    // SAFETY: kill(2) on the testbed's dnsmasq.
    unsafe { libc::kill(dnsmasq, libc::SIGKILL) };
    let killed_at = wait_elapsed(&out);
    let o = child.wait_with_output().unwrap();
    let r = report(&out);
    assert_eq!(o.status.code(), Some(0), "{}\n{r:#}", text(&o));
    assert_eq!(
        check(&r, "every_renewal_answered_and_received"),
        "pass",
        "{r:#}"
    );
    // Renewals went on after the restart.
    let timeline = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap();
    let later_acks = timeline
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| v["dhcp"].as_array().cloned().unwrap_or_default())
        .filter(|e| {
            e["at"].as_f64().unwrap_or(0.0) > killed_at
                && e["reply"] == "ack"
                && e["received_by_guest"] == true
        })
        .count();
    assert!(
        later_acks >= 2,
        "renewals after the dnsmasq restart at {killed_at:.0} s: {later_acks}"
    );
    // The record says dnsmasq died and was restarted.
    let noted = timeline
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| v["notes"].as_array().cloned().unwrap_or_default())
        .any(|n| {
            n.as_str()
                .is_some_and(|t| t.contains("dnsmasq exited") && t.contains("restarted"))
        });
    assert!(
        noted,
        "no dnsmasq restart note in the timeline:\n{timeline}"
    );
    no_testbed_left("sd");
}

/// The main job, shortened: `vnetbed verify` A/B. Every unfenced run must stall, and the fenced
/// run (as long as A took, at least 30 s) must not; one verdict with every run's reports.
#[test]
fn verify_ab_passes_and_writes_its_summary() {
    if !require("verify", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("verify");
    // verify runs from a copy of the binary, which is replaced on disk once the first run
    // has started (as a rebuild would do): the later runs' VMMs must still be this build.
    let bin_dir = out.with_extension("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let copy = bin_dir.join("vnetbed");
    std::fs::copy(common::vnetbed_bin(), &copy).unwrap();
    let child = soak_cmd_of(&copy, "verify", &out, "vf")
        .args(["--runs", "2", "--duration", "30s", "--timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_samples(&out.join("A1-unfenced"), 1, Duration::from_secs(60));
    std::fs::remove_file(&copy).unwrap();
    std::fs::write(
        &copy,
        "#!/bin/sh\necho 'the replaced binary ran' >&2\nexit 99\n",
    )
    .unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&bin_dir);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verify.json")).unwrap()).unwrap();
    assert_eq!(v["verdict"], "pass", "{v:#}");
    let runs = v["a_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["stalled"], true, "{r:#}");
        assert!(r["signature"].as_str().unwrap().contains(" on rx"), "{r:#}");
    }
    assert!(
        v["time_to_stall_s"]["max"].as_f64().unwrap() < 60.0,
        "{v:#}"
    );
    assert_eq!(v["b"]["verdict"], "pass", "{v:#}");
    assert!(v["b"]["duration_s"].as_f64().unwrap() >= 30.0, "{v:#}");
    assert!(
        v["b"]["rx_interrupt_decisions"].as_u64().unwrap() > 0,
        "{v:#}"
    );
    // verify shapes its load by default (race): 4-entry rings, UDP in bursts of 6, and each
    // run's header says so; B's exposure is counted per queue and per race, tx included.
    assert_eq!(v["plan"]["shaping"], "race", "{v:#}");
    for dir in ["A1-unfenced", "B-fenced"] {
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(dir).join("report.json")).unwrap(),
        )
        .unwrap();
        let config = &report["run"]["config"];
        assert_eq!(config["load"], "udp-burst", "{dir}: {config:#}");
        assert_eq!(config["rate"], "120M", "{dir}: {config:#}");
        assert_eq!(config["shaping"]["queue_size"], 4, "{dir}: {config:#}");
        assert_eq!(config["shaping"]["burst"], 6, "{dir}: {config:#}");
    }
    let queues = v["b"]["queues"].as_array().unwrap();
    let queue = |name: &str| {
        queues
            .iter()
            .find(|q| q["queue"] == name)
            .unwrap_or_else(|| panic!("no {name} in {v:#}"))
    };
    assert!(queue("rx")["kick_chances"].as_u64().unwrap() > 0, "{v:#}");
    assert!(
        queue("rx")["interrupt_decisions"].as_u64().unwrap() > 0,
        "{v:#}"
    );
    assert!(queue("tx")["kick_chances_per_minute"].is_number(), "{v:#}");
    assert_eq!(
        queue("rx")["kick_chances"],
        v["b"]["exposure_cycles"],
        "one count, two views: {v:#}"
    );
    // Every run left its reports, and the verify directory its own three files: a CI job
    // collecting **/junit.xml finds no failure in a passing verify.
    for dir in ["A1-unfenced", "A2-unfenced", "B-fenced"] {
        assert!(out.join(dir).join("report.json").exists(), "{dir}");
        reports_are_valid("verify", &out.join(dir));
    }
    assert_eq!(
        v["a_runs"][0]["dir"], "A1-unfenced",
        "relative to the verify directory"
    );
    if let Some(python) = python_with_modules("verify") {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let check = Command::new(python)
            .arg(root.join("tests/check_verify.py"))
            .arg(&out)
            .arg(root.join("docs/verify.schema.json"))
            .arg(root.join("docs/report.schema.json"))
            .output()
            .unwrap();
        assert!(check.status.success(), "{}", text(&check));
        let found: Value = serde_json::from_slice(&check.stdout).unwrap();
        assert_eq!(found["junit_files"], 4, "{found:#}");
        assert_eq!(found["failures"], 0, "{found:#}");
        assert_eq!(found["errors"], 0, "{found:#}");
    }
    // `vnetbed report` rebuilds the same verdict from the directories.
    let rebuilt = vnetbed().arg("report").arg(&out).output().unwrap();
    assert_eq!(rebuilt.status.code(), Some(0), "{}", text(&rebuilt));
    no_testbed_left("vf");
}

/// The `virtio-queue` version and source in the workspace's Cargo.lock, as the record must
/// name it (`0.18.0 (crates.io)`).
fn locked_virtio_queue() -> String {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .expect("Cargo.lock");
    let block = lock
        .split("[[package]]")
        .find(|b| b.contains("name = \"virtio-queue\""))
        .expect("virtio-queue in Cargo.lock");
    let version = block
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("its version")
        .trim_matches('"');
    let source =
        if block.contains("source = \"registry+https://github.com/rust-lang/crates.io-index\"") {
            "crates.io"
        } else {
            "path"
        };
    format!("virtio-queue {version} ({source})")
}

/// `verify --sut vnetbed:virtio-queue`: the unfenced control must stall, and rust-vmm's
/// virtio-queue, as the device's queue backend under the same load, must pass the same soak
/// as vnetbed's fenced queue; the record names the crate version that was linked.
#[test]
fn verify_with_virtio_queue_as_the_system_under_test_passes() {
    if !require("verify_virtio_queue", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("verify-vq");
    let o = soak_cmd("verify", &out, "vq")
        .args(["--runs", "1", "--duration", "30s", "--timeout", "60s"])
        .args(["--sut", "vnetbed:virtio-queue"])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verify.json")).unwrap()).unwrap();
    assert_eq!(v["verdict"], "pass", "{v:#}");
    assert_eq!(v["sut"], "vnetbed:virtio-queue", "{v:#}");
    assert_eq!(
        v["identity"]["sut"],
        format!("vnetbed ({})", locked_virtio_queue()).as_str(),
        "{v:#}"
    );
    assert_eq!(v["b"]["dir"], "B-virtio-queue", "{v:#}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains(&locked_virtio_queue()),
        "junit.xml names the crate"
    );
    assert_eq!(v["a_runs"][0]["stalled"], true, "{v:#}");
    assert_eq!(v["b"]["verdict"], "pass", "{v:#}");
    assert!(v["b"]["exposure_cycles"].as_u64().unwrap() > 0, "{v:#}");
    let b = out.join("B-virtio-queue");
    let r = report(&b);
    healthy_run_checks_pass(&r);
    let expected = locked_virtio_queue();
    let timeline = std::fs::read_to_string(b.join("timeline.jsonl")).unwrap();
    let header: Value = serde_json::from_str(timeline.lines().next().unwrap()).unwrap();
    assert_eq!(header["config"]["notify_model"], "virtio-queue");
    assert_eq!(header["config"]["queue_backend"], expected.as_str());
    let events = std::fs::read_to_string(b.join("vmm-events.jsonl")).unwrap();
    let activated: Value = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "device_activated")
        .expect("device_activated");
    assert_eq!(activated["queue_backend"], expected.as_str());
    let names = activated["feature_names"].as_array().unwrap();
    assert!(!names.iter().any(|n| n == "MRG_RXBUF"), "{activated}");
    reports_are_valid("verify_virtio_queue", &b);
    no_testbed_left("vq");
}

/// A system-under-test spec vnetbed does not know is a usage error before anything starts.
#[test]
fn verify_refuses_an_unknown_system_under_test_at_once() {
    let out = out_dir("verify-bad-sut");
    for (spec, says) in [
        ("xen", "unknown system under test"),
        ("vnetbed:fast", "unknown notify model"),
        ("qemu,machine=virt", "use q35, pc or microvm"),
        ("qemu,device=virtio-net-device", "needs machine=microvm"),
        (
            "qemu=/nonexistent/qemu-system-x86_64",
            "cannot use QEMU binary",
        ),
    ] {
        let o = vnetbed()
            .args(["verify", "--sut", spec, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{spec}: {t}");
        assert!(t.contains(says), "{spec}: {t}");
        assert!(!out.exists(), "{spec}: nothing started");
    }
}

/// verify stopped by SIGINT during B still leaves its summary, which says there is no
/// verdict, and how long B really ran; `--json` keeps stdout for that summary alone.
#[test]
fn verify_interrupted_during_b_leaves_its_summary() {
    if !require("verify_interrupted", CAPS) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir("verify-int");
    let child = soak_cmd("verify", &out, "vi")
        .args([
            "--runs",
            "1",
            "--duration",
            "10m",
            "--timeout",
            "60s",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_samples(&out.join("B-fenced"), 5, Duration::from_secs(120));
    // SAFETY: kill(2) on our child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // stdout is the summary, and nothing else.
    let printed: Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verify.json")).unwrap()).unwrap();
    assert_eq!(printed, v);
    assert_eq!(v["verdict"], "error", "{v:#}");
    assert_eq!(v["a_runs"][0]["status"], "stalled", "{v:#}");
    assert_eq!(v["b"]["planned_duration_s"], 600.0, "{v:#}");
    let recorded = wait_elapsed(&out.join("B-fenced"));
    let b_duration = v["b"]["duration_s"].as_f64().unwrap();
    assert!(
        b_duration >= 5.0 && (b_duration - recorded).abs() < 0.01,
        "b.duration_s {b_duration} is what B recorded ({recorded}), not the plan: {v:#}"
    );
    assert!(out.join("junit.xml").exists() && out.join("report.html").exists());
    no_testbed_left("vi");
}
