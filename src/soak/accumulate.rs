//! What a soak makes of its inputs: one [`Accumulator`] takes every line and message the
//! sources send (the guest's serial console, the VMM's event stream, dnsmasq, ping, iperf3)
//! and the once-a-second tick, and says what to write and what to do ([`Out`]). It starts no
//! process, reads no clock and touches no file, so it is tested without KVM.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use vmm::events::Event;

use super::convert::{self, EventLine};
use super::dhcp_track::{lease_state_from_word, parse_xid, DhcpTracker};
use super::event_pipe::VMM_EVENTS_FILE;
use super::guest_stall::{self, GuestStalls, Settled, TapStats};
use super::load::{LoadKind, LoadMsg};
use super::parse::{ping_line, probe_line, PingLine};
use crate::net::DhcpEvent;
use crate::record::{
    BackendRecord, BackendState, DeviceCounters, GuestCounters, LeaseState, Ping, ProcessResources,
    QueueCounters, Record, Sample, Stall, Throughput,
};
use crate::report::analysis::RenewalOutcome;

/// Seconds apart within which a guest detector's stall and a device watchdog's stall on the
/// same queue are one stall (recorded once, as the device's, which sees more).
const SAME_STALL_S: f64 = 5.0;

/// Seconds around a vhost-user backend's absence within which a guest detector's stall is
/// the absence (the guest's clock and the host's differ by the line's way to the host).
const BACKEND_SLACK_S: f64 = 1.0;

/// How many of the VMM's last events are kept for the record of its exit.
const LAST_EVENTS: usize = 10;

/// What the soak loop must do after an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Append this record now (a stall).
    Record(Box<Record>),
    /// The guest got its first lease at this address: start ping and the load.
    GuestBound(String),
    /// Keep a copy of the packet capture around this moment (run-elapsed seconds), under
    /// this label; the capture's note comes back through [`Accumulator::note`].
    KeepCapture {
        /// `stall-1`, `failed-renewal-2`.
        label: String,
        /// When.
        at: f64,
    },
}

/// What one second collects before its sample.
#[derive(Debug, Default)]
struct SecondAcc {
    to_guest: Vec<f64>,
    from_guest: Vec<f64>,
    ping: Option<Ping>,
    notes: Vec<String>,
}

/// What the host knows at a tick.
#[derive(Debug, Default)]
pub struct Tick {
    /// Run-elapsed seconds now.
    pub now: f64,
    /// Run-elapsed seconds of this sample (a whole second).
    pub second: f64,
    /// Wall clock, Unix seconds.
    pub t: f64,
    /// The guest tap's counters, when they could be read.
    pub tap: Option<TapStats>,
    /// dnsmasq restarts by the testbed's supervisor so far.
    pub dnsmasq_restarts: u64,
    /// The processes' resources, when read this second.
    pub resources: Vec<ProcessResources>,
}

/// The soak's state between inputs.
#[derive(Debug)]
pub struct Accumulator {
    started_unix: f64,
    tracker: DhcpTracker,
    guest_stalls: GuestStalls,
    /// The device watchdog's stalls: (queue, stalled_since).
    device_stalls: Vec<(String, f64)>,
    /// When the vhost-user backend went away and came back (run-elapsed seconds).
    backend_away: Vec<(f64, Option<f64>)>,
    stalls: usize,
    failed_renewals: usize,
    /// When iperf3 last reported sending to the guest (run-elapsed seconds).
    last_to_guest_at: Option<f64>,
    unknown_events: BTreeSet<String>,
    guest_ip: Option<String>,
    device: BTreeMap<String, QueueCounters>,
    guest_counters: Option<GuestCounters>,
    current_run: Option<u64>,
    current_kind: Option<LoadKind>,
    /// The guest's received bytes and its clock (`t_us`) at its previous counters line.
    last_guest_rx: Option<(u64, u64)>,
    /// The rate into the guest between its last two counters lines, not yet sampled.
    guest_rx_bps: Option<f64>,
    acc: SecondAcc,
    dnsmasq_restarts: u64,
    last_events: Vec<Value>,
    /// The last tick's sample, until its notes are in.
    pending_sample: Option<Sample>,
}

impl Accumulator {
    /// A soak of a guest with MAC address `mac`, whose record started at `started_unix`.
    pub fn new(mac: &str, started_unix: f64) -> Self {
        Self {
            started_unix,
            tracker: DhcpTracker::new(mac),
            guest_stalls: GuestStalls::new(),
            device_stalls: Vec::new(),
            backend_away: Vec::new(),
            stalls: 0,
            failed_renewals: 0,
            last_to_guest_at: None,
            unknown_events: BTreeSet::new(),
            guest_ip: None,
            device: BTreeMap::new(),
            guest_counters: None,
            current_run: None,
            current_kind: None,
            last_guest_rx: None,
            guest_rx_bps: None,
            acc: SecondAcc::default(),
            dnsmasq_restarts: 0,
            last_events: Vec::new(),
            pending_sample: None,
        }
    }

    /// A note for the current second.
    pub fn note(&mut self, text: String) {
        self.acc.notes.push(text);
    }

    /// Notes not yet in a sample (at the end of the run).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.acc.notes)
    }

    /// Stalls recorded so far.
    pub fn stalls(&self) -> usize {
        self.stalls
    }

    /// The guest's lease state.
    pub fn lease(&self) -> Option<LeaseState> {
        self.tracker.lease()
    }

    /// Whether the guest has had a lease.
    pub fn guest_bound(&self) -> bool {
        self.guest_ip.is_some()
    }

    /// Whether guest stall reports wait for the host's word.
    pub fn guest_reports_pending(&self) -> bool {
        self.guest_stalls.has_pending()
    }

    /// The VMM's last events, newest last.
    pub fn last_events(&self) -> &[Value] {
        &self.last_events
    }

    fn keep_event(&mut self, value: Value) {
        self.last_events.push(value);
        if self.last_events.len() > LAST_EVENTS {
            self.last_events.remove(0);
        }
    }

    /// A stall to record now (device's, or a confirmed guest's).
    fn stall(&mut self, stall: Stall, out: &mut Vec<Out>) {
        self.tracker.note_stall();
        self.stalls += 1;
        out.push(Out::KeepCapture {
            label: format!("stall-{}", self.stalls),
            at: stall.detected_at,
        });
        out.push(Out::Record(Box::new(Record::Stall(stall))));
    }

    /// A line of the guest's serial console, read at run-elapsed second `at`.
    pub fn serial(&mut self, text: &str, at: f64) -> Vec<Out> {
        let mut out = Vec::new();
        let Some(v) = probe_line(text) else {
            return out;
        };
        match v.get("event").and_then(Value::as_str) {
            Some("dhcp_state") => {
                let Some(state) = v
                    .get("state")
                    .and_then(Value::as_str)
                    .and_then(lease_state_from_word)
                else {
                    return out;
                };
                self.tracker.guest_state(state, at);
                if state == LeaseState::Bound && self.guest_ip.is_none() {
                    self.guest_ip = v
                        .get("address")
                        .or_else(|| v.get("ip"))
                        .and_then(Value::as_str)
                        .map(|a| a.split('/').next().unwrap_or(a).to_string());
                    if let Some(ip) = &self.guest_ip {
                        self.acc
                            .notes
                            .push(format!("guest bound {ip} at {at:.1} s"));
                        out.push(Out::GuestBound(ip.clone()));
                    }
                }
            }
            // Every DHCP message on the guest's wire: what it sent tells its state, what it
            // received is the proof that an answer reached it.
            Some("dhcp") => {
                let xid = v.get("xid").and_then(|x| match x {
                    Value::String(s) => parse_xid(s),
                    Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                    _ => None,
                });
                let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
                match v.get("dir").and_then(Value::as_str) {
                    Some("tx") => {
                        if let Some(state) = v
                            .get("state")
                            .and_then(Value::as_str)
                            .and_then(lease_state_from_word)
                        {
                            if kind == "request" {
                                self.tracker.guest_sent_request(xid, state, at);
                            } else {
                                self.tracker.guest_state(state, at);
                            }
                        }
                    }
                    Some("rx") => self.tracker.guest_received(kind, xid, at),
                    _ => {}
                }
            }
            Some("counters") => {
                let counters = convert::guest_counters(&v);
                // The guest's own clock times its counters (a line that reaches the host late
                // on a busy host still gives the right rate over the right interval); a guest
                // agent without `t_us` is timed by the line's arrival.
                let t_us = v
                    .get("t_us")
                    .and_then(Value::as_u64)
                    .unwrap_or((at * 1e6) as u64);
                if let Some((bytes, then_us)) = self.last_guest_rx {
                    if t_us > then_us {
                        self.guest_rx_bps = Some(
                            counters.rx_bytes.saturating_sub(bytes) as f64 * 8.0
                                / ((t_us - then_us) as f64 / 1e6),
                        );
                    }
                }
                self.last_guest_rx = Some((counters.rx_bytes, t_us));
                self.guest_stalls.observe_guest_rx(at, counters.rx_packets);
                self.guest_counters = Some(counters);
            }
            // The guest's own stall detector: it counts once the host confirms it.
            Some("stall") => match guest_stall::from_line(&v, at) {
                Some(s) => {
                    self.acc.notes.push(format!(
                        "the guest's stall detector reported {}; the host is checking it",
                        s.signature()
                    ));
                    self.guest_stalls.report(s);
                }
                None => self
                    .acc
                    .notes
                    .push(format!("unreadable stall line from the guest: {text}")),
            },
            _ => {}
        }
        out
    }

    /// A line of the VMM's event stream.
    pub fn vmm_event(&mut self, text: &str) -> Vec<Out> {
        let mut out = Vec::new();
        let value = match convert::event_line(text) {
            EventLine::Known(ev, value) => {
                match ev.event {
                    Event::Counters(c) => {
                        let q = convert::queue_counters(&c);
                        self.device.insert(q.queue.clone(), q);
                    }
                    Event::Stall(s) => {
                        let s = convert::stall(&s, self.started_unix);
                        self.device_stalls.push((s.queue.clone(), s.stalled_since));
                        self.stall(s, &mut out);
                    }
                    Event::Error(e) => self.acc.notes.push(format!(
                        "VMM error event: {} ({}{}): {}",
                        e.kind,
                        e.device,
                        e.queue.map_or_else(String::new, |q| format!(", queue {q}")),
                        e.error
                    )),
                    // A reported stall ended by itself (transient): keep what rescued it.
                    Event::Recovered(r) => self.acc.notes.push(format!(
                        "stall on {} ({}) recovered after {} ms, rescued by {}",
                        r.queue,
                        r.kind.as_str(),
                        r.stalled_ms,
                        r.cause.as_str(),
                    )),
                    // The backend went away or came back: a record of its own, not a stall;
                    // the guest's stall reports while it is away are its absence.
                    Event::Backend(b) => {
                        let at = (ev.ts - self.started_unix).max(0.0);
                        match b.state {
                            // A second `disconnected` before `reconnected` (a new
                            // backend that failed its vring setup) is the same absence.
                            BackendState::Disconnected => {
                                if self.backend_away.last().is_none_or(|w| w.1.is_some()) {
                                    self.backend_away.push((at, None));
                                }
                            }
                            BackendState::Reconnected => {
                                if let Some(last) = self.backend_away.last_mut() {
                                    last.1.get_or_insert(at);
                                }
                            }
                        }
                        out.push(Out::Record(Box::new(Record::Backend(BackendRecord {
                            at,
                            state: b.state,
                            message: b.message,
                            downtime_ms: b.downtime_ms,
                        }))));
                    }
                    Event::Start(_) | Event::Exit(_) | Event::DeviceActivated(_) => {}
                }
                value
            }
            // Kept and reported, never dropped: once per kind, the rest is in the log.
            EventLine::Unknown(name, value) => {
                let name = name.unwrap_or_else(|| "(untagged)".into());
                if self.unknown_events.insert(name.clone()) {
                    self.acc.notes.push(format!(
                        "the VMM wrote an event this vnetbed cannot read (kind `{name}`; every \
                         one is kept in {VMM_EVENTS_FILE}): {}",
                        value.to_string().chars().take(300).collect::<String>()
                    ));
                }
                value
            }
            EventLine::Garbage => return out,
        };
        self.keep_event(value);
        out
    }

    /// An event of the testbed's DHCP server.
    pub fn dhcp(&mut self, ev: &DhcpEvent) {
        let at = (ev.time_unix_ms as f64 / 1000.0 - self.started_unix).max(0.0);
        self.tracker.server_event(ev, at);
    }

    /// A line of ping's output.
    pub fn ping(&mut self, text: &str) {
        match ping_line(text) {
            Some(PingLine::Reply { rtt_ms, .. }) => {
                self.acc.ping = Some(Ping {
                    rtt_ms: Some(rtt_ms),
                    lost: false,
                })
            }
            Some(PingLine::NoAnswer { .. }) => {
                self.acc.ping = Some(Ping {
                    rtt_ms: None,
                    lost: true,
                })
            }
            None => {}
        }
    }

    /// A message of the load thread, at run-elapsed second `at`.
    pub fn load(&mut self, msg: LoadMsg, at: f64) {
        match msg {
            LoadMsg::Started { run, kind } => {
                self.current_run = Some(run);
                self.current_kind = Some(kind);
                self.acc
                    .notes
                    .push(format!("iperf3 run {run} ({}) started", kind.name()));
            }
            LoadMsg::Interval { to_guest, bps, .. } => {
                if to_guest {
                    self.last_to_guest_at = Some(at);
                    self.acc.to_guest.push(bps);
                } else {
                    self.acc.from_guest.push(bps);
                }
            }
            LoadMsg::Ended { run, status, tail } => {
                self.current_run = None;
                if status != Some(0) {
                    self.acc.notes.push(format!(
                        "iperf3 run {run} ended with {status:?}: {}",
                        tail.join(" | ")
                    ));
                }
            }
        }
    }

    /// Whether iperf3 sent to the guest within the last guest-stall watch before `at`.
    fn load_to_guest_before(&self, at: f64) -> bool {
        self.last_to_guest_at
            .is_some_and(|t| t >= at - guest_stall::CONFIRM_S - 1.0)
    }

    /// Record what the host decided about the guest's stall reports: a confirmed one is a
    /// stall (unless the device watchdog already recorded the same one), the rest are notes.
    fn settled(&mut self, settled: Vec<Settled>, out: &mut Vec<Out>) {
        for s in settled {
            match s {
                Settled::Confirmed(stall) if self.backend_was_away(&stall) => {
                    self.acc.notes.push(format!(
                        "the guest's detector saw the vhost-user backend's absence (reported as \
                         its own record), not a lost notification: {}",
                        stall.signature()
                    ))
                }
                Settled::Confirmed(stall) => {
                    let seen_by_device = self.device_stalls.iter().any(|(queue, since)| {
                        *queue == stall.queue && (since - stall.stalled_since).abs() < SAME_STALL_S
                    });
                    if seen_by_device {
                        self.acc.notes.push(format!(
                            "the guest's detector saw the device watchdog's stall too: {}",
                            stall.signature()
                        ));
                    } else {
                        self.stall(stall, out);
                    }
                }
                Settled::Unconfirmed(stall, why) => self.acc.notes.push(format!(
                    "the guest's stall report was not confirmed by the host ({why}), so it does \
                     not count: {}",
                    stall.signature()
                )),
            }
        }
    }

    /// Whether `stall` began while the vhost-user backend was away (give or take the
    /// guest detector's timeout and a line's way to the host: [`BACKEND_SLACK_S`]). A stall
    /// that begins later is the new backend's, and counts.
    fn backend_was_away(&self, stall: &Stall) -> bool {
        self.backend_away.iter().any(|&(from, to)| {
            stall.stalled_since >= from - BACKEND_SLACK_S
                && to.is_none_or(|to| stall.stalled_since <= to + BACKEND_SLACK_S)
        })
    }

    /// The once-a-second tick: decide the guest's stall reports whose watch is over, and
    /// make the second's sample (the last [`Out::Record`]).
    pub fn tick(&mut self, tick: Tick) -> Vec<Out> {
        let mut out = Vec::new();
        let el = tick.now;
        if let Some(stats) = tick.tap {
            self.tracker.note_tap_dropped(stats.tx_dropped);
            self.guest_stalls.observe_tap(el, stats);
        }
        let load_to_guest = self.load_to_guest_before(el);
        let settled = self.guest_stalls.settle(el, load_to_guest);
        self.settled(settled, &mut out);
        self.tracker.tick(el);
        // dnsmasq deaths: the supervisor restarts it; the record says so.
        if tick.dnsmasq_restarts > self.dnsmasq_restarts {
            let n = tick.dnsmasq_restarts;
            self.acc.notes.push(format!(
                "dnsmasq exited; the testbed's supervisor restarted it ({n} restart{} so far)",
                if n == 1 { "" } else { "s" }
            ));
            self.dnsmasq_restarts = n;
        }
        let mut s = Sample {
            t: tick.t,
            elapsed: tick.second,
            ..Default::default()
        };
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        // UDP: iperf3's client reports what it sent, not what arrived, so the rate into the
        // guest is the guest's own received-bytes counter between its last two counters
        // lines. A second in which no new line arrived has no measurement (not a zero).
        let guest_rx_bps = self.guest_rx_bps.take();
        let udp_in = self.current_run.is_some() && self.current_kind.is_some_and(LoadKind::is_udp);
        if self.current_run.is_some()
            || !self.acc.to_guest.is_empty()
            || !self.acc.from_guest.is_empty()
        {
            s.throughput = Some(Throughput {
                // Before the guest's first counters there is no rate yet: not measured,
                // rather than a zero that would drag the median down.
                to_guest_bps: if udp_in {
                    guest_rx_bps
                } else {
                    mean(&self.acc.to_guest)
                },
                from_guest_bps: mean(&self.acc.from_guest),
                iperf_run: self.current_run,
            });
        }
        s.ping = self.acc.ping.take();
        s.dhcp = self.tracker.take_closed();
        for d in s
            .dhcp
            .iter()
            .filter(|d| d.phase.is_renewal() && RenewalOutcome::of(d).failed())
        {
            self.failed_renewals += 1;
            out.push(Out::KeepCapture {
                label: format!("failed-renewal-{}", self.failed_renewals),
                at: d.at,
            });
        }
        s.lease = self.tracker.lease();
        if !self.device.is_empty() {
            s.device = Some(DeviceCounters {
                queues: self.device.values().cloned().collect(),
            });
        }
        s.guest = self.guest_counters.clone();
        s.resources = tick.resources;
        self.pending_sample = Some(s);
        out
    }

    /// The sample of the last tick, with the notes of its second (call after the tick's
    /// [`Out::KeepCapture`]s are done, so that their notes are in it).
    pub fn take_sample(&mut self) -> Option<Record> {
        let mut s = self.pending_sample.take()?;
        s.notes = std::mem::take(&mut self.acc.notes);
        self.acc = SecondAcc::default();
        Some(Record::Sample(s))
    }

    /// The run is ending: decide the guest's stall reports still being watched from what the
    /// tap showed so far.
    pub fn settle_all(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        let settled = self
            .guest_stalls
            .settle_all(self.last_to_guest_at.is_some());
        self.settled(settled, &mut out);
        out
    }

    /// The last sample, at run-elapsed `end_at`: exchanges closed at the end, and the lease
    /// state the run ended in.
    pub fn last_sample(&mut self, t: f64, end_at: f64) -> Record {
        self.tracker.finish(end_at);
        Record::Sample(Sample {
            t,
            elapsed: end_at,
            dhcp: self.tracker.take_closed(),
            lease: self.tracker.lease(),
            ..Default::default()
        })
    }

    /// Take the VMM's last events too (after its exit).
    pub fn extend_last_events(&mut self, lines: &[String]) {
        for text in lines {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                self.keep_event(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::StallSource;

    fn records(outs: &[Out]) -> Vec<&Record> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Record(r) => Some(r.as_ref()),
                _ => None,
            })
            .collect()
    }

    fn tick(soak: &mut Accumulator, second: u64, tap: Option<TapStats>) -> (Vec<Out>, Sample) {
        let outs = soak.tick(Tick {
            now: second as f64,
            second: second as f64,
            t: 1.0e9 + second as f64,
            tap,
            ..Tick::default()
        });
        let Some(Record::Sample(s)) = soak.take_sample() else {
            panic!("no sample")
        };
        (outs, s)
    }

    #[test]
    fn the_first_lease_starts_the_load_once() {
        let mut soak = Accumulator::new("52:54:00:00:00:01", 1.0e9);
        let bound =
            r#"@probe {"t_us":1,"event":"dhcp_state","state":"bound","address":"198.18.0.7/24"}"#;
        assert_eq!(
            soak.serial(bound, 2.5),
            [Out::GuestBound("198.18.0.7".into())]
        );
        assert!(soak.guest_bound());
        assert_eq!(soak.lease(), Some(LeaseState::Bound));
        assert!(
            soak.serial(bound, 40.0).is_empty(),
            "bound again: no second load"
        );
        assert!(soak.serial("plain console text", 3.0).is_empty());
        let (_, s) = tick(&mut soak, 3, None);
        assert!(s
            .notes
            .iter()
            .any(|n| n == "guest bound 198.18.0.7 at 2.5 s"));
    }

    #[test]
    fn a_device_stall_is_recorded_at_once_with_its_capture_and_unknown_events_are_kept() {
        let mut soak = Accumulator::new("52:54:00:00:00:01", 100.0);
        let stall = r#"{"event":"stall","ts":101.5,"t_ms":5,"device":"virtio-net","queue":"rx","queue_index":0,"kind":"lost_interrupt","detected_at":101.5,"stalled_since":100.2,"stalled_ms":1300,"race_at":null,"device_next_avail":5,"device_next_used":9,"guest_avail_idx":9,"guest_used_event":4,"guest_avail_flags":0,"guest_visible_used_idx":9,"waiting_for_kick":false,"last_kick":null,"last_interrupt":100.1,"last_interrupt_used_idx":4,"notify_model":"unfenced","queue_backend":"vnetbed","on_stall":"report","counters":{}}"#;
        let outs = soak.vmm_event(stall);
        assert_eq!(
            outs[0],
            Out::KeepCapture {
                label: "stall-1".into(),
                at: 1.5
            }
        );
        let [Record::Stall(s)] = records(&outs)[..] else {
            panic!("{outs:?}")
        };
        assert_eq!((s.source, s.queue.as_str()), (StallSource::Device, "rx"));
        assert_eq!(soak.stalls(), 1);
        for _ in 0..3 {
            assert!(soak
                .vmm_event(r#"{"event":"telemetry","ts":1.0,"t_ms":1}"#)
                .is_empty());
        }
        assert!(soak.vmm_event("garbage").is_empty());
        assert_eq!(soak.last_events().len(), 4, "garbage is not an event");
        let (_, s) = tick(&mut soak, 2, None);
        let unknown = s.notes.iter().filter(|n| n.contains("`telemetry`")).count();
        assert_eq!(unknown, 1, "reported once per kind: {:?}", s.notes);
    }

    #[test]
    fn udp_into_the_guest_is_timed_by_the_guest_clock() {
        let mut soak = Accumulator::new("52:54:00:00:00:01", 0.0);
        soak.load(
            LoadMsg::Started {
                run: 1,
                kind: LoadKind::Udp,
            },
            1.0,
        );
        let counters = |t_us: u64, bytes: u64| {
            format!(
                r#"@probe {{"t_us":{t_us},"event":"counters","rx_bytes":{bytes},"rx_cb_enables":5}}"#
            )
        };
        soak.serial(&counters(1_000_000, 0), 1.2);
        // The line arrived late (at 4.0 s), but the guest's clock says 2 s passed: 25 MB/2 s.
        soak.serial(&counters(3_000_000, 25_000_000), 4.0);
        let (_, s) = tick(&mut soak, 4, None);
        let t = s.throughput.expect("throughput");
        assert_eq!(t.to_guest_bps, Some(100_000_000.0));
        assert_eq!(t.iperf_run, Some(1));
        assert_eq!(s.guest.as_ref().map(|g| g.rx_cb_enables), Some(5));
        // The next second has no new counters line: not measured, not zero.
        let (_, s) = tick(&mut soak, 5, None);
        assert_eq!(s.throughput.and_then(|t| t.to_guest_bps), None);
    }

    fn guest_stall_line(t_us: u64) -> String {
        format!(
            r#"@probe {{"t_us":{t_us},"event":"stall","detector":"guest","queue":"rx","kind":"lost_interrupt","lost_kick_signature":false,"stalled_since_us":{},"stalled_ms":1000,"guest_avail_idx":300,"guest_avail_flags":0,"guest_used_event":41,"guest_last_used_idx":40,"guest_visible_used_idx":44,"device_avail_event":300,"event_idx":true}}"#,
            t_us - 1_000_000
        )
    }

    fn tap(tx_packets: u64, tx_dropped: u64) -> Option<TapStats> {
        Some(TapStats {
            tx_packets,
            tx_dropped,
            rx_packets: 10,
        })
    }

    #[test]
    fn a_guest_report_becomes_a_stall_when_the_tap_confirms_it() {
        let mut soak = Accumulator::new("52:54:00:00:00:01", 0.0);
        tick(&mut soak, 10, tap(500, 0));
        assert!(soak.serial(&guest_stall_line(10_500_000), 10.5).is_empty());
        assert!(soak.guest_reports_pending());
        let (outs, _) = tick(&mut soak, 11, tap(500, 200));
        assert!(records(&outs).is_empty(), "decided before its watch ended");
        let (outs, _) = tick(&mut soak, 12, tap(500, 400));
        assert!(records(&outs).is_empty());
        let (outs, _) = tick(&mut soak, 13, tap(500, 600));
        let [Record::Stall(s)] = records(&outs)[..] else {
            panic!("{outs:?}")
        };
        assert_eq!(s.source, StallSource::Guest);
        assert!((s.stalled_since - 9.5).abs() < 1e-9);
        assert!(s
            .host_evidence
            .as_deref()
            .unwrap()
            .contains("tx_dropped +600"));
        assert_eq!(soak.stalls(), 1);
    }

    #[test]
    fn a_guest_report_of_the_watchdogs_stall_is_a_note() {
        let mut soak = Accumulator::new("52:54:00:00:00:01", 0.0);
        tick(&mut soak, 10, tap(500, 0));
        let device = r#"{"event":"stall","ts":10.6,"t_ms":5,"device":"virtio-net","queue":"rx","queue_index":0,"kind":"lost_interrupt","detected_at":10.6,"stalled_since":9.6,"stalled_ms":1000,"race_at":null,"device_next_avail":5,"device_next_used":9,"guest_avail_idx":9,"guest_used_event":4,"guest_avail_flags":0,"guest_visible_used_idx":9,"waiting_for_kick":false,"last_kick":null,"last_interrupt":null,"last_interrupt_used_idx":4,"notify_model":"unfenced","queue_backend":"vnetbed","on_stall":"report","counters":{}}"#;
        assert_eq!(records(&soak.vmm_event(device)).len(), 1);
        soak.serial(&guest_stall_line(10_500_000), 10.5);
        let mut notes = Vec::new();
        for second in 11..=13 {
            let (outs, s) = tick(&mut soak, second, tap(500, 100 * second));
            assert!(records(&outs).is_empty(), "recorded twice: {outs:?}");
            notes.extend(s.notes);
        }
        assert!(
            notes
                .iter()
                .any(|n| n.contains("saw the device watchdog's stall too")),
            "{notes:?}"
        );
        assert_eq!(soak.stalls(), 1);
    }

    fn backend_line(ts: f64, state: &str) -> String {
        format!(
            r#"{{"event":"backend","ts":{ts},"t_ms":1,"device":"virtio-net","socket":"/s","state":"{state}","message":"m","downtime_ms":{}}}"#,
            if state == "reconnected" {
                "1500"
            } else {
                "null"
            }
        )
    }

    #[test]
    fn a_backend_away_is_a_record_and_the_guests_report_of_it_is_a_note() {
        let mut soak = Accumulator::new("52:54:00:00:00:01", 0.0);
        tick(&mut soak, 9, tap(500, 0));
        let outs = soak.vmm_event(&backend_line(9.2, "disconnected"));
        let [Record::Backend(b)] = records(&outs)[..] else {
            panic!("{outs:?}")
        };
        assert_eq!((b.state, b.downtime_ms), (BackendState::Disconnected, None));
        assert!((b.at - 9.2).abs() < 1e-9);
        // The guest's detector sees the backend's absence (stalled since 9.5 s).
        soak.serial(&guest_stall_line(10_500_000), 10.5);
        let outs = soak.vmm_event(&backend_line(10.7, "reconnected"));
        let [Record::Backend(b)] = records(&outs)[..] else {
            panic!("{outs:?}")
        };
        assert_eq!(
            (b.state, b.downtime_ms),
            (BackendState::Reconnected, Some(1500))
        );
        let mut notes = Vec::new();
        for second in 10..=13 {
            let (outs, s) = tick(&mut soak, second, tap(500, 100 * second));
            assert!(records(&outs).is_empty(), "counted as a stall: {outs:?}");
            notes.extend(s.notes);
        }
        assert!(
            notes.iter().any(|n| n.contains("backend's absence")),
            "{notes:?}"
        );
        assert_eq!(soak.stalls(), 0);
        // A stall that begins well after the backend came back is the new backend's.
        soak.serial(&guest_stall_line(20_500_000), 20.5);
        let mut stalls = 0;
        for second in 20..=23 {
            let (outs, _) = tick(&mut soak, second, tap(500, 100 * second));
            stalls += records(&outs)
                .iter()
                .filter(|r| matches!(r, Record::Stall(_)))
                .count();
        }
        assert_eq!(stalls, 1);
    }
}
