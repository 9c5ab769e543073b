//! The [`Testbed`] handle: builds the namespace, bridge, taps and supervised dnsmasq, reports
//! status, and tears everything down in order.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dhcp_events::{DhcpEvent, EventHub};
use super::dnsmasq::{DnsmasqConfig, Supervisor, SupervisorShared};
use super::error::{NetError, Result};
use super::ip::Ip;
use super::names;
use super::netns::{netns_exists, netns_path};
use super::preflight::{check_privileges, find_dnsmasq};
use super::schedule::LeaseSchedule;
use super::state::{state_root, write_json, Holder, StateDir};
use super::subnet::{Subnet, DEFAULT_SUBNET};

/// How to build a testbed.
#[derive(Debug, Clone)]
pub struct TestbedConfig {
    /// Testbed name (1-8 characters a-z, 0-9, '-'); the namespace is `vnetbed-<name>`.
    pub name: String,
    /// The IPv4 subnet; the bridge gets its first host address.
    pub subnet: Subnet,
    /// Lease time configured on the DHCP range (dnsmasq sends at least 120 s).
    pub lease: Duration,
    /// T1 override; default half the lease.
    pub renew_after: Option<Duration>,
    /// T2 override; default 7/8 of the lease.
    pub rebind_after: Option<Duration>,
    /// How many taps to attach to the bridge (1 to 999).
    pub taps: u32,
    /// Root of the state directories (default `$VNETBED_STATE_DIR` or `/run/vnetbed`).
    pub state_root: PathBuf,
}

impl Default for TestbedConfig {
    fn default() -> Self {
        TestbedConfig {
            name: names::DEFAULT_NAME.to_string(),
            // The default is a valid constant; parsing it cannot fail.
            subnet: DEFAULT_SUBNET
                .parse()
                .unwrap_or_else(|_| unreachable!("default subnet is valid")),
            lease: Duration::from_secs(60),
            renew_after: None,
            rebind_after: None,
            taps: 1,
            state_root: state_root(),
        }
    }
}

/// What a testbed is made of (fixed at `up`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestbedInfo {
    /// Testbed name.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// The bridge inside the namespace.
    pub bridge: String,
    /// The bridge's address.
    pub bridge_address: Ipv4Addr,
    /// The subnet, CIDR.
    pub subnet: String,
    /// First address of the DHCP range.
    pub dhcp_range_first: Ipv4Addr,
    /// Last address of the DHCP range.
    pub dhcp_range_last: Ipv4Addr,
    /// The taps, attached to the bridge.
    pub taps: Vec<String>,
    /// Configured lease time, seconds.
    pub lease_secs: u64,
    /// T1 sent to clients, seconds.
    pub renew_secs: u64,
    /// T2 sent to clients, seconds.
    pub rebind_secs: u64,
    /// Lease time clients receive after dnsmasq's 120 s floor, seconds.
    pub effective_lease_secs: u64,
    /// The floor, said in words.
    pub lease_note: String,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The process that holds the testbed.
    pub holder_pid: u32,
}

/// A testbed's status: what it is made of, and how dnsmasq is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestbedStatus {
    /// The fixed parts.
    #[serde(flatten)]
    pub info: TestbedInfo,
    /// The running dnsmasq's pid, if it runs.
    pub dnsmasq_pid: Option<u32>,
    /// How often dnsmasq was restarted after dying.
    pub dnsmasq_restarts: u64,
}

impl TestbedStatus {
    fn new(info: &TestbedInfo, shared: &SupervisorShared) -> Self {
        TestbedStatus {
            info: info.clone(),
            dnsmasq_pid: shared.pid(),
            dnsmasq_restarts: shared.restarts(),
        }
    }
}

/// A running testbed. Dropping it tears it down (errors are logged); prefer [`Testbed::down`]
/// to see them.
pub struct Testbed {
    info: Arc<TestbedInfo>,
    ip: Ip,
    state: StateDir,
    hub: EventHub,
    supervisor: Option<Supervisor>,
    up: bool,
}

impl Testbed {
    /// Build the testbed: namespace `vnetbed-<name>` with loopback up, a bridge with the
    /// subnet's `.1`, `taps` taps on the bridge, and dnsmasq serving the bridge under
    /// supervision. On failure everything built so far is removed again.
    pub fn up(config: TestbedConfig) -> Result<Testbed> {
        names::validate_name(&config.name)?;
        names::validate_taps(config.taps)?;
        let schedule = LeaseSchedule::new(config.lease, config.renew_after, config.rebind_after)?;
        check_privileges()?;
        let ip = Ip::locate()?;
        let dnsmasq = find_dnsmasq()?;
        let name = config.name.clone();
        let netns = names::netns_name(&name);
        if netns_exists(&netns) {
            return Err(NetError::NameInUse {
                name,
                what: format!("network namespace {netns} exists"),
            });
        }
        // The state directory (with its holder) comes first, so that a concurrent `gc` sees
        // a live holder for the namespace we are about to create.
        let state = StateDir::create(&config.state_root, &name)?;
        let holder = match Holder::current().and_then(|h| state.write_holder(&h).map(|()| h)) {
            Ok(h) => h,
            Err(e) => {
                let _ = state.remove();
                return Err(e);
            }
        };
        let (first, last) = config.subnet.dhcp_range();
        let info = TestbedInfo {
            netns: netns.clone(),
            bridge: names::bridge_name(&name),
            bridge_address: config.subnet.bridge_address(),
            subnet: config.subnet.to_string(),
            dhcp_range_first: first,
            dhcp_range_last: last,
            taps: (0..config.taps)
                .map(|i| names::tap_name(&name, i))
                .collect(),
            lease_secs: schedule.lease_secs,
            renew_secs: schedule.renew_secs,
            rebind_secs: schedule.rebind_secs,
            effective_lease_secs: schedule.effective_lease_secs,
            lease_note: schedule.floor_note(),
            state_dir: state.path().to_path_buf(),
            holder_pid: holder.pid,
            name,
        };
        let mut testbed = Testbed {
            info: Arc::new(info),
            ip,
            state,
            hub: EventHub::new(),
            supervisor: None,
            up: true,
        };
        // On any error below, dropping `testbed` removes what was built.
        testbed.build_links(&config.subnet)?;
        let netmask = Ipv4Addr::from(u32::MAX << (32 - config.subnet.prefix()));
        let dnsmasq_config = DnsmasqConfig {
            program: dnsmasq,
            testbed: testbed.info.name.clone(),
            netns_path: netns_path(&netns),
            bridge: testbed.info.bridge.clone(),
            range: (first, last),
            netmask,
            schedule,
            state: testbed.state.clone(),
        };
        let (info, status_file) = (Arc::clone(&testbed.info), testbed.state.status_file());
        let on_change = Box::new(move |shared: &SupervisorShared| {
            if let Err(e) = write_json(&status_file, &TestbedStatus::new(&info, shared)) {
                tracing::warn!("cannot update the status file: {e}");
            }
        });
        testbed.supervisor = Some(Supervisor::start(
            dnsmasq_config,
            testbed.hub.clone(),
            on_change,
        )?);
        tracing::info!(testbed = %testbed.info.name, "testbed up");
        Ok(testbed)
    }

    fn build_links(&self, subnet: &Subnet) -> Result<()> {
        let (ip, info) = (&self.ip, &*self.info);
        let ns = info.netns.as_str();
        ip.run(&["netns", "add", ns])?;
        ip.run_in(ns, &["link", "set", "lo", "up"])?;
        ip.run_in(ns, &["link", "add", &info.bridge, "type", "bridge"])?;
        let cidr = format!("{}/{}", info.bridge_address, subnet.prefix());
        ip.run_in(ns, &["addr", "add", &cidr, "dev", &info.bridge])?;
        ip.run_in(ns, &["link", "set", &info.bridge, "up"])?;
        for tap in &info.taps {
            ip.run_in(ns, &["tuntap", "add", "dev", tap, "mode", "tap"])?;
            ip.run_in(ns, &["link", "set", tap, "master", &info.bridge])?;
            ip.run_in(ns, &["link", "set", tap, "up"])?;
        }
        Ok(())
    }

    /// What the testbed is made of.
    pub fn info(&self) -> &TestbedInfo {
        &self.info
    }

    /// The current status.
    pub fn status(&self) -> TestbedStatus {
        match &self.supervisor {
            Some(s) => TestbedStatus::new(&self.info, s.shared()),
            None => TestbedStatus {
                info: (*self.info).clone(),
                dnsmasq_pid: None,
                dnsmasq_restarts: 0,
            },
        }
    }

    /// Every DHCP event from now on. Events also go to `events.jsonl` in the state directory,
    /// for readers in other processes.
    pub fn subscribe(&self) -> Receiver<DhcpEvent> {
        self.hub.subscribe()
    }

    /// The DHCP events seen so far.
    pub fn events(&self) -> Vec<DhcpEvent> {
        self.hub.history()
    }

    /// dnsmasq's last output lines.
    pub fn dnsmasq_output(&self) -> Vec<String> {
        self.supervisor
            .as_ref()
            .map(|s| s.shared().recent_lines())
            .unwrap_or_default()
    }

    /// The state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        self.state.path()
    }

    /// Tear the testbed down: stop dnsmasq first (a dnsmasq left in a deleted namespace keeps
    /// running), then delete the taps, the bridge and the namespace, then the state directory.
    /// Every step is tried; the first error is returned.
    pub fn down(mut self) -> Result<()> {
        self.teardown()
    }

    /// Borrow `link` (a tap or veth end in vnetbed's own namespace, a user's backend's
    /// port) for the run: move it into the namespace onto the bridge; it is given back when
    /// the testbed goes down, or by `vnetbed net gc` after a SIGKILL ([`super::borrow`]).
    pub fn borrow_link(&self, link: &str) -> Result<()> {
        super::borrow::borrow_link(
            &self.ip,
            &self.state,
            &self.info.netns,
            &self.info.bridge,
            link,
        )
    }

    fn teardown(&mut self) -> Result<()> {
        if !self.up {
            return Ok(());
        }
        self.up = false;
        if let Some(mut supervisor) = self.supervisor.take() {
            supervisor.stop();
        }
        // Borrowed links go back first: deleting the namespace would destroy them. If one
        // cannot be given back, the namespace and the record stay for `vnetbed net gc`.
        if let Err(e) = super::borrow::give_back(&self.ip, &self.state, &self.info.netns) {
            tracing::error!(
                "cannot give borrowed links back from {}: {e}; the testbed stays, for \
                 `vnetbed net gc`",
                self.info.netns
            );
            return Err(e);
        }
        let result = remove_links_and_netns(&self.ip, &self.info.netns).and(self.state.remove());
        tracing::info!(testbed = %self.info.name, ok = result.is_ok(), "testbed down");
        result
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!("tearing down testbed {}: {e}", self.info.name);
        }
    }
}

/// Delete every link in the namespace (taps, bridge, anything attached to the bridge) except
/// loopback, then the namespace. Deleting the namespace alone would remove them too, but only
/// once nothing holds it; a tap opened by a straggling process would keep it alive.
pub(crate) fn remove_links_and_netns(ip: &Ip, netns: &str) -> Result<()> {
    if !netns_exists(netns) {
        return Ok(());
    }
    let mut first_error = None;
    match ip.run_in(netns, &["-j", "link", "show"]) {
        Ok(json) => {
            let links: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap_or_default();
            // Taps first, then whatever else, the bridge last.
            let mut names: Vec<(u8, String)> = links
                .iter()
                .filter_map(|l| l.get("ifname")?.as_str().map(str::to_string))
                .filter(|n| n != "lo")
                .map(|n| (u8::from(n.ends_with("br")), n))
                .collect();
            names.sort();
            for (_, link) in names {
                match ip.run_in(netns, &["link", "del", &link]) {
                    // Gone with its veth peer: fine.
                    Err(NetError::IpFailed { stderr, .. })
                        if stderr.contains("Cannot find device") => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                    Ok(_) => {}
                }
            }
        }
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    if let Err(e) = ip.run(&["netns", "del", netns]) {
        first_error.get_or_insert(e);
    }
    first_error.map_or(Ok(()), Err)
}
