//! Statistics of a timeline: stalls, renewals, lease, throughput, ping, exposure, VMM exit.

use std::path::Path;

use serde::Serialize;

use super::stats::{counter_delta, Percentiles};
use crate::record::{
    BackendRecord, DhcpExchange, LeaseState, Note, Ping, ProcessResources, Record, RunEnd, Sample,
    Stall, Throughput, Timeline, VmmExit, TIMELINE_FILE,
};

/// What the reports need of one sample: a few numbers, not the whole record, so that a
/// 48-hour run's 172,800 samples take tens of megabytes, not hundreds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Second {
    /// Run-elapsed seconds.
    pub elapsed: f64,
    /// iperf3 throughput in this second.
    pub throughput: Option<Throughput>,
    /// The ping of this second.
    pub ping: Option<Ping>,
    /// The lease state at its end.
    pub lease: Option<LeaseState>,
    /// rx ring-empty -> notification-enable cycles counted in this sample (the growth of the
    /// rx queues' `notify_enables` since the previous sample with device counters); `None`
    /// without device counters.
    pub exposure: Option<u64>,
    /// The guest's side in this sample: (refills that found the rx ring empty, rx callback
    /// re-enables) since the previous sample with guest counters; `None` without them.
    pub guest_exposure: Option<(u64, u64)>,
    /// The processes' resources, when read in this second.
    pub resources: Vec<ProcessResources>,
}

/// Everything the reports say about a run, computed from its timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Run-elapsed seconds of the last record.
    pub duration_s: f64,
    /// Each process's resources after the warm-up (`resources_flat`).
    pub resources: Vec<super::resources::ProcessTrend>,
    /// Every sample, in time order, as the reports need it.
    pub seconds: Vec<Second>,
    /// rx interrupt decisions (sent plus suppressed) over the run, on every rx queue: each
    /// is one chance for the lost-interrupt race.
    pub rx_interrupt_decisions: u64,
    /// The end record, when the orchestrator wrote one.
    pub end: Option<RunEnd>,
    /// Every distinct stall, by detection time.
    pub stalls: Vec<Stall>,
    /// Every DHCP exchange, by time.
    pub dhcp: Vec<DhcpExchange>,
    /// Renewal statistics.
    pub renewals: RenewalStats,
    /// When the guest lost its lease (expired, or fell back to INIT after holding one).
    pub lease_lost_at: Option<f64>,
    /// Throughput while load ran.
    pub throughput: ThroughputStats,
    /// Ping statistics.
    pub ping: PingStats,
    /// Exposure to the lost-kick race, from the device's counters (vnetbed's VMM only).
    pub exposure: Exposure,
    /// Exposure to both races from the guest's side (any VMM), from its driver's counters.
    pub guest_exposure: GuestExposure,
    /// Every exit of the VMM, in order.
    pub vmm_exits: Vec<VmmExit>,
    /// Notes, from note records and samples, by time.
    pub notes: Vec<Note>,
    /// The vhost-user backend's disconnections and reconnections, by time.
    pub backend: Vec<BackendRecord>,
}

/// What became of the guest's renewals (REQUESTs in RENEWING or REBINDING).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RenewalStats {
    /// Renewals the guest sent.
    pub attempted: u64,
    /// Renewals the server answered (ACK or NAK).
    pub answered: u64,
    /// Renewals whose answer the guest reported receiving.
    pub received: u64,
    /// Renewals not answered, or answered but not received.
    pub failed: u64,
    /// Renewals answered, but whether the guest received the answer is unknown (the record
    /// ended first).
    pub unresolved: u64,
    /// When each failed renewal was sent (run-elapsed seconds).
    pub failed_at: Vec<f64>,
}

/// Outcome of one renewal, for plots and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalOutcome {
    /// Answered and received.
    Ok,
    /// The server answered; the guest never got it.
    NotReceived,
    /// The server did not answer.
    Unanswered,
    /// Answered; receipt unknown.
    Unresolved,
}

impl RenewalOutcome {
    /// Classify an exchange.
    pub fn of(exchange: &DhcpExchange) -> Self {
        match (&exchange.reply, exchange.received_by_guest) {
            (None, _) => RenewalOutcome::Unanswered,
            (Some(_), Some(true)) => RenewalOutcome::Ok,
            (Some(_), Some(false)) => RenewalOutcome::NotReceived,
            (Some(_), None) => RenewalOutcome::Unresolved,
        }
    }

    /// Whether this counts as a failed renewal.
    pub fn failed(self) -> bool {
        matches!(
            self,
            RenewalOutcome::NotReceived | RenewalOutcome::Unanswered
        )
    }

    /// Words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            RenewalOutcome::Ok => "answered and received",
            RenewalOutcome::NotReceived => "answered by the server, never received by the guest",
            RenewalOutcome::Unanswered => "not answered by the server",
            RenewalOutcome::Unresolved => "answered; receipt by the guest unknown",
        }
    }
}

/// Throughput percentiles in bits/s, over the seconds in which an iperf3 run was active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ThroughputStats {
    /// Host → guest.
    pub to_guest: Percentiles,
    /// Guest → host.
    pub from_guest: Percentiles,
    /// Both directions added.
    pub total: Percentiles,
}

/// Ping statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PingStats {
    /// Pings sent.
    pub sent: u64,
    /// Pings without a reply.
    pub lost: u64,
    /// `lost / sent`; `null` when none were sent.
    pub loss_ratio: Option<f64>,
    /// Round-trip-time percentiles in milliseconds.
    pub rtt_ms: Percentiles,
}

/// Exposure to the races, from the device's counters: on rx, the ring-empty →
/// notification-enable cycles (`notify_enables` on every `rx*` queue: chances for the lost
/// kick), and per queue both races' chances.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Exposure {
    /// rx ring-empty → enable cycles over the whole run.
    pub cycles: u64,
    /// Those cycles per minute of run time; `null` for a run shorter than a second.
    pub per_minute: Option<f64>,
    /// Each queue's chances for both races (empty without device counters).
    pub queues: Vec<QueueExposure>,
}

/// One queue's chances for the two races over a run, as the device counted them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueExposure {
    /// The queue (`rx`, `tx`).
    pub queue: String,
    /// Lost-kick chances: the device enabled notifications after finding the ring empty
    /// (`notify_enables`); a guest store of `avail->idx` racing that enable is lost without
    /// the fence.
    pub kick_chances: u64,
    /// `kick_chances` per minute; `null` for a run shorter than a second.
    pub kick_chances_per_minute: Option<f64>,
    /// Lost-interrupt chances: the device decided whether to interrupt after publishing
    /// used entries (sent plus suppressed).
    pub interrupt_decisions: u64,
    /// `interrupt_decisions` per minute; `null` for a run shorter than a second.
    pub interrupt_decisions_per_minute: Option<f64>,
}

/// Exposure seen from the guest's driver, for any VMM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GuestExposure {
    /// Refills that found the rx ring empty: the device had run dry and asked for a kick
    /// (chances for the lost kick).
    pub ring_empty_refills: u64,
    /// rx callback re-enables after a poll round: rx interrupt decisions the device had to
    /// get right (chances for the lost interrupt).
    pub rx_cb_enables: u64,
    /// Whether the guest reported its counters at all.
    pub reported: bool,
}

/// Builds an [`Analysis`] one record at a time, keeping only what the reports need (see
/// [`Second`]): the record is read as a stream, never held whole in memory.
#[derive(Debug, Default)]
pub struct AnalysisBuilder {
    seconds: Vec<Second>,
    end: Option<RunEnd>,
    stalls: Vec<Stall>,
    dhcp: Vec<DhcpExchange>,
    vmm_exits: Vec<VmmExit>,
    notes: Vec<Note>,
    backend: Vec<BackendRecord>,
    duration_s: f64,
    /// Each queue's last (`notify_enables`, interrupt decisions), for the deltas.
    previous_queue: std::collections::HashMap<String, (u64, u64)>,
    /// Each queue's (kick chances, interrupt decisions) so far.
    queue_totals: std::collections::BTreeMap<String, (u64, u64)>,
    previous_guest: Option<(u64, u64)>,
    guest_exposure: GuestExposure,
}

impl AnalysisBuilder {
    /// Take the next record (in file order).
    pub fn push(&mut self, record: &Record) {
        match record {
            Record::Header(_) => {}
            Record::Sample(s) => self.sample(s),
            Record::Stall(s) => self.stalls.push(s.clone()),
            Record::Dhcp(d) => self.dhcp.push(d.clone()),
            Record::VmmExit(v) => {
                self.duration_s = self.duration_s.max(v.at);
                self.vmm_exits.push(v.clone());
            }
            Record::Note(n) => self.notes.push(n.clone()),
            Record::Backend(b) => self.backend.push(b.clone()),
            Record::End(e) => {
                self.duration_s = self.duration_s.max(e.elapsed);
                self.end = Some(e.clone());
            }
        }
    }

    fn sample(&mut self, s: &Sample) {
        self.duration_s = self.duration_s.max(s.elapsed);
        self.stalls.extend(s.stalls.iter().cloned());
        self.dhcp.extend(s.dhcp.iter().cloned());
        self.vmm_exits.extend(s.vmm_exit.iter().cloned());
        self.notes.extend(s.notes.iter().map(|text| Note {
            at: s.elapsed,
            text: text.clone(),
        }));
        let exposure = s.device.as_ref().map(|device| {
            let mut rx_cycles = 0;
            for q in &device.queues {
                let now = (
                    q.notify_enables,
                    q.interrupts_sent + q.interrupts_suppressed,
                );
                let (enables, decisions) =
                    self.previous_queue.get(q.queue.as_str()).copied().unzip();
                // A counter that went down is a restarted VMM: count from zero again.
                let delta = (
                    counter_delta(enables, now.0),
                    counter_delta(decisions, now.1),
                );
                self.previous_queue.insert(q.queue.clone(), now);
                let total = self.queue_totals.entry(q.queue.clone()).or_default();
                total.0 += delta.0;
                total.1 += delta.1;
                if q.queue.starts_with("rx") {
                    rx_cycles += delta.0;
                }
            }
            rx_cycles
        });
        let guest_exposure = s.guest.as_ref().map(|g| {
            let (empty, enables) = self.previous_guest.unzip();
            let delta = (
                counter_delta(empty, g.ring_empty),
                counter_delta(enables, g.rx_cb_enables),
            );
            self.guest_exposure.ring_empty_refills += delta.0;
            self.guest_exposure.rx_cb_enables += delta.1;
            self.guest_exposure.reported = true;
            self.previous_guest = Some((g.ring_empty, g.rx_cb_enables));
            delta
        });
        self.seconds.push(Second {
            elapsed: s.elapsed,
            throughput: s.throughput.clone(),
            ping: s.ping.clone(),
            lease: s.lease,
            exposure,
            guest_exposure,
            resources: s.resources.clone(),
        });
    }

    /// The analysis of every record pushed.
    pub fn finish(self) -> Analysis {
        let AnalysisBuilder {
            mut seconds,
            end,
            mut stalls,
            mut dhcp,
            mut vmm_exits,
            mut notes,
            mut backend,
            duration_s,
            queue_totals,
            guest_exposure,
            ..
        } = self;
        let rx_interrupt_decisions = rx_totals(&queue_totals).1;
        seconds.sort_by(|a, b| a.elapsed.total_cmp(&b.elapsed));
        stalls.sort_by(|a, b| a.detected_at.total_cmp(&b.detected_at));
        // The same stall may have been written twice (as its own record and in a sample).
        stalls.dedup_by(|a, b| {
            a.queue == b.queue && a.kind == b.kind && a.stalled_since == b.stalled_since
        });
        dhcp.sort_by(|a, b| a.at.total_cmp(&b.at));
        vmm_exits.sort_by(|a, b| a.at.total_cmp(&b.at));
        notes.sort_by(|a, b| a.at.total_cmp(&b.at));
        backend.sort_by(|a, b| a.at.total_cmp(&b.at));
        Analysis {
            duration_s,
            renewals: renewal_stats(&dhcp),
            lease_lost_at: lease_lost_at(&seconds),
            throughput: throughput_stats(&seconds),
            ping: ping_stats(&seconds),
            exposure: exposure(&queue_totals, duration_s),
            guest_exposure,
            resources: super::resources::trends(&seconds, duration_s),
            rx_interrupt_decisions,
            seconds,
            end,
            stalls,
            dhcp,
            vmm_exits,
            notes,
            backend,
        }
    }
}

impl Analysis {
    /// Compute the analysis of `timeline` (already in memory; [`AnalysisBuilder`] takes a
    /// stream).
    pub fn of(timeline: &Timeline) -> Self {
        let mut b = AnalysisBuilder::default();
        for record in &timeline.records {
            b.push(record);
        }
        b.finish()
    }

    /// The first stall, if any.
    pub fn first_stall(&self) -> Option<&Stall> {
        self.stalls.first()
    }

    /// Why this run cannot say whether the bug shows: the orchestrator failed or was
    /// interrupted, or the VMM ended on its own. `None` when the run ran as planned.
    pub fn not_judgeable(&self) -> Option<String> {
        use crate::record::RunOutcome;
        if let Some(end) = &self.end {
            let detail = end.detail.clone().unwrap_or_default();
            match end.outcome {
                RunOutcome::Error => return Some(format!("the run failed: {detail}")),
                RunOutcome::Interrupted => {
                    return Some(format!("the run was interrupted: {detail}"))
                }
                RunOutcome::Completed => {}
            }
        } else {
            return Some("the record has no end (the orchestrator was killed?)".into());
        }
        self.vmm_exits.iter().find(|e| !e.expected).map(|e| {
            format!(
                "the VMM ended on its own at {:.1} s (status {:?}, signal {:?}): {}",
                e.at, e.status, e.signal, e.cause
            )
        })
    }

    /// The VMM exit that matters: the first unexpected one, else the last one.
    pub fn vmm_exit(&self) -> Option<&VmmExit> {
        self.vmm_exits
            .iter()
            .find(|e| !e.expected)
            .or_else(|| self.vmm_exits.last())
    }
}

fn renewal_stats(dhcp: &[DhcpExchange]) -> RenewalStats {
    let mut stats = RenewalStats::default();
    for exchange in dhcp.iter().filter(|d| d.phase.is_renewal()) {
        stats.attempted += 1;
        let outcome = RenewalOutcome::of(exchange);
        stats.answered += u64::from(exchange.reply.is_some());
        stats.received += u64::from(outcome == RenewalOutcome::Ok);
        stats.unresolved += u64::from(outcome == RenewalOutcome::Unresolved);
        if outcome.failed() {
            stats.failed += 1;
            stats.failed_at.push(exchange.at);
        }
    }
    stats
}

fn lease_lost_at(samples: &[Second]) -> Option<f64> {
    let mut held = false;
    for s in samples {
        let Some(state) = s.lease else { continue };
        if state == LeaseState::Expired || (held && !state.holds_address()) {
            return Some(s.elapsed);
        }
        held |= state.holds_address();
    }
    None
}

fn throughput_stats(samples: &[Second]) -> ThroughputStats {
    let loaded = samples
        .iter()
        .filter_map(|s| s.throughput.as_ref())
        .filter(|t| t.iperf_run.is_some());
    let (mut to, mut from, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for t in loaded {
        to.extend(t.to_guest_bps);
        from.extend(t.from_guest_bps);
        // A second in which neither direction was measured (a UDP run's first second, before
        // the guest has reported its counters twice) is not a second of zero throughput.
        if t.to_guest_bps.is_some() || t.from_guest_bps.is_some() {
            total.push(t.to_guest_bps.unwrap_or(0.0) + t.from_guest_bps.unwrap_or(0.0));
        }
    }
    ThroughputStats {
        to_guest: Percentiles::of(&to),
        from_guest: Percentiles::of(&from),
        total: Percentiles::of(&total),
    }
}

fn ping_stats(samples: &[Second]) -> PingStats {
    let pings: Vec<_> = samples.iter().filter_map(|s| s.ping.as_ref()).collect();
    let sent = pings.len() as u64;
    let lost = pings.iter().filter(|p| p.lost).count() as u64;
    let rtts: Vec<f64> = pings
        .iter()
        .filter(|p| !p.lost)
        .filter_map(|p| p.rtt_ms)
        .collect();
    PingStats {
        sent,
        lost,
        loss_ratio: (sent > 0).then(|| lost as f64 / sent as f64),
        rtt_ms: Percentiles::of(&rtts),
    }
}

/// The rx exposure cycles counted in each sample with device counters.
pub fn exposure_per_sample(samples: &[Second]) -> Vec<(f64, u64)> {
    samples
        .iter()
        .filter_map(|s| s.exposure.map(|c| (s.elapsed, c)))
        .collect()
}

/// The rx queues' (kick chances, interrupt decisions) added up.
fn rx_totals(queue_totals: &std::collections::BTreeMap<String, (u64, u64)>) -> (u64, u64) {
    queue_totals
        .iter()
        .filter(|(q, _)| q.starts_with("rx"))
        .fold((0, 0), |acc, (_, t)| (acc.0 + t.0, acc.1 + t.1))
}

fn exposure(
    queue_totals: &std::collections::BTreeMap<String, (u64, u64)>,
    duration_s: f64,
) -> Exposure {
    let per_minute = |n: u64| (duration_s >= 1.0).then(|| n as f64 * 60.0 / duration_s);
    let cycles = rx_totals(queue_totals).0;
    Exposure {
        cycles,
        per_minute: per_minute(cycles),
        queues: queue_totals
            .iter()
            .map(|(queue, &(kicks, decisions))| QueueExposure {
                queue: queue.clone(),
                kick_chances: kicks,
                kick_chances_per_minute: per_minute(kicks),
                interrupt_decisions: decisions,
                interrupt_decisions_per_minute: per_minute(decisions),
            })
            .collect(),
    }
}

/// rx interrupt decisions (sent + suppressed) of the run in `dir`: each is one chance for
/// the lost-interrupt race, as each ring-empty -> enable cycle is one for the lost kick. 0
/// without a readable record.
pub fn rx_interrupt_decisions_in(dir: &Path) -> u64 {
    super::analyse_file(&dir.join(TIMELINE_FILE)).map_or(0, |(_, a)| a.rx_interrupt_decisions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DeviceCounters, DhcpPhase, QueueCounters, StallKind, StallSource};

    fn renewal(at: f64, reply: Option<&str>, received: Option<bool>) -> DhcpExchange {
        DhcpExchange {
            at,
            phase: DhcpPhase::Renew,
            message: "request".into(),
            xid: None,
            mac: None,
            ip: None,
            reply: reply.map(str::to_string),
            received_by_guest: received,
            replied_at: None,
            host_dropped: None,
        }
    }

    #[test]
    fn renewals_are_classified() {
        let mut discover = renewal(0.0, Some("offer"), Some(true));
        discover.phase = DhcpPhase::Discover;
        let stats = renewal_stats(&[
            discover,
            renewal(30.0, Some("ack"), Some(true)),
            renewal(60.0, Some("ack"), Some(false)),
            renewal(61.0, None, None),
            renewal(62.0, Some("ack"), None),
        ]);
        assert_eq!(stats.attempted, 4);
        assert_eq!(stats.answered, 3);
        assert_eq!(stats.received, 1);
        assert_eq!(stats.failed, 2);
        assert_eq!(stats.unresolved, 1);
        assert_eq!(stats.failed_at, vec![60.0, 61.0]);
    }

    fn with_lease(elapsed: f64, lease: LeaseState) -> Second {
        Second {
            elapsed,
            lease: Some(lease),
            ..Second::default()
        }
    }

    #[test]
    fn lease_loss_is_expiry_or_falling_back_after_holding() {
        use LeaseState::*;
        let before_bound = [
            with_lease(1.0, Init),
            with_lease(2.0, Selecting),
            with_lease(3.0, Bound),
        ];
        assert_eq!(lease_lost_at(&before_bound), None);
        let dropped = [
            with_lease(1.0, Bound),
            with_lease(2.0, Rebinding),
            with_lease(3.0, Init),
        ];
        assert_eq!(lease_lost_at(&dropped), Some(3.0));
        let expired = [with_lease(1.0, Bound), with_lease(5.0, Expired)];
        assert_eq!(lease_lost_at(&expired), Some(5.0));
    }

    fn with_rx_enables(elapsed: f64, enables: u64) -> Sample {
        let q = |name: &str, n, sent| QueueCounters {
            queue: name.into(),
            notify_enables: n,
            interrupts_sent: sent,
            interrupts_suppressed: sent / 2,
            ..Default::default()
        };
        Sample {
            elapsed,
            device: Some(DeviceCounters {
                queues: vec![q("rx", enables, enables * 4), q("tx", 1000, 7000)],
            }),
            ..Sample::default()
        }
    }

    #[test]
    fn exposure_counts_rx_enables_across_a_vmm_restart() {
        let mut b = AnalysisBuilder::default();
        for (at, enables) in [(1.0, 10), (2.0, 25), (3.0, 5)] {
            b.push(&Record::Sample(with_rx_enables(at, enables)));
        }
        let a = b.finish();
        assert_eq!(
            exposure_per_sample(&a.seconds),
            vec![(1.0, 10), (2.0, 15), (3.0, 5)]
        );
        let e = a.exposure;
        assert_eq!(e.cycles, 30);
        assert_eq!(e.per_minute, Some(600.0));
        // Per queue and per race: rx's decisions (4 sent + 2 suppressed per enable) restart
        // with the VMM too; tx's counters did not move after the first sample.
        let rx = &e.queues[0];
        assert_eq!((rx.queue.as_str(), rx.kick_chances), ("rx", 30));
        assert_eq!(rx.interrupt_decisions, 180);
        assert_eq!(rx.interrupt_decisions_per_minute, Some(3600.0));
        assert_eq!(a.rx_interrupt_decisions, 180);
        let tx = &e.queues[1];
        assert_eq!((tx.queue.as_str(), tx.kick_chances), ("tx", 1000));
        assert_eq!(tx.interrupt_decisions, 10500);
    }

    #[test]
    fn seconds_without_a_measurement_are_not_zero_throughput() {
        let second = |elapsed: f64, to: Option<f64>| Second {
            elapsed,
            throughput: Some(Throughput {
                to_guest_bps: to,
                from_guest_bps: None,
                iperf_run: Some(1),
            }),
            ..Second::default()
        };
        // A short UDP run: the guest's counters arrive late, three seconds measure nothing.
        let seconds = [
            second(1.0, None),
            second(2.0, None),
            second(3.0, None),
            second(4.0, Some(190e6)),
            second(5.0, Some(0.0)),
            second(6.0, Some(200e6)),
        ];
        let t = throughput_stats(&seconds);
        assert_eq!(t.total.samples, 3);
        assert_eq!(t.total.p50, Some(190e6));
    }

    #[test]
    fn duplicate_stalls_count_once() {
        let stall = Stall {
            source: StallSource::Device,
            guest_last_used_idx: None,
            host_evidence: None,
            queue: "rx".into(),
            kind: StallKind::LostKick,
            detected_at: 5.0,
            stalled_since: 4.0,
            device_next_avail: 1,
            device_next_used: 1,
            guest_avail_idx: 9,
            guest_used_event: Some(1),
            guest_avail_flags: 0,
            last_kick_at: None,
            last_interrupt_at: None,
        };
        let sample = Sample {
            elapsed: 5.0,
            stalls: vec![stall.clone()],
            ..Sample::default()
        };
        let timeline = Timeline {
            header: crate::record::RunHeader::new(crate::record::RunConfig {
                guest: "probe".into(),
                notify_model: "unfenced".into(),
                queue_backend: None,
                race_window: None,
                load: "none".into(),
                rate: None,
                duration_s: None,
                throughput_floor_bps: None,
                ..Default::default()
            }),
            records: vec![Record::Stall(stall), Record::Sample(sample)],
            warnings: vec![],
        };
        let a = Analysis::of(&timeline);
        assert_eq!(a.stalls.len(), 1);
        assert_eq!(a.first_stall().map(|s| s.detected_at), Some(5.0));
    }
}
