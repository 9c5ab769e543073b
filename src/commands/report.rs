//! `vnetbed report DIR`: rebuild a run's reports from its timeline (after a SIGKILL of the
//! orchestrator, say).

use std::path::PathBuf;

use clap::Args;
use vnetbed::report;

/// Arguments of `vnetbed report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory: it holds timeline.jsonl; report.json, junit.xml and report.html are
    /// (re)written next to it. For a `vnetbed verify` directory, every run's reports and
    /// verify.json, junit.xml and report.html at its top are rebuilt.
    pub dir: PathBuf,
}

/// Rebuild the reports; the exit status is the verdict (0 pass, 1 fail, 2 error).
pub fn main(args: ReportArgs) -> i32 {
    if vnetbed::verify::is_verify_dir(&args.dir) {
        return verify_dir(&args);
    }
    match report::rebuild(&args.dir) {
        Ok(r) => {
            outln!("verdict: {}", r.verdict.as_str());
            for c in &r.checks {
                outln!(
                    "  {:<38} {:<7} {}",
                    c.name,
                    format!("{:?}", c.status).to_lowercase(),
                    c.message
                );
            }
            if r.analysis.first_stall().is_some() {
                outln!("the 2012 incident, step by step:");
                outln!(
                    "{}",
                    report::incident::render_text(&report::incident::steps(&r.analysis))
                );
            }
            for f in &r.files {
                outln!("wrote {}", f.display());
            }
            r.verdict.exit_status()
        }
        Err(e) => {
            eprintln!("vnetbed report: {e}");
            report::Verdict::Error.exit_status()
        }
    }
}

/// A verify directory: every run's reports, then verify.json, junit.xml and report.html.
fn verify_dir(args: &ReportArgs) -> i32 {
    match vnetbed::verify::rebuild(&args.dir) {
        Ok((summary, files)) => {
            outln!("verdict: {}: {}", summary.verdict.as_str(), summary.reason);
            for f in &files {
                outln!("wrote {}", f.display());
            }
            summary.exit_status
        }
        Err(e) => {
            eprintln!("vnetbed report: {e}");
            report::Verdict::Error.exit_status()
        }
    }
}
