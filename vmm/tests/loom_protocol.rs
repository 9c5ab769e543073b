//! A model check of the split-ring notification protocol with `loom`: every interleaving and
//! every weak-memory outcome the C++/Rust memory model allows, of the device half and the
//! driver half running the *same* decision code as vnetbed's device and test driver
//! ([`vmm::devices::virtio::protocol`]), on loom's atomics.
//!
//! Each scenario is one race of the 2012 bug, with EVENT_IDX and without:
//! - **kick**: the device found the ring empty and enables notifications (store, fence?,
//!   re-check `avail->idx`); the driver adds a buffer (publish `avail->idx`, fence?, read
//!   `avail_event`/`NO_NOTIFY`). Lost kick: the device saw no new buffer *and* the driver
//!   decided not to kick.
//! - **interrupt**: the device publishes a used entry (store `used->idx`, fence?, read
//!   `used_event`/`NO_INTERRUPT`); the driver, done polling, re-enables interrupts (store,
//!   fence?, read `used->idx`). Lost interrupt: the device decided not to interrupt *and*
//!   the driver saw no new entry, so it sleeps.
//!
//! With both fences loom's exhaustive search finds no lost wake-up; without the device's
//! fence (QEMU 92045d8 / a281ebc absent) it finds one, and the test asserts that it does.

use std::sync::atomic::Ordering;

use loom::sync::atomic::{fence, AtomicBool, AtomicU16};
use loom::sync::Arc;
use vmm::devices::virtio::protocol::{
    device_enable, device_publish_and_decide, driver_enable_cb, driver_kick_prepare, Field,
    RingMemory,
};
use vmm::devices::virtio::queue::{VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY};

/// The six notification fields of one queue, as loom atomics.
#[derive(Default)]
struct Fields {
    avail_flags: AtomicU16,
    avail_idx: AtomicU16,
    used_event: AtomicU16,
    used_flags: AtomicU16,
    used_idx: AtomicU16,
    avail_event: AtomicU16,
}

impl Fields {
    fn get(&self, f: Field) -> &AtomicU16 {
        match f {
            Field::AvailFlags => &self.avail_flags,
            Field::AvailIdx => &self.avail_idx,
            Field::UsedEvent => &self.used_event,
            Field::UsedFlags => &self.used_flags,
            Field::UsedIdx => &self.used_idx,
            Field::AvailEvent => &self.avail_event,
        }
    }
}

/// One side's view of the shared fields.
struct Side(Arc<Fields>);

impl RingMemory for Side {
    fn load(&mut self, f: Field, order: Ordering) -> u16 {
        self.0.get(f).load(order)
    }
    fn store(&mut self, f: Field, v: u16, order: Ordering) {
        self.0.get(f).store(v, order)
    }
    fn full_fence(&mut self) {
        fence(Ordering::SeqCst);
    }
}

/// Run `check` under loom, exhaustively (no preemption bound); returns whether some
/// execution lost the wake-up.
fn lost_in_some_execution(check: impl Fn() -> bool + Sync + Send + 'static) -> bool {
    let lost = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (l, r) = (lost.clone(), runs.clone());
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = None;
    builder.check(move || {
        r.fetch_add(1, Ordering::Relaxed);
        if check() {
            l.fetch_add(1, Ordering::Relaxed);
        }
    });
    let (lost, runs) = (lost.load(Ordering::SeqCst), runs.load(Ordering::SeqCst));
    eprintln!("loom: {lost} of {runs} executions lost the wake-up");
    assert!(runs > 1, "loom explored only {runs} execution");
    lost > 0
}

/// The lost-kick race. State before: the device has consumed everything (next_avail = 0)
/// and had notifications suppressed; the driver adds one buffer (avail 0 -> 1).
fn kick_race(event_idx: bool, device_fence: bool, driver_fence: bool) -> bool {
    let fields = Arc::new(Fields::default());
    if !event_idx {
        // Suppressed while draining: NO_NOTIFY set.
        fields
            .used_flags
            .store(VRING_USED_F_NO_NOTIFY, Ordering::Relaxed);
    } else {
        // avail_event left behind (the device stopped moving it while draining): an
        // old value that does not ask for a kick on 0 -> 1.
        fields.avail_event.store(u16::MAX, Ordering::Relaxed);
    }
    let kicked = Arc::new(AtomicBool::new(false));
    let (f2, k2) = (fields.clone(), kicked.clone());
    let driver = loom::thread::spawn(move || {
        let kick = driver_kick_prepare(&mut Side(f2), event_idx, 0, 1, driver_fence);
        k2.store(kick, Ordering::Relaxed);
    });
    // The device: enable, re-check against next_avail = 0.
    let seen = device_enable(&mut Side(fields), event_idx, 0, device_fence);
    driver.join().unwrap();
    let device_sees_work = seen != 0;
    !device_sees_work && !kicked.load(Ordering::Relaxed)
}

/// The lost-interrupt race. State before: the driver has consumed everything
/// (last_used = 0) and had interrupts suppressed; the device publishes one entry (0 -> 1),
/// its previous decision was at 0.
fn interrupt_race(event_idx: bool, device_fence: bool, driver_fence: bool) -> bool {
    let fields = Arc::new(Fields::default());
    fields
        .avail_flags
        .store(VRING_AVAIL_F_NO_INTERRUPT, Ordering::Relaxed);
    // used_event left at an old value that does not ask for an interrupt on 0 -> 1.
    fields.used_event.store(u16::MAX, Ordering::Relaxed);
    let pending = Arc::new(AtomicBool::new(false));
    let (f2, p2) = (fields.clone(), pending.clone());
    let driver = loom::thread::spawn(move || {
        let nothing = driver_enable_cb(&mut Side(f2), event_idx, 0, driver_fence);
        p2.store(!nothing, Ordering::Relaxed);
    });
    let interrupt =
        device_publish_and_decide(&mut Side(fields), event_idx, 1, Some(0), device_fence);
    driver.join().unwrap();
    !interrupt && !pending.load(Ordering::Relaxed)
}

#[test]
fn with_both_fences_no_kick_is_ever_lost() {
    for event_idx in [true, false] {
        assert!(
            !lost_in_some_execution(move || kick_race(event_idx, true, true)),
            "event_idx {event_idx}: a lost kick with both fences"
        );
    }
}

#[test]
fn without_the_device_fence_loom_finds_the_lost_kick() {
    // QEMU 92045d8 absent: the missing-enable-fence and unfenced models.
    for event_idx in [true, false] {
        assert!(
            lost_in_some_execution(move || kick_race(event_idx, false, true)),
            "event_idx {event_idx}: loom found no lost kick without the enable fence"
        );
    }
}

#[test]
fn without_the_driver_fence_loom_finds_the_lost_kick() {
    assert!(lost_in_some_execution(|| kick_race(true, true, false)));
}

#[test]
fn with_both_fences_no_interrupt_is_ever_lost() {
    for event_idx in [true, false] {
        assert!(
            !lost_in_some_execution(move || interrupt_race(event_idx, true, true)),
            "event_idx {event_idx}: a lost interrupt with both fences"
        );
    }
}

#[test]
fn without_the_device_fence_loom_finds_the_lost_interrupt() {
    // QEMU a281ebc absent: the missing-notify-fence and unfenced models.
    for event_idx in [true, false] {
        assert!(
            lost_in_some_execution(move || interrupt_race(event_idx, false, true)),
            "event_idx {event_idx}: loom found no lost interrupt without the notify fence"
        );
    }
}

#[test]
fn without_the_driver_fence_loom_finds_the_lost_interrupt() {
    assert!(lost_in_some_execution(|| interrupt_race(true, true, false)));
}
