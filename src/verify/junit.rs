//! verify's top-level `junit.xml`: one suite per phase, so that a CI job collecting
//! `**/junit.xml` sees what verify concluded. The control runs (A) are testcases that pass
//! when the run stalled, as it must; the system under test's checks (B) are testcases too.

use std::fmt::Write;

use super::summary::{b_dir_name, AStatus, VerifySummary};
use crate::report::xml::escape;
use crate::report::CheckStatus;

/// The suite of the control runs.
pub const SUITE_A: &str = "vnetbed.verify.phase-A";
/// The suite of the system under test.
pub const SUITE_B: &str = "vnetbed.verify.phase-B";

struct Case {
    name: String,
    /// `None` passes; else (element, message, body).
    outcome: Option<(&'static str, String, String)>,
    time: f64,
}

/// Render the summary as JUnit XML.
pub fn render(v: &VerifySummary) -> String {
    let a: Vec<Case> = v
        .a_runs
        .iter()
        .map(|r| {
            let detail = r.detail.clone().unwrap_or_default();
            let outcome = match r.status {
                AStatus::Stalled => None,
                AStatus::NoStall => Some(("failure", detail.clone(), detail)),
                AStatus::Unjudged | AStatus::NotRun => Some(("error", detail.clone(), detail)),
            };
            Case {
                name: format!("{} stalls as expected", r.dir),
                outcome,
                time: r.duration_s.unwrap_or(0.0),
            }
        })
        .collect();
    let b: Vec<Case> = match &v.b {
        None => vec![Case {
            name: b_dir_name(&v.sut),
            outcome: Some((
                "error",
                "not run: verify was stopped before it, or is still running".into(),
                String::new(),
            )),
            time: 0.0,
        }],
        Some(b) if b.checks.is_empty() => vec![Case {
            name: b.dir.clone(),
            outcome: Some((
                "error",
                b.unjudged.clone().unwrap_or_default(),
                String::new(),
            )),
            time: 0.0,
        }],
        Some(b) => b
            .checks
            .iter()
            .map(|c| Case {
                name: c.name.to_string(),
                outcome: match c.status {
                    CheckStatus::Pass => None,
                    CheckStatus::Fail => Some(("failure", c.message.clone(), c.details.clone())),
                    CheckStatus::Error => Some(("error", c.message.clone(), c.details.clone())),
                    CheckStatus::Skipped => Some(("skipped", c.message.clone(), String::new())),
                },
                time: 0.0,
            })
            .collect(),
    };
    let count = |cases: &[Case], el: &str| {
        cases
            .iter()
            .filter(|c| c.outcome.as_ref().is_some_and(|o| o.0 == el))
            .count()
    };
    let all: Vec<&Case> = a.iter().chain(b.iter()).collect();
    let total_time: f64 =
        a.iter().map(|c| c.time).sum::<f64>() + v.b.as_ref().map_or(0.0, |b| b.duration_s);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let tally = |el: &str| {
        all.iter()
            .filter(|c| c.outcome.as_ref().is_some_and(|o| o.0 == el))
            .count()
    };
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        "<testsuites name=\"vnetbed.verify\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{total_time:.3}\">",
        all.len(),
        tally("failure"),
        tally("error"),
        tally("skipped")
    );
    for (suite, cases, time) in [
        (SUITE_A, &a, a.iter().map(|c| c.time).sum::<f64>()),
        (SUITE_B, &b, v.b.as_ref().map_or(0.0, |b| b.duration_s)),
    ] {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">",
            cases.len(),
            count(cases, "failure"),
            count(cases, "error"),
            count(cases, "skipped")
        );
        out.push_str("    <properties>\n");
        for (name, value) in [
            ("verdict", v.verdict.as_str().to_string()),
            ("reason", v.reason.clone()),
            ("buggy_model", v.buggy_model.clone()),
            ("control", v.plan.control_spec()),
            ("sut", v.sut.clone()),
            ("sut_identity", v.identity.sut.clone().unwrap_or_default()),
            ("vnetbed_version", v.identity.vnetbed_version.clone()),
            (
                "vnetbed_revision",
                v.identity.revision.clone().unwrap_or_default(),
            ),
            (
                "sut_sha256",
                v.identity
                    .sut_vmm
                    .as_ref()
                    .and_then(|m| m.sha256.clone())
                    .unwrap_or_default(),
            ),
        ] {
            let _ = writeln!(
                out,
                "      <property name=\"{name}\" value=\"{}\"/>",
                escape(&value)
            );
        }
        out.push_str("    </properties>\n");
        for c in cases.iter() {
            let _ = write!(
                out,
                "    <testcase classname=\"{suite}\" name=\"{}\" time=\"{:.3}\"",
                escape(&c.name),
                c.time
            );
            match &c.outcome {
                None => out.push_str("/>\n"),
                Some((element, message, body)) => {
                    let body = if body.is_empty() { message } else { body };
                    let _ = writeln!(
                        out,
                        ">\n      <{element} message=\"{}\">{}</{element}>\n    </testcase>",
                        escape(message),
                        escape(body)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
