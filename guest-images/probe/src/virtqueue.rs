//! The driver side of a split virtqueue (virtio 1.x, 2.7), following Linux's
//! `drivers/virtio/virtio_ring.c` step by step, including where it puts `virtio_mb()`.
//!
//! Buffers are single descriptors (no chaining, no indirect descriptors). The queue hands
//! out descriptor ids; the caller maps each id to its own buffer.
//!
//! Memory ordering: the probe runs on x86 (TSO), as Linux's `weak_barriers` virtio does.
//! Linux's `virtio_wmb`/`virtio_rmb` are compiler barriers there (here: `fence(Release)`,
//! `fence(Acquire)`, which emit no instruction on x86 but stop the compiler from
//! reordering). Linux's `virtio_mb` is a real full barrier (`lock add`); here
//! `fence(SeqCst)`, which is `mfence`. Those are the places where the store-buffering
//! pattern of "store my index, then load the other side's flags/event" needs it.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

pub use crate::stall::{KickDecision, RingView, Suppressed, SuppressedDecision};

/// Largest queue the driver sets up.
pub const MAX_QUEUE_SIZE: usize = 1024;

const VRING_DESC_F_WRITE: u16 = 2;
/// used->flags: the device asks not to be kicked (without EVENT_IDX).
pub const VRING_USED_F_NO_NOTIFY: u16 = 1;
/// avail->flags: the driver asks not to be interrupted (without EVENT_IDX).
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Bytes needed for the descriptor table, available ring and used ring of a queue.
pub const fn ring_bytes(size: u16) -> (usize, usize, usize) {
    let n = size as usize;
    (16 * n, 6 + 2 * n, 6 + 8 * n)
}

/// Linux's `vring_need_event`: whether moving the index from `old` to `new` crossed
/// `event` (the other side asked to be notified once the index passes `event`).
pub fn vring_need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// Where a queue's three parts live (guest-physical addresses, identity-mapped).
#[derive(Debug, Clone, Copy)]
pub struct QueueMemory {
    /// Descriptor table, 16-byte aligned, 16 * size bytes.
    pub desc: *mut u8,
    /// Available (driver) ring, 2-byte aligned, 6 + 2 * size bytes.
    pub avail: *mut u8,
    /// Used (device) ring, 4-byte aligned, 6 + 8 * size bytes.
    pub used: *mut u8,
}

/// The device broke the virtqueue contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// A used element names a descriptor id outside the queue or not in flight.
    BadUsedId(u32),
}

impl core::fmt::Display for QueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            QueueError::BadUsedId(id) => {
                write!(
                    f,
                    "device returned descriptor id {id}, which is not in flight"
                )
            }
        }
    }
}

/// A completed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    /// Descriptor id, as returned by [`SplitQueue::add`].
    pub id: u16,
    /// Bytes the device wrote (rx) or 0 (tx).
    pub len: u32,
}

/// Driver state of one split virtqueue.
pub struct SplitQueue {
    memory: QueueMemory,
    size: u16,
    event_idx: bool,
    avail_idx_shadow: u16,
    avail_flags_shadow: u16,
    last_used_idx: u16,
    num_added: u16,
    /// `avail->idx` when the driver last kicked (0 at start: nothing published yet).
    kicked_avail_idx: u16,
    /// The last [`SplitQueue::kick_prepare`] decision and the device's notification
    /// request it was based on (avail_event, or used->flags' NO_NOTIFY bit).
    last_decision: KickDecision,
    decided_request: u16,
    /// The "no kick needed" decisions since the last kick (the newest last).
    suppressed: Suppressed,
    free: [u16; MAX_QUEUE_SIZE],
    num_free: u16,
    in_flight: [bool; MAX_QUEUE_SIZE],
    /// Linux 3.2's interrupt suppression: `avail->flags` NO_INTERRUPT even with EVENT_IDX,
    /// and no `used_event = 0` on disable (see [`SplitQueue::set_flags_only_disable_cb`]).
    flags_only_disable_cb: bool,
}

impl SplitQueue {
    /// A queue of `size` (1..=MAX_QUEUE_SIZE) over `memory`, zeroed by this call.
    ///
    /// # Safety
    /// `memory` must point to exclusive, suitably aligned regions of at least
    /// [`ring_bytes`]`(size)` bytes that stay valid as long as the queue and the device
    /// use them.
    pub unsafe fn new(memory: QueueMemory, size: u16, event_idx: bool) -> Self {
        let size = size.clamp(1, MAX_QUEUE_SIZE as u16);
        let (desc_len, avail_len, used_len) = ring_bytes(size);
        for (base, len) in [
            (memory.desc, desc_len),
            (memory.avail, avail_len),
            (memory.used, used_len),
        ] {
            for i in 0..len {
                // SAFETY: within the region the caller vouched for.
                unsafe { write_volatile(base.add(i), 0) };
            }
        }
        let mut free = [0u16; MAX_QUEUE_SIZE];
        for (i, slot) in free.iter_mut().enumerate().take(size as usize) {
            // Hand out low ids first (popped from the end).
            *slot = size - 1 - i as u16;
        }
        SplitQueue {
            memory,
            size,
            event_idx,
            avail_idx_shadow: 0,
            avail_flags_shadow: 0,
            last_used_idx: 0,
            num_added: 0,
            kicked_avail_idx: 0,
            last_decision: KickDecision::None,
            decided_request: 0,
            suppressed: Suppressed::new(),
            free,
            num_free: size,
            in_flight: [false; MAX_QUEUE_SIZE],
            flags_only_disable_cb: false,
        }
    }

    /// Follow Linux 3.2 (`true`): `disable_cb` and `enable_cb` write `avail->flags`'
    /// NO_INTERRUPT bit also with EVENT_IDX (where the device ignores it), and `disable_cb`
    /// leaves `used_event` where it was. `false` (default): Linux since 2021 (8d622d21d248),
    /// which with EVENT_IDX writes `used_event = 0` instead and leaves the flags alone.
    pub fn set_flags_only_disable_cb(&mut self, on: bool) {
        self.flags_only_disable_cb = on;
    }

    /// Queue size.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Descriptors not in flight.
    pub fn num_free(&self) -> u16 {
        self.num_free
    }

    /// The descriptor id the next [`SplitQueue::add`] will use, if any is free.
    pub fn peek_free(&self) -> Option<u16> {
        (self.num_free > 0).then(|| self.free[self.num_free as usize - 1])
    }

    /// Whether the device has used buffers we have not taken (vring's `more_used`).
    pub fn has_used(&self) -> bool {
        self.more_used()
    }

    /// Whether callbacks (interrupts) are currently enabled by the driver.
    pub fn callbacks_enabled(&self) -> bool {
        self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT == 0
    }

    /// Offer one buffer (virtqueue_add_split): the descriptor, the ring slot, then
    /// `avail->idx`. Returns the descriptor id, or None if the queue is full.
    pub fn add(&mut self, addr: u64, len: u32, device_writes: bool) -> Option<u16> {
        if self.num_free == 0 {
            return None;
        }
        self.num_free -= 1;
        let id = self.free[self.num_free as usize];
        self.in_flight[id as usize] = true;
        let flags = if device_writes { VRING_DESC_F_WRITE } else { 0 };
        let desc = self.desc(id);
        // SAFETY: id < size: the descriptor lies in the table (see `new`).
        unsafe {
            write_volatile(desc.cast::<u64>(), addr);
            write_volatile(desc.add(8).cast::<u32>(), len);
            write_volatile(desc.add(12).cast::<u16>(), flags);
            write_volatile(desc.add(14).cast::<u16>(), 0);
        }
        let slot = self.avail_idx_shadow % self.size;
        self.write_avail(4 + 2 * slot as usize, id);
        // virtio_wmb: the descriptor and ring slot must be visible before the new index
        // (the device reads them after it sees the index). Store-store order is kept by
        // x86; this stops the compiler from moving the stores.
        fence(Ordering::Release);
        self.avail_idx_shadow = self.avail_idx_shadow.wrapping_add(1);
        self.write_avail(2, self.avail_idx_shadow);
        self.num_added = self.num_added.wrapping_add(1);
        Some(id)
    }

    /// virtqueue_kick_prepare_split: whether the device must be notified of the buffers
    /// added since the last call.
    pub fn kick_prepare(&mut self) -> bool {
        // virtio_mb: we stored avail->idx; now we load the device's avail_event (or
        // used->flags). Without a full fence the load can complete before our store is
        // visible, and the device, doing the mirror image, can miss it too: a lost kick
        // (the rx stall of the 2012 bug). mfence.
        fence(Ordering::SeqCst);
        let new = self.avail_idx_shadow;
        let old = new.wrapping_sub(self.num_added);
        self.num_added = 0;
        let request = self.notify_request();
        let needed = if self.event_idx {
            vring_need_event(request, new, old)
        } else {
            request & VRING_USED_F_NO_NOTIFY == 0
        };
        // Kept for the stall detector (crate::stall): what was decided, on what.
        self.decided_request = request;
        if needed {
            self.last_decision = KickDecision::Kicked;
            self.kicked_avail_idx = new;
            self.suppressed.clear();
        } else {
            self.last_decision = KickDecision::Suppressed;
            if new != old {
                self.suppressed.push(SuppressedDecision {
                    old,
                    new,
                    request,
                    used_idx: self.read_used(2) as u16,
                });
            }
        }
        needed
    }

    /// The device's notification request: `avail_event` with EVENT_IDX, otherwise
    /// `used->flags` (whose NO_NOTIFY bit says "do not kick").
    fn notify_request(&self) -> u16 {
        if self.event_idx {
            self.read_used(4 + 8 * self.size as usize) as u16
        } else {
            self.read_used(0) as u16 & VRING_USED_F_NO_NOTIFY
        }
    }

    /// The ring as the driver sees it now, read without consuming anything (for the
    /// stall detector): the device's fields are read fresh.
    pub fn view(&self) -> RingView {
        // The same fence as before any read of the device's side that follows our stores.
        fence(Ordering::SeqCst);
        RingView {
            avail_idx: self.avail_idx_shadow,
            avail_flags: self.avail_flags_shadow,
            used_event: self.read_avail(4 + 2 * self.size as usize),
            used_idx: self.read_used(2) as u16,
            used_flags: self.read_used(0) as u16,
            avail_event: self.read_used(4 + 8 * self.size as usize) as u16,
            last_used_idx: self.last_used_idx,
            event_idx: self.event_idx,
            callbacks_enabled: self.callbacks_enabled(),
            kicked_avail_idx: self.kicked_avail_idx,
            last_decision: self.last_decision,
            decided_request: self.decided_request,
            suppressed: self.suppressed,
        }
    }

    /// virtqueue_get_buf_ctx_split: take the next used buffer, if any.
    pub fn get_buf(&mut self) -> Result<Option<Used>, QueueError> {
        if !self.more_used() {
            return Ok(None);
        }
        // virtio_rmb: read the used element only after seeing used->idx move. Load-load
        // order is kept by x86; this stops the compiler from hoisting the loads.
        fence(Ordering::Acquire);
        let slot = (self.last_used_idx % self.size) as usize;
        let id = self.read_used(4 + 8 * slot);
        let len = self.read_used(4 + 8 * slot + 4);
        if id >= u32::from(self.size) || !self.in_flight[id as usize] {
            return Err(QueueError::BadUsedId(id));
        }
        self.in_flight[id as usize] = false;
        self.free[self.num_free as usize] = id as u16;
        self.num_free += 1;
        self.last_used_idx = self.last_used_idx.wrapping_add(1);
        if self.callbacks_enabled() {
            // We expect an interrupt for the next entry: publish used_event and fence
            // (virtio_store_mb) before the next get_buf reads used->idx.
            self.write_used_event(self.last_used_idx);
            fence(Ordering::SeqCst);
        }
        Ok(Some(Used { id: id as u16, len }))
    }

    /// virtqueue_disable_cb_split: ask the device not to interrupt.
    pub fn disable_cb(&mut self) {
        if self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT == 0 {
            self.avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT;
            if self.flags_only_disable_cb {
                // Linux 3.2: only the flag. With EVENT_IDX the device goes by used_event,
                // which still asks for the next entry: an extra interrupt may come.
                self.write_avail(0, self.avail_flags_shadow);
            } else if self.event_idx {
                // Linux's "hack": an event index the device will not reach soon.
                self.write_used_event(0);
            } else {
                self.write_avail(0, self.avail_flags_shadow);
            }
        }
    }

    /// virtqueue_enable_cb_prepare_split: re-enable interrupts; returns the used index
    /// to pass to [`SplitQueue::poll`].
    pub fn enable_cb_prepare(&mut self) -> u16 {
        self.clear_no_interrupt();
        self.write_used_event(self.last_used_idx);
        self.last_used_idx
    }

    /// virtqueue_poll_split: whether buffers were used since `enable_cb_prepare`.
    pub fn poll(&self, last_used_idx: u16) -> bool {
        // virtio_mb: we stored used_event/flags; now we load used->idx. Without a full
        // fence the device's new used->idx may be invisible to us while our re-enable is
        // invisible to it: a lost interrupt. mfence.
        fence(Ordering::SeqCst);
        last_used_idx != self.read_used(2) as u16
    }

    /// virtqueue_enable_cb: re-enable interrupts; false if buffers arrived meanwhile
    /// (the caller must poll again).
    pub fn enable_cb(&mut self) -> bool {
        let last = self.enable_cb_prepare();
        !self.poll(last)
    }

    /// virtqueue_enable_cb_delayed_split: re-enable interrupts, but ask for one only when
    /// 3/4 of the outstanding buffers are used. False if that many are already used.
    pub fn enable_cb_delayed(&mut self) -> bool {
        self.clear_no_interrupt();
        let bufs =
            (u32::from(self.avail_idx_shadow.wrapping_sub(self.last_used_idx)) * 3 / 4) as u16;
        self.write_used_event(self.last_used_idx.wrapping_add(bufs));
        // virtio_store_mb: the event store must be visible before we load used->idx.
        fence(Ordering::SeqCst);
        let used = (self.read_used(2) as u16).wrapping_sub(self.last_used_idx);
        used <= bufs
    }

    fn more_used(&self) -> bool {
        self.last_used_idx != self.read_used(2) as u16
    }

    fn clear_no_interrupt(&mut self) {
        if self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT != 0 {
            self.avail_flags_shadow &= !VRING_AVAIL_F_NO_INTERRUPT;
            if !self.event_idx || self.flags_only_disable_cb {
                self.write_avail(0, self.avail_flags_shadow);
            }
        }
    }

    fn desc(&self, id: u16) -> *mut u8 {
        // SAFETY (of the resulting pointer's use): id < size, inside the table.
        self.memory.desc.wrapping_add(16 * id as usize)
    }

    fn write_avail(&self, offset: usize, value: u16) {
        // SAFETY: every offset used is within ring_bytes(size).1 (the used_event word is
        // at 4 + 2 * size); the region is ours (see `new`).
        unsafe { write_volatile(self.memory.avail.add(offset).cast::<u16>(), value) };
    }

    fn read_avail(&self, offset: usize) -> u16 {
        // SAFETY: as for write_avail.
        unsafe { read_volatile(self.memory.avail.add(offset).cast::<u16>()) }
    }

    fn write_used_event(&self, value: u16) {
        self.write_avail(4 + 2 * self.size as usize, value);
    }

    /// Read a used-ring field: 16-bit at offsets 0, 2 and the avail_event word, 32-bit in
    /// the elements.
    fn read_used(&self, offset: usize) -> u32 {
        let base = self.memory.used;
        let is_u16 = offset < 4 || offset == 4 + 8 * self.size as usize;
        // SAFETY: offsets are within ring_bytes(size).2; the device writes this memory,
        // so every read is volatile.
        unsafe {
            if is_u16 {
                u32::from(read_volatile(base.add(offset).cast::<u16>()))
            } else {
                read_volatile(base.add(offset).cast::<u32>())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queue memory in the test process; the test plays the device.
    struct Rings {
        desc: Vec<u64>,
        avail: Vec<u16>,
        used: Vec<u32>,
    }

    const N: u16 = 8;

    impl Rings {
        fn new() -> Self {
            Rings {
                desc: vec![0; 2 * N as usize],
                avail: vec![0; 3 + N as usize + 1],
                used: vec![0; 2 + 2 * N as usize + 1],
            }
        }
        fn queue(&mut self, event_idx: bool) -> SplitQueue {
            let memory = QueueMemory {
                desc: self.desc.as_mut_ptr().cast(),
                avail: self.avail.as_mut_ptr().cast(),
                used: self.used.as_mut_ptr().cast(),
            };
            // SAFETY: the vectors are large enough and outlive the queue in each test.
            unsafe { SplitQueue::new(memory, N, event_idx) }
        }
        fn avail_idx(&self) -> u16 {
            self.avail[1]
        }
        fn used_event(&self) -> u16 {
            self.avail[2 + N as usize]
        }
        fn avail_flags(&self) -> u16 {
            self.avail[0]
        }
        fn set_avail_event(&mut self, v: u16) {
            // avail_event is the 16-bit word at byte 4 + 8 * N: the low half of this u32.
            self.used[1 + 2 * N as usize] = u32::from(v);
        }
        fn set_used_flags(&mut self, v: u16) {
            self.used[0] = (self.used[0] & 0xffff_0000) | u32::from(v);
        }
        /// Device: complete descriptor `id` with `len` at the next used slot.
        fn complete(&mut self, id: u16, len: u32) {
            let idx = (self.used[0] >> 16) as u16;
            let slot = (idx % N) as usize;
            self.used[1 + 2 * slot] = u32::from(id);
            self.used[2 + 2 * slot] = len;
            self.used[0] = (self.used[0] & 0xffff) | (u32::from(idx.wrapping_add(1)) << 16);
        }
        fn ring_entry(&self, slot: u16) -> u16 {
            self.avail[2 + slot as usize]
        }
    }

    #[test]
    fn need_event_matches_linux() {
        assert!(vring_need_event(0, 1, 0));
        assert!(!vring_need_event(1, 1, 0));
        assert!(vring_need_event(5, 8, 4));
        assert!(!vring_need_event(8, 8, 4));
        assert!(vring_need_event(0xffff, 0, 0xfffe), "wraps");
    }

    #[test]
    fn add_publishes_descriptor_ring_slot_and_index() {
        let mut rings = Rings::new();
        let mut q = rings.queue(true);
        let id = q.add(0x1000, 2048, true).unwrap();
        assert_eq!(rings.avail_idx(), 1);
        assert_eq!(rings.ring_entry(0), id);
        assert_eq!(rings.desc[2 * id as usize], 0x1000);
        assert_eq!(rings.desc[2 * id as usize + 1], 2048 | (2 << 32));
        for _ in 1..N {
            q.add(0x2000, 64, false).unwrap();
        }
        assert_eq!(q.add(0, 0, false), None, "full");
    }

    #[test]
    fn kick_suppression_follows_avail_event_and_no_notify() {
        let mut rings = Rings::new();
        let mut q = rings.queue(true);
        q.add(0, 1, true);
        assert!(q.kick_prepare(), "avail_event 0 crossed by 0 -> 1");
        rings.set_avail_event(5);
        q.add(0, 1, true);
        assert!(!q.kick_prepare(), "1 -> 2 does not cross 5");
        for _ in 0..4 {
            q.add(0, 1, true);
        }
        assert!(q.kick_prepare(), "2 -> 6 crosses 5");

        let mut rings = Rings::new();
        let mut q = rings.queue(false);
        rings.set_used_flags(VRING_USED_F_NO_NOTIFY);
        q.add(0, 1, true);
        assert!(!q.kick_prepare());
        rings.set_used_flags(0);
        q.add(0, 1, true);
        assert!(q.kick_prepare());
    }

    #[test]
    fn kick_decisions_are_kept_for_the_stall_detector() {
        let mut rings = Rings::new();
        let mut q = rings.queue(true);
        q.add(0, 1, true);
        assert!(q.kick_prepare());
        let view = q.view();
        assert_eq!(view.last_decision, KickDecision::Kicked);
        assert_eq!(view.kicked_avail_idx, 1);
        rings.set_avail_event(5);
        q.add(0, 1, true);
        assert!(!q.kick_prepare());
        let view = q.view();
        assert_eq!(view.last_decision, KickDecision::Suppressed);
        assert_eq!(view.decided_request, 5);
        assert_eq!(view.kicked_avail_idx, 1, "no kick since");
        let kept: Vec<_> = view.suppressed.iter().copied().collect();
        assert_eq!(
            kept,
            [SuppressedDecision {
                old: 1,
                new: 2,
                request: 5,
                used_idx: 0
            }]
        );
        assert_eq!(view.avail_event, 5);
        assert_eq!(view.avail_idx, 2);
    }

    #[test]
    fn get_buf_returns_used_and_rejects_bad_ids() {
        let mut rings = Rings::new();
        let mut q = rings.queue(true);
        let a = q.add(0, 1, true).unwrap();
        let b = q.add(0, 1, true).unwrap();
        assert_eq!(q.get_buf(), Ok(None));
        rings.complete(b, 60);
        assert_eq!(q.get_buf(), Ok(Some(Used { id: b, len: 60 })));
        assert_eq!(rings.used_event(), 1, "callbacks on: used_event follows");
        assert_eq!(q.num_free(), N - 1);
        rings.complete(b, 60);
        assert_eq!(
            q.get_buf(),
            Err(QueueError::BadUsedId(u32::from(b))),
            "b is not in flight"
        );
        let _ = a;
        let mut rings = Rings::new();
        let mut q = rings.queue(true);
        q.add(0, 1, true);
        rings.complete(200, 1);
        assert_eq!(q.get_buf(), Err(QueueError::BadUsedId(200)));
    }

    #[test]
    fn enable_cb_rechecks_for_work_that_raced_in() {
        for event_idx in [true, false] {
            let mut rings = Rings::new();
            let mut q = rings.queue(event_idx);
            let id = q.add(0, 1, true).unwrap();
            q.disable_cb();
            if event_idx {
                assert_eq!(rings.used_event(), 0);
            } else {
                assert_eq!(rings.avail_flags(), VRING_AVAIL_F_NO_INTERRUPT);
            }
            assert!(q.enable_cb(), "nothing pending");
            assert_eq!(rings.avail_flags(), 0);
            q.disable_cb();
            rings.complete(id, 10);
            assert!(
                !q.enable_cb(),
                "a used buffer arrived while disabled: poll again"
            );
            assert_eq!(q.get_buf().unwrap().map(|u| u.id), Some(id));
        }
    }

    #[test]
    fn linux_3_2_disable_cb_sets_the_flag_and_leaves_used_event() {
        for flags_only in [false, true] {
            let mut rings = Rings::new();
            let mut q = rings.queue(true);
            q.set_flags_only_disable_cb(flags_only);
            let last = q.enable_cb_prepare();
            assert_eq!(rings.used_event(), last);
            rings.avail[2 + N as usize] = 5; // a used_event the driver asked for earlier
            q.disable_cb();
            if flags_only {
                assert_eq!(rings.avail_flags(), VRING_AVAIL_F_NO_INTERRUPT);
                assert_eq!(rings.used_event(), 5, "3.2 leaves used_event alone");
            } else {
                assert_eq!(
                    rings.avail_flags(),
                    0,
                    "with EVENT_IDX modern leaves the flags"
                );
                assert_eq!(rings.used_event(), 0, "modern writes used_event = 0");
            }
            assert!(q.enable_cb());
            assert_eq!(rings.avail_flags(), 0);
        }
    }

    #[test]
    fn enable_cb_delayed_asks_for_three_quarters() {
        let mut rings = Rings::new();
        let mut q = rings.queue(true);
        let ids: Vec<u16> = (0..8).map(|_| q.add(0, 1, false).unwrap()).collect();
        q.disable_cb();
        assert!(q.enable_cb_delayed());
        assert_eq!(rings.used_event(), 6, "3/4 of 8 outstanding");
        for &id in &ids[..7] {
            rings.complete(id, 0);
        }
        assert!(!q.enable_cb_delayed(), "7 already used > 6");
    }
}
