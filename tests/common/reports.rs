//! Checking a run directory's reports with independent consumers (python3 with jsonschema
//! and junitparser, xml.etree, html.parser) through tests/check_reports.py.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::{require, Capability};

/// The checks, in report order (one JUnit testcase each).
pub const CHECKS: [&str; 7] = [
    "no_stall",
    "every_renewal_answered_and_received",
    "lease_never_lost",
    "throughput_above_floor",
    "vmm_survived",
    "run_completed",
    "resources_flat",
];
pub const PLOTS: [&str; 4] = ["throughput", "ping", "dhcp", "exposure"];

/// A python3 that has jsonschema and junitparser (Debian: python3-jsonschema,
/// python3-junitparser; scripts/install-deps.sh installs them). `None`: skip, or fail in CI.
pub fn python_with_modules(test: &str) -> Option<PathBuf> {
    if !require(test, &[Capability::Program("python3")]) {
        return None;
    }
    let candidates = [
        super::find_program("python3"),
        Some(PathBuf::from("/usr/bin/python3")),
    ];
    for python in candidates.into_iter().flatten() {
        let ok = Command::new(&python)
            .args(["-c", "import jsonschema, junitparser"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    let reason =
        "no python3 with the modules jsonschema and junitparser (run scripts/install-deps.sh)";
    assert!(
        !super::in_ci(),
        "{test}: required capability missing under CI=true: {reason}"
    );
    eprintln!("SKIP {test}: {reason}");
    None
}

/// Run `vnetbed report DIR`; returns (exit status, stdout + stderr).
pub fn vnetbed_report(dir: &Path) -> (i32, String) {
    let out = super::vnetbed()
        .arg("report")
        .arg(dir)
        .output()
        .expect("run vnetbed report");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// What a run directory's reports must say.
pub struct Expect<'a> {
    /// pass, fail or error.
    pub verdict: &'a str,
    /// Checks that must fail.
    pub failures: &'a [&'a str],
    /// Checks that must error.
    pub errors: &'a [&'a str],
    /// Checks that must be skipped.
    pub skipped: &'a [&'a str],
    /// null, or {kind, queue} of the first stall.
    pub first_stall: Value,
}

/// Check the three reports with the python consumers.
pub fn check_with_python(python: &Path, dir: &Path, e: &Expect) {
    check_with_python_cases(python, dir, e, &CHECKS, &PLOTS);
}

/// [`check_with_python`] for a run whose testcases are `cases` (a control run's, say), and
/// whose plots that must hold data are `plots` (a control run that stalled within a second
/// or two has too few samples for some).
pub fn check_with_python_cases(
    python: &Path,
    dir: &Path,
    e: &Expect,
    cases: &[&str],
    plots: &[&str],
) {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_reports.py");
    let expect = json!({
        "verdict": e.verdict,
        "testcases": cases,
        "failures": e.failures,
        "errors": e.errors,
        "skipped": e.skipped,
        "first_stall": e.first_stall,
        "plots": PLOTS,
        "plots_with_data": plots,
    });
    let out = Command::new(python)
        .arg(&script)
        .arg(dir)
        .arg(docs.join("report.schema.json"))
        .arg(docs.join("timeline.schema.json"))
        .arg(expect.to_string())
        .output()
        .expect("run check_reports.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "check_reports.py rejected {}:\n{text}",
        dir.display()
    );
}
