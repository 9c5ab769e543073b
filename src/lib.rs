//! vnetbed as a library: the parts the subcommands share and the tests use directly.
//!
//! - [`net`]: the testbed network (namespace, bridge, taps, supervised dnsmasq);
//! - [`record`]: the crash-safe run record, `timeline.jsonl`;
//! - [`report`]: the verdict and the reports built from it.

pub mod net;
pub mod record;
pub mod report;
pub mod soak;
