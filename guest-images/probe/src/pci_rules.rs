//! Hardware-independent PCI rules the probe applies to what it reads (host-tested): the
//! capability-list walk, which refuses a list that loops or points into the header, and
//! the check that a BAR does not overlap guest RAM.

/// Capability steps before a list counts as looping (256 bytes hold at most 48).
pub const MAX_CAPABILITY_STEPS: usize = 48;
/// Up to this many capabilities are collected per function.
pub const MAX_CAPABILITIES: usize = 24;

/// The capability list loops, or points into the 64-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilityLoop;

/// A function's capabilities: `(offset, id)`.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    entries: [(u16, u8); MAX_CAPABILITIES],
    len: usize,
}

impl Capabilities {
    /// The capabilities in list order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u8)> + '_ {
        self.entries[..self.len].iter().copied()
    }
}

/// Walk a capability list from `first` (the capabilities pointer), reading configuration
/// bytes with `read8`.
pub fn walk_capabilities(
    first: u8,
    read8: impl Fn(u16) -> u8,
) -> Result<Capabilities, CapabilityLoop> {
    let mut caps = Capabilities {
        entries: [(0, 0); MAX_CAPABILITIES],
        len: 0,
    };
    let mut pointer = u16::from(first & 0xfc);
    let mut steps = 0;
    while pointer != 0 {
        if pointer < 0x40 || steps >= MAX_CAPABILITY_STEPS {
            return Err(CapabilityLoop);
        }
        let id = read8(pointer);
        if caps.len < MAX_CAPABILITIES {
            caps.entries[caps.len] = (pointer, id);
            caps.len += 1;
        }
        pointer = u16::from(read8(pointer + 1) & 0xfc);
        steps += 1;
    }
    Ok(caps)
}

/// Most RAM ranges remembered.
pub const MAX_RAM_RANGES: usize = 16;

/// Usable RAM as `(base, length)` ranges from the memory map.
#[derive(Debug, Clone, Copy, Default)]
pub struct RamRanges {
    ranges: [(u64, u64); MAX_RAM_RANGES],
    len: usize,
}

impl RamRanges {
    /// Add a range (ignored when empty or when the table is full).
    pub fn push(&mut self, base: u64, length: u64) {
        if self.len < MAX_RAM_RANGES && length > 0 {
            self.ranges[self.len] = (base, length);
            self.len += 1;
        }
    }

    /// Whether `[base, base + length)` overlaps usable RAM.
    pub fn overlaps(&self, base: u64, length: u64) -> bool {
        let end = base.saturating_add(length);
        self.ranges[..self.len]
            .iter()
            .any(|&(b, l)| base < b.saturating_add(l) && b < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(links: &[(u16, u8, u8)]) -> impl Fn(u16) -> u8 + '_ {
        move |offset| {
            for &(at, id, next) in links {
                if offset == at {
                    return id;
                }
                if offset == at + 1 {
                    return next;
                }
            }
            0
        }
    }

    #[test]
    fn walks_a_list_in_order() {
        let links = [(0x40, 0x11, 0x84), (0x84, 0x09, 0x70), (0x70, 0x09, 0x00)];
        let caps = walk_capabilities(0x40, space(&links)).unwrap();
        let got: Vec<_> = caps.iter().collect();
        assert_eq!(got, [(0x40, 0x11), (0x84, 0x09), (0x70, 0x09)]);
        assert_eq!(walk_capabilities(0, space(&[])).unwrap().iter().count(), 0);
    }

    #[test]
    fn refuses_a_looping_list_and_one_into_the_header() {
        let looping = [(0x40, 0x09, 0x50), (0x50, 0x09, 0x40)];
        assert_eq!(
            walk_capabilities(0x40, space(&looping)).err(),
            Some(CapabilityLoop)
        );
        let selfloop = [(0x60, 0x09, 0x60)];
        assert!(walk_capabilities(0x60, space(&selfloop)).is_err());
        let header = [(0x40, 0x09, 0x10)];
        assert!(walk_capabilities(0x40, space(&header)).is_err());
    }

    #[test]
    fn bar_overlap_with_ram() {
        let mut ram = RamRanges::default();
        ram.push(0, 0x9fc00);
        ram.push(0x10_0000, 0x3f0_0000);
        assert!(ram.overlaps(0x200_0000, 0x1000), "inside RAM");
        assert!(ram.overlaps(0x3ff_f000, 0x2000), "straddles the end");
        assert!(!ram.overlaps(0x400_0000, 0x1000), "just after");
        assert!(!ram.overlaps(0xfebf_0000, 0x4000), "the PCI hole");
        assert!(!ram.overlaps(0xa0000, 0x10000), "the VGA hole");
    }
}
