//! Helpers for the probe guest's end-to-end tests: build the image through
//! `vnetbed image build probe`, boot it on QEMU microvm or `vnetbed run` with a hard time
//! limit, and parse its `@probe {json}` agent lines.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Build the probe image once per test binary (incremental) and return its path.
pub fn probe_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let output = Command::new(env!("CARGO_BIN_EXE_vnetbed"))
                .args(["image", "build", "probe"])
                .stderr(Stdio::inherit())
                .output()
                .expect("run vnetbed image build probe");
            assert!(
                output.status.success(),
                "vnetbed image build probe failed: {}",
                output.status
            );
            let stdout = String::from_utf8(output.stdout).expect("utf-8 path");
            let last = stdout
                .lines()
                .last()
                .expect("a path line")
                .trim()
                .to_string();
            PathBuf::from(last)
        })
        .clone()
}

/// What a bounded guest run produced.
#[derive(Debug)]
pub struct GuestRun {
    /// The VMM's exit status; None if it was killed at the time limit.
    pub status: Option<ExitStatus>,
    /// Everything the VMM wrote to stdout (the serial console).
    pub serial: String,
    /// stderr.
    pub stderr: String,
    /// The `@probe` agent lines, parsed.
    pub events: Vec<Value>,
}

impl GuestRun {
    /// The exit code, panicking with the console output if the VMM did not exit.
    pub fn code(&self) -> i32 {
        match self.status.and_then(|s| s.code()) {
            Some(code) => code,
            None => panic!(
                "guest did not exit in time or was killed; console:\n{}\nstderr:\n{}",
                self.serial, self.stderr
            ),
        }
    }

    /// All events named `name`.
    pub fn events_named(&self, name: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == name).collect()
    }

    /// The `boot` event with `stage`, panicking with the console if missing.
    pub fn boot_stage(&self, stage: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["event"] == "boot" && e["stage"] == stage)
            .unwrap_or_else(|| panic!("no boot stage {stage}; console:\n{}", self.serial))
    }
}

/// Parse the `@probe {json}` lines of a console transcript. A line that starts with the
/// marker but is not JSON fails the test: the format is a contract.
pub fn parse_agent_lines(serial: &str) -> Vec<Value> {
    serial
        .lines()
        .filter_map(|line| line.trim_end_matches('\r').split_once("@probe "))
        .map(|(_, json)| {
            serde_json::from_str(json).unwrap_or_else(|e| panic!("bad agent line `{json}`: {e}"))
        })
        .collect()
}

/// Run `command` to completion or kill it after `limit`.
pub fn run_bounded(mut command: Command, limit: Duration) -> GuestRun {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait for the VMM") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let serial = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let events = parse_agent_lines(&serial);
    GuestRun {
        status,
        serial,
        stderr,
        events,
    }
}

/// QEMU microvm with isa-debug-exit, booting `image` through its PVH note (`vnetbed::qemu`).
pub fn qemu_microvm(image: &Path, append: &str, tap: Option<&str>) -> Command {
    vnetbed::qemu::microvm(image, append, tap)
}

/// `vnetbed run` booting `image` through the Linux 64-bit boot protocol.
pub fn vnetbed_run(image: &Path, append: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vnetbed"));
    command.arg("run").arg("--kernel").arg(image);
    command.args([
        "--mem",
        "64",
        "--serial",
        "stdout",
        "--cmdline",
        &format!("console=ttyS0 {append}"),
    ]);
    command
}

/// Exit status of a VMM whose guest wrote `value` to the debug-exit port.
pub fn debug_exit_status(value: i32) -> i32 {
    (value << 1) | 1
}

pub mod testbed;

/// A guest running in the background whose console is collected as it arrives.
pub struct RunningGuest {
    child: std::process::Child,
    console: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// A vhost-user backend the guest's NIC needs, stopped after the guest.
    backend: Option<vnetbed::dpdk::Testpmd>,
}

impl RunningGuest {
    /// Keep `backend` running while the guest runs.
    pub fn with_backend(mut self, backend: vnetbed::dpdk::Testpmd) -> RunningGuest {
        self.backend = Some(backend);
        self
    }

    /// The backend, if any.
    pub fn backend(&mut self) -> Option<&mut vnetbed::dpdk::Testpmd> {
        self.backend.as_mut()
    }

    /// Start `command` (its stdout is the serial console).
    pub fn start(mut command: Command) -> RunningGuest {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let console = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped stdout"), console.clone()),
            collect(child.stderr.take().expect("piped stderr"), stderr.clone()),
        ];
        RunningGuest {
            child,
            console,
            stderr,
            readers,
            backend: None,
        }
    }

    /// The console so far.
    pub fn console(&self) -> String {
        self.console.lock().unwrap().clone()
    }

    /// Whether the VMM is still running; its stderr so far otherwise.
    pub fn is_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            other => Err(format!(
                "the VMM ended ({other:?}); stderr:\n{}",
                self.stderr.lock().unwrap()
            )),
        }
    }

    /// The agent events so far (complete lines only).
    pub fn events(&self) -> Vec<Value> {
        let console = self.console();
        let complete = match console.rfind('\n') {
            Some(end) => &console[..end],
            None => "",
        };
        parse_agent_lines(complete)
    }

    /// Wait up to `limit` for an event matching `want`; panics with the console if none.
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(event) = self.events().into_iter().find(|e| want(e)) {
                return event;
            }
            if Instant::now() >= deadline {
                panic!("no {what} within {limit:?}; console:\n{}", self.console());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "guest exited ({status}) before {what}; console:\n{}\nstderr:\n{}",
                    self.console(),
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunningGuest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if let Some(mut backend) = self.backend.take() {
            backend.stop();
        }
    }
}

/// Append everything `source` yields to `sink`, in a thread.
fn collect(
    mut source: impl Read + Send + 'static,
    sink: std::sync::Arc<std::sync::Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = source.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

/// QEMU microvm with a virtio-net-device on the testbed's tap, inside its namespace.
pub fn qemu_microvm_in(testbed: &testbed::Testbed, image: &Path, append: &str) -> Command {
    vnetbed::qemu::microvm_in_netns(&testbed.netns, image, append, &testbed.tap)
}
pub mod acceptance;
pub mod call_dropper;
