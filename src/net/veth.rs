//! The reference network for benchmarks: a veth pair between two network namespaces of our
//! own, with no VMM in the path. What a guest achieves is put next to what this pair
//! achieves on the same machine in the same run.
//!
//! The namespaces are `vnetbed-<name>a` and `vnetbed-<name>b` (so `vnetbed net gc` finds them
//! after a SIGKILL: a `vnetbed-` namespace with no state directory and no process inside), the
//! veth ends `vnb<name>a` / `vnb<name>b`, with 198.18.0.1/24 and 198.18.0.2/24. Dropping the
//! pair removes both namespaces (and with them the veth ends).

use super::error::{NetError, Result};
use super::ip::Ip;
use super::names::{self, LINK_PREFIX};
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
}

impl VethPair {
    /// Create the pair. `name` is 1-7 characters (a testbed-style name; `a`/`b` is appended).
    pub fn up(name: &str) -> Result<VethPair> {
        let ip = Ip::locate()?;
        let name_a = format!("{name}a");
        let name_b = format!("{name}b");
        names::validate_name(&name_a)?;
        for n in [&name_a, &name_b] {
            let netns = names::netns_name(n);
            // Checked before the pair exists, so that its drop never removes another's.
            if super::netns::netns_exists(&netns) {
                return Err(NetError::NameInUse {
                    name: n.clone(),
                    what: format!("network namespace {netns}"),
                });
            }
        }
        let pair = VethPair {
            ip,
            netns_a: names::netns_name(&name_a),
            netns_b: names::netns_name(&name_b),
        };
        // From here on, drop removes whatever was made.
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
        for netns in [&self.netns_a, &self.netns_b] {
            if let Err(e) = remove_links_and_netns(&self.ip, netns) {
                tracing::warn!("cannot remove {netns}: {e}; `vnetbed net gc` will");
            }
        }
    }
}
