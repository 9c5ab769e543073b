//! The split-ring notification protocol (virtio 1.x §2.7.10), both halves, written once over
//! an abstract ring memory ([`RingMemory`]), so that vnetbed's device, its Linux-faithful
//! test driver and the `loom` model check (vmm/tests/loom_protocol.rs) run the *same*
//! decision code.
//!
//! Each half stores one field, then loads the other half's field: the store-buffering
//! pattern. On x86 (TSO) a load may complete before an earlier store to another address is
//! visible, so each half needs a full fence between its store and its load, or both can read
//! stale values and a wake-up is lost:
//!
//! | half | store | fence | load | without the fence |
//! |---|---|---|---|---|
//! | device, [`device_enable`] | `avail_event` / `used->flags` | QEMU 92045d8 | `avail->idx` | lost kick |
//! | device, [`device_publish_and_decide`] | `used->idx` | QEMU a281ebc | `used_event` / `avail->flags` | lost interrupt |
//! | driver, [`driver_kick_prepare`] | `avail->idx` | Linux `virtio_mb` | `avail_event` / `used->flags` | lost kick |
//! | driver, [`driver_enable_cb`] | `used_event` / `avail->flags` | Linux `virtio_mb` | `used->idx` | lost interrupt |
//!
//! The `fenced` flag of each function is the only difference between a correct and a buggy
//! execution of it; the buggy notify models (`net::notify_model`) choose it per path.

use std::sync::atomic::Ordering;

use super::queue::{vring_need_event, VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY};

/// The notification fields of one split queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `avail->flags` (driver-written).
    AvailFlags,
    /// `avail->idx` (driver-written).
    AvailIdx,
    /// `used_event`, after the available ring (driver-written).
    UsedEvent,
    /// `used->flags` (device-written).
    UsedFlags,
    /// `used->idx` (device-written).
    UsedIdx,
    /// `avail_event`, after the used ring (device-written).
    AvailEvent,
}

/// The memory the protocol runs on: guest memory for the device and the test driver, loom
/// atomics for the model check.
pub trait RingMemory {
    /// Load a 16-bit field.
    fn load(&mut self, field: Field, order: Ordering) -> u16;
    /// Store a 16-bit field.
    fn store(&mut self, field: Field, value: u16, order: Ordering);
    /// A full fence (`mfence`, `fence(SeqCst)`, Linux's `virtio_mb`): every earlier store is
    /// visible to the other side before any later load.
    fn full_fence(&mut self);
}

/// Device: ask for a kick once `avail->idx` moves past `kick_after` (EVENT_IDX: store
/// `avail_event`; without it, clear `VRING_USED_F_NO_NOTIFY`), then re-read `avail->idx` and
/// return it. The caller compares it with what it has consumed: more there means it must
/// keep draining, because the guest may have published it before it could see the enable.
///
/// `fenced`: the full fence between the store and the re-read (QEMU 92045d8,
/// virtio-queue's `enable_notification`). Without it the re-read can be satisfied before the
/// store is visible, while the guest (after its own fence in kick_prepare) reads the old
/// `avail_event` and does not kick: a lost kick.
pub fn device_enable<M: RingMemory>(
    m: &mut M,
    event_idx: bool,
    kick_after: u16,
    fenced: bool,
) -> u16 {
    if event_idx {
        // Release: a plain store on x86; nothing before it needs ordering, but it must not be
        // torn or elided.
        m.store(Field::AvailEvent, kick_after, Ordering::Release);
    } else {
        m.store(Field::UsedFlags, 0, Ordering::Release);
    }
    if fenced {
        // Store -> load ordering: only a full fence gives it (store-buffering pattern).
        m.full_fence();
    }
    // Acquire: the ring entries and descriptors published before this index must be read
    // after it (QEMU a821ce5; the driver's wmb pairs with it).
    m.load(Field::AvailIdx, Ordering::Acquire)
}

/// Device: publish `used->idx = new_used` (making every used element written before it
/// visible), then decide whether the guest wants an interrupt for the entries published since
/// `old_used` (the index at the previous decision; `None`: the first decision, which always
/// interrupts with EVENT_IDX, as vhost does).
///
/// `fenced`: the full fence between the `used->idx` store and the `used_event` /
/// `avail->flags` load (QEMU a281ebc, virtio-queue's `needs_notification`). Without it the
/// load can pass the store, while the guest (after its fence in enable_cb) reads the old
/// `used->idx` and sleeps: a lost interrupt.
pub fn device_publish_and_decide<M: RingMemory>(
    m: &mut M,
    event_idx: bool,
    new_used: u16,
    old_used: Option<u16>,
    fenced: bool,
) -> bool {
    // Release: the used elements written before must be visible no later than the index
    // that publishes them (§2.7.8).
    m.store(Field::UsedIdx, new_used, Ordering::Release);
    if fenced {
        // Store -> load ordering: only a full fence gives it.
        m.full_fence();
    }
    // Relaxed loads: with the fence they are ordered after the store; without it they are
    // deliberately unordered (the buggy execution).
    if !event_idx {
        return m.load(Field::AvailFlags, Ordering::Relaxed) & VRING_AVAIL_F_NO_INTERRUPT == 0;
    }
    let Some(old) = old_used else {
        return true;
    };
    vring_need_event(m.load(Field::UsedEvent, Ordering::Relaxed), new_used, old)
}

/// Driver (Linux 3.2 `virtqueue_kick_prepare`): publish `avail->idx = new_avail` (after the
/// ring entries: `virtio_wmb`, here a Release store), then decide whether the device wants a
/// kick for the entries added since `old_avail`.
///
/// `fenced`: Linux's `virtio_mb` between the publish and the load of `avail_event` /
/// `used->flags`. Without it, a lost kick.
pub fn driver_kick_prepare<M: RingMemory>(
    m: &mut M,
    event_idx: bool,
    old_avail: u16,
    new_avail: u16,
    fenced: bool,
) -> bool {
    // Release: virtio_wmb, the ring entries before the index.
    m.store(Field::AvailIdx, new_avail, Ordering::Release);
    if fenced {
        // virtio_mb.
        m.full_fence();
    }
    if event_idx {
        vring_need_event(
            m.load(Field::AvailEvent, Ordering::Relaxed),
            new_avail,
            old_avail,
        )
    } else {
        m.load(Field::UsedFlags, Ordering::Relaxed) & VRING_USED_F_NO_NOTIFY == 0
    }
}

/// Driver (Linux 3.2 `virtqueue_enable_cb`): re-enable interrupts (clear
/// `VRING_AVAIL_F_NO_INTERRUPT`, and with EVENT_IDX ask for one at `last_used`), then check
/// whether the device used more meanwhile. Returns true when nothing is pending (the driver
/// may sleep until the interrupt), false when it must poll again.
///
/// `fenced`: Linux's `virtio_mb` between the stores and the `used->idx` load. Without it, a
/// lost interrupt.
pub fn driver_enable_cb<M: RingMemory>(
    m: &mut M,
    event_idx: bool,
    last_used: u16,
    fenced: bool,
) -> bool {
    // Linux 3.2: `avail->flags &= ~VRING_AVAIL_F_NO_INTERRUPT; vring_used_event = last_used_idx;`
    // (plain stores).
    m.store(Field::AvailFlags, 0, Ordering::Relaxed);
    if event_idx {
        m.store(Field::UsedEvent, last_used, Ordering::Relaxed);
    }
    if fenced {
        // virtio_mb.
        m.full_fence();
    }
    m.load(Field::UsedIdx, Ordering::Relaxed) == last_used
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Sequential memory: every store is visible at once.
    #[derive(Default)]
    struct Plain(HashMap<Field, u16>, u32);

    impl RingMemory for Plain {
        fn load(&mut self, f: Field, _: Ordering) -> u16 {
            self.0.get(&f).copied().unwrap_or(0)
        }
        fn store(&mut self, f: Field, v: u16, _: Ordering) {
            self.0.insert(f, v);
        }
        fn full_fence(&mut self) {
            self.1 += 1;
        }
    }

    #[test]
    fn each_half_fences_only_when_asked_and_decides_as_the_spec_says() {
        let mut m = Plain::default();
        m.store(Field::AvailIdx, 3, Ordering::Relaxed);
        assert_eq!(device_enable(&mut m, true, 2, true), 3);
        assert_eq!(m.load(Field::AvailEvent, Ordering::Relaxed), 2);
        assert_eq!(m.1, 1);
        device_enable(&mut m, true, 2, false);
        assert_eq!(m.1, 1, "unfenced: no fence");
        // Driver publishes 4 -> 5 past avail_event 2... need_event(2, 5, 4) is false.
        assert!(!driver_kick_prepare(&mut m, true, 4, 5, true));
        assert!(driver_kick_prepare(&mut m, true, 2, 3, true));
        // Without EVENT_IDX the flags decide.
        m.store(Field::UsedFlags, VRING_USED_F_NO_NOTIFY, Ordering::Relaxed);
        assert!(!driver_kick_prepare(&mut m, false, 0, 1, true));
        device_enable(&mut m, false, 0, true);
        assert!(driver_kick_prepare(&mut m, false, 0, 1, true));
        // Interrupts: first decision always; then used_event decides.
        assert!(device_publish_and_decide(&mut m, true, 1, None, true));
        m.store(Field::UsedEvent, 5, Ordering::Relaxed);
        assert!(!device_publish_and_decide(&mut m, true, 3, Some(1), true));
        assert!(device_publish_and_decide(&mut m, true, 6, Some(3), true));
        m.store(
            Field::AvailFlags,
            VRING_AVAIL_F_NO_INTERRUPT,
            Ordering::Relaxed,
        );
        assert!(!device_publish_and_decide(&mut m, false, 7, Some(6), true));
        // enable_cb clears NO_INTERRUPT, arms used_event, sees more used.
        assert!(!driver_enable_cb(&mut m, true, 5, true));
        assert_eq!(m.load(Field::AvailFlags, Ordering::Relaxed), 0);
        assert_eq!(m.load(Field::UsedEvent, Ordering::Relaxed), 5);
        assert!(driver_enable_cb(&mut m, true, 7, true));
    }
}
