//! `vnetbed report DIR`: timelines built here with the record API are judged by the real
//! binary, and its reports are checked by independent consumers (python3: jsonschema,
//! junitparser, xml.etree, html.parser) via tests/check_reports.py.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::reports::{check_with_python, python_with_modules, vnetbed_report, Expect};
use serde_json::{json, Value};
use vnetbed::record::*;

/// A fresh run directory under the target dir.
fn run_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("report-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create run dir");
    dir
}

fn header(notify_model: &str, duration_s: f64) -> RunHeader {
    let mut h = RunHeader::new(RunConfig {
        guest: "probe".into(),
        notify_model: notify_model.into(),
        queue_backend: None,
        race_window: (notify_model != "fenced").then(|| "2us".into()),
        load: "udp".into(),
        rate: Some("200M".into()),
        duration_s: Some(duration_s),
        throughput_floor_bps: Some(50e6),
        ..Default::default()
    });
    h.command = [
        "vnetbed",
        "soak",
        "--duration",
        "2m",
        "--notify-model",
        notify_model,
    ]
    .map(String::from)
    .to_vec();
    h
}

/// What the orchestrator would see in one second of a healthy or stalled guest.
struct World {
    start: f64,
    rx_enables: u64,
    guest_rx: u64,
    stalled: bool,
    lease: LeaseState,
}

impl World {
    fn new(h: &RunHeader) -> Self {
        Self {
            start: h.started_unix,
            rx_enables: 0,
            guest_rx: 0,
            stalled: false,
            lease: LeaseState::Init,
        }
    }

    fn sample(&mut self, second: u32) -> Sample {
        let elapsed = f64::from(second);
        // iperf3 runs of 60 s with a one-second gap between them.
        let iperf_run = (second % 61 != 0).then_some(u64::from(second / 61 + 1));
        let wobble = f64::from(second % 7) * 3e6;
        let to_guest = if self.stalled { 0.0 } else { 190e6 + wobble };
        if !self.stalled {
            self.rx_enables += 4000 + u64::from(second % 5) * 100;
            self.guest_rx += 16_000;
        }
        let q = |queue: &str, notify_enables: u64| QueueCounters {
            queue: queue.into(),
            frames: u64::from(second) * 16_000,
            bytes: u64::from(second) * 24_000_000,
            kicks: u64::from(second) * 900,
            interrupts_sent: u64::from(second) * 1200,
            interrupts_suppressed: u64::from(second) * 300,
            ring_empty: notify_enables,
            notify_enables,
            race_windows: 0,
            tap_eagain: u64::from(second) * 50,
            drops: 0,
        };
        Sample {
            t: self.start + elapsed,
            elapsed,
            throughput: iperf_run.map(|run| Throughput {
                to_guest_bps: Some(to_guest),
                from_guest_bps: Some(if self.stalled { 0.0 } else { 2e6 }),
                iperf_run: Some(run),
            }),
            ping: Some(if self.stalled {
                Ping {
                    rtt_ms: None,
                    lost: true,
                }
            } else {
                Ping {
                    rtt_ms: Some(0.25 + f64::from(second % 11) * 0.03),
                    lost: false,
                }
            }),
            lease: Some(self.lease),
            device: Some(DeviceCounters {
                queues: vec![q("rx", self.rx_enables), q("tx", 10)],
            }),
            guest: Some(GuestCounters {
                rx_packets: self.guest_rx,
                rx_bytes: self.guest_rx * 1400,
                tx_packets: u64::from(second) * 300,
                tx_bytes: u64::from(second) * 30_000,
                refills: self.guest_rx,
                kicks_sent: u64::from(second) * 900,
                kicks_suppressed: u64::from(second) * 3000,
                interrupts: u64::from(second) * 1200,
                polls: u64::from(second) * 1500,
                ring_empty: u64::from(second) * 10,
                rx_cb_enables: u64::from(second) * 1400,
                rx_rechecks: u64::from(second),
            }),
            // Every 10 s, as the orchestrator reads them: flat, with a little wobble.
            resources: if second % 10 == 0 {
                [
                    ("vmm", 101, 70_000),
                    ("dnsmasq", 102, 2_000),
                    ("orchestrator", 100, 9_000),
                ]
                .map(|(process, pid, rss_kib)| ProcessResources {
                    process: process.into(),
                    pid,
                    rss_kib: rss_kib + u64::from(second % 20) * 8,
                    fds: 12 + u64::from(second % 20 == 0),
                    cpu_s: f64::from(second) * 0.2,
                })
                .to_vec()
            } else {
                Vec::new()
            },
            ..Sample::default()
        }
    }
}

fn exchange(
    at: f64,
    phase: DhcpPhase,
    reply: Option<&str>,
    received: Option<bool>,
) -> DhcpExchange {
    DhcpExchange {
        at,
        phase,
        message: if phase == DhcpPhase::Discover {
            "discover"
        } else {
            "request"
        }
        .into(),
        xid: Some(format!("{:08x}", (at * 1000.0) as u64)),
        mac: Some("52:54:00:12:34:56".into()),
        ip: Some("198.18.0.50".into()),
        reply: reply.map(str::to_string),
        received_by_guest: received,
        replied_at: None,
        host_dropped: None,
    }
}

fn end(h: &RunHeader, elapsed: f64, outcome: RunOutcome, detail: Option<&str>) -> Record {
    Record::End(RunEnd {
        t: h.started_unix + elapsed,
        elapsed,
        outcome,
        detail: detail.map(str::to_string),
        logs: Vec::new(),
    })
}

/// A 120 s fenced soak: renewals every 30 s, all answered and received.
fn write_passing(dir: &Path, seconds: u32, finish: bool) -> PathBuf {
    let h = header("fenced", 120.0);
    let path = dir.join(TIMELINE_FILE);
    let mut w = TimelineWriter::create(&path, &h).expect("create timeline");
    let mut world = World::new(&h);
    for second in 1..=seconds {
        let mut s = world.sample(second);
        match second {
            1 => {
                s.dhcp.push(exchange(
                    0.4,
                    DhcpPhase::Discover,
                    Some("offer"),
                    Some(true),
                ));
                s.dhcp
                    .push(exchange(0.5, DhcpPhase::Request, Some("ack"), Some(true)));
                world.lease = LeaseState::Bound;
                s.lease = Some(world.lease);
            }
            s2 if s2 % 30 == 1 => s.dhcp.push(exchange(
                f64::from(s2) - 0.5,
                DhcpPhase::Renew,
                Some("ack"),
                Some(true),
            )),
            _ => {}
        }
        w.sample(&s).expect("append sample");
    }
    if finish {
        w.append(&Record::VmmExit(VmmExit {
            at: f64::from(seconds) + 0.2,
            status: Some(0),
            signal: None,
            cause: "stopped by the orchestrator".into(),
            expected: true,
            last_events: vec![],
        }))
        .expect("append exit");
        w.append(&end(
            &h,
            f64::from(seconds) + 0.5,
            RunOutcome::Completed,
            None,
        ))
        .expect("append end");
    }
    path
}

/// A 180 s unfenced soak: lost kick at 42.3 s, then the 2012 story: renewals answered but not
/// received, rebinding, lease expiry.
fn write_lost_kick(dir: &Path) {
    let h = header("unfenced", 180.0);
    let mut w = TimelineWriter::create(&dir.join(TIMELINE_FILE), &h).expect("create timeline");
    let mut world = World::new(&h);
    world.lease = LeaseState::Bound;
    for second in 1..=180u32 {
        let at = f64::from(second) - 0.5;
        let mut s = world.sample(second);
        match second {
            31 => s
                .dhcp
                .push(exchange(at, DhcpPhase::Renew, Some("ack"), Some(true))),
            43 => {
                let stall = Stall {
                    source: vnetbed::record::StallSource::Device,
                    guest_last_used_idx: None,
                    host_evidence: None,
                    queue: "rx".into(),
                    kind: StallKind::LostKick,
                    detected_at: 42.3,
                    stalled_since: 41.2,
                    device_next_avail: 40_960,
                    device_next_used: 40_960,
                    guest_avail_idx: 41_216,
                    guest_used_event: Some(40_959),
                    guest_avail_flags: 0,
                    last_kick_at: Some(41.19),
                    last_interrupt_at: Some(41.2),
                };
                // As the orchestrator does: the stall goes to disk at once, then the sample.
                w.append(&Record::Stall(stall)).expect("append stall");
                world.stalled = true;
                s = world.sample(second);
            }
            61 => {
                world.lease = LeaseState::Renewing;
                s.lease = Some(world.lease);
                s.dhcp
                    .push(exchange(at, DhcpPhase::Renew, Some("ack"), Some(false)));
            }
            76 => s
                .dhcp
                .push(exchange(at, DhcpPhase::Renew, Some("ack"), Some(false))),
            83 | 97 | 118 => {
                world.lease = LeaseState::Rebinding;
                s.lease = Some(world.lease);
                s.dhcp
                    .push(exchange(at, DhcpPhase::Rebind, Some("ack"), Some(false)));
            }
            151 => {
                world.lease = LeaseState::Expired;
                s.lease = Some(world.lease);
                s.notes.push("guest dropped 198.18.0.50".into());
            }
            152 => {
                world.lease = LeaseState::Selecting;
                s.lease = Some(world.lease);
                s.dhcp.push(exchange(
                    at,
                    DhcpPhase::Discover,
                    Some("offer"),
                    Some(false),
                ));
            }
            _ => {}
        }
        w.sample(&s).expect("append sample");
    }
    w.append(&end(&h, 180.5, RunOutcome::Completed, None))
        .expect("append end");
}

/// A fenced soak whose VMM is killed with SIGKILL at 50 s.
fn write_vmm_crash(dir: &Path) {
    let h = header("fenced", 120.0);
    let mut w = TimelineWriter::create(&dir.join(TIMELINE_FILE), &h).expect("create timeline");
    let mut world = World::new(&h);
    world.lease = LeaseState::Bound;
    for second in 1..=50u32 {
        let mut s = world.sample(second);
        if second == 31 {
            s.dhcp
                .push(exchange(30.5, DhcpPhase::Renew, Some("ack"), Some(true)));
        }
        w.sample(&s).expect("append sample");
    }
    let last_events: Vec<Value> = vec![
        json!({"event": "counters", "t_ms": 49_000, "queue": "rx", "frames": 784_000}),
        json!({"event": "counters", "t_ms": 50_000, "queue": "rx", "frames": 800_000}),
    ];
    w.append(&Record::VmmExit(VmmExit {
        at: 50.4,
        status: None,
        signal: Some(9),
        cause: "killed by SIGKILL".into(),
        expected: false,
        last_events,
    }))
    .expect("append exit");
    let mut s = world.sample(51);
    s.device = None;
    s.guest = None;
    s.throughput = None;
    s.ping = Some(Ping {
        rtt_ms: None,
        lost: true,
    });
    w.sample(&s).expect("append sample");
    w.append(&end(
        &h,
        51.2,
        RunOutcome::Completed,
        Some("the VMM died; run ended early"),
    ))
    .expect("append end");
}

fn report_json(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("read report.json");
    serde_json::from_str(&text).expect("report.json parses")
}

#[test]
fn a_passing_soak_passes() {
    let dir = run_dir("passing");
    write_passing(&dir, 120, true);
    let (code, out) = vnetbed_report(&dir);
    assert_eq!(code, 0, "{out}");
    let r = report_json(&dir);
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["renewals"]["attempted"], 3);
    assert_eq!(r["renewals"]["failed"], 0);
    assert!(r["first_stall"].is_null());
    let p50 = r["throughput"]["to_guest"]["p50"].as_f64().expect("p50");
    assert!((190e6..=208e6).contains(&p50), "to_guest p50 {p50}");
    assert_eq!(r["ping"]["lost"], 0);
    assert_eq!(r["incident_reproduced"], false);
    assert!(r["incident"][0]["at"].is_null());
    // 120 samples of 4000 + (s % 5) * 100 enables each.
    let cycles: u64 = (1..=120u64).map(|s| 4000 + (s % 5) * 100).sum();
    assert_eq!(r["exposure"]["cycles"], cycles);
    // Readings every 10 s after a 12 s warm-up: every process flat.
    let trends = r["resources"].as_array().unwrap();
    assert_eq!(trends.len(), 3, "{trends:#?}");
    assert!(trends.iter().all(|t| t["samples"] == 11), "{trends:#?}");
    if let Some(python) = python_with_modules("a_passing_soak_passes") {
        check_with_python(
            &python,
            &dir,
            &Expect {
                verdict: "pass",
                failures: &[],
                errors: &[],
                skipped: &[],
                first_stall: Value::Null,
            },
        );
    }
}

/// A 5-minute soak whose orchestrator leaks memory and descriptors: resources_flat fails and
/// names it, while the VMM and dnsmasq stay flat; the other checks still pass.
#[test]
fn a_leak_fails_resources_flat_and_names_the_process() {
    let dir = run_dir("leak");
    let h = header("fenced", 300.0);
    let mut w = TimelineWriter::create(&dir.join(TIMELINE_FILE), &h).expect("create timeline");
    let mut world = World::new(&h);
    world.lease = LeaseState::Bound;
    for second in 1..=300u32 {
        let mut s = world.sample(second);
        for r in s
            .resources
            .iter_mut()
            .filter(|r| r.process == "orchestrator")
        {
            // 100 KiB a second (30 MiB over the run) and a descriptor every 30 s.
            r.rss_kib += u64::from(second) * 100;
            r.fds += u64::from(second / 30);
        }
        w.sample(&s).expect("append sample");
    }
    w.append(&end(&h, 300.5, RunOutcome::Completed, None))
        .expect("append end");
    drop(w);
    let (code, out) = vnetbed_report(&dir);
    assert_eq!(code, 1, "{out}");
    let r = report_json(&dir);
    let check = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "resources_flat")
        .expect("resources_flat")
        .clone();
    assert_eq!(check["status"], "fail", "{check:#}");
    assert!(
        check["message"].as_str().unwrap().ends_with("orchestrator"),
        "{check:#}"
    );
    let trends = r["resources"].as_array().unwrap();
    let names: Vec<&str> = trends
        .iter()
        .map(|t| t["process"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vmm", "dnsmasq", "orchestrator"]);
    let orchestrator = &trends[2];
    assert!(
        orchestrator["rss_growth_kib"].as_u64().unwrap() > 20_000,
        "{orchestrator:#}"
    );
    assert!(
        orchestrator["fds_growth"].as_u64().unwrap() >= 6,
        "{orchestrator:#}"
    );
    assert_eq!(trends[0]["rss_growth_kib"], 0, "the VMM stayed flat");
    if let Some(python) = python_with_modules("a_leak_fails_resources_flat") {
        check_with_python(
            &python,
            &dir,
            &Expect {
                verdict: "fail",
                failures: &["resources_flat"],
                errors: &[],
                skipped: &[],
                first_stall: Value::Null,
            },
        );
    }
}

#[test]
fn a_lost_kick_fails_with_its_signature_and_consequences() {
    let dir = run_dir("lost-kick");
    write_lost_kick(&dir);
    let (code, out) = vnetbed_report(&dir);
    assert_eq!(code, 1, "{out}");
    let r = report_json(&dir);
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["first_stall"]["kind"], "lost_kick");
    assert_eq!(r["first_stall"]["detected_at"], 42.3);
    assert_eq!(r["first_stall"]["guest_avail_idx"], 41_216);
    assert_eq!(r["stalls"], 1);
    assert_eq!(r["renewals"]["attempted"], 6);
    assert_eq!(r["renewals"]["answered"], 6);
    assert_eq!(r["renewals"]["received"], 1);
    assert_eq!(r["renewals"]["failed"], 5);
    assert_eq!(r["lease_lost_at"], 151.0);
    assert!(r["ping"]["lost"].as_u64().expect("lost") >= 130);
    // The 2012 story, step by step, with this run's times.
    let times: Vec<Value> = r["incident"]
        .as_array()
        .expect("incident")
        .iter()
        .map(|s| s["at"].clone())
        .collect();
    assert_eq!(
        times,
        [41.2, 60.5, 60.5, 75.5, 75.5, 82.5, 82.5, 151.0]
            .map(|t| json!(t))
            .to_vec()
    );
    assert_eq!(r["incident_reproduced"], true);
    assert!(out.contains("7. the guest gives up its address"), "{out}");
    if let Some(python) =
        python_with_modules("a_lost_kick_fails_with_its_signature_and_consequences")
    {
        check_with_python(
            &python,
            &dir,
            &Expect {
                verdict: "fail",
                failures: &[
                    "no_stall",
                    "every_renewal_answered_and_received",
                    "lease_never_lost",
                    "throughput_above_floor",
                ],
                errors: &[],
                skipped: &[],
                first_stall: json!({"kind": "lost_kick", "queue": "rx", "stalled_since": 41.2}),
            },
        );
    }
}

#[test]
fn a_vmm_crash_fails_with_its_cause() {
    let dir = run_dir("vmm-crash");
    write_vmm_crash(&dir);
    let (code, out) = vnetbed_report(&dir);
    assert_eq!(code, 1, "{out}");
    let r = report_json(&dir);
    assert_eq!(r["vmm_exit"]["cause"], "killed by SIGKILL");
    assert_eq!(r["vmm_exit"]["signal"], 9);
    assert_eq!(
        r["vmm_exit"]["last_events"].as_array().map(Vec::len),
        Some(2)
    );
    let vmm = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "vmm_survived")
        .cloned();
    let vmm = vmm.expect("vmm_survived check");
    assert_eq!(vmm["status"], "fail");
    assert!(
        vmm["message"]
            .as_str()
            .is_some_and(|m| m.contains("SIGKILL")),
        "{vmm}"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).expect("junit.xml");
    assert!(junit.contains("killed by SIGKILL"));
    if let Some(python) = python_with_modules("a_vmm_crash_fails_with_its_cause") {
        check_with_python(
            &python,
            &dir,
            &Expect {
                verdict: "fail",
                failures: &["vmm_survived"],
                errors: &[],
                skipped: &[],
                first_stall: Value::Null,
            },
        );
    }
}

#[test]
fn a_killed_orchestrator_with_a_torn_line_is_rebuilt_as_an_error() {
    let dir = run_dir("torn");
    let path = write_passing(&dir, 70, false);
    // SIGKILL in the middle of a write: half a line, no newline.
    let half =
        r#"{"record":"sample","t":1795000071.0,"elapsed":71.0,"throughput":{"to_guest_bps":19"#;
    let mut text = std::fs::read_to_string(&path).expect("read timeline");
    text.push_str(half);
    std::fs::write(&path, text).expect("tear timeline");
    let (code, out) = vnetbed_report(&dir);
    assert_eq!(code, 2, "{out}");
    let r = report_json(&dir);
    assert_eq!(r["verdict"], "error");
    assert_eq!(r["record"]["samples"], 70, "every whole line is kept");
    assert!(r["record"]["outcome"].is_null());
    let warnings = r["record"]["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].as_str().is_some_and(|w| w.contains("torn")),
        "{warnings:?}"
    );
    if let Some(python) =
        python_with_modules("a_killed_orchestrator_with_a_torn_line_is_rebuilt_as_an_error")
    {
        check_with_python(
            &python,
            &dir,
            &Expect {
                verdict: "error",
                failures: &[],
                errors: &["run_completed"],
                skipped: &[],
                first_stall: Value::Null,
            },
        );
    }
}

#[test]
fn text_from_the_record_is_escaped_in_every_report() {
    let dir = run_dir("escaping");
    let mut h = header("fenced", 5.0);
    h.config.throughput_floor_bps = None;
    h.config.guest = "<guest & \"friends\">".into();
    let mut w = TimelineWriter::create(&dir.join(TIMELINE_FILE), &h).expect("create timeline");
    let mut world = World::new(&h);
    for second in 1..=5 {
        let mut s = world.sample(second);
        s.notes
            .push("]]> <script>alert('x')</script> \u{1} &amp;".into());
        w.sample(&s).expect("append sample");
    }
    w.append(&end(&h, 5.5, RunOutcome::Completed, None))
        .expect("append end");
    drop(w);
    let (code, out) = vnetbed_report(&dir);
    assert_eq!(code, 0, "{out}");
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;guest &amp; &quot;friends&quot;&gt;"));
    if let Some(python) = python_with_modules("text_from_the_record_is_escaped_in_every_report") {
        check_with_python(
            &python,
            &dir,
            &Expect {
                verdict: "pass",
                failures: &[],
                errors: &[],
                skipped: &["throughput_above_floor", "resources_flat"],
                first_stall: Value::Null,
            },
        );
    }
}

#[test]
fn a_directory_without_a_timeline_is_an_error_that_says_so() {
    let dir = run_dir("empty");
    let (code, out) = vnetbed_report(&dir);
    assert_eq!(code, 2);
    assert!(out.contains("timeline.jsonl"), "{out}");
    std::fs::write(dir.join(TIMELINE_FILE), "not json\n").expect("write garbage");
    let (code, out) = vnetbed_report(&dir);
    assert_eq!(code, 2);
    assert!(out.contains("no valid header"), "{out}");
}

/// Not a test by itself: the child process of
/// [`a_sigkilled_writer_loses_no_appended_record`]. With `VNETBED_TEST_WRITER_DIR` set it
/// appends samples forever, printing `appended N` after each append returns.
#[test]
#[ignore = "helper: the child process of a_sigkilled_writer_loses_no_appended_record"]
fn helper_writer_child_process() {
    let Some(dir) = std::env::var_os("VNETBED_TEST_WRITER_DIR") else {
        return;
    };
    let h = header("fenced", 120.0);
    let mut w = TimelineWriter::create(&Path::new(&dir).join(TIMELINE_FILE), &h).expect("create");
    let mut world = World::new(&h);
    world.lease = LeaseState::Bound;
    for second in 1.. {
        w.sample(&world.sample(second)).expect("append");
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "appended {second}")
            .and_then(|()| out.flush())
            .expect("stdout");
    }
}

#[test]
fn a_sigkilled_writer_loses_no_appended_record() {
    use std::io::{BufRead, BufReader};
    let dir = run_dir("sigkill");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "helper_writer_child_process",
            "--ignored",
            "--nocapture",
        ])
        .env("VNETBED_TEST_WRITER_DIR", &dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the writer child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut last = 0u64;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("read child stdout");
        seen.push(line.clone());
        if let Some(n) = line.strip_prefix("appended ") {
            last = n.parse().expect("a count");
            if last >= 40 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("reap the writer");
    assert!(
        !status.success(),
        "the writer must have been killed; it said: {seen:?}"
    );
    // Whatever it confirmed after our break still counts.
    for line in lines.map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("appended ") {
            last = n.parse().expect("a count");
        }
    }
    let (code, out) = vnetbed_report(&dir);
    assert_eq!(code, 2, "killed mid-run is an error: {out}");
    let r = report_json(&dir);
    let samples = r["record"]["samples"].as_u64().expect("samples");
    assert!(
        samples >= last,
        "{last} appends confirmed, only {samples} samples in the record"
    );
    assert!(
        samples <= last + 1,
        "at most the one in flight: {samples} > {last} + 1"
    );
    assert!(r["record"]["outcome"].is_null());
}
