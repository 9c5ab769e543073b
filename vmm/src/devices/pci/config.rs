//! A PCI Express type-0 configuration space (4 KiB; the first 256 bytes are what ports
//! 0xCF8/0xCFC reach): the header, BARs whose writable bits encode their size, and a
//! capability list. Every byte has a write mask; writes go through it, so read-only fields
//! stay as built and a BAR reads back its size mask after the all-ones write of sizing.

/// Size of an extended (ECAM) configuration space.
pub const CONFIG_SIZE: usize = 4096;

/// Header offsets.
#[allow(missing_docs)]
pub mod reg {
    pub const VENDOR_ID: usize = 0x00;
    pub const DEVICE_ID: usize = 0x02;
    pub const COMMAND: usize = 0x04;
    pub const STATUS: usize = 0x06;
    pub const REVISION: usize = 0x08;
    pub const CLASS: usize = 0x09;
    pub const HEADER_TYPE: usize = 0x0e;
    pub const BAR0: usize = 0x10;
    pub const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
    pub const SUBSYSTEM_ID: usize = 0x2e;
    pub const CAPABILITIES: usize = 0x34;
    pub const INTERRUPT_LINE: usize = 0x3c;
    pub const INTERRUPT_PIN: usize = 0x3d;
}

/// Command register: I/O space decoding.
pub const COMMAND_IO: u16 = 1 << 0;
/// Command register: memory space decoding.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: bus mastering.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command register: INTx disabled.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
const STATUS_CAPABILITIES: u16 = 1 << 4;
/// Where the first capability goes.
const FIRST_CAPABILITY: usize = 0x40;

/// What a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// 32-bit memory.
    Memory32,
    /// 64-bit memory (the next BAR register holds the high half).
    Memory64,
    /// I/O ports.
    Io,
}

/// A BAR's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarDef {
    /// Kind.
    pub kind: BarKind,
    /// Size in bytes (a power of two).
    pub size: u64,
}

/// Why a configuration write was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Outside the 4 KiB space, not 1, 2 or 4 bytes, or not naturally aligned.
    #[error("configuration access of {len} bytes at {offset:#x} is out of range or misaligned")]
    OutOfRange {
        /// Offset.
        offset: u64,
        /// Length.
        len: usize,
    },
}

/// A function's configuration space.
pub struct ConfigSpace {
    bytes: Box<[u8; CONFIG_SIZE]>,
    wmask: Box<[u8; CONFIG_SIZE]>,
    bars: [Option<BarDef>; 6],
    next_capability: usize,
    last_capability: Option<usize>,
}

impl std::fmt::Debug for ConfigSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSpace")
            .field("vendor", &self.read16(reg::VENDOR_ID))
            .field("device", &self.read16(reg::DEVICE_ID))
            .finish()
    }
}

impl ConfigSpace {
    /// A function `vendor:device` of class `class` (base, sub, programming interface).
    pub fn new(vendor: u16, device: u16, class: [u8; 3], revision: u8) -> Self {
        let mut c = Self {
            bytes: Box::new([0; CONFIG_SIZE]),
            wmask: Box::new([0; CONFIG_SIZE]),
            bars: [None; 6],
            next_capability: FIRST_CAPABILITY,
            last_capability: None,
        };
        c.set16(reg::VENDOR_ID, vendor);
        c.set16(reg::DEVICE_ID, device);
        c.bytes[reg::REVISION] = revision;
        c.bytes[reg::CLASS] = class[2];
        c.bytes[reg::CLASS + 1] = class[1];
        c.bytes[reg::CLASS + 2] = class[0];
        let command = COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;
        c.wmask[reg::COMMAND..reg::COMMAND + 2].copy_from_slice(&command.to_le_bytes());
        c.wmask[reg::INTERRUPT_LINE] = 0xff;
        c
    }

    /// Set a read-only 16-bit field (building the function).
    pub fn set16(&mut self, offset: usize, v: u16) {
        self.bytes[offset..offset + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// Set a field of any width (building the function).
    pub fn set_bytes(&mut self, offset: usize, v: &[u8]) {
        self.bytes[offset..offset + v.len()].copy_from_slice(v);
    }

    /// Interrupt pin (1 = INTA) and the line the VMM routed it to.
    pub fn set_interrupt(&mut self, pin: u8, line: u8) {
        self.bytes[reg::INTERRUPT_PIN] = pin;
        self.bytes[reg::INTERRUPT_LINE] = line;
    }

    /// Define BAR `index` with `def`, at `base` (as firmware would have assigned it).
    pub fn set_bar(&mut self, index: usize, def: BarDef, base: u64) {
        let at = reg::BAR0 + 4 * index;
        let (flags, low_mask) = match def.kind {
            BarKind::Memory32 => (0u32, 0xffff_fff0u32),
            BarKind::Memory64 => (0b100, 0xffff_fff0),
            BarKind::Io => (1, 0x0000_fffc),
        };
        let size_mask = !(def.size - 1);
        let low = ((base as u32) & low_mask & size_mask as u32) | flags;
        self.bytes[at..at + 4].copy_from_slice(&low.to_le_bytes());
        self.wmask[at..at + 4].copy_from_slice(&(low_mask & size_mask as u32).to_le_bytes());
        if def.kind == BarKind::Memory64 {
            let high = (base >> 32) as u32;
            self.bytes[at + 4..at + 8].copy_from_slice(&high.to_le_bytes());
            self.wmask[at + 4..at + 8].copy_from_slice(&((size_mask >> 32) as u32).to_le_bytes());
        }
        self.bars[index] = Some(def);
    }

    /// Append a capability: `body` starts with its ID byte and a placeholder next-pointer
    /// byte; `wmask` (as long as `body`, or empty) says which bits the guest may write.
    /// Returns its offset.
    pub fn add_capability(&mut self, body: &[u8], wmask: &[u8]) -> usize {
        let at = self.next_capability;
        self.bytes[at..at + body.len()].copy_from_slice(body);
        self.bytes[at + 1] = 0;
        self.wmask[at..at + wmask.len()].copy_from_slice(wmask);
        match self.last_capability {
            None => {
                self.bytes[reg::CAPABILITIES] = at as u8;
                let status = self.read16(reg::STATUS) | STATUS_CAPABILITIES;
                self.set16(reg::STATUS, status);
            }
            Some(prev) => self.bytes[prev + 1] = at as u8,
        }
        self.last_capability = Some(at);
        // Capabilities are DWORD aligned.
        self.next_capability = (at + body.len()).next_multiple_of(4);
        at
    }

    /// A 16-bit field.
    pub fn read16(&self, offset: usize) -> u16 {
        u16::from_le_bytes([self.bytes[offset], self.bytes[offset + 1]])
    }

    /// A 32-bit field.
    pub fn read32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes[offset..offset + 4]);
        u32::from_le_bytes(b)
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.read16(reg::COMMAND)
    }

    fn check(offset: u64, len: usize) -> Result<usize, ConfigError> {
        let bad = ConfigError::OutOfRange { offset, len };
        if !matches!(len, 1 | 2 | 4) || offset % len as u64 != 0 {
            return Err(bad);
        }
        match usize::try_from(offset) {
            Ok(o) if o.checked_add(len).is_some_and(|end| end <= CONFIG_SIZE) => Ok(o),
            _ => Err(bad),
        }
    }

    /// A guest load; out of range reads as all ones (nothing decodes it).
    pub fn read(&self, offset: u64, data: &mut [u8]) -> Result<(), ConfigError> {
        match Self::check(offset, data.len()) {
            Ok(o) => {
                data.copy_from_slice(&self.bytes[o..o + data.len()]);
                Ok(())
            }
            Err(e) => {
                data.fill(0xff);
                Err(e)
            }
        }
    }

    /// A guest store through the write mask; out of range is refused (and ignored).
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), ConfigError> {
        let o = Self::check(offset, data.len())?;
        for (i, &b) in data.iter().enumerate() {
            let m = self.wmask[o + i];
            self.bytes[o + i] = (self.bytes[o + i] & !m) | (b & m);
        }
        Ok(())
    }

    /// BAR `index`'s definition and current base, if it is defined.
    pub fn bar(&self, index: usize) -> Option<(BarDef, u64)> {
        let def = (*self.bars.get(index)?)?;
        let at = reg::BAR0 + 4 * index;
        let low = u64::from(self.read32(at));
        let base = match def.kind {
            BarKind::Memory32 => low & !0xf,
            BarKind::Memory64 => (u64::from(self.read32(at + 4)) << 32) | (low & !0xf),
            BarKind::Io => low & !0x3,
        };
        Some((def, base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> ConfigSpace {
        let mut c = ConfigSpace::new(0x1af4, 0x1041, [2, 0, 0], 1);
        c.set_bar(
            0,
            BarDef {
                kind: BarKind::Memory64,
                size: 0x8000,
            },
            0xe100_0000,
        );
        c.set_bar(
            2,
            BarDef {
                kind: BarKind::Io,
                size: 0x40,
            },
            0x1000,
        );
        c
    }

    fn r32(c: &ConfigSpace, off: u64) -> u32 {
        let mut b = [0u8; 4];
        c.read(off, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    #[test]
    fn bars_size_and_move_through_their_masks() {
        let mut c = space();
        assert_eq!(c.bar(0).unwrap().1, 0xe100_0000);
        c.write(0x10, &u32::MAX.to_le_bytes()).unwrap();
        c.write(0x14, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(r32(&c, 0x10), 0xffff_8004, "size mask and 64-bit flags");
        assert_eq!(r32(&c, 0x14), 0xffff_ffff);
        c.write(0x10, &0xe200_0000u32.to_le_bytes()).unwrap();
        c.write(0x14, &0u32.to_le_bytes()).unwrap();
        assert_eq!(c.bar(0).unwrap().1, 0xe200_0000);
        c.write(0x18, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(r32(&c, 0x18) & 0xffff, 0xffc1, "I/O BAR of 64 ports");
        // Unimplemented BARs read as zero and ignore writes.
        c.write(0x20, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(r32(&c, 0x20), 0);
        assert!(c.bar(4).is_none());
    }

    #[test]
    fn read_only_fields_stay_and_bad_accesses_are_refused() {
        let mut c = space();
        c.write(0, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(r32(&c, 0), 0x1041_1af4);
        c.write(reg::COMMAND as u64, &0xffffu16.to_le_bytes())
            .unwrap();
        assert_eq!(c.command(), 0x0407);
        for (off, len) in [
            (4096u64, 4usize),
            (4094, 4),
            (1, 2),
            (2, 4),
            (0, 3),
            (u64::MAX, 1),
        ] {
            assert!(c.write(off, &vec![0xff; len]).is_err(), "{off} {len}");
            let mut b = vec![0u8; len];
            assert!(c.read(off, &mut b).is_err());
            assert!(b.iter().all(|&x| x == 0xff));
        }
    }

    #[test]
    fn capabilities_chain() {
        let mut c = space();
        let a = c.add_capability(&[0x11, 0xaa, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
        let b = c.add_capability(&[0x09, 0xbb, 16, 1], &[]);
        assert_eq!(a, 0x40);
        assert_eq!(b, 0x4c);
        assert_eq!(c.bytes[reg::CAPABILITIES], 0x40);
        assert_eq!(c.bytes[a + 1], 0x4c);
        assert_eq!(c.bytes[b + 1], 0);
        assert_ne!(c.read16(reg::STATUS) & STATUS_CAPABILITIES, 0);
    }
}
