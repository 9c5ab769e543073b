//! The resources of the run's processes, read from /proc every [`PERIOD_S`] seconds: resident
//! memory, open file descriptors and CPU time of the VMM, dnsmasq and the orchestrator itself,
//! so that a 48-hour soak shows whether any of them grows.

use std::path::Path;

use crate::record::ProcessResources;

/// Seconds between two readings.
pub const PERIOD_S: u64 = 10;

/// `VmRSS` in KiB from a /proc/PID/status text.
fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// utime + stime in clock ticks from a /proc/PID/stat text. The command name (field 2) may
/// hold spaces and parentheses, so the fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Read process `pid`'s resources; `None` when it is gone (or /proc cannot be read).
pub fn read(process: &str, pid: u32) -> Option<ProcessResources> {
    let dir = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let fds = std::fs::read_dir(dir.join("fd")).ok()?.count() as u64;
    Some(ProcessResources {
        process: process.to_string(),
        pid,
        rss_kib: rss_kib(&status)?,
        fds,
        cpu_s: cpu_ticks(&stat)? as f64 / clock_ticks_per_second(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_parsed() {
        assert_eq!(
            rss_kib("Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t    4321 kB\n"),
            Some(4321)
        );
        assert_eq!(rss_kib("Name:\tkthread\n"), None);
        let stat = "42 (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 5 0 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = read("orchestrator", std::process::id()).expect("own /proc entry");
        assert!(me.rss_kib > 0 && me.fds >= 3, "{me:?}");
        assert!(read("gone", u32::MAX).is_none());
    }
}
