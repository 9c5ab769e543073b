//! The checks a run must pass (one JUnit testcase each) and the verdict they add up to.

use serde::Serialize;

use super::analysis::{Analysis, RenewalOutcome};
use crate::record::{RunHeader, RunOutcome};

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// The check holds.
    Pass,
    /// The check does not hold: the system under test misbehaved.
    Fail,
    /// The check could not be decided: the run itself went wrong.
    Error,
    /// The check does not apply to this run (for example no throughput floor configured).
    Skipped,
}

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check's name (the JUnit testcase name).
    pub name: &'static str,
    /// Its result.
    pub status: CheckStatus,
    /// One line saying why.
    pub message: String,
    /// More lines of evidence (may be empty).
    pub details: String,
}

/// The verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed (or was skipped) and the run completed.
    Pass,
    /// At least one check failed.
    Fail,
    /// No check failed, but the run did not complete or could not be judged.
    Error,
}

impl Verdict {
    /// The process exit status: 0 pass, 1 fail, 2 error.
    pub fn exit_status(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
        }
    }

    /// The verdict of a set of checks: fail beats error beats pass.
    pub fn of(checks: &[Check]) -> Self {
        if checks.iter().any(|c| c.status == CheckStatus::Fail) {
            Verdict::Fail
        } else if checks.iter().any(|c| c.status == CheckStatus::Error) {
            Verdict::Error
        } else {
            Verdict::Pass
        }
    }

    /// `pass`, `fail` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

/// Names of the checks, in report order.
pub mod names {
    /// No stall was detected.
    pub const NO_STALL: &str = "no_stall";
    /// Every renewal was answered by the server and received by the guest.
    pub const RENEWALS: &str = "every_renewal_answered_and_received";
    /// The guest never lost its lease.
    pub const LEASE: &str = "lease_never_lost";
    /// The median throughput under load reached the floor.
    pub const THROUGHPUT: &str = "throughput_above_floor";
    /// The VMM did not exit unexpectedly.
    pub const VMM: &str = "vmm_survived";
    /// The run completed and was recorded to its end.
    pub const COMPLETED: &str = "run_completed";
    /// The processes' memory and file descriptors stayed flat after the warm-up.
    pub const RESOURCES: &str = "resources_flat";
    /// A control run (expected to stall) stalled.
    pub const STALLED_AS_EXPECTED: &str = "stalled_as_expected";
}

/// Evaluate every check of a run. `warnings` are the reader's warnings about the record.
///
/// A control run (`config.expect_stall`, verify's buggy-model runs) is judged on what it is
/// for: `stalled_as_expected` replaces `no_stall`, and the checks of the guest's health
/// (renewals, lease, throughput), which a stall is expected to spoil, are skipped.
pub fn evaluate(header: &RunHeader, analysis: &Analysis, warnings: &[String]) -> Vec<Check> {
    if header.config.expect_stall {
        let not_judged = |name| {
            check(
                name,
                CheckStatus::Skipped,
                "control run (expected to stall): not judged".into(),
                String::new(),
            )
        };
        return vec![
            stalled_as_expected(analysis),
            not_judged(names::RENEWALS),
            not_judged(names::LEASE),
            not_judged(names::THROUGHPUT),
            vmm(analysis),
            completed(header, analysis, warnings),
            resources_flat(analysis),
        ];
    }
    vec![
        no_stall(analysis),
        renewals(analysis),
        lease(analysis),
        throughput(header, analysis),
        vmm(analysis),
        completed(header, analysis, warnings),
        resources_flat(analysis),
    ]
}

fn check(name: &'static str, status: CheckStatus, message: String, details: String) -> Check {
    Check {
        name,
        status,
        message,
        details,
    }
}

fn no_stall(a: &Analysis) -> Check {
    let Some(first) = a.first_stall() else {
        return check(
            names::NO_STALL,
            CheckStatus::Pass,
            "no stall detected".into(),
            String::new(),
        );
    };
    let details = a.stalls.iter().map(|s| {
        format!(
            "at {:.1} s (stalled since {:.1} s): {}",
            s.detected_at,
            s.stalled_since,
            s.signature()
        )
    });
    let details = capped_lines(details, a.stalls.len());
    check(
        names::NO_STALL,
        CheckStatus::Fail,
        format!(
            "{} stall(s); first at {:.1} s: {} on {}",
            a.stalls.len(),
            first.detected_at,
            first.kind.as_str(),
            first.queue
        ),
        details,
    )
}

fn stalled_as_expected(a: &Analysis) -> Check {
    match a.first_stall() {
        Some(first) => check(
            names::STALLED_AS_EXPECTED,
            CheckStatus::Pass,
            format!(
                "expected to stall: stalled at {:.1} s ({} on {})",
                first.stalled_since,
                first.kind.as_str(),
                first.queue
            ),
            first.signature(),
        ),
        None => match a.not_judgeable() {
            // No stall in a run that did not run as planned says nothing about the bug.
            Some(why) => check(
                names::STALLED_AS_EXPECTED,
                CheckStatus::Error,
                format!("expected to stall: no stall, and the run cannot tell: {why}"),
                String::new(),
            ),
            None => check(
                names::STALLED_AS_EXPECTED,
                CheckStatus::Fail,
                format!(
                    "expected to stall: no stall in {:.1} s; this setup did not show the bug",
                    a.duration_s
                ),
                String::new(),
            ),
        },
    }
}

fn resources_flat(a: &Analysis) -> Check {
    use super::resources::{warm_up_end, FD_GROWTH};
    let warm_up = warm_up_end(&a.seconds, a.duration_s);
    if a.resources.is_empty() {
        return check(
            names::RESOURCES,
            CheckStatus::Skipped,
            format!("fewer than two resource readings after the {warm_up:.0} s warm-up"),
            String::new(),
        );
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    let lines: Vec<String> = a
        .resources
        .iter()
        .map(|t| {
            format!(
                "{} (pid {}): RSS {:.1} -> {:.1} MiB, growth {:.1} MiB (bound {:.1}); fds {} -> {}, growth {} (bound {FD_GROWTH}); CPU {:.1} s; {} readings",
                t.process,
                t.pid,
                mib(t.rss_kib_first),
                mib(t.rss_kib_last),
                mib(t.rss_growth_kib),
                mib(t.rss_bound_kib()),
                t.fds_first,
                t.fds_last,
                t.fds_growth,
                t.cpu_s,
                t.samples
            )
        })
        .collect();
    let grown: Vec<&str> = a
        .resources
        .iter()
        .filter(|t| !t.flat())
        .map(|t| t.process.as_str())
        .collect();
    if grown.is_empty() {
        check(
            names::RESOURCES,
            CheckStatus::Pass,
            format!(
                "memory and file descriptors flat after the {warm_up:.0} s warm-up ({})",
                a.resources
                    .iter()
                    .map(|t| t.process.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            lines.join("\n"),
        )
    } else {
        check(
            names::RESOURCES,
            CheckStatus::Fail,
            format!(
                "grew after the {warm_up:.0} s warm-up: {}",
                grown.join(", ")
            ),
            lines.join("\n"),
        )
    }
}

fn renewals(a: &Analysis) -> Check {
    let r = &a.renewals;
    let summary = format!(
        "{} attempted, {} answered, {} received, {} failed, {} unresolved",
        r.attempted, r.answered, r.received, r.failed, r.unresolved
    );
    if r.failed == 0 {
        return check(names::RENEWALS, CheckStatus::Pass, summary, String::new());
    }
    let details = a
        .dhcp
        .iter()
        .filter(|d| d.phase.is_renewal())
        .filter(|d| RenewalOutcome::of(d).failed())
        .map(|d| {
            format!(
                "at {:.1} s: {:?} xid {}: {}",
                d.at,
                d.phase,
                d.xid.as_deref().unwrap_or("?"),
                RenewalOutcome::of(d).describe()
            )
        });
    let details = capped_lines(details, a.renewals.failed as usize);
    check(names::RENEWALS, CheckStatus::Fail, summary, details)
}

fn lease(a: &Analysis) -> Check {
    match a.lease_lost_at {
        None => check(
            names::LEASE,
            CheckStatus::Pass,
            "the guest kept its lease".into(),
            String::new(),
        ),
        Some(at) => check(
            names::LEASE,
            CheckStatus::Fail,
            format!("the guest lost its lease at {at:.1} s"),
            String::new(),
        ),
    }
}

fn throughput(header: &RunHeader, a: &Analysis) -> Check {
    let Some(floor) = header.config.throughput_floor_bps else {
        return check(
            names::THROUGHPUT,
            CheckStatus::Skipped,
            "no throughput floor configured".into(),
            String::new(),
        );
    };
    if header.config.load == "none" {
        return check(
            names::THROUGHPUT,
            CheckStatus::Skipped,
            "no load in this run".into(),
            String::new(),
        );
    }
    match a.throughput.total.p50 {
        None => check(
            names::THROUGHPUT,
            CheckStatus::Fail,
            "no throughput was measured while load ran".into(),
            format!("floor {}", format_bps(floor)),
        ),
        Some(p50) if p50 >= floor => check(
            names::THROUGHPUT,
            CheckStatus::Pass,
            format!("median {} ≥ floor {}", format_bps(p50), format_bps(floor)),
            String::new(),
        ),
        Some(p50) => check(
            names::THROUGHPUT,
            CheckStatus::Fail,
            format!("median {} < floor {}", format_bps(p50), format_bps(floor)),
            format!("over {} loaded seconds", a.throughput.total.samples),
        ),
    }
}

fn vmm(a: &Analysis) -> Check {
    match a.vmm_exits.iter().find(|e| !e.expected) {
        None => check(
            names::VMM,
            CheckStatus::Pass,
            "the VMM did not exit unexpectedly".into(),
            String::new(),
        ),
        Some(e) => {
            let status = match (e.status, e.signal) {
                (_, Some(sig)) => format!("signal {sig}"),
                (Some(code), None) => format!("exit status {code}"),
                (None, None) => "no status".to_string(),
            };
            let details = e
                .last_events
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            check(
                names::VMM,
                CheckStatus::Fail,
                format!("the VMM exited at {:.1} s ({status}): {}", e.at, e.cause),
                if details.is_empty() {
                    String::new()
                } else {
                    format!("last events:\n{details}")
                },
            )
        }
    }
}

fn completed(header: &RunHeader, a: &Analysis, warnings: &[String]) -> Check {
    let warning_lines = capped_lines(warnings.iter().cloned(), warnings.len());
    if a.seconds.is_empty() {
        return check(
            names::COMPLETED,
            CheckStatus::Error,
            "the record holds no samples: the run never got going".into(),
            warning_lines,
        );
    }
    let (status, message) = match &a.end {
        Some(end) => match end.outcome {
            RunOutcome::Completed => (CheckStatus::Pass, format!("completed after {:.1} s", end.elapsed)),
            RunOutcome::Interrupted => (
                CheckStatus::Error,
                format!(
                    "interrupted after {:.1} s{}",
                    end.elapsed,
                    end.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
                ),
            ),
            RunOutcome::Error => (
                CheckStatus::Error,
                format!("the run failed: {}", end.detail.as_deref().unwrap_or("no detail recorded")),
            ),
        },
        None => match header.config.duration_s {
            // Killed after its planned time (while writing reports, say): the record is whole.
            Some(planned) if a.duration_s + 1.0 >= planned => (
                CheckStatus::Pass,
                format!("recorded for the planned {planned:.0} s (no end record)"),
            ),
            _ => (
                CheckStatus::Error,
                format!(
                    "the record stops at {:.1} s without an end record: the orchestrator was killed",
                    a.duration_s
                ),
            ),
        },
    };
    check(names::COMPLETED, status, message, warning_lines)
}

/// Evidence lines shown per check; a 48-hour run can have thousands (report.json keeps the
/// full numbers and times).
const MAX_DETAIL_LINES: usize = 50;

/// The first [`MAX_DETAIL_LINES`] of `total` lines, then how many were left out.
fn capped_lines(lines: impl Iterator<Item = String>, total: usize) -> String {
    let mut shown: Vec<String> = lines.take(MAX_DETAIL_LINES).collect();
    if total > shown.len() {
        shown.push(format!("… and {} more", total - shown.len()));
    }
    shown.join("\n")
}

/// Bits/s in words (`"941.2 Mbit/s"`).
pub fn format_bps(bps: f64) -> String {
    let (value, unit) = if bps >= 1e9 {
        (bps / 1e9, "Gbit/s")
    } else if bps >= 1e6 {
        (bps / 1e6, "Mbit/s")
    } else if bps >= 1e3 {
        (bps / 1e3, "kbit/s")
    } else {
        (bps, "bit/s")
    };
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(status: CheckStatus) -> Check {
        check("x", status, String::new(), String::new())
    }

    #[test]
    fn fail_beats_error_beats_pass() {
        use CheckStatus::*;
        assert_eq!(Verdict::of(&[c(Pass), c(Skipped)]), Verdict::Pass);
        assert_eq!(Verdict::of(&[c(Pass), c(Error)]), Verdict::Error);
        assert_eq!(Verdict::of(&[c(Error), c(Fail), c(Pass)]), Verdict::Fail);
        assert_eq!(Verdict::Fail.exit_status(), 1);
        assert_eq!(Verdict::Error.exit_status(), 2);
        assert_eq!(Verdict::Pass.exit_status(), 0);
    }

    #[test]
    fn long_evidence_is_capped() {
        let lines = (0..120).map(|i| format!("line {i}"));
        let text = capped_lines(lines, 120);
        assert_eq!(text.lines().count(), MAX_DETAIL_LINES + 1);
        assert!(text.ends_with("… and 70 more"));
        assert_eq!(capped_lines(["a".to_string()].into_iter(), 1), "a");
    }

    #[test]
    fn bps_in_words() {
        assert_eq!(format_bps(941.2e6), "941.2 Mbit/s");
        assert_eq!(format_bps(2.5e9), "2.5 Gbit/s");
        assert_eq!(format_bps(12.0), "12.0 bit/s");
    }
}
