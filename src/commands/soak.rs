//! `vnetbed soak`, `vnetbed reproduce` and `vnetbed verify`: sustained load against a guest,
//! with DHCP and stall monitoring, a crash-safe record and reports.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use vnetbed::net::schedule::parse_duration;
use vnetbed::report::incident;
use vnetbed::soak::load::LoadKind;
use vnetbed::soak::{self, SoakPlan, StopWhen};

use super::image::{BuildArgs, ImageName};
use super::run::report_error;

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Options shared by soak, reproduce and verify.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// Guest: `probe` (the built-in probe guest, everywhere) or `linux` (hardware-virtualization hosts).
    #[arg(long, default_value = "probe")]
    pub guest: String,
    /// Guest kernel image instead of the one `vnetbed image build <guest>` makes.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initrd for the guest kernel.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Guest memory in MiB (default: 64 for the probe, 512 for linux).
    #[arg(long)]
    pub mem: Option<u64>,
    /// Load: udp (host -> guest), tcp, tcp-reverse, mixed or none.
    #[arg(long, default_value = "udp", value_parser = |s: &str| s.parse::<LoadKind>())]
    pub load: LoadKind,
    /// UDP rate (iperf3 -b), e.g. 200M.
    #[arg(long, default_value = "200M")]
    pub rate: String,
    /// Length of each bounded iperf3 run.
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    pub run_length: Duration,
    /// Race window of the buggy models (`vnetbed run --race-window`).
    #[arg(long)]
    pub race_window: Option<String>,
    /// Stall watchdog timeout (`vnetbed run --stall-timeout`).
    #[arg(long)]
    pub stall_timeout: Option<String>,
    /// DHCP T1 (renew) sent by the testbed's dnsmasq; default 30 s (one-minute leases).
    #[arg(long, value_parser = duration_arg)]
    pub renew_after: Option<Duration>,
    /// DHCP T2 (rebind); default 52 s.
    #[arg(long, value_parser = duration_arg)]
    pub rebind_after: Option<Duration>,
    /// Minimum median throughput into and out of the guest (bits/s) for the throughput check.
    /// Default: a quarter of --rate for udp, 10 Mbit/s for tcp/tcp-reverse/mixed, none without load.
    #[arg(long)]
    pub throughput_floor: Option<f64>,
    /// Testbed name (1-8 characters; must be unique among concurrent runs).
    #[arg(long)]
    pub name: Option<String>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `vnetbed soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long to run (e.g. 60s, 30m, 48h).
    #[arg(long, value_parser = duration_arg)]
    pub duration: Duration,
    /// Notification model of the device: fenced, unfenced (qemu-kvm-1.0), no-recheck, or
    /// virtio-queue (rust-vmm's virtio-queue crate runs the queues).
    #[arg(long, default_value = "fenced")]
    pub notify_model: String,
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
    /// The buggy model to reproduce with.
    #[arg(long, default_value = "unfenced")]
    pub notify_model: String,
    /// Give up after this long.
    #[arg(long, default_value = "10m", value_parser = duration_arg)]
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
    /// The guest image.
    #[error("cannot get the {guest} guest image: {detail}; build it with `vnetbed image build {guest}` or pass --kernel")]
    Image {
        /// Guest name.
        guest: String,
        /// What went wrong.
        detail: String,
    },
    /// An unknown guest.
    #[error("unknown guest `{0}`: use probe or linux")]
    UnknownGuest(String),
}

/// The guest image for `common`: `--kernel`, or the built image.
pub fn guest_image(common: &CommonArgs) -> Result<(PathBuf, Option<PathBuf>), SetupError> {
    if let Some(k) = &common.kernel {
        return Ok((k.clone(), common.initrd.clone()));
    }
    match common.guest.as_str() {
        "probe" => build_image(ImageName::Probe).map(|p| (p[0].clone(), None)),
        "linux" => build_image(ImageName::Linux).map(|p| (p[0].clone(), p.get(1).cloned())),
        other => Err(SetupError::UnknownGuest(other.to_string())),
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

/// Build a plan from the shared options.
pub fn plan(
    common: &CommonArgs,
    notify_model: &str,
    duration: Duration,
    out: PathBuf,
    stop_when: StopWhen,
) -> Result<SoakPlan, SetupError> {
    let (kernel, initrd) = guest_image(common)?;
    Ok(SoakPlan {
        duration,
        guest: common.guest.clone(),
        kernel,
        initrd,
        mem_mib: common.mem.unwrap_or(match common.guest.as_str() {
            // Debian's cloud kernel and its initramfs unpacked in RAM need far more than the probe.
            "linux" => 512,
            _ => 64,
        }),
        notify_model: notify_model.to_string(),
        race_window: common.race_window.clone(),
        stall_timeout: common.stall_timeout.clone(),
        load: common.load,
        rate: common.rate.clone(),
        run_length: common.run_length,
        renew_after: common.renew_after,
        rebind_after: common.rebind_after,
        throughput_floor_bps: common
            .throughput_floor
            .or_else(|| vnetbed::soak::load::default_floor_bps(common.load, &common.rate)),
        out,
        quiet: common.quiet,
        stop_when,
        testbed_name: testbed_name(common),
        dhcp_timeout: Duration::from_secs(60),
    })
}

fn print_summary(result: &soak::SoakResult) {
    let r = &result.report;
    println!("verdict: {} ({})", r.verdict.as_str(), result.dir.display());
    for c in &r.checks {
        println!(
            "  {:<40} {}  {}",
            c.name,
            format!("{:?}", c.status).to_lowercase(),
            c.message
        );
    }
    println!(
        "reports: {0}/report.json {0}/junit.xml {0}/report.html",
        result.dir.display()
    );
}

/// `vnetbed soak`.
pub fn soak_main(args: SoakArgs) -> i32 {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| soak::default_out_dir("soak"));
    let plan = match plan(
        &args.common,
        &args.notify_model,
        args.duration,
        out,
        StopWhen::Duration,
    ) {
        Ok(p) => p,
        Err(e) => {
            report_error("vnetbed soak", &e);
            return 2;
        }
    };
    soak::install_stop_handlers();
    match soak::run(&plan) {
        Ok(result) => {
            print_summary(&result);
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
    let plan = match plan(
        &args.common,
        &args.notify_model,
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
            println!("{}", incident::render_text(&steps));
            print_summary(&result);
            if incident::reproduced(&steps) {
                println!("reproduced: the 2012 incident, step by step");
                0
            } else if let Some(why) = a.not_judgeable() {
                // Not "the bug did not show": the run could not show it.
                println!("not reproduced, and the run cannot tell: {why}");
                2
            } else {
                println!("not reproduced within {} s", args.timeout.as_secs());
                1
            }
        }
        Err(e) => {
            report_error("vnetbed reproduce", &e);
            2
        }
    }
}
