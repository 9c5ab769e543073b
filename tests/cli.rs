//! The command line's grammar: every bad value is a usage error (exit status 2) found before
//! anything runs, and a closed stdout ends vnetbed normally. None of these needs KVM or root:
//! a value that got past the parser would bring a testbed up and fail differently.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::vnetbed;
use vnetbed::record::*;

/// Run vnetbed with `args`; (exit status, stderr).
fn usage(args: &[&str]) -> (Option<i32>, String) {
    let out = vnetbed().args(args).output().expect("run vnetbed");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_values_are_usage_errors_before_anything_runs() {
    for (args, says) in [
        (
            &["soak", "--duration", "1m", "--notify-model", "bogus"][..],
            "bogus",
        ),
        (&["soak", "--duration", "0s"], "zero"),
        (&["soak", "--duration", "soon"], "not a duration"),
        (&["soak", "--duration", "1m", "--run-length", "0"], "zero"),
        (
            &["soak", "--duration", "1m", "--throughput-floor", "lots"],
            "not a rate",
        ),
        (&["soak", "--duration", "1m", "--rate=-5M"], "not a rate"),
        (&["soak", "--duration", "1m", "--load", "udpp"], "udpp"),
        (
            &["soak", "--duration", "1m", "--guest", "windows"],
            "windows",
        ),
        (
            &["soak", "--duration", "1m", "--name", "waytoolongname"],
            "waytoolongname",
        ),
        (
            &["soak", "--duration", "1m", "--race-window", "11s"],
            "shorter",
        ),
        (
            &["soak", "--duration", "1m", "--queue-size", "48"],
            "powers of two",
        ),
        (
            &["verify", "--sut", "qemu", "--queue-size", "64"],
            "from 256 to 1024",
        ),
        (&["soak", "--duration", "1m", "--burst", "0"], "--burst"),
        (
            &["verify", "--sut", "qemu", "--pin-vcpu", "yes"],
            "neither on nor off",
        ),
        (&["reproduce", "--notify-model", "bogus"], "bogus"),
        (&["verify", "--runs", "0"], "--runs"),
        (&["verify", "--buggy-model", "fenced"], "fix"),
        (&["verify", "--timeout", "0ms"], "zero"),
        (&["net", "up", "--name", "waytoolongname"], "waytoolongname"),
        (&["net", "down", "--name", "Bad_Name"], "Bad_Name"),
        (
            &["run", "--kernel", "x", "--notify-model", "bogus"],
            "bogus",
        ),
    ] {
        let (status, stderr) = usage(args);
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says),
            "{args:?}: stderr does not say {says:?}:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// A small complete run directory for `vnetbed report`, which prints to stdout.
fn run_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-closed-stdout");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create run dir");
    let h = RunHeader::new(RunConfig {
        guest: "probe".into(),
        notify_model: "fenced".into(),
        load: "none".into(),
        duration_s: Some(3.0),
        ..Default::default()
    });
    let mut w = TimelineWriter::create(&dir.join(TIMELINE_FILE), &h).expect("timeline");
    for second in 1..=3 {
        w.sample(&Sample {
            t: h.started_unix + f64::from(second),
            elapsed: f64::from(second),
            lease: Some(LeaseState::Bound),
            ..Sample::default()
        })
        .expect("sample");
    }
    w.append(&Record::End(RunEnd {
        t: h.started_unix + 3.5,
        elapsed: 3.5,
        outcome: RunOutcome::Completed,
        detail: None,
        logs: Vec::new(),
    }))
    .expect("end");
    dir
}

/// `vnetbed report DIR | head -0`, deterministically: stdout is a pipe whose reading end is
/// closed before vnetbed starts, so its first line already meets EPIPE. It must end with the
/// verdict's status, as with an open stdout, not panic (status 101).
#[test]
fn a_closed_stdout_is_a_normal_way_to_end() {
    let dir = run_dir();
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created by pipe and are owned by nothing else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let out = Command::new(common::vnetbed_bin())
        .arg("report")
        .arg(&dir)
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .expect("run vnetbed report");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        dir.join("report.json").exists(),
        "the job still ran to its end"
    );
}

/// `vnetbed net status` without a name lists the testbeds that are up, and only those. The
/// state root is the test's own, so testbeds of other runs on this host do not show.
#[test]
fn net_status_without_a_name_lists_the_testbeds_that_are_up() {
    use common::{require, Capability};
    if !require(
        "net_status_all",
        &[
            Capability::Root,
            Capability::Program("ip"),
            Capability::Program("dnsmasq"),
        ],
    ) {
        return;
    }
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-net-status-state");
    let _ = std::fs::remove_dir_all(&root);
    let net = |args: &[&str]| {
        let out = vnetbed()
            .args(args)
            .env("VNETBED_STATE_DIR", &root)
            .output()
            .expect("run vnetbed net");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            text,
        )
    };
    let (status, stdout, text) = net(&["net", "status"]);
    assert_eq!(status, Some(0), "{text}");
    assert_eq!(stdout.trim(), "no testbed is up", "{text}");

    let (status, _, text) = net(&["net", "up", "--name", "cls"]);
    assert_eq!(status, Some(0), "{text}");
    let (status, stdout, text) = net(&["net", "status", "--json"]);
    let (down, _, down_text) = net(&["net", "down", "--name", "cls"]);
    assert_eq!(status, Some(0), "{text}");
    let list: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON list");
    let names: Vec<&str> = list
        .as_array()
        .expect("a JSON list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["cls"], "{stdout}");
    assert_eq!(down, Some(0), "{down_text}");
    let (_, stdout, _) = net(&["net", "status"]);
    assert_eq!(stdout.trim(), "no testbed is up");
}

/// A soak whose filesystem cannot hold twice what it will write refuses to start: exit 2,
/// a clear message, and nothing created (no run directory, no testbed).
#[test]
fn a_soak_that_cannot_fit_on_the_disk_refuses_to_start() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-disk-refusal");
    let _ = std::fs::remove_dir_all(&out);
    // About 470 TB of record: more than any filesystem this runs on.
    let o = vnetbed()
        .args([
            "soak",
            "--duration",
            "100000000h",
            "--kernel",
            "/nonexistent",
        ])
        .args(["--name", "dsk", "--out"])
        .arg(&out)
        .output()
        .expect("run vnetbed soak");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not enough disk"), "{stderr}");
    assert!(stderr.contains("TB") || stderr.contains("GB"), "{stderr}");
    assert!(!out.exists(), "nothing is created");
}
