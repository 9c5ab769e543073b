//! The testbed network: everything a guest's NIC talks to, real and isolated.
//!
//! A testbed `<name>` is a network namespace `vnetbed-<name>` holding loopback, a bridge
//! (`vnb<name>br`, address `.1` of the subnet, default 198.18.0.0/24), taps on the bridge
//! (`vnb<name>t0`, `vnb<name>t1`, ...), and a dnsmasq serving DHCP on the bridge on the
//! one-minute lease schedule (T1 30 s, T2 52 s; dnsmasq's floor makes the lease itself 120 s).
//! Nothing in the root namespace changes.
//!
//! - [`Testbed::up`] builds it, [`Testbed::down`] (or drop) removes it;
//! - [`Testbed::subscribe`] streams the DHCP events parsed from dnsmasq's log;
//! - [`open_tap`] lets a VMM open a tap inside the namespace;
//! - [`gc()`] removes leftovers of killed holders.
//!
//! Links are managed with `ip` from iproute2 (see [`ip`] for why).

pub mod borrow;
pub mod dhcp_events;
pub mod dnsmasq;
pub mod error;
pub mod gc;
pub mod ip;
pub mod names;
pub mod netns;
pub mod preflight;
pub mod schedule;
pub mod state;
pub mod subnet;
pub mod testbed;
pub mod veth;

pub use dhcp_events::{read_journal, DhcpEvent, DhcpEventKind};
pub use error::{NetError, Result};
pub use gc::{down_named, gc, read_status, GcFailure, GcReport};
pub use netns::open_tap;
pub use schedule::{LeaseSchedule, DNSMASQ_LEASE_FLOOR};
pub use state::state_root;
pub use subnet::Subnet;
pub use testbed::{Testbed, TestbedConfig, TestbedInfo, TestbedStatus};
pub use veth::VethPair;
