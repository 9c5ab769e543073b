//! Shared helpers for the end-to-end tests.
//!
//! Tests that need a host capability (KVM, root, netns, dnsmasq, iperf3, ...) call
//! [`require`] first. On a host without it, the test prints why and returns early; under
//! `CI=true` a missing capability is a failure, never a skip.

#![allow(dead_code)]

pub mod reports;
pub mod soak;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A host capability a test may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Read/write access to /dev/kvm.
    Kvm,
    /// Root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create namespaces, bridges and taps.
    Root,
    /// /dev/net/tun.
    Tun,
    /// A program on PATH, named by the string.
    Program(&'static str),
}

impl Capability {
    fn missing_reason(&self) -> Option<String> {
        match self {
            Capability::Kvm => {
                let ok = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/kvm")
                    .is_ok();
                (!ok).then(|| "cannot open /dev/kvm read-write".to_string())
            }
            Capability::Root => {
                // SAFETY: geteuid has no preconditions and cannot fail.
                let euid = unsafe { libc::geteuid() };
                (euid != 0).then(|| format!("not root (euid {euid})"))
            }
            Capability::Tun => (!Path::new("/dev/net/tun").exists())
                .then(|| "/dev/net/tun does not exist".to_string()),
            Capability::Program(name) => find_program(name)
                .is_none()
                .then(|| format!("`{name}` is not on PATH")),
        }
    }
}

/// Whether this run is CI (`CI=true`), where every capability is mandatory.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Check every capability. Returns `true` when the test may run. When one is missing it
/// prints `SKIP <test>: <reason>` and returns `false`, except under `CI=true`, where it
/// panics so that the test fails.
pub fn require(test: &str, caps: &[Capability]) -> bool {
    for cap in caps {
        if let Some(reason) = cap.missing_reason() {
            if in_ci() {
                panic!("{test}: required capability missing under CI=true: {reason}");
            }
            eprintln!("SKIP {test}: {reason}");
            return false;
        }
    }
    true
}

/// Look a program up on PATH (and in /usr/sbin, /sbin, where Debian puts `ip` and dnsmasq).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The `vnetbed` binary built for this test run.
pub fn vnetbed_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vnetbed"))
}

/// A `Command` for the `vnetbed` binary.
pub fn vnetbed() -> Command {
    Command::new(vnetbed_bin())
}

/// Run `command` (stdin and stdout to /dev/null) to its end, killing it after `limit` (then
/// the status is None); its exit status and stderr.
pub fn bounded(mut command: Command, limit: Duration) -> (Option<i32>, String) {
    command.stdin(Stdio::null()).stdout(Stdio::null());
    command.stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn vnetbed run");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    (status, stderr)
}
