//! Helpers of the end-to-end soak tests (tests/soak.rs, tests/sut_qemu.rs): run
//! directories, the reports they leave, and what must be gone afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::reports::{check_with_python_cases, python_with_modules, Expect, CHECKS, PLOTS};

pub fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vnetbed-soak-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A JSON file, parsed (the test fails naming the file if it is missing or malformed).
pub fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn report(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report.json parses")
}

pub fn check(report: &Value, name: &str) -> String {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The checks a healthy soak under load passes: no stall, every renewal answered and
/// received, the lease kept, throughput above the floor, the VMM alive.
pub fn healthy_run_checks_pass(report: &Value) {
    for c in [
        "no_stall",
        "every_renewal_answered_and_received",
        "lease_never_lost",
        "throughput_above_floor",
        "vmm_survived",
    ] {
        assert_eq!(check(report, c), "pass", "{c}: {report:#}");
    }
}

/// The report files are valid for their consumers (JSON schema, a JUnit parser, XML) and say
/// what report.json says: each check's status in junit.xml, the first stall, the plots.
pub fn reports_are_valid(test: &str, out: &Path) {
    let Some(python) = python_with_modules(test) else {
        return;
    };
    let r = report(out);
    // A control run (verify's A runs) has stalled_as_expected in place of no_stall.
    let cases: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let expected_cases: Vec<&str> = CHECKS
        .iter()
        .map(|&c| match c {
            "no_stall" if r["run"]["config"]["expect_stall"] == true => "stalled_as_expected",
            c => c,
        })
        .collect();
    assert_eq!(cases, expected_cases, "{}", out.display());
    let with = |status: &str| -> Vec<&str> {
        cases
            .iter()
            .copied()
            .filter(|c| check(&r, c) == status)
            .collect()
    };
    let (failures, errors, skipped) = (with("fail"), with("error"), with("skipped"));
    let first_stall = match r["first_stall"].is_object() {
        true => {
            serde_json::json!({"kind": r["first_stall"]["kind"], "queue": r["first_stall"]["queue"]})
        }
        false => Value::Null,
    };
    let e = Expect {
        verdict: r["verdict"].as_str().unwrap(),
        failures: &failures,
        errors: &errors,
        skipped: &skipped,
        first_stall,
    };
    // A control run stops at its first stall, which may come within a second or two of the
    // load's start: too few samples for the plots to hold data.
    let control = r["run"]["config"]["expect_stall"] == true;
    let plots: &[&str] = if control { &[] } else { &PLOTS };
    check_with_python_cases(&python, out, &e, &cases, plots);
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn no_testbed_left(name: &str) {
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ns.stdout).contains(&format!("vnetbed-{name}")),
        "testbed {name} left behind"
    );
}

pub fn wait_for_samples(out: &Path, n: usize, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let t = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap_or_default();
        if t.lines()
            .filter(|l| l.contains("\"record\":\"sample\""))
            .count()
            >= n
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("fewer than {n} samples after {limit:?}");
}

pub fn pid_of(pattern: &str) -> Option<i32> {
    let o = Command::new("pgrep").args(["-f", pattern]).output().ok()?;
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

pub fn wait_elapsed(out: &Path) -> f64 {
    let t = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap_or_default();
    t.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["elapsed"].as_f64())
        .fold(0.0, f64::max)
}
