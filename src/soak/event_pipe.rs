//! The VMM's event stream through a pipe. The VMM writes its JSON lines to the pipe
//! (`vnetbed run --events /dev/fd/N`); a thread reads them, appends each to
//! `vmm-events.jsonl`, a [`RotatingLog`] of bounded size, and hands it to the soak loop. So the
//! stream on disk stays bounded over 48 hours, and the loop never rereads a growing file.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{channel, Receiver};
use std::thread::JoinHandle;

use super::logfile::RotatingLog;
use crate::record::LogTotal;

/// The VMM's event stream in a run directory (size-bounded; its older part is `.1`).
pub const VMM_EVENTS_FILE: &str = "vmm-events.jsonl";

/// The reading side of the VMM's event pipe.
pub struct EventPipe {
    /// The lines, until [`EventPipe::take_lines`] hands them to another reader.
    rx: Option<Receiver<String>>,
    reader: Option<JoinHandle<LogTotal>>,
    writer: Option<OwnedFd>,
}

impl EventPipe {
    /// Make the pipe, start its reader (which logs to `log_path`), and set `cmd` up to
    /// inherit the writing end. Returns the pipe and the path the VMM should write to.
    pub fn attach(cmd: &mut Command, log_path: &Path) -> std::io::Result<(Self, String)> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two new descriptors into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created by pipe2 and belong to nothing else.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let fd = write_end.as_raw_fd();
        // SAFETY: fcntl is async-signal-safe and touches only the descriptor table: in the
        // child, the writing end (same number) stays open across exec; every other
        // descriptor of the pipe keeps its close-on-exec flag.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (tx, rx) = channel();
        let mut log = RotatingLog::create(log_path);
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(File::from(read_end));
            let mut buf = Vec::new();
            // Read to the end whatever comes: a reader that stopped would block the VMM once
            // the pipe is full. A line that is not UTF-8 is kept with U+FFFD in place.
            while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\n')
                    .to_string();
                buf.clear();
                log.line(&line);
                // The loop may be gone (an early return): keep logging what the VMM says.
                let _ = tx.send(line);
            }
            log.total()
        });
        Ok((
            Self {
                rx: Some(rx),
                reader: Some(reader),
                writer: Some(write_end),
            },
            format!("/dev/fd/{fd}"),
        ))
    }

    /// The VMM has been spawned: close this process's copy of the writing end, so that the
    /// reader sees the end of the stream when the VMM exits.
    pub fn spawned(&mut self) {
        self.writer = None;
    }

    /// The lines that arrived since the last call (none once they were taken).
    pub fn poll(&mut self) -> Vec<String> {
        self.rx
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default()
    }

    /// Hand the lines to another reader: the receiver, which ends when the stream does.
    pub fn take_lines(&mut self) -> Option<Receiver<String>> {
        self.rx.take()
    }

    /// Wait for the end of the stream (call after the VMM has exited): every line not yet
    /// polled, and what `vmm-events.jsonl` wrote and kept.
    pub fn finish(&mut self) -> (Vec<String>, Option<LogTotal>) {
        self.writer = None;
        let total = self.reader.take().and_then(|r| r.join().ok());
        (self.poll(), total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_writes_through_the_pipe_into_the_log() {
        let dir = std::env::temp_dir().join(format!("vnetbed-event-pipe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("vmm-events.jsonl");
        let mut cmd = Command::new("sh");
        let (mut pipe, path) = EventPipe::attach(&mut cmd, &log).unwrap();
        cmd.args([
            "-c",
            &format!(
                "echo '{{\"event\":\"start\"}}' > {path}; echo '{{\"event\":\"exit\"}}' >> {path}"
            ),
        ]);
        let status = cmd.status().unwrap();
        pipe.spawned();
        assert!(status.success());
        let (lines, total) = pipe.finish();
        assert_eq!(lines, ["{\"event\":\"start\"}", "{\"event\":\"exit\"}"]);
        let total = total.unwrap();
        assert_eq!(total.written_bytes, 35);
        assert_eq!(std::fs::read_to_string(&log).unwrap().len(), 35);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
