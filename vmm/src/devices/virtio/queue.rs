//! The device side of a split virtqueue (virtio 1.x §2.7): reading the available ring,
//! walking descriptor chains with every bad-input check, and filling the used ring.
//!
//! Why not the `virtio-queue` crate here: its `enable_notification`, `needs_notification` and
//! `add_used` put fixed `fence(SeqCst)`s and Release stores around the notification fields
//! (`avail_event`, `used->flags`, `used->idx`). vnetbed must reproduce devices *without* those
//! fences, and must route those stores through an emulated store buffer, so it needs control
//! of every store, fence and load on them. This module therefore only does the parts that
//! carry no notification ordering (descriptor chains, used elements); every access to the
//! notification fields lives in `net::notify_model`, the one place that decides it.
//!
//! Every malformed input is a [`QueueError`], never a panic; the caller turns it into
//! DEVICE_NEEDS_RESET.

use std::num::Wrapping;
use std::sync::atomic::Ordering;

use vm_memory::{Address, ByteValued, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// Descriptor flag: the chain continues in `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer holds an indirect descriptor table (not offered).
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// `used->flags` bit: the device does not want kicks (used when EVENT_IDX is off).
pub const VRING_USED_F_NO_NOTIFY: u16 = 1;
/// `avail->flags` bit: the driver does not want interrupts (used when EVENT_IDX is off).
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// The largest queue vnetbed offers.
pub const MAX_QUEUE_SIZE: u16 = 256;

/// One split-ring descriptor as laid out in guest memory (§2.7.5).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Guest physical address of the buffer.
    pub addr: u64,
    /// Buffer length in bytes.
    pub len: u32,
    /// `VIRTQ_DESC_F_*`.
    pub flags: u16,
    /// Next descriptor index when `flags & NEXT`.
    pub next: u16,
}

// SAFETY: `Descriptor` is repr(C), made only of integers, with no padding (8+4+2+2 bytes), so
// every byte pattern is a valid value.
unsafe impl ByteValued for Descriptor {}

/// One used-ring element (§2.7.8).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsedElem {
    /// Head index of the chain.
    pub id: u32,
    /// Bytes the device wrote into the chain.
    pub len: u32,
}

// SAFETY: repr(C), two u32, no padding; every byte pattern is valid.
unsafe impl ByteValued for UsedElem {}

/// What the driver programmed for one queue through the transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// QueueNum.
    pub size: u16,
    /// QueueReady.
    pub ready: bool,
    /// QueueDesc.
    pub desc_table: u64,
    /// QueueDriver (the available ring).
    pub avail_ring: u64,
    /// QueueDevice (the used ring).
    pub used_ring: u64,
}

/// Malformed queue state or descriptor chains written by the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Queue size {0} is not a power of two between 1 and the maximum.
    #[error("queue size {0} is not a power of two between 1 and {MAX_QUEUE_SIZE}")]
    BadSize(u16),
    /// The {what} at {addr:#x} (+{len:#x}) lies outside guest memory or is misaligned.
    #[error("the {what} at {addr:#x} (+{len:#x}) lies outside guest memory or is misaligned")]
    BadRing {
        /// Which ring.
        what: &'static str,
        /// Its guest address.
        addr: u64,
        /// Its length.
        len: u64,
    },
    /// Descriptor {index} points at {addr:#x} (+{len:#x}), outside guest memory.
    #[error("descriptor {index} points at {addr:#x} (+{len:#x}), outside guest memory")]
    BufferOutOfMemory {
        /// Descriptor index.
        index: u16,
        /// Buffer address.
        addr: u64,
        /// Buffer length.
        len: u32,
    },
    /// Descriptor index {index} is not below the queue size {size}.
    #[error("descriptor index {index} is not below the queue size {size}")]
    BadIndex {
        /// The index found.
        index: u16,
        /// The queue size.
        size: u16,
    },
    /// The chain starting at descriptor {head} loops back to descriptor {index}.
    #[error("the chain starting at descriptor {head} loops back to descriptor {index}")]
    Loop {
        /// Head of the chain.
        head: u16,
        /// The descriptor seen twice.
        index: u16,
    },
    /// The chain starting at descriptor {head} is longer than the queue size {size}.
    #[error("the chain starting at descriptor {head} is longer than the queue size {size}")]
    ChainTooLong {
        /// Head of the chain.
        head: u16,
        /// The queue size.
        size: u16,
    },
    /// The chain starting at descriptor {head} ended early: virtio-queue stopped following
    /// it (its buffers add up to more than 4 GiB, or a descriptor could not be used).
    #[error("the chain starting at descriptor {head} ended early: virtio-queue stopped following it (over 4 GiB in total, or an unusable descriptor)")]
    ChainTruncated {
        /// Head of the chain.
        head: u16,
    },
    /// Descriptor {index} has length zero.
    #[error("descriptor {index} has length zero")]
    ZeroLength {
        /// Descriptor index.
        index: u16,
    },
    /// Descriptor {index} is device-{found} but this queue needs device-{expected} buffers.
    #[error("descriptor {index} is device-{found} but this queue needs device-{expected} buffers")]
    WrongDirection {
        /// Descriptor index.
        index: u16,
        /// What the queue needs ("readable" or "writable").
        expected: &'static str,
        /// What the descriptor is.
        found: &'static str,
    },
    /// Descriptor {index} is indirect, but VIRTIO_F_INDIRECT_DESC was not offered.
    #[error("descriptor {index} is indirect, but VIRTIO_F_INDIRECT_DESC was not offered")]
    Indirect {
        /// Descriptor index.
        index: u16,
    },
    /// avail->idx jumped from {next_avail} to {avail_idx}, more than the queue size {size}.
    #[error("avail->idx jumped from {next_avail} to {avail_idx}, more than the queue size {size}")]
    AvailIdxJump {
        /// The device's next available index.
        next_avail: u16,
        /// What the guest wrote.
        avail_idx: u16,
        /// The queue size.
        size: u16,
    },
    /// Guest memory access failed at {0:#x}.
    #[error("guest memory access failed at {0:#x}")]
    Memory(u64),
}

impl QueueError {
    /// A stable short name for events.
    pub fn kind(&self) -> &'static str {
        match self {
            QueueError::BadSize(_) => "queue_size_not_power_of_two",
            QueueError::BadRing { .. } => "ring_outside_memory",
            QueueError::BufferOutOfMemory { .. } => "descriptor_outside_memory",
            QueueError::BadIndex { .. } => "descriptor_index_out_of_range",
            QueueError::Loop { .. } => "descriptor_loop",
            QueueError::ChainTooLong { .. } => "chain_longer_than_queue",
            QueueError::ChainTruncated { .. } => "chain_truncated",
            QueueError::ZeroLength { .. } => "zero_length_buffer",
            QueueError::WrongDirection { .. } => "wrong_direction_buffer",
            QueueError::Indirect { .. } => "indirect_not_negotiated",
            QueueError::AvailIdxJump { .. } => "avail_idx_jump",
            QueueError::Memory(_) => "guest_memory_access",
        }
    }
}

/// Which way the device uses a queue's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The device writes (rx).
    DeviceWrites,
    /// The device reads (tx).
    DeviceReads,
}

/// One buffer of a chain, already checked to lie inside guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Guest address.
    pub addr: GuestAddress,
    /// Length in bytes (never zero).
    pub len: u32,
}

/// A validated descriptor chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Head descriptor index (the used element's id).
    pub head: u16,
    /// The buffers in chain order.
    pub buffers: Vec<Buffer>,
}

impl Chain {
    /// Total bytes of all buffers.
    pub fn total_len(&self) -> u64 {
        self.buffers.iter().map(|b| u64::from(b.len)).sum()
    }
}

/// Whether `size` is a valid split-queue size (§2.7: a power of two, at most the maximum).
pub fn valid_size(size: u16, max: u16) -> bool {
    size != 0 && size <= max.min(MAX_QUEUE_SIZE) && size.is_power_of_two()
}

/// Where one split queue's rings are in guest memory, checked against it: the addresses of
/// every notification field, shared by both queue backends and the watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    /// The queue size.
    pub size: u16,
    /// The descriptor table.
    pub desc_table: GuestAddress,
    /// The available ring (driver area).
    pub avail_ring: GuestAddress,
    /// The used ring (device area).
    pub used_ring: GuestAddress,
}

impl RingLayout {
    /// Check `cfg`'s rings against `mem` (alignment §2.7 table, rings inside memory). The size
    /// is not checked here (see [`valid_size`]).
    pub fn check(mem: &GuestMemoryMmap<()>, cfg: &QueueConfig) -> Result<Self, QueueError> {
        let n = u64::from(cfg.size);
        let rings = [
            ("descriptor table", cfg.desc_table, 16 * n, 16),
            ("available ring", cfg.avail_ring, 6 + 2 * n, 2),
            ("used ring", cfg.used_ring, 6 + 8 * n, 4),
        ];
        for (what, addr, len, align) in rings {
            let fits = addr % align == 0 && mem.check_range(GuestAddress(addr), len as usize);
            if !fits {
                return Err(QueueError::BadRing { what, addr, len });
            }
        }
        Ok(Self {
            size: cfg.size,
            desc_table: GuestAddress(cfg.desc_table),
            avail_ring: GuestAddress(cfg.avail_ring),
            used_ring: GuestAddress(cfg.used_ring),
        })
    }

    /// `avail->flags` (guest-written).
    pub fn avail_flags_addr(&self) -> GuestAddress {
        self.avail_ring
    }
    /// `avail->idx` (guest-written).
    pub fn avail_idx_addr(&self) -> GuestAddress {
        self.avail_ring.unchecked_add(2)
    }
    /// `used_event`, after the available ring (guest-written, §2.7.10).
    pub fn used_event_addr(&self) -> GuestAddress {
        self.avail_ring.unchecked_add(4 + 2 * u64::from(self.size))
    }
    /// `used->flags` (device-written).
    pub fn used_flags_addr(&self) -> GuestAddress {
        self.used_ring
    }
    /// `used->idx` (device-written).
    pub fn used_idx_addr(&self) -> GuestAddress {
        self.used_ring.unchecked_add(2)
    }
    /// `avail_event`, after the used ring (device-written, §2.7.10).
    pub fn avail_event_addr(&self) -> GuestAddress {
        self.used_ring.unchecked_add(4 + 8 * u64::from(self.size))
    }

    /// Read a 16-bit ring field.
    pub fn load_u16(
        &self,
        mem: &GuestMemoryMmap<()>,
        addr: GuestAddress,
        order: Ordering,
    ) -> Result<u16, QueueError> {
        mem.load(addr, order)
            .map_err(|_| QueueError::Memory(addr.0))
    }
}

/// The device's view of one split queue: the ring addresses and its private indices.
#[derive(Debug, Clone)]
pub struct SplitQueue {
    layout: RingLayout,
    /// The next available-ring entry the device will take.
    pub next_avail: Wrapping<u16>,
    /// The next used-ring entry the device will fill (published through the notify model).
    pub next_used: Wrapping<u16>,
}

impl SplitQueue {
    /// Check `cfg` against `mem` (sizes, alignment §2.7 table, rings inside memory).
    pub fn new(mem: &GuestMemoryMmap<()>, cfg: &QueueConfig, max: u16) -> Result<Self, QueueError> {
        if !valid_size(cfg.size, max) {
            return Err(QueueError::BadSize(cfg.size));
        }
        Ok(Self {
            layout: RingLayout::check(mem, cfg)?,
            next_avail: Wrapping(0),
            next_used: Wrapping(0),
        })
    }

    /// Where the rings are.
    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }

    /// The queue size.
    pub fn size(&self) -> u16 {
        self.layout.size
    }

    /// `avail->flags` (guest-written).
    pub fn avail_flags_addr(&self) -> GuestAddress {
        self.layout.avail_flags_addr()
    }
    /// `avail->idx` (guest-written).
    pub fn avail_idx_addr(&self) -> GuestAddress {
        self.layout.avail_idx_addr()
    }
    /// `used_event`, after the available ring (guest-written, §2.7.10).
    pub fn used_event_addr(&self) -> GuestAddress {
        self.layout.used_event_addr()
    }
    /// `used->flags` (device-written).
    pub fn used_flags_addr(&self) -> GuestAddress {
        self.layout.used_flags_addr()
    }
    /// `used->idx` (device-written).
    pub fn used_idx_addr(&self) -> GuestAddress {
        self.layout.used_idx_addr()
    }
    /// `avail_event`, after the used ring (device-written, §2.7.10).
    pub fn avail_event_addr(&self) -> GuestAddress {
        self.layout.avail_event_addr()
    }

    /// Read a guest-written 16-bit ring field.
    pub fn load_u16(
        &self,
        mem: &GuestMemoryMmap<()>,
        addr: GuestAddress,
        order: Ordering,
    ) -> Result<u16, QueueError> {
        self.layout.load_u16(mem, addr, order)
    }

    /// Read `avail->idx` and check it did not move more than the queue size ahead of the
    /// device (a guest bug). Returns the entries available.
    pub fn available(&self, mem: &GuestMemoryMmap<()>) -> Result<u16, QueueError> {
        // Acquire: the ring entries and descriptors the guest published before this idx must
        // be read after it (§2.7.13.3 driver side has a write barrier before idx; this is the
        // matching read barrier — QEMU commit a821ce5 "order index/descriptor reads").
        let avail_idx = self.load_u16(mem, self.avail_idx_addr(), Ordering::Acquire)?;
        let pending = (Wrapping(avail_idx) - self.next_avail).0;
        if pending > self.size() {
            return Err(QueueError::AvailIdxJump {
                next_avail: self.next_avail.0,
                avail_idx,
                size: self.size(),
            });
        }
        Ok(pending)
    }

    /// Take the next available chain, validated for `dir`; `None` when the ring is empty.
    pub fn pop(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        dir: Direction,
    ) -> Result<Option<Chain>, QueueError> {
        if self.available(mem)? == 0 {
            return Ok(None);
        }
        let slot = u64::from(self.next_avail.0 % self.size());
        let entry = self.layout.avail_ring.unchecked_add(4 + 2 * slot);
        // Relaxed is enough: ordered after the Acquire load of avail->idx above.
        let head = self.load_u16(mem, entry, Ordering::Relaxed)?;
        let chain = self.walk(mem, head, dir)?;
        self.next_avail += Wrapping(1);
        Ok(Some(chain))
    }

    /// Give back the last `n` popped chains (they will be popped again).
    pub fn unpop(&mut self, n: u16) {
        self.next_avail -= Wrapping(n);
    }

    /// Walk the chain at `head`, checking every descriptor.
    pub fn walk(
        &self,
        mem: &GuestMemoryMmap<()>,
        head: u16,
        dir: Direction,
    ) -> Result<Chain, QueueError> {
        let mut seen = [0u64; (MAX_QUEUE_SIZE as usize) / 64];
        let mut buffers = Vec::new();
        let mut index = head;
        let size = self.size();
        loop {
            if index >= size {
                return Err(QueueError::BadIndex { index, size });
            }
            let (word, bit) = (usize::from(index) / 64, 1u64 << (index % 64));
            if seen[word] & bit != 0 {
                return Err(QueueError::Loop { head, index });
            }
            seen[word] |= bit;
            if buffers.len() >= usize::from(size) {
                return Err(QueueError::ChainTooLong { head, size });
            }
            let at = self.layout.desc_table.unchecked_add(16 * u64::from(index));
            let d: Descriptor = mem.read_obj(at).map_err(|_| QueueError::Memory(at.0))?;
            if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                return Err(QueueError::Indirect { index });
            }
            if d.len == 0 {
                return Err(QueueError::ZeroLength { index });
            }
            let writable = d.flags & VIRTQ_DESC_F_WRITE != 0;
            match (dir, writable) {
                (Direction::DeviceWrites, false) => {
                    return Err(QueueError::WrongDirection {
                        index,
                        expected: "writable",
                        found: "readable",
                    })
                }
                (Direction::DeviceReads, true) => {
                    return Err(QueueError::WrongDirection {
                        index,
                        expected: "readable",
                        found: "writable",
                    })
                }
                _ => {}
            }
            if !mem.check_range(GuestAddress(d.addr), d.len as usize) {
                return Err(QueueError::BufferOutOfMemory {
                    index,
                    addr: d.addr,
                    len: d.len,
                });
            }
            buffers.push(Buffer {
                addr: GuestAddress(d.addr),
                len: d.len,
            });
            if d.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(Chain { head, buffers });
            }
            index = d.next;
        }
    }

    /// Write the used element for `head` at `next_used` and advance `next_used`. The element
    /// only becomes meaningful to the guest once `used->idx` is published (by the notify model).
    pub fn add_used(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        let slot = u64::from(self.next_used.0 % self.size());
        let at = self.layout.used_ring.unchecked_add(4 + 8 * slot);
        mem.write_obj(
            UsedElem {
                id: u32::from(head),
                len,
            },
            at,
        )
        .map_err(|_| QueueError::Memory(at.0))?;
        self.next_used += Wrapping(1);
        Ok(())
    }
}

/// `vring_need_event` (§2.7.10, Linux include/uapi/linux/virtio_ring.h): whether moving an
/// index from `old` to `new` crosses `event`.
pub fn vring_need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u16 = 8;

    fn setup() -> (GuestMemoryMmap<()>, SplitQueue) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let cfg = QueueConfig {
            size: SIZE,
            ready: true,
            desc_table: 0x1000,
            avail_ring: 0x2000,
            used_ring: 0x3000,
        };
        let q = SplitQueue::new(&mem, &cfg, 256).unwrap();
        (mem, q)
    }

    fn desc(mem: &GuestMemoryMmap<()>, i: u16, d: Descriptor) {
        mem.write_obj(d, GuestAddress(0x1000 + 16 * u64::from(i)))
            .unwrap();
    }

    fn publish(mem: &GuestMemoryMmap<()>, slot: u16, head: u16, idx: u16) {
        mem.write_obj(head, GuestAddress(0x2004 + 2 * u64::from(slot)))
            .unwrap();
        mem.write_obj(idx, GuestAddress(0x2002)).unwrap();
    }

    #[test]
    fn pops_a_two_buffer_chain_and_fills_the_used_ring() {
        let (mem, mut q) = setup();
        desc(
            &mem,
            0,
            Descriptor {
                addr: 0x5000,
                len: 12,
                flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
                next: 3,
            },
        );
        desc(
            &mem,
            3,
            Descriptor {
                addr: 0x6000,
                len: 100,
                flags: VIRTQ_DESC_F_WRITE,
                next: 0,
            },
        );
        assert_eq!(q.pop(&mem, Direction::DeviceWrites).unwrap(), None);
        publish(&mem, 0, 0, 1);
        let c = q.pop(&mem, Direction::DeviceWrites).unwrap().unwrap();
        assert_eq!(c.head, 0);
        assert_eq!(c.total_len(), 112);
        assert_eq!(q.pop(&mem, Direction::DeviceWrites).unwrap(), None);
        q.add_used(&mem, 0, 112).unwrap();
        let e: UsedElem = mem.read_obj(GuestAddress(0x3004)).unwrap();
        assert_eq!(e, UsedElem { id: 0, len: 112 });
        assert_eq!(q.next_used.0, 1);
    }

    fn pop_err(d: &[(u16, Descriptor)], head: u16, dir: Direction) -> QueueError {
        let (mem, mut q) = setup();
        for (i, x) in d {
            desc(&mem, *i, *x);
        }
        publish(&mem, 0, head, 1);
        q.pop(&mem, dir).unwrap_err()
    }

    #[test]
    fn rejects_every_malformed_chain() {
        let w = VIRTQ_DESC_F_WRITE;
        let n = VIRTQ_DESC_F_NEXT;
        let e = pop_err(
            &[(
                0,
                Descriptor {
                    addr: 0xfff0,
                    len: 0x100,
                    flags: w,
                    next: 0,
                },
            )],
            0,
            Direction::DeviceWrites,
        );
        assert!(matches!(e, QueueError::BufferOutOfMemory { .. }), "{e}");
        let e = pop_err(
            &[(
                0,
                Descriptor {
                    addr: 0x5000,
                    len: 1,
                    flags: w | n,
                    next: 0,
                },
            )],
            0,
            Direction::DeviceWrites,
        );
        assert!(matches!(e, QueueError::Loop { .. }), "{e}");
        let e = pop_err(
            &[(
                0,
                Descriptor {
                    addr: 0x5000,
                    len: 0,
                    flags: w,
                    next: 0,
                },
            )],
            0,
            Direction::DeviceWrites,
        );
        assert!(matches!(e, QueueError::ZeroLength { .. }), "{e}");
        let e = pop_err(
            &[(
                0,
                Descriptor {
                    addr: 0x5000,
                    len: 8,
                    flags: 0,
                    next: 0,
                },
            )],
            0,
            Direction::DeviceWrites,
        );
        assert!(matches!(e, QueueError::WrongDirection { .. }), "{e}");
        let e = pop_err(
            &[(
                0,
                Descriptor {
                    addr: 0x5000,
                    len: 8,
                    flags: w,
                    next: 0,
                },
            )],
            0,
            Direction::DeviceReads,
        );
        assert!(matches!(e, QueueError::WrongDirection { .. }), "{e}");
        let e = pop_err(&[], 9, Direction::DeviceReads);
        assert!(matches!(e, QueueError::BadIndex { .. }), "{e}");
        let e = pop_err(
            &[(
                0,
                Descriptor {
                    addr: 0x5000,
                    len: 8,
                    flags: n,
                    next: 8,
                },
            )],
            0,
            Direction::DeviceReads,
        );
        assert!(matches!(e, QueueError::BadIndex { .. }), "{e}");
        // A chain through every descriptor and back: longer than the queue, detected as a loop.
        let all: Vec<_> = (0..SIZE)
            .map(|i| {
                (
                    i,
                    Descriptor {
                        addr: 0x5000,
                        len: 8,
                        flags: n,
                        next: (i + 1) % SIZE,
                    },
                )
            })
            .collect();
        let e = pop_err(&all, 0, Direction::DeviceReads);
        assert!(matches!(e, QueueError::Loop { head: 0, index: 0 }), "{e}");
    }

    #[test]
    fn rejects_an_avail_idx_jump_and_bad_sizes() {
        let (mem, q) = setup();
        mem.write_obj(SIZE + 1, GuestAddress(0x2002)).unwrap();
        assert!(matches!(
            q.available(&mem),
            Err(QueueError::AvailIdxJump { .. })
        ));
        mem.write_obj(SIZE, GuestAddress(0x2002)).unwrap();
        assert_eq!(q.available(&mem).unwrap(), SIZE);
        for size in [0, 3, 512] {
            let cfg = QueueConfig {
                size,
                ready: true,
                desc_table: 0x1000,
                avail_ring: 0x2000,
                used_ring: 0x3000,
            };
            assert_eq!(
                SplitQueue::new(&mem, &cfg, 256).unwrap_err(),
                QueueError::BadSize(size)
            );
        }
        let cfg = QueueConfig {
            size: 8,
            ready: true,
            desc_table: 0xfff0,
            avail_ring: 0x2000,
            used_ring: 0x3000,
        };
        assert!(matches!(
            SplitQueue::new(&mem, &cfg, 256),
            Err(QueueError::BadRing { .. })
        ));
    }

    #[test]
    fn need_event_matches_linux() {
        assert!(vring_need_event(0, 1, 0));
        assert!(!vring_need_event(5, 3, 0));
        assert!(vring_need_event(5, 6, 5));
        assert!(!vring_need_event(5, 5, 4));
        assert!(vring_need_event(0xffff, 0, 0xffff));
    }
}
