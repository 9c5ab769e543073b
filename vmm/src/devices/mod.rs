//! Emulated devices and the buses they sit on.

pub mod bus;
pub mod legacy;
pub mod pci;
pub mod serial;
#[cfg(test)]
pub(crate) mod test_events;
pub mod virtio;
