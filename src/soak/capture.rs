//! `--capture dhcp|all`: tcpdump on the guest's tap, in the testbed's namespace, writing a ring
//! buffer of bounded size (`capture/ring.pcap0`, `ring.pcap1`, ...). Around each stall and each
//! failed renewal the soak keeps a copy of the ring's two newest files
//! (`capture/stall-1-at-42.3s.1.pcap`, `.2.pcap`), so that the incident's packets can be
//! opened in Wireshark, as the 2012 operators did with tcpdump.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::children::{in_netns, own_process_group, LineChild};

/// What to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CaptureMode {
    /// Nothing.
    #[default]
    None,
    /// DHCP only (UDP ports 67 and 68): small, for runs of any length.
    Dhcp,
    /// Every frame, headers only (the first 128 bytes).
    All,
}

impl CaptureMode {
    /// The ring: (file size in millions of bytes, number of files).
    pub fn ring(self) -> (u64, u64) {
        match self {
            CaptureMode::None => (0, 0),
            CaptureMode::Dhcp => (1, 4),
            CaptureMode::All => (8, 8),
        }
    }

    /// The most this capture takes on disk: the ring, and the copies kept around events.
    pub fn max_bytes(self) -> u64 {
        let (mb, files) = self.ring();
        mb * 1_000_000 * (files + 2 * MAX_KEPT_EVENTS as u64)
    }
}

/// Around at most this many events a copy is kept (a run with thousands of failed renewals
/// must not fill the disk); the notes say when the cap was reached.
pub const MAX_KEPT_EVENTS: usize = 20;

/// The capture directory in a run directory.
pub const CAPTURE_DIR: &str = "capture";

/// Errors of starting a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// tcpdump is not installed.
    #[error("--capture needs tcpdump, which is not on PATH (scripts/install-deps.sh installs it)")]
    NoTcpdump,
    /// It could not be started or did not start listening.
    #[error("cannot start tcpdump on {tap}: {detail}")]
    Start {
        /// The interface.
        tap: String,
        /// What went wrong.
        detail: String,
    },
}

/// Where tcpdump is, if anywhere.
pub fn find_tcpdump() -> Option<PathBuf> {
    crate::net::preflight::find_program("tcpdump")
}

/// A running capture.
pub struct Capture {
    child: LineChild,
    dir: PathBuf,
    kept: usize,
}

impl Capture {
    /// Start capturing on `tap` in `netns` into `out/capture/`; `None` for
    /// [`CaptureMode::None`]. Returns once tcpdump listens, so the boot's DHCP is in it.
    pub fn start(
        mode: CaptureMode,
        netns: &str,
        tap: &str,
        out: &Path,
    ) -> Result<Option<Self>, CaptureError> {
        if mode == CaptureMode::None {
            return Ok(None);
        }
        let tcpdump = find_tcpdump().ok_or(CaptureError::NoTcpdump)?;
        let start_error = |detail: String| CaptureError::Start {
            tap: tap.to_string(),
            detail,
        };
        let dir = out.join(CAPTURE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| start_error(e.to_string()))?;
        let (mb, files) = mode.ring();
        let mut cmd = in_netns(netns, &tcpdump.to_string_lossy());
        // -Z root: Debian's tcpdump would otherwise drop to its own user, who cannot write
        // into the run directory. -U: each packet reaches the file at once.
        cmd.args(["-i", tap, "-n", "-U", "-Z", "root", "-w"])
            .arg(dir.join("ring.pcap"))
            .args(["-C", &mb.to_string(), "-W", &files.to_string()]);
        match mode {
            CaptureMode::Dhcp => {
                cmd.arg("udp port 67 or udp port 68");
            }
            CaptureMode::All => {
                cmd.args(["-s", "128"]);
            }
            CaptureMode::None => {}
        }
        own_process_group(&mut cmd);
        let (mut child, lines) =
            LineChild::spawn("tcpdump", cmd).map_err(|e| start_error(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut said = Vec::new();
        while Instant::now() < deadline {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.text.contains("listening on") => {
                    return Ok(Some(Self {
                        child,
                        dir,
                        kept: 0,
                    }))
                }
                Ok(l) => said.push(l.text),
                Err(_) => {
                    if let Some(status) = child.try_wait() {
                        return Err(start_error(format!(
                            "it exited ({status}): {}",
                            said.join(" | ")
                        )));
                    }
                }
            }
        }
        Err(start_error(format!(
            "it did not start listening within 5 s: {}",
            said.join(" | ")
        )))
    }

    /// Keep a copy of the ring's two newest files around an event (`label` like `stall-1`,
    /// at run time `at`). Returns a note for the record.
    pub fn keep(&mut self, label: &str, at: f64) -> String {
        if self.kept >= MAX_KEPT_EVENTS {
            return format!(
                "capture: {label} at {at:.1} s not kept: already {MAX_KEPT_EVENTS} kept (the ring in capture/ has the latest packets)"
            );
        }
        let mut ring: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("ring.pcap"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        ring.sort();
        let newest: Vec<PathBuf> = ring.into_iter().rev().take(2).map(|(_, p)| p).collect();
        let mut kept = Vec::new();
        // Oldest first: .1 before .2.
        for (i, src) in newest.iter().rev().enumerate() {
            let name = format!("{label}-at-{at:.1}s.{}.pcap", i + 1);
            if std::fs::copy(src, self.dir.join(&name)).is_ok() {
                kept.push(format!("{CAPTURE_DIR}/{name}"));
            }
        }
        self.kept += 1;
        if kept.is_empty() {
            format!("capture: {label} at {at:.1} s: the ring had nothing to keep")
        } else {
            format!(
                "capture: kept {} around {label} at {at:.1} s",
                kept.join(", ")
            )
        }
    }

    /// Stop tcpdump (it flushes and closes its file on SIGTERM).
    pub fn stop(mut self) {
        self.child.stop(libc::SIGTERM, Duration::from_secs(3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_bounded() {
        assert_eq!(CaptureMode::None.max_bytes(), 0);
        assert_eq!(CaptureMode::Dhcp.max_bytes(), 44_000_000);
        assert!(CaptureMode::All.max_bytes() <= 400_000_000);
    }
}
