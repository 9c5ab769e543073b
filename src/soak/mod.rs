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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::record::{
    unix_now, Record, RunConfig, RunEnd, RunHeader, RunOutcome, TimelineWriter, TIMELINE_FILE,
};
use crate::report::{self, RunReport};
use crate::sut::SutSpec;
pub use accumulate::Accumulator;
pub use children::own_process_group;
pub use event_pipe::VMM_EVENTS_FILE;
use load::LoadKind;
pub use stop::StopWhen;

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
    /// Queue size, bursts and guest options (recorded in the header).
    pub shaping: crate::record::Shaping,
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
    /// `--pin-vcpu`: pin a QEMU system under test's vCPU thread apart from its other
    /// threads ([`crate::qemu_pin`]). Absent: on for QEMU.
    pub pin_vcpu: Option<bool>,
}

impl SoakPlan {
    /// `--pin-vcpu` for the record: what was asked, whether the run pins and on which
    /// CPUs, or why not. Absent when the system under test is not QEMU and nothing was
    /// asked.
    pub fn vcpu_pinning(&self) -> Option<crate::record::VcpuPinning> {
        let is_qemu = matches!(self.sut, SutSpec::Qemu(_));
        if !is_qemu && self.pin_vcpu.is_none() {
            return None;
        }
        let asked = self.pin_vcpu.unwrap_or(true);
        Some(crate::qemu_pin::decide(
            asked,
            is_qemu,
            &crate::qemu_pin::allowed_cpus(),
        ))
    }
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

// After the macros above, so that it can use them.
mod driver;

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

/// The result of a soak.
pub struct SoakResult {
    /// The reports written.
    pub report: RunReport,
    /// The run directory.
    pub dir: PathBuf,
}

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
    if let Some(size) = plan.shaping.queue_size {
        plan.sut.check_queue_size(size)?;
    }
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
        shaping: plan.shaping.clone(),
        pin_vcpu: plan.vcpu_pinning(),
    };
    let mut header = RunHeader::new(config);
    header.identity = Some(Box::new(crate::verify::identity::gather(Some(
        &plan.kernel,
    ))));
    let mut writer = TimelineWriter::create(&plan.out.join(TIMELINE_FILE), &header)?;
    let started = Instant::now();
    match driver::drive(plan, &header, &mut writer) {
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

/// A default run directory under `./vnetbed-runs/`.
pub fn default_out_dir(kind: &str) -> PathBuf {
    let stamp = crate::record::rfc3339_utc(unix_now()).replace(':', "");
    Path::new("vnetbed-runs").join(format!("{kind}-{stamp}"))
}
