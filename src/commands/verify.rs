//! `vnetbed verify`: A/B regression verification of the notification fix.
//!
//! - A: the positive control (`--control`, by default `vnetbed:unfenced`; any spec, e.g. an
//!   old QEMU build), `--runs` times, each until its first stall (or `--timeout`). Every run
//!   must stall: that shows this harness, guest and load catch the bug here and now. A
//!   control that does not stall makes the verdict `error` (exit 2): the run could not have
//!   caught the bug.
//! - B: the system under test (`--sut`, by default vnetbed's `fenced` model; e.g.
//!   `vnetbed:virtio-queue` for rust-vmm's virtio-queue crate, or `qemu=PATH,...`), for the
//!   same total time and load as A (at least `--duration`). There must be no stall and no
//!   failed renewal.
//!
//! One verdict. `verify.json`, a top-level `junit.xml` and `report.html` are written at the
//! start and after every run (so an interrupted or failed verify leaves them too), next to
//! every run's own reports; `vnetbed report DIR` rebuilds them all.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use vmm::devices::virtio::net::NotifyModel;
use vnetbed::soak::{self, StopWhen};
use vnetbed::sut::SutSpec;
use vnetbed::verify::{self, identity, Identity, VerifyPlan, VerifySummary};

use super::args;
use super::run::report_error;
use super::shaping::ShapingProfile;
use super::soak::{check_sut, guest_image, plan, CommonArgs};

/// The default positive control.
const DEFAULT_CONTROL: SutSpec = SutSpec::vnetbed(NotifyModel::Unfenced);

/// Arguments of `vnetbed verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Minimum length of the system under test's soak (B); it also runs at least as long as A
    /// took.
    #[arg(long, default_value = "2m", value_parser = args::positive_duration)]
    pub duration: Duration,
    /// Number of control runs (A), at least 1.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub runs: u64,
    /// Give up on one A run after this long without a stall (verify then exits 2: the run could not have caught the bug).
    #[arg(long, default_value = "60s", value_parser = args::positive_duration)]
    pub timeout: Duration,
    /// The positive control of the A runs, a spec as for `--sut`: by default vnetbed:unfenced
    /// (qemu-kvm 1.0's race); any spec is allowed, e.g. an old QEMU build. Every control run
    /// must stall.
    #[arg(long, value_name = "SPEC", value_parser = vnetbed::sut::parse_arg, conflicts_with = "buggy_model")]
    pub control: Option<SutSpec>,
    /// Shorthand for `--control vnetbed:MODEL` with a buggy model: unfenced (alias
    /// qemu-kvm-1.0), no-recheck, or a mutant of the fix: missing-enable-fence,
    /// missing-notify-fence.
    #[arg(long, value_parser = args::buggy_model)]
    pub buggy_model: Option<NotifyModel>,
    /// The system under test of B: `vnetbed` (vnetbed's own queue, fenced),
    /// `vnetbed:MODEL` (e.g. `vnetbed:virtio-queue` for rust-vmm's virtio-queue crate;
    /// `,transport=pci[,legacy=on]` for virtio-pci),
    /// `qemu[=PATH][,machine=q35|pc|microvm][,device=...][,modern=on|off][,rx_queue_size=N][,extra=ARGS]`,
    /// `dpdk[=PATH][,reconnect=SECS]` or `vhost-user=SOCKET[,port=IFNAME][,reconnect=SECS]`
    /// (a spec as for `soak --sut`).
    #[arg(long, value_name = "SPEC", default_value = "vnetbed", value_parser = vnetbed::sut::parse_arg)]
    pub sut: SutSpec,
    /// The defaults of --load, --rate, --burst, --queue-size and --guest-cmdline: race (UDP
    /// at 120M in bursts of one and a half rings into 4-entry rings; QEMU: 256 entries and
    /// the probe's merged-buffer mode; a vhost-user backend, which drops what a full ring
    /// cannot take: its 256-entry rings and bursts of 6; the most chances for both races
    /// while every mutant of the fix is still caught and no answer is dropped) or plain
    /// (soak's: steady UDP at 200M
    /// into the VMM's default rings). Options given explicitly win.
    #[arg(long, value_enum, default_value_t = ShapingProfile::Race)]
    pub shaping: ShapingProfile,
    /// Run directory (default vnetbed-runs/verify-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    /// Shared options.
    pub common: CommonArgs,
}

/// Where verify's progress lines go: stdout, or stderr when `--json` keeps stdout for the
/// summary.
struct Say {
    json: bool,
}

impl Say {
    fn line(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            outln!("{text}");
        }
    }
}

struct Outputs {
    out: PathBuf,
    plan: VerifyPlan,
    identity: Identity,
}

impl Outputs {
    /// Rewrite verify.json, junit.xml and report.html from the run directories so far.
    fn write(&self) -> Option<VerifySummary> {
        match verify::write_outputs(&self.out, &self.plan, &self.identity) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("vnetbed verify: {e}");
                None
            }
        }
    }
}

/// `vnetbed verify`; exit 0 pass, 1 fail, 2 error.
pub fn main(mut args: VerifyArgs) -> i32 {
    args.common.profile = args.shaping;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| soak::default_out_dir("verify"));
    let say = Say {
        json: args.common.json,
    };
    let control = args.control.clone().unwrap_or(match args.buggy_model {
        Some(model) => SutSpec::vnetbed(model),
        None => DEFAULT_CONTROL,
    });
    let label = control.label();
    // Both VMMs must be there, and take the queue size, before anything starts.
    for spec in [&control, &args.sut] {
        if let Err(e) = check_sut(&args.common, spec) {
            report_error("vnetbed verify", &e);
            return 2;
        }
    }
    let kernel = match guest_image(&args.common) {
        Ok((k, _)) => k,
        Err(e) => {
            report_error("vnetbed verify", &e);
            return 2;
        }
    };
    let outputs = Outputs {
        out: out.clone(),
        plan: VerifyPlan {
            runs: args.runs as usize,
            timeout_s: args.timeout.as_secs_f64(),
            min_b_duration_s: args.duration.as_secs_f64(),
            buggy_model: label.clone(),
            control: control.to_string(),
            sut: args.sut.to_string(),
            shaping: args.shaping.name().to_string(),
        },
        identity: Identity {
            sut: Some(args.sut.identity()),
            sut_vmm: Some(args.sut.vmm_identity()),
            control_vmm: Some(control.vmm_identity()),
            ..identity::gather(Some(&kernel))
        },
    };
    soak::install_stop_handlers();
    outputs.write();
    let mut a_time = Duration::ZERO;
    for i in 1..=outputs.plan.runs {
        let name = outputs.plan.a_dir(i);
        let mut p = match plan(
            &args.common,
            &control,
            args.timeout,
            out.join(&name),
            StopWhen::FirstStall,
        ) {
            Ok(p) => p,
            Err(e) => {
                report_error("vnetbed verify", &e);
                return finish(&outputs, &say, 2);
            }
        };
        p.phase = Some(name.clone());
        p.expect_stall = true;
        say.line(&format!(
            "{name}: {control} until the first stall (at most {} s)",
            args.timeout.as_secs()
        ));
        let started = Instant::now();
        let result = soak::run(&p);
        a_time += started.elapsed();
        match result {
            Ok(r) => match r.report.analysis.first_stall() {
                Some(s) => say.line(&format!(
                    "  stalled at {:.1} s: {}",
                    s.stalled_since,
                    s.signature()
                )),
                None => match r.report.analysis.not_judgeable() {
                    Some(why) => say.line(&format!("  no stall, and the run cannot tell: {why}")),
                    None => {
                        // The positive control failed: nothing this run does can vouch for
                        // the system under test, so it stops here.
                        say.line(&format!(
                            "  no stall within {} s: this run could not have caught the bug; \
                             the system under test is not run",
                            args.timeout.as_secs()
                        ));
                        return finish(&outputs, &say, 2);
                    }
                },
            },
            Err(e) => {
                report_error("vnetbed verify", &e);
                return finish(&outputs, &say, 2);
            }
        }
        outputs.write();
        if soak::stop_signal().is_some() {
            eprintln!(
                "vnetbed verify: interrupted during the buggy runs; no verdict. Their reports are in {}",
                out.display()
            );
            return finish(&outputs, &say, 2);
        }
    }
    let b_duration = a_time.max(args.duration);
    let b_dir = outputs.plan.b_dir();
    say.line(&format!(
        "{b_dir}: {} for {} s (the same load): {}",
        args.sut,
        b_duration.as_secs(),
        args.sut.identity()
    ));
    let mut p = match plan(
        &args.common,
        &args.sut,
        b_duration,
        out.join(&b_dir),
        StopWhen::Duration,
    ) {
        Ok(p) => p,
        Err(e) => {
            report_error("vnetbed verify", &e);
            return finish(&outputs, &say, 2);
        }
    };
    p.phase = Some(b_dir.clone());
    if let Err(e) = soak::run(&p) {
        report_error("vnetbed verify", &e);
        return finish(&outputs, &say, 2);
    }
    finish(&outputs, &say, 0)
}

/// Write the outputs one last time, print the verdict, and return the exit status: the
/// summary's, or `fallback` when even that could not be written.
fn finish(outputs: &Outputs, say: &Say, fallback: i32) -> i32 {
    let Some(v) = outputs.write() else {
        return fallback.max(2);
    };
    if say.json {
        match serde_json::to_string_pretty(&v) {
            Ok(text) => outln!("{text}"),
            Err(e) => eprintln!("vnetbed verify: cannot print the summary: {e}"),
        }
        return v.exit_status;
    }
    print_summary(&v, outputs);
    v.exit_status
}

fn print_summary(v: &VerifySummary, outputs: &Outputs) {
    let t = &v.time_to_stall_s;
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.2} s"));
    outln!(
        "time to stall over {} runs (seconds from the start of each run's record): min {}, p50 {}, max {}",
        t.runs,
        secs(t.min),
        secs(t.p50),
        secs(t.max)
    );
    if let Some(b) = &v.b {
        outln!(
            "{}: {:.1} s recorded; exposure, counted by the {}: {} ring-empty -> enable cycles (lost-kick chances), {} rx \
             interrupt decisions (lost-interrupt chances), ~{:.4} h of 2012-style 1-Gbit/s iperf; verdict {}",
            v.sut,
            b.duration_s,
            b.exposure_source,
            b.exposure_cycles,
            b.rx_interrupt_decisions,
            b.equivalent_2012_iperf_hours,
            b.verdict.as_str()
        );
        let rate = |v: Option<f64>| v.map_or("-".to_string(), |m| format!("{m:.0}/min"));
        for q in &b.queues {
            outln!(
                "  {}: {} lost-kick chances ({}), {} interrupt decisions ({})",
                q.queue,
                q.kick_chances,
                rate(q.kick_chances_per_minute),
                q.interrupt_decisions,
                rate(q.interrupt_decisions_per_minute)
            );
        }
        outln!("  assumption: {}", b.assumption);
    }
    let dir = &outputs.out;
    outln!(
        "verdict: {}: {}\nreports: {} {} {}",
        v.verdict.as_str(),
        v.reason,
        dir.join(verify::VERIFY_JSON).display(),
        dir.join("junit.xml").display(),
        dir.join("report.html").display()
    );
}
