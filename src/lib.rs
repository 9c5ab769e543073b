//! vnetbed as a library: the parts the subcommands share and the tests use directly.
//!
//! - [`net`]: the testbed network (namespace, bridge, taps, supervised dnsmasq);
//! - [`record`]: the crash-safe run record, `timeline.jsonl`;
//! - [`report`]: the verdict and the reports built from it;
//! - [`soak`]: the soak engine behind soak, reproduce and verify;
//! - [`verify`]: verify's A/B verdict and its outputs, from the run directories;
//! - [`qemu`]: QEMU microvm as a second virtio-net device for the probe guest;
//! - [`sut`]: the system under test that `verify` judges (`--sut`).

pub mod net;
pub mod qemu;
pub mod record;
pub mod report;
pub mod soak;
pub mod sut;
pub mod verify;
