//! The guest stall detector at work: every `period` the main loop lets it look at the
//! NIC's rx and tx rings (logic in `probe::stall`, host-tested). It reads, never
//! consumes; a finding is one `@probe` `stall` line with the ring state, and with
//! `probe.on_stall=recover` the driver then does what the lost notification would have
//! made it do.

use probe::cmdline::{OnStall, Options};
use probe::stall::{Finding, Queue, Watch};

use crate::agent::Event;
use crate::virtio_net::{NetError, VirtioNet};

/// Look at most this often (and at least ten times per timeout).
const MAX_PERIOD_US: u64 = 100_000;
const MIN_PERIOD_US: u64 = 1_000;

/// The detector for one NIC.
pub struct StallWatch {
    timeout_us: u64,
    period_us: u64,
    on_stall: OnStall,
    next_look_us: u64,
    watches: [Watch; 2],
    /// Stalls reported.
    pub stalls: u64,
    /// Stalls recovered from (`probe.on_stall=recover`).
    pub recovered: u64,
    transport: &'static str,
}

impl StallWatch {
    /// A detector configured by `probe.stall_timeout` and `probe.on_stall`; `transport`
    /// names the NIC's transport in reports.
    pub fn new(options: &Options, transport: &'static str, now_us: u64) -> Self {
        let timeout_us = options.stall_timeout_us;
        let period_us = (timeout_us / 10).clamp(MIN_PERIOD_US, MAX_PERIOD_US);
        StallWatch {
            timeout_us,
            period_us,
            on_stall: options.on_stall,
            next_look_us: now_us + period_us,
            watches: [Watch::new(); 2],
            stalls: 0,
            recovered: 0,
            transport,
        }
    }

    /// Microseconds until the next look (None when the detector is off).
    pub fn poll_delay_us(&self, now_us: u64) -> Option<u64> {
        (self.timeout_us > 0).then(|| self.next_look_us.saturating_sub(now_us))
    }

    /// Look if it is time.
    pub fn poll(&mut self, net: &mut VirtioNet, now_us: u64) -> Result<(), NetError> {
        if self.timeout_us == 0 || now_us < self.next_look_us {
            return Ok(());
        }
        self.next_look_us = now_us + self.period_us;
        for (index, queue) in [Queue::Rx, Queue::Tx].into_iter().enumerate() {
            let view = net.view(queue);
            let (last_interrupt, last_kick) = net.last_interrupt_and_kick_us(queue);
            let Some(finding) =
                self.watches[index].look(queue, &view, now_us, last_interrupt, self.timeout_us)
            else {
                continue;
            };
            self.stalls += 1;
            self.report(queue, &finding, net, now_us, last_interrupt, last_kick);
            if self.on_stall == OnStall::Recover {
                net.recover(queue, finding.kind)?;
                self.recovered += 1;
                self.watches[index].reset();
            }
        }
        Ok(())
    }

    fn report(
        &self,
        queue: Queue,
        finding: &Finding,
        net: &VirtioNet,
        now_us: u64,
        last_interrupt: Option<u64>,
        last_kick: Option<u64>,
    ) {
        let view = net.view(queue);
        let mut event = Event::new("stall")
            .str("detector", "guest")
            .str("transport", self.transport)
            .str("queue", queue.name())
            .str("kind", finding.kind.name())
            .bool("lost_kick_signature", finding.lost_kick_signature)
            .str("last_kick_decision", view.last_decision.name())
            .u64("stalled_since_us", finding.since_us)
            .u64("stalled_ms", now_us.saturating_sub(finding.since_us) / 1000)
            .u64("stall_timeout_ms", self.timeout_us / 1000)
            .u64("guest_avail_idx", u64::from(view.avail_idx))
            .u64("guest_avail_flags", u64::from(view.avail_flags))
            .u64("guest_used_event", u64::from(view.used_event))
            .u64("guest_last_used_idx", u64::from(view.last_used_idx))
            .u64("guest_visible_used_idx", u64::from(view.used_idx))
            .u64("device_avail_event", u64::from(view.avail_event))
            .u64("device_used_flags", u64::from(view.used_flags))
            .u64("kicked_avail_idx", u64::from(view.kicked_avail_idx))
            .u64("decided_request", u64::from(view.decided_request))
            .bool("callbacks_enabled", view.callbacks_enabled)
            .bool("event_idx", view.event_idx);
        for (key, at) in [
            ("last_interrupt_us", last_interrupt),
            ("last_kick_us", last_kick),
        ] {
            if let Some(at) = at {
                event = event.u64(key, at);
            }
        }
        event
            .str("on_stall", self.on_stall.name())
            .u64("stalls", self.stalls)
            .emit();
    }
}
