//! `vnetbed bench sensitivity`: would `verify` catch a fix that is only half there? For each
//! buggy model and mutant of the fix (`unfenced`, `missing-enable-fence`,
//! `missing-notify-fence`, `no-recheck` by default), run verify's control phase `--runs`
//! times (a soak of the probe guest under the soak's load, until its first stall or
//! `--timeout`) and print whether it was caught, the time to stall (min, p50, max) and the
//! signatures seen. A mutant that is not caught is a finding about the load, the guest or the
//! window, not something to hide: the exit status is 1 then.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use vmm::devices::virtio::net::{NetTransport, NotifyModel};
use vnetbed::soak::{self, StopWhen};

use super::{summarize, BenchError};
use crate::commands::shaping::ShapingProfile;
use crate::commands::soak::{plan, CommonArgs};

/// Arguments of `vnetbed bench sensitivity`.
#[derive(Debug, Args)]
pub struct SensitivityArgs {
    /// The defaults of the load and the rings, as verify's `--shaping`: race (default, as
    /// verify's control phase runs) or plain.
    #[arg(long, value_enum, default_value_t = ShapingProfile::Race)]
    pub shaping: ShapingProfile,
    /// Runs per model.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Give up on one run after this long without a stall (verify's `--timeout`).
    #[arg(long, default_value = "60s", value_parser = |s: &str| vmm::duration::parse_duration(s))]
    pub timeout: Duration,
    /// The models to measure, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "unfenced,missing-enable-fence,missing-notify-fence,no-recheck",
        value_parser = |s: &str| s.parse::<NotifyModel>().map_err(|e| e.to_string())
    )]
    pub models: Vec<NotifyModel>,
    /// The transport of vnetbed's device: mmio (default; one interrupt line for both
    /// queues) or pci (an MSI-X vector per queue, as the 2012 bug's virtio-net-pci).
    #[arg(long, default_value = "mmio", value_parser = |s: &str| s.parse::<NetTransport>().map_err(|e| e.to_string()))]
    pub transport: NetTransport,
    /// Run directory for every soak's record and reports (default
    /// vnetbed-runs/bench-sensitivity-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    /// The soak options (load, rate, race window, ...), as for `vnetbed soak`.
    pub common: CommonArgs,
}

/// One model's result.
struct ModelResult {
    model: NotifyModel,
    stalls: Vec<f64>,
    signatures: Vec<String>,
    runs: usize,
}

/// Run the benchmark; `Ok(false)` when some model was not caught in every run.
pub fn run(args: &SensitivityArgs) -> Result<bool, BenchError> {
    soak::install_stop_handlers();
    let mut common = args.common.clone();
    common.profile = args.shaping;
    let common = &common;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| soak::default_out_dir("bench-sensitivity"));
    let runs = args.runs.max(1);
    let mut results = Vec::new();
    let mut runs_json = Vec::new();
    for &model in &args.models {
        let mut r = ModelResult {
            model,
            stalls: Vec::new(),
            signatures: Vec::new(),
            runs,
        };
        for i in 1..=runs {
            let p = plan(
                common,
                &vnetbed::sut::SutSpec::Vnetbed {
                    model,
                    transport: args.transport,
                    legacy: false,
                },
                args.timeout,
                out.join(format!("{model}-{i:02}")),
                StopWhen::FirstStall,
            )?;
            let soaked = soak::run(&p)?;
            let first = soaked.report.analysis.first_stall().cloned();
            match &first {
                Some(s) => {
                    eprintln!(
                        "{model} run {i}: caught at {:.2} s ({})",
                        s.stalled_since,
                        s.signature()
                    );
                    r.stalls.push(s.stalled_since);
                    r.signatures.push(short_signature(&s.signature()));
                }
                None => eprintln!(
                    "{model} run {i}: NOT caught within {} s",
                    args.timeout.as_secs()
                ),
            }
            runs_json.push(json!({
                "model": model.to_string(),
                "dir": soaked.dir,
                "time_to_stall_s": first.as_ref().map(|s| s.stalled_since),
                "signature": first.as_ref().map(|s| s.signature()),
            }));
            if soak::stop_signal().is_some() {
                return Err(BenchError::Interrupted);
            }
        }
        results.push(r);
    }
    let window = common.race_window.map_or_else(
        || "each model's default".to_string(),
        |w| humantime::format_duration(w).to_string(),
    );
    println!();
    let shaping = common.shaping(&vnetbed::sut::SutSpec::vnetbed(NotifyModel::Unfenced));
    println!(
        "sensitivity: verify's control phase per model on virtio-{}, race window {window}, load {} {} ({} shaping: {}), {} runs each, at most {} s per run",
        args.transport,
        common.load().name(),
        common.rate().text,
        args.shaping.name(),
        shaping.describe(),
        runs,
        args.timeout.as_secs()
    );
    println!("| model | caught | min | p50 | max | signatures |");
    println!("|---|---|---|---|---|---|");
    let mut all_caught = true;
    for r in &results {
        all_caught &= r.stalls.len() == r.runs;
        let s = summarize(&r.stalls);
        let secs = |v: f64| {
            if v.is_nan() {
                "-".to_string()
            } else {
                format!("{v:.2} s")
            }
        };
        println!(
            "| {} | {}/{} | {} | {} | {} | {} |",
            r.model,
            r.stalls.len(),
            r.runs,
            secs(s.min),
            secs(s.p50),
            secs(s.max),
            signature_counts(&r.signatures)
        );
    }
    let doc = json!({
        "schema": "vnetbed.bench.sensitivity/1",
        "race_window": window,
        "load": common.load().name(),
        "rate": common.rate().text,
        "shaping": args.shaping.name(),
        "transport": args.transport.to_string(),
        "queue_size": shaping.queue_size,
        "burst": shaping.burst,
        "timeout_s": args.timeout.as_secs_f64(),
        "models": results.iter().map(|r| {
            let s = summarize(&r.stalls);
            let num = |v: f64| (!v.is_nan()).then_some(v);
            json!({
                "model": r.model.to_string(),
                "runs": r.runs,
                "caught": r.stalls.len(),
                "time_to_stall_s": {"min": num(s.min), "p50": num(s.p50), "max": num(s.max)},
                "signatures": r.signatures,
            })
        }).collect::<Vec<_>>(),
        "runs": runs_json,
    });
    let path = out.join("bench-sensitivity.json");
    std::fs::write(&path, format!("{doc:#}\n")).map_err(|e| BenchError::Io {
        what: format!("write {}", path.display()),
        source: e,
    })?;
    println!(
        "records and reports: {}; figures: {}",
        out.display(),
        path.display()
    );
    if !all_caught {
        println!("finding: a model was not caught in every run (see above)");
    }
    Ok(all_caught)
}

/// `lost_kick on rx` of a full signature (without the ring indices).
fn short_signature(full: &str) -> String {
    full.split(':').next().unwrap_or(full).trim().to_string()
}

/// `3× lost_interrupt on rx, 1× lost_kick on rx`, most frequent first.
fn signature_counts(signatures: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for s in signatures {
        match counts.iter_mut().find(|(k, _)| k == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s.clone(), 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if counts.is_empty() {
        return "-".into();
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n}× {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_signatures_most_frequent_first() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(signature_counts(&s(&["a", "b", "b"])), "2× b, 1× a");
        assert_eq!(signature_counts(&[]), "-");
        assert_eq!(
            short_signature("lost_kick on rx: device next_avail=1"),
            "lost_kick on rx"
        );
    }
}
