//! vnetbed's VMM library: KVM, guest memory, boot, vCPUs and devices.
//!
//! The binary `vnetbed run` is a thin front end over [`vm::Vm`]. Everything that is
//! guest-visible (memory map, devices) is defined here.

pub mod acpi;
pub mod boot;
pub mod capabilities;
pub mod devices;
pub mod duration;
pub mod events;
pub mod exit;
pub mod exit_notifier;
pub mod layout;
pub mod memory;
pub mod netdev;
pub mod netns;
pub mod pci_netdev;
pub mod seccomp;
pub mod signals;
pub mod speedtest;
pub mod testguest;
pub mod vcpu;
pub mod vhost_netdev;
pub mod vm;
