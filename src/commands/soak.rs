//! `vnetbed soak`, `vnetbed reproduce` and `vnetbed verify`: sustained load against a guest,
//! with DHCP and stall monitoring, a crash-safe record and reports.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use vmm::devices::virtio::net::NotifyModel;
use vnetbed::report::incident;
use vnetbed::soak::capture::{self as capture_mod, CaptureMode};
use vnetbed::soak::load::LoadKind;
use vnetbed::soak::{self, SoakPlan, StopWhen};
use vnetbed::sut::SutSpec;

use super::args::{self, Rate};
use super::image::{BuildArgs, ImageName};
use super::run::report_error;

/// The guests vnetbed can soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Guest {
    /// vnetbed's probe guest (everywhere, also on nested hosts).
    Probe,
    /// Debian's kernel with an initramfs (hosts with hardware virtualization).
    Linux,
}

impl Guest {
    /// The name in the record.
    pub fn name(self) -> &'static str {
        match self {
            Guest::Probe => "probe",
            Guest::Linux => "linux",
        }
    }
}

/// Options shared by soak, reproduce and verify.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Guest: the built-in probe guest (everywhere) or linux (hardware-virtualization hosts).
    #[arg(long, value_enum, default_value_t = Guest::Probe)]
    pub guest: Guest,
    /// Guest kernel image instead of the one `vnetbed image build <guest>` makes.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initrd for the guest kernel.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Guest memory in MiB (default: 64 for the probe, 512 for linux).
    #[arg(long, value_parser = clap::value_parser!(u64).range(16..=65536))]
    pub mem: Option<u64>,
    /// Load: udp (host -> guest), udp-burst (host -> guest in bursts of --burst
    /// datagrams), tcp, tcp-reverse, mixed or none. Default: udp (verify: udp-burst).
    #[arg(long, value_enum)]
    pub load: Option<LoadKind>,
    /// Datagrams per burst of `--load udp-burst` (iperf3 `-b RATE/N`), 1-1000. Default 48
    /// (verify: one and a half rings).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=vnetbed::soak::load::MAX_BURST as i64))]
    pub burst: Option<u32>,
    /// Size of the guest's virtqueues: both queues of vnetbed's device (a power of two up
    /// to 256; default 256, verify: 4), or QEMU's rx_queue_size (256, 512 or 1024;
    /// default 1024, verify: 256). Shorter rings run dry more often: more chances for the
    /// lost kick.
    #[arg(long, value_name = "N")]
    pub queue_size: Option<u16>,
    /// Words added to the guest's kernel command line, for every system under test alike,
    /// e.g. the probe's rx ring shaping (`probe.rx_buf=256 probe.refill=half
    /// probe.profile=linux-3.2`; guest-images/probe/README.md lists them).
    #[arg(long, value_name = "WORDS")]
    pub guest_cmdline: Option<String>,
    /// UDP rate (iperf3 -b) in bits/s, with k, M or G (e.g. 200M). Default 200M (verify:
    /// 120M).
    #[arg(long, value_parser = args::rate)]
    pub rate: Option<Rate>,
    /// Length of each bounded iperf3 run (e.g. 60s, 5m; a bare number is seconds).
    #[arg(long, default_value = "60s", value_parser = args::positive_duration)]
    pub run_length: Duration,
    /// Race window of vnetbed's buggy models (`vnetbed run --race-window`, at most 10s).
    #[arg(long, value_parser = |s: &str| args::bounded_duration(s, vmm::duration::MAX_RACE_WINDOW))]
    pub race_window: Option<Duration>,
    /// Stall timeout (at most 1h): vnetbed's device watchdog's (`vnetbed run
    /// --stall-timeout`), or, for another VMM, the probe guest's detector's
    /// (`probe.stall_timeout`). Default 1 s.
    #[arg(long, value_parser = |s: &str| args::bounded_duration(s, vmm::duration::MAX_STALL_TIMEOUT))]
    pub stall_timeout: Option<Duration>,
    /// DHCP T1 (renew) sent by the testbed's dnsmasq; default 30 s (one-minute leases).
    #[arg(long, value_parser = args::positive_duration)]
    pub renew_after: Option<Duration>,
    /// DHCP T2 (rebind); default 52 s.
    #[arg(long, value_parser = args::positive_duration)]
    pub rebind_after: Option<Duration>,
    /// Minimum median throughput into and out of the guest, in bits/s with k, M or G (e.g.
    /// 50M), for the throughput check. Default: a quarter of --rate for udp, 10M for
    /// tcp/tcp-reverse/mixed, none without load.
    #[arg(long, value_parser = args::rate)]
    pub throughput_floor: Option<Rate>,
    /// Testbed name (1-8 characters a-z, 0-9, '-'; unique among concurrent runs).
    #[arg(long, value_parser = args::testbed_name)]
    pub name: Option<String>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Print the final summary as JSON on stdout (progress and logs stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Capture packets on the guest's tap with tcpdump, as a ring buffer in capture/, keeping
    /// a copy around each stall and failed renewal: dhcp (UDP 67/68) or all (headers).
    #[arg(long, value_enum, default_value_t = CaptureMode::None)]
    pub capture: CaptureMode,
    /// Pin QEMU's vCPU thread to one CPU and its other threads (the main loop, where
    /// virtio-net takes frames from the tap) to another, from the guest's lease on, so that
    /// the guest and the device run truly concurrently: `on` (default for QEMU) or `off`.
    /// Needs two CPUs; the run's header records whether it was applied, and why not.
    #[arg(long, value_name = "on|off", action = clap::ArgAction::Set, value_parser = super::run::parse_on_off)]
    pub pin_vcpu: Option<bool>,
    /// The defaults for the options above that were not given: plain for soak, reproduce
    /// and the benchmarks; verify's `--shaping` (race by default).
    #[arg(skip)]
    pub profile: super::shaping::ShapingProfile,
}

/// Arguments of `vnetbed soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long to run (e.g. 60s, 30m, 48h; a bare number is seconds).
    #[arg(long, value_parser = args::positive_duration)]
    pub duration: Duration,
    /// The system under test: `vnetbed[:MODEL][,transport=mmio|pci][,legacy=on]` (vnetbed's
    /// VMM and device; MODEL fenced, unfenced, no-recheck, missing-enable-fence,
    /// missing-notify-fence or virtio-queue),
    /// `qemu[=PATH][,machine=q35|pc|microvm][,device=virtio-net-pci|virtio-net-device][,modern=on|off][,rx_queue_size=N][,extra=ARGS]`,
    /// `dpdk[=PATH][,reconnect=SECS]` (DPDK's testpmd as the vhost-user backend, started by
    /// vnetbed) or `vhost-user=SOCKET[,port=IFNAME][,reconnect=SECS]` (a vhost-user backend
    /// you run). Default: vnetbed:fenced.
    #[arg(long, value_name = "SPEC", value_parser = vnetbed::sut::parse_arg, conflicts_with = "notify_model")]
    pub sut: Option<SutSpec>,
    /// Shorthand for `--sut vnetbed:MODEL`.
    #[arg(long, value_parser = args::notify_model)]
    pub notify_model: Option<NotifyModel>,
    /// Run directory (default vnetbed-runs/soak-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    /// Shared options.
    pub common: CommonArgs,
}

/// Arguments of `vnetbed reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// The system under test to reproduce the incident on (a spec as for `soak --sut`).
    /// Default: vnetbed:unfenced.
    #[arg(long, value_name = "SPEC", value_parser = vnetbed::sut::parse_arg, conflicts_with = "notify_model")]
    pub sut: Option<SutSpec>,
    /// Shorthand for `--sut vnetbed:MODEL`.
    #[arg(long, value_parser = args::notify_model)]
    pub notify_model: Option<NotifyModel>,
    /// Give up after this long.
    #[arg(long, default_value = "10m", value_parser = args::positive_duration)]
    pub timeout: Duration,
    /// Run directory (default vnetbed-runs/reproduce-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    /// Shared options.
    pub common: CommonArgs,
}

/// Errors before a run starts.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `--capture` without tcpdump.
    #[error(transparent)]
    Capture(#[from] capture_mod::CaptureError),
    /// The system under test cannot run (a QEMU binary that is not there).
    #[error(transparent)]
    Sut(#[from] vnetbed::sut::SutSpecError),
    /// The guest image.
    #[error("cannot get the {guest} guest image: {detail}; build it with `vnetbed image build {guest}` or pass --kernel")]
    Image {
        /// Guest name.
        guest: String,
        /// What went wrong.
        detail: String,
    },
}

/// The guest image for `common`: `--kernel`, or the built image.
pub fn guest_image(common: &CommonArgs) -> Result<(PathBuf, Option<PathBuf>), SetupError> {
    if let Some(k) = &common.kernel {
        return Ok((k.clone(), common.initrd.clone()));
    }
    match common.guest {
        Guest::Probe => build_image(ImageName::Probe).map(|p| (p[0].clone(), None)),
        Guest::Linux => build_image(ImageName::Linux).map(|p| (p[0].clone(), p.get(1).cloned())),
    }
}

/// Build guest image `image` (incrementally); its path(s).
pub fn build_image(image: ImageName) -> Result<Vec<PathBuf>, SetupError> {
    let guest = format!("{image:?}").to_lowercase();
    super::image::build(&BuildArgs {
        image,
        source_dir: None,
    })
    .map_err(|e| SetupError::Image {
        guest,
        detail: e.to_string(),
    })
}

fn testbed_name(common: &CommonArgs) -> String {
    common
        .name
        .clone()
        .unwrap_or_else(|| format!("s{}", std::process::id() % 10_000_000))
}

/// The system under test from `--sut` or `--notify-model`, or `default`.
pub fn sut_or(sut: &Option<SutSpec>, model: Option<NotifyModel>, default: NotifyModel) -> SutSpec {
    sut.clone()
        .unwrap_or(SutSpec::vnetbed(model.unwrap_or(default)))
}

/// What can be checked of `sut` before anything starts: its binary is there, and it takes
/// the queue size these options give it.
pub fn check_sut(common: &CommonArgs, sut: &SutSpec) -> Result<(), vnetbed::sut::SutSpecError> {
    sut.check()?;
    match common.shaping(sut).queue_size {
        Some(size) => sut.check_queue_size(size),
        None => Ok(()),
    }
}

/// Build a plan from the shared options.
pub fn plan(
    common: &CommonArgs,
    sut: &SutSpec,
    duration: Duration,
    out: PathBuf,
    stop_when: StopWhen,
) -> Result<SoakPlan, SetupError> {
    if common.capture != CaptureMode::None && capture_mod::find_tcpdump().is_none() {
        return Err(capture_mod::CaptureError::NoTcpdump.into());
    }
    check_sut(common, sut)?;
    let shaping = common.shaping(sut);
    let (kernel, initrd) = guest_image(common)?;
    let (load, rate) = (common.load(), common.rate());
    Ok(SoakPlan {
        duration,
        guest: common.guest.name().to_string(),
        kernel,
        initrd,
        mem_mib: common.mem.unwrap_or(match common.guest {
            // Debian's cloud kernel and its initramfs unpacked in RAM need far more than the probe.
            Guest::Linux => 512,
            Guest::Probe => 64,
        }),
        sut: sut.clone(),
        race_window: common.race_window,
        stall_timeout: common.stall_timeout,
        load,
        rate: rate.text.clone(),
        run_length: common.run_length,
        shaping,
        renew_after: common.renew_after,
        rebind_after: common.rebind_after,
        throughput_floor_bps: common
            .throughput_floor
            .as_ref()
            .map(|r| r.bps)
            .or_else(|| vnetbed::soak::load::default_floor_bps(load, &rate.text)),
        out,
        quiet: common.quiet,
        stop_when,
        testbed_name: testbed_name(common),
        dhcp_timeout: Duration::from_secs(60),
        phase: None,
        expect_stall: false,
        capture: common.capture,
        pin_vcpu: common.pin_vcpu,
    })
}

fn print_summary(result: &soak::SoakResult) {
    let r = &result.report;
    outln!("verdict: {} ({})", r.verdict.as_str(), result.dir.display());
    for c in &r.checks {
        outln!(
            "  {:<40} {}  {}",
            c.name,
            format!("{:?}", c.status).to_lowercase(),
            c.message
        );
    }
    outln!(
        "reports: {0}/report.json {0}/junit.xml {0}/report.html",
        result.dir.display()
    );
}

/// The run's report.json, as written, for `--json`.
fn report_json(result: &soak::SoakResult) -> serde_json::Value {
    std::fs::read_to_string(result.dir.join(vnetbed::report::REPORT_JSON))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn print_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => outln!("{text}"),
        Err(e) => eprintln!("vnetbed: cannot print the summary: {e}"),
    }
}

/// `vnetbed soak`.
pub fn soak_main(args: SoakArgs) -> i32 {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| soak::default_out_dir("soak"));
    let sut = sut_or(&args.sut, args.notify_model, NotifyModel::Fenced);
    let plan = match plan(&args.common, &sut, args.duration, out, StopWhen::Duration) {
        Ok(p) => p,
        Err(e) => {
            report_error("vnetbed soak", &e);
            return 2;
        }
    };
    soak::install_stop_handlers();
    match soak::run(&plan) {
        Ok(result) => {
            if args.common.json {
                // report.json itself (schema vnetbed.report/1, docs/report.schema.json).
                print_json(&report_json(&result));
            } else {
                print_summary(&result);
            }
            result.report.verdict.exit_status()
        }
        Err(e) => {
            report_error("vnetbed soak", &e);
            2
        }
    }
}

/// `vnetbed reproduce`.
pub fn reproduce_main(args: ReproduceArgs) -> i32 {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| soak::default_out_dir("reproduce"));
    let sut = sut_or(&args.sut, args.notify_model, NotifyModel::Unfenced);
    let plan = match plan(
        &args.common,
        &sut,
        args.timeout,
        out,
        StopWhen::IncidentComplete,
    ) {
        Ok(p) => p,
        Err(e) => {
            report_error("vnetbed reproduce", &e);
            return 2;
        }
    };
    soak::install_stop_handlers();
    match soak::run(&plan) {
        Ok(result) => {
            let a = &result.report.analysis;
            let steps = incident::steps(a);
            let (status, outcome) = if incident::reproduced(&steps) {
                (0, "reproduced: the 2012 incident, step by step".to_string())
            } else if let Some(why) = a.not_judgeable() {
                // Not "the bug did not show": the run could not show it.
                (2, format!("not reproduced, and the run cannot tell: {why}"))
            } else {
                (
                    1,
                    format!("not reproduced within {} s", args.timeout.as_secs()),
                )
            };
            if args.common.json {
                print_json(&serde_json::json!({
                    "schema": "vnetbed.reproduce/1",
                    "reproduced": status == 0,
                    "exit_status": status,
                    "outcome": outcome,
                    "dir": result.dir,
                    "report": report_json(&result),
                }));
            } else {
                outln!("{}", incident::render_text(&steps));
                print_summary(&result);
                outln!("{outcome}");
            }
            status
        }
        Err(e) => {
            report_error("vnetbed reproduce", &e);
            2
        }
    }
}
