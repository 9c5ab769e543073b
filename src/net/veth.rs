//! The reference network for benchmarks: a veth pair between two network namespaces of our
//! own, with no VMM in the path. What a guest achieves is put next to what this pair
//! achieves on the same machine in the same run.
//!
//! The namespaces are `vnetbed-<name>a` and `vnetbed-<name>b`, the veth ends `vnb<name>a` /
//! `vnb<name>b`, with 198.18.0.1/24 and 198.18.0.2/24. Like a testbed, each namespace has a
//! state directory (`<state root>/<name>a`, `<name>b`) recording this process as its holder,
//! created *before* the namespace: a concurrent `vnetbed net gc` leaves the pair alone while
//! its holder lives, and removes namespace and state directory once the holder is gone (e.g.
//! after a SIGKILL). Dropping the pair removes both namespaces (and with them the veth ends),
//! then the state directories.

use std::path::Path;

use super::error::{NetError, Result};
use super::ip::Ip;
use super::names::{self, LINK_PREFIX};
use super::state::{state_root, Holder, StateDir};
use super::testbed::remove_links_and_netns;

/// Address of side A (the client side in benchmarks).
pub const VETH_A_ADDRESS: &str = "198.18.0.1";
/// Address of side B (the server side).
pub const VETH_B_ADDRESS: &str = "198.18.0.2";

/// A veth pair between two namespaces; removed on drop.
#[derive(Debug)]
pub struct VethPair {
    ip: Ip,
    /// Namespace of side A.
    pub netns_a: String,
    /// Namespace of side B.
    pub netns_b: String,
    /// The state directories this pair created (and so owns), one per namespace.
    states: Vec<StateDir>,
    /// Whether both names were claimed and the namespaces are ours to remove.
    owns_netns: bool,
}

impl VethPair {
    /// Create the pair, with its state directories under the default state root
    /// ([`state_root`]). `name` is 1-7 characters (a testbed-style name; `a`/`b` is appended).
    pub fn up(name: &str) -> Result<VethPair> {
        Self::up_in(&state_root(), name)
    }

    /// Create the pair, with its state directories under `root` (what `vnetbed net gc` with
    /// `VNETBED_STATE_DIR=<root>` looks at).
    pub fn up_in(root: &Path, name: &str) -> Result<VethPair> {
        let ip = Ip::locate()?;
        let name_a = format!("{name}a");
        let name_b = format!("{name}b");
        names::validate_name(&name_a)?;
        let mut pair = VethPair {
            ip,
            netns_a: names::netns_name(&name_a),
            netns_b: names::netns_name(&name_b),
            states: Vec::new(),
            owns_netns: false,
        };
        // Claim both names first: the state directory (created exclusively) with this process
        // as holder, so that `gc` sees a live holder for the namespace about to be created. A
        // name someone else holds stops us before any namespace is touched; until both are
        // claimed and checked, drop removes only the state directories created here.
        for n in [&name_a, &name_b] {
            let state = StateDir::create(root, n)?;
            pair.states.push(state.clone());
            Holder::current().and_then(|h| state.write_holder(&h))?;
        }
        for (netns, n) in [
            (pair.netns_a.clone(), &name_a),
            (pair.netns_b.clone(), &name_b),
        ] {
            if super::netns::netns_exists(&netns) {
                return Err(NetError::NameInUse {
                    name: n.clone(),
                    what: format!("network namespace {netns}"),
                });
            }
        }
        // From here on, drop removes whatever was made.
        pair.owns_netns = true;
        pair.build(&name_a, &name_b)?;
        Ok(pair)
    }

    fn build(&self, name_a: &str, name_b: &str) -> Result<()> {
        let link_a = format!("{LINK_PREFIX}{name_a}");
        let link_b = format!("{LINK_PREFIX}{name_b}");
        self.ip.run(&["netns", "add", &self.netns_a])?;
        self.ip.run(&["netns", "add", &self.netns_b])?;
        // Created inside A, its peer moved straight into B: nothing touches the root namespace.
        self.ip.run_in(
            &self.netns_a,
            &[
                "link",
                "add",
                &link_a,
                "type",
                "veth",
                "peer",
                "name",
                &link_b,
                "netns",
                &self.netns_b,
            ],
        )?;
        for (netns, link, address) in [
            (&self.netns_a, &link_a, VETH_A_ADDRESS),
            (&self.netns_b, &link_b, VETH_B_ADDRESS),
        ] {
            self.ip.run_in(netns, &["link", "set", "lo", "up"])?;
            self.ip.run_in(
                netns,
                &["addr", "add", &format!("{address}/24"), "dev", link],
            )?;
            self.ip.run_in(netns, &["link", "set", link, "up"])?;
        }
        Ok(())
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let mut removed = true;
        let ours = if self.owns_netns {
            vec![&self.netns_a, &self.netns_b]
        } else {
            vec![]
        };
        for netns in ours {
            if let Err(e) = remove_links_and_netns(&self.ip, netns) {
                removed = false;
                tracing::warn!("cannot remove {netns}: {e}; `vnetbed net gc` will");
            }
        }
        // A namespace that could not be removed keeps its state directory, so that `gc`
        // removes both once this process is gone.
        if !removed {
            return;
        }
        for state in &self.states {
            if let Err(e) = state.remove() {
                tracing::warn!("{e}; `vnetbed net gc` will remove it");
            }
        }
    }
}
