//! Emulated devices and the buses they sit on.

pub mod bus;
pub mod legacy;
pub mod pci;
pub mod serial;
pub mod virtio;
