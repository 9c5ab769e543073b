//! Running one soak: the VMM and its helpers (ping, the load, the capture) as processes,
//! their output on one input channel, the [`Accumulator`] fed from it, a sample a second,
//! the stop policy asked after each round, and the teardown in order.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::accumulate::{Accumulator, Out, Tick};
use super::children::{in_netns, own_process_group, LineChild};
use super::event_pipe::{EventPipe, VMM_EVENTS_FILE};
use super::guest_stall::TapStats;
use super::input::{self, Input};
use super::load::{self, LoadKind, LoadMsg, LoadPlan};
use super::logfile::RotatingLog;
use super::stop::{self, Stop};
use super::{
    capture, resources, stop_signal, SoakError, SoakPlan, BOOT_SILENCE_S, HANG_AFTER_S,
    SERIAL_LOG_FILE,
};
use crate::net::{Testbed, TestbedConfig};
use crate::record::{
    unix_now, LogTotal, Note, Record, RunEnd, RunHeader, RunOutcome, TimelineWriter, VmmExit,
};
use crate::report::Progress;
use crate::sut::SutSpec;
use vmm::devices::virtio::net::NotifyModel;

/// A MAC address unique to this process (locally administered, QEMU's 52:54:00 prefix).
fn guest_mac() -> String {
    let p = std::process::id();
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (p >> 16) & 0xff,
        (p >> 8) & 0xff,
        p & 0xff
    )
}

/// The VMM process of a soak: its output and events go to the soak's input channel.
struct Vmm {
    child: LineChild,
    /// vnetbed's event stream (absent for another VMM).
    events: Option<EventPipe>,
    /// The thread forwarding the event stream to the input channel.
    events_forwarder: Option<std::thread::JoinHandle<()>>,
    /// When the VMM last said anything (a serial line or an event).
    last_output: Instant,
    /// Whether the VMM has printed anything yet (a firmware may boot silently for a while).
    spoke: bool,
    /// Keeps a QEMU system under test's threads pinned (`--pin-vcpu`) while it runs.
    pinner: Option<crate::qemu_pin::Pinner>,
}

impl Vmm {
    /// After the VMM has ended: wait until every event it wrote is in the input channel, and
    /// say what `vmm-events.jsonl` wrote and kept.
    fn finish_events(&mut self) -> Option<LogTotal> {
        let total = self.events.as_mut().and_then(|e| e.finish().1);
        if let Some(f) = self.events_forwarder.take() {
            let _ = f.join();
        }
        total
    }
}

/// Start the vhost-user backend a `dpdk` system under test needs (testpmd in the testbed's
/// namespace, its tap on the bridge); `None` for the others.
fn start_backend(
    plan: &SoakPlan,
    info: &crate::net::TestbedInfo,
) -> Result<Option<crate::dpdk::Testpmd>, SoakError> {
    let SutSpec::Dpdk { binary, .. } = &plan.sut else {
        return Ok(None);
    };
    let as_soak = |e: crate::dpdk::DpdkError| SoakError::Vmm(std::io::Error::other(e.to_string()));
    let binary = crate::dpdk::resolve_binary(binary.as_deref()).map_err(as_soak)?;
    crate::dpdk::Testpmd::start(
        &binary,
        &info.netns,
        &info.bridge,
        Some(&plan.out.join(TESTPMD_LOG_FILE)),
    )
    .map(Some)
    .map_err(as_soak)
}

/// testpmd's output, in the soak's directory.
const TESTPMD_LOG_FILE: &str = "testpmd.log";

fn start_vmm(
    plan: &SoakPlan,
    testbed: &Testbed,
    mac: &str,
    inputs: &Sender<Input>,
    backend: Option<&crate::dpdk::Testpmd>,
) -> Result<Vmm, SoakError> {
    let info = testbed.info();
    let tap = info.taps.first().cloned().unwrap_or_default();
    // The queue size of the shaping, for vnetbed's device on a tap or on a backend.
    let queue_size = plan
        .shaping
        .queue_size
        .map(|n| format!(",queue-size={n}"))
        .unwrap_or_default();
    let net_options = plan.sut.net_options();
    let tap_nic = || {
        format!(
            "tap={tap},netns={},mac={mac}{net_options}{queue_size}",
            info.netns
        )
    };
    let vhost_nic =
        |socket: &std::path::Path| format!("{},mac={mac}{queue_size}", socket.display());
    let (mut cmd, events) = match &plan.sut {
        SutSpec::Vnetbed { model, .. } => {
            let (cmd, events) = vnetbed_command(plan, *model, ["--net", &tap_nic()])?;
            (cmd, Some(events))
        }
        SutSpec::VhostUser {
            socket, reconnect, ..
        } => {
            let mut nic = vhost_nic(socket);
            if let Some(secs) = reconnect {
                nic.push_str(&format!(",reconnect={secs}"));
            }
            let (cmd, events) = vnetbed_command(plan, NotifyModel::Fenced, ["--vhost-user", &nic])?;
            (cmd, Some(events))
        }
        SutSpec::Dpdk { reconnect, .. } => {
            let Some(testpmd) = backend else {
                return Err(SoakError::Vmm(std::io::Error::other(
                    "the dpdk system under test has no testpmd running",
                )));
            };
            let mut nic = vhost_nic(testpmd.socket());
            if let Some(secs) = reconnect {
                nic.push_str(&format!(",reconnect={secs}"));
            }
            let (cmd, events) = vnetbed_command(plan, NotifyModel::Fenced, ["--vhost-user", &nic])?;
            (cmd, Some(events))
        }
        SutSpec::Qemu(q) => {
            let binary = q.resolve_binary()?;
            let mut append = match plan.stall_timeout {
                Some(t) => format!("probe.stall_timeout={}ms", t.as_millis()),
                None => String::new(),
            };
            if let Some(words) = &plan.shaping.guest_cmdline {
                append = format!("{append} {words}").trim().to_string();
            }
            let launch = crate::qemu::QemuLaunch {
                binary: &binary,
                machine: q.machine,
                device: q.device,
                modern: q.modern,
                extra: &q.extra,
                mem_mib: plan.mem_mib,
                kernel: &plan.kernel,
                initrd: plan.initrd.as_deref(),
                append: &append,
                tap: Some(&tap),
                mac: Some(mac),
                // The spec's own rx_queue_size wins over the run's shaping.
                rx_queue_size: q.rx_queue_size.or(plan.shaping.queue_size),
            };
            (launch.in_netns(&info.netns), None)
        }
    };
    own_process_group(&mut cmd);
    let (child, serial) = LineChild::spawn(&plan.sut.label(), cmd).map_err(SoakError::Vmm)?;
    input::forward(serial, inputs.clone(), Input::Serial);
    let mut events = events;
    let mut events_forwarder = None;
    if let Some(e) = events.as_mut() {
        e.spawned();
        if let Some(lines) = e.take_lines() {
            events_forwarder = Some(input::forward(lines, inputs.clone(), Input::VmmEvent));
        }
    }
    Ok(Vmm {
        child,
        events,
        events_forwarder,
        last_output: Instant::now(),
        spoke: false,
        pinner: None,
    })
}

/// What a vhost-user VMM said about its backend dying (its `backend_died` error event).
fn backend_death(events: &[serde_json::Value]) -> Option<String> {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "error" && e["kind"] == "backend_died")
        .and_then(|e| e["error"].as_str())
        .map(str::to_string)
}

/// `vnetbed run` for the soak, with its event stream through a pipe and its NIC given by
/// `nic` (`--net SPEC` or `--vhost-user SPEC`).
fn vnetbed_command(
    plan: &SoakPlan,
    model: NotifyModel,
    nic: [&str; 2],
) -> Result<(Command, EventPipe), SoakError> {
    let mut cmd = crate::self_command().map_err(SoakError::Vmm)?;
    // The event stream comes through a pipe, and its reader keeps vmm-events.jsonl bounded.
    let (events, events_path) =
        EventPipe::attach(&mut cmd, &plan.out.join(VMM_EVENTS_FILE)).map_err(SoakError::Vmm)?;
    cmd.arg("run").arg("--kernel").arg(&plan.kernel);
    if let Some(i) = &plan.initrd {
        cmd.arg("--initrd").arg(i);
    }
    cmd.args(["--mem", &plan.mem_mib.to_string()]);
    cmd.args(nic);
    // The guest's words: the shaping's, and those a transitional function's legacy
    // interface needs (SutSpec::guest_words).
    let words: Vec<&str> = [
        plan.sut.guest_words(),
        plan.shaping.guest_cmdline.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !words.is_empty() {
        cmd.args([
            "--cmdline",
            &format!("{} {}", crate::DEFAULT_GUEST_CMDLINE, words.join(" ")),
        ]);
    }
    cmd.args(["--notify-model", &model.to_string(), "--on-stall", "report"]);
    let text = |d: Duration| humantime::format_duration(d).to_string();
    if let Some(w) = plan.race_window {
        cmd.args(["--race-window", &text(w)]);
    }
    if let Some(t) = plan.stall_timeout {
        cmd.args(["--stall-timeout", &text(t)]);
    }
    cmd.args(["--events", &events_path, "--serial", "stdout"]);
    Ok((cmd, events))
}

/// Ping the guest once a second from the namespace; its lines go to the input channel.
fn start_ping(netns: &str, guest: &str, inputs: &Sender<Input>) -> std::io::Result<LineChild> {
    let mut cmd = in_netns(netns, "ping");
    cmd.args(["-n", "-O", "-i", "1", "-W", "1", guest]);
    own_process_group(&mut cmd);
    let (child, lines) = LineChild::spawn("ping", cmd)?;
    input::forward(lines, inputs.clone(), Input::Ping);
    Ok(child)
}

/// The guest tap's counters: `ip -s -j link show dev TAP` in the namespace.
fn tap_stats(ip: &crate::net::ip::Ip, netns: &str, tap: &str) -> Option<TapStats> {
    let json = ip
        .run_in(netns, &["-s", "-j", "link", "show", "dev", tap])
        .ok()?;
    TapStats::from_ip_json(&json)
}

/// Sets the flag when dropped: the load thread stops on every way out of [`drive`].
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The live progress line on stderr.
struct ProgressLine {
    quiet: bool,
    terminal: bool,
    last_len: usize,
}

impl ProgressLine {
    fn show(&mut self, line: &str, second: u64) {
        if self.quiet {
            return;
        }
        if self.terminal {
            // One line, rewritten in place.
            say_raw!(
                "\r{line}{}",
                " ".repeat(self.last_len.saturating_sub(line.len()))
            );
            self.last_len = line.len();
        } else if second % 10 == 0 {
            // A log file: one line every 10 s.
            say!("{line}");
        }
    }

    fn end(&self) {
        if !self.quiet && self.terminal {
            say!("");
        }
    }
}

/// A soak in progress: the processes it started, its inputs, its state and its outputs.
struct Run<'a> {
    plan: &'a SoakPlan,
    testbed: &'a Testbed,
    netns: String,
    tap: String,
    ip: Option<crate::net::ip::Ip>,
    soak: Accumulator,
    vmm: Vmm,
    vmm_exit: Option<VmmExit>,
    inputs: Receiver<Input>,
    inputs_tx: Sender<Input>,
    serial_log: RotatingLog,
    writer: &'a mut TimelineWriter,
    progress: Progress,
    progress_line: ProgressLine,
    capture: Option<capture::Capture>,
    stop_load: Arc<AtomicBool>,
    load_tx: Sender<LoadMsg>,
    load_thread: Option<std::thread::JoinHandle<()>>,
    ping: Option<LineChild>,
    /// A `dpdk` system under test's testpmd: stopped when the run is dropped, after
    /// [`Run::finish`] has stopped the VMM (or on any other way out).
    backend: Option<crate::dpdk::Testpmd>,
    /// QEMU's threads to pin apart once the guest has its lease (`--pin-vcpu`).
    pin_plan: Option<crate::qemu_pin::PinPlan>,
    t0: Instant,
    next_sample: u64,
}

impl Run<'_> {
    fn elapsed(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64()
    }

    /// Append a record and show it in the progress line's counts.
    fn write(&mut self, rec: &Record) -> Result<(), SoakError> {
        self.writer.append(rec)?;
        self.progress.observe(rec);
        Ok(())
    }

    /// Carry out what the accumulator asked for.
    fn apply(&mut self, outs: Vec<Out>) -> Result<(), SoakError> {
        for out in outs {
            match out {
                Out::Record(rec) => self.write(&rec)?,
                Out::GuestBound(ip) => self.start_traffic(ip),
                Out::KeepCapture { label, at } => {
                    if let Some(c) = self.capture.as_mut() {
                        let note = c.keep(&label, at);
                        self.soak.note(note);
                    }
                }
            }
        }
        Ok(())
    }

    /// The guest has a lease: pin QEMU's threads apart (`--pin-vcpu`), ping the guest, and
    /// start the load. The pinning starts here, not at QEMU's start, so that it does not
    /// slow the boot (the firmware's vCPU confined to one core of a busy host), and covers
    /// the whole load, where the races are.
    fn start_traffic(&mut self, ip: String) {
        if let Some(plan) = self.pin_plan.take() {
            match crate::qemu_pin::Pinner::start(self.vmm.child.pid(), plan) {
                Ok(p) => self.vmm.pinner = Some(p),
                Err(e) => self.soak.note(format!(
                    "pin-vcpu: cannot start the pinning thread: {e}; QEMU runs unpinned"
                )),
            }
        }
        match start_ping(&self.netns, &ip, &self.inputs_tx) {
            Ok(p) => self.ping = Some(p),
            Err(e) => self.soak.note(format!("cannot start ping: {e}")),
        }
        if self.plan.load != LoadKind::None {
            let lp = LoadPlan {
                netns: self.netns.clone(),
                guest: ip,
                kind: self.plan.load,
                rate: self.plan.rate.clone(),
                run_length: self.plan.run_length,
                burst: self.plan.shaping.burst.unwrap_or(load::DEFAULT_BURST),
            };
            self.load_thread = Some(load::spawn(
                lp,
                self.stop_load.clone(),
                self.load_tx.clone(),
            ));
        }
    }

    /// Take one input: log the serial console, feed the accumulator, carry out what it asks.
    fn take(&mut self, input: Input) -> Result<(), SoakError> {
        let outs = match input {
            Input::Serial(line) => {
                self.vmm.last_output = Instant::now();
                self.vmm.spoke = true;
                self.serial_log.line(&line.text);
                let at = self.elapsed(line.at);
                self.soak.serial(&line.text, at)
            }
            Input::VmmEvent(text) => {
                self.vmm.last_output = Instant::now();
                self.soak.vmm_event(&text)
            }
            Input::Dhcp(ev) => {
                self.soak.dhcp(&ev);
                Vec::new()
            }
            Input::Ping(line) => {
                self.soak.ping(&line.text);
                Vec::new()
            }
            Input::Load(msg) => {
                let at = self.elapsed(Instant::now());
                self.soak.load(msg, at);
                Vec::new()
            }
        };
        self.apply(outs)
    }

    /// Wait for inputs, at most until the next sample is due (and never long, so that a
    /// signal is seen at once), and take every one that came.
    fn take_inputs(&mut self) -> Result<(), SoakError> {
        let due = self.t0 + Duration::from_secs(self.next_sample);
        let wait = due
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        if let Ok(first) = self.inputs.recv_timeout(wait) {
            self.take(first)?;
            self.take_waiting()?;
        }
        Ok(())
    }

    /// Take every input already in the channel.
    fn take_waiting(&mut self) -> Result<(), SoakError> {
        while let Ok(input) = self.inputs.try_recv() {
            self.take(input)?;
        }
        Ok(())
    }

    /// After the run's end: the VMM's last output and events (its log, its last events), but
    /// not what the network said after the end (DHCP, ping, load), which the run does not
    /// judge.
    fn take_vmm_output_after_end(&mut self) -> Result<(), SoakError> {
        while let Ok(input) = self.inputs.try_recv() {
            if matches!(input, Input::Serial(_) | Input::VmmEvent(_)) {
                self.take(input)?;
            }
        }
        Ok(())
    }

    /// `dpdk,reconnect=SECS`: testpmd ended by itself (it crashed, or was killed), so start
    /// it again on the same socket, runtime directory and tap; the VMM reconnects to it and
    /// reports both, as `backend` events. Without `reconnect=` a dead testpmd ends the VMM
    /// (status 14), which [`Run::check_vmm`] records. The loop waits for testpmd's start
    /// (about a second here; at most its start limit).
    fn check_backend(&mut self) {
        if !matches!(
            self.plan.sut,
            SutSpec::Dpdk {
                reconnect: Some(_),
                ..
            }
        ) || self.vmm_exit.is_some()
        {
            return;
        }
        let Some(testpmd) = self.backend.as_mut() else {
            return;
        };
        if !testpmd.has_ended() {
            return;
        }
        let note = match testpmd.restart() {
            Ok(()) => format!(
                "dpdk-testpmd ended; vnetbed started it again (pid {})",
                testpmd.pid().unwrap_or(0)
            ),
            Err(e) => {
                // Not again: the VMM gives up at its deadline and ends with status 14.
                self.backend = None;
                format!("dpdk-testpmd ended and could not be started again: {e}")
            }
        };
        tracing::warn!("{note}");
        self.soak.note(note);
    }

    /// Has the VMM ended, or hung? Record it once, with everything it wrote until then.
    fn check_vmm(&mut self, now: Instant) -> Result<(), SoakError> {
        if self.vmm_exit.is_some() {
            return Ok(());
        }
        let silence_limit = if self.vmm.spoke {
            HANG_AFTER_S
        } else {
            BOOT_SILENCE_S
        };
        let (status, hung) = match self.vmm.child.try_wait() {
            Some(status) => (status, None),
            None if now.duration_since(self.vmm.last_output)
                > Duration::from_secs(silence_limit) =>
            {
                let status = self.vmm.child.stop(libc::SIGKILL, Duration::from_secs(2));
                (
                    status.unwrap_or_else(|| std::process::ExitStatus::from_raw(libc::SIGKILL)),
                    Some(format!(
                        "the VMM hung: no event and no serial output for {silence_limit} s; killed"
                    )),
                )
            }
            None => return Ok(()),
        };
        // No more pinning: its pid may go to another process now that it is reaped.
        if let Some(p) = self.vmm.pinner.take() {
            for text in p.stop() {
                self.soak.note(text);
            }
        }
        // Everything it wrote before it ended goes in first (its last events).
        self.vmm.finish_events();
        self.take_waiting()?;
        let backend_died = backend_death(self.soak.last_events());
        let cause = hung.unwrap_or_else(|| match (status.code(), status.signal()) {
            (Some(c), _) => match backend_died {
                Some(why) => format!("the VMM exited with status {c}: its backend died: {why}"),
                None => format!("the VMM exited with status {c}"),
            },
            (None, Some(s)) => format!("the VMM was killed by signal {s}"),
            _ => "the VMM ended".to_string(),
        });
        let exit = VmmExit {
            at: self.elapsed(now),
            status: status.code(),
            signal: status.signal(),
            cause,
            expected: false,
            last_events: self.soak.last_events().to_vec(),
        };
        self.write(&Record::VmmExit(exit.clone()))?;
        self.vmm_exit = Some(exit);
        Ok(())
    }

    /// One sample a second: what the host reads itself (the tap, dnsmasq, /proc), then the
    /// accumulator's sample.
    fn sample_if_due(&mut self, now: Instant) -> Result<(), SoakError> {
        let el = self.elapsed(now);
        if el < self.next_sample as f64 {
            return Ok(());
        }
        let status = self.testbed.status();
        let resources = if self.next_sample % resources::PERIOD_S == 0 {
            let vmm_pid = Some(self.vmm.child.pid()).filter(|_| self.vmm_exit.is_none());
            [
                ("vmm", vmm_pid),
                ("dnsmasq", status.dnsmasq_pid),
                ("orchestrator", Some(std::process::id())),
            ]
            .into_iter()
            .filter_map(|(name, pid)| resources::read(name, pid?))
            .collect()
        } else {
            Vec::new()
        };
        let tap = self
            .ip
            .as_ref()
            .and_then(|ip| tap_stats(ip, &self.netns, &self.tap));
        if let Some(p) = &self.vmm.pinner {
            for text in p.take_notes() {
                self.soak.note(text);
            }
        }
        let outs = self.soak.tick(Tick {
            now: el,
            second: self.next_sample as f64,
            t: unix_now(),
            tap,
            dnsmasq_restarts: status.dnsmasq_restarts,
            resources,
        });
        self.apply(outs)?;
        if let Some(rec) = self.soak.take_sample() {
            self.write(&rec)?;
        }
        self.next_sample += 1;
        let line = self.progress.line();
        self.progress_line.show(&line, self.next_sample);
        Ok(())
    }

    /// What the stop policy needs to know.
    fn stop_state(&self, now: Instant) -> stop::State {
        stop::State {
            elapsed: now.duration_since(self.t0),
            signal: stop_signal(),
            vmm_ended: self.vmm_exit.is_some(),
            guest_bound: self.soak.guest_bound(),
            stalls: self.soak.stalls(),
            lease: self.soak.lease(),
            guest_reports_pending: self.soak.guest_reports_pending(),
        }
    }

    /// Stop everything in order (load and ping, the capture, the VMM) and end the record.
    /// The testbed stays up for the caller.
    fn finish(mut self, stopped: Stop) -> Result<(), SoakError> {
        self.progress_line.end();
        let (outcome, detail) = match stopped {
            Stop::Signal(sig) => (
                RunOutcome::Interrupted,
                Some(format!("stopped by signal {sig}")),
            ),
            Stop::VmmEnded => (
                RunOutcome::Completed,
                self.vmm_exit
                    .as_ref()
                    .map(|e| format!("ended early: {}", e.cause)),
            ),
            Stop::NoLease => (
                RunOutcome::Error,
                Some(format!(
                    "the guest got no DHCP lease within {} s",
                    self.plan.dhcp_timeout.as_secs()
                )),
            ),
            Stop::Duration | Stop::IncidentComplete | Stop::FirstStall => {
                (RunOutcome::Completed, None)
            }
        };
        self.stop_load.store(true, Ordering::SeqCst);
        if let Some(t) = self.load_thread.take() {
            let _ = t.join();
        }
        self.ping = None;
        if let Some(c) = self.capture.take() {
            c.stop();
        }
        // Guest reports still being checked are decided from what the tap showed so far.
        let outs = self.soak.settle_all();
        self.apply(outs)?;
        let end_at = self.t0.elapsed().as_secs_f64();
        let events_total = if self.vmm_exit.is_none() {
            let status = self.vmm.child.stop(libc::SIGTERM, Duration::from_secs(5));
            // The VMM is gone: the rest of its output and its stream (its `exit` event).
            let total = self.vmm.finish_events();
            self.take_vmm_output_after_end()?;
            self.writer.append(&Record::VmmExit(VmmExit {
                at: end_at,
                status: status.and_then(|s| s.code()),
                signal: status.and_then(|s| s.signal()),
                cause: "stopped by the orchestrator at the end of the run".into(),
                expected: true,
                last_events: self.soak.last_events().to_vec(),
            }))?;
            total
        } else {
            self.vmm.finish_events()
        };
        // The VMM is gone: so is the pinning, and what it said goes in the record.
        if let Some(p) = self.vmm.pinner.take() {
            for text in p.stop() {
                self.soak.note(text);
            }
        }
        // The VMM is gone: its backend may go too.
        if let Some(mut testpmd) = self.backend.take() {
            testpmd.stop();
        }
        // Notes of the last, unsampled moments.
        for text in self.soak.take_notes() {
            self.writer
                .append(&Record::Note(Note { at: end_at, text }))?;
        }
        // A last sample: exchanges closed at the end, and the lease state the run ended in
        // (the loop may stop on the very line that reported the lease lost).
        let last = self.soak.last_sample(unix_now(), end_at);
        self.writer.append(&last)?;
        let _ = std::fs::write(
            self.plan.out.join("dnsmasq.log"),
            self.testbed.dnsmasq_output().join("\n"),
        );
        self.writer.append(&Record::End(RunEnd {
            t: unix_now(),
            elapsed: end_at,
            outcome,
            detail,
            logs: [Some(self.serial_log.total()), events_total]
                .into_iter()
                .flatten()
                .collect(),
        }))?;
        Ok(())
    }
}

/// The monotonic instant at which the record started (`started_unix`, wall clock).
fn record_start(started_unix: f64) -> Instant {
    let since = (unix_now() - started_unix).max(0.0);
    let now = Instant::now();
    now.checked_sub(Duration::from_secs_f64(since))
        .unwrap_or(now)
}

/// The soak itself: up to and including the record's end. Returns the testbed, still up,
/// for the caller to tear down after the reports are written.
///
/// Every source (the VMM's output and events, dnsmasq, ping, iperf3) feeds one channel; the
/// [`Accumulator`] makes the record of it, and [`stop::Policy`] says when to stop. What is
/// left here is starting and stopping processes, the clock, and writing.
pub(super) fn drive(
    plan: &SoakPlan,
    header: &RunHeader,
    writer: &mut TimelineWriter,
) -> Result<Testbed, SoakError> {
    let testbed = Testbed::up(TestbedConfig {
        name: plan.testbed_name.clone(),
        renew_after: plan.renew_after,
        rebind_after: plan.rebind_after,
        taps: 1,
        ..TestbedConfig::default()
    })?;
    run_on(plan, header, writer, &testbed)?;
    Ok(testbed)
}

/// [`drive`] on a testbed that is up.
fn run_on(
    plan: &SoakPlan,
    header: &RunHeader,
    writer: &mut TimelineWriter,
    testbed: &Testbed,
) -> Result<(), SoakError> {
    let (inputs_tx, inputs) = channel::<Input>();
    input::forward(testbed.subscribe(), inputs_tx.clone(), Input::Dhcp);
    let info = testbed.info();
    let netns = info.netns.clone();
    let mac = guest_mac();
    // A dpdk system under test's backend first: its tap is the one the guest's frames cross.
    let backend = start_backend(plan, info)?;
    // A user's backend's port, borrowed onto the bridge (given back with the testbed).
    let port = match &plan.sut {
        SutSpec::VhostUser {
            port: Some(port), ..
        } => {
            testbed.borrow_link(port)?;
            Some(port.clone())
        }
        _ => None,
    };
    let tap = match (&backend, port) {
        (Some(testpmd), _) => testpmd.tap().to_string(),
        (None, Some(port)) => port,
        (None, None) => info.taps.first().cloned().unwrap_or_default(),
    };
    // The capture starts before the guest, so that its boot's DHCP is in it.
    let capture = capture::Capture::start(plan.capture, &netns, &tap, &plan.out)?;
    let vmm = start_vmm(plan, testbed, &mac, &inputs_tx, backend.as_ref())?;
    writer.append(&Record::Note(Note {
        at: 0.0,
        text: format!("testbed {netns}; guest MAC {mac}; {}", info.lease_note),
    }))?;
    // What the header recorded is what is done: QEMU's threads pinned apart, from the
    // guest's lease on (see Run::start_traffic).
    let pin_plan = header
        .config
        .pin_vcpu
        .as_ref()
        .and_then(crate::qemu_pin::PinPlan::from_record);
    let stop_load = Arc::new(AtomicBool::new(false));
    // The load thread stops on every way out, an error included.
    let _stop_load_on_return = StopOnDrop(stop_load.clone());
    let (load_tx, load_rx) = channel::<LoadMsg>();
    input::forward(load_rx, inputs_tx.clone(), Input::Load);
    let mut run = Run {
        plan,
        testbed,
        netns,
        tap,
        ip: crate::net::ip::Ip::locate().ok(),
        soak: Accumulator::new(&mac, header.started_unix),
        vmm,
        vmm_exit: None,
        inputs,
        inputs_tx,
        serial_log: RotatingLog::create(&plan.out.join(SERIAL_LOG_FILE)),
        writer,
        progress: Progress::new(header),
        progress_line: ProgressLine {
            quiet: plan.quiet,
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            last_len: 0,
        },
        capture,
        stop_load,
        load_tx,
        load_thread: None,
        ping: None,
        backend,
        pin_plan,
        // One clock for the whole record: run-elapsed seconds count from the header's
        // `started_unix`, as the VMM's and dnsmasq's wall-clock times are converted, not
        // from the moment the testbed was up and the VMM started.
        t0: record_start(header.started_unix),
        next_sample: 1,
    };
    let policy = stop::Policy {
        stop_when: plan.stop_when,
        duration: plan.duration,
        dhcp_timeout: plan.dhcp_timeout,
    };
    let stopped = loop {
        run.take_inputs()?;
        let now = Instant::now();
        run.check_vmm(now)?;
        run.check_backend();
        run.sample_if_due(now)?;
        if let Some(stop) = policy.decide(&run.stop_state(now)) {
            break stop;
        }
    };
    run.finish(stopped)
}
