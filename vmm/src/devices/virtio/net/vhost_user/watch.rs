//! The watchdog for a backend vnetbed cannot see inside: it judges lost kicks and lost
//! interrupts from the rings in guest memory and from the kicks and calls the relay passed.
//!
//! - **Lost interrupt** (EVENT_IDX only): `used->idx` has crossed the guest's `used_event`
//!   since the `used->idx` seen at the backend's last call, so the guest asked to be
//!   interrupted; no call came, and neither index moved for the stall timeout. Without
//!   EVENT_IDX the guest's progress is not visible in the rings (it may have polled the used
//!   entries away), so none is judged.
//! - **Lost kick** (relay mode only): `avail->idx` has crossed the backend's `avail_event`
//!   since the `avail->idx` seen at the guest's last kick (EVENT_IDX), or the backend's
//!   `used->flags` asks for kicks and `avail->idx` moved since the last kick (without), so the
//!   guest owed a kick; none came, and the backend made no progress (`used->idx` flat) for
//!   the stall timeout.
//!
//! The backend's own indices (`last_avail_idx`, its shadow of `used->idx`) are private to
//! it; the `stall` event's `device_next_avail` and `device_next_used` carry `used->idx` as
//! read from guest memory.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::devices::virtio::queue::{vring_need_event, QueueConfig, VRING_USED_F_NO_NOTIFY};
use crate::events::{Recovered, RecoveryCause, Stall, StallKind};

/// Unix seconds now.
pub(super) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One look at a queue's rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct RingView {
    pub avail_flags: u16,
    pub avail_idx: u16,
    pub used_event: u16,
    pub used_flags: u16,
    pub used_idx: u16,
    pub avail_event: u16,
}

impl RingView {
    /// Read the indices of `q` from guest memory; `None` if the rings are not in memory
    /// (the transport checked them at QueueReady, so only a guest that moved them could).
    pub fn read(mem: &GuestMemoryMmap, q: &QueueConfig) -> Option<Self> {
        // Acquire loads: this is an observer on another CPU than both the guest and the
        // backend; each index is read on its own, and a stale value only delays a judgement
        // (every judgement needs the same state for the whole stall timeout).
        let load = |a: u64| mem.load::<u16>(GuestAddress(a), Ordering::Acquire).ok();
        let size = u64::from(q.size);
        Some(Self {
            avail_flags: load(q.avail_ring)?,
            avail_idx: load(q.avail_ring + 2)?,
            used_event: load(q.avail_ring + 4 + 2 * size)?,
            used_flags: load(q.used_ring)?,
            used_idx: load(q.used_ring + 2)?,
            avail_event: load(q.used_ring + 4 + 8 * size)?,
        })
    }
}

/// What the watch says after a look.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
    /// Nothing to say.
    Quiet,
    /// A stall was found.
    Stall(Box<Stall>),
    /// A reported stall ended without help.
    Recovered(Box<Recovered>),
}

#[derive(Debug, Clone, Copy)]
struct Suspect {
    kind: StallKind,
    since: Instant,
    since_unix: f64,
    /// The rings when it began: a stall is the same state for the whole timeout.
    view: RingView,
    reported: bool,
}

/// The watch over one queue.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// When the relay last passed a kick (Unix seconds), and `avail->idx` then.
    pub last_kick: Option<f64>,
    avail_at_kick: u16,
    /// When the relay last passed a call (Unix seconds), and `used->idx` then.
    pub last_call: Option<f64>,
    used_at_call: u16,
    kicks_seen: u64,
    calls_seen: u64,
    suspect: Option<Suspect>,
}

/// What the watch needs to know about the device.
#[derive(Debug, Clone, Copy)]
pub(super) struct WatchContext {
    pub queue_index: usize,
    pub event_idx: bool,
    pub sees_kicks: bool,
    pub stall_timeout: Duration,
}

impl Watch {
    /// The relay passed a kick; `view` is the rings right after.
    pub fn kicked(&mut self, view: Option<RingView>) {
        self.last_kick = Some(unix_now());
        self.kicks_seen += 1;
        if let Some(v) = view {
            self.avail_at_kick = v.avail_idx;
        }
    }

    /// The relay passed a call; `view` is the rings right after.
    pub fn called(&mut self, view: Option<RingView>) {
        self.last_call = Some(unix_now());
        self.calls_seen += 1;
        if let Some(v) = view {
            self.used_at_call = v.used_idx;
        }
    }

    fn owed(&self, v: &RingView, ctx: &WatchContext) -> Option<StallKind> {
        // Lost interrupt first: with both owed, the guest sleeping on an interrupt is what
        // holds the queue (the backend made its entries visible).
        if ctx.event_idx && vring_need_event(v.used_event, v.used_idx, self.used_at_call) {
            return Some(StallKind::LostInterrupt);
        }
        if !ctx.sees_kicks {
            return None;
        }
        let kick_owed = if ctx.event_idx {
            vring_need_event(v.avail_event, v.avail_idx, self.avail_at_kick)
        } else {
            v.used_flags & VRING_USED_F_NO_NOTIFY == 0 && v.avail_idx != self.avail_at_kick
        };
        kick_owed.then_some(StallKind::LostKick)
    }

    /// Look at the rings now.
    pub fn look(
        &mut self,
        v: RingView,
        ctx: &WatchContext,
        counters: crate::events::QueueCounterValues,
    ) -> Verdict {
        let now = Instant::now();
        let owed = self.owed(&v, ctx);
        let same = |s: &Suspect| {
            Some(s.kind) == owed && s.view.used_idx == v.used_idx && {
                match s.kind {
                    StallKind::LostInterrupt => s.view.used_event == v.used_event,
                    _ => s.view.avail_idx == v.avail_idx,
                }
            }
        };
        match self.suspect {
            Some(s) if same(&s) => {
                if !s.reported && now.duration_since(s.since) >= ctx.stall_timeout {
                    self.suspect = Some(Suspect {
                        reported: true,
                        ..s
                    });
                    return Verdict::Stall(Box::new(self.stall(&s, &v, ctx, counters)));
                }
                Verdict::Quiet
            }
            previous => {
                self.suspect = owed.map(|kind| Suspect {
                    kind,
                    since: now,
                    since_unix: unix_now(),
                    view: v,
                    reported: false,
                });
                match previous {
                    Some(s) if s.reported => {
                        let recovered_at = unix_now();
                        let cause = if s.kind == StallKind::LostKick
                            && self.last_kick.is_some_and(|k| k >= s.since_unix)
                        {
                            RecoveryCause::Kick
                        } else if self.last_call.is_some_and(|c| c >= s.since_unix) {
                            RecoveryCause::Interrupt
                        } else {
                            RecoveryCause::GuestProgress
                        };
                        Verdict::Recovered(Box::new(Recovered {
                            device: "virtio-net".into(),
                            queue: queue_name(ctx.queue_index).into(),
                            queue_index: ctx.queue_index,
                            kind: s.kind,
                            cause,
                            stalled_since: s.since_unix,
                            recovered_at,
                            stalled_ms: ((recovered_at - s.since_unix).max(0.0) * 1000.0) as u64,
                            counters,
                        }))
                    }
                    _ => Verdict::Quiet,
                }
            }
        }
    }

    fn stall(
        &self,
        s: &Suspect,
        v: &RingView,
        ctx: &WatchContext,
        counters: crate::events::QueueCounterValues,
    ) -> Stall {
        let detected_at = unix_now();
        Stall {
            device: "virtio-net".into(),
            queue: queue_name(ctx.queue_index).into(),
            queue_index: ctx.queue_index,
            kind: s.kind,
            detected_at,
            stalled_since: s.since_unix,
            stalled_ms: ((detected_at - s.since_unix).max(0.0) * 1000.0) as u64,
            race_at: match s.kind {
                StallKind::LostKick => self.last_kick,
                _ => self.last_call,
            },
            device_next_avail: v.used_idx,
            device_next_used: v.used_idx,
            guest_avail_idx: v.avail_idx,
            guest_used_event: v.used_event,
            guest_avail_flags: v.avail_flags,
            guest_visible_used_idx: v.used_idx,
            waiting_for_kick: s.kind == StallKind::LostKick,
            last_kick: self.last_kick,
            last_interrupt: self.last_call,
            last_interrupt_used_idx: self.used_at_call,
            notify_model: "vhost-user".into(),
            queue_backend: "vhost-user".into(),
            on_stall: "report".into(),
            counters,
        }
    }
}

/// `rx` or `tx`.
pub(super) fn queue_name(i: usize) -> &'static str {
    if i == 0 {
        "rx"
    } else {
        "tx"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> WatchContext {
        WatchContext {
            queue_index: 0,
            event_idx: true,
            sees_kicks: true,
            stall_timeout: Duration::from_millis(0),
        }
    }

    #[test]
    fn a_used_entry_the_guest_asked_for_without_a_call_is_a_lost_interrupt() {
        let mut w = Watch::default();
        // The guest wants an interrupt once used->idx passes 4; the backend published 5 and
        // never called.
        let v = RingView {
            used_event: 4,
            used_idx: 5,
            avail_idx: 8,
            avail_event: 0,
            ..RingView::default()
        };
        w.kicked(Some(v));
        assert_eq!(w.look(v, &ctx(), Default::default()), Verdict::Quiet);
        let Verdict::Stall(s) = w.look(v, &ctx(), Default::default()) else {
            panic!("no stall")
        };
        assert_eq!(s.kind, StallKind::LostInterrupt);
        // Reported once.
        assert_eq!(w.look(v, &ctx(), Default::default()), Verdict::Quiet);
        // The call comes: recovered by an interrupt.
        w.called(Some(v));
        let Verdict::Recovered(r) = w.look(v, &ctx(), Default::default()) else {
            panic!("not recovered")
        };
        assert_eq!(r.cause, RecoveryCause::Interrupt);
    }

    #[test]
    fn a_call_for_the_entries_is_no_stall() {
        let mut w = Watch::default();
        let v = RingView {
            used_event: 4,
            used_idx: 5,
            ..RingView::default()
        };
        w.called(Some(v));
        for _ in 0..3 {
            assert_eq!(w.look(v, &ctx(), Default::default()), Verdict::Quiet);
        }
    }

    #[test]
    fn buffers_past_avail_event_without_a_kick_are_a_lost_kick_only_when_kicks_are_seen() {
        let v = RingView {
            avail_event: 2,
            avail_idx: 3,
            used_event: 0,
            used_idx: 0,
            ..RingView::default()
        };
        let mut w = Watch::default();
        assert_eq!(w.look(v, &ctx(), Default::default()), Verdict::Quiet);
        let Verdict::Stall(s) = w.look(v, &ctx(), Default::default()) else {
            panic!("no stall")
        };
        assert_eq!(s.kind, StallKind::LostKick);
        let direct = WatchContext {
            sees_kicks: false,
            ..ctx()
        };
        let mut w = Watch::default();
        for _ in 0..3 {
            assert_eq!(w.look(v, &direct, Default::default()), Verdict::Quiet);
        }
    }

    #[test]
    fn progress_restarts_the_clock() {
        let c = WatchContext {
            stall_timeout: Duration::from_secs(3600),
            ..ctx()
        };
        let mut w = Watch::default();
        let mut v = RingView {
            used_event: 0,
            used_idx: 1,
            ..RingView::default()
        };
        for i in 0..5u16 {
            v.used_idx = 1 + i;
            assert_eq!(w.look(v, &c, Default::default()), Verdict::Quiet);
        }
    }
}
