//! Facts for the run header: the host, the clock.

use std::time::{SystemTime, UNIX_EPOCH};

use super::types::HostInfo;

impl HostInfo {
    /// Read kernel release, CPU model and CPU count from this host. Missing facts read as
    /// `"unknown"` / 0 rather than failing a run.
    pub fn detect() -> Self {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| cpu_model_from_cpuinfo(&info))
            .unwrap_or_else(|| "unknown".to_string());
        let nproc = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        Self {
            kernel,
            cpu_model,
            nproc,
        }
    }
}

/// The first `model name` in the text of /proc/cpuinfo.
fn cpu_model_from_cpuinfo(info: &str) -> Option<String> {
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Format seconds since the Unix epoch as RFC 3339 UTC with whole seconds
/// (`2026-11-22T04:40:57Z`).
pub fn rfc3339_utc(unix: f64) -> String {
    let secs = unix.max(0.0).floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_utc(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400.5), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_322_457.0), "2026-11-22T04:40:57Z");
    }

    #[test]
    fn reads_the_cpu_model() {
        let info = "processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\nflags\t: fpu\n";
        assert_eq!(
            cpu_model_from_cpuinfo(info).as_deref(),
            Some("Example CPU @ 2.0GHz")
        );
        assert_eq!(cpu_model_from_cpuinfo("flags: x\n"), None);
    }
}
