//! PCI for the VM: configuration space ([`config`]), the root with its host bridge, ECAM,
//! ports 0xCF8/0xCFC and BAR windows ([`host`]), MSI-X tables ([`msix`]) delivered through
//! KVM MSI routes ([`routing`]), and notify ioeventfds that follow their BAR ([`ioevents`]).
//! The virtio function on top is [`crate::devices::virtio::pci`].

pub mod config;
pub mod host;
pub mod ioevents;
pub mod msix;
pub mod routing;
