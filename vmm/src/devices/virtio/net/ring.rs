//! Which queue implementation a virtio-net queue runs on.
//!
//! - [`Ring::Vnetbed`]: vnetbed's own [`SplitQueue`]; every notification store, fence and
//!   load goes through the notify model ([`super::notify_model`]), so the buggy models can
//!   re-create the 2012 code.
//! - [`Ring::VirtioQueue`]: rust-vmm's `virtio-queue` crate ([`CrateQueue`]); the crate makes
//!   every notification decision itself, with its own fences. Selected by the notify-model
//!   name `virtio-queue`.
//!
//! The rx/tx paths and the watchdog see one interface; [`super::core::NetCore`] routes the
//! notification calls to the notify model or to the crate.

use std::num::Wrapping;

use vm_memory::GuestMemoryMmap;

use crate::devices::virtio::crate_queue::CrateQueue;
use crate::devices::virtio::queue::{Chain, Direction, QueueError, RingLayout, SplitQueue};

/// One queue's ring, on one of the two backends.
#[derive(Debug)]
pub enum Ring {
    /// vnetbed's own split queue, driven by the notify model.
    Vnetbed(SplitQueue),
    /// rust-vmm's `virtio-queue`, which decides notifications itself.
    VirtioQueue(CrateQueue),
}

impl Ring {
    /// Where the rings are (for the watchdog's fresh reads of guest-written fields).
    pub fn layout(&self) -> &RingLayout {
        match self {
            Ring::Vnetbed(q) => q.layout(),
            Ring::VirtioQueue(q) => q.layout(),
        }
    }

    /// The queue size.
    pub fn size(&self) -> u16 {
        self.layout().size
    }

    /// The device's next available index.
    pub fn next_avail(&self) -> Wrapping<u16> {
        match self {
            Ring::Vnetbed(q) => q.next_avail,
            Ring::VirtioQueue(q) => Wrapping(q.next_avail()),
        }
    }

    /// The device's next used index (for vnetbed's queue: filled, maybe not yet published).
    pub fn next_used(&self) -> Wrapping<u16> {
        match self {
            Ring::Vnetbed(q) => q.next_used,
            Ring::VirtioQueue(q) => Wrapping(q.next_used()),
        }
    }

    /// Take the next available chain, validated for `dir`.
    pub fn pop(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        dir: Direction,
    ) -> Result<Option<Chain>, QueueError> {
        match self {
            Ring::Vnetbed(q) => q.pop(mem, dir),
            Ring::VirtioQueue(q) => q.pop(mem, dir),
        }
    }

    /// Give back the last `n` popped chains.
    pub fn unpop(&mut self, n: u16) {
        match self {
            Ring::Vnetbed(q) => q.unpop(n),
            Ring::VirtioQueue(q) => q.unpop(n),
        }
    }

    /// Add a used element (vnetbed's queue: written, published later by the notify model;
    /// virtio-queue: written and published at once by the crate).
    pub fn add_used(
        &mut self,
        mem: &GuestMemoryMmap<()>,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        match self {
            Ring::Vnetbed(q) => q.add_used(mem, head, len),
            Ring::VirtioQueue(q) => q.add_used(mem, head, len),
        }
    }

    /// The name used in events and records.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Ring::Vnetbed(_) => "vnetbed",
            Ring::VirtioQueue(_) => "virtio-queue",
        }
    }
}
