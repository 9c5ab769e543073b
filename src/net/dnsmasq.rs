//! dnsmasq: its command line, and a supervision thread that keeps it running.
//!
//! dnsmasq runs as a child process (`std::process`) inside the testbed namespace: the child
//! joins the namespace with `setns` between fork and exec, gets its own process group (so a
//! Ctrl-C on the holder's terminal reaches only the holder, which then stops dnsmasq in order),
//! and `PR_SET_PDEATHSIG` so that it dies with the supervision thread if the holder is killed.
//! It runs with `--no-daemon`, DNS off (`--port=0`), bound to the bridge, logging every DHCP
//! message (`--log-dhcp`) to stderr, which a reader thread timestamps, appends to
//! `dnsmasq.log`, parses into [`DhcpEvent`]s and appends to `events.jsonl`. dnsmasq writes no
//! pid file with `--no-daemon`, so the supervisor writes `dnsmasq.pid` itself.
//!
//! If dnsmasq exits while the testbed is up, the supervisor starts it again at once (at most
//! one start per 200 ms) with the same lease file, so clients keep their addresses, and counts
//! the restart.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::dhcp_events::{parse_line, DhcpEvent, EventHub};
use super::error::{NetError, Result};
use super::schedule::LeaseSchedule;
use super::state::StateDir;

/// How long `up` waits for dnsmasq to bind its DHCP socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Minimum time between two starts, so a dnsmasq that dies at once does not spin.
const RESTART_GAP: Duration = Duration::from_millis(200);
/// How often the supervisor looks at its child.
const POLL: Duration = Duration::from_millis(20);
/// How long dnsmasq gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How many of dnsmasq's last output lines are kept in memory for error messages.
const KEPT_LINES: usize = 200;

/// Everything that goes on dnsmasq's command line.
#[derive(Debug, Clone)]
pub struct DnsmasqConfig {
    /// The dnsmasq binary.
    pub program: PathBuf,
    /// The testbed name (for messages).
    pub testbed: String,
    /// The namespace handle to join.
    pub netns_path: PathBuf,
    /// The bridge to serve.
    pub bridge: String,
    /// First and last address of the DHCP range.
    pub range: (Ipv4Addr, Ipv4Addr),
    /// Netmask of the subnet.
    pub netmask: Ipv4Addr,
    /// Lease time and T1/T2.
    pub schedule: LeaseSchedule,
    /// Where the lease file, pid file and logs go.
    pub state: StateDir,
}

impl DnsmasqConfig {
    /// dnsmasq's arguments.
    pub fn args(&self) -> Vec<String> {
        let s = &self.schedule;
        vec![
            "--no-daemon".into(),
            // Read no /etc/dnsmasq.conf or /etc/dnsmasq.d: the testbed is fully specified here.
            "--conf-file=/dev/null".into(),
            "--port=0".into(),
            "--bind-interfaces".into(),
            format!("--interface={}", self.bridge),
            format!(
                "--dhcp-range={},{},{},{}",
                self.range.0, self.range.1, self.netmask, s.lease_secs
            ),
            format!("--dhcp-option=option:T1,{}", s.renew_secs),
            format!("--dhcp-option=option:T2,{}", s.rebind_secs),
            "--dhcp-authoritative".into(),
            // No ICMP probe of an address before offering it: the testbed's subnet holds only
            // the guests it leases to, and the probe delays the first OFFER until the
            // client's retransmission (about 3 s), which hides the guest's own DHCP timing.
            "--no-ping".into(),
            format!("--dhcp-leasefile={}", self.state.lease_file().display()),
            "--log-dhcp".into(),
            "--log-facility=-".into(),
        ]
    }
}

/// Live counters shared between the supervisor thread and the testbed handle.
#[derive(Debug, Default)]
pub struct SupervisorShared {
    stop: AtomicBool,
    ready: AtomicBool,
    pid: AtomicU32,
    restarts: AtomicU64,
    lines: Mutex<VecDeque<String>>,
}

impl SupervisorShared {
    /// The pid of the running dnsmasq, if one runs.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|&p| p != 0)
    }

    /// How often dnsmasq was restarted after dying.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// dnsmasq's last output lines.
    pub fn recent_lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn keep_line(&self, line: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }
}

/// What the first start reports to `up`.
enum StartReport {
    Ready,
    Failed(String),
}

/// A running supervision thread.
pub struct Supervisor {
    shared: Arc<SupervisorShared>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Start dnsmasq under supervision and wait until it serves DHCP. `on_change` runs on
    /// the supervision thread after every (re)start, e.g. to rewrite the status file.
    pub fn start(
        config: DnsmasqConfig,
        hub: EventHub,
        on_change: Box<dyn Fn(&SupervisorShared) + Send>,
    ) -> Result<Self> {
        let shared = Arc::new(SupervisorShared::default());
        let (report_tx, report_rx) = sync_channel(1);
        let thread_shared = Arc::clone(&shared);
        let testbed = config.testbed.clone();
        let thread = std::thread::Builder::new()
            .name(format!("dnsmasq-{testbed}"))
            .spawn(move || supervise(config, hub, thread_shared, report_tx, on_change))
            .map_err(|e| NetError::io("cannot start the dnsmasq supervision thread", e))?;
        let mut supervisor = Supervisor {
            shared,
            thread: Some(thread),
        };
        match report_rx.recv_timeout(START_TIMEOUT) {
            Ok(StartReport::Ready) => Ok(supervisor),
            Ok(StartReport::Failed(why)) => {
                let output = supervisor.shared.recent_lines().join("\n");
                supervisor.stop();
                Err(NetError::DnsmasqStart {
                    testbed,
                    why,
                    output,
                })
            }
            Err(_) => {
                let output = supervisor.shared.recent_lines().join("\n");
                supervisor.stop();
                Err(NetError::DnsmasqStart {
                    testbed,
                    why: format!("it did not report a bound DHCP socket within {START_TIMEOUT:?}"),
                    output,
                })
            }
        }
    }

    /// The shared counters.
    pub fn shared(&self) -> &SupervisorShared {
        &self.shared
    }

    /// Stop dnsmasq (SIGTERM, then SIGKILL after 3 s) and the supervision thread.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the dnsmasq supervision thread panicked");
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn spawn(config: &DnsmasqConfig) -> std::io::Result<Child> {
    let netns = File::open(&config.netns_path)?;
    let netns_fd = netns.as_raw_fd();
    let mut command = Command::new(&config.program);
    command
        .args(config.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command.process_group(0);
    // Our pid, taken before the fork: the child's parent must still be us once the
    // parent-death signal is armed (below).
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe system calls (setns through `vmm::netns::enter`, prctl and getppid
    // through `vmm::signals::die_with_parent`) and allocates nothing (errors are built from a
    // raw errno); `netns_fd` stays open in the parent until `spawn` returns, so the child's
    // copy is valid to borrow. If the parent died between the fork and the prctl, the child
    // was reparented and would never get the parent-death signal, so `die_with_parent`
    // compares getppid() with the parent's pid and the child gives up before exec: dnsmasq
    // never outlives its holder.
    unsafe {
        command.pre_exec(move || {
            vmm::netns::enter(BorrowedFd::borrow_raw(netns_fd))?;
            vmm::signals::die_with_parent(libc::SIGTERM, parent)
        });
    }
    let child = command.spawn();
    drop(netns);
    child
}

/// Read dnsmasq's stderr until it closes: log, parse, publish. Signals readiness once.
fn read_output(
    child_stderr: std::process::ChildStderr,
    state: StateDir,
    hub: EventHub,
    shared: Arc<SupervisorShared>,
    ready: Option<SyncSender<StartReport>>,
) {
    let open = |p: PathBuf| OpenOptions::new().create(true).append(true).open(p).ok();
    let mut log = open(state.dnsmasq_log());
    let mut events = open(state.events_file());
    let mut ready = ready;
    for line in BufReader::new(child_stderr).lines() {
        let Ok(line) = line else { break };
        let time = SystemTime::now();
        let ms = now_ms();
        if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "{}.{:03} {line}", ms / 1000, ms % 1000);
        }
        shared.keep_line(&line);
        if line.contains("DHCP, sockets bound exclusively to interface") {
            shared.ready.store(true, Ordering::SeqCst);
            if let Some(tx) = ready.take() {
                let _ = tx.send(StartReport::Ready);
            }
        }
        if let Some(event) = parse_line(&line, time) {
            write_event(events.as_mut(), &event);
            hub.publish(event);
        }
    }
}

fn write_event(file: Option<&mut File>, event: &DhcpEvent) {
    if let (Some(file), Ok(json)) = (file, serde_json::to_string(event)) {
        let _ = writeln!(file, "{json}");
    }
}

fn stop_child(child: &mut Child) {
    // SAFETY: kill on the pid of our own child, which has not been reaped yet (so the pid
    // cannot have been recycled).
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn supervise(
    config: DnsmasqConfig,
    hub: EventHub,
    shared: Arc<SupervisorShared>,
    report: SyncSender<StartReport>,
    on_change: Box<dyn Fn(&SupervisorShared) + Send>,
) {
    let mut first = Some(report);
    let mut last_start: Option<Instant> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        if let Some(at) = last_start {
            let since = at.elapsed();
            if since < RESTART_GAP {
                std::thread::sleep(RESTART_GAP - since);
            }
        }
        last_start = Some(Instant::now());
        let mut child = match spawn(&config) {
            Ok(child) => child,
            Err(e) => {
                let why = format!("cannot run {}: {e}", config.program.display());
                tracing::error!(testbed = %config.testbed, "{why}");
                if let Some(tx) = first.take() {
                    let _ = tx.send(StartReport::Failed(why));
                    return;
                }
                continue;
            }
        };
        let pid = child.id();
        shared.pid.store(pid, Ordering::SeqCst);
        let _ = std::fs::write(config.state.dnsmasq_pid_file(), format!("{pid}\n"));
        let reader = child.stderr.take().map(|stderr| {
            let (state, hub, shared) = (config.state.clone(), hub.clone(), Arc::clone(&shared));
            let ready = first.clone();
            std::thread::spawn(move || read_output(stderr, state, hub, shared, ready))
        });
        on_change(&shared);
        let status = loop {
            if shared.stop.load(Ordering::SeqCst) {
                stop_child(&mut child);
                break None;
            }
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => {
                    tracing::error!("cannot wait for dnsmasq: {e}");
                    std::thread::sleep(POLL);
                }
            }
        };
        shared.pid.store(0, Ordering::SeqCst);
        let _ = std::fs::remove_file(config.state.dnsmasq_pid_file());
        if let Some(reader) = reader {
            let _ = reader.join();
        }
        let Some(status) = status else { break };
        if let Some(tx) = first.take() {
            if !shared.ready.load(Ordering::SeqCst) {
                // It died before it bound its socket: a start failure, reported to `up`.
                let _ = tx.send(StartReport::Failed(format!("dnsmasq exited ({status})")));
                return;
            }
        }
        shared.restarts.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(testbed = %config.testbed, %status, "dnsmasq died; restarting it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_serves_the_bridge_on_the_one_minute_schedule() {
        let config = DnsmasqConfig {
            program: PathBuf::from("/usr/sbin/dnsmasq"),
            testbed: "tb0".into(),
            netns_path: PathBuf::from("/run/netns/vnetbed-tb0"),
            bridge: "vnbtb0br".into(),
            range: (
                Ipv4Addr::new(198, 18, 0, 10),
                Ipv4Addr::new(198, 18, 0, 254),
            ),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            schedule: LeaseSchedule::new(Duration::from_secs(60), None, None).unwrap(),
            state: StateDir::at(std::path::Path::new("/run/vnetbed"), "tb0"),
        };
        let args = config.args();
        for expected in [
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            "--interface=vnbtb0br",
            "--dhcp-range=198.18.0.10,198.18.0.254,255.255.255.0,60",
            "--dhcp-option=option:T1,30",
            "--dhcp-option=option:T2,52",
            "--dhcp-leasefile=/run/vnetbed/tb0/leases",
            "--log-dhcp",
            "--log-facility=-",
            "--no-ping",
        ] {
            assert!(
                args.iter().any(|a| a == expected),
                "{expected} missing from {args:?}"
            );
        }
        // Option 51 is never forced: dnsmasq would send two conflicting copies.
        assert!(!args
            .iter()
            .any(|a| a.contains("option:lease-time") || a.contains("option=51")));
    }
}
