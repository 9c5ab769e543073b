//! Port-I/O and MMIO buses: address ranges mapped to devices.
//!
//! A vCPU thread that takes an I/O or MMIO exit looks the address up here and calls
//! the device with the offset into its range. Devices are shared between vCPU threads
//! (and, for virtio, with their device thread) behind a mutex.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device that answers loads and stores in an address range.
///
/// `offset` is relative to the start of the device's range. Implementations must never
/// panic on any offset or length: both are guest controlled.
pub trait BusDevice: Send {
    /// A guest load of `data.len()` bytes at `offset`; fill `data`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// A guest store of `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A shared device handle.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Errors from building a bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The range [{base:#x}, +{len:#x}) overlaps a device already on the bus.
    #[error("bus range [{base:#x}, +{len:#x}) overlaps a device already on the bus")]
    Overlap {
        /// Start of the rejected range.
        base: u64,
        /// Length of the rejected range.
        len: u64,
    },
    /// A zero-length range.
    #[error("bus range at {0:#x} has zero length")]
    Empty(u64),
}

#[derive(Clone)]
struct Entry {
    len: u64,
    device: SharedDevice,
}

/// An address space of devices.
#[derive(Clone, Default)]
pub struct Bus {
    ranges: BTreeMap<u64, Entry>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Map `device` at `[base, base + len)`.
    pub fn insert(&mut self, base: u64, len: u64, device: SharedDevice) -> Result<(), BusError> {
        if len == 0 {
            return Err(BusError::Empty(base));
        }
        let end = base
            .checked_add(len)
            .ok_or(BusError::Overlap { base, len })?;
        if let Some((b, e)) = self.ranges.range(..end).next_back() {
            if b + e.len > base {
                return Err(BusError::Overlap { base, len });
            }
        }
        self.ranges.insert(base, Entry { len, device });
        Ok(())
    }

    fn resolve(&self, addr: u64) -> Option<(u64, &SharedDevice)> {
        let (base, e) = self.ranges.range(..=addr).next_back()?;
        (addr - base < e.len).then_some((addr - base, &e.device))
    }

    /// Dispatch a load; returns false when no device claims `addr` (the data is then all ones,
    /// as on a PC with nothing decoding the address).
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr) {
            Some((offset, dev)) => {
                lock(dev).read(offset, data);
                true
            }
            None => {
                data.fill(0xff);
                false
            }
        }
    }

    /// Dispatch a store; returns false when no device claims `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr) {
            Some((offset, dev)) => {
                lock(dev).write(offset, data);
                true
            }
            None => false,
        }
    }
}

/// Lock a device, recovering from a poisoned mutex: a device that panicked once must not
/// take every later access down with it (the panic itself is already a reported bug).
pub fn lock(dev: &SharedDevice) -> std::sync::MutexGuard<'_, dyn BusDevice + 'static> {
    dev.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(Vec<(u64, Vec<u8>)>);
    impl BusDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn dispatches_by_range_with_offsets() {
        let mut bus = Bus::new();
        let dev = Arc::new(Mutex::new(Echo(vec![])));
        bus.insert(0x100, 0x10, dev.clone()).unwrap();
        let mut b = [0u8; 2];
        assert!(bus.read(0x103, &mut b));
        assert_eq!(b, [3, 3]);
        assert!(!bus.read(0x110, &mut b));
        assert_eq!(b, [0xff, 0xff]);
        assert!(bus.write(0x10f, &[7]));
        assert_eq!(dev.lock().unwrap().0, vec![(0xf, vec![7])]);
    }

    #[test]
    fn rejects_overlaps_and_empty_ranges() {
        let mut bus = Bus::new();
        let dev: SharedDevice = Arc::new(Mutex::new(Echo(vec![])));
        bus.insert(0x100, 0x10, dev.clone()).unwrap();
        assert!(bus.insert(0x10f, 1, dev.clone()).is_err());
        assert!(bus.insert(0xf8, 0x9, dev.clone()).is_err());
        assert!(bus.insert(0xf8, 0x8, dev.clone()).is_ok());
        assert!(bus.insert(0x200, 0, dev).is_err());
    }
}
