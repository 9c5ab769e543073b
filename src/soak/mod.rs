//! The soak engine behind `vnetbed soak`, `reproduce` and `verify`.
//!
//! ```text
//! testbed (netns, bridge, tap, dnsmasq) ─ DHCP events ─┐
//! the VMM (child: `vnetbed run` or QEMU) ── serial @probe lines, vnetbed's event stream ─┤
//! iperf3 client runs (children, in the netns) ── per-second throughput ──────────┼─> one Sample a second
//! ping (child, in the netns) ── RTT / loss ──────────────────────────────────────┘   -> timeline.jsonl
//! ```
//!
//! The system under test runs in its own process, so a VMM that crashes or hangs is recorded
//! (as a `vmm_exit`) and never takes the record with it. vnetbed's own VMM reports stalls from
//! its device watchdog; any VMM (QEMU) has the probe guest's stall detector, whose findings
//! count once the host confirms them ([`guest_stall`]). Every record reaches the disk before
//! the next one is written; the reports are rebuilt from the record at the end.

pub mod capture;
pub mod children;
pub mod convert;
pub mod dhcp_track;
pub mod disk;
pub mod event_pipe;
pub mod guest_stall;
pub mod load;
pub mod logfile;
pub mod parse;
pub mod resources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::net::{Testbed, TestbedConfig};
use crate::record::{
    unix_now, DeviceCounters, GuestCounters, Note, Ping, Record, RunConfig, RunEnd, RunHeader,
    RunOutcome, Sample, Throughput, TimelineWriter, VmmExit, TIMELINE_FILE,
};
use crate::report::{self, Progress, RunReport};
use crate::sut::SutSpec;
use children::{in_netns, Line, LineChild};
use dhcp_track::{lease_state_from_word, parse_xid, DhcpTracker};
use event_pipe::EventPipe;
use guest_stall::{GuestStalls, Settled, TapStats};
use load::{LoadKind, LoadMsg, LoadPlan};
use logfile::RotatingLog;
use parse::{ping_line, probe_line, PingLine};

/// When a soak stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopWhen {
    /// After the planned duration.
    Duration,
    /// When the 2012 incident has fully unfolded (stall, failed renewals, lease lost), or the
    /// duration (the timeout) passes.
    IncidentComplete,
    /// At the first stall, or when the duration (the timeout) passes.
    FirstStall,
}

/// Everything a soak needs.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    /// Planned length (the timeout, for `StopWhen::IncidentComplete`).
    pub duration: Duration,
    /// Guest name for the record (`probe`, `linux`).
    pub guest: String,
    /// The guest kernel image.
    pub kernel: PathBuf,
    /// Initrd (Linux guests).
    pub initrd: Option<PathBuf>,
    /// Guest memory in MiB.
    pub mem_mib: u64,
    /// The system under test: vnetbed's VMM with a notify model, or a QEMU build.
    pub sut: SutSpec,
    /// Race window of vnetbed's buggy models (`--race-window`).
    pub race_window: Option<Duration>,
    /// Stall timeout: vnetbed's device watchdog's, or (for another VMM) the guest detector's.
    pub stall_timeout: Option<Duration>,
    /// Load.
    pub load: LoadKind,
    /// UDP rate (iperf3 `-b`).
    pub rate: String,
    /// Length of each iperf3 run.
    pub run_length: Duration,
    /// T1/T2 overrides for the testbed's DHCP server.
    pub renew_after: Option<Duration>,
    /// T2 override.
    pub rebind_after: Option<Duration>,
    /// Floor for the throughput check.
    pub throughput_floor_bps: Option<f64>,
    /// Run directory.
    pub out: PathBuf,
    /// No live progress line.
    pub quiet: bool,
    /// Stop condition.
    pub stop_when: StopWhen,
    /// Testbed name (unique per concurrent soak).
    pub testbed_name: String,
    /// How long the guest may take to get its first lease.
    pub dhcp_timeout: Duration,
    /// `vnetbed verify`'s name for this run (`A1-unfenced`), recorded in the header.
    pub phase: Option<String>,
    /// A control run, expected to stall (recorded in the header; its checks say so).
    pub expect_stall: bool,
    /// What tcpdump captures on the guest's tap (`--capture`).
    pub capture: capture::CaptureMode,
}

/// Errors that keep a soak from running at all (a failed run is a verdict, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// The run directory.
    #[error("cannot use run directory {path}: {source}")]
    OutDir {
        /// Path.
        path: PathBuf,
        /// Error.
        #[source]
        source: std::io::Error,
    },
    /// The record.
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    /// The testbed.
    #[error("cannot bring up the testbed network: {0}")]
    Testbed(#[from] crate::net::error::NetError),
    /// The VMM process.
    #[error("cannot start the VMM: {0}")]
    Vmm(#[source] std::io::Error),
    /// The system under test cannot run (its QEMU binary is missing).
    #[error(transparent)]
    Sut(#[from] crate::sut::SutSpecError),
    /// The reports.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// The packet capture.
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
    /// The run directory's filesystem cannot hold twice what the run will write.
    #[error(
        "not enough disk for this run: it may write {projected} to {dir}, whose filesystem has \
         {free} free; vnetbed starts only with twice that free. Free some space, use another \
         --out, or a shorter --duration"
    )]
    Disk {
        /// The run directory.
        dir: PathBuf,
        /// The projection, in words.
        projected: String,
        /// The free space, in words.
        free: String,
    },
}

/// A line on stderr for the person watching. A closed stderr (the terminal went away, the
/// parent closed its pipe) must not end the soak before it has torn its testbed down, so a
/// failed write is ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `say!` without the newline (the live progress line, rewritten in place).
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

/// Route SIGINT and SIGTERM to a flag the soak loop checks: it then finishes the record and
/// the reports from what it has, and tears everything down.
pub fn install_stop_handlers() {
    if let Err(e) = vmm::signals::route_stop_signals(&[libc::SIGINT, libc::SIGTERM]) {
        tracing::warn!("cannot install the SIGINT/SIGTERM handlers: {e}");
    }
}

/// The signal that asked the soak to stop, if any.
pub fn stop_signal() -> Option<i32> {
    vmm::signals::stop_signal()
}

/// A MAC address unique to this process (locally administered, QEMU's 52:54:00 prefix).
fn guest_mac() -> String {
    let p = std::process::id();
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (p >> 16) & 0xff,
        (p >> 8) & 0xff,
        p & 0xff
    )
}

/// Put `cmd` in a process group of its own, and have it killed when this process dies.
pub fn own_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // Keep Ctrl-C at the terminal for the orchestrator alone: it stops the children in order.
    cmd.process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook only makes async-signal-safe system calls (prctl, getppid) and touches
    // no memory of the parent; if the orchestrator is SIGKILLed, the child gets SIGKILL
    // instead of running on (and does not start if the orchestrator is already gone).
    unsafe {
        cmd.pre_exec(move || vmm::signals::die_with_parent(libc::SIGKILL, parent));
    }
}

struct Vmm {
    child: LineChild,
    serial: Receiver<Line>,
    /// vnetbed's event stream (absent for another VMM).
    events: Option<EventPipe>,
    last_events: Vec<Value>,
    last_event_at: Instant,
    /// Whether the VMM has printed anything yet (a firmware may boot silently for a while).
    spoke: bool,
}

impl Vmm {
    fn poll_events(&mut self) -> Vec<String> {
        self.events
            .as_mut()
            .map(EventPipe::poll)
            .unwrap_or_default()
    }
}

fn start_vmm(plan: &SoakPlan, testbed: &Testbed, mac: &str) -> Result<Vmm, SoakError> {
    let info = testbed.info();
    let tap = info.taps.first().cloned().unwrap_or_default();
    let (mut cmd, events) = match &plan.sut {
        SutSpec::Vnetbed { model } => {
            let (cmd, events) = vnetbed_command(plan, *model, &info.netns, &tap, mac)?;
            (cmd, Some(events))
        }
        SutSpec::Qemu(q) => {
            let binary = q.resolve_binary()?;
            let append = match plan.stall_timeout {
                Some(t) => format!("probe.stall_timeout={}ms", t.as_millis()),
                None => String::new(),
            };
            let launch = crate::qemu::QemuLaunch {
                binary: &binary,
                machine: q.machine,
                device: q.device,
                modern: q.modern,
                extra: &q.extra,
                mem_mib: plan.mem_mib,
                kernel: &plan.kernel,
                initrd: plan.initrd.as_deref(),
                append: &append,
                tap: Some(&tap),
                mac: Some(mac),
            };
            (launch.in_netns(&info.netns), None)
        }
    };
    own_process_group(&mut cmd);
    let (child, serial) = LineChild::spawn(&plan.sut.label(), cmd).map_err(SoakError::Vmm)?;
    let mut events = events;
    if let Some(e) = events.as_mut() {
        e.spawned();
    }
    Ok(Vmm {
        child,
        serial,
        events,
        last_events: Vec::new(),
        last_event_at: Instant::now(),
        spoke: false,
    })
}

/// `vnetbed run` for the soak, with its event stream through a pipe.
fn vnetbed_command(
    plan: &SoakPlan,
    model: vmm::devices::virtio::net::NotifyModel,
    netns: &str,
    tap: &str,
    mac: &str,
) -> Result<(Command, EventPipe), SoakError> {
    let exe = std::env::current_exe().map_err(SoakError::Vmm)?;
    let mut cmd = Command::new(exe);
    // The event stream comes through a pipe, and its reader keeps vmm-events.jsonl bounded.
    let (events, events_path) =
        EventPipe::attach(&mut cmd, &plan.out.join(VMM_EVENTS_FILE)).map_err(SoakError::Vmm)?;
    cmd.arg("run").arg("--kernel").arg(&plan.kernel);
    if let Some(i) = &plan.initrd {
        cmd.arg("--initrd").arg(i);
    }
    cmd.args(["--mem", &plan.mem_mib.to_string()]);
    cmd.args(["--net", &format!("tap={tap},netns={netns},mac={mac}")]);
    cmd.args(["--notify-model", &model.to_string(), "--on-stall", "report"]);
    let text = |d: Duration| humantime::format_duration(d).to_string();
    if let Some(w) = plan.race_window {
        cmd.args(["--race-window", &text(w)]);
    }
    if let Some(t) = plan.stall_timeout {
        cmd.args(["--stall-timeout", &text(t)]);
    }
    cmd.args(["--events", &events_path, "--serial", "stdout"]);
    Ok((cmd, events))
}

fn start_ping(netns: &str, guest: &str) -> std::io::Result<(LineChild, Receiver<Line>)> {
    let mut cmd = in_netns(netns, "ping");
    cmd.args(["-n", "-O", "-i", "1", "-W", "1", guest]);
    own_process_group(&mut cmd);
    LineChild::spawn("ping", cmd)
}

/// What one second accumulates.
#[derive(Default)]
struct SecondAcc {
    to_guest: Vec<f64>,
    from_guest: Vec<f64>,
    ping: Option<Ping>,
    notes: Vec<String>,
}

/// The result of a soak.
pub struct SoakResult {
    /// The reports written.
    pub report: RunReport,
    /// The run directory.
    pub dir: PathBuf,
}

/// The VMM's event stream in a run directory (size-bounded; its older part is `.1`).
pub const VMM_EVENTS_FILE: &str = "vmm-events.jsonl";
/// The guest's serial console in a run directory (size-bounded; its older part is `.1`).
pub const SERIAL_LOG_FILE: &str = "serial.log";

/// Seconds the VMM may stay silent (no event, no serial line) before it counts as hung.
pub const HANG_AFTER_S: u64 = 15;

/// Seconds a VMM may stay silent before its first line (a firmware such as SeaBIOS boots
/// without a word, slowly where guest real mode is emulated).
pub const BOOT_SILENCE_S: u64 = 60;

/// Seconds apart within which a guest detector's stall and a device watchdog's stall on the
/// same queue are one stall (recorded once, as the device's, which sees more).
const SAME_STALL_S: f64 = 5.0;

/// Run a soak; the verdict is in the result.
pub fn run(plan: &SoakPlan) -> Result<SoakResult, SoakError> {
    // Before anything is created: will the record and its logs fit?
    let mut projection =
        disk::project(&plan.out, plan.duration).map_err(|source| SoakError::OutDir {
            path: plan.out.clone(),
            source,
        })?;
    projection.bytes += plan.capture.max_bytes();
    let (projected, free) = (
        disk::format_bytes(projection.bytes),
        disk::format_bytes(projection.free),
    );
    if !projection.fits() {
        return Err(SoakError::Disk {
            dir: plan.out.clone(),
            projected,
            free,
        });
    }
    say!(
        "vnetbed: this run may write up to {projected} to {} ({free} free there)",
        plan.out.display()
    );
    std::fs::create_dir_all(&plan.out).map_err(|source| SoakError::OutDir {
        path: plan.out.clone(),
        source,
    })?;
    plan.sut.check()?;
    let model = plan.sut.notify_model();
    let config = RunConfig {
        guest: plan.guest.clone(),
        notify_model: model.map_or_else(|| plan.sut.label(), |m| m.to_string()),
        sut: Some(plan.sut.to_string()),
        vmm: Some(Box::new(plan.sut.vmm_identity())),
        queue_backend: model.map(vmm::devices::virtio::net::device::queue_backend_identity),
        race_window: plan
            .race_window
            .map(|d| humantime::format_duration(d).to_string()),
        load: plan.load.name().to_string(),
        rate: (plan.load != LoadKind::None).then(|| plan.rate.clone()),
        duration_s: Some(plan.duration.as_secs_f64()),
        throughput_floor_bps: plan.throughput_floor_bps,
        phase: plan.phase.clone(),
        expect_stall: plan.expect_stall,
    };
    let mut header = RunHeader::new(config);
    header.identity = Some(Box::new(crate::verify::identity::gather(Some(
        &plan.kernel,
    ))));
    let mut writer = TimelineWriter::create(&plan.out.join(TIMELINE_FILE), &header)?;
    let started = Instant::now();
    match drive(plan, &header, &mut writer) {
        Ok(testbed) => {
            drop(writer);
            // Reports first, from the complete record; then the testbed goes.
            let report = report::rebuild(&plan.out);
            if let Err(e) = testbed.down() {
                tracing::error!("testbed teardown: {e}");
                say!(
                    "vnetbed: tearing down the testbed failed: {e}; `vnetbed net gc` removes what is left"
                );
            }
            Ok(SoakResult {
                report: report?,
                dir: plan.out.clone(),
            })
        }
        Err(e) => {
            // The record still ends, saying what went wrong, and the reports are built from
            // everything recorded until then (the testbed is already gone with `drive`).
            let end = Record::End(RunEnd {
                t: unix_now(),
                elapsed: started.elapsed().as_secs_f64(),
                outcome: RunOutcome::Error,
                detail: Some(e.to_string()),
                logs: Vec::new(),
            });
            if let Err(w) = writer.append(&end) {
                tracing::error!("cannot end the record: {w}");
            }
            drop(writer);
            if let Err(r) = report::rebuild(&plan.out) {
                tracing::error!("cannot build the reports: {r}");
            }
            Err(e)
        }
    }
}

/// The guest tap's counters: `ip -s -j link show dev TAP` in the namespace.
fn tap_stats(ip: &crate::net::ip::Ip, netns: &str, tap: &str) -> Option<TapStats> {
    let json = ip
        .run_in(netns, &["-s", "-j", "link", "show", "dev", tap])
        .ok()?;
    TapStats::from_ip_json(&json)
}

/// Sets the flag when dropped: the load thread stops on every way out of [`drive`].
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The soak itself: up to and including the record's end. Returns the testbed, still up,
/// for the caller to tear down after the reports are written.
fn drive(
    plan: &SoakPlan,
    header: &RunHeader,
    writer: &mut TimelineWriter,
) -> Result<Testbed, SoakError> {
    let started_unix = header.started_unix;
    let mut progress = Progress::new(header);

    let testbed = Testbed::up(TestbedConfig {
        name: plan.testbed_name.clone(),
        renew_after: plan.renew_after,
        rebind_after: plan.rebind_after,
        taps: 1,
        ..TestbedConfig::default()
    })?;
    let dhcp_events = testbed.subscribe();
    let netns = testbed.info().netns.clone();
    let tap = testbed.info().taps.first().cloned().unwrap_or_default();
    let ip = crate::net::ip::Ip::locate().ok();
    let lease_note = testbed.info().lease_note.clone();
    let mac = guest_mac();
    let mut tracker = DhcpTracker::new(&mac);
    // The capture starts before the guest, so that its boot's DHCP is in it.
    let mut capture = capture::Capture::start(plan.capture, &netns, &tap, &plan.out)?;
    let mut failed_renewals = 0usize;
    let mut vmm = start_vmm(plan, &testbed, &mac)?;
    // The guest detector's findings wait here for the host's word.
    let mut guest_stalls = GuestStalls::new();
    // The device watchdog's stalls: (queue, stalled_since), to keep one stall from being
    // recorded twice when the guest's detector sees it too.
    let mut device_stalls: Vec<(String, f64)> = Vec::new();
    // When iperf3 last reported sending to the guest (run-elapsed seconds).
    let mut last_to_guest_at: Option<f64> = None;
    let mut serial_log = RotatingLog::create(&plan.out.join(SERIAL_LOG_FILE));
    writer.append(&Record::Note(Note {
        at: 0.0,
        text: format!("testbed {netns}; guest MAC {mac}; {lease_note}"),
    }))?;

    let stop_load = Arc::new(AtomicBool::new(false));
    let _stop_load_on_return = StopOnDrop(stop_load.clone());
    let (load_tx, load_rx) = channel::<LoadMsg>();
    let mut load_thread = None;
    let mut ping: Option<(LineChild, Receiver<Line>)> = None;
    let mut guest_ip: Option<String> = None;
    let mut device: BTreeMap<String, crate::record::QueueCounters> = BTreeMap::new();
    let mut guest_counters: Option<GuestCounters> = None;
    let mut current_run: Option<u64> = None;
    let mut current_kind: Option<LoadKind> = None;
    // UDP throughput into the guest: its received bytes and the guest's clock (`t_us`) at
    // its previous counters line, and the rate between the last two lines, not yet sampled.
    let mut last_guest_rx: Option<(u64, u64)> = None;
    let mut guest_rx_bps: Option<f64> = None;
    let mut acc = SecondAcc::default();
    let mut dnsmasq_restarts = 0u64;
    let t0 = Instant::now();
    let elapsed = |at: Instant| at.saturating_duration_since(t0).as_secs_f64();
    let mut next_sample = 1u64;
    let mut vmm_exit: Option<VmmExit> = None;
    let mut outcome = RunOutcome::Completed;
    let mut detail: Option<String> = None;
    let mut last_progress_len = 0usize;
    let stderr_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());

    loop {
        // The guest's serial output.
        while let Ok(line) = vmm.serial.try_recv() {
            vmm.last_event_at = Instant::now();
            vmm.spoke = true;
            serial_log.line(&line.text);
            let Some(v) = probe_line(&line.text) else {
                continue;
            };
            let at = elapsed(line.at);
            match v.get("event").and_then(Value::as_str) {
                Some("dhcp_state") => {
                    let Some(state) = v
                        .get("state")
                        .and_then(Value::as_str)
                        .and_then(lease_state_from_word)
                    else {
                        continue;
                    };
                    tracker.guest_state(state, at);
                    if state == crate::record::LeaseState::Bound && guest_ip.is_none() {
                        guest_ip = v
                            .get("address")
                            .or_else(|| v.get("ip"))
                            .and_then(Value::as_str)
                            .map(|a| a.split('/').next().unwrap_or(a).to_string());
                        if let Some(ip) = &guest_ip {
                            acc.notes.push(format!("guest bound {ip} at {at:.1} s"));
                            match start_ping(&netns, ip) {
                                Ok(p) => ping = Some(p),
                                Err(e) => acc.notes.push(format!("cannot start ping: {e}")),
                            }
                            if plan.load != LoadKind::None {
                                let lp = LoadPlan {
                                    netns: netns.clone(),
                                    guest: ip.clone(),
                                    kind: plan.load,
                                    rate: plan.rate.clone(),
                                    run_length: plan.run_length,
                                };
                                load_thread =
                                    Some(load::spawn(lp, stop_load.clone(), load_tx.clone()));
                            }
                        }
                    }
                }
                // Every DHCP message on the guest's wire: what it sent tells its state, what
                // it received is the proof that an answer reached it.
                Some("dhcp") => {
                    let xid = v.get("xid").and_then(|x| match x {
                        Value::String(s) => parse_xid(s),
                        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                        _ => None,
                    });
                    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
                    match v.get("dir").and_then(Value::as_str) {
                        Some("tx") => {
                            if let Some(state) = v
                                .get("state")
                                .and_then(Value::as_str)
                                .and_then(lease_state_from_word)
                            {
                                if kind == "request" {
                                    tracker.guest_sent_request(xid, state, at);
                                } else {
                                    tracker.guest_state(state, at);
                                }
                            }
                        }
                        Some("rx") => tracker.guest_received(kind, xid, at),
                        _ => {}
                    }
                }
                Some("counters") => {
                    let counters = convert::guest_counters(&v);
                    // The guest's own clock times its counters (a line that reaches the host
                    // late on a busy host still gives the right rate over the right interval);
                    // a guest agent without `t_us` is timed by the line's arrival.
                    let t_us = v
                        .get("t_us")
                        .and_then(Value::as_u64)
                        .unwrap_or((at * 1e6) as u64);
                    if let Some((bytes, then_us)) = last_guest_rx {
                        if t_us > then_us {
                            guest_rx_bps = Some(
                                counters.rx_bytes.saturating_sub(bytes) as f64 * 8.0
                                    / ((t_us - then_us) as f64 / 1e6),
                            );
                        }
                    }
                    last_guest_rx = Some((counters.rx_bytes, t_us));
                    guest_counters = Some(counters);
                }
                // The guest's own stall detector: it counts once the host confirms it.
                Some("stall") => match guest_stall::from_line(&v, at) {
                    Some(s) => {
                        acc.notes.push(format!(
                            "the guest's stall detector reported {}; the host is checking it",
                            s.signature()
                        ));
                        guest_stalls.report(s);
                    }
                    None => acc.notes.push(format!(
                        "unreadable stall line from the guest: {}",
                        line.text
                    )),
                },
                _ => {}
            }
        }
        // The VMM's event stream.
        for text in vmm.poll_events() {
            let Ok(ev) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            vmm.last_event_at = Instant::now();
            match ev.get("event").and_then(Value::as_str) {
                Some("counters") => {
                    if let Some(q) = convert::queue_counters(&ev) {
                        device.insert(q.queue.clone(), q);
                    }
                }
                Some("stall") => {
                    if let Some(s) = convert::stall(&ev, started_unix) {
                        device_stalls.push((s.queue.clone(), s.stalled_since));
                        tracker.note_stall();
                        if let Some(c) = capture.as_mut() {
                            let label = format!("stall-{}", progress.stalls() + 1);
                            acc.notes.push(c.keep(&label, s.detected_at));
                        }
                        let rec = Record::Stall(s);
                        writer.append(&rec)?;
                        progress.observe(&rec);
                    }
                }
                Some("error") => acc.notes.push(format!("VMM error event: {ev}")),
                // A reported stall ended by itself (transient): keep what rescued it.
                Some("recovered") => acc.notes.push(format!(
                    "stall on {} ({}) recovered after {} ms, rescued by {}",
                    ev["queue"].as_str().unwrap_or("?"),
                    ev["kind"].as_str().unwrap_or("?"),
                    ev["stalled_ms"].as_u64().unwrap_or(0),
                    ev["cause"].as_str().unwrap_or("?"),
                )),
                _ => {}
            }
            vmm.last_events.push(ev);
            if vmm.last_events.len() > 10 {
                vmm.last_events.remove(0);
            }
        }
        // The DHCP server.
        while let Ok(ev) = dhcp_events.try_recv() {
            let at = (ev.time_unix_ms as f64 / 1000.0 - started_unix).max(0.0);
            tracker.server_event(&ev, at);
        }
        // Ping.
        if let Some((_, rx)) = &ping {
            while let Ok(l) = rx.try_recv() {
                match ping_line(&l.text) {
                    Some(PingLine::Reply { rtt_ms, .. }) => {
                        acc.ping = Some(Ping {
                            rtt_ms: Some(rtt_ms),
                            lost: false,
                        })
                    }
                    Some(PingLine::NoAnswer { .. }) => {
                        acc.ping = Some(Ping {
                            rtt_ms: None,
                            lost: true,
                        })
                    }
                    None => {}
                }
            }
        }
        // Load.
        while let Ok(m) = load_rx.try_recv() {
            match m {
                LoadMsg::Started { run, kind } => {
                    current_run = Some(run);
                    current_kind = Some(kind);
                    acc.notes
                        .push(format!("iperf3 run {run} ({}) started", kind.name()));
                }
                LoadMsg::Interval { to_guest, bps, .. } => {
                    if to_guest {
                        last_to_guest_at = Some(elapsed(Instant::now()));
                        acc.to_guest.push(bps);
                    } else {
                        acc.from_guest.push(bps);
                    }
                }
                LoadMsg::Ended { run, status, tail } => {
                    current_run = None;
                    if status != Some(0) {
                        acc.notes.push(format!(
                            "iperf3 run {run} ended with {status:?}: {}",
                            tail.join(" | ")
                        ));
                    }
                }
            }
        }
        // The VMM process itself.
        let now = Instant::now();
        if vmm_exit.is_none() {
            let silence_limit = if vmm.spoke {
                HANG_AFTER_S
            } else {
                BOOT_SILENCE_S
            };
            if let Some(status) = vmm.child.try_wait() {
                use std::os::unix::process::ExitStatusExt;
                for text in vmm.poll_events() {
                    if let Ok(ev) = serde_json::from_str::<Value>(&text) {
                        vmm.last_events.push(ev);
                    }
                }
                let cause = match (status.code(), status.signal()) {
                    (Some(c), _) => format!("the VMM exited with status {c}"),
                    (None, Some(s)) => format!("the VMM was killed by signal {s}"),
                    _ => "the VMM ended".to_string(),
                };
                vmm_exit = Some(VmmExit {
                    at: elapsed(now),
                    status: status.code(),
                    signal: status.signal(),
                    cause,
                    expected: false,
                    last_events: vmm.last_events.clone(),
                });
            } else if now.duration_since(vmm.last_event_at) > Duration::from_secs(silence_limit) {
                vmm.child.stop(libc::SIGKILL, Duration::from_secs(2));
                vmm_exit = Some(VmmExit {
                    at: elapsed(now),
                    status: None,
                    signal: Some(libc::SIGKILL),
                    cause: format!(
                        "the VMM hung: no event and no serial output for {silence_limit} s; killed"
                    ),
                    expected: false,
                    last_events: vmm.last_events.clone(),
                });
            }
            if let Some(e) = &vmm_exit {
                let rec = Record::VmmExit(e.clone());
                writer.append(&rec)?;
                progress.observe(&rec);
                detail = Some(format!("ended early: {}", e.cause));
            }
        }
        // One sample per second.
        let el = elapsed(now);
        if el >= next_sample as f64 {
            if let Some(stats) = ip.as_ref().and_then(|ip| tap_stats(ip, &netns, &tap)) {
                tracker.note_tap_dropped(stats.tx_dropped);
                guest_stalls.observe_tap(el, stats);
            }
            let load_to_guest =
                last_to_guest_at.is_some_and(|t| t >= el - guest_stall::CONFIRM_S - 1.0);
            let settled = guest_stalls.settle(el, load_to_guest);
            record_guest_stalls(
                settled,
                &device_stalls,
                GuestStallSinks {
                    writer,
                    progress: &mut progress,
                    tracker: &mut tracker,
                    capture: &mut capture,
                    notes: &mut acc.notes,
                },
            )?;
            tracker.tick(el);
            // dnsmasq deaths: the supervisor restarts it; the record says so.
            let testbed_status = testbed.status();
            let restarts = testbed_status.dnsmasq_restarts;
            if restarts > dnsmasq_restarts {
                acc.notes.push(format!(
                    "dnsmasq exited; the testbed's supervisor restarted it ({restarts} restart{} so far)",
                    if restarts == 1 { "" } else { "s" }
                ));
                dnsmasq_restarts = restarts;
            }
            let mut s = Sample {
                t: unix_now(),
                elapsed: next_sample as f64,
                ..Default::default()
            };
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            // UDP: iperf3's client reports what it sent, not what arrived, so the rate into the
            // guest is the guest's own received-bytes counter between its last two counters
            // lines. A second in which no new line arrived has no measurement (not a zero).
            let guest_rx_bps = guest_rx_bps.take();
            let udp_in = current_run.is_some() && current_kind == Some(LoadKind::Udp);
            if current_run.is_some() || !acc.to_guest.is_empty() || !acc.from_guest.is_empty() {
                s.throughput = Some(Throughput {
                    // Before the guest's first counters there is no rate yet: not measured,
                    // rather than a zero that would drag the median down.
                    to_guest_bps: if udp_in {
                        guest_rx_bps
                    } else {
                        mean(&acc.to_guest)
                    },
                    from_guest_bps: mean(&acc.from_guest),
                    iperf_run: current_run,
                });
            }
            s.ping = acc.ping.take();
            s.dhcp = tracker.take_closed();
            if let Some(c) = capture.as_mut() {
                for d in s.dhcp.iter().filter(|d| {
                    d.phase.is_renewal() && report::analysis::RenewalOutcome::of(d).failed()
                }) {
                    failed_renewals += 1;
                    let label = format!("failed-renewal-{failed_renewals}");
                    acc.notes.push(c.keep(&label, d.at));
                }
            }
            s.lease = tracker.lease();
            if !device.is_empty() {
                s.device = Some(DeviceCounters {
                    queues: device.values().cloned().collect(),
                });
            }
            s.guest = guest_counters.clone();
            s.notes = std::mem::take(&mut acc.notes);
            if next_sample % resources::PERIOD_S == 0 {
                let vmm_pid = Some(vmm.child.pid()).filter(|_| vmm_exit.is_none());
                s.resources = [
                    ("vmm", vmm_pid),
                    ("dnsmasq", testbed_status.dnsmasq_pid),
                    ("orchestrator", Some(std::process::id())),
                ]
                .into_iter()
                .filter_map(|(name, pid)| resources::read(name, pid?))
                .collect();
            }
            acc = SecondAcc::default();
            let rec = Record::Sample(s);
            writer.append(&rec)?;
            progress.observe(&rec);
            next_sample += 1;
            if !plan.quiet {
                let line = progress.line();
                if stderr_is_terminal {
                    // One line, rewritten in place.
                    say_raw!(
                        "\r{line}{}",
                        " ".repeat(last_progress_len.saturating_sub(line.len()))
                    );
                    last_progress_len = line.len();
                } else if next_sample % 10 == 0 {
                    // A log file: one line every 10 s.
                    say!("{line}");
                }
            }
        }
        // Stop?
        if let Some(sig) = stop_signal() {
            outcome = RunOutcome::Interrupted;
            detail = Some(format!("stopped by signal {sig}"));
            break;
        }
        if vmm_exit.is_some() {
            break;
        }
        if guest_ip.is_none() && now.duration_since(t0) > plan.dhcp_timeout {
            outcome = RunOutcome::Error;
            detail = Some(format!(
                "the guest got no DHCP lease within {} s",
                plan.dhcp_timeout.as_secs()
            ));
            break;
        }
        // A guest report still being checked when the time is up gets its watch first.
        let watching = guest_stalls.has_pending()
            && now.duration_since(t0)
                < plan.duration + Duration::from_secs_f64(guest_stall::CONFIRM_S + 2.0);
        if now.duration_since(t0) >= plan.duration && !watching {
            break;
        }
        if plan.stop_when == StopWhen::IncidentComplete
            && progress.stalls() > 0
            && tracker.lease() == Some(crate::record::LeaseState::Expired)
        {
            break;
        }
        if plan.stop_when == StopWhen::FirstStall && progress.stalls() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !plan.quiet && stderr_is_terminal {
        say!("");
    }

    // Teardown, in order: load and ping, the VMM, then the testbed.
    stop_load.store(true, Ordering::SeqCst);
    if let Some(t) = load_thread.take() {
        let _ = t.join();
    }
    drop(ping);
    if let Some(c) = capture.take() {
        c.stop();
    }
    // Guest reports still being checked are decided from what the tap showed so far.
    let settled = guest_stalls.settle_all(last_to_guest_at.is_some());
    record_guest_stalls(
        settled,
        &device_stalls,
        GuestStallSinks {
            writer,
            progress: &mut progress,
            tracker: &mut tracker,
            capture: &mut capture,
            notes: &mut acc.notes,
        },
    )?;
    if !acc.notes.is_empty() {
        let at = t0.elapsed().as_secs_f64();
        for text in std::mem::take(&mut acc.notes) {
            writer.append(&Record::Note(Note { at, text }))?;
        }
    }
    tracker.finish();
    let events_total;
    let end_at = t0.elapsed().as_secs_f64();
    if vmm_exit.is_none() {
        let status = vmm.child.stop(libc::SIGTERM, Duration::from_secs(5));
        // The VMM is gone: the rest of its stream (its `exit` event) is in the pipe.
        let (rest, total) = vmm
            .events
            .as_mut()
            .map(EventPipe::finish)
            .unwrap_or_default();
        events_total = total;
        vmm.last_events.extend(
            rest.iter()
                .filter_map(|t| serde_json::from_str::<Value>(t).ok()),
        );
        let skip = vmm.last_events.len().saturating_sub(10);
        vmm.last_events.drain(..skip);
        use std::os::unix::process::ExitStatusExt;
        let rec = Record::VmmExit(VmmExit {
            at: end_at,
            status: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            cause: "stopped by the orchestrator at the end of the run".into(),
            expected: true,
            last_events: vmm.last_events.clone(),
        });
        writer.append(&rec)?;
    } else {
        events_total = vmm.events.as_mut().and_then(|e| e.finish().1);
    }
    // A last sample: exchanges closed at the end, and the lease state the run ended in (the
    // loop may stop on the very line that reported the lease lost).
    let closed = tracker.take_closed();
    writer.append(&Record::Sample(Sample {
        t: unix_now(),
        elapsed: end_at,
        dhcp: closed,
        lease: tracker.lease(),
        ..Default::default()
    }))?;
    let _ = std::fs::write(
        plan.out.join("dnsmasq.log"),
        testbed.dnsmasq_output().join("\n"),
    );
    writer.append(&Record::End(RunEnd {
        t: unix_now(),
        elapsed: end_at,
        outcome,
        detail,
        logs: [Some(serial_log.total()), events_total]
            .into_iter()
            .flatten()
            .collect(),
    }))?;
    Ok(testbed)
}

/// Where a settled guest report goes.
struct GuestStallSinks<'a> {
    writer: &'a mut TimelineWriter,
    progress: &'a mut Progress,
    tracker: &'a mut DhcpTracker,
    capture: &'a mut Option<capture::Capture>,
    notes: &'a mut Vec<String>,
}

/// Record what the host decided about the guest's reports: a confirmed one is a stall
/// (unless the device watchdog already recorded the same one), the rest are notes.
fn record_guest_stalls(
    settled: Vec<Settled>,
    device_stalls: &[(String, f64)],
    sinks: GuestStallSinks<'_>,
) -> Result<(), SoakError> {
    for s in settled {
        match s {
            Settled::Confirmed(stall) => {
                let seen_by_device = device_stalls.iter().any(|(queue, since)| {
                    *queue == stall.queue && (since - stall.stalled_since).abs() < SAME_STALL_S
                });
                if seen_by_device {
                    sinks.notes.push(format!(
                        "the guest's detector saw the device watchdog's stall too: {}",
                        stall.signature()
                    ));
                    continue;
                }
                sinks.tracker.note_stall();
                if let Some(c) = sinks.capture.as_mut() {
                    let label = format!("stall-{}", sinks.progress.stalls() + 1);
                    sinks.notes.push(c.keep(&label, stall.detected_at));
                }
                let rec = Record::Stall(stall);
                sinks.writer.append(&rec)?;
                sinks.progress.observe(&rec);
            }
            Settled::Unconfirmed(stall, why) => sinks.notes.push(format!(
                "the guest's stall report was not confirmed by the host ({why}), so it does not count: {}",
                stall.signature()
            )),
        }
    }
    Ok(())
}

/// A default run directory under `./vnetbed-runs/`.
pub fn default_out_dir(kind: &str) -> PathBuf {
    let stamp = crate::record::rfc3339_utc(unix_now()).replace(':', "");
    Path::new("vnetbed-runs").join(format!("{kind}-{stamp}"))
}
