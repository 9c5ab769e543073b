//! Child processes of a soak: the VMM (`vnetbed run`), iperf3 clients and ping, each read
//! line by line on a thread of its own. A child is killed when its handle is dropped, so a
//! panic or an early return never leaves one running.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
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

fn pump(stream: impl Read + Send + 'static, tx: Sender<Line>) {
    std::thread::spawn(move || {
        for text in BufReader::new(stream).lines().map_while(Result::ok) {
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

/// A command that runs `program args...` inside network namespace `netns`.
pub fn in_netns(netns: &str, program: &str) -> Command {
    let ip = crate::net::preflight::find_program("ip").unwrap_or_else(|| PathBuf::from("ip"));
    let mut c = Command::new(ip);
    c.args(["netns", "exec", netns, program]);
    c
}

/// Follows a file that another process appends JSON lines to (the VMM's event stream).
pub struct FileFollower {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl FileFollower {
    /// Follow `path` from its start (it may not exist yet).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    /// The complete lines appended since the last call.
    pub fn poll(&mut self) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        use std::io::Seek;
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = String::new();
        let Ok(n) = f.read_to_string(&mut buf) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.push_str(&buf);
        let mut lines = Vec::new();
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            lines.push(line.trim_end().to_string());
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follower_returns_only_complete_lines() {
        let p = std::env::temp_dir().join(format!("vnetbed-follow-{}", std::process::id()));
        let mut f = std::fs::File::create(&p).unwrap();
        let mut fol = FileFollower::new(&p);
        write!(f, "{{\"a\":1}}\n{{\"b\"").unwrap();
        f.flush().unwrap();
        assert_eq!(fol.poll(), vec!["{\"a\":1}"]);
        writeln!(f, ":2}}").unwrap();
        assert_eq!(fol.poll(), vec!["{\"b\":2}"]);
        assert!(fol.poll().is_empty());
        let _ = std::fs::remove_file(p);
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
