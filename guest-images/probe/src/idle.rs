//! Interrupt bookkeeping shared with the ring-0 stubs (src/boot.s), and idling through
//! `hlt` in ring 3, which faults into ring 0 where boot.s halts unless an interrupt is
//! pending.

use core::sync::atomic::{AtomicU64, Ordering};

/// First vector the IRQ stubs record; bit `v - FIRST_IRQ_VECTOR` of [`PROBE_IRQ_PENDING`].
pub const FIRST_IRQ_VECTOR: u8 = 0x20;

extern "C" {
    /// `hlt; ret` in boot.s.
    fn probe_idle();
}

/// Pending interrupt vectors, one bit each, set by the ring-0 stub (`lock bts`).
#[no_mangle]
pub static PROBE_IRQ_PENDING: AtomicU64 = AtomicU64::new(0);
/// Interrupts taken, counted by the ring-0 stub.
#[no_mangle]
pub static PROBE_IRQ_COUNT: AtomicU64 = AtomicU64::new(0);

/// Take (and clear) the set of pending vectors.
pub fn take_pending() -> u64 {
    PROBE_IRQ_PENDING.swap(0, Ordering::AcqRel)
}

/// The bit for `vector` in a value returned by [`take_pending`].
pub fn vector_bit(vector: u8) -> u64 {
    1u64 << (vector - FIRST_IRQ_VECTOR)
}

/// Interrupts taken since boot.
pub fn interrupt_count() -> u64 {
    PROBE_IRQ_COUNT.load(Ordering::Relaxed)
}

/// TSC ticks spent halted.
static IDLE_TICKS: AtomicU64 = AtomicU64::new(0);

/// TSC ticks spent halted since boot (for CPU utilisation).
pub fn idle_ticks() -> u64 {
    IDLE_TICKS.load(Ordering::Relaxed)
}

/// Sleep in ring 0 until an interrupt arrives; returns at once if one is pending.
pub fn wait_for_interrupt() {
    let start = crate::time::rdtsc();
    // SAFETY: probe_idle (boot.s) is `hlt; ret`; the hlt faults into the #GP handler,
    // which halts in ring 0 and resumes after it. It follows the C ABI.
    unsafe { probe_idle() };
    IDLE_TICKS.fetch_add(crate::time::rdtsc() - start, Ordering::Relaxed);
}
