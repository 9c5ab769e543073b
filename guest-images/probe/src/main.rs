//! vnetbed's probe guest: a freestanding test kernel. Ring 0 (src/boot.s) only sets up
//! the CPU and drops to ring 3, where all the Rust below runs at native speed even on
//! nested hosts whose KVM emulates guest ring 0. See README.md.

#![no_std]
#![no_main]

mod acpi;
mod agent;
mod apic;
mod boot;
mod bootinfo;
mod dhcp_watch;
mod exit;
mod gateway;
mod idle;
mod iperf3;
mod mem;
mod net;
mod pci;
mod port;
mod serial;
mod stall_watch;
mod start;
mod statics;
mod time;
mod transport;
mod virtio_net;
mod virtio_pci;
