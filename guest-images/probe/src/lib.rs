//! The probe guest's hardware-independent logic, testable on the host with `cargo test`
//! (the image itself is the `probe` binary, src/main.rs).

#![cfg_attr(not(test), no_std)]

pub mod cmdline;
pub mod iperf3_proto;
pub mod pci_rules;
pub mod rx_policy;
pub mod stall;
pub mod virtqueue;
