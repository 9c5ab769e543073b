//! The stall watchdog, run on the device thread about every 100 ms.
//!
//! - **lost kick**: the queue waits for a kick with notifications enabled while the guest's
//!   `avail->idx`, read fresh, has moved past the device's `next_avail`, continuously for
//!   longer than `--stall-timeout`.
//! - **lost interrupt** (EVENT_IDX only): the guest-visible `used->idx` has moved past the
//!   guest's `used_event` since the last interrupt, so the guest asked for an interrupt that
//!   was never sent, and nothing changed (the guest consumed nothing) for longer than the
//!   timeout.
//!
//! The `stall` event also carries `race_at`: the device's last enable before a lost kick,
//! or its last publish before a lost interrupt — when the lost notification happened.
//!
//! A reported stall that ends without the watchdog's help (`--on-stall report`) is followed
//! by a `recovered` event that says what rescued the queue (`cause`): `kick` (the guest
//! kicked this queue after all, e.g. new tx), `interrupt` (an interrupt for this queue),
//! `shared_line_interrupt` (an interrupt for the *other* queue: on virtio-mmio's one line the
//! guest's handler walks every queue, so a tx interrupt rescues a lost rx interrupt), or
//! `guest_progress` (the guest moved on by itself, e.g. by polling). Such a stall was
//! transient; the `stalls_recovered` counter counts them, so that permanent stalls are
//! `stalls_lost_kick + stalls_lost_interrupt - stalls_recovered`.
//!
//! A condition must hold with an unchanged ring snapshot for the whole timeout, so a kick or
//! interrupt merely in flight is never reported. Detection latency after a stall begins is at
//! most `stall_timeout + watchdog_period` (plus the race window).

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::events::{RecoveryCause, StallKind};

use super::config::OnStall;
use super::core::{NetCore, RX};
use super::metrics::QueueMetrics;
use crate::devices::virtio::queue::{vring_need_event, QueueError};

/// What the guest-visible ring looked like at one watchdog look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingSnapshot {
    avail_idx: u16,
    avail_flags: u16,
    used_event: u16,
    used_idx: u16,
    next_avail: u16,
    next_used: u16,
}

/// Whether `now` continues the stall seen in `then`: the guest has made no progress. The
/// device may go on moving (a lost interrupt leaves it filling the ring, a lost kick leaves
/// the guest adding buffers), so only the waiting side's indices count.
fn same_stall(kind: StallKind, then: &RingSnapshot, now: &RingSnapshot) -> bool {
    match kind {
        // The device still waits at the same place for a kick that never came.
        StallKind::LostKick => then.next_avail == now.next_avail,
        // The guest has consumed nothing: neither re-armed interrupts further nor refilled.
        StallKind::LostInterrupt => {
            then.used_event == now.used_event && then.avail_idx == now.avail_idx
        }
        // Only the guest's detector names a stall without a signature; the watchdog never
        // makes one, so there is nothing of it to continue.
        StallKind::NoProgress => false,
    }
}

/// Per-queue watchdog bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct WatchState {
    candidate: Option<(StallKind, RingSnapshot, Instant)>,
    reported: Option<Reported>,
}

/// A stall the watchdog reported and that has not ended yet, with what the device had seen
/// of the guest at that moment (to tell later what rescued the queue).
#[derive(Debug, Clone, Copy)]
struct Reported {
    kind: StallKind,
    since: Instant,
    last_kick: Option<Instant>,
    last_interrupt: Option<Instant>,
    other_last_interrupt: Option<Instant>,
}

/// Whether `now` is later than `then` (a `None` is earlier than anything).
fn newer(now: Option<Instant>, then: Option<Instant>) -> bool {
    match (now, then) {
        (Some(n), Some(t)) => n > t,
        (Some(_), None) => true,
        _ => false,
    }
}

fn wall_secs(at: Instant) -> f64 {
    let now_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    now_wall - at.elapsed().as_secs_f64()
}

impl NetCore {
    /// One watchdog look at both queues.
    pub fn watchdog_tick(&mut self, now: Instant) -> Result<(), QueueError> {
        if self.broken {
            return Ok(());
        }
        for i in [RX, super::core::TX] {
            self.watch_queue(i, now)?;
        }
        Ok(())
    }

    fn snapshot(&mut self, i: usize) -> Result<RingSnapshot, QueueError> {
        let ring = &self.queue(i).queue;
        let (next_avail, next_used, l) = (ring.next_avail().0, ring.next_used().0, *ring.layout());
        let mem = &self.mem;
        Ok(RingSnapshot {
            avail_idx: l.load_u16(mem, l.avail_idx_addr(), Ordering::Acquire)?,
            avail_flags: l.load_u16(mem, l.avail_flags_addr(), Ordering::Acquire)?,
            used_event: l.load_u16(mem, l.used_event_addr(), Ordering::Acquire)?,
            // What the guest sees, i.e. not including stores still in the store buffer.
            used_idx: l.load_u16(mem, l.used_idx_addr(), Ordering::Acquire)?,
            next_avail,
            next_used,
        })
    }

    fn stall_condition(&mut self, i: usize, s: &RingSnapshot) -> Option<StallKind> {
        let event_idx = self.event_idx;
        let q = self.queue(i);
        // Waiting, yet the guest has posted entries beyond those the device already saw and
        // could not use: the kick that should have come did not.
        if q.waiting_kick && s.avail_idx != s.next_avail.wrapping_add(q.waiting_beyond) {
            return Some(StallKind::LostKick);
        }
        // Only with EVENT_IDX does the guest say how far it has consumed (used_event is its
        // last_used_idx when it re-enabled interrupts); without it a guest that consumed
        // everything while polling looks the same as one that missed an interrupt, so lost
        // interrupts are not judged there (lost kicks still are).
        let owed =
            event_idx && vring_need_event(s.used_event, s.used_idx, q.notify.last_interrupt_used.0);
        owed.then_some(StallKind::LostInterrupt)
    }

    fn watch_queue(&mut self, i: usize, now: Instant) -> Result<(), QueueError> {
        let snap = self.snapshot(i)?;
        let cond = self.stall_condition(i, &snap);
        let timeout = self.options.stall_timeout;
        let q = self.queue(i);
        // A reported stall goes on while the same condition holds with no progress.
        let goes_on = matches!(
            (cond, q.watch.candidate),
            (Some(kind), Some((k, s, _))) if k == kind && same_stall(kind, &s, &snap)
        );
        if !goes_on {
            if let Some(r) = q.watch.reported.take() {
                self.report_recovered(i, r, now);
            }
        }
        let q = self.queue(i);
        let since = match (cond, q.watch.candidate) {
            (None, _) => {
                q.watch = Default::default();
                return Ok(());
            }
            (Some(kind), Some((k, s, since))) if k == kind && same_stall(kind, &s, &snap) => since,
            (Some(kind), _) => {
                q.watch = super::watchdog::WatchState {
                    candidate: Some((kind, snap, now)),
                    reported: None,
                };
                return Ok(());
            }
        };
        if q.watch.reported.is_some() || now.duration_since(since) < timeout {
            return Ok(());
        }
        let kind = cond.unwrap_or(StallKind::LostKick);
        let (last_kick, last_interrupt) = (q.last_kick, q.last_interrupt);
        let other_last_interrupt = self.queue(1 - i).last_interrupt;
        self.queue(i).watch.reported = Some(Reported {
            kind,
            since,
            last_kick,
            last_interrupt,
            other_last_interrupt,
        });
        self.report_stall(i, kind, since, now, &snap);
        match self.options.on_stall {
            OnStall::Report => {}
            OnStall::Recover => {
                QueueMetrics::inc(&self.metrics.queue(i).recovered);
                self.queue(i).watch = Default::default();
                match kind {
                    // Deliver the lost kick: serve the queue as if the guest had kicked.
                    StallKind::LostKick => self.kicked(i)?,
                    StallKind::LostInterrupt => self.send_interrupt(i),
                    // Never made by the watchdog (see `same_stall`): nothing to deliver.
                    StallKind::NoProgress => {}
                }
            }
            OnStall::Exit => self.exit_requested = true,
        }
        Ok(())
    }

    fn report_stall(
        &mut self,
        i: usize,
        kind: StallKind,
        since: Instant,
        now: Instant,
        s: &RingSnapshot,
    ) {
        let metrics = self.metrics.clone();
        let c = metrics.queue(i);
        match kind {
            StallKind::LostKick => QueueMetrics::inc(&c.stalls_lost_kick),
            StallKind::LostInterrupt => QueueMetrics::inc(&c.stalls_lost_interrupt),
            // Never made by the watchdog (see `same_stall`).
            StallKind::NoProgress => {}
        }
        let model = self.notifier.model().to_string();
        let q = self.queue(i);
        let backend = q.queue.backend_name();
        let name = q.name();
        let time = |t: Option<Instant>| t.map(wall_secs);
        let stall = crate::events::Stall {
            device: "virtio-net".into(),
            queue: name.to_string(),
            queue_index: i,
            kind,
            detected_at: wall_secs(now),
            stalled_since: wall_secs(since),
            stalled_ms: now.duration_since(since).as_millis() as u64,
            // When the race most likely happened: the device's last enable (lost kick) or
            // its last publish of used->idx (lost interrupt). Finer than stalled_since,
            // which is the first watchdog look (every ~100 ms).
            race_at: time(match kind {
                StallKind::LostKick => q.waiting_since,
                StallKind::LostInterrupt | StallKind::NoProgress => q.last_publish,
            }),
            device_next_avail: s.next_avail,
            device_next_used: s.next_used,
            guest_avail_idx: s.avail_idx,
            guest_used_event: s.used_event,
            guest_avail_flags: s.avail_flags,
            guest_visible_used_idx: s.used_idx,
            waiting_for_kick: q.waiting_kick,
            last_kick: time(q.last_kick),
            last_interrupt: time(q.last_interrupt),
            last_interrupt_used_idx: q.notify.last_interrupt_used.0,
            notify_model: model,
            queue_backend: backend.to_string(),
            on_stall: self.options.on_stall.to_string(),
            counters: c.values(),
        };
        tracing::warn!(
            queue = name,
            kind = kind.as_str(),
            "virtio-net stall detected"
        );
        self.events.emit(crate::events::Event::Stall(stall));
    }

    /// A reported stall on queue `i` ended without the watchdog's help: say what rescued it.
    fn report_recovered(&mut self, i: usize, r: Reported, now: Instant) {
        let other_interrupt = self.queue(1 - i).last_interrupt;
        let q = self.queue(i);
        let cause = match r.kind {
            StallKind::LostKick if newer(q.last_kick, r.last_kick) => RecoveryCause::Kick,
            StallKind::LostInterrupt if newer(q.last_interrupt, r.last_interrupt) => {
                RecoveryCause::Interrupt
            }
            StallKind::LostInterrupt if newer(other_interrupt, r.other_last_interrupt) => {
                RecoveryCause::SharedLineInterrupt
            }
            _ => RecoveryCause::GuestProgress,
        };
        let name = q.name();
        let metrics = self.metrics.clone();
        let c = metrics.queue(i);
        QueueMetrics::inc(&c.stalls_recovered);
        tracing::info!(
            queue = name,
            kind = r.kind.as_str(),
            cause = cause.as_str(),
            "virtio-net stall recovered"
        );
        self.events
            .emit(crate::events::Event::Recovered(crate::events::Recovered {
                device: "virtio-net".into(),
                queue: name.to_string(),
                queue_index: i,
                kind: r.kind,
                cause,
                stalled_since: wall_secs(r.since),
                recovered_at: wall_secs(now),
                stalled_ms: now.duration_since(r.since).as_millis() as u64,
                counters: c.values(),
            }));
    }
}
