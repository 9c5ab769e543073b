//! `vnetbed verify`: A/B regression verification of the notification fix.
//!
//! - A: the buggy model, `--runs` times, each until its first stall (or `--timeout`). Every
//!   run must stall: that shows the setup can see the bug at all.
//! - B: the system under test (`--sut`, by default vnetbed's `fenced` model; e.g.
//!   `vnetbed:virtio-queue` for rust-vmm's virtio-queue crate), for the same total time and
//!   load as A (at least `--duration`). There must be no stall and no failed renewal.
//!
//! One verdict, with every run's reports and `verify.json` in the run directory.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use vnetbed::report::percentile;
use vnetbed::report::Verdict;
use vnetbed::soak::{self, StopWhen};
use vnetbed::sut::SutSpec;

use super::run::report_error;
use super::soak::{plan, CommonArgs};

/// 2012-style iperf exposure assumed for the equivalence: ring-empty -> notification-enable
/// cycles per second of a 1 Gbit/s iperf stream into a virtio-net guest (about 83 k frames/s
/// of 1500 bytes, the rx ring refilled every 64-83 frames).
pub const CYCLES_PER_SECOND_2012: f64 = 1000.0;

/// The same stream's rx interrupt decisions per second: qemu-kvm 1.0 decided (and, without
/// the fence, raced) once per received frame, as vnetbed's device does.
pub const INTERRUPT_DECISIONS_PER_SECOND_2012: f64 = 83_000.0;

/// rx interrupt decisions (sent + suppressed) in a run: each is one chance for the
/// lost-interrupt race, as each ring-empty -> enable cycle is one for the lost kick.
pub fn rx_interrupt_decisions(dir: &std::path::Path) -> u64 {
    let Ok(t) = vnetbed::record::TimelineReader::read(&dir.join(vnetbed::record::TIMELINE_FILE))
    else {
        return 0;
    };
    t.records
        .iter()
        .filter_map(|r| match r {
            vnetbed::record::Record::Sample(s) => s.device.as_ref(),
            _ => None,
        })
        .flat_map(|d| d.queues.iter())
        .filter(|q| q.queue.starts_with("rx"))
        .map(|q| q.interrupts_sent + q.interrupts_suppressed)
        .max()
        .unwrap_or(0)
}

/// Arguments of `vnetbed verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Minimum length of the system under test's soak (B); it also runs at least as long as A
    /// took.
    #[arg(long, default_value = "2m", value_parser = |s: &str| vmm::duration::parse_duration(s))]
    pub duration: Duration,
    /// Number of buggy-model runs (A).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Give up on one A run after this long without a stall.
    #[arg(long, default_value = "60s", value_parser = |s: &str| vmm::duration::parse_duration(s))]
    pub timeout: Duration,
    /// The buggy model for A (the positive control).
    #[arg(long, default_value = "unfenced")]
    pub buggy_model: String,
    /// The system under test for B: `vnetbed` (vnetbed's own queue, fenced) or
    /// `vnetbed:MODEL`, e.g. `vnetbed:virtio-queue` for rust-vmm's virtio-queue crate.
    #[arg(long, default_value = "vnetbed", value_parser = |s: &str| s.parse::<SutSpec>().map_err(|e| e.to_string()))]
    pub sut: SutSpec,
    /// Run directory (default vnetbed-runs/verify-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    /// Shared options.
    pub common: CommonArgs,
}

/// `vnetbed verify`; exit 0 pass, 1 fail, 2 error.
pub fn main(args: VerifyArgs) -> i32 {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| soak::default_out_dir("verify"));
    soak::install_stop_handlers();
    let mut a_runs = Vec::new();
    let mut a_time = Duration::ZERO;
    let mut stall_times = Vec::new();
    let mut all_stalled = true;
    let mut a_unjudged: Option<String> = None;
    for i in 1..=args.runs.max(1) {
        let dir = out.join(format!("A{i}-{}", args.buggy_model));
        let p = match plan(
            &args.common,
            &args.buggy_model,
            args.timeout,
            dir,
            StopWhen::FirstStall,
        ) {
            Ok(p) => p,
            Err(e) => {
                report_error("vnetbed verify", &e);
                return 2;
            }
        };
        println!(
            "A{i}: {} until the first stall (at most {} s)",
            args.buggy_model,
            args.timeout.as_secs()
        );
        let started = Instant::now();
        let result = match soak::run(&p) {
            Ok(r) => r,
            Err(e) => {
                report_error("vnetbed verify", &e);
                return 2;
            }
        };
        a_time += started.elapsed();
        let first = result.report.analysis.first_stall().cloned();
        match &first {
            Some(s) => {
                println!("  stalled at {:.1} s: {}", s.stalled_since, s.signature());
                stall_times.push(s.stalled_since);
            }
            None => match result.report.analysis.not_judgeable() {
                Some(why) => {
                    println!("  no stall, and the run cannot tell: {why}");
                    all_stalled = false;
                    a_unjudged.get_or_insert(format!("A{i}: {why}"));
                }
                None => {
                    println!("  no stall within {} s", args.timeout.as_secs());
                    all_stalled = false;
                }
            },
        }
        a_runs.push(json!({
            "dir": result.dir,
            "stalled": first.is_some(),
            "time_to_stall_s": first.as_ref().map(|s| s.stalled_since),
            "signature": first.as_ref().map(|s| s.signature()),
        }));
        if soak::stop_signal().is_some() {
            break;
        }
    }
    if soak::stop_signal().is_some() {
        // No B run after a SIGINT/SIGTERM: every A run's record and reports are complete.
        eprintln!(
            "vnetbed verify: interrupted during the buggy runs; no verdict. Their reports are in {}",
            out.display()
        );
        return 2;
    }
    stall_times.sort_by(|a, b| a.total_cmp(b));
    let b_duration = a_time.max(args.duration);
    let sut_model = args.sut.notify_model().to_string();
    println!(
        "B: {} for {} s (the same load): {}",
        args.sut,
        b_duration.as_secs(),
        args.sut.identity()
    );
    let p = match plan(
        &args.common,
        &sut_model,
        b_duration,
        out.join(format!("B-{sut_model}")),
        StopWhen::Duration,
    ) {
        Ok(p) => p,
        Err(e) => {
            report_error("vnetbed verify", &e);
            return 2;
        }
    };
    let b = match soak::run(&p) {
        Ok(r) => r,
        Err(e) => {
            report_error("vnetbed verify", &e);
            return 2;
        }
    };
    let exposure = b.report.analysis.exposure.cycles;
    let decisions = rx_interrupt_decisions(&b.dir);
    // Each race needs its own chances: the 2012-iperf time that gives as many of both.
    let hours_2012 = (exposure as f64 / (CYCLES_PER_SECOND_2012 * 3600.0))
        .max(decisions as f64 / (INTERRUPT_DECISIONS_PER_SECOND_2012 * 3600.0));
    let b_ok = b.report.verdict == Verdict::Pass;
    let b_unjudged = (b.report.verdict == Verdict::Error)
        .then(|| b.report.analysis.not_judgeable())
        .flatten()
        .map(|why| format!("B: {why}"));
    let unjudged = a_unjudged.or(b_unjudged);
    let verdict = if soak::stop_signal().is_some() || unjudged.is_some() {
        "error"
    } else if all_stalled && b_ok {
        "pass"
    } else {
        "fail"
    };
    let reason = match (&unjudged, all_stalled, b_ok) {
        (Some(why), _, _) => format!("a run could not be judged, so there is no verdict on the fix: {why}"),
        (None, ..) if soak::stop_signal().is_some() => "interrupted before every run finished".to_string(),
        (None, all_stalled, b_ok) => match (all_stalled, b_ok) {
        (true, true) => format!("every buggy run stalled and {} did not: the fix holds", args.sut),
        (false, _) => "a buggy run did not stall: this setup cannot show the bug, so it cannot vouch for the fix".to_string(),
        (true, false) => format!("{} failed its checks ({}): the fix does not hold", args.sut, b.report.verdict.as_str()),
        },
    };
    let summary = json!({
        "schema": "vnetbed.verify/1",
        "verdict": verdict,
        "reason": reason,
        "buggy_model": args.buggy_model,
        "sut": args.sut.to_string(),
        "sut_identity": args.sut.identity(),
        "a_runs": a_runs,
        "time_to_stall_s": {
            "runs": stall_times.len(),
            "min": stall_times.first(),
            "p50": percentile(&stall_times, 50.0),
            "max": stall_times.last(),
        },
        "b": {
            "dir": b.dir,
            "verdict": b.report.verdict.as_str(),
            "duration_s": b_duration.as_secs_f64(),
            "exposure_cycles": exposure,
            "exposure_per_minute": b.report.analysis.exposure.per_minute,
            "rx_interrupt_decisions": decisions,
            "equivalent_2012_iperf_hours": hours_2012,
            "assumption": format!(
                "a 2012 1-Gbit/s iperf stream into the guest gives {CYCLES_PER_SECOND_2012} ring-empty -> \
                 notification-enable cycles and {INTERRUPT_DECISIONS_PER_SECOND_2012} rx interrupt decisions per \
                 second; the equivalence is the larger of the two ratios"
            ),
        },
    });
    let _ = std::fs::create_dir_all(&out);
    if let Err(e) = std::fs::write(out.join("verify.json"), format!("{summary:#}\n")) {
        eprintln!("vnetbed verify: cannot write verify.json: {e}");
    }
    let secs = |v: Option<&f64>| v.map_or("-".to_string(), |s| format!("{s:.2} s"));
    println!(
        "time to stall over {} runs: min {}, p50 {}, max {}",
        stall_times.len(),
        secs(stall_times.first()),
        secs(percentile(&stall_times, 50.0).as_ref()),
        secs(stall_times.last())
    );
    println!(
        "{} exposure: {exposure} ring-empty -> enable cycles, {decisions} rx interrupt decisions \
         (~{hours_2012:.4} h of 2012-style 1-Gbit/s iperf), verdict {}",
        args.sut,
        b.report.verdict.as_str()
    );
    println!(
        "  assumption: a 2012 1-Gbit/s iperf stream into the guest gave {CYCLES_PER_SECOND_2012} ring-empty -> \
         enable cycles and {INTERRUPT_DECISIONS_PER_SECOND_2012} rx interrupt decisions per second"
    );
    println!(
        "verdict: {verdict}: {reason} ({})",
        out.join("verify.json").display()
    );
    match verdict {
        "pass" => 0,
        "fail" => 1,
        _ => 2,
    }
}
