//! vnetbed's VMM library: KVM, guest memory, boot, vCPUs and devices.
//!
//! The binary `vnetbed run` is a thin front end over [`vm::Vm`]. Everything that is
//! guest-visible (memory map, devices) is defined here.

pub mod devices;
pub mod events;
pub mod layout;
