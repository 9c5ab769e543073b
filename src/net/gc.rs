//! Finding and removing testbeds: `down` of a testbed held by another process, and `gc` of
//! leftovers whose holder was killed.
//!
//! Leftovers are found only through vnetbed's own marks, never by a broad name match:
//! - state directories under the state root whose recorded holder (pid + start time) is gone;
//! - namespaces named `vnetbed-<name>` with no state directory and no process inside;
//! - DPDK leftovers of testpmd processes vnetbed started (`--sut dpdk`): vhost-user sockets
//!   and `/var/run/dpdk/<prefix>` runtime directories whose file prefix is vnetbed's,
//!   `vnetbed-dpdk-<pid>-<n>`, where process `<pid>` (the vnetbed that started it) is gone and
//!   no running process uses the prefix ([`crate::dpdk::remove_dead_leftovers`]).
//!
//! A leftover testbed's borrowed links (`borrowed-links`: a user backend's port) are given
//! back to PID 1's namespace before its namespace is deleted.
//!
//! A dnsmasq is killed only if its pid comes from a testbed's `dnsmasq.pid` *and* its
//! `/proc/<pid>/cmdline` names that testbed's state directory.
//!
//! Both need root, like `up`, and say so before touching anything. `gc` goes on past a
//! leftover it cannot remove and reports every failure at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::{NetError, Result};
use super::ip::Ip;
use super::names;
use super::netns::{list_vnetbed_netns, netns_exists, processes_in_netns};
use super::preflight::check_privileges;
use super::state::{list_state_dirs, process_args, process_cmdline, StateDir};
use super::testbed::{remove_links_and_netns, TestbedStatus};

/// What `gc` did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    /// Testbeds removed (namespace, links, state directory).
    pub removed: Vec<String>,
    /// Pids of our own dnsmasq processes that were killed.
    pub killed_dnsmasq: Vec<u32>,
    /// Links that leftover testbeds had borrowed, given back to PID 1's namespace.
    pub returned_links: Vec<String>,
    /// Files and directories of dead vnetbed testpmd processes, removed.
    pub removed_dpdk: Vec<String>,
    /// Testbeds left alone because their holder is alive.
    pub live: Vec<String>,
    /// Namespaces left alone because processes are inside (with one such pid).
    pub busy_netns: Vec<(String, u32)>,
    /// Leftovers that could not be removed; the others were still removed.
    pub failed: Vec<GcFailure>,
}

/// A leftover `gc` could not remove.
#[derive(Debug, Clone, Serialize)]
pub struct GcFailure {
    /// The testbed name (state directory) or namespace.
    pub name: String,
    /// Why, as text.
    pub error: String,
}

impl GcReport {
    /// [`NetError::GcIncomplete`] listing the failures, or `Ok` if there were none.
    pub fn failures_as_error(&self) -> Result<()> {
        if self.failed.is_empty() {
            return Ok(());
        }
        let details: Vec<String> = self
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.name, f.error))
            .collect();
        Err(NetError::GcIncomplete {
            count: self.failed.len(),
            details: details.join("; "),
        })
    }
}

/// Remove every leftover testbed under `root`. Needs root ([`NetError::NotPrivileged`]
/// otherwise). A leftover that cannot be removed does not stop the others: it is listed in
/// [`GcReport::failed`] (see [`GcReport::failures_as_error`]).
pub fn gc(root: &Path) -> Result<GcReport> {
    check_privileges()?;
    let ip = Ip::locate()?;
    let mut report = GcReport::default();
    for name in list_state_dirs(root) {
        if names::validate_name(&name).is_err() {
            continue;
        }
        let state = StateDir::at(root, &name);
        let holder = state.read_holder().ok().flatten();
        if holder.is_some_and(|h| h.is_alive()) || (holder.is_none() && just_created(&state)) {
            // Held, or being created right now (`up` writes the holder just after creating
            // the directory).
            report.live.push(name);
            continue;
        }
        if let Err(e) = remove_leftover(&ip, &state, &name, &mut report) {
            report.failed.push(GcFailure {
                name,
                error: e.to_string(),
            });
        }
    }
    for netns in list_vnetbed_netns() {
        let Some(name) = names::testbed_of_netns(&netns) else {
            continue;
        };
        if StateDir::at(root, name).exists() {
            continue;
        }
        if let Some(&pid) = processes_in_netns(&netns).first() {
            report.busy_netns.push((netns, pid));
            continue;
        }
        match remove_links_and_netns(&ip, &netns) {
            Ok(()) => report.removed.push(name.to_string()),
            Err(e) => report.failed.push(GcFailure {
                name: netns.clone(),
                error: e.to_string(),
            }),
        }
    }
    let (removed, failed) = crate::dpdk::remove_dead_leftovers();
    report
        .removed_dpdk
        .extend(removed.iter().map(|p| p.display().to_string()));
    report
        .failed
        .extend(failed.into_iter().map(|(path, error)| GcFailure {
            name: path.display().to_string(),
            error,
        }));
    Ok(report)
}

fn remove_leftover(ip: &Ip, state: &StateDir, name: &str, report: &mut GcReport) -> Result<()> {
    if let Some(pid) = kill_our_dnsmasq(state)? {
        report.killed_dnsmasq.push(pid);
    }
    let netns = names::netns_name(name);
    report
        .returned_links
        .extend(super::borrow::give_back(ip, state, &netns)?);
    remove_links_and_netns(ip, &names::netns_name(name))?;
    state.remove()?;
    report.removed.push(name.to_string());
    Ok(())
}

fn just_created(state: &StateDir) -> bool {
    std::fs::metadata(state.path())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(10))
}

/// Kill the dnsmasq recorded in the state directory, if it is still ours. Returns its pid;
/// `None` when there is no `dnsmasq.pid` (a testbed that never started one, or a
/// [`super::veth::VethPair`]'s directory) or it names a process that is not ours.
fn kill_our_dnsmasq(state: &StateDir) -> Result<Option<u32>> {
    let Some(pid) = state.read_dnsmasq_pid() else {
        return Ok(None);
    };
    let marker = state.lease_file().display().to_string();
    let ours = |pid: u32| {
        process_cmdline(pid).is_some_and(|c| c.contains("dnsmasq") && c.contains(&marker))
    };
    if !ours(pid) {
        return Ok(None);
    }
    send_signal(pid, libc::SIGTERM, "dnsmasq")?;
    if !wait_gone(|| ours(pid), Duration::from_secs(3)) {
        send_signal(pid, libc::SIGKILL, "dnsmasq")?;
        wait_gone(|| ours(pid), Duration::from_secs(2));
    }
    Ok(Some(pid))
}

/// Send `signal` to `pid` (a process of ours, described by `what`). A process that is
/// already gone is fine; a refusal (EPERM) is an error that says to run as root.
fn send_signal(pid: u32, signal: libc::c_int, what: &str) -> Result<()> {
    // SAFETY: kill with a pid the caller verified (pid + start time or command line) to be a
    // process of ours; signals cannot violate memory safety.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ESRCH) => Ok(()),
        Some(libc::EPERM) => Err(NetError::io(
            format!(
                "not allowed to signal {what} {pid} (EPERM); run this as root, the user that \
                 started it"
            ),
            err,
        )),
        _ => Err(NetError::io(format!("cannot signal {what} {pid}"), err)),
    }
}

fn wait_gone(alive: impl Fn() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The status of testbed `name` as its holder last wrote it, if the holder is alive.
pub fn read_status(root: &Path, name: &str) -> Result<TestbedStatus> {
    names::validate_name(name)?;
    let state = StateDir::at(root, name);
    let alive = state.read_holder()?.is_some_and(|h| h.is_alive());
    if !alive {
        return Err(NetError::NotRunning(name.to_string()));
    }
    super::state::read_json(&state.status_file())?
        .ok_or_else(|| NetError::NotRunning(name.to_string()))
}

/// Whether a command line is a `vnetbed net supervise` (detached) or `vnetbed net up
/// --foreground` holder of testbed `name`.
fn is_cli_holder_of(args: &[String], name: &str) -> bool {
    let is_holder = args
        .windows(2)
        .any(|w| w[0] == "net" && (w[1] == "supervise" || w[1] == "up"));
    let named = args.windows(2).any(|w| w[0] == "--name" && w[1] == name)
        || args.iter().any(|a| a.strip_prefix("--name=") == Some(name))
        || (name == names::DEFAULT_NAME && !args.iter().any(|a| a.starts_with("--name")));
    is_holder && named
}

/// Take down testbed `name`, held by `vnetbed net up` (detached or in the foreground): SIGTERM
/// the holder and wait until it has removed the testbed. A testbed whose holder died is removed like `gc` would.
/// A testbed held by some other live process (a library user) is refused.
/// Needs root ([`NetError::NotPrivileged`] otherwise).
pub fn down_named(root: &Path, name: &str, timeout: Duration) -> Result<()> {
    names::validate_name(name)?;
    check_privileges()?;
    let state = StateDir::at(root, name);
    let netns = names::netns_name(name);
    if !state.exists() && !netns_exists(&netns) {
        return Err(NetError::NotRunning(name.to_string()));
    }
    if let Some(holder) = state.read_holder()?.filter(|h| h.is_alive()) {
        if !process_args(holder.pid).is_some_and(|args| is_cli_holder_of(&args, name)) {
            return Err(NetError::Supervisor {
                name: name.to_string(),
                why: format!(
                    "it is held by process {} ({}), not by `vnetbed net up`; stop that \
                     process to take the testbed down",
                    holder.pid,
                    process_cmdline(holder.pid).unwrap_or_default().trim()
                ),
            });
        }
        // Verified above by pid, start time and command line to be our supervisor.
        send_signal(holder.pid, libc::SIGTERM, "supervisor")?;
        if !wait_gone(|| holder.is_alive(), timeout) {
            return Err(NetError::Supervisor {
                name: name.to_string(),
                why: format!(
                    "supervisor {} did not exit within {timeout:?} after SIGTERM",
                    holder.pid
                ),
            });
        }
    }
    // Whatever the supervisor left (or a dead holder's leftovers).
    let ip = Ip::locate()?;
    let mut report = GcReport::default();
    if state.exists() {
        remove_leftover(&ip, &state, name, &mut report)?;
    } else {
        // A namespace with no state directory under this root: maybe a leftover, maybe the
        // testbed of a holder that uses another state root. Only an empty one is removed.
        if let Some(&pid) = processes_in_netns(&netns).first() {
            return Err(NetError::Supervisor {
                name: name.to_string(),
                why: format!(
                    "namespace {netns} has no state directory under {} but process {pid} ({}) \
                     runs in it; is its holder using another VNETBED_STATE_DIR?",
                    root.display(),
                    process_cmdline(pid).unwrap_or_default().trim()
                ),
            });
        }
        remove_links_and_netns(&ip, &netns)?;
    }
    if state.exists() || netns_exists(&netns) {
        return Err(NetError::Supervisor {
            name: name.to_string(),
            why: format!(
                "{} or namespace {netns} still exists after teardown; run `vnetbed net gc`",
                state.path().display()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_holders_are_recognised_by_their_arguments() {
        let args = |line: &str| line.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert!(is_cli_holder_of(
            &args("/x/vnetbed net supervise --name tb1 --taps 2"),
            "tb1"
        ));
        assert!(is_cli_holder_of(
            &args("vnetbed -v net up --foreground --name=tb1"),
            "tb1"
        ));
        assert!(is_cli_holder_of(
            &args("vnetbed net up --foreground"),
            "tb0"
        ));
        assert!(!is_cli_holder_of(
            &args("vnetbed net up --foreground"),
            "tb1"
        ));
        assert!(!is_cli_holder_of(
            &args("vnetbed net supervise --name tb10"),
            "tb1"
        ));
        assert!(!is_cli_holder_of(&args("cargo test --name tb1"), "tb1"));
        assert!(!is_cli_holder_of(&args("/x/net-1234 --name tb1"), "tb1"));
    }

    #[test]
    fn a_pid_file_naming_a_foreign_process_kills_nothing() {
        let root = std::env::temp_dir().join(format!("vnetbed-gc-unit-{}", std::process::id()));
        let state = StateDir::create(&root, "unit").unwrap();
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(state.dnsmasq_pid_file(), format!("{}\n", other.id())).unwrap();
        assert_eq!(kill_our_dnsmasq(&state).unwrap(), None);
        assert!(
            other.try_wait().unwrap().is_none(),
            "a foreign process was killed"
        );
        other.kill().unwrap();
        other.wait().unwrap();
        std::fs::write(state.dnsmasq_pid_file(), "not a pid").unwrap();
        assert_eq!(kill_our_dnsmasq(&state).unwrap(), None);
        // No pid file at all (a VethPair's state directory): nothing to kill, no error.
        std::fs::remove_file(state.dnsmasq_pid_file()).unwrap();
        assert_eq!(kill_our_dnsmasq(&state).unwrap(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
