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

pub mod accumulate;
pub mod capture;
pub mod children;
pub mod convert;
pub mod dhcp_track;
pub mod disk;
pub mod event_pipe;
pub mod guest_stall;
pub mod input;
pub mod load;
pub mod logfile;
pub mod parse;
pub mod resources;
pub mod stop;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::{Testbed, TestbedConfig};
use crate::record::{
    unix_now, LogTotal, Note, Record, RunConfig, RunEnd, RunHeader, RunOutcome, TimelineWriter,
    VmmExit, TIMELINE_FILE,
};
use crate::report::{self, Progress, RunReport};
use crate::sut::SutSpec;
use accumulate::{Accumulator, Out, Tick};
pub use children::own_process_group;
use children::{in_netns, LineChild};
use event_pipe::EventPipe;
use guest_stall::TapStats;
use input::Input;
use load::{LoadKind, LoadMsg, LoadPlan};
use logfile::RotatingLog;
use stop::Stop;

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

static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop(sig: libc::c_int) {
    STOP_SIGNAL.store(sig, Ordering::SeqCst);
}

/// Route SIGINT and SIGTERM to a flag the soak loop checks: it then finishes the record and
/// the reports from what it has, and tears everything down.
pub fn install_stop_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_stop` only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is fully initialised.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal that asked the soak to stop, if any.
pub fn stop_signal() -> Option<i32> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
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

/// The VMM process of a soak: its output and events go to the soak's input channel.
struct Vmm {
    child: LineChild,
    /// vnetbed's event stream (absent for another VMM).
    events: Option<EventPipe>,
    /// The thread forwarding the event stream to the input channel.
    events_forwarder: Option<std::thread::JoinHandle<()>>,
    /// When the VMM last said anything (a serial line or an event).
    last_output: Instant,
    /// Whether the VMM has printed anything yet (a firmware may boot silently for a while).
    spoke: bool,
}

impl Vmm {
    /// After the VMM has ended: wait until every event it wrote is in the input channel, and
    /// say what `vmm-events.jsonl` wrote and kept.
    fn finish_events(&mut self) -> Option<LogTotal> {
        let total = self.events.as_mut().and_then(|e| e.finish().1);
        if let Some(f) = self.events_forwarder.take() {
            let _ = f.join();
        }
        total
    }
}

fn start_vmm(
    plan: &SoakPlan,
    testbed: &Testbed,
    mac: &str,
    inputs: &Sender<Input>,
) -> Result<Vmm, SoakError> {
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
    input::forward(serial, inputs.clone(), Input::Serial);
    let mut events = events;
    let mut events_forwarder = None;
    if let Some(e) = events.as_mut() {
        e.spawned();
        if let Some(lines) = e.take_lines() {
            events_forwarder = Some(input::forward(lines, inputs.clone(), Input::VmmEvent));
        }
    }
    Ok(Vmm {
        child,
        events,
        events_forwarder,
        last_output: Instant::now(),
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

/// Ping the guest once a second from the namespace; its lines go to the input channel.
fn start_ping(netns: &str, guest: &str, inputs: &Sender<Input>) -> std::io::Result<LineChild> {
    let mut cmd = in_netns(netns, "ping");
    cmd.args(["-n", "-O", "-i", "1", "-W", "1", guest]);
    own_process_group(&mut cmd);
    let (child, lines) = LineChild::spawn("ping", cmd)?;
    input::forward(lines, inputs.clone(), Input::Ping);
    Ok(child)
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

/// Where the loop's outputs go.
struct Sinks<'a> {
    writer: &'a mut TimelineWriter,
    progress: &'a mut Progress,
    capture: &'a mut Option<capture::Capture>,
}

impl Sinks<'_> {
    /// Carry out what the accumulator asked for; the address the guest was bound to, if it
    /// was this time (the caller starts ping and the load).
    fn apply(
        &mut self,
        outs: Vec<Out>,
        soak: &mut Accumulator,
    ) -> Result<Option<String>, SoakError> {
        let mut bound = None;
        for out in outs {
            match out {
                Out::Record(rec) => {
                    let rec = *rec;
                    self.writer.append(&rec)?;
                    self.progress.observe(&rec);
                }
                Out::GuestBound(ip) => bound = Some(ip),
                Out::KeepCapture { label, at } => {
                    if let Some(c) = self.capture.as_mut() {
                        soak.note(c.keep(&label, at));
                    }
                }
            }
        }
        Ok(bound)
    }
}

/// The live progress line on stderr.
struct ProgressLine {
    terminal: bool,
    last_len: usize,
}

impl ProgressLine {
    fn show(&mut self, line: &str, second: u64) {
        if self.terminal {
            // One line, rewritten in place.
            say_raw!(
                "\r{line}{}",
                " ".repeat(self.last_len.saturating_sub(line.len()))
            );
            self.last_len = line.len();
        } else if second % 10 == 0 {
            // A log file: one line every 10 s.
            say!("{line}");
        }
    }
}

/// The soak itself: up to and including the record's end. Returns the testbed, still up,
/// for the caller to tear down after the reports are written.
///
/// Every source (the VMM's output and events, dnsmasq, ping, iperf3) feeds one channel; the
/// [`Accumulator`] makes the record of it, and [`stop::Policy`] says when to stop. What is
/// left here is starting and stopping processes, the clock, and writing.
fn drive(
    plan: &SoakPlan,
    header: &RunHeader,
    writer: &mut TimelineWriter,
) -> Result<Testbed, SoakError> {
    let mut progress = Progress::new(header);
    let testbed = Testbed::up(TestbedConfig {
        name: plan.testbed_name.clone(),
        renew_after: plan.renew_after,
        rebind_after: plan.rebind_after,
        taps: 1,
        ..TestbedConfig::default()
    })?;
    let (inputs_tx, inputs) = channel::<Input>();
    input::forward(testbed.subscribe(), inputs_tx.clone(), Input::Dhcp);
    let netns = testbed.info().netns.clone();
    let tap = testbed.info().taps.first().cloned().unwrap_or_default();
    let ip = crate::net::ip::Ip::locate().ok();
    let lease_note = testbed.info().lease_note.clone();
    let mac = guest_mac();
    let mut soak = Accumulator::new(&mac, header.started_unix);
    // The capture starts before the guest, so that its boot's DHCP is in it.
    let mut capture = capture::Capture::start(plan.capture, &netns, &tap, &plan.out)?;
    let mut vmm = start_vmm(plan, &testbed, &mac, &inputs_tx)?;
    let mut serial_log = RotatingLog::create(&plan.out.join(SERIAL_LOG_FILE));
    writer.append(&Record::Note(Note {
        at: 0.0,
        text: format!("testbed {netns}; guest MAC {mac}; {lease_note}"),
    }))?;

    let stop_load = Arc::new(AtomicBool::new(false));
    let _stop_load_on_return = StopOnDrop(stop_load.clone());
    let (load_tx, load_rx) = channel::<LoadMsg>();
    input::forward(load_rx, inputs_tx.clone(), Input::Load);
    let mut load_thread = None;
    let mut ping: Option<LineChild> = None;
    let t0 = Instant::now();
    let elapsed = |at: Instant| at.saturating_duration_since(t0).as_secs_f64();
    let mut next_sample = 1u64;
    let mut vmm_exit: Option<VmmExit> = None;
    let mut progress_line = ProgressLine {
        terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        last_len: 0,
    };
    let policy = stop::Policy {
        stop_when: plan.stop_when,
        duration: plan.duration,
        dhcp_timeout: plan.dhcp_timeout,
    };
    let mut sinks = Sinks {
        writer,
        progress: &mut progress,
        capture: &mut capture,
    };

    let stopped = loop {
        // Wait for inputs, at most until the next sample is due (and never long, so that a
        // signal is seen at once).
        let due = t0 + Duration::from_secs(next_sample);
        let wait = due
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        if let Ok(first) = inputs.recv_timeout(wait) {
            for input in std::iter::once(first).chain(inputs.try_iter()) {
                let bound = handle_input(
                    input,
                    &mut soak,
                    &mut vmm,
                    &mut serial_log,
                    &mut sinks,
                    elapsed,
                )?;
                if let Some(ip) = bound {
                    match start_ping(&netns, &ip, &inputs_tx) {
                        Ok(p) => ping = Some(p),
                        Err(e) => soak.note(format!("cannot start ping: {e}")),
                    }
                    if plan.load != LoadKind::None {
                        let lp = LoadPlan {
                            netns: netns.clone(),
                            guest: ip,
                            kind: plan.load,
                            rate: plan.rate.clone(),
                            run_length: plan.run_length,
                        };
                        load_thread = Some(load::spawn(lp, stop_load.clone(), load_tx.clone()));
                    }
                }
            }
        }
        // The VMM process itself: ended, or hung.
        let now = Instant::now();
        if vmm_exit.is_none() {
            let silence_limit = if vmm.spoke {
                HANG_AFTER_S
            } else {
                BOOT_SILENCE_S
            };
            let ended = match vmm.child.try_wait() {
                Some(status) => Some((status, None)),
                None if now.duration_since(vmm.last_output)
                    > Duration::from_secs(silence_limit) =>
                {
                    let status = vmm.child.stop(libc::SIGKILL, Duration::from_secs(2));
                    Some((
                        status.unwrap_or_else(|| std::process::ExitStatus::from_raw(libc::SIGKILL)),
                        Some(format!(
                            "the VMM hung: no event and no serial output for {silence_limit} s; killed"
                        )),
                    ))
                }
                None => None,
            };
            if let Some((status, hung)) = ended {
                // Everything it wrote before it ended is in the record's last events.
                vmm.finish_events();
                for input in inputs.try_iter() {
                    handle_input(
                        input,
                        &mut soak,
                        &mut vmm,
                        &mut serial_log,
                        &mut sinks,
                        elapsed,
                    )?;
                }
                let cause = hung.unwrap_or_else(|| match (status.code(), status.signal()) {
                    (Some(c), _) => format!("the VMM exited with status {c}"),
                    (None, Some(s)) => format!("the VMM was killed by signal {s}"),
                    _ => "the VMM ended".to_string(),
                });
                let e = VmmExit {
                    at: elapsed(now),
                    status: status.code(),
                    signal: status.signal(),
                    cause,
                    expected: false,
                    last_events: soak.last_events().to_vec(),
                };
                let rec = Record::VmmExit(e.clone());
                sinks.writer.append(&rec)?;
                sinks.progress.observe(&rec);
                vmm_exit = Some(e);
            }
        }
        // One sample per second.
        let el = elapsed(now);
        if el >= next_sample as f64 {
            let status = testbed.status();
            let resources = if next_sample % resources::PERIOD_S == 0 {
                let vmm_pid = Some(vmm.child.pid()).filter(|_| vmm_exit.is_none());
                [
                    ("vmm", vmm_pid),
                    ("dnsmasq", status.dnsmasq_pid),
                    ("orchestrator", Some(std::process::id())),
                ]
                .into_iter()
                .filter_map(|(name, pid)| resources::read(name, pid?))
                .collect()
            } else {
                Vec::new()
            };
            let outs = soak.tick(Tick {
                now: el,
                second: next_sample as f64,
                t: unix_now(),
                tap: ip.as_ref().and_then(|ip| tap_stats(ip, &netns, &tap)),
                dnsmasq_restarts: status.dnsmasq_restarts,
                resources,
            });
            sinks.apply(outs, &mut soak)?;
            if let Some(rec) = soak.take_sample() {
                sinks.writer.append(&rec)?;
                sinks.progress.observe(&rec);
            }
            next_sample += 1;
            if !plan.quiet {
                progress_line.show(&sinks.progress.line(), next_sample);
            }
        }
        // Stop?
        let state = stop::State {
            elapsed: now.duration_since(t0),
            signal: stop_signal(),
            vmm_ended: vmm_exit.is_some(),
            guest_bound: soak.guest_bound(),
            stalls: soak.stalls(),
            lease: soak.lease(),
            guest_reports_pending: soak.guest_reports_pending(),
        };
        if let Some(stop) = policy.decide(&state) {
            break stop;
        }
    };
    if !plan.quiet && progress_line.terminal {
        say!("");
    }
    let (outcome, detail) = match stopped {
        Stop::Signal(sig) => (
            RunOutcome::Interrupted,
            Some(format!("stopped by signal {sig}")),
        ),
        Stop::VmmEnded => (
            RunOutcome::Completed,
            vmm_exit
                .as_ref()
                .map(|e| format!("ended early: {}", e.cause)),
        ),
        Stop::NoLease => (
            RunOutcome::Error,
            Some(format!(
                "the guest got no DHCP lease within {} s",
                plan.dhcp_timeout.as_secs()
            )),
        ),
        Stop::Duration | Stop::IncidentComplete | Stop::FirstStall => (RunOutcome::Completed, None),
    };

    // Teardown, in order: load and ping, the VMM, then the testbed.
    stop_load.store(true, Ordering::SeqCst);
    if let Some(t) = load_thread.take() {
        let _ = t.join();
    }
    drop(ping);
    if let Some(c) = sinks.capture.take() {
        c.stop();
    }
    // Guest reports still being checked are decided from what the tap showed so far.
    let outs = soak.settle_all();
    sinks.apply(outs, &mut soak)?;
    let end_at = t0.elapsed().as_secs_f64();
    let events_total = if vmm_exit.is_none() {
        let status = vmm.child.stop(libc::SIGTERM, Duration::from_secs(5));
        // The VMM is gone: the rest of its output and its stream (its `exit` event) follow.
        let total = vmm.finish_events();
        for input in inputs.try_iter() {
            handle_input(
                input,
                &mut soak,
                &mut vmm,
                &mut serial_log,
                &mut sinks,
                elapsed,
            )?;
        }
        let rec = Record::VmmExit(VmmExit {
            at: end_at,
            status: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            cause: "stopped by the orchestrator at the end of the run".into(),
            expected: true,
            last_events: soak.last_events().to_vec(),
        });
        sinks.writer.append(&rec)?;
        total
    } else {
        vmm.finish_events()
    };
    // Notes of the last, unsampled moments.
    for text in soak.take_notes() {
        sinks
            .writer
            .append(&Record::Note(Note { at: end_at, text }))?;
    }
    // A last sample: exchanges closed at the end, and the lease state the run ended in (the
    // loop may stop on the very line that reported the lease lost).
    sinks.writer.append(&soak.last_sample(unix_now(), end_at))?;
    let _ = std::fs::write(
        plan.out.join("dnsmasq.log"),
        testbed.dnsmasq_output().join("\n"),
    );
    sinks.writer.append(&Record::End(RunEnd {
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

/// Take one input: log the serial console, feed the accumulator, carry out what it asks.
/// The guest's address when this input bound it.
fn handle_input(
    input: Input,
    soak: &mut Accumulator,
    vmm: &mut Vmm,
    serial_log: &mut RotatingLog,
    sinks: &mut Sinks<'_>,
    elapsed: impl Fn(Instant) -> f64,
) -> Result<Option<String>, SoakError> {
    let outs = match input {
        Input::Serial(line) => {
            vmm.last_output = Instant::now();
            vmm.spoke = true;
            serial_log.line(&line.text);
            soak.serial(&line.text, elapsed(line.at))
        }
        Input::VmmEvent(text) => {
            vmm.last_output = Instant::now();
            soak.vmm_event(&text)
        }
        Input::Dhcp(ev) => {
            soak.dhcp(&ev);
            Vec::new()
        }
        Input::Ping(line) => {
            soak.ping(&line.text);
            Vec::new()
        }
        Input::Load(msg) => {
            soak.load(msg, elapsed(Instant::now()));
            Vec::new()
        }
    };
    sinks.apply(outs, soak)
}

/// A default run directory under `./vnetbed-runs/`.
pub fn default_out_dir(kind: &str) -> PathBuf {
    let stamp = crate::record::rfc3339_utc(unix_now()).replace(':', "");
    Path::new("vnetbed-runs").join(format!("{kind}-{stamp}"))
}
