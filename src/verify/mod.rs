//! `vnetbed verify`'s outputs: `verify.json`, a top-level `junit.xml` and `report.html`,
//! computed from the run directories (`A1-unfenced`, ..., `B-fenced`, or `B-MODEL` for
//! another system under test) and the plan alone. The
//! live verify writes them at its start and after every run, so that an interrupted or failed
//! verify still leaves them; `vnetbed report DIR` rebuilds them the same way.

mod html;
pub mod identity;
mod junit;
pub mod summary;

use std::path::{Path, PathBuf};

pub use junit::{SUITE_A, SUITE_B};
pub use summary::{
    a_dir_name, b_dir_name, summarize, AStatus, Identity, VerifyPlan, VerifySummary, B_DIR,
    CYCLES_PER_SECOND_2012, INTERRUPT_DECISIONS_PER_SECOND_2012, VERIFY_SCHEMA,
};

use crate::record::TIMELINE_FILE;
use crate::report::{self, ReportError};

/// File name of the summary.
pub const VERIFY_JSON: &str = "verify.json";

/// Errors of writing or rebuilding verify's outputs.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The summary could not be serialized.
    #[error("cannot serialize verify.json: {0}")]
    Serialize(#[source] serde_json::Error),
    /// `dir` is not a verify directory.
    #[error(
        "{0} is not a verify run directory: it has neither verify.json nor A1-*/B-fenced run directories"
    )]
    NotVerifyDir(PathBuf),
    /// A run's reports could not be rebuilt.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Write `verify.json`, `junit.xml` and `report.html` into `dir` from its run directories.
pub fn write_outputs(
    dir: &Path,
    plan: &VerifyPlan,
    identity: &Identity,
) -> Result<VerifySummary, VerifyError> {
    std::fs::create_dir_all(dir).map_err(|source| VerifyError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let summary = summarize(dir, plan, identity);
    let mut json = serde_json::to_string_pretty(&summary).map_err(VerifyError::Serialize)?;
    json.push('\n');
    for (name, text) in [
        (VERIFY_JSON, json),
        (report::JUNIT_XML, junit::render(&summary)),
        (report::REPORT_HTML, html::render(&summary)),
    ] {
        write_atomically(&dir.join(name), text.as_bytes())?;
    }
    Ok(summary)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), VerifyError> {
    let tmp = path.with_extension("tmp");
    let err = |source| VerifyError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Whether `dir` looks like a verify run directory (and not a single run's).
pub fn is_verify_dir(dir: &Path) -> bool {
    !dir.join(TIMELINE_FILE).exists()
        && (dir.join(VERIFY_JSON).exists() || !run_dirs(dir).is_empty() || b_dir_in(dir).is_some())
}

/// The `A<i>-<model>` directories in `dir`, sorted by `i`: (i, model).
fn run_dirs(dir: &Path) -> Vec<(usize, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, String)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (num, model) = name.strip_prefix('A')?.split_once('-')?;
            Some((num.parse().ok()?, model.to_string()))
        })
        .collect();
    found.sort();
    found
}

/// The plan and identity a previous `verify.json` in `dir` recorded, if any.
fn recorded(dir: &Path) -> Option<(VerifyPlan, Identity)> {
    let text = std::fs::read_to_string(dir.join(VERIFY_JSON)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let plan = serde_json::from_value(v.get("plan")?.clone()).ok()?;
    let identity = v
        .get("identity")
        .and_then(|i| serde_json::from_value(i.clone()).ok())
        .unwrap_or_default();
    Some((plan, identity))
}

/// The plan as the run directories show it (for a verify.json that is missing or predates
/// the plan): as many A runs as there are, their model and timeout from their headers.
fn inferred_plan(dir: &Path) -> Option<VerifyPlan> {
    let runs = run_dirs(dir);
    let (_, model) = runs.first()?.clone();
    let header = |d: &Path| {
        crate::record::TimelineReader::read(&d.join(TIMELINE_FILE))
            .ok()
            .map(|t| t.header)
    };
    let timeout_s = header(&dir.join(a_dir_name(1, &model)))
        .and_then(|h| h.config.duration_s)
        .unwrap_or(0.0);
    // Without verify.json a QEMU spec's binary and options are unknown; its header has it.
    let spec_of = |d: &str| header(&dir.join(d)).and_then(|h| h.config.sut);
    let sut = b_dir_in(dir)
        .and_then(|b| spec_of(&b).or_else(|| b.strip_prefix("B-").map(|m| format!("vnetbed:{m}"))))
        .unwrap_or_else(|| "vnetbed:fenced".into());
    let control = spec_of(&a_dir_name(1, &model)).unwrap_or_default();
    Some(VerifyPlan {
        runs: runs.iter().map(|(i, _)| *i).max().unwrap_or(0),
        timeout_s,
        min_b_duration_s: 0.0,
        buggy_model: model,
        control,
        sut,
        shaping: String::new(),
    })
}

/// The `B-*` run directory in `dir`, if there is one.
fn b_dir_in(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("B-"))
}

/// `vnetbed report DIR` for a verify directory: rebuild every run's reports from its
/// timeline, then verify's own outputs.
pub fn rebuild(dir: &Path) -> Result<(VerifySummary, Vec<PathBuf>), VerifyError> {
    let (plan, identity) = match recorded(dir) {
        Some(r) => r,
        None => (
            inferred_plan(dir).ok_or_else(|| VerifyError::NotVerifyDir(dir.to_path_buf()))?,
            Identity {
                vnetbed_version: env!("CARGO_PKG_VERSION").into(),
                ..Identity::default()
            },
        ),
    };
    let mut files = Vec::new();
    let names = (1..=plan.runs).map(|i| plan.a_dir(i)).chain([plan.b_dir()]);
    for name in names {
        let run = dir.join(&name);
        if run.join(TIMELINE_FILE).exists() {
            files.extend(report::rebuild(&run)?.files);
        }
    }
    let summary = write_outputs(dir, &plan, &identity)?;
    files.extend([VERIFY_JSON, report::JUNIT_XML, report::REPORT_HTML].map(|f| dir.join(f)));
    Ok((summary, files))
}
