//! `vnetbed net up|down|status|gc`: the testbed network from the command line.
//!
//! # Why `up` leaves a supervisor process behind
//!
//! dnsmasq must stay supervised (restarted within a second if it dies) for as long as the
//! testbed exists, so some process has to outlive `vnetbed net up`. `up` therefore starts a
//! detached holder, the hidden `vnetbed net supervise` (own session, no terminal), which builds
//! the testbed through the library ([`Testbed::up`]), reports `READY` or the error on a pipe,
//! and then owns dnsmasq until SIGINT/SIGTERM/SIGHUP, when it tears everything down. `up`
//! returns as soon as the report arrives, with the supervisor's error as its own. `down` sends
//! SIGTERM to the supervisor (verified by pid, start time and command line) and waits for it to
//! finish. `up --foreground` runs the same holder in the terminal instead, until Ctrl-C.
//! If the holder is SIGKILLed, dnsmasq dies with it (parent-death signal) and `gc` removes the
//! namespace and state directory.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use clap::{Args, Subcommand};
use vnetbed::net::{self, NetError, Subnet, Testbed, TestbedConfig, TestbedStatus};

/// Arguments of `vnetbed net`.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// What to do with the testbed network.
    #[command(subcommand)]
    pub command: NetCommand,
}

/// The `net` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Build a testbed: namespace vnetbed-NAME, bridge, taps and a supervised dnsmasq.
    Up(UpArgs),
    /// Remove a testbed: stop dnsmasq, delete taps, bridge and namespace.
    Down(NameArgs),
    /// Show a testbed's addresses, taps, lease schedule and dnsmasq state.
    Status(StatusArgs),
    /// Remove leftovers of testbeds whose holder was killed.
    Gc,
    /// Hold a testbed until SIGINT/SIGTERM (started by `net up`; not for direct use).
    #[command(hide = true)]
    Supervise(UpArgs),
}

/// Arguments of `net up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Testbed name (1-8 characters a-z, 0-9, '-'); the namespace is vnetbed-NAME.
    #[arg(long, default_value = net::names::DEFAULT_NAME, value_parser = super::args::testbed_name)]
    pub name: String,
    /// IPv4 subnet; the bridge gets its first address (.1).
    #[arg(long, default_value = net::subnet::DEFAULT_SUBNET)]
    pub subnet: String,
    /// Lease time configured in dnsmasq (dnsmasq sends at least 120 s).
    #[arg(long, default_value = "1m", value_parser = super::args::whole_seconds)]
    pub lease: String,
    /// Renewal time T1 sent to clients (default: half the lease, 30 s for 1m).
    #[arg(long, value_parser = super::args::whole_seconds)]
    pub renew_after: Option<String>,
    /// Rebinding time T2 sent to clients (default: 7/8 of the lease, 52 s for 1m).
    #[arg(long, value_parser = super::args::whole_seconds)]
    pub rebind_after: Option<String>,
    /// Number of taps on the bridge (1 to 999).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=999))]
    pub taps: u32,
    /// Hold the testbed in this terminal until Ctrl-C instead of a detached supervisor.
    #[arg(long)]
    pub foreground: bool,
}

impl UpArgs {
    fn config(&self) -> Result<TestbedConfig, NetError> {
        net::names::validate_name(&self.name)?;
        net::names::validate_taps(self.taps)?;
        let parse =
            |d: &str| super::args::duration(d).map_err(|e| NetError::BadSchedule(e.to_string()));
        let optional = |d: &Option<String>| d.as_deref().map(parse).transpose();
        let config = TestbedConfig {
            name: self.name.clone(),
            subnet: self.subnet.parse::<Subnet>()?,
            lease: parse(&self.lease)?,
            renew_after: optional(&self.renew_after)?,
            rebind_after: optional(&self.rebind_after)?,
            taps: self.taps,
            ..TestbedConfig::default()
        };
        net::LeaseSchedule::new(config.lease, config.renew_after, config.rebind_after)?;
        Ok(config)
    }

    fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--name".to_string(),
            self.name.clone(),
            "--subnet".into(),
            self.subnet.clone(),
            "--lease".into(),
            self.lease.clone(),
            "--taps".into(),
            self.taps.to_string(),
        ];
        if let Some(d) = &self.renew_after {
            args.extend(["--renew-after".to_string(), d.clone()]);
        }
        if let Some(d) = &self.rebind_after {
            args.extend(["--rebind-after".to_string(), d.clone()]);
        }
        args
    }
}

/// A testbed name argument.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Testbed name.
    #[arg(long, default_value = net::names::DEFAULT_NAME, value_parser = super::args::testbed_name)]
    pub name: String,
}

/// Arguments of `net status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Testbed name. Without it: every testbed that is up (soaks' and `net up`'s).
    #[arg(long, value_parser = super::args::testbed_name)]
    pub name: Option<String>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run a `net` subcommand; returns the exit status.
pub fn main(args: NetArgs) -> i32 {
    let (what, result) = match args.command {
        NetCommand::Up(up) if up.foreground => ("up", supervise(&up, false)),
        NetCommand::Up(up) => ("up", up_detached(&up)),
        NetCommand::Supervise(up) => ("supervise", supervise(&up, true)),
        NetCommand::Down(n) => ("down", down(&n.name)),
        NetCommand::Status(s) => ("status", status(&s)),
        NetCommand::Gc => ("gc", gc()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vnetbed net {what}: error: {e}");
            1
        }
    }
}

/// How long `up` waits for the supervisor's report.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `down` waits for the supervisor to finish.
const DOWN_TIMEOUT: Duration = Duration::from_secs(15);

fn up_detached(up: &UpArgs) -> Result<(), NetError> {
    // Catch argument mistakes here, before a process is started.
    up.config()?;
    let mut command =
        vnetbed::self_command().map_err(|e| NetError::io("cannot find the vnetbed binary", e))?;
    command.args(["net", "supervise"]).args(up.to_args());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // A long-lived process should not pin the caller's working directory.
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe; it detaches the supervisor from our session and
    // terminal, so that a Ctrl-C or hang-up there does not reach it.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| NetError::io("cannot start the supervisor", e))?;
    let supervisor_error = |why: String| NetError::Supervisor {
        name: up.name.clone(),
        why,
    };
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| supervisor_error("no report pipe".into()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(supervisor_error(format!(
                "no report within {READY_TIMEOUT:?}; it was killed"
            )));
        }
    };
    if let Some(json) = line.strip_prefix("READY ") {
        let status: TestbedStatus = serde_json::from_str(json)
            .map_err(|e| supervisor_error(format!("unreadable report: {e}")))?;
        print_status(&status);
        outln!(
            "supervisor: pid {} (take the testbed down with `vnetbed net down --name {}`)",
            child.id(),
            up.name
        );
        return Ok(());
    }
    // The supervisor failed and exits; reap it.
    let _ = child.wait();
    let why = line
        .strip_prefix("ERROR ")
        .unwrap_or(&line)
        .trim()
        .replace("\\n", "\n");
    if why.is_empty() {
        return Err(supervisor_error("it exited without a report".into()));
    }
    Err(NetError::Reported(why))
}

/// Route SIGINT, SIGTERM and SIGHUP to the stop flag ([`vmm::signals::stop_signal`]).
fn install_stop_handlers() -> Result<(), NetError> {
    vmm::signals::route_stop_signals(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
        .map_err(|e| NetError::io("cannot install signal handlers", e.into()))
}

/// Hold a testbed until a stop signal. With `report`, write `READY <status json>` or
/// `ERROR <message>` as the single line on stdout (for `up`).
fn supervise(up: &UpArgs, report: bool) -> Result<(), NetError> {
    install_stop_handlers()?;
    let testbed = match up.config().and_then(Testbed::up) {
        Ok(testbed) => testbed,
        Err(e) => {
            if report {
                outln!("ERROR {}", e.to_string().replace('\n', "\\n"));
            }
            return Err(e);
        }
    };
    if report {
        let json = serde_json::to_string(&testbed.status()).unwrap_or_default();
        outln!("READY {json}");
        // From now on nobody reads our stdout/stderr: keep our log (dnsmasq restarts,
        // teardown errors) in the state directory instead.
        redirect_stderr(&testbed.state_dir().join("supervisor.log"));
        redirect_stdout_to_null();
    } else {
        print_status(&testbed.status());
        outln!("holding the testbed; Ctrl-C takes it down");
    }
    while vmm::signals::stop_signal().is_none() {
        std::thread::sleep(Duration::from_millis(100));
    }
    testbed.down()
}

/// Point file descriptor 2 at `path` (appending); on failure stderr stays where it was.
fn redirect_stderr(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    // SAFETY: dup2 of a valid open descriptor onto fd 2; `file` is closed afterwards, the
    // duplicate stays valid.
    unsafe { libc::dup2(file.as_raw_fd(), libc::STDERR_FILENO) };
}

/// Point stdout at /dev/null once `up` has read the report (its pipe then has no reader).
fn redirect_stdout_to_null() {
    use std::os::fd::AsRawFd;
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    // SAFETY: dup2 of a valid open descriptor onto fd 1.
    unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
}

fn down(name: &str) -> Result<(), NetError> {
    net::down_named(&net::state_root(), name, DOWN_TIMEOUT)?;
    outln!("testbed {name} is down");
    Ok(())
}

fn status(args: &StatusArgs) -> Result<(), NetError> {
    let Some(name) = &args.name else {
        return status_all(args.json);
    };
    let status = net::read_status(&net::state_root(), name)?;
    if args.json {
        outln!("{}", to_json(&status)?);
    } else {
        print_status(&status);
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, NetError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| NetError::io("cannot format the status", std::io::Error::other(e)))
}

/// Every testbed that is up: each state directory whose holder is alive.
fn status_all(json: bool) -> Result<(), NetError> {
    let root = net::state_root();
    let mut names: Vec<String> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        // No state directory yet: no testbed was ever up.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(NetError::io("cannot list the testbeds' state", e)),
    };
    names.sort();
    let up: Vec<TestbedStatus> = names
        .iter()
        .filter_map(|n| net::read_status(&root, n).ok())
        .collect();
    if json {
        outln!("{}", to_json(&up)?);
    } else if up.is_empty() {
        outln!("no testbed is up");
    } else {
        for s in &up {
            print_status(s);
        }
    }
    Ok(())
}

fn print_status(s: &TestbedStatus) {
    let i = &s.info;
    outln!(
        "testbed {}: namespace {}, bridge {} {}/{}",
        i.name,
        i.netns,
        i.bridge,
        i.bridge_address,
        i.subnet.rsplit('/').next().unwrap_or("")
    );
    outln!(
        "  subnet {}, DHCP range {} - {}",
        i.subnet,
        i.dhcp_range_first,
        i.dhcp_range_last
    );
    outln!("  taps: {}", i.taps.join(" "));
    outln!(
        "  lease: configured {} s, clients receive {} s; T1 {} s, T2 {} s",
        i.lease_secs,
        i.effective_lease_secs,
        i.renew_secs,
        i.rebind_secs
    );
    outln!("  note: {}", i.lease_note);
    match s.dnsmasq_pid {
        Some(pid) => outln!("  dnsmasq: pid {pid}, restarts {}", s.dnsmasq_restarts),
        None => outln!("  dnsmasq: not running, restarts {}", s.dnsmasq_restarts),
    }
    outln!(
        "  state: {} (holder pid {})",
        i.state_dir.display(),
        i.holder_pid
    );
}

fn gc() -> Result<(), NetError> {
    let report = net::gc(&net::state_root())?;
    for name in &report.removed {
        outln!("removed leftover testbed {name}");
    }
    for pid in &report.killed_dnsmasq {
        outln!("killed leftover dnsmasq {pid}");
    }
    for link in &report.returned_links {
        outln!("gave borrowed link {link} back to the root namespace");
    }
    for path in &report.removed_dpdk {
        outln!("removed leftover of a dead vnetbed testpmd: {path}");
    }
    for name in &report.live {
        outln!("kept {name}: its holder is alive");
    }
    for (netns, pid) in &report.busy_netns {
        outln!("kept namespace {netns}: process {pid} is inside it");
    }
    if report.removed.is_empty() && report.removed_dpdk.is_empty() && report.failed.is_empty() {
        outln!("nothing to clean up");
    }
    // Failures (if any) come last, on stderr, after what was removed.
    report.failures_as_error()
}
