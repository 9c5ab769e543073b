//! verify's outputs, built from run directories written here with the record API (no KVM
//! needed): `vnetbed report DIR` on a verify directory rebuilds every run's reports and the
//! top-level verify.json, junit.xml and report.html, which independent consumers then check
//! (tests/check_verify.py: jsonschema against docs/verify.schema.json, junitparser, xml.etree).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::reports::{python_with_modules, vnetbed_report};
use serde_json::{json, Value};
use vnetbed::record::*;

fn verify_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("verify-report-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create verify dir");
    dir
}

/// How one synthetic run goes.
struct Run<'a> {
    phase: &'a str,
    model: &'a str,
    planned_s: f64,
    /// Seconds of samples.
    seconds: u32,
    /// `stalled_since` of a lost kick, if the run stalls.
    stall_at: Option<f64>,
    outcome: Option<RunOutcome>,
}

fn write_run(verify: &Path, r: &Run) {
    let dir = verify.join(r.phase);
    std::fs::create_dir_all(&dir).expect("create run dir");
    let mut h = RunHeader::new(RunConfig {
        guest: "probe".into(),
        notify_model: r.model.into(),
        load: "udp".into(),
        rate: Some("200M".into()),
        duration_s: Some(r.planned_s),
        throughput_floor_bps: Some(50e6),
        phase: Some(r.phase.into()),
        expect_stall: r.model != "fenced",
        ..Default::default()
    });
    h.command = ["vnetbed", "verify", "--runs", "2"]
        .map(String::from)
        .to_vec();
    let mut w = TimelineWriter::create(&dir.join(TIMELINE_FILE), &h).expect("timeline");
    let mut enables = 0u64;
    for second in 1..=r.seconds {
        let elapsed = f64::from(second);
        let stalled = r.stall_at.is_some_and(|at| elapsed > at);
        if let Some(at) = r
            .stall_at
            .filter(|at| (elapsed - 1.0..elapsed).contains(at))
        {
            w.append(&Record::Stall(Stall {
                source: vnetbed::record::StallSource::Device,
                guest_last_used_idx: None,
                host_evidence: None,
                queue: "rx".into(),
                kind: StallKind::LostKick,
                detected_at: at + 1.0,
                stalled_since: at,
                device_next_avail: 4096,
                device_next_used: 4096,
                guest_avail_idx: 4352,
                guest_used_event: Some(4095),
                guest_avail_flags: 0,
                last_kick_at: Some(at - 0.01),
                last_interrupt_at: Some(at),
            }))
            .expect("stall");
        }
        if !stalled {
            enables += 4000;
        }
        let mut s = Sample {
            t: h.started_unix + elapsed,
            elapsed,
            throughput: Some(Throughput {
                to_guest_bps: Some(if stalled { 0.0 } else { 190e6 }),
                from_guest_bps: Some(1e6),
                iperf_run: Some(1),
            }),
            ping: Some(Ping {
                rtt_ms: Some(0.3),
                lost: false,
            }),
            lease: Some(LeaseState::Bound),
            device: Some(DeviceCounters {
                queues: vec![QueueCounters {
                    queue: "rx".into(),
                    notify_enables: enables,
                    ring_empty: enables,
                    interrupts_sent: u64::from(second) * 1000,
                    interrupts_suppressed: u64::from(second) * 500,
                    ..Default::default()
                }],
            }),
            ..Sample::default()
        };
        if second == 1 {
            for (phase, reply) in [(DhcpPhase::Discover, "offer"), (DhcpPhase::Request, "ack")] {
                s.dhcp.push(DhcpExchange {
                    at: 0.5,
                    phase,
                    message: "request".into(),
                    xid: Some("00000001".into()),
                    mac: None,
                    ip: Some("198.18.0.50".into()),
                    reply: Some(reply.into()),
                    received_by_guest: Some(true),
                    replied_at: Some(0.5),
                    host_dropped: None,
                });
            }
        }
        w.sample(&s).expect("sample");
    }
    let end_at = f64::from(r.seconds) + 0.3;
    if let Some(outcome) = r.outcome {
        w.append(&Record::VmmExit(VmmExit {
            at: end_at,
            status: Some(10),
            signal: None,
            cause: "stopped by the orchestrator at the end of the run".into(),
            expected: true,
            last_events: vec![],
        }))
        .expect("exit");
        w.append(&Record::End(RunEnd {
            t: h.started_unix + end_at,
            elapsed: end_at,
            outcome,
            detail: (outcome == RunOutcome::Interrupted).then(|| "stopped by signal 2".into()),
            logs: Vec::new(),
        }))
        .expect("end");
    }
}

fn control(phase: &str, stall_at: Option<f64>, seconds: u32) -> Run<'_> {
    Run {
        phase,
        model: "unfenced",
        planned_s: 60.0,
        seconds,
        stall_at,
        outcome: Some(RunOutcome::Completed),
    }
}

fn fix(seconds: u32, planned_s: f64, outcome: RunOutcome) -> Run<'static> {
    Run {
        phase: "B-fenced",
        model: "fenced",
        planned_s,
        seconds,
        stall_at: None,
        outcome: Some(outcome),
    }
}

/// A verify.json as the live verify writes it at its start: the plan, no runs yet.
fn write_plan(dir: &Path, runs: usize) {
    let plan = json!({
        "schema": "vnetbed.verify/1",
        "plan": {"runs": runs, "timeout_s": 60.0, "min_b_duration_s": 30.0, "buggy_model": "unfenced"},
        "identity": {"vnetbed_version": "0.1.0", "revision": null, "kernel": null,
                     "kernel_sha256": null, "tools": {}}
    });
    std::fs::write(dir.join("verify.json"), plan.to_string()).expect("write plan");
}

fn verify_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("verify.json")).expect("verify.json"))
        .expect("verify.json parses")
}

/// Check every output with tests/check_verify.py; returns what it found.
fn consumers(test: &str, dir: &Path) -> Option<Value> {
    let python = python_with_modules(test)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .arg(root.join("tests/check_verify.py"))
        .arg(dir)
        .arg(root.join("docs/verify.schema.json"))
        .arg(root.join("docs/report.schema.json"))
        .output()
        .expect("run check_verify.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check_verify.py rejected {}:\n{stderr}",
        dir.display()
    );
    Some(serde_json::from_slice(&out.stdout).expect("check_verify.py prints JSON"))
}

#[test]
fn a_passing_verify_is_green_for_a_ci_that_collects_every_junit_xml() {
    let dir = verify_dir("pass");
    write_plan(&dir, 2);
    write_run(&dir, &control("A1-unfenced", Some(12.4), 13));
    write_run(&dir, &control("A2-unfenced", Some(30.2), 31));
    write_run(&dir, &fix(60, 60.0, RunOutcome::Completed));
    let (status, text) = vnetbed_report(&dir);
    assert_eq!(status, 0, "{text}");
    let v = verify_json(&dir);
    assert_eq!(v["verdict"], "pass", "{v:#}");
    assert_eq!(
        v["a_runs"][0]["dir"], "A1-unfenced",
        "relative to the verify dir"
    );
    assert_eq!(v["b"]["dir"], "B-fenced");
    assert_eq!(v["time_to_stall_s"]["values"], json!([12.4, 30.2]));
    assert_eq!(v["b"]["races"]["lost_kick"]["count"], 240_000);
    assert_eq!(v["b"]["races"]["lost_interrupt"]["count"], 90_000);
    let Some(found) = consumers("verify_pass", &dir) else {
        return;
    };
    // Four junit.xml files (top, A1, A2, B): no failure or error anywhere, unique suites.
    assert_eq!(found["junit_files"], 4, "{found:#}");
    assert_eq!(found["failures"], 0, "{found:#}");
    assert_eq!(found["errors"], 0, "{found:#}");
    let top = &found["top_suites"];
    assert_eq!(
        top,
        &json!({"vnetbed.verify.phase-A": ["A1-unfenced stalls as expected", "A2-unfenced stalls as expected"],
                "vnetbed.verify.phase-B": ["no_stall", "every_renewal_answered_and_received",
                    "lease_never_lost", "throughput_above_floor", "vmm_survived", "run_completed",
                    "resources_flat"]}),
        "{found:#}"
    );
    // The top page links every run's page; the control runs' pages say what they showed.
    assert_eq!(
        found["links"],
        json!([
            "A1-unfenced/report.html",
            "A2-unfenced/report.html",
            "B-fenced/report.html"
        ])
    );
    let a1 = std::fs::read_to_string(dir.join("A1-unfenced/report.html")).unwrap();
    assert!(
        a1.contains("expected to stall: stalled at 12.4 s"),
        "A1 page"
    );
    assert!(
        !a1.contains(">FAIL<"),
        "a control run that stalled is not a red FAIL"
    );
}

#[test]
fn an_interrupted_verify_still_has_a_summary_that_report_rebuilds() {
    // Stopped during A2: A1 stalled, A2 was interrupted, B never ran.
    let dir = verify_dir("interrupted");
    write_plan(&dir, 3);
    write_run(&dir, &control("A1-unfenced", Some(8.0), 9));
    write_run(
        &dir,
        &Run {
            outcome: Some(RunOutcome::Interrupted),
            ..control("A2-unfenced", None, 5)
        },
    );
    let (status, text) = vnetbed_report(&dir);
    assert_eq!(status, 2, "{text}");
    let v = verify_json(&dir);
    assert_eq!(v["verdict"], "error", "{v:#}");
    let statuses: Vec<&str> = v["a_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["stalled", "unjudged", "not_run"]);
    assert!(v["b"].is_null());
    assert!(
        v["reason"].as_str().unwrap().contains("A2-unfenced"),
        "{v:#}"
    );
    if let Some(found) = consumers("verify_interrupted", &dir) {
        assert_eq!(found["failures"], 0, "{found:#}");
        // A2 (interrupted), A3 and B (not run) in the top file; A2's own run_completed.
        assert_eq!(found["top_errors"], 3, "{found:#}");
    }
}

#[test]
fn b_duration_is_what_b_recorded_and_a_control_run_without_a_stall_leaves_no_verdict() {
    let dir = verify_dir("short-b");
    write_plan(&dir, 1);
    write_run(&dir, &control("A1-unfenced", None, 60));
    write_run(&dir, &fix(40, 120.0, RunOutcome::Interrupted));
    let (status, text) = vnetbed_report(&dir);
    let v = verify_json(&dir);
    // B was cut short: it says so, and how long it really ran.
    assert!(
        (v["b"]["duration_s"].as_f64().unwrap() - 40.3).abs() < 0.01,
        "{v:#}"
    );
    assert_eq!(v["b"]["planned_duration_s"], 120.0);
    assert_eq!(v["b"]["verdict"], "error");
    // B could not be judged, so no verdict on the fix: error, even though A1 did not stall.
    assert_eq!(status, 2, "{text}");
    assert_eq!(v["a_runs"][0]["status"], "no_stall");
    let a1: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("A1-unfenced/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        a1["verdict"], "fail",
        "a control run that did not stall fails"
    );
    assert_eq!(a1["checks"][0]["name"], "stalled_as_expected");
    if let Some(found) = consumers("verify_short_b", &dir) {
        assert_eq!(found["top_failures"], 1, "{found:#}");
    }

    // With B complete, the control run that did not stall still leaves verify without a
    // verdict on the fix (exit 2): this run could not have caught the bug.
    std::fs::remove_dir_all(dir.join("B-fenced")).expect("remove B");
    write_run(&dir, &fix(60, 60.0, RunOutcome::Completed));
    let (status, text) = vnetbed_report(&dir);
    assert_eq!(status, 2, "{text}");
    let v = verify_json(&dir);
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("A1-unfenced (vnetbed:unfenced) did not stall")
            && reason.contains("could not have caught the bug"),
        "{reason}"
    );
    assert_eq!(v["verdict"], "error");
}

#[test]
fn a_directory_that_is_not_a_verify_directory_is_left_alone() {
    let dir = verify_dir("empty");
    let (status, text) = vnetbed_report(&dir);
    assert_eq!(status, 2, "{text}");
    assert!(!dir.join("verify.json").exists());
}
