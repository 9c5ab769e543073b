//! The `resources_flat` check: after a warm-up, each process of the run (VMM, dnsmasq,
//! orchestrator) keeps its resident memory within a bound and its file descriptors flat, so
//! that a 48-hour soak shows a leak long before it would take the host down.

use serde::Serialize;

use super::analysis::Second;
use crate::record::ProcessResources;

/// The warm-up: this fraction of the run, at most [`MAX_WARM_UP_S`].
pub const WARM_UP_FRACTION: f64 = 0.1;
/// The longest warm-up, seconds.
pub const MAX_WARM_UP_S: f64 = 600.0;
/// RSS may grow by this much after the warm-up, KiB...
pub const RSS_GROWTH_FLOOR_KIB: u64 = 16 * 1024;
/// ...or by this fraction of its first reading after the warm-up, whichever is larger.
pub const RSS_GROWTH_FRACTION: f64 = 0.10;
/// Open file descriptors may grow by this many.
pub const FD_GROWTH: u64 = 2;

/// One process's readings after the warm-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessTrend {
    /// `vmm`, `dnsmasq` or `orchestrator`.
    pub process: String,
    /// Its pid (a restarted dnsmasq is a new series).
    pub pid: u32,
    /// Readings after the warm-up.
    pub samples: usize,
    /// Resident memory at the first and the last of them, KiB.
    pub rss_kib_first: u64,
    /// See `rss_kib_first`.
    pub rss_kib_last: u64,
    /// The growth that counts: the lowest of the last readings minus the highest of the first
    /// (so that a reading that merely wobbles is not growth), KiB; 0 when it shrank.
    pub rss_growth_kib: u64,
    /// Open file descriptors at the first and last reading.
    pub fds_first: u64,
    /// See `fds_first`.
    pub fds_last: u64,
    /// Growth of the descriptors, counted like `rss_growth_kib`.
    pub fds_growth: u64,
    /// CPU time at the last reading, seconds.
    pub cpu_s: f64,
}

impl ProcessTrend {
    /// The RSS growth this process is allowed.
    pub fn rss_bound_kib(&self) -> u64 {
        RSS_GROWTH_FLOOR_KIB.max((self.rss_kib_first as f64 * RSS_GROWTH_FRACTION) as u64)
    }

    /// Whether it stayed within both bounds.
    pub fn flat(&self) -> bool {
        self.rss_growth_kib <= self.rss_bound_kib() && self.fds_growth <= FD_GROWTH
    }
}

/// The warm-up of a run of `duration_s`.
pub fn warm_up_s(duration_s: f64) -> f64 {
    (duration_s * WARM_UP_FRACTION).min(MAX_WARM_UP_S)
}

/// Growth that ignores wobble: min of the last `k` minus max of the first `k`.
fn growth(values: &[u64]) -> u64 {
    let k = (values.len() / 3).clamp(1, 3);
    let early = values[..k].iter().copied().max().unwrap_or(0);
    let late = values[values.len() - k..]
        .iter()
        .copied()
        .min()
        .unwrap_or(0);
    late.saturating_sub(early)
}

/// When the warm-up of a run of `duration_s` with `samples` ends: [`warm_up_s`], and not
/// before the first second in which the guest held its lease. Until then the run is still
/// setting up, and its processes open descriptors they keep: the VMM its irqfds when the
/// guest's driver sets up the device, the orchestrator the ping and the load it starts at
/// the lease. A guest that boots slowly (SeaBIOS where guest ring 0 is emulated, on a busy
/// host) must not make that look like a leak.
pub fn warm_up_end(samples: &[Second], duration_s: f64) -> f64 {
    let bound = samples
        .iter()
        .find(|s| s.lease == Some(crate::record::LeaseState::Bound))
        .map_or(0.0, |s| s.elapsed);
    warm_up_s(duration_s).max(bound)
}

/// The trend of every process with at least two readings after the warm-up
/// ([`warm_up_end`]), in order of first appearance.
pub fn trends(samples: &[Second], duration_s: f64) -> Vec<ProcessTrend> {
    let warm_up = warm_up_end(samples, duration_s);
    let mut series: Vec<((String, u32), Vec<&ProcessResources>)> = Vec::new();
    for s in samples.iter().filter(|s| s.elapsed > warm_up) {
        for r in &s.resources {
            let key = (r.process.clone(), r.pid);
            match series.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(r),
                None => series.push((key, vec![r])),
            }
        }
    }
    series
        .into_iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|((process, pid), v)| {
            let rss: Vec<u64> = v.iter().map(|r| r.rss_kib).collect();
            let fds: Vec<u64> = v.iter().map(|r| r.fds).collect();
            ProcessTrend {
                process,
                pid,
                samples: v.len(),
                rss_kib_first: rss[0],
                rss_kib_last: rss[rss.len() - 1],
                rss_growth_kib: growth(&rss),
                fds_first: fds[0],
                fds_last: fds[fds.len() - 1],
                fds_growth: growth(&fds),
                cpu_s: v[v.len() - 1].cpu_s,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(elapsed: f64, rss: u64, fds: u64) -> Second {
        Second {
            elapsed,
            resources: vec![ProcessResources {
                process: "orchestrator".into(),
                pid: 7,
                rss_kib: rss,
                fds,
                cpu_s: elapsed / 10.0,
            }],
            ..Second::default()
        }
    }

    #[test]
    fn wobble_is_flat_and_a_leak_is_not() {
        // 100 s: warm-up 10 s; the first reading (at 10 s) is in it and does not count.
        let wobble: Vec<Second> = (1..=10u32)
            .map(|i| {
                sample(
                    f64::from(i) * 10.0,
                    50_000 + u64::from(i % 2) * 900,
                    12 + u64::from(i % 2),
                )
            })
            .collect();
        let t = trends(&wobble, 100.0);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].samples, 9);
        assert_eq!(t[0].fds_growth, 0, "{t:?}");
        assert!(t[0].flat(), "{t:?}");

        let leak: Vec<Second> = (1..=10u32)
            .map(|i| {
                sample(
                    f64::from(i) * 10.0,
                    50_000 + u64::from(i) * 8_000,
                    12 + u64::from(i),
                )
            })
            .collect();
        let t = trends(&leak, 100.0);
        assert_eq!(t[0].fds_growth, 4, "{t:?}");
        assert!(t[0].rss_growth_kib > RSS_GROWTH_FLOOR_KIB, "{t:?}");
        assert!(!t[0].flat());
    }

    #[test]
    fn the_warm_up_lasts_until_the_guest_has_its_lease() {
        // A 30 s run whose guest got its lease at 11 s: the reading at 10 s, before the
        // load's processes and the device's irqfds, is not the baseline.
        let mut run: Vec<Second> = [(10.0, 13), (20.0, 17), (30.0, 17)]
            .into_iter()
            .map(|(at, fds)| sample(at, 50_000, fds))
            .collect();
        assert_eq!(trends(&run, 30.0)[0].fds_growth, 4);
        let lease = |s: &mut Second| s.lease = Some(crate::record::LeaseState::Bound);
        run.iter_mut().skip(1).for_each(lease);
        let bound_at_11 = {
            let mut r = run.clone();
            r.insert(
                1,
                Second {
                    elapsed: 11.0,
                    lease: Some(crate::record::LeaseState::Bound),
                    ..Second::default()
                },
            );
            r
        };
        assert_eq!(warm_up_end(&bound_at_11, 30.0), 11.0);
        let t = trends(&bound_at_11, 30.0);
        assert_eq!((t[0].samples, t[0].fds_growth), (2, 0), "{t:?}");
        // Without a lease the warm-up is a tenth of the run.
        assert_eq!(warm_up_end(&[sample(10.0, 1, 1)], 30.0), 3.0);
    }

    #[test]
    fn too_few_readings_give_no_trend() {
        assert!(trends(&[sample(50.0, 1, 1)], 60.0).is_empty());
        assert_eq!(warm_up_s(172_800.0), MAX_WARM_UP_S);
    }
}
