//! Issue 11: the probe's own stall detector against vnetbed's device watchdog. Under the
//! same iperf3 UDP load into the guest, every stall the device watchdog reports (its
//! `stall` events) must also be reported by the guest (`@probe` `stall` lines), with the
//! matching kind: `lost_interrupt` as `lost_interrupt`, `lost_kick` as `device_stalled`
//! with the lost-kick signature. With the `fenced` model neither reports anything.
//!
//! The device recovers each stall after 3 s (`--on-stall recover`), so one run holds
//! several stalls; the guest's timeout is 1 s and it only reports (it never rescues), so
//! it must see each one first.

mod common;
mod probe_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::require;
use probe_support::acceptance::Vmm;
use probe_support::testbed::Testbed;
use probe_support::*;
use serde_json::Value;

/// Seconds of load in each run, at least.
const LOAD_SECONDS: u64 = 20;
/// The longest a run loads the guest waiting for the device's first stall: the race is a
/// matter of chance (`no-recheck` took up to 12 s in BENCHMARKS.md's sensitivity runs, and
/// issue 15 asks every model to be caught within 60 s), so the run goes on past
/// [`LOAD_SECONDS`] until there is a stall to compare, up to this bound.
const MAX_LOAD_SECONDS: u64 = 90;
/// The device watchdog's timeout; it recovers after reporting.
const DEVICE_STALL_TIMEOUT: &str = "3s";
/// The guest detector's timeout (it only reports).
const GUEST_APPEND: &str = "probe.stall_timeout=1s probe.on_stall=report";
/// The guest detector recovering by itself.
const GUEST_RECOVERS: &str = "probe.stall_timeout=1s probe.on_stall=recover";

/// The device's and the guest's stall reports, as (queue, kind) pairs in order.
struct Stalls {
    device: Vec<(String, String)>,
    guest: Vec<(String, String)>,
    guest_lines: Vec<Value>,
    device_lines: Vec<Value>,
    /// Frames the guest received (its last `counters` line).
    guest_rx_packets: u64,
    /// Stalls the guest recovered from (its last `counters` line).
    guest_recovered: u64,
    /// `t_us` of the counters line `guest_recovered` comes from.
    counted_until_us: u64,
    /// Frames received before the guest's first stall report.
    rx_before_first_stall: u64,
}

fn device_stalls(events: &Path) -> Vec<Value> {
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "stall")
        .collect()
}

fn iperf3_udp(testbed: &Testbed, server: &str) -> Child {
    testbed
        .command("iperf3")
        .args(["-c", server, "-u", "-b", "200M", "-l", "1400", "-t"])
        .arg(MAX_LOAD_SECONDS.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn iperf3")
}

/// Boot the probe on vnetbed with `model`, load it, and collect both sides' stalls.
fn run_model(model: &str, extra: &[&str], dir: &Path) -> Stalls {
    // A buggy model's run needs a device stall to compare: it loads on until one comes.
    run_model_with(model, GUEST_APPEND, extra, "", dir, model != "fenced")
}

/// `until_device_stall`: load past [`LOAD_SECONDS`] until the device reports a stall (at
/// most [`MAX_LOAD_SECONDS`]); otherwise load [`LOAD_SECONDS`].
fn run_model_with(
    model: &str,
    append: &str,
    extra: &[&str],
    net_options: &str,
    dir: &Path,
    until_device_stall: bool,
) -> Stalls {
    let testbed = Testbed::up(None);
    let events = dir.join(format!("events-{model}.jsonl"));
    let mut command: Command = vnetbed_run(&probe_image(), append);
    command
        .arg("--net")
        .arg(format!("tap={},netns={}", testbed.tap, testbed.netns) + net_options)
        .args(["--notify-model", model])
        .args(extra)
        .args([
            "--stall-timeout",
            DEVICE_STALL_TIMEOUT,
            "--on-stall",
            "recover",
        ])
        .arg("--events")
        .arg(&events);
    let mut guest = RunningGuest::start(command);
    let bound = guest.wait_for("DHCP binding", Duration::from_secs(20), |e| {
        e["event"] == "dhcp_state" && e["state"] == "bound"
    });
    let server = bound["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    guest.wait_for("iperf3 server", Duration::from_secs(5), |e| {
        e["event"] == "iperf3" && e["state"] == "listening"
    });
    let mut load = iperf3_udp(&testbed, &server);
    // The load runs LOAD_SECONDS, and on until the device has reported a stall (at most
    // MAX_LOAD_SECONDS); a stall is not an error for the client (UDP).
    let started = Instant::now();
    let deadline = started + Duration::from_secs(MAX_LOAD_SECONDS + 30);
    while load.try_wait().expect("wait for iperf3").is_none() {
        let enough = started.elapsed() >= Duration::from_secs(LOAD_SECONDS)
            && (!until_device_stall || !device_stalls(&events).is_empty());
        if enough || Instant::now() > deadline {
            let _ = load.kill();
            let _ = load.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A stall that began at the end of the load: give both detectors time to speak.
    std::thread::sleep(Duration::from_secs(4));
    let device_lines = device_stalls(&events);
    let all = guest.events();
    let guest_rx_packets = all
        .iter()
        .filter(|e| e["event"] == "counters")
        .filter_map(|e| e["rx_packets"].as_u64())
        .max()
        .unwrap_or(0);
    // The guest's count of recovered stalls, from its last counters line (once a second),
    // and when that line was written: a stall reported after it is not in the count yet.
    let (guest_recovered, counted_until_us) = all
        .iter()
        .filter(|e| e["event"] == "counters")
        .filter_map(|e| Some((e["stalls_recovered"].as_u64()?, e["t_us"].as_u64()?)))
        .max()
        .unwrap_or((0, 0));
    let first_stall_us = all
        .iter()
        .filter(|e| e["event"] == "stall")
        .filter_map(|e| e["t_us"].as_u64())
        .min();
    let rx_before_first_stall = all
        .iter()
        .filter(|e| e["event"] == "counters")
        .filter(|e| first_stall_us.is_some_and(|t| e["t_us"].as_u64().unwrap_or(0) < t))
        .filter_map(|e| e["rx_packets"].as_u64())
        .max()
        .unwrap_or(0);
    let guest_lines: Vec<Value> = all.into_iter().filter(|e| e["event"] == "stall").collect();
    let pair = |e: &Value, kind: &str| {
        (
            e["queue"].as_str().unwrap_or("?").to_string(),
            kind.to_string(),
        )
    };
    Stalls {
        device: device_lines
            .iter()
            .map(|e| {
                let kind = match e["kind"].as_str() {
                    Some("lost_kick") => "device_stalled+lost_kick",
                    Some(other) => other,
                    None => "?",
                };
                pair(e, kind)
            })
            .collect(),
        guest: guest_lines
            .iter()
            .map(|e| {
                let kind = match (e["kind"].as_str(), e["lost_kick_signature"].as_bool()) {
                    (Some("device_stalled"), Some(true)) => "device_stalled+lost_kick",
                    (Some(kind), _) => kind,
                    (None, _) => "?",
                };
                pair(e, kind)
            })
            .collect(),
        guest_lines,
        device_lines,
        guest_rx_packets,
        guest_recovered,
        counted_until_us,
        rx_before_first_stall,
    }
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// Every device stall has a guest report of the same queue and kind (as multisets: the
/// guest may see more, never fewer).
fn assert_matched(model: &str, stalls: &Stalls) {
    eprintln!(
        "{model}: device stalls {:?}; guest stalls {:?}",
        stalls.device, stalls.guest
    );
    assert!(
        !stalls.device.is_empty(),
        "{model}: the device watchdog saw no stall under {MAX_LOAD_SECONDS} s of load"
    );
    let mut unmatched = stalls.guest.clone();
    for stall in &stalls.device {
        match unmatched.iter().position(|g| g == stall) {
            Some(at) => {
                unmatched.remove(at);
            }
            None => panic!(
                "{model}: device stall {stall:?} has no guest report of that kind\n\
                 device: {:#?}\nguest: {:#?}",
                stalls.device_lines, stalls.guest_lines
            ),
        }
    }
}

#[test]
fn guest_detector_matches_every_device_stall_unfenced() {
    let test = "guest_detector_matches_every_device_stall_unfenced";
    if require(test, &Vmm::Vnetbed.caps()) {
        let _one = acceptance_lock();
        let stalls = run_model("unfenced", &[], &out_dir(test));
        assert_matched("unfenced", &stalls);
    }
}

#[test]
fn guest_detector_matches_every_device_stall_no_recheck() {
    let test = "guest_detector_matches_every_device_stall_no_recheck";
    if require(test, &Vmm::Vnetbed.caps()) {
        let _one = acceptance_lock();
        // no-recheck loses kicks only when a queue runs empty, which the probe's always
        // refilled rx ring rarely does at the default window on an idle host (the guest keeps
        // up with 200 Mbit/s): widen the window, on both queues, and give the device a
        // 32-entry rx ring, which a burst empties.
        let stalls = run_model_with(
            "no-recheck",
            GUEST_APPEND,
            &["--race-window", "200us", "--race-queues", "all"],
            ",queue-size=32",
            &out_dir(test),
            true,
        );
        assert_matched("no-recheck", &stalls);
    }
}

#[test]
fn neither_detector_reports_with_fenced() {
    let test = "neither_detector_reports_with_fenced";
    if require(test, &Vmm::Vnetbed.caps()) {
        let _one = acceptance_lock();
        let stalls = run_model("fenced", &[], &out_dir(test));
        assert!(
            stalls.device.is_empty() && stalls.guest.is_empty(),
            "fenced: device {:#?}\nguest {:#?}",
            stalls.device_lines,
            stalls.guest_lines
        );
        // The load did reach the guest (the check is not vacuous): 200 Mbit/s of
        // 1400-byte datagrams is about 18,000 frames/s; a busy machine delivers fewer,
        // so only a thousand a second are required.
        eprintln!(
            "fenced: no stall reported by either detector; the guest received {} frames",
            stalls.guest_rx_packets
        );
        assert!(
            stalls.guest_rx_packets > 1_000 * LOAD_SECONDS,
            "the load did not reach the guest: {} frames",
            stalls.guest_rx_packets
        );
    }
}

/// `probe.on_stall=recover`: the guest finds each stall first (1 s against the device's
/// 3 s), reports it, consumes, and goes on; frames keep reaching it after the first stall.
#[test]
fn guest_detector_recovers_with_on_stall_recover() {
    let test = "guest_detector_recovers_with_on_stall_recover";
    if require(test, &Vmm::Vnetbed.caps()) {
        let _one = acceptance_lock();
        let stalls = run_model_with("unfenced", GUEST_RECOVERS, &[], "", &out_dir(test), false);
        eprintln!(
            "recover: guest stalls {:?}, recovered {}, frames {}; device stalls {:?}",
            stalls.guest, stalls.guest_recovered, stalls.guest_rx_packets, stalls.device
        );
        assert!(
            !stalls.guest.is_empty(),
            "no stall under {LOAD_SECONDS} s of the unfenced model"
        );
        // Every stall reported before the guest's last counters line was recovered by
        // then; one reported after it (the unfenced model loses notifications for any
        // frame, after the load too) is counted at the next line, which the test may not
        // have waited for.
        let reported_before_count = stalls
            .guest_lines
            .iter()
            .filter(|e| e["t_us"].as_u64().unwrap_or(u64::MAX) < stalls.counted_until_us)
            .count();
        assert!(
            (reported_before_count..=stalls.guest.len())
                .contains(&(stalls.guest_recovered as usize)),
            "recovered {} of {} stalls, {reported_before_count} reported before the last count: {:#?}",
            stalls.guest_recovered,
            stalls.guest.len(),
            stalls.guest_lines
        );
        assert!(stalls
            .guest_lines
            .iter()
            .all(|e| e["on_stall"] == "recover"));
        // Recovering is what kept the load flowing after the first stall: with the
        // detector only reporting, that stall would have held until the device's
        // watchdog (3 s), and each later one too. A later stall needs frames that came
        // after the recovery (a lost interrupt for new used entries, or a ring run dry
        // again), so two or more recovered stalls show the flow resumed; and frames kept
        // coming. How many depends on how often the race strikes (on an idle host it may
        // strike every second, each costing the detector's 1 s), not on the recovery: so
        // the floor is a thousand frames, not a rate.
        assert!(
            stalls.guest.len() >= 2,
            "one stall only: did the flow resume after the recovery? {:#?}",
            stalls.guest_lines
        );
        assert!(
            stalls.guest_rx_packets > stalls.rx_before_first_stall + 1_000,
            "{} frames, {} before the first stall",
            stalls.guest_rx_packets,
            stalls.rx_before_first_stall
        );
    }
}

/// One load at a time (cargo runs a binary's tests in parallel threads).
fn acceptance_lock() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}
