//! `vnetbed report DIR`: rebuild a run's reports from its timeline (after a SIGKILL of the
//! orchestrator, say).

use std::path::PathBuf;

use clap::Args;
use vnetbed::report;

/// Arguments of `vnetbed report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory: it holds timeline.jsonl; report.json, junit.xml and report.html are
    /// (re)written next to it.
    pub dir: PathBuf,
}

/// Rebuild the reports; the exit status is the verdict (0 pass, 1 fail, 2 error).
pub fn main(args: ReportArgs) -> i32 {
    match report::rebuild(&args.dir) {
        Ok(r) => {
            println!("verdict: {}", r.verdict.as_str());
            for c in &r.checks {
                println!(
                    "  {:<38} {:<7} {}",
                    c.name,
                    format!("{:?}", c.status).to_lowercase(),
                    c.message
                );
            }
            if r.analysis.first_stall().is_some() {
                println!("the 2012 incident, step by step:");
                println!(
                    "{}",
                    report::incident::render_text(&report::incident::steps(&r.analysis))
                );
            }
            for f in &r.files {
                println!("wrote {}", f.display());
            }
            r.verdict.exit_status()
        }
        Err(e) => {
            eprintln!("vnetbed report: {e}");
            report::Verdict::Error.exit_status()
        }
    }
}
