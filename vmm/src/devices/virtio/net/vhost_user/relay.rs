//! The relay thread of a vhost-user virtio-net: the only thread that talks to the backend
//! once the guest runs. It owns the [`Connection`], starts and stops the vrings when the
//! transport activates and resets the device, and in its epoll loop:
//!
//! - passes each guest kick (the queue's kick eventfd, which KVM's ioeventfd writes) on to
//!   the backend's kick eventfd, counted (relay mode; in direct mode the backend reads the
//!   ioeventfd itself);
//! - passes each backend call (its call eventfd) on as the guest's interrupt (InterruptStatus
//!   bit, then the irqfd), counted;
//! - reports a vring error eventfd as a device error (DEVICE_NEEDS_RESET);
//! - notices the backend going away (its socket readable at end of file, or hung up): an
//!   `error` event (`backend_died`) and the VM's end with [`ExitReason::BackendDied`]; or,
//!   with `reconnect=SECS`, a `backend` event (`disconnected`), the watchdog suspended, and
//!   the [`reconnect`](super::reconnect) thread asked for a new connection. When it brings
//!   one, the features are checked (the new backend must offer every feature the first
//!   one gave the guest), the vrings restart where the guest's used rings stand, and a
//!   `backend` event (`reconnected`, with the downtime) follows; when it gives up, or the
//!   features fall short, the VM ends with status 14 as above;
//! - every 100 ms runs the [`Watch`] over both queues, and every second writes the
//!   `counters` events.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

use super::config::Mode;
use super::frontend::Connection;
use super::reconnect::{Outcome, Reconnector};
use super::watch::{queue_name, RingView, Verdict, Watch, WatchContext};
use crate::devices::virtio::net::metrics::{NetMetrics, QueueMetrics};
use crate::devices::virtio::queue::QueueConfig;
use crate::devices::virtio::{Signals, VIRTIO_RING_F_EVENT_IDX};
use crate::events::{BackendEvent, BackendState, Counters, DeviceError, Event, EventSink};
use crate::exit::ExitReason;
use crate::exit_notifier::ExitNotifier;

const WAKE: u64 = 0;
const SOCKET: u64 = 1;
const TICK: u64 = 2;
const KICK: u64 = 10;
const CALL: u64 = 20;
const ERR: u64 = 30;
const RECONNECTED: u64 = 40;

/// Watchdog period; counters every [`TICKS_PER_COUNTERS`] ticks.
const TICK_PERIOD: Duration = Duration::from_millis(100);
const TICKS_PER_COUNTERS: u64 = 10;

/// Everything the transport hands over at DRIVER_OK.
pub(super) struct Activation {
    pub mem: GuestMemoryMmap,
    pub features: u64,
    pub queues: [QueueConfig; 2],
    pub kicks: [EventFd; 2],
    pub signals: Signals,
}

/// A request from the transport (a vCPU thread) to the relay.
pub(super) enum Command {
    Activate(Box<Activation>),
    Reset,
    Stop,
}

/// A request and where its answer goes.
pub(super) type Request = (Command, Sender<Result<(), String>>);

/// What the relay is given when it starts.
pub(super) struct RelaySetup {
    pub conn: Connection,
    pub mode: Mode,
    pub stall_timeout: Duration,
    pub requests: Receiver<Request>,
    pub wake: EventFd,
    pub metrics: Arc<NetMetrics>,
    pub events: EventSink,
    pub exit: ExitNotifier,
    /// The reconnecting thread, with `reconnect=SECS`.
    pub reconnect: Option<Reconnector>,
    /// The features the device offers the guest that only the backend implements: a
    /// backend that reconnects must offer them all (the guest may have read them).
    pub backend_offered: u64,
}

/// The backend is away, and since when.
struct Away {
    since: Instant,
    why: String,
}

struct Active {
    mem: GuestMemoryMmap,
    queues: [QueueConfig; 2],
    guest_kicks: [EventFd; 2],
    signals: Signals,
    /// The features the guest's driver accepted.
    features: u64,
    event_idx: bool,
    last_used: [u16; 2],
}

struct Relay {
    s: RelaySetup,
    epoll: Epoll,
    tick: TimerFd,
    ticks: u64,
    backend_kicks: [EventFd; 2],
    calls: [EventFd; 2],
    errs: [EventFd; 2],
    active: Option<Active>,
    watch: [Watch; 2],
    /// The backend closed its socket and a reconnection is under way.
    away: Option<Away>,
}

fn new_eventfds() -> std::io::Result<[EventFd; 2]> {
    Ok([
        EventFd::new(libc::EFD_NONBLOCK)?,
        EventFd::new(libc::EFD_NONBLOCK)?,
    ])
}

/// Build the relay's epoll and eventfds (before it confines itself).
fn build(s: RelaySetup) -> std::io::Result<Relay> {
    let epoll = Epoll::new()?;
    let tick = TimerFd::new()?;
    let backend_kicks = new_eventfds()?;
    let calls = new_eventfds()?;
    let errs = new_eventfds()?;
    let add = |fd: RawFd, token: u64, set: EventSet| {
        epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(set, token))
    };
    add(s.wake.as_raw_fd(), WAKE, EventSet::IN)?;
    add(
        s.conn.socket_fd(),
        SOCKET,
        EventSet::IN | EventSet::READ_HANG_UP | EventSet::HANG_UP,
    )?;
    add(tick.as_raw_fd(), TICK, EventSet::IN)?;
    if let Some(r) = &s.reconnect {
        add(r.ready.as_raw_fd(), RECONNECTED, EventSet::IN)?;
    }
    for i in 0..2 {
        add(calls[i].as_raw_fd(), CALL + i as u64, EventSet::IN)?;
        add(errs[i].as_raw_fd(), ERR + i as u64, EventSet::IN)?;
    }
    Ok(Relay {
        s,
        epoll,
        tick,
        ticks: 0,
        backend_kicks,
        calls,
        errs,
        active: None,
        watch: Default::default(),
        away: None,
    })
}

/// The eventfds the backend reads the guest's kicks from: in direct mode KVM's ioeventfds
/// themselves (`guest_kicks`), in relay mode the relay's own (`backend_kicks`), which it
/// writes after counting each kick.
fn kicks_to_backend<'a>(
    mode: Mode,
    backend_kicks: &'a [EventFd; 2],
    guest_kicks: &'a [EventFd; 2],
) -> [&'a EventFd; 2] {
    match mode {
        Mode::Direct => [&guest_kicks[0], &guest_kicks[1]],
        Mode::Relay => [&backend_kicks[0], &backend_kicks[1]],
    }
}

/// The relay thread's body.
pub(super) fn run(setup: RelaySetup) {
    let events = setup.events.clone();
    let exit = setup.exit.clone();
    let mut relay = match build(setup) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("the vhost-user relay could not start: {e}");
            events.emit(Event::Error(DeviceError {
                device: "virtio-net".into(),
                kind: "device_thread".into(),
                error: msg.clone(),
                queue: None,
                needs_reset: false,
            }));
            exit.request(ExitReason::BackendDied(msg));
            return;
        }
    };
    crate::seccomp::apply_or_exit(crate::seccomp::ThreadKind::VhostUser);
    relay.run();
}

impl Relay {
    fn run(&mut self) {
        let mut ready = vec![EpollEvent::default(); 16];
        loop {
            let n = match self.epoll.wait(-1, &mut ready) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return self.died(&format!("the relay's epoll failed: {e}")),
            };
            for ev in ready.iter().take(n) {
                let token = ev.data();
                let done = match token {
                    WAKE => self.take_requests(),
                    SOCKET => self.socket_event(),
                    RECONNECTED => self.reconnected(),
                    TICK => {
                        let _ = self.tick.wait();
                        self.on_tick();
                        false
                    }
                    t if (KICK..KICK + 2).contains(&t) => {
                        self.kick((t - KICK) as usize);
                        false
                    }
                    t if (CALL..CALL + 2).contains(&t) => {
                        self.call((t - CALL) as usize);
                        false
                    }
                    t if (ERR..ERR + 2).contains(&t) => {
                        self.vring_error((t - ERR) as usize);
                        false
                    }
                    _ => false,
                };
                if done {
                    return;
                }
            }
        }
    }

    /// Serve the transport's requests; true when the relay must end.
    fn take_requests(&mut self) -> bool {
        let _ = self.s.wake.read();
        while let Ok((command, answer)) = self.s.requests.try_recv() {
            let result = match command {
                Command::Activate(a) => self.activate(*a),
                Command::Reset => {
                    self.reset();
                    Ok(())
                }
                Command::Stop => {
                    let _ = answer.send(Ok(()));
                    return true;
                }
            };
            let _ = answer.send(result);
        }
        false
    }

    fn activate(&mut self, a: Activation) -> Result<(), String> {
        if self.active.is_some() {
            self.reset();
        }
        let direct = self.s.mode == Mode::Direct;
        // With the backend away, the vrings start when it is back (from the used rings,
        // which a fresh device has at 0).
        if self.away.is_none() {
            self.start_vrings(&a.mem, a.features, &a.queues, [0, 0], &a.kicks)?;
        }
        if !direct {
            for (i, k) in a.kicks.iter().enumerate() {
                self.epoll
                    .ctl(
                        ControlOperation::Add,
                        k.as_raw_fd(),
                        EpollEvent::new(EventSet::IN, KICK + i as u64),
                    )
                    .map_err(|e| format!("cannot watch the guest's kicks: {e}"))?;
            }
        }
        self.tick
            .reset(TICK_PERIOD, Some(TICK_PERIOD))
            .map_err(|e| format!("cannot start the watchdog timer: {e}"))?;
        self.watch = Default::default();
        self.active = Some(Active {
            mem: a.mem,
            queues: a.queues,
            guest_kicks: a.kicks,
            signals: a.signals,
            features: a.features,
            event_idx: a.features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0,
            last_used: [0; 2],
        });
        Ok(())
    }

    /// Hand the backend the memory and both vrings, starting at `bases`, with the kick,
    /// call and error eventfds of this relay.
    fn start_vrings(
        &mut self,
        mem: &GuestMemoryMmap,
        features: u64,
        queues: &[QueueConfig; 2],
        bases: [u16; 2],
        guest_kicks: &[EventFd; 2],
    ) -> Result<(), String> {
        self.s
            .conn
            .start(
                mem,
                features,
                queues,
                bases,
                kicks_to_backend(self.s.mode, &self.backend_kicks, guest_kicks),
                [&self.calls[0], &self.calls[1]],
                [&self.errs[0], &self.errs[1]],
            )
            .map_err(|e| e.to_string())
    }

    fn reset(&mut self) {
        let Some(active) = self.active.take() else {
            return;
        };
        let _ = self.tick.reset(Duration::ZERO, None);
        if self.s.mode == Mode::Relay {
            for k in &active.guest_kicks {
                let _ = self.epoll.ctl(
                    ControlOperation::Delete,
                    k.as_raw_fd(),
                    EpollEvent::default(),
                );
            }
        }
        if self.away.is_none() {
            if let Err(e) = self.s.conn.stop() {
                tracing::warn!("vhost-user: stopping the vrings at reset failed: {e}");
            }
        }
    }

    fn view(&self, i: usize) -> Option<RingView> {
        let a = self.active.as_ref()?;
        RingView::read(&a.mem, &a.queues[i])
    }

    fn kick(&mut self, i: usize) {
        let Some(a) = &self.active else { return };
        let Ok(n) = a.guest_kicks[i].read() else {
            return;
        };
        QueueMetrics::add(&self.s.metrics.queue(i).kicks, n);
        // The guest's avail->idx store precedes its kick (its own fence); the eventfd read
        // above is a syscall, so the ring read below sees at least what the kick announced.
        let view = self.view(i);
        self.watch[i].kicked(view);
        if let Err(e) = self.backend_kicks[i].write(1) {
            tracing::warn!(
                "vhost-user: passing a {} kick on failed: {e}",
                queue_name(i)
            );
        }
    }

    fn call(&mut self, i: usize) {
        if self.calls[i].read().is_err() {
            return;
        }
        let Some(a) = &self.active else { return };
        QueueMetrics::inc(&self.s.metrics.queue(i).interrupts_sent);
        // The queue's own interrupt: on virtio-mmio's one line this is the used-buffer bit
        // and the line, as for any queue; a transport with a vector per queue picks this
        // queue's.
        if let Err(e) = a.signals.signal_queue(i) {
            tracing::warn!("vhost-user: raising the guest's interrupt failed: {e}");
        }
        let view = self.view(i);
        self.watch[i].called(view);
    }

    fn vring_error(&mut self, i: usize) {
        if self.errs[i].read().is_err() {
            return;
        }
        let msg = format!(
            "the vhost-user backend signalled an error on the {} vring",
            queue_name(i)
        );
        match &self.active {
            Some(a) => a.signals.fail("vhost_user_vring_error", &msg, Some(i)),
            None => tracing::warn!("{msg}"),
        }
    }

    /// The socket is readable or hung up: the backend never speaks unasked, so this is the
    /// backend going away (or a protocol violation). True: the relay ends.
    fn socket_event(&mut self) -> bool {
        let mut byte = [0u8; 1];
        // SAFETY: a one-byte buffer valid for the call; MSG_PEEK leaves any data in place.
        let n = unsafe {
            libc::recv(
                self.s.conn.socket_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        let why = match n {
            0 => "the backend closed its vhost-user socket".to_string(),
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    return false;
                }
                format!("the backend's vhost-user socket failed: {e}")
            }
            _ => "the backend sent a vhost-user message nobody asked for (vnetbed offers no backend-initiated channel)".to_string(),
        };
        if self.s.reconnect.is_some() {
            return self.disconnected(why);
        }
        self.died(&why);
        true
    }

    /// The backend went away and `reconnect=SECS` is set: stop listening to its socket,
    /// suspend the watchdog (a dead backend is not a lost kick or interrupt), say so, and ask
    /// the reconnecting thread for a new connection before the deadline. True: the relay
    /// ends (the thread is gone).
    fn disconnected(&mut self, why: String) -> bool {
        let Some(r) = &self.s.reconnect else {
            return false;
        };
        let _ = self.epoll.ctl(
            ControlOperation::Delete,
            self.s.conn.socket_fd(),
            EpollEvent::default(),
        );
        let since = self.away.as_ref().map_or_else(Instant::now, |a| a.since);
        let deadline = since + r.window;
        tracing::warn!("vhost-user: {why}; reconnecting for up to {:?}", r.window);
        self.s.events.emit(Event::Backend(BackendEvent {
            device: "virtio-net".into(),
            socket: r.socket.display().to_string(),
            state: BackendState::Disconnected,
            message: format!(
                "{why}; reconnecting for up to {} s, the watchdog is suspended",
                r.window.as_secs()
            ),
            downtime_ms: None,
        }));
        let sent = r.trigger.send(deadline).is_ok();
        self.away = Some(Away { since, why });
        self.watch = Default::default();
        if !sent {
            self.died("the vhost-user reconnecting thread has ended");
            return true;
        }
        false
    }

    /// The reconnecting thread answered. True: the relay ends.
    fn reconnected(&mut self) -> bool {
        let Some(r) = &self.s.reconnect else {
            return false;
        };
        let _ = r.ready.read();
        let window = r.window;
        let socket = r.socket.display().to_string();
        let Ok(outcome) = r.outcomes.try_recv() else {
            return false;
        };
        let Some(away) = self.away.take() else {
            return false;
        };
        let conn = match outcome {
            Outcome::Connected(conn) => conn,
            Outcome::GaveUp(last) => {
                self.died(&format!(
                    "{}; no backend came back within {} s (last attempt: {last})",
                    away.why,
                    window.as_secs()
                ));
                return true;
            }
        };
        // The features the guest may rely on: what it accepted, or (before its driver
        // started the device) what the device offered it, of those only the backend gives.
        let needed = self.active.as_ref().map_or(self.s.backend_offered, |a| {
            a.features & self.s.backend_offered
        });
        let missing = needed & !conn.backend_features();
        if missing != 0 {
            self.died(&format!(
                "{}; the backend that came back offers features {:#x}, without {missing:#x} that the first one offered and the guest may use: vnetbed cannot go on",
                away.why,
                conn.backend_features()
            ));
            return true;
        }
        self.s.conn = *conn;
        if let Err(e) = self.epoll.ctl(
            ControlOperation::Add,
            self.s.conn.socket_fd(),
            EpollEvent::new(
                EventSet::IN | EventSet::READ_HANG_UP | EventSet::HANG_UP,
                SOCKET,
            ),
        ) {
            self.died(&format!("cannot watch the new backend's socket: {e}"));
            return true;
        }
        if let Err(e) = self.restart_vrings() {
            // The new backend failed the vring setup (it went away again?): keep trying
            // until the first deadline.
            self.away = Some(away);
            return self.disconnected(format!("restarting the vrings on the new backend: {e}"));
        }
        let downtime_ms = away.since.elapsed().as_millis() as u64;
        tracing::warn!("vhost-user: the backend is back after {downtime_ms} ms");
        self.s.events.emit(Event::Backend(BackendEvent {
            device: "virtio-net".into(),
            socket,
            state: BackendState::Reconnected,
            message: format!(
                "a backend is connected again after {downtime_ms} ms; the vrings run on from the used rings, the watchdog is back"
            ),
            downtime_ms: Some(downtime_ms),
        }));
        false
    }

    /// Start the vrings of an active device on a new backend, each at the index of its used
    /// ring in guest memory: what the old backend completed is done, what it took and did
    /// not complete is taken again. Then kick the backend and interrupt the guest once, for
    /// buffers the guest made available and used entries the old backend published while
    /// the kicks and calls had nowhere to go.
    fn restart_vrings(&mut self) -> Result<(), String> {
        // Out of `self` for the restart (start_vrings needs the relay mutably), back after.
        let Some(a) = self.active.take() else {
            return Ok(());
        };
        let result = self.restart_vrings_of(&a);
        self.active = Some(a);
        result
    }

    fn restart_vrings_of(&mut self, a: &Active) -> Result<(), String> {
        let view = |i: usize| {
            RingView::read(&a.mem, &a.queues[i])
                .map(|v| v.used_idx)
                .ok_or_else(|| format!("the {} rings are outside guest memory", queue_name(i)))
        };
        let bases = [view(0)?, view(1)?];
        self.start_vrings(&a.mem, a.features, &a.queues, bases, &a.guest_kicks)?;
        for k in kicks_to_backend(self.s.mode, &self.backend_kicks, &a.guest_kicks) {
            let _ = k.write(1);
        }
        for i in 0..2 {
            if let Err(e) = a.signals.signal_queue(i) {
                tracing::warn!(
                    "vhost-user: interrupting the guest after the reconnect failed: {e}"
                );
            }
        }
        // The watchdog starts afresh from the rings as they are now, with the kick and the
        // interrupt just given: the old backend's history says nothing about the new one.
        self.watch = Default::default();
        for i in 0..2 {
            let v = RingView::read(&a.mem, &a.queues[i]);
            self.watch[i].kicked(v);
            self.watch[i].called(v);
        }
        Ok(())
    }

    fn died(&mut self, why: &str) {
        tracing::error!("vhost-user: {why}");
        match &self.active {
            // DEVICE_NEEDS_RESET for the guest, and the `error` event.
            Some(a) => a.signals.fail("backend_died", &why, None),
            None => self.s.events.emit(Event::Error(DeviceError {
                device: "virtio-net".into(),
                kind: "backend_died".into(),
                error: why.to_string(),
                queue: None,
                needs_reset: false,
            })),
        }
        self.s
            .exit
            .request(ExitReason::BackendDied(why.to_string()));
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let Some(a) = &mut self.active else { return };
        // The watchdog is suspended while the backend is away: nothing moves, and that is
        // the backend's absence, already reported, not a lost notification.
        let away = self.away.is_some();
        for i in 0..2 {
            let Some(v) = RingView::read(&a.mem, &a.queues[i]) else {
                continue;
            };
            // Used entries the backend published since the last look: buffers, not frames
            // (a merged rx frame spans several), counted as the queue's frames.
            let moved = v.used_idx.wrapping_sub(a.last_used[i]);
            a.last_used[i] = v.used_idx;
            QueueMetrics::add(&self.s.metrics.queue(i).frames, u64::from(moved));
            if away {
                continue;
            }
            let ctx = WatchContext {
                queue_index: i,
                event_idx: a.event_idx,
                sees_kicks: self.s.mode == Mode::Relay,
                stall_timeout: self.s.stall_timeout,
            };
            let counters = self.s.metrics.queue(i).values();
            match self.watch[i].look(v, &ctx, counters) {
                Verdict::Quiet => {}
                Verdict::Stall(s) => {
                    let m = self.s.metrics.queue(i);
                    QueueMetrics::inc(match s.kind {
                        crate::events::StallKind::LostKick => &m.stalls_lost_kick,
                        _ => &m.stalls_lost_interrupt,
                    });
                    tracing::warn!(
                        "vhost-user: {} {:?} stall ({} ms)",
                        s.queue,
                        s.kind,
                        s.stalled_ms
                    );
                    self.s.events.emit(Event::Stall(*s));
                }
                Verdict::Recovered(r) => {
                    QueueMetrics::inc(&self.s.metrics.queue(i).stalls_recovered);
                    self.s.events.emit(Event::Recovered(*r));
                }
            }
        }
        if self.ticks % TICKS_PER_COUNTERS == 0 {
            for i in 0..2 {
                self.s.events.emit(Event::Counters(Counters {
                    device: "virtio-net".into(),
                    queue: queue_name(i).into(),
                    counters: self.s.metrics.queue(i).values(),
                }));
            }
        }
    }
}
