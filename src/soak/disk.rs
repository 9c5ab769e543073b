//! The disk a soak will take, projected before it starts: the record grows for the whole run,
//! the two logs only up to their rotation bound ([`super::logfile`]), the rest is small. A soak
//! whose filesystem cannot hold twice the projection refuses to start.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::logfile::ROTATE_BYTES;

/// `timeline.jsonl`'s growth, bytes a second: 0.9 kB/s measured with the probe guest under
/// the default UDP load (BENCHMARKS.md's machine), with half again for safety.
pub const TIMELINE_BYTES_PER_S: f64 = 1_300.0;
/// `serial.log`'s growth before rotation (0.5 kB/s measured).
pub const SERIAL_BYTES_PER_S: f64 = 750.0;
/// `vmm-events.jsonl`'s growth before rotation (0.75 kB/s measured).
pub const EVENTS_BYTES_PER_S: f64 = 1_100.0;
/// The reports, `dnsmasq.log` (its recent lines only) and the rest, whatever the length.
pub const FIXED_BYTES: f64 = 8e6;

/// What a soak of a given length will write, and what its filesystem has free.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// Bytes the run directory will hold at most.
    pub bytes: u64,
    /// Bytes available to this process on the run directory's filesystem.
    pub free: u64,
}

impl Projection {
    /// Whether the filesystem holds twice the projection.
    pub fn fits(&self) -> bool {
        self.free >= self.bytes.saturating_mul(2)
    }
}

/// The bytes a soak of `duration` will write.
pub fn projected_bytes(duration: Duration) -> u64 {
    let s = duration.as_secs_f64();
    let bounded = |rate: f64| (rate * s).min(2.0 * ROTATE_BYTES as f64);
    (TIMELINE_BYTES_PER_S * s
        + bounded(SERIAL_BYTES_PER_S)
        + bounded(EVENTS_BYTES_PER_S)
        + FIXED_BYTES) as u64
}

/// The nearest existing directory at or above `dir` (the run directory may not exist yet).
fn existing_ancestor(dir: &Path) -> PathBuf {
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(dir)
    };
    absolute
        .ancestors()
        .find(|p| p.is_dir())
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

/// Bytes available on the filesystem that holds (or will hold) `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let at = existing_ancestor(dir);
    let c = CString::new(at.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs only writes into the struct it is given; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// The projection for a soak of `duration` into `dir`.
pub fn project(dir: &Path, duration: Duration) -> std::io::Result<Projection> {
    Ok(Projection {
        bytes: projected_bytes(duration),
        free: free_bytes(dir)?,
    })
}

/// Bytes in words (`"148.6 MB"`).
pub fn format_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_48_hour_soak_is_dominated_by_its_record_and_its_logs_are_bounded() {
        let two_days = projected_bytes(Duration::from_secs(172_800));
        let record = (TIMELINE_BYTES_PER_S * 172_800.0) as u64;
        assert!(two_days > record);
        assert!(two_days <= record + 4 * ROTATE_BYTES + FIXED_BYTES as u64);
        assert!(projected_bytes(Duration::from_secs(60)) < 10_000_000);
        let p = Projection {
            bytes: 100,
            free: 199,
        };
        assert!(!p.fits());
        assert!(Projection { free: 200, ..p }.fits());
    }

    #[test]
    fn free_space_is_found_above_a_directory_that_does_not_exist_yet() {
        let free = free_bytes(Path::new("/tmp/vnetbed-does-not-exist/a/b")).unwrap();
        assert!(free > 0);
        assert_eq!(format_bytes(148_600_000), "148.6 MB");
        assert_eq!(format_bytes(2_500_000_000), "2.5 GB");
    }
}
