//! `vnetbed bench stall`: the bug and the fix, in numbers, from one run:
//! - the time to the first stall of the buggy model (default `unfenced`, default race window),
//!   over `--runs` soaks of the probe guest under the soak's load;
//! - the exposure of a fenced soak: ring-empty -> notification-enable cycles and rx
//!   interrupt decisions per minute (each one a chance for the race the fence closes);
//! - the fenced soak's throughput, next to a veth pair between two namespaces driven by the
//!   same iperf3 load in the same run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use vnetbed::net::veth::{VethPair, VETH_B_ADDRESS};
use vnetbed::soak::load::LoadKind;
use vnetbed::soak::{self, StopWhen};
use vnetbed::sut::SutSpec;

use super::iperf::{self, Test};
use super::{summarize, BenchError};
use crate::commands::soak::{plan, CommonArgs};
use vnetbed::report::analysis::rx_interrupt_decisions_in as rx_interrupt_decisions;

/// Arguments of `vnetbed bench stall`.
#[derive(Debug, Args)]
pub struct StallArgs {
    /// Buggy-model runs for the time-to-stall distribution.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Give up on one buggy run after this long.
    #[arg(long, default_value = "60s", value_parser = crate::commands::args::positive_duration)]
    pub timeout: Duration,
    /// The buggy runs' system under test (a spec as for `soak --sut`); default
    /// vnetbed:unfenced.
    #[arg(long, value_name = "SPEC", value_parser = vnetbed::sut::parse_arg, conflicts_with = "buggy_model")]
    pub control: Option<SutSpec>,
    /// Shorthand for `--control vnetbed:MODEL`.
    #[arg(long, value_parser = crate::commands::args::buggy_model)]
    pub buggy_model: Option<vmm::devices::virtio::net::NotifyModel>,
    /// The system under test of the exposure soak (default vnetbed, fenced).
    #[arg(long, value_name = "SPEC", default_value = "vnetbed", value_parser = vnetbed::sut::parse_arg)]
    pub sut: SutSpec,
    /// Length of the fenced soak.
    #[arg(long, default_value = "60s", value_parser = crate::commands::args::positive_duration)]
    pub soak: Duration,
    /// Seconds of the veth reference run.
    #[arg(long, default_value_t = 10)]
    pub reference_seconds: u64,
    /// Run directory for the soaks' records and reports (default vnetbed-runs/bench-stall-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    /// The soak options (load, rate, race window, ...), as for `vnetbed soak`.
    pub common: CommonArgs,
}

fn mbit(bps: Option<f64>) -> String {
    bps.map_or("-".into(), super::mbit)
}

/// Run the benchmark and print its figures.
pub fn run(args: &StallArgs) -> Result<(), BenchError> {
    soak::install_stop_handlers();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| soak::default_out_dir("bench-stall"));
    let window = args.common.race_window.map_or_else(
        || "default".into(),
        |d| humantime::format_duration(d).to_string(),
    );

    let control = crate::commands::soak::sut_or(
        &args.control,
        args.buggy_model,
        vmm::devices::virtio::net::NotifyModel::Unfenced,
    );
    // 1. Time to stall of the buggy model.
    let mut stalls = Vec::new();
    let mut runs_json = Vec::new();
    for i in 1..=args.runs.max(1) {
        let p = plan(
            &args.common,
            &control,
            args.timeout,
            out.join(format!("stall-{i:02}")),
            StopWhen::FirstStall,
        )?;
        let r = soak::run(&p)?;
        let first = r.report.analysis.first_stall().cloned();
        match &first {
            Some(s) => {
                eprintln!(
                    "{} run {i}: stalled at {:.2} s ({})",
                    control,
                    s.stalled_since,
                    s.signature()
                );
                stalls.push(s.stalled_since);
            }
            None => eprintln!(
                "{} run {i}: no stall within {} s",
                control,
                args.timeout.as_secs()
            ),
        }
        runs_json.push(json!({
            "dir": r.dir,
            "time_to_stall_s": first.as_ref().map(|s| s.stalled_since),
            "signature": first.as_ref().map(|s| s.signature()),
        }));
        if soak::stop_signal().is_some() {
            return Err(BenchError::Interrupted);
        }
    }

    // 2. A fenced soak: exposure and throughput.
    let p = plan(
        &args.common,
        &args.sut,
        args.soak,
        out.join("fenced"),
        StopWhen::Duration,
    )?;
    let fenced = soak::run(&p)?;
    if soak::stop_signal().is_some() {
        return Err(BenchError::Interrupted);
    }
    let a = &fenced.report.analysis;
    let minutes = a.duration_s / 60.0;
    let decisions = rx_interrupt_decisions(&fenced.dir);
    let decisions_per_minute = (minutes > 0.0).then(|| decisions as f64 / minutes);

    // 3. The veth reference under the same iperf3 load.
    let test = match args.common.load() {
        LoadKind::TcpReverse => Test::TcpReverse,
        LoadKind::Tcp => Test::Tcp,
        _ => Test::Udp,
    };
    let pair = VethPair::up(&format!("bs{}", std::process::id() % 10_000))?;
    let server = iperf::Server::start(&pair.netns_b)?;
    let reference = iperf::run(
        &pair.netns_a,
        VETH_B_ADDRESS,
        test,
        args.reference_seconds,
        &args.common.rate().text,
    )?;
    drop(server);
    drop(pair);

    outln!();
    outln!(
        "time to the first stall: {control}, race window {window}, load {} {} ({} runs, seconds from the start of each record)",
        args.common.load().name(),
        args.common.rate().text,
        args.runs.max(1)
    );
    if stalls.is_empty() {
        outln!("  no run stalled within {} s", args.timeout.as_secs());
    } else {
        let s = summarize(&stalls);
        outln!(
            "  stalled {}/{}: min {:.2} s  p50 {:.2} s  p90 {:.2} s  max {:.2} s",
            stalls.len(),
            args.runs.max(1),
            s.min,
            s.p50,
            s.p90,
            s.max
        );
    }
    outln!(
        "{} soak, {:.0} s, verdict {}:",
        args.sut,
        a.duration_s,
        fenced.report.verdict.as_str()
    );
    outln!(
        "  exposure: {} ring-empty -> enable cycles ({} per minute), {decisions} rx interrupt decisions ({} per minute), {} stalls",
        a.exposure.cycles,
        a.exposure.per_minute.map_or("-".into(), |m| format!("{m:.0}")),
        decisions_per_minute.map_or("-".into(), |m| format!("{m:.0}")),
        a.stalls.len()
    );
    outln!(
        "  throughput into the guest: p50 {}  p99 {} (one sample a second, {} samples); ping p50 {}",
        mbit(a.throughput.to_guest.p50),
        mbit(a.throughput.to_guest.p99),
        a.throughput.to_guest.samples,
        a.ping.rtt_ms.p50.map_or("-".into(), |m| format!("{m:.2} ms"))
    );
    outln!(
        "  reference, veth pair between two netns, same iperf3 load for {} s: {reference}",
        args.reference_seconds,
    );
    let doc = json!({
        "schema": "vnetbed.bench.stall/1",
        "buggy_model": control.label(),
        "control": control.to_string(),
        "sut": args.sut.to_string(),
        "race_window": window,
        "load": args.common.load().name(),
        "rate": args.common.rate().text,
        "stall_runs": runs_json,
        "fenced": {
            "dir": fenced.dir,
            "verdict": fenced.report.verdict.as_str(),
            "duration_s": a.duration_s,
            "exposure_cycles": a.exposure.cycles,
            "exposure_per_minute": a.exposure.per_minute,
            "rx_interrupt_decisions": decisions,
            "rx_interrupt_decisions_per_minute": decisions_per_minute,
            "stalls": a.stalls.len(),
            "to_guest_bps": {"p50": a.throughput.to_guest.p50, "p99": a.throughput.to_guest.p99},
        },
        "veth_reference": {
            "seconds": args.reference_seconds,
            "received_bps": reference.received_bps,
            "lost_percent": reference.lost_percent,
        },
    });
    let path = out.join("bench-stall.json");
    std::fs::write(&path, format!("{doc:#}\n")).map_err(|e| BenchError::Io {
        what: format!("write {}", path.display()),
        source: e,
    })?;
    outln!(
        "records and reports: {}; figures: {}",
        out.display(),
        path.display()
    );
    Ok(())
}
