//! The state directory of a testbed, `<root>/<name>/` with root `/run/vnetbed` (or
//! `$VNETBED_STATE_DIR`): who holds the testbed, dnsmasq's pid, lease file and log, the DHCP
//! event journal and a JSON status. `gc` and `down` find testbeds through it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{NetError, Result};

/// Default root of all state directories.
pub const DEFAULT_STATE_ROOT: &str = "/run/vnetbed";
/// Environment variable that overrides [`DEFAULT_STATE_ROOT`] (used by tests).
pub const STATE_ROOT_ENV: &str = "VNETBED_STATE_DIR";

/// The state root: `$VNETBED_STATE_DIR` or `/run/vnetbed`.
pub fn state_root() -> PathBuf {
    std::env::var_os(STATE_ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_ROOT))
}

/// The process that holds a testbed (owns its dnsmasq supervision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot (field 22 of /proc/<pid>/stat), so that a
    /// recycled pid is not mistaken for the holder.
    pub start_time: u64,
}

impl Holder {
    /// This process.
    pub fn current() -> Result<Self> {
        let pid = std::process::id();
        let start_time = process_start_time(pid).ok_or_else(|| {
            NetError::io(
                "cannot read /proc/self/stat",
                std::io::Error::other("unparsable"),
            )
        })?;
        Ok(Holder { pid, start_time })
    }

    /// Whether the holder process is still alive (same pid and same start time).
    pub fn is_alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

/// Start time of a process in clock ticks since boot, if it exists (zombies count as gone).
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and ')', so split after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The command line of a process, arguments separated by NUL bytes turned into spaces.
pub fn process_cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// The arguments of a process (from the NUL-separated /proc/<pid>/cmdline).
pub fn process_args(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// The state directory of one testbed.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// The state directory of testbed `name` under `root` (not created).
    pub fn at(root: &Path, name: &str) -> Self {
        StateDir {
            path: root.join(name),
        }
    }

    /// Create it; an existing directory means the name is in use.
    pub fn create(root: &Path, name: &str) -> Result<Self> {
        fs::create_dir_all(root)
            .map_err(|e| NetError::io(format!("cannot create {}", root.display()), e))?;
        let dir = Self::at(root, name);
        match fs::create_dir(&dir.path) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(NetError::NameInUse {
                name: name.to_string(),
                what: format!("state directory {} exists", dir.path.display()),
            }),
            Err(e) => Err(NetError::io(
                format!("cannot create {}", dir.path.display()),
                e,
            )),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it exists.
    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// `holder.json`: who holds the testbed.
    pub fn holder_file(&self) -> PathBuf {
        self.path.join("holder.json")
    }
    /// `dnsmasq.pid`: the pid of the running dnsmasq.
    pub fn dnsmasq_pid_file(&self) -> PathBuf {
        self.path.join("dnsmasq.pid")
    }
    /// `leases`: dnsmasq's lease file, kept across restarts.
    pub fn lease_file(&self) -> PathBuf {
        self.path.join("leases")
    }
    /// `dnsmasq.log`: every line dnsmasq wrote, prefixed with vnetbed's read time.
    pub fn dnsmasq_log(&self) -> PathBuf {
        self.path.join("dnsmasq.log")
    }
    /// `events.jsonl`: the DHCP event stream, one JSON object per line.
    pub fn events_file(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }
    /// `status.json`: the testbed status.
    pub fn status_file(&self) -> PathBuf {
        self.path.join("status.json")
    }

    /// Record the holder.
    pub fn write_holder(&self, holder: &Holder) -> Result<()> {
        write_json(&self.holder_file(), holder)
    }

    /// The recorded holder, if any.
    pub fn read_holder(&self) -> Result<Option<Holder>> {
        read_json(&self.holder_file())
    }

    /// The recorded dnsmasq pid, if any.
    pub fn read_dnsmasq_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dnsmasq_pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Remove the directory and everything in it.
    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::io(
                format!("cannot remove {}", self.path.display()),
                e,
            )),
        }
    }
}

/// Replace a file atomically (write a temporary file, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let result = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(contents))
        .and_then(|_| fs::rename(&tmp, path));
    result.map_err(|e| NetError::io(format!("cannot write {}", path.display()), e))
}

/// Write a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| NetError::io("cannot serialize state", std::io::Error::other(e)))?;
    write_atomic(path, &text)
}

/// Read a JSON file; `None` if it does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NetError::BadStateFile {
                path: path.to_path_buf(),
                why: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NetError::io(format!("cannot read {}", path.display()), e)),
    }
}

/// Names of the state directories under `root`.
pub fn list_state_dirs(root: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_liveness_uses_start_time() {
        let me = Holder::current().unwrap();
        assert!(me.is_alive());
        assert!(!Holder {
            start_time: me.start_time + 1,
            ..me
        }
        .is_alive());
        assert!(!Holder {
            pid: u32::MAX - 1,
            start_time: 0
        }
        .is_alive());
    }
}
