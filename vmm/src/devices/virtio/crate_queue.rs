//! The second queue backend: rust-vmm's `virtio-queue` crate as the system under test.
//!
//! [`CrateQueue`] wraps the crate's [`Queue`] so that the virtio-net device can run on it
//! instead of on vnetbed's own [`SplitQueue`](super::queue::SplitQueue). Every ring access
//! that carries notification ordering goes through the crate, untouched:
//!
//! - taking chains: `iter()` (an Acquire load of `avail->idx`, then the ring entries);
//! - publishing: `add_used()` (the used element, then a Release store of `used->idx`: the
//!   crate publishes each element on its own);
//! - kicks: `disable_notification()` / `enable_notification()` (the store to `avail_event`
//!   or `used->flags`, the crate's `fence(SeqCst)`, the re-check of `avail->idx`);
//! - interrupts: `needs_notification()` (the crate's `fence(SeqCst)`, then `used_event`).
//!
//! vnetbed adds no fence and no ordering of its own around these calls: what is verified is
//! the crate's code. What the crate leaves to the device, vnetbed does: each descriptor is
//! checked for direction, length and guest-memory range, and a chain that the crate's
//! iterator ends early (it stops silently at a loop, at an out-of-range `next` or at a
//! chain over 4 GiB) is named and reported as the same [`QueueError`] kinds vnetbed's own
//! queue uses, so the device sets DEVICE_NEEDS_RESET the same way.
//!
//! Differences from vnetbed's own queue that a user sees (README, "virtio-queue"):
//! - `used->idx` is published per used element, never per frame, so the device does not
//!   offer VIRTIO_NET_F_MRG_RXBUF on this backend: a frame spread over several buffers would
//!   become visible to the driver one buffer at a time;
//! - without EVENT_IDX, `needs_notification()` ignores `VRING_AVAIL_F_NO_INTERRUPT` and always
//!   asks for an interrupt;
//! - the crate follows `VIRTQ_DESC_F_INDIRECT` tables even though the feature is not offered.

use std::sync::atomic::Ordering;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::queue::{
    valid_size, Buffer, Chain, Descriptor, Direction, QueueConfig, QueueError, RingLayout,
    VIRTQ_DESC_F_INDIRECT,
};

/// The `virtio-queue` version linked into this build and where Cargo took it from (from the
/// workspace's Cargo.lock at build time), e.g. `0.18.0 (crates.io)` or `0.18.0 (path)` for a
/// `[patch.crates-io]` checkout.
pub const VIRTIO_QUEUE_VERSION: &str = env!("VNETBED_VIRTIO_QUEUE_VERSION");

/// One split queue run by the `virtio-queue` crate.
#[derive(Debug)]
pub struct CrateQueue {
    queue: Queue,
    layout: RingLayout,
}

impl CrateQueue {
    /// Configure the crate's queue from what the driver programmed, with the same checks as
    /// vnetbed's own queue (size, alignment, rings inside guest memory).
    pub fn new(
        mem: &GuestMemoryMmap<()>,
        cfg: &QueueConfig,
        max: u16,
        event_idx: bool,
    ) -> Result<Self, QueueError> {
        if !valid_size(cfg.size, max) {
            return Err(QueueError::BadSize(cfg.size));
        }
        let layout = RingLayout::check(mem, cfg)?;
        let bad = |what, addr: u64, len: u64| QueueError::BadRing { what, addr, len };
        let n = u64::from(cfg.size);
        if cfg.avail_ring == 0 {
            // The crate takes an available ring at address 0 for "never configured" and
            // refuses to iterate it (QueueNotReady): refuse it here, at activation.
            return Err(bad(
                "available ring (virtio-queue refuses address 0)",
                0,
                6 + 2 * n,
            ));
        }
        let mut queue = Queue::new(max).map_err(|_| QueueError::BadSize(max))?;
        queue
            .try_set_size(cfg.size)
            .map_err(|_| QueueError::BadSize(cfg.size))?;
        queue
            .try_set_desc_table_address(GuestAddress(cfg.desc_table))
            .map_err(|_| bad("descriptor table", cfg.desc_table, 16 * n))?;
        queue
            .try_set_avail_ring_address(GuestAddress(cfg.avail_ring))
            .map_err(|_| bad("available ring", cfg.avail_ring, 6 + 2 * n))?;
        queue
            .try_set_used_ring_address(GuestAddress(cfg.used_ring))
            .map_err(|_| bad("used ring", cfg.used_ring, 6 + 8 * n))?;
        queue.set_event_idx(event_idx);
        queue.set_ready(true);
        if !queue.is_valid(mem) {
            // RingLayout::check accepted it, so the crate is stricter: say so plainly.
            return Err(bad(
                "queue (rejected by virtio-queue)",
                cfg.desc_table,
                16 * n,
            ));
        }
        Ok(Self { queue, layout })
    }

    /// Where the rings are.
    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }

    /// The queue size.
    pub fn size(&self) -> u16 {
        self.layout.size
    }

    /// The crate's next available index.
    pub fn next_avail(&self) -> u16 {
        self.queue.next_avail()
    }

    /// The crate's next used index (published: the crate stores `used->idx` per element).
    pub fn next_used(&self) -> u16 {
        self.queue.next_used()
    }

    /// Take the next available chain through the crate, validated for `dir`; `None` when the
    /// ring is empty.
    pub fn pop(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        dir: Direction,
    ) -> Result<Option<Chain>, QueueError> {
        let size = self.layout.size;
        let next_avail = self.queue.next_avail();
        let layout = self.layout;
        let mut iter = self.queue.iter(mem).map_err(|e| match e {
            virtio_queue::Error::InvalidAvailRingIndex => QueueError::AvailIdxJump {
                next_avail,
                avail_idx: layout
                    .load_u16(mem, layout.avail_idx_addr(), Ordering::Relaxed)
                    .unwrap_or(0),
                size,
            },
            _ => QueueError::Memory(layout.avail_ring.0),
        })?;
        let Some(chain) = iter.next() else {
            return Ok(None);
        };
        let head = chain.head_index();
        let mut buffers = Vec::new();
        let mut last: Option<virtio_queue::desc::split::Descriptor> = None;
        let mut index = head;
        for d in chain {
            if d.len() == 0 {
                return Err(QueueError::ZeroLength { index });
            }
            let writable = d.is_write_only();
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
            if !mem.check_range(d.addr(), d.len() as usize) {
                return Err(QueueError::BufferOutOfMemory {
                    index,
                    addr: d.addr().0,
                    len: d.len(),
                });
            }
            buffers.push(Buffer {
                addr: d.addr(),
                len: d.len(),
            });
            index = d.next();
            last = Some(d);
        }
        // The crate's chain iterator ends silently where a chain is malformed: name it.
        match last {
            None => Err(self.classify_empty_chain(mem, head)),
            Some(d) if d.has_next() => {
                let at = d.next();
                Err(if at >= size {
                    QueueError::BadIndex { index: at, size }
                } else if buffers.len() >= usize::from(size) {
                    // The crate allows at most `size` descriptors per chain: a longer one
                    // revisits a descriptor, i.e. loops.
                    QueueError::Loop { head, index: at }
                } else {
                    self.classify_stop(mem, head, at)
                })
            }
            Some(_) => Ok(Some(Chain { head, buffers })),
        }
    }

    /// The crate yielded no descriptor for `head`: out-of-range head, or a descriptor it
    /// refused to follow (an indirect table it could not use).
    fn classify_empty_chain(&self, mem: &GuestMemoryMmap<()>, head: u16) -> QueueError {
        let size = self.layout.size;
        if head >= size {
            return QueueError::BadIndex { index: head, size };
        }
        self.classify_stop(mem, head, head)
    }

    /// The crate stopped at descriptor `index` (inside the table) of the chain at `head`:
    /// an indirect descriptor it could not follow, or a chain over 4 GiB in total.
    fn classify_stop(&self, mem: &GuestMemoryMmap<()>, head: u16, index: u16) -> QueueError {
        let at = self.layout.desc_table.unchecked_add(16 * u64::from(index));
        match mem.read_obj::<Descriptor>(at) {
            Ok(d) if d.flags & VIRTQ_DESC_F_INDIRECT != 0 => QueueError::Indirect { index },
            Ok(_) => QueueError::ChainTruncated { head },
            Err(_) => QueueError::Memory(at.0),
        }
    }

    /// Give back the last `n` popped chains (they will be popped again).
    pub fn unpop(&mut self, n: u16) {
        for _ in 0..n {
            self.queue.go_to_previous_position();
        }
    }

    /// Add a used element for `head` through the crate, which also publishes `used->idx`.
    pub fn add_used(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        self.queue
            .add_used(mem, head, len)
            .map_err(|e| self.map_used_error(e, head))
    }

    fn map_used_error(&self, e: virtio_queue::Error, head: u16) -> QueueError {
        match e {
            virtio_queue::Error::InvalidDescriptorIndex => QueueError::BadIndex {
                index: head,
                size: self.layout.size,
            },
            _ => QueueError::Memory(self.layout.used_ring.0),
        }
    }

    /// Suppress kicks (the crate's `disable_notification`).
    pub fn disable_notification(&mut self, mem: &GuestMemoryMmap<()>) -> Result<(), QueueError> {
        self.queue
            .disable_notification(mem)
            .map_err(|_| QueueError::Memory(self.layout.used_ring.0))
    }

    /// Ask for kicks; true when the crate's re-check found new entries (the caller loops).
    pub fn enable_notification(&mut self, mem: &GuestMemoryMmap<()>) -> Result<bool, QueueError> {
        self.queue
            .enable_notification(mem)
            .map_err(|_| QueueError::Memory(self.layout.used_ring.0))
    }

    /// Whether the crate decides the guest wants an interrupt for what was added since the
    /// last decision.
    pub fn needs_notification(&mut self, mem: &GuestMemoryMmap<()>) -> Result<bool, QueueError> {
        self.queue
            .needs_notification(mem)
            .map_err(|_| QueueError::Memory(self.layout.avail_ring.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE as W};

    const SIZE: u16 = 8;

    fn setup(event_idx: bool) -> (GuestMemoryMmap<()>, CrateQueue) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let cfg = QueueConfig {
            size: SIZE,
            ready: true,
            desc_table: 0x1000,
            avail_ring: 0x2000,
            used_ring: 0x3000,
        };
        let q = CrateQueue::new(&mem, &cfg, 256, event_idx).unwrap();
        (mem, q)
    }

    fn desc(mem: &GuestMemoryMmap<()>, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = Descriptor {
            addr,
            len,
            flags,
            next,
        };
        mem.write_obj(d, GuestAddress(0x1000 + 16 * u64::from(i)))
            .unwrap();
    }

    fn publish(mem: &GuestMemoryMmap<()>, slot: u16, head: u16, idx: u16) {
        mem.write_obj(head, GuestAddress(0x2004 + 2 * u64::from(slot)))
            .unwrap();
        mem.write_obj(idx, GuestAddress(0x2002)).unwrap();
    }

    #[test]
    fn the_version_of_the_linked_crate_is_known() {
        assert!(
            VIRTIO_QUEUE_VERSION.starts_with("0.") || VIRTIO_QUEUE_VERSION.starts_with('1'),
            "{VIRTIO_QUEUE_VERSION}"
        );
        assert!(!VIRTIO_QUEUE_VERSION.contains("unknown"));
    }

    #[test]
    fn pops_publishes_and_decides_through_the_crate() {
        let (mem, mut q) = setup(true);
        desc(&mem, 0, 0x5000, 12, VIRTQ_DESC_F_NEXT | W, 3);
        desc(&mem, 3, 0x6000, 100, W, 0);
        assert_eq!(q.pop(&mem, Direction::DeviceWrites).unwrap(), None);
        publish(&mem, 0, 0, 1);
        let c = q.pop(&mem, Direction::DeviceWrites).unwrap().unwrap();
        assert_eq!((c.head, c.total_len()), (0, 112));
        q.unpop(1);
        assert_eq!(q.pop(&mem, Direction::DeviceWrites).unwrap(), Some(c));
        q.add_used(&mem, 0, 112).unwrap();
        // The crate publishes used->idx itself.
        assert_eq!(mem.read_obj::<u16>(GuestAddress(0x3002)).unwrap(), 1);
        assert!(q.needs_notification(&mem).unwrap(), "used_event 0 crossed");
        // Enable: avail_event = next_avail, nothing new.
        assert!(!q.enable_notification(&mem).unwrap());
        let avail_event = GuestAddress(0x3000 + 4 + 8 * u64::from(SIZE));
        assert_eq!(mem.read_obj::<u16>(avail_event).unwrap(), 1);
    }

    fn pop_err(descs: &[(u16, u64, u32, u16, u16)], head: u16, dir: Direction) -> QueueError {
        let (mem, mut q) = setup(true);
        for &(i, a, l, f, n) in descs {
            desc(&mem, i, a, l, f, n);
        }
        publish(&mem, 0, head, 1);
        q.pop(&mem, dir).unwrap_err()
    }

    #[test]
    fn names_every_malformed_chain_the_crate_stops_at() {
        let n = VIRTQ_DESC_F_NEXT;
        let rd = Direction::DeviceReads;
        let e = pop_err(&[(0, 0xfff0, 0x100, 0, 0)], 0, rd);
        assert!(matches!(e, QueueError::BufferOutOfMemory { .. }), "{e}");
        let e = pop_err(&[(0, 0x5000, 8, n, 1), (1, 0x5000, 8, n, 0)], 0, rd);
        assert!(matches!(e, QueueError::Loop { .. }), "{e}");
        let e = pop_err(&[(0, 0x5000, 0, 0, 0)], 0, rd);
        assert!(matches!(e, QueueError::ZeroLength { index: 0 }), "{e}");
        let e = pop_err(&[(0, 0x5000, 8, W, 0)], 0, rd);
        assert!(matches!(e, QueueError::WrongDirection { .. }), "{e}");
        let e = pop_err(&[(0, 0x5000, 8, 0, 0)], 0, Direction::DeviceWrites);
        assert!(matches!(e, QueueError::WrongDirection { .. }), "{e}");
        let e = pop_err(&[], 9, rd);
        assert!(matches!(e, QueueError::BadIndex { index: 9, .. }), "{e}");
        let e = pop_err(&[(0, 0x5000, 8, n, 8)], 0, rd);
        assert!(matches!(e, QueueError::BadIndex { index: 8, .. }), "{e}");
        // An indirect table whose length is not a multiple of 16: the crate refuses it.
        let e = pop_err(&[(0, 0x5000, 7, VIRTQ_DESC_F_INDIRECT, 0)], 0, rd);
        assert!(matches!(e, QueueError::Indirect { index: 0 }), "{e}");
        let all: Vec<_> = (0..SIZE)
            .map(|i| (i, 0x5000, 8, n, (i + 1) % SIZE))
            .collect();
        let e = pop_err(&all, 0, rd);
        assert!(matches!(e, QueueError::Loop { head: 0, .. }), "{e}");
        // A chain over 4 GiB in total (five 1 GiB buffers over the same, lazily mapped
        // memory): the crate stops following it, the device names it.
        let gib = 1u64 << 30;
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), gib as usize)]).unwrap();
        let cfg = QueueConfig {
            size: SIZE,
            ready: true,
            desc_table: 0x1000,
            avail_ring: 0x2000,
            used_ring: 0x3000,
        };
        let mut q = CrateQueue::new(&mem, &cfg, 256, true).unwrap();
        for i in 0..5u16 {
            desc(&mem, i, 0, gib as u32, n, i + 1);
        }
        desc(&mem, 5, 0x5000, 8, 0, 0);
        publish(&mem, 0, 0, 1);
        let e = q.pop(&mem, rd).unwrap_err();
        assert!(matches!(e, QueueError::ChainTruncated { head: 0 }), "{e}");
        assert_eq!(e.kind(), "chain_truncated");
    }

    #[test]
    fn an_avail_idx_jump_is_the_crate_s_error_named_as_vnetbed_s() {
        let (mem, mut q) = setup(true);
        mem.write_obj(SIZE + 1, GuestAddress(0x2002)).unwrap();
        let e = q.pop(&mem, Direction::DeviceReads).unwrap_err();
        assert!(
            matches!(
                e,
                QueueError::AvailIdxJump {
                    next_avail: 0,
                    avail_idx: 9,
                    size: SIZE
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_configurations_are_refused_like_vnetbed_s_queue() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let cfg = |size, desc_table| QueueConfig {
            size,
            ready: true,
            desc_table,
            avail_ring: 0x2000,
            used_ring: 0x3000,
        };
        for size in [0, 3, 512] {
            assert_eq!(
                CrateQueue::new(&mem, &cfg(size, 0x1000), 256, true).unwrap_err(),
                QueueError::BadSize(size)
            );
        }
        assert!(matches!(
            CrateQueue::new(&mem, &cfg(8, 0xfff0), 256, true),
            Err(QueueError::BadRing { .. })
        ));
        assert!(matches!(
            CrateQueue::new(&mem, &cfg(8, 0x1008), 256, true),
            Err(QueueError::BadRing { .. })
        ));
        let at_zero = QueueConfig {
            avail_ring: 0,
            ..cfg(8, 0x1000)
        };
        assert!(matches!(
            CrateQueue::new(&mem, &at_zero, 256, true),
            Err(QueueError::BadRing { addr: 0, .. })
        ));
    }

    #[test]
    fn without_event_idx_the_crate_uses_the_no_notify_flag_and_always_interrupts() {
        let (mem, mut q) = setup(false);
        q.disable_notification(&mem).unwrap();
        assert_eq!(mem.read_obj::<u16>(GuestAddress(0x3000)).unwrap(), 1);
        assert!(!q.enable_notification(&mem).unwrap());
        assert_eq!(mem.read_obj::<u16>(GuestAddress(0x3000)).unwrap(), 0);
        // VRING_AVAIL_F_NO_INTERRUPT set by the driver: the crate still asks for one.
        mem.write_obj(1u16, GuestAddress(0x2000)).unwrap();
        desc(&mem, 0, 0x5000, 8, 0, 0);
        publish(&mem, 0, 0, 1);
        let c = q.pop(&mem, Direction::DeviceReads).unwrap().unwrap();
        q.add_used(&mem, c.head, 0).unwrap();
        assert!(q.needs_notification(&mem).unwrap());
    }
}
