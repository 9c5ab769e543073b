//! Logs of bounded size: `serial.log` and `vmm-events.jsonl` grow by about a kilobyte a
//! second, 150 MB over 48 hours each. A [`RotatingLog`] keeps the newest lines in FILE and,
//! once FILE reaches [`ROTATE_BYTES`], moves it to `FILE.1` (replacing the one before) and
//! starts FILE anew: at most twice [`ROTATE_BYTES`] on disk, the newest lines always kept.
//! Its [`LogTotal`] (bytes written, bytes kept, rotations) goes into the run's end record.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::record::LogTotal;

/// The size at which a log is rotated.
pub const ROTATE_BYTES: u64 = 32 * 1024 * 1024;

/// An append-only log of bounded size.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    file: Option<File>,
    cap: u64,
    in_file: u64,
    in_previous: u64,
    written: u64,
    rotations: u64,
}

impl RotatingLog {
    /// Create (truncate) `path`, rotated at [`ROTATE_BYTES`].
    pub fn create(path: &Path) -> Self {
        Self::with_cap(path, ROTATE_BYTES)
    }

    /// Create (truncate) `path`, rotated at `cap` bytes.
    pub fn with_cap(path: &Path, cap: u64) -> Self {
        let file = File::create(path)
            .map_err(|e| tracing::warn!("cannot create {}: {e}", path.display()))
            .ok();
        Self {
            path: path.to_path_buf(),
            file,
            cap: cap.max(1),
            in_file: 0,
            in_previous: 0,
            written: 0,
            rotations: 0,
        }
    }

    fn rotated_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        PathBuf::from(p)
    }

    fn rotate(&mut self) {
        self.file = None;
        if let Err(e) = std::fs::rename(&self.path, self.rotated_path()) {
            tracing::warn!("cannot rotate {}: {e}", self.path.display());
        }
        self.file = File::create(&self.path)
            .map_err(|e| tracing::warn!("cannot create {}: {e}", self.path.display()))
            .ok();
        self.in_previous = self.in_file;
        self.in_file = 0;
        self.rotations += 1;
    }

    /// Append `line` and a newline. A log that cannot be written is not worth a failed soak:
    /// the error is logged and the line dropped.
    pub fn line(&mut self, line: &str) {
        let bytes = line.len() as u64 + 1;
        if self.in_file > 0 && self.in_file + bytes > self.cap {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut() {
            if writeln!(f, "{line}").is_ok() {
                self.in_file += bytes;
                self.written += bytes;
            }
        }
    }

    /// What this log wrote and kept so far.
    pub fn total(&self) -> LogTotal {
        LogTotal {
            file: self
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            written_bytes: self.written,
            kept_bytes: self.in_file + self.in_previous,
            rotations: self.rotations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_stays_within_twice_its_cap_and_keeps_the_newest_lines() {
        let dir = std::env::temp_dir().join(format!("vnetbed-logfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("serial.log");
        let mut log = RotatingLog::with_cap(&path, 100);
        for i in 0..50 {
            log.line(&format!("line {i:04}")); // 10 bytes each
        }
        let t = log.total();
        assert_eq!(t.written_bytes, 500);
        assert_eq!(t.rotations, 4);
        assert!(t.kept_bytes <= 200, "{t:?}");
        let now = std::fs::read_to_string(&path).unwrap();
        let before = std::fs::read_to_string(dir.join("serial.log.1")).unwrap();
        assert_eq!(t.kept_bytes, (now.len() + before.len()) as u64);
        assert!(now.ends_with("line 0049\n"), "{now}");
        assert!(before.starts_with("line 0030\n"), "{before}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
