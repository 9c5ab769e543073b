//! The device thread: one epoll loop over the backend fd, one kick EventFd per queue, a
//! periodic timerfd (watchdog every ~100 ms, counters every second), a one-shot timerfd for
//! the emulated store buffer's next drain deadline (so buffered stores become visible on
//! time even while the thread sleeps), and a stop EventFd.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::events::{Counters, DeviceError, Event};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

use super::backend::NetBackend;
use super::core::{NetCore, RX, TX};
use super::metrics::QueueMetrics;
use crate::devices::virtio::queue::QueueError;

const TOKEN_BACKEND: u64 = 0;
const TOKEN_KICK_RX: u64 = 1;
const TOKEN_KICK_TX: u64 = 2;
const TOKEN_TICK: u64 = 3;
const TOKEN_DRAIN: u64 = 4;
const TOKEN_STOP: u64 = 5;
const TOKEN_INTX_RESAMPLE: u64 = 6;

/// How the VMM learns that `--on-stall exit` fired: a flag plus an EventFd it can poll.
#[derive(Clone)]
pub struct StallExit {
    flag: Arc<AtomicBool>,
    event: Arc<EventFd>,
}

impl StallExit {
    /// A fresh, unfired stall-exit signal.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            flag: Arc::new(AtomicBool::new(false)),
            event: Arc::new(EventFd::new(libc::EFD_NONBLOCK)?),
        })
    }
    /// Whether the device asked the VMM to exit (the lead maps this to exit status 8).
    pub fn fired(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
    /// The EventFd written when it fires (poll it for readability).
    pub fn event(&self) -> &EventFd {
        &self.event
    }
    fn fire(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.event.write(1);
    }
}

/// A running device thread.
pub struct Worker {
    stop: EventFd,
    handle: JoinHandle<Box<dyn NetBackend>>,
}

impl Worker {
    /// Start the thread over `core`, with the queues' kick EventFds.
    pub fn spawn(core: NetCore, kicks: [EventFd; 2], exit: StallExit) -> std::io::Result<Self> {
        let stop = EventFd::new(libc::EFD_NONBLOCK)?;
        let stop2 = stop.try_clone()?;
        let handle = std::thread::Builder::new()
            .name("virtio-net".into())
            .spawn(move || run(core, kicks, stop2, exit))?;
        Ok(Self { stop, handle })
    }

    /// Stop the thread and get the backend back (for the next activation).
    pub fn stop(self) -> Option<Box<dyn NetBackend>> {
        let _ = self.stop.write(1);
        self.handle.join().ok()
    }
}

struct Loop {
    epoll: Epoll,
    tick: TimerFd,
    drain: TimerFd,
    drain_armed: Option<Instant>,
    backend_interest: Option<EventSet>,
    /// The backend hung up or failed (epoll HUP/ERR): no longer polled.
    backend_gone: bool,
    ticks: u64,
    ticks_per_counters: u64,
}

fn run(
    mut core: NetCore,
    kicks: [EventFd; 2],
    stop: EventFd,
    exit: StallExit,
) -> Box<dyn NetBackend> {
    crate::seccomp::apply_or_exit(crate::seccomp::ThreadKind::DeviceWorker);
    match setup(&core, &kicks, &stop) {
        Ok(mut l) => {
            event_loop(&mut core, &mut l, &kicks, &exit);
            core.notifier.buffer().flush(&core.mem);
            // A frame held for the guest (rx ring dry) or for the backend (tx EAGAIN) dies
            // with this activation: count it, as every drop is counted.
            if core.deferred.take().is_some() {
                QueueMetrics::inc(&core.metrics.rx.drops);
            }
            if core.tx_pending.take().is_some() {
                QueueMetrics::inc(&core.metrics.tx.drops);
            }
        }
        Err(e) => {
            tracing::error!("virtio-net device thread setup failed: {e}");
            core.events.emit(Event::Error(DeviceError {
                device: "virtio-net".into(),
                kind: "device_thread".into(),
                error: e.to_string(),
                queue: None,
                needs_reset: false,
            }));
        }
    }
    core.backend
}

fn setup(core: &NetCore, kicks: &[EventFd; 2], stop: &EventFd) -> std::io::Result<Loop> {
    let epoll = Epoll::new()?;
    let mut tick = TimerFd::new()?;
    let period = core.options.watchdog_period.max(Duration::from_millis(1));
    tick.reset(period, Some(period))?;
    let drain = TimerFd::new()?;
    for (fd, token) in [
        (kicks[RX].as_raw_fd(), TOKEN_KICK_RX),
        (kicks[TX].as_raw_fd(), TOKEN_KICK_TX),
        (tick.as_raw_fd(), TOKEN_TICK),
        (drain.as_raw_fd(), TOKEN_DRAIN),
        (stop.as_raw_fd(), TOKEN_STOP),
    ] {
        epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(EventSet::IN, token),
        )?;
    }
    epoll.ctl(
        ControlOperation::Add,
        core.backend.as_raw_fd(),
        EpollEvent::new(EventSet::IN, TOKEN_BACKEND),
    )?;
    if let Some(resample) = core.signals.resample_fd() {
        epoll.ctl(
            ControlOperation::Add,
            resample.as_raw_fd(),
            EpollEvent::new(EventSet::IN, TOKEN_INTX_RESAMPLE),
        )?;
    }
    let ticks_per_counters =
        (core.options.counters_period.as_millis() / period.as_millis().max(1)).max(1) as u64;
    Ok(Loop {
        epoll,
        tick,
        drain,
        drain_armed: None,
        backend_interest: Some(EventSet::IN),
        backend_gone: false,
        ticks: 0,
        ticks_per_counters,
    })
}

fn event_loop(core: &mut NetCore, l: &mut Loop, kicks: &[EventFd; 2], exit: &StallExit) {
    let mut events = vec![EpollEvent::default(); 8];
    // Serve anything that was queued before the thread started (frames, early kicks).
    step(core, Some(TX), |c| c.process_tx());
    step(core, Some(RX), |c| c.process_rx());
    loop {
        update_backend_interest(core, l);
        arm_drain(core, l);
        let n = match l.epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!("virtio-net epoll failed: {e}");
                return;
            }
        };
        for ev in &events[..n] {
            match ev.data() {
                TOKEN_STOP => return,
                TOKEN_KICK_RX | TOKEN_KICK_TX => {
                    let i = if ev.data() == TOKEN_KICK_RX { RX } else { TX };
                    if kicks[i].read().is_ok() && !core.broken {
                        QueueMetrics::inc(&core.metrics.queue(i).kicks);
                        core.queue(i).last_kick = Some(Instant::now());
                        step(core, Some(i), |c| c.kicked(i));
                    }
                }
                TOKEN_BACKEND => {
                    let set = ev.event_set();
                    if set.contains(EventSet::OUT) && core.tx_blocked() {
                        step(core, Some(TX), |c| c.process_tx());
                    }
                    if set.intersects(EventSet::IN | EventSet::ERROR | EventSet::HANG_UP)
                        && !core.rx_blocked()
                    {
                        step(core, Some(RX), |c| c.process_rx());
                    }
                    if set.intersects(EventSet::ERROR | EventSet::HANG_UP) {
                        // Frames still queued were taken above. Level-triggered HUP/ERR
                        // cannot be masked: stop polling the fd, or the loop would wake for
                        // it without end.
                        backend_gone(core, l, set);
                    }
                }
                TOKEN_TICK => {
                    let _ = l.tick.wait();
                    l.ticks += 1;
                    let now = Instant::now();
                    core.notifier.buffer().drain_due(&core.mem, now);
                    step(core, None, |c| c.watchdog_tick(now));
                    if core.exit_requested {
                        exit.fire();
                    }
                    if l.ticks % l.ticks_per_counters == 0 {
                        emit_counters(core);
                    }
                }
                TOKEN_INTX_RESAMPLE => {
                    // The guest ended an INTx interrupt: re-raise the line while
                    // InterruptStatus still holds an unread bit.
                    if let Err(e) = core.signals.resample() {
                        tracing::warn!("virtio-net: INTx resample failed: {e}");
                    }
                }
                TOKEN_DRAIN => {
                    let _ = l.drain.wait();
                    l.drain_armed = None;
                }
                _ => {}
            }
        }
        core.notifier.buffer().drain_due(&core.mem, Instant::now());
    }
}

/// Run one queue operation; a guest error stops the device until reset (NEEDS_RESET).
fn step(
    core: &mut NetCore,
    queue: Option<usize>,
    f: impl FnOnce(&mut NetCore) -> Result<(), QueueError>,
) {
    if core.broken {
        return;
    }
    if let Err(e) = f(core) {
        core.broken = true;
        core.signals.fail(e.kind(), &e, queue);
    }
}

fn emit_counters(core: &NetCore) {
    for (i, name) in [(RX, "rx"), (TX, "tx")] {
        core.events.emit(Event::Counters(Counters {
            device: "virtio-net".into(),
            queue: name.into(),
            counters: core.metrics.queue(i).values(),
        }));
    }
}

/// Level-triggered backend interest: readable only while rx can take frames (otherwise a
/// queued frame would wake us in a busy loop — Cloud Hypervisor #208), writable only while a
/// tx frame waits for room.
fn update_backend_interest(core: &NetCore, l: &mut Loop) {
    if l.backend_gone {
        return;
    }
    let mut want = EventSet::empty();
    if !core.rx_blocked() && !core.broken {
        want |= EventSet::IN;
    }
    if core.tx_blocked() && !core.broken {
        want |= EventSet::OUT;
    }
    if Some(want) == l.backend_interest {
        return;
    }
    let fd = core.backend.as_raw_fd();
    let r = l.epoll.ctl(
        ControlOperation::Modify,
        fd,
        EpollEvent::new(want, TOKEN_BACKEND),
    );
    match r {
        Ok(()) => l.backend_interest = Some(want),
        Err(e) => tracing::warn!("virtio-net: epoll modify failed: {e}"),
    }
}

/// The backend reported a hang-up or an error: take it out of the epoll set and say so once.
/// The device goes on serving its queues (rx stays empty, tx frames are dropped).
fn backend_gone(core: &NetCore, l: &mut Loop, set: EventSet) {
    let fd = core.backend.as_raw_fd();
    if let Err(e) = l
        .epoll
        .ctl(ControlOperation::Delete, fd, EpollEvent::default())
    {
        tracing::warn!("virtio-net: epoll delete of the backend failed: {e}");
    }
    l.backend_gone = true;
    l.backend_interest = None;
    let what = if set.contains(EventSet::HANG_UP) {
        "hung up"
    } else {
        "reported an error"
    };
    tracing::error!("virtio-net: the backend {what}; no more frames will arrive");
    core.events.emit(Event::Error(DeviceError {
        device: "virtio-net".into(),
        kind: "backend_gone".into(),
        error: format!("the backend {what}"),
        queue: None,
        needs_reset: false,
    }));
}

/// Arm the one-shot drain timer for the store buffer's next deadline.
fn arm_drain(core: &mut NetCore, l: &mut Loop) {
    let Some(deadline) = core.notifier.next_deadline() else {
        return;
    };
    if l.drain_armed.is_some_and(|t| t <= deadline) {
        return;
    }
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_nanos(1000));
    if l.drain.reset(wait, None).is_ok() {
        l.drain_armed = Some(deadline);
    }
}
