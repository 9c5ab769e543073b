//! `junit.xml`: one testsuite, one testcase per check.

use std::fmt::Write;

use super::checks::{Check, CheckStatus};
use super::xml::escape;
use crate::record::RunHeader;

/// Render the checks of a run as JUnit XML (the Jenkins/Ant dialect every consumer reads).
pub fn render(header: &RunHeader, checks: &[Check], duration_s: f64) -> String {
    let count = |s: CheckStatus| checks.iter().filter(|c| c.status == s).count();
    let (failures, errors, skipped) = (
        count(CheckStatus::Fail),
        count(CheckStatus::Error),
        count(CheckStatus::Skipped),
    );
    let suite = suite_name(header);
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        "<testsuites name=\"vnetbed\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{duration_s:.3}\">",
        checks.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{duration_s:.3}\" timestamp=\"{}\">",
        escape(&suite),
        checks.len(),
        escape(header.started_at.trim_end_matches('Z'))
    );
    out.push_str("    <properties>\n");
    for (name, value) in properties(header) {
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            escape(name),
            escape(&value)
        );
    }
    out.push_str("    </properties>\n");
    for c in checks {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
            escape(&suite),
            escape(c.name)
        );
        let element = match c.status {
            CheckStatus::Pass => None,
            CheckStatus::Fail => Some("failure"),
            CheckStatus::Error => Some("error"),
            CheckStatus::Skipped => Some("skipped"),
        };
        match element {
            None => out.push_str("/>\n"),
            Some(element) => {
                out.push_str(">\n");
                let _ = write!(
                    out,
                    "      <{element} message=\"{}\" type=\"{}\"",
                    escape(&c.message),
                    escape(c.name)
                );
                let body = if c.details.is_empty() {
                    &c.message
                } else {
                    &c.details
                };
                let _ = writeln!(out, ">{}</{element}>", escape(body));
                out.push_str("    </testcase>\n");
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// `vnetbed.<subcommand>` from the recorded command line (`vnetbed.soak`), with verify's
/// name for the run when it is one of verify's (`vnetbed.verify.A1-unfenced`), so that every
/// suite of a verify run directory has a name of its own.
fn suite_name(header: &RunHeader) -> String {
    let sub = header
        .command
        .get(1)
        .filter(|a| !a.starts_with('-'))
        .map_or("run", String::as_str);
    match &header.config.phase {
        Some(phase) => format!("vnetbed.{sub}.{phase}"),
        None => format!("vnetbed.{sub}"),
    }
}

fn properties(header: &RunHeader) -> Vec<(&'static str, String)> {
    let c = &header.config;
    let mut p = vec![
        ("command", header.command.join(" ")),
        ("vnetbed_version", header.vnetbed_version.clone()),
        ("guest", c.guest.clone()),
        ("notify_model", c.notify_model.clone()),
        ("load", c.load.clone()),
        ("host_kernel", header.host.kernel.clone()),
        ("host_cpu", header.host.cpu_model.clone()),
        ("host_nproc", header.host.nproc.to_string()),
    ];
    p.extend(c.queue_backend.clone().map(|v| ("queue_backend", v)));
    p.extend(c.race_window.clone().map(|v| ("race_window", v)));
    p.extend(c.phase.clone().map(|v| ("phase", v)));
    if !c.shaping.is_default() {
        p.push(("shaping", c.shaping.describe()));
    }
    if c.expect_stall {
        p.push(("expect_stall", "true".into()));
    }
    p.extend(c.rate.clone().map(|v| ("rate", v)));
    p.extend(c.duration_s.map(|v| ("duration_s", v.to_string())));
    p.extend(
        c.throughput_floor_bps
            .map(|v| ("throughput_floor_bps", v.to_string())),
    );
    p
}
