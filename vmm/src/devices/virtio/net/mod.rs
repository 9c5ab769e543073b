//! The virtio-net device (virtio 1.x §5.1) and everything around it.
//!
//! - [`device`]: features, config space, activation/reset;
//! - [`core`], [`rx`], [`tx`]: the state the device thread owns and the two data paths;
//! - [`notify_model`]: fenced / unfenced / no-recheck, the only place notification ordering
//!   is decided;
//! - [`watchdog`]: lost-kick and lost-interrupt detection;
//! - [`worker`]: the device thread (epoll, timers);
//! - [`backend`], [`tap`]: where frames come from and go to;
//! - [`config`]: `--net` and the device options; [`metrics`]: counters;
//! - [`test_driver`]: a Linux-faithful guest driver on host threads (tests, benchmarks);
//! - [`test_netns`]: throwaway network namespaces and an AF_PACKET peer on a tap.

pub mod backend;
pub mod config;
pub mod core;
pub mod device;
pub mod metrics;
pub mod notify_model;
pub mod rx;
pub mod tap;
pub mod tx;
pub mod watchdog;
pub mod worker;

pub use config::{MacAddr, NetConfig, NetConfigError, NetOptions, OnStall};
pub use device::Net;
pub use notify_model::NotifyModel;
pub use worker::StallExit;
pub mod test_driver;
pub mod test_netns;
