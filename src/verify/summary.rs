//! `verify.json` (schema `vnetbed.verify/1`): the A/B verdict, computed from the run
//! directories alone, so that the live `vnetbed verify` and `vnetbed report DIR` write the
//! same file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::record::TIMELINE_FILE;
use crate::report::analysis::{Analysis, GuestExposure, QueueExposure};
use crate::report::{self, percentile, Check, CheckStatus, Verdict};

/// The schema name and version of `verify.json`.
pub const VERIFY_SCHEMA: &str = "vnetbed.verify/1";

/// Ring-empty -> notification-enable cycles per second of a 2012 1-Gbit/s iperf stream into a
/// virtio-net guest (about 83 k frames/s of 1500 bytes, the rx ring refilled every 64-83
/// frames): the assumption behind the lost-kick race's 2012 equivalence.
pub const CYCLES_PER_SECOND_2012: f64 = 1000.0;

/// The same stream's rx interrupt decisions per second: qemu-kvm 1.0 decided (and, without
/// the fence, raced) once per received frame, as vnetbed's device does. The assumption behind
/// the lost-interrupt race's 2012 equivalence.
pub const INTERRUPT_DECISIONS_PER_SECOND_2012: f64 = 83_000.0;

/// The directory of B with the default system under test (`vnetbed:fenced`).
pub const B_DIR: &str = "B-fenced";

/// The system under test when a `verify.json` predates `--sut`.
fn default_sut() -> String {
    "vnetbed:fenced".to_string()
}

/// The directory of B for the system under test `sut`: `B-MODEL` for `vnetbed:MODEL`,
/// `B-qemu` for a QEMU spec.
pub fn b_dir_name(sut: &str) -> String {
    format!("B-{}", spec_label(sut))
}

/// A spec's short name: `fenced` for `vnetbed` and `vnetbed:fenced`, MODEL for
/// `vnetbed:MODEL`, `qemu` for any QEMU spec. A spec that does not parse (from a newer
/// vnetbed) keeps the part after `:`, or the whole text.
pub fn spec_label(spec: &str) -> String {
    match spec.parse::<crate::sut::SutSpec>() {
        Ok(s) => s.label(),
        Err(_) => spec.split_once(':').map_or(spec, |(_, m)| m).to_string(),
    }
}

/// The directory of A run `i` (1-based) with the control labelled `label` (a buggy model's
/// name, or `qemu`): `A1-unfenced`.
pub fn a_dir_name(i: usize, label: &str) -> String {
    format!("A{i}-{label}")
}

fn default_control() -> String {
    String::new()
}

/// What verify was asked to do; kept in `verify.json` so that `vnetbed report` can rebuild it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyPlan {
    /// Number of buggy-model (A) runs.
    pub runs: usize,
    /// Each A run's timeout, seconds.
    pub timeout_s: f64,
    /// B's minimum length (`--duration`), seconds.
    pub min_b_duration_s: f64,
    /// The short name of the A runs' control: the buggy model (`unfenced`), or `qemu`.
    pub buggy_model: String,
    /// The positive control of the A runs (`--control`, e.g. `vnetbed:unfenced` or a QEMU
    /// spec); empty in files from before `--control`: then `vnetbed:` + `buggy_model`.
    #[serde(default = "default_control", skip_serializing_if = "String::is_empty")]
    pub control: String,
    /// The system under test of B (`--sut`, e.g. `vnetbed:fenced`, `vnetbed:virtio-queue`,
    /// `qemu,machine=q35,device=virtio-net-pci`).
    #[serde(default = "default_sut")]
    pub sut: String,
    /// The shaping profile that set the defaults of the load and the rings (`race`,
    /// `plain`); each run's header records what it ran with. Empty in files from before
    /// `--shaping` (plain).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shaping: String,
}

impl VerifyPlan {
    /// B's directory name.
    pub fn b_dir(&self) -> String {
        b_dir_name(&self.sut)
    }

    /// A run `i`'s directory name.
    pub fn a_dir(&self, i: usize) -> String {
        a_dir_name(i, &self.buggy_model)
    }

    /// The control's spec.
    pub fn control_spec(&self) -> String {
        if self.control.is_empty() {
            format!("vnetbed:{}", self.buggy_model)
        } else {
            self.control.clone()
        }
    }
}

pub use crate::record::Identity;

/// How one A (control) run turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AStatus {
    /// It stalled, as it must.
    Stalled,
    /// It ran to its timeout without a stall: the setup did not show the bug.
    NoStall,
    /// It did not stall, and cannot tell why (interrupted, orchestrator error, VMM died).
    Unjudged,
    /// It was never run (verify was stopped before it, or is still running).
    NotRun,
}

/// One A run in `verify.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ARun {
    /// Its directory, relative to the verify directory (`A1-unfenced`).
    pub dir: String,
    /// How it turned out.
    pub status: AStatus,
    /// Whether it stalled.
    pub stalled: bool,
    /// When it stalled (`stalled_since` of its first stall): seconds since its record started.
    pub time_to_stall_s: Option<f64>,
    /// The first stall's signature in words.
    pub signature: Option<String>,
    /// Why it is not judged, or why it was not run.
    pub detail: Option<String>,
    /// Seconds recorded.
    pub duration_s: Option<f64>,
    /// rx ring-empty -> notification-enable cycles until it stopped (lost-kick chances).
    pub exposure_cycles: Option<u64>,
    /// rx interrupt decisions until it stopped (lost-interrupt chances).
    pub rx_interrupt_decisions: Option<u64>,
}

/// The time-to-stall distribution over the A runs that stalled.
#[derive(Debug, Clone, Serialize)]
pub struct StallTimes {
    /// How many A runs stalled.
    pub runs: usize,
    /// The shortest.
    pub min: Option<f64>,
    /// The median (nearest rank).
    pub p50: Option<f64>,
    /// The longest.
    pub max: Option<f64>,
    /// Every one, sorted.
    pub values: Vec<f64>,
}

/// Exposure to one race in B, and what it equals in 2012-style iperf hours.
#[derive(Debug, Clone, Serialize)]
pub struct RaceExposure {
    /// What one chance is.
    pub chance: &'static str,
    /// Chances in B.
    pub count: u64,
    /// Per minute of B.
    pub per_minute: Option<f64>,
    /// The chances a 2012 1-Gbit/s iperf stream gave per second (the assumption).
    pub per_second_2012: f64,
    /// B's chances over that rate, in hours.
    pub equivalent_2012_iperf_hours: f64,
}

/// B, the system under test's run, in `verify.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BRun {
    /// Its directory, relative to the verify directory (`B-fenced`).
    pub dir: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why it could not be judged, when it could not.
    pub unjudged: Option<String>,
    /// Its planned length, seconds.
    pub planned_duration_s: Option<f64>,
    /// The seconds it actually recorded (run-elapsed seconds of its last record).
    pub duration_s: f64,
    /// rx ring-empty -> notification-enable cycles (lost-kick chances).
    pub exposure_cycles: u64,
    /// The same per minute.
    pub exposure_per_minute: Option<f64>,
    /// rx interrupt decisions, sent and suppressed (lost-interrupt chances).
    pub rx_interrupt_decisions: u64,
    /// Where the two counts above come from: `device` (vnetbed's device counts them) or
    /// `guest` (the probe's driver counts them, for a VMM vnetbed cannot see inside).
    pub exposure_source: &'static str,
    /// The guest's side of the exposure, for every system under test.
    pub guest_exposure: GuestExposure,
    /// The larger of the two races' 2012 equivalences.
    pub equivalent_2012_iperf_hours: f64,
    /// Each race's exposure: `lost_kick`, `lost_interrupt`.
    pub races: Races,
    /// Both races' chances on every queue, tx included, as vnetbed's device counted them
    /// (empty for another VMM: only the guest's rx counts are known then).
    pub queues: Vec<QueueExposure>,
    /// The assumption behind the equivalence, in words.
    pub assumption: String,
    /// B's checks.
    pub checks: Vec<Check>,
}

/// Exposure per race.
#[derive(Debug, Clone, Serialize)]
pub struct Races {
    /// The lost kick: one chance per rx ring-empty -> notification-enable cycle.
    pub lost_kick: RaceExposure,
    /// The lost interrupt: one chance per rx interrupt decision.
    pub lost_interrupt: RaceExposure,
}

/// The whole of `verify.json`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    /// Always [`VERIFY_SCHEMA`].
    pub schema: &'static str,
    /// `vnetbed <version>`.
    pub generated_by: String,
    /// `pass`, `fail` or `error`.
    pub verdict: Verdict,
    /// 0, 1 or 2.
    pub exit_status: i32,
    /// The verdict in words.
    pub reason: String,
    /// What verify was asked to do.
    pub plan: VerifyPlan,
    /// What was tested.
    pub identity: Identity,
    /// The buggy model of the A runs.
    pub buggy_model: String,
    /// The system under test of B.
    pub sut: String,
    /// The A runs, one per planned run.
    pub a_runs: Vec<ARun>,
    /// The time-to-stall distribution.
    pub time_to_stall_s: StallTimes,
    /// B, or `null` when it was not run.
    pub b: Option<BRun>,
}

/// The run's exposure to both races: (lost-kick chances, lost-interrupt chances, source).
/// From the device's counters where vnetbed's device ran; otherwise from the guest's.
fn exposure_counts(a: &Analysis) -> (u64, u64, &'static str) {
    if a.seconds.iter().any(|s| s.exposure.is_some()) {
        (a.exposure.cycles, a.rx_interrupt_decisions, "device")
    } else {
        (
            a.guest_exposure.ring_empty_refills,
            a.guest_exposure.rx_cb_enables,
            "guest",
        )
    }
}

fn per_minute(count: u64, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| count as f64 * 60.0 / seconds)
}

fn a_run(dir: &Path, name: String) -> ARun {
    let mut run = ARun {
        dir: name,
        status: AStatus::NotRun,
        stalled: false,
        time_to_stall_s: None,
        signature: None,
        detail: None,
        duration_s: None,
        exposure_cycles: None,
        rx_interrupt_decisions: None,
    };
    let path = dir.join(&run.dir);
    if !path.exists() {
        run.detail = Some("not run: verify was stopped before it, or is still running".into());
        return run;
    }
    let analysis = match report::analyse_file(&path.join(TIMELINE_FILE)) {
        Ok((_, a)) => a,
        Err(e) => {
            run.status = AStatus::Unjudged;
            run.detail = Some(format!("no readable record: {e}"));
            return run;
        }
    };
    run.duration_s = Some(analysis.duration_s);
    let (cycles, decisions, _) = exposure_counts(&analysis);
    run.exposure_cycles = Some(cycles);
    run.rx_interrupt_decisions = Some(decisions);
    match analysis.first_stall() {
        Some(s) => {
            run.status = AStatus::Stalled;
            run.stalled = true;
            run.time_to_stall_s = Some(s.stalled_since);
            run.signature = Some(s.signature());
        }
        None => match analysis.not_judgeable() {
            Some(why) => {
                run.status = AStatus::Unjudged;
                run.detail = Some(why);
            }
            None => {
                run.status = AStatus::NoStall;
                run.detail = Some(format!("no stall in {:.1} s", analysis.duration_s));
            }
        },
    }
    run
}

fn b_run(dir: &Path, b_dir: &str) -> Option<BRun> {
    let path = dir.join(b_dir);
    if !path.exists() {
        return None;
    }
    let (timeline, analysis, checks, verdict) = match report::judge_file(&path.join(TIMELINE_FILE))
    {
        Ok(judged) => judged,
        Err(e) => {
            return Some(BRun {
                unjudged: Some(format!("no readable record: {e}")),
                ..empty_b(b_dir)
            })
        }
    };
    let (cycles, decisions, exposure_source) = exposure_counts(&analysis);
    let seconds = analysis.duration_s;
    let race = |chance, count: u64, rate: f64| RaceExposure {
        chance,
        count,
        per_minute: per_minute(count, seconds),
        per_second_2012: rate,
        equivalent_2012_iperf_hours: count as f64 / (rate * 3600.0),
    };
    let races = Races {
        lost_kick: race(
            "an rx ring-empty -> notification-enable cycle",
            cycles,
            CYCLES_PER_SECOND_2012,
        ),
        lost_interrupt: race(
            "an rx interrupt decision (sent or suppressed)",
            decisions,
            INTERRUPT_DECISIONS_PER_SECOND_2012,
        ),
    };
    let unjudged = (verdict == Verdict::Error).then(|| {
        analysis.not_judgeable().unwrap_or_else(|| {
            checks
                .iter()
                .find(|c| c.status == CheckStatus::Error)
                .map_or_else(|| "a check errored".into(), |c| c.message.clone())
        })
    });
    Some(BRun {
        verdict,
        unjudged,
        planned_duration_s: timeline.header.config.duration_s,
        duration_s: seconds,
        exposure_cycles: cycles,
        exposure_per_minute: per_minute(cycles, seconds),
        rx_interrupt_decisions: decisions,
        exposure_source,
        guest_exposure: analysis.guest_exposure,
        equivalent_2012_iperf_hours: races
            .lost_kick
            .equivalent_2012_iperf_hours
            .max(races.lost_interrupt.equivalent_2012_iperf_hours),
        races,
        queues: analysis.exposure.queues.clone(),
        checks,
        ..empty_b(b_dir)
    })
}

fn empty_b(b_dir: &str) -> BRun {
    let race = |chance, rate| RaceExposure {
        chance,
        count: 0,
        per_minute: None,
        per_second_2012: rate,
        equivalent_2012_iperf_hours: 0.0,
    };
    BRun {
        dir: b_dir.into(),
        verdict: Verdict::Error,
        unjudged: None,
        planned_duration_s: None,
        duration_s: 0.0,
        exposure_cycles: 0,
        exposure_per_minute: None,
        rx_interrupt_decisions: 0,
        exposure_source: "device",
        guest_exposure: GuestExposure::default(),
        equivalent_2012_iperf_hours: 0.0,
        races: Races {
            lost_kick: race("an rx ring-empty -> notification-enable cycle", CYCLES_PER_SECOND_2012),
            lost_interrupt: race(
                "an rx interrupt decision (sent or suppressed)",
                INTERRUPT_DECISIONS_PER_SECOND_2012,
            ),
        },
        assumption: format!(
            "a 2012 1-Gbit/s iperf stream into the guest gives {CYCLES_PER_SECOND_2012} ring-empty -> \
             notification-enable cycles and {INTERRUPT_DECISIONS_PER_SECOND_2012} rx interrupt \
             decisions per second; the equivalence is the larger of the two ratios"
        ),
        queues: Vec::new(),
        checks: Vec::new(),
    }
}

/// The verdict of the runs in `dir` under `plan`. Every planned run is judged from its
/// record; a run that is missing or cannot be judged makes the verdict `error`.
pub fn summarize(dir: &Path, plan: &VerifyPlan, identity: &Identity) -> VerifySummary {
    let a_runs: Vec<ARun> = (1..=plan.runs).map(|i| a_run(dir, plan.a_dir(i))).collect();
    let mut values: Vec<f64> = a_runs.iter().filter_map(|r| r.time_to_stall_s).collect();
    values.sort_by(f64::total_cmp);
    let time_to_stall_s = StallTimes {
        runs: values.len(),
        min: values.first().copied(),
        p50: percentile(&values, 50.0),
        max: values.last().copied(),
        values,
    };
    let b_dir = plan.b_dir();
    let b = b_run(dir, &b_dir);
    let unjudged = a_runs
        .iter()
        .find(|r| matches!(r.status, AStatus::Unjudged | AStatus::NotRun))
        .map(|r| format!("{}: {}", r.dir, r.detail.as_deref().unwrap_or("")))
        .or_else(|| match &b {
            None => Some(format!(
                "{b_dir}: not run: verify was stopped before it, or is still running"
            )),
            Some(b) => b.unjudged.as_ref().map(|why| format!("{b_dir}: {why}")),
        });
    let no_stall = a_runs.iter().find(|r| r.status == AStatus::NoStall);
    let (verdict, reason) = match (&unjudged, no_stall, &b) {
        // The positive control failed: not a verdict on the system under test, but on the
        // run itself, which could not have caught the bug (whatever else is missing).
        (_, Some(r), _) => (
            Verdict::Error,
            format!(
                "the control {} ({}) did not stall ({}): this run could not have caught the bug, \
                 so it says nothing about the system under test",
                r.dir,
                plan.control_spec(),
                r.detail.as_deref().unwrap_or("")
            ),
        ),
        (Some(why), None, _) => (
            Verdict::Error,
            format!("a run could not be judged, so there is no verdict on the fix: {why}"),
        ),
        (None, None, Some(b)) if b.verdict != Verdict::Pass => {
            let failed = b
                .checks
                .iter()
                .find(|c| c.status == CheckStatus::Fail)
                .map_or_else(String::new, |c| format!(": {}: {}", c.name, c.message));
            (
                Verdict::Fail,
                format!(
                    "the system under test ({}) failed its checks{failed}: the fix does not hold",
                    plan.sut
                ),
            )
        }
        _ => (
            Verdict::Pass,
            format!(
                "every buggy run stalled and the system under test ({}) did not: the fix holds",
                plan.sut
            ),
        ),
    };
    VerifySummary {
        schema: VERIFY_SCHEMA,
        generated_by: format!("vnetbed {}", env!("CARGO_PKG_VERSION")),
        verdict,
        exit_status: verdict.exit_status(),
        reason,
        plan: plan.clone(),
        identity: identity.clone(),
        buggy_model: plan.buggy_model.clone(),
        sut: plan.sut.clone(),
        a_runs,
        time_to_stall_s,
        b,
    }
}
