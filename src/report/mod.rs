//! The reports of a run, built from its timeline: `report.json`, `junit.xml`, `report.html`.
//!
//! The orchestrator calls [`write_reports`] with the timeline it holds (at the end, and on
//! SIGINT/SIGTERM); `vnetbed report DIR` calls [`rebuild`], which reads `DIR/timeline.jsonl`
//! first. Both return the [`Verdict`], whose [`Verdict::exit_status`] is the process's exit
//! status. docs/reports.md documents the files.

pub mod analysis;
pub mod checks;
mod html;
pub mod incident;
mod json;
mod junit;
mod progress;
pub mod resources;
mod stats;
mod svg;
pub(crate) mod xml;

use std::path::{Path, PathBuf};

pub use analysis::{Analysis, AnalysisBuilder};
pub use checks::{Check, CheckStatus, Verdict};
pub use json::REPORT_SCHEMA;
pub use progress::Progress;
pub use stats::{percentile, Percentiles};

use crate::record::{RecordError, Timeline, TimelineReader, TimelineSummary, TIMELINE_FILE};

/// File name of the JSON report.
pub const REPORT_JSON: &str = "report.json";
/// File name of the JUnit report.
pub const JUNIT_XML: &str = "junit.xml";
/// File name of the HTML report.
pub const REPORT_HTML: &str = "report.html";

/// Errors of building reports.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The timeline could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The JSON report could not be serialized.
    #[error("cannot serialize report.json: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// What was judged and written.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Every check.
    pub checks: Vec<Check>,
    /// The statistics behind them.
    pub analysis: Analysis,
    /// The files written.
    pub files: Vec<PathBuf>,
}

/// Judge a timeline without writing anything (for a live progress line, or tests).
pub fn judge(timeline: &Timeline) -> (Analysis, Vec<Check>, Verdict) {
    let analysis = Analysis::of(timeline);
    let checks = checks::evaluate(&timeline.header, &analysis, &timeline.warnings);
    let verdict = Verdict::of(&checks);
    (analysis, checks, verdict)
}

/// Judge `timeline` and write the three reports into `dir`. Each file is written under a
/// temporary name and renamed into place, so a reader never sees half a report.
pub fn write_reports(dir: &Path, timeline: &Timeline) -> Result<RunReport, ReportError> {
    write_analysed(dir, &timeline.summary(), Analysis::of(timeline))
}

/// Write the three reports of a timeline already analysed (see [`rebuild`]).
fn write_analysed(
    dir: &Path,
    timeline: &TimelineSummary,
    analysis: Analysis,
) -> Result<RunReport, ReportError> {
    let checks = checks::evaluate(&timeline.header, &analysis, &timeline.warnings);
    let verdict = Verdict::of(&checks);
    let report = json::build(timeline, &analysis, &checks, verdict);
    let mut report_json = serde_json::to_string_pretty(&report).map_err(ReportError::Serialize)?;
    report_json.push('\n');
    let junit = junit::render(&timeline.header, &checks, analysis.duration_s);
    let html = html::render(timeline, &analysis, &checks, verdict);
    let mut files = Vec::new();
    for (name, text) in [
        (REPORT_JSON, report_json),
        (JUNIT_XML, junit),
        (REPORT_HTML, html),
    ] {
        let path = dir.join(name);
        write_atomically(&path, text.as_bytes())?;
        files.push(path);
    }
    Ok(RunReport {
        verdict,
        checks,
        analysis,
        files,
    })
}

/// Read `path` (a timeline) as a stream and analyse it: memory stays bounded by what the
/// reports keep per second, however long the record.
pub fn analyse_file(path: &Path) -> Result<(TimelineSummary, Analysis), ReportError> {
    let mut builder = AnalysisBuilder::default();
    let summary = TimelineReader::stream(path, |record| builder.push(&record))?;
    Ok((summary, builder.finish()))
}

/// Judge the timeline at `path` without writing anything, reading it as a stream.
pub fn judge_file(
    path: &Path,
) -> Result<(TimelineSummary, Analysis, Vec<Check>, Verdict), ReportError> {
    let (summary, analysis) = analyse_file(path)?;
    let checks = checks::evaluate(&summary.header, &analysis, &summary.warnings);
    let verdict = Verdict::of(&checks);
    Ok((summary, analysis, checks, verdict))
}

/// Read `dir/timeline.jsonl` (as a stream) and write the reports next to it.
pub fn rebuild(dir: &Path) -> Result<RunReport, ReportError> {
    let (summary, analysis) = analyse_file(&dir.join(TIMELINE_FILE))?;
    write_analysed(dir, &summary, analysis)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = path.with_extension("tmp");
    let err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
