//! Child processes of a soak: the VMM (`vnetbed run`), iperf3 clients and ping, each read
//! line by line on a thread of its own. A child is killed when its handle is dropped, so a
//! panic or an early return never leaves one running.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

/// A line a child printed, with when it arrived.
#[derive(Debug, Clone)]
pub struct Line {
    /// When the orchestrator read it.
    pub at: Instant,
    /// The text, without the newline.
    pub text: String,
}

/// A running child whose stdout (and optionally stderr) arrive as [`Line`]s.
pub struct LineChild {
    child: Child,
    name: String,
}

/// Read `stream` line by line until its end. A line that is not UTF-8 (a guest's serial
/// console may print anything) is taken with U+FFFD in place of the bad bytes: it must never
/// end the reading, or the child would block once its pipe is full.
fn pump(stream: impl Read + Send + 'static, tx: Sender<Line>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            if tx
                .send(Line {
                    at: Instant::now(),
                    text,
                })
                .is_err()
            {
                break;
            }
        }
    });
}

impl LineChild {
    /// Spawn `cmd`; its stdout and stderr lines go to the returned receiver.
    pub fn spawn(name: &str, mut cmd: Command) -> std::io::Result<(Self, Receiver<Line>)> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let (tx, rx) = channel();
        if let Some(out) = child.stdout.take() {
            pump(out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(err, tx);
        }
        Ok((
            Self {
                child,
                name: name.to_string(),
            },
            rx,
        ))
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Send `sig`, then wait up to `grace` for it to exit; SIGKILL after that.
    pub fn stop(&mut self, sig: i32, grace: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.try_wait() {
            return Some(s);
        }
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!("{} did not stop within {:?}; killing it", self.name, grace);
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Put `cmd` in a process group of its own, and have it killed when this process dies.
pub fn own_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // Keep Ctrl-C at the terminal for the orchestrator alone: it stops the children in order.
    cmd.process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook only makes async-signal-safe system calls (prctl, getppid) and touches
    // no memory of the parent; if the orchestrator is SIGKILLed, the child gets SIGKILL
    // instead of running on (and does not start if the orchestrator is already gone).
    unsafe {
        cmd.pre_exec(move || vmm::signals::die_with_parent(libc::SIGKILL, parent));
    }
}

/// A command that runs `program args...` inside network namespace `netns`.
pub fn in_netns(netns: &str, program: &str) -> Command {
    let ip = crate::net::preflight::find_program("ip").unwrap_or_else(|| PathBuf::from("ip"));
    let mut c = Command::new(ip);
    c.args(["netns", "exec", netns, program]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_is_not_utf8_does_not_end_the_reading() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "printf 'one\\377\\n'; echo two"]);
        let (_child, rx) = LineChild::spawn("sh", cmd).unwrap();
        let got: Vec<String> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap().text)
            .collect();
        assert_eq!(got, ["one\u{FFFD}", "two"]);
    }

    #[test]
    fn children_are_read_and_killed_on_drop() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one; echo two >&2; sleep 30"]);
        let (child, rx) = LineChild::spawn("sh", cmd).unwrap();
        let pid = child.pid();
        let mut got: Vec<String> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap().text)
            .collect();
        got.sort();
        assert_eq!(got, vec!["one", "two"]);
        drop(child);
        // SAFETY: signal 0 only checks whether the pid exists.
        let alive = unsafe { libc::kill(pid as i32, 0) } == 0;
        assert!(!alive, "child {pid} survived its handle");
    }
}
