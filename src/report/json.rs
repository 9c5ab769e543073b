//! `report.json`, schema `vnetbed.report/1` (docs/report.schema.json).

use serde::Serialize;

use super::analysis::{Analysis, Exposure, PingStats, RenewalStats, ThroughputStats};
use super::checks::{Check, Verdict};
use super::incident::{self, Step};
use crate::record::{RunHeader, RunOutcome, Stall, TimelineSummary, VmmExit};

/// The schema name and version of `report.json`.
pub const REPORT_SCHEMA: &str = "vnetbed.report/1";

/// The whole of `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ReportJson<'a> {
    /// Always [`REPORT_SCHEMA`].
    pub schema: &'static str,
    /// The vnetbed version that wrote this report.
    pub generated_by: String,
    /// `pass`, `fail` or `error`.
    pub verdict: Verdict,
    /// The exit status matching the verdict (0, 1, 2).
    pub exit_status: i32,
    /// The checks, in order.
    pub checks: &'a [Check],
    /// The run header from the timeline.
    pub run: &'a RunHeader,
    /// About the record itself.
    pub record: RecordSummary<'a>,
    /// Run-elapsed seconds of the last record.
    pub duration_s: f64,
    /// The first stall and its signature.
    pub first_stall: Option<FirstStall<'a>>,
    /// How many distinct stalls.
    pub stalls: usize,
    /// Renewal statistics.
    pub renewals: &'a RenewalStats,
    /// When the guest lost its lease.
    pub lease_lost_at: Option<f64>,
    /// Throughput percentiles (bits/s) over the loaded seconds.
    pub throughput: &'a ThroughputStats,
    /// Ping statistics.
    pub ping: &'a PingStats,
    /// rx ring-empty → notification-enable cycles.
    pub exposure: &'a Exposure,
    /// Each process's resources after the warm-up.
    pub resources: &'a [super::resources::ProcessTrend],
    /// The VMM exit that matters (the first unexpected one, else the last one).
    pub vmm_exit: Option<&'a VmmExit>,
    /// The vhost-user backend's disconnections and reconnections (empty for other VMMs).
    pub backend: &'a [crate::record::BackendRecord],
    /// The 2012 incident's steps as this run shows them.
    pub incident: Vec<Step>,
    /// Whether every step of the incident was observed.
    pub incident_reproduced: bool,
}

/// Facts about the timeline the report was built from.
#[derive(Debug, Clone, Serialize)]
pub struct RecordSummary<'a> {
    /// The file name inside the run directory.
    pub file: &'static str,
    /// Records after the header.
    pub records: usize,
    /// Per-second samples.
    pub samples: usize,
    /// How the orchestrator said the run ended; `null` when it wrote no end record.
    pub outcome: Option<RunOutcome>,
    /// Lines the reader skipped, and why.
    pub warnings: &'a [String],
    /// The run's size-bounded logs, from the end record (empty without one).
    pub logs: &'a [crate::record::LogTotal],
}

/// The first stall, with a one-line signature.
#[derive(Debug, Clone, Serialize)]
pub struct FirstStall<'a> {
    /// The signature in words.
    pub signature: String,
    /// The stall as recorded.
    #[serde(flatten)]
    pub stall: &'a Stall,
}

/// Build the report.
pub fn build<'a>(
    timeline: &'a TimelineSummary,
    analysis: &'a Analysis,
    checks: &'a [Check],
    verdict: Verdict,
) -> ReportJson<'a> {
    let steps = incident::steps(analysis);
    ReportJson {
        schema: REPORT_SCHEMA,
        generated_by: format!("vnetbed {}", env!("CARGO_PKG_VERSION")),
        verdict,
        exit_status: verdict.exit_status(),
        checks,
        run: &timeline.header,
        record: RecordSummary {
            file: crate::record::TIMELINE_FILE,
            records: timeline.records,
            samples: analysis.seconds.len(),
            outcome: analysis.end.as_ref().map(|e| e.outcome),
            warnings: &timeline.warnings,
            logs: analysis.end.as_ref().map_or(&[], |e| e.logs.as_slice()),
        },
        duration_s: analysis.duration_s,
        first_stall: analysis.first_stall().map(|s| FirstStall {
            signature: s.signature(),
            stall: s,
        }),
        stalls: analysis.stalls.len(),
        renewals: &analysis.renewals,
        lease_lost_at: analysis.lease_lost_at,
        throughput: &analysis.throughput,
        ping: &analysis.ping,
        exposure: &analysis.exposure,
        resources: &analysis.resources,
        vmm_exit: analysis.vmm_exit(),
        backend: &analysis.backend,
        incident_reproduced: incident::reproduced(&steps),
        incident: steps,
    }
}
