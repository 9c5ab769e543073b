//! DPDK's `dpdk-testpmd` as a vhost-user backend (`--sut dpdk[=PATH]`): vnetbed starts it
//! inside the testbed's namespace with a vhost PMD port (the vhost-user server socket
//! vnetbed's VMM connects to) and a tap PMD port, which it attaches to the testbed bridge,
//! and io forwarding between the two. No hugepages are needed (`--no-huge`, with 256 MiB of
//! ordinary memory for its 16384 mbufs).
//!
//! testpmd busy-polls its forwarding core (lcore 1; lcore 0 is its idle main core). It is
//! stopped (SIGTERM, then SIGKILL) when its [`Testpmd`] is dropped, on every way out, and its
//! socket and DPDK runtime directory are removed; if vnetbed itself dies, the kernel kills it
//! (`own_process_group`'s parent-death signal).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::soak::children::{in_netns, own_process_group};

/// The testpmd binary looked up on PATH for `dpdk`.
pub const DEFAULT_BINARY: &str = "dpdk-testpmd";

/// How long testpmd may take to create its socket and tap (a busy machine is slow).
const START_LIMIT: Duration = Duration::from_secs(60);

/// Errors starting testpmd.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// The binary is missing.
    #[error("{0}")]
    NoBinary(String),
    /// It could not be started, or ended before it was ready.
    #[error("dpdk-testpmd {binary}: {detail}")]
    Start {
        /// The binary.
        binary: String,
        /// What happened (with the end of its output).
        detail: String,
    },
}

/// The binary to run: `binary`, or `dpdk-testpmd` on PATH.
pub fn resolve_binary(binary: Option<&Path>) -> Result<PathBuf, DpdkError> {
    use std::os::unix::fs::PermissionsExt;
    match binary {
        Some(path) => match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(path.to_path_buf()),
            _ => Err(DpdkError::NoBinary(format!(
                "{} is not an executable file: give the path of a dpdk-testpmd binary",
                path.display()
            ))),
        },
        None => crate::net::preflight::find_program(DEFAULT_BINARY).ok_or_else(|| {
            DpdkError::NoBinary(
                "dpdk-testpmd is not on PATH: install it (Debian/Ubuntu: apt-get install dpdk) \
                 or name a build with `dpdk=PATH`"
                    .into(),
            )
        }),
    }
}

/// The DPDK version `binary` links (`DPDK 22.11.11`), from its EAL's `-v` line; `None` if
/// it cannot be run.
pub fn version(binary: &Path) -> Option<String> {
    let prefix = unique("vnetbed-dpdk-version");
    let out = Command::new(binary)
        .args(["-v", "-l", "0", "--no-huge", "-m", "64", "--no-pci"])
        .args(["--file-prefix", &prefix, "--", "--help"])
        .stdin(Stdio::null())
        .output()
        .ok();
    remove_runtime_dir(&prefix);
    let out = out?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split_once("RTE Version: '"))
        .map(|(_, v)| v.trim_end_matches('\'').to_string())
}

/// A name unique to this process and call.
fn unique(stem: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{stem}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn remove_runtime_dir(prefix: &str) {
    let _ = std::fs::remove_dir_all(Path::new(RUNTIME_ROOT).join(prefix));
}

/// A running testpmd; stopped on drop.
pub struct Testpmd {
    child: Option<Child>,
    socket: PathBuf,
    prefix: String,
    tap: String,
    binary: PathBuf,
    netns: String,
    bridge: String,
    log: Option<PathBuf>,
}

impl Testpmd {
    /// Start `binary` in `netns`, its tap port attached to `bridge`; its output goes to
    /// `log` (or nowhere). Returns once the vhost-user socket and the tap exist.
    pub fn start(
        binary: &Path,
        netns: &str,
        bridge: &str,
        log: Option<&Path>,
    ) -> Result<Testpmd, DpdkError> {
        let prefix = unique("vnetbed-dpdk");
        let socket = std::env::temp_dir().join(format!("{prefix}.sock"));
        // A tap name has at most 15 characters: "vdp", 6 hex digits of the pid, a counter.
        static TAPS: AtomicU32 = AtomicU32::new(0);
        let tap = format!(
            "vdp{:x}{}",
            std::process::id() & 0xff_ffff,
            TAPS.fetch_add(1, Ordering::Relaxed) % 10
        );
        let mut testpmd = Testpmd {
            child: None,
            socket,
            prefix,
            tap,
            binary: binary.to_path_buf(),
            netns: netns.to_string(),
            bridge: bridge.to_string(),
            log: log.map(Path::to_path_buf),
        };
        testpmd.spawn()?;
        Ok(testpmd)
    }

    /// Kill it (SIGKILL, as a crash) and start it again with the same socket, runtime
    /// directory and tap, as a backend that restarts: a VMM with `reconnect=SECS` connects
    /// to it again. Returns once the new one is ready.
    pub fn restart(&mut self) -> Result<(), DpdkError> {
        if let Some(mut child) = self.child.take() {
            // std's kill signals only a child not yet reaped (never a recycled pid).
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
        self.spawn()
    }

    /// Start the process and wait until its socket and tap exist; attach the tap to the
    /// bridge.
    fn spawn(&mut self) -> Result<(), DpdkError> {
        let (binary, netns, bridge) = (&self.binary, self.netns.as_str(), self.bridge.as_str());
        let (socket, prefix, tap) = (&self.socket, &self.prefix, &self.tap);
        let log = self.log.as_deref();
        let fail = |detail: String| DpdkError::Start {
            binary: binary.display().to_string(),
            detail,
        };
        let mut cmd = in_netns(netns, &binary.display().to_string());
        cmd.args(["-l", "0,1", "--no-huge", "-m", "256", "--no-pci"])
            .args(["--file-prefix", prefix])
            .args([
                "--vdev",
                &format!("net_vhost0,iface={}", socket.display()),
                "--vdev",
                &format!("net_tap0,iface={tap}"),
            ])
            .args(["--", "--forward-mode=io", "--total-num-mbufs=16384", "-a"])
            // Non-interactive testpmd forwards until its standard input ends: the pipe is
            // held by this handle, so testpmd also ends when vnetbed does.
            .stdin(Stdio::piped());
        match log.map(std::fs::File::create) {
            Some(Ok(f)) => {
                let f2 = f.try_clone().map_err(|e| fail(e.to_string()))?;
                cmd.stdout(f).stderr(f2);
            }
            Some(Err(e)) => return Err(fail(format!("cannot create its log: {e}"))),
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        own_process_group(&mut cmd);
        let child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let tail = log
                    .and_then(|l| std::fs::read_to_string(l).ok())
                    .map(|t| {
                        let lines: Vec<&str> = t.lines().collect();
                        lines[lines.len().saturating_sub(8)..].join("\n")
                    })
                    .unwrap_or_default();
                return Err(fail(format!(
                    "ended ({status}) before it was ready\n{tail}"
                )));
            }
            if socket.exists() && link_exists(netns, tap) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "did not create {} and tap {tap} within {START_LIMIT:?}",
                    socket.display(),
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let attached = in_netns(netns, "ip")
            .args(["link", "set", "dev", tap, "master", bridge, "up"])
            .status()
            .map_err(|e| fail(e.to_string()))?;
        if !attached.success() {
            return Err(fail(format!(
                "cannot attach its tap {tap} to bridge {bridge}"
            )));
        }
        Ok(())
    }

    /// The vhost-user server socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The tap port's interface, in the testbed's namespace.
    pub fn tap(&self) -> &str {
        &self.tap
    }

    /// testpmd's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it has ended.
    pub fn has_ended(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// Stop it (end of input, SIGTERM after 5 s, SIGKILL after 5 more) and remove what it
    /// leaves: the socket and DPDK's runtime directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let pid = child.id() as libc::pid_t;
            for (signal, grace) in [(0, 5), (libc::SIGTERM, 5), (libc::SIGKILL, 5)] {
                if signal != 0 {
                    // SAFETY: kill(2) on our own child's pid; no memory is involved.
                    unsafe { libc::kill(pid, signal) };
                }
                let deadline = Instant::now() + Duration::from_secs(grace);
                while Instant::now() < deadline {
                    if !matches!(child.try_wait(), Ok(None)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
        remove_runtime_dir(&self.prefix);
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn link_exists(netns: &str, name: &str) -> bool {
    in_netns(netns, "ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where DPDK keeps a process's runtime directory (`<dir>/<file-prefix>`).
pub const RUNTIME_ROOT: &str = "/var/run/dpdk";

/// The pid of the vnetbed process that named `name`, if `name` is one of vnetbed's testpmd
/// file prefixes (`vnetbed-dpdk-<pid>-<n>`, `vnetbed-dpdk-version-<pid>-<n>`) or its socket
/// (the prefix with `.sock`).
pub fn prefix_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("vnetbed-dpdk-")?;
    let rest = rest.strip_prefix("version-").unwrap_or(rest);
    let rest = rest.strip_suffix(".sock").unwrap_or(rest);
    let (pid, n) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// Whether any running process has `prefix` in its arguments (a testpmd still using it).
fn prefix_in_use(prefix: &str) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    procs.filter_map(|e| e.ok()).any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(crate::net::state::process_args)
            .is_some_and(|args| args.iter().any(|a| a.contains(prefix)))
    })
}

/// Remove what dead vnetbed testpmd processes left (after a SIGKILL of the vnetbed that
/// started them): sockets in the temporary directory and runtime directories under
/// [`RUNTIME_ROOT`] whose name is one of vnetbed's prefixes ([`prefix_owner`]), where that
/// vnetbed process is gone and no running process uses the prefix. Returns what was removed
/// and what could not be.
pub fn remove_dead_leftovers() -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    for dir in [std::env::temp_dir(), PathBuf::from(RUNTIME_ROOT)] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(owner) = prefix_owner(&name) else {
                continue;
            };
            if Path::new(&format!("/proc/{owner}")).exists() {
                continue;
            }
            let prefix = name.strip_suffix(".sock").unwrap_or(&name);
            if prefix_in_use(prefix) {
                continue;
            }
            let path = entry.path();
            let result = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => failed.push((path, e.to_string())),
            }
        }
    }
    (removed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vnetbed_prefixes_name_an_owner() {
        assert_eq!(prefix_owner("vnetbed-dpdk-123-0"), Some(123));
        assert_eq!(prefix_owner("vnetbed-dpdk-123-4.sock"), Some(123));
        assert_eq!(prefix_owner("vnetbed-dpdk-version-77-1"), Some(77));
        for other in [
            "rte",
            "vnetbed-dpdk-",
            "vnetbed-dpdk-123",
            "vnetbed-dpdk-12a-0",
            "vnetbed-dpdk-1-2-3",
            "vnetbed-dpdk-1-2.socket",
            "x-vnetbed-dpdk-1-2",
        ] {
            assert_eq!(prefix_owner(other), None, "{other}");
        }
    }
}
