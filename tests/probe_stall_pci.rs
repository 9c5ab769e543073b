//! Issue 13: the 2012 transport. vnetbed's device behind a modern virtio-pci function,
//! the probe driving it with MSI-X (one vector each for configuration, rx and tx), under
//! load both ways: a ping flood into the guest (rx, where the unfenced race is stretched)
//! and an iperf3 reverse UDP test, so that the guest keeps transmitting (and the device
//! keeps sending tx interrupts) whatever happens to rx:
//!
//! - with the `unfenced` model the device's watchdog reports a `lost_interrupt` stall, and
//!   the stall stays: interrupts for the other queue go out on their own vector after the
//!   stall began (the device's `counters` show it), and none of them rescues the stalled
//!   queue (no `recovered` event follows). On virtio-mmio's shared line such an interrupt
//!   would (`recovered` with cause `shared_line_interrupt`);
//! - with `fenced` neither the device nor the guest reports a stall, and the load reached
//!   the guest.
//!
//! Both detectors only report (`--on-stall report`, `probe.on_stall=report`): nothing in
//! the run rescues a queue on purpose.
//!
//! The `legacy` tests do the same over a transitional function (`legacy=on`) driven
//! through its legacy I/O BAR (`probe.virtio_pci=legacy`): the notify models and the
//! watchdog are the same; only the registers and the kick port differ.

mod common;
mod probe_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::require;
use probe_support::acceptance::Vmm;
use probe_support::testbed::Testbed;
use probe_support::*;
use serde_json::Value;

/// Seconds of load in the fenced run.
const LOAD_SECONDS: u64 = 20;
/// The longest the unfenced run loads the guest waiting for a lost interrupt (the race is
/// a matter of chance; issue 15 asks every model to be caught within 60 s).
const MAX_LOAD_SECONDS: u64 = 90;
/// How long the load goes on after the stall was reported, for a rescue to have its chance.
const HOLD_SECONDS: u64 = 8;
/// The longest it goes on when no interrupt for the other queue has gone out since the
/// report (the probe asks for tx interrupts only when its tx ring is full, which on a
/// busy host can take a while): without one, nothing tests a rescue.
const MAX_HOLD_SECONDS: u64 = 30;

fn events_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn first_lost_interrupt(events: &[Value]) -> Option<Value> {
    events
        .iter()
        .find(|e| e["event"] == "stall" && e["kind"] == "lost_interrupt")
        .cloned()
}

/// The load: the guest sends UDP (iperf3 `-R`), and, once that stream runs, a ping flood
/// comes in. The flood is what loses rx interrupts, within a fraction of a second; started
/// before the stream it could stall rx before iperf3's control connection was up, and the
/// guest, sending nothing, would ask for no tx interrupt that could show a rescue. (The
/// unfenced model can lose one even earlier, in the boot's own exchanges: then the stream
/// never starts, and the flood starts after at most 20 s.) Returns the load and whether the
/// guest's stream started.
fn load(testbed: &Testbed, guest: &str, running: &RunningGuest) -> ([Child; 2], bool) {
    let seconds = (MAX_LOAD_SECONDS + MAX_HOLD_SECONDS).to_string();
    let from_guest = testbed
        .command("iperf3")
        .args([
            "-c", guest, "-R", "-u", "-b", "100M", "-l", "1400", "-t", &seconds,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn iperf3");
    let deadline = Instant::now() + Duration::from_secs(20);
    let streaming = loop {
        let events = running.events();
        if events
            .iter()
            .any(|e| e["event"] == "iperf3" && e["state"] == "start")
        {
            break true;
        }
        if Instant::now() >= deadline || events.iter().any(|e| e["event"] == "stall") {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let into_guest = testbed
        .command("ping")
        .args(["-f", "-l", "32", "-s", "1000", "-q", "-w", &seconds, guest])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ping");
    ([from_guest, into_guest], streaming)
}

struct Run {
    device: Vec<Value>,
    guest: Vec<Value>,
}

/// Boot the probe on vnetbed over PCI with `model`, load it with UDP and collect both
/// sides' events. With `until_lost_interrupt` the load goes on until the device reports a
/// lost interrupt (at most [`MAX_LOAD_SECONDS`]) and then [`HOLD_SECONDS`] more, or, while
/// the guest streams and until an interrupt for the other queue has gone out since the
/// report, up to [`MAX_HOLD_SECONDS`]; otherwise it lasts [`LOAD_SECONDS`].
fn run(model: &str, dir: &Path, until_lost_interrupt: bool, legacy: bool) -> Run {
    let testbed = Testbed::up(None);
    let events = dir.join(format!("events-{model}.jsonl"));
    let (append, net, transport) = if legacy {
        (
            "probe.stall_timeout=1s probe.on_stall=report probe.virtio_pci=legacy",
            ",legacy=on",
            "virtio-pci-legacy",
        )
    } else {
        (
            "probe.stall_timeout=1s probe.on_stall=report",
            "",
            "virtio-pci-modern",
        )
    };
    let mut command = vnetbed_run(&probe_image(), append);
    command
        .arg("--net")
        .arg(format!(
            "tap={},netns={},transport=pci{net}",
            testbed.tap, testbed.netns
        ))
        .args(["--notify-model", model])
        .args(["--stall-timeout", "1s", "--on-stall", "report"])
        .arg("--events")
        .arg(&events);
    let mut guest = RunningGuest::start(command);
    let nic = guest.wait_for("nic line", Duration::from_secs(20), |e| e["event"] == "nic");
    assert_eq!(nic["transport"], transport, "{nic}");
    assert_eq!(nic["interrupts"], "msix", "{nic}");
    let bound = guest.wait_for("DHCP binding", Duration::from_secs(20), |e| {
        e["event"] == "dhcp_state" && e["state"] == "bound"
    });
    let server = bound["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .expect("an address")
        .to_string();
    guest.wait_for("iperf3 server", Duration::from_secs(5), |e| {
        e["event"] == "iperf3" && e["state"] == "listening"
    });
    let (mut load, streaming) = load(&testbed, &server, &guest);
    let started = Instant::now();
    let mut stalled_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let done = match stalled_at {
            Some(t) if now - t >= Duration::from_secs(MAX_HOLD_SECONDS) => true,
            // Held longer only while the guest streams: a guest that sends nothing asks
            // for no tx interrupt however long it is held.
            Some(t) if now - t >= Duration::from_secs(HOLD_SECONDS) => {
                !streaming || other_queue_interrupted_since_the_stall(&events_of(&events))
            }
            Some(_) => false,
            None if until_lost_interrupt => {
                if first_lost_interrupt(&events_of(&events)).is_some() {
                    stalled_at = Some(now);
                }
                now - started >= Duration::from_secs(MAX_LOAD_SECONDS)
            }
            None => now - started >= Duration::from_secs(LOAD_SECONDS),
        };
        if done || load[0].try_wait().expect("wait for iperf3").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for child in &mut load {
        let _ = child.kill();
        let _ = child.wait();
    }
    // Let the last counters (every second) reach the file.
    std::thread::sleep(Duration::from_millis(1500));
    Run {
        device: events_of(&events),
        guest: guest.events(),
    }
}

/// Whether, after the first lost interrupt was reported, the device sent an interrupt for
/// the other queue.
fn other_queue_interrupted_since_the_stall(events: &[Value]) -> bool {
    let Some(stall) = first_lost_interrupt(events) else {
        return false;
    };
    let other = if stall["queue"] == "rx" { "tx" } else { "rx" };
    let (before, after) = interrupts_sent(events, other, stall["t_ms"].as_u64().unwrap_or(0));
    after > before
}

fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// `interrupts_sent` of `queue`: in the first counters line at or after `t_ms`, and in the
/// last one.
fn interrupts_sent(events: &[Value], queue: &str, t_ms: u64) -> (u64, u64) {
    let lines: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e["event"] == "counters" && e["queue"] == queue)
        .filter_map(|e| Some((e["t_ms"].as_u64()?, e["interrupts_sent"].as_u64()?)))
        .filter(|(t, _)| *t >= t_ms)
        .collect();
    (
        lines.first().map_or(0, |l| l.1),
        lines.last().map_or(0, |l| l.1),
    )
}

/// Boots of the unfenced run at most: a stall that comes before the guest transmits (e.g.
/// right after its DHCP binding, before the load starts) cannot show whether an interrupt
/// for the other queue would rescue it, so such a run is repeated.
const ATTEMPTS: usize = 3;

#[test]
fn unfenced_over_pci_loses_an_interrupt_and_no_other_vector_rescues_it() {
    unfenced_stall_stays(
        "unfenced_over_pci_loses_an_interrupt_and_no_other_vector_rescues_it",
        false,
    );
}

#[test]
fn unfenced_over_pci_legacy_loses_an_interrupt_and_no_other_vector_rescues_it() {
    unfenced_stall_stays(
        "unfenced_over_pci_legacy_loses_an_interrupt_and_no_other_vector_rescues_it",
        true,
    );
}

fn unfenced_stall_stays(test: &str, legacy: bool) {
    if !require(test, &Vmm::VnetbedPci.caps()) {
        return;
    }
    let dir = out_dir(test);
    for attempt in 1..=ATTEMPTS {
        let run = run("unfenced", &dir, true, legacy);
        let stall = first_lost_interrupt(&run.device).unwrap_or_else(|| {
            panic!("no lost_interrupt stall under {MAX_LOAD_SECONDS} s of unfenced load over PCI")
        });
        let queue = stall["queue"].as_str().expect("queue").to_string();
        let other = if queue == "rx" { "tx" } else { "rx" };
        let detected = stall["t_ms"].as_u64().expect("t_ms");
        // When the stall began, in the VMM's clock: detected minus how long it had lasted.
        let began = detected.saturating_sub(stall["stalled_ms"].as_u64().unwrap_or(0));
        let recovered: Vec<&Value> = run
            .device
            .iter()
            .filter(|e| e["event"] == "recovered" && e["queue"] == queue.as_str())
            .filter(|e| e["t_ms"].as_u64().unwrap_or(0) > detected)
            .collect();
        // Counted from the first counters line after the stall was reported, so every
        // interrupt counted went out while the stall was on.
        let (before, after) = interrupts_sent(&run.device, other, detected);
        let guest_stalls: Vec<&Value> =
            run.guest.iter().filter(|e| e["event"] == "stall").collect();
        eprintln!(
            "unfenced over PCI (legacy: {legacy}), boot {attempt}: {queue} lost an interrupt at t={began} ms \
             (reported at {detected} ms); {other} interrupts sent: {before} after the report, \
             {after} by the end; recovered events for {queue}: {}; guest stall reports: {}",
            recovered.len(),
            guest_stalls.len()
        );
        assert!(
            recovered.is_empty(),
            "the {queue} stall was rescued over PCI: {recovered:#?}"
        );
        // The guest saw the same queue stall (its detector only reports).
        assert!(
            guest_stalls.iter().any(|e| e["queue"] == queue.as_str()),
            "the guest did not report the {queue} stall: {guest_stalls:#?}"
        );
        if after > before {
            // An interrupt for the other queue went out on its own vector after the stall
            // began, and the stall stayed.
            return;
        }
    }
    panic!(
        "in {ATTEMPTS} boots no interrupt for the other queue went out after the stall began, \
         so nothing tested whether one would rescue it"
    );
}

#[test]
fn fenced_over_pci_does_not_stall() {
    fenced_does_not_stall("fenced_over_pci_does_not_stall", false);
}

#[test]
fn fenced_over_pci_legacy_does_not_stall() {
    fenced_does_not_stall("fenced_over_pci_legacy_does_not_stall", true);
}

fn fenced_does_not_stall(test: &str, legacy: bool) {
    if !require(test, &Vmm::VnetbedPci.caps()) {
        return;
    }
    let run = run("fenced", &out_dir(test), false, legacy);
    let device: Vec<&Value> = run
        .device
        .iter()
        .filter(|e| e["event"] == "stall")
        .collect();
    let guest: Vec<&Value> = run.guest.iter().filter(|e| e["event"] == "stall").collect();
    let frames = run
        .device
        .iter()
        .filter(|e| e["event"] == "counters" && e["queue"] == "rx")
        .filter_map(|e| e["frames"].as_u64())
        .max()
        .unwrap_or(0);
    eprintln!("fenced over PCI (legacy: {legacy}): {frames} rx frames, no stall expected");
    assert!(
        device.is_empty() && guest.is_empty(),
        "fenced: device {device:#?}\nguest {guest:#?}"
    );
    // The load reached the guest (the check is not vacuous): a thousand frames a second
    // at least, far below 200 Mbit/s even on a busy machine.
    assert!(frames > 1_000 * LOAD_SECONDS, "{frames} rx frames");
}
