//! Running totals for the orchestrator's live progress line, updated record by record (so a
//! 48-hour soak never re-reads its timeline to print one line).

use std::collections::HashSet;

use super::analysis::RenewalOutcome;
use super::checks::format_bps;
use crate::record::{LeaseState, Record, RunHeader};

/// Totals of the records seen so far.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    planned_s: Option<f64>,
    elapsed: f64,
    throughput_bps: Option<f64>,
    renewals_ok: u64,
    renewals_failed: u64,
    stalls: HashSet<(String, &'static str, u64)>,
    lease: Option<LeaseState>,
    pings: u64,
    pings_lost: u64,
}

impl Progress {
    /// Start counting for a run with this header.
    pub fn new(header: &RunHeader) -> Self {
        Self {
            planned_s: header.config.duration_s,
            ..Self::default()
        }
    }

    /// Count one record (the same records the orchestrator appends to the timeline).
    pub fn observe(&mut self, record: &Record) {
        match record {
            Record::Sample(s) => {
                self.elapsed = self.elapsed.max(s.elapsed);
                if let Some(t) = &s.throughput {
                    self.throughput_bps = t
                        .iperf_run
                        .map(|_| t.to_guest_bps.unwrap_or(0.0) + t.from_guest_bps.unwrap_or(0.0));
                }
                if let Some(p) = &s.ping {
                    self.pings += 1;
                    self.pings_lost += u64::from(p.lost);
                }
                self.lease = s.lease.or(self.lease);
                s.dhcp.iter().for_each(|d| self.count_exchange(d));
                s.stalls.iter().for_each(|st| self.count_stall(st));
            }
            Record::Dhcp(d) => self.count_exchange(d),
            Record::Stall(st) => self.count_stall(st),
            Record::End(e) => self.elapsed = self.elapsed.max(e.elapsed),
            Record::Header(_) | Record::VmmExit(_) | Record::Note(_) | Record::Backend(_) => {}
        }
    }

    fn count_exchange(&mut self, d: &crate::record::DhcpExchange) {
        if d.phase.is_renewal() {
            match RenewalOutcome::of(d) {
                RenewalOutcome::Ok => self.renewals_ok += 1,
                o if o.failed() => self.renewals_failed += 1,
                _ => {}
            }
        }
    }

    fn count_stall(&mut self, st: &crate::record::Stall) {
        self.stalls.insert((
            st.queue.clone(),
            st.kind.as_str(),
            st.stalled_since.to_bits(),
        ));
    }

    /// Distinct stalls seen.
    pub fn stalls(&self) -> usize {
        self.stalls.len()
    }

    /// The progress line: elapsed and ETA, throughput, renewals, stalls, lease, ping loss.
    pub fn line(&self) -> String {
        let time = match self.planned_s {
            Some(planned) => format!(
                "{} / {} (ETA {})",
                clock(self.elapsed),
                clock(planned),
                clock((planned - self.elapsed).max(0.0))
            ),
            None => clock(self.elapsed),
        };
        let throughput = self
            .throughput_bps
            .map_or_else(|| "no load".to_string(), format_bps);
        let lease = self
            .lease
            .map_or_else(|| "-".to_string(), |l| format!("{l:?}").to_lowercase());
        format!(
            "{time}  {throughput}  renewals {} ok {} failed  stalls {}  lease {lease}  ping lost {}/{}",
            self.renewals_ok,
            self.renewals_failed,
            self.stalls.len(),
            self.pings_lost,
            self.pings
        )
    }
}

/// Seconds as `h:mm:ss`.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{
        DhcpExchange, DhcpPhase, Ping, RunConfig, Sample, Stall, StallKind, StallSource, Throughput,
    };

    #[test]
    fn counts_what_the_line_shows() {
        let header = RunHeader::new(RunConfig {
            guest: "probe".into(),
            notify_model: "unfenced".into(),
            queue_backend: None,
            race_window: None,
            load: "udp".into(),
            rate: None,
            duration_s: Some(3600.0),
            throughput_floor_bps: None,
            ..Default::default()
        });
        let mut p = Progress::new(&header);
        let renewal = |received| DhcpExchange {
            at: 30.0,
            phase: DhcpPhase::Renew,
            message: "request".into(),
            xid: None,
            mac: None,
            ip: None,
            reply: Some("ack".into()),
            received_by_guest: Some(received),
            replied_at: None,
            host_dropped: None,
        };
        let stall = Stall {
            source: StallSource::Device,
            guest_last_used_idx: None,
            host_evidence: None,
            queue: "rx".into(),
            kind: StallKind::LostKick,
            detected_at: 62.0,
            stalled_since: 61.0,
            device_next_avail: 0,
            device_next_used: 0,
            guest_avail_idx: 3,
            guest_used_event: None,
            guest_avail_flags: 0,
            last_kick_at: None,
            last_interrupt_at: None,
        };
        p.observe(&Record::Sample(Sample {
            elapsed: 61.0,
            throughput: Some(Throughput {
                to_guest_bps: Some(1.5e8),
                from_guest_bps: Some(5e7),
                iperf_run: Some(2),
            }),
            ping: Some(Ping {
                rtt_ms: None,
                lost: true,
            }),
            lease: Some(LeaseState::Renewing),
            dhcp: vec![renewal(true), renewal(false)],
            stalls: vec![stall.clone()],
            ..Sample::default()
        }));
        p.observe(&Record::Stall(stall));
        assert_eq!(p.stalls(), 1);
        assert_eq!(
            p.line(),
            "0:01:01 / 1:00:00 (ETA 0:58:59)  200.0 Mbit/s  renewals 1 ok 1 failed  stalls 1  lease renewing  ping lost 1/1"
        );
    }
}
