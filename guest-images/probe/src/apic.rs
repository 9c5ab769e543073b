//! The local APIC (xAPIC MMIO at 0xFEE00000) and the IOAPIC (0xFEC00000), driven from
//! ring 3 through the user-accessible identity map: each access is an MMIO exit that the
//! in-kernel irqchip handles.

use core::ptr::{read_volatile, write_volatile};

use crate::time;

const LAPIC_BASE: usize = 0xfee0_0000;
const LAPIC_TPR: usize = 0x080;
const LAPIC_SVR: usize = 0x0f0;
const LAPIC_LVT_TIMER: usize = 0x320;
const LAPIC_TIMER_INITIAL: usize = 0x380;
const LAPIC_TIMER_CURRENT: usize = 0x390;
const LAPIC_TIMER_DIVIDE: usize = 0x3e0;
const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration 0b1011: divide by 1.
const DIVIDE_BY_1: u32 = 0xb;

const IOAPIC_BASE: usize = 0xfec0_0000;
const IOAPIC_REGSEL: usize = 0x00;
const IOAPIC_WINDOW: usize = 0x10;
const IOAPIC_VERSION: u32 = 0x01;
const IOAPIC_REDIRECTION: u32 = 0x10;

/// The LAPIC's spurious-interrupt vector (the ring-0 stub does not EOI it).
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// The LAPIC timer's vector.
pub const TIMER_VECTOR: u8 = 0x20;

fn lapic_read(reg: usize) -> u32 {
    // SAFETY: the LAPIC page is identity-mapped and user-accessible; aligned 32-bit access
    // as the xAPIC requires.
    unsafe { read_volatile((LAPIC_BASE + reg) as *const u32) }
}

fn lapic_write(reg: usize, value: u32) {
    // SAFETY: as for lapic_read.
    unsafe { write_volatile((LAPIC_BASE + reg) as *mut u32, value) }
}

/// LAPIC timer ticks per millisecond, measured by [`init`].
static TIMER_TICKS_PER_MS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Software-enable the LAPIC, accept all priorities, and measure the timer against the
/// TSC (which must already be calibrated). Returns timer ticks per millisecond.
pub fn init() -> u64 {
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_1);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    lapic_write(LAPIC_TIMER_INITIAL, u32::MAX);
    let start = time::rdtsc();
    let window = time::micros_to_ticks(2_000);
    while time::rdtsc() - start < window {}
    let elapsed = u32::MAX - lapic_read(LAPIC_TIMER_CURRENT);
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    let per_ms = (u64::from(elapsed) / 2).max(1);
    TIMER_TICKS_PER_MS.store(per_ms, core::sync::atomic::Ordering::Relaxed);
    per_ms
}

/// Arm the one-shot LAPIC timer to fire TIMER_VECTOR in `micros` microseconds.
pub fn arm_timer(micros: u64) {
    let per_ms = TIMER_TICKS_PER_MS
        .load(core::sync::atomic::Ordering::Relaxed)
        .max(1);
    let ticks = (micros.saturating_mul(per_ms) / 1000).clamp(1, u64::from(u32::MAX));
    lapic_write(LAPIC_LVT_TIMER, u32::from(TIMER_VECTOR));
    lapic_write(LAPIC_TIMER_INITIAL, ticks as u32);
}

fn ioapic_write(reg: u32, value: u32) {
    // SAFETY: the IOAPIC page is identity-mapped and user-accessible; select then write.
    unsafe {
        write_volatile((IOAPIC_BASE + IOAPIC_REGSEL) as *mut u32, reg);
        write_volatile((IOAPIC_BASE + IOAPIC_WINDOW) as *mut u32, value);
    }
}

fn ioapic_read(reg: u32) -> u32 {
    // SAFETY: as for ioapic_write.
    unsafe {
        write_volatile((IOAPIC_BASE + IOAPIC_REGSEL) as *mut u32, reg);
        read_volatile((IOAPIC_BASE + IOAPIC_WINDOW) as *const u32)
    }
}

/// Number of IOAPIC inputs (redirection entries).
pub fn ioapic_inputs() -> u32 {
    ((ioapic_read(IOAPIC_VERSION) >> 16) & 0xff) + 1
}

/// Route IOAPIC input `gsi` to `vector` on this CPU (APIC ID 0): fixed delivery, physical
/// destination, active high, edge-triggered. Edge is right for virtio-mmio here because
/// the driver acknowledges InterruptStatus *before* polling the queues, so any used
/// buffer added after the acknowledgement raises a fresh edge. Returns false if the
/// IOAPIC has no such input.
pub fn route_irq(gsi: u32, vector: u8) -> bool {
    if gsi >= ioapic_inputs() {
        return false;
    }
    ioapic_write(IOAPIC_REDIRECTION + 2 * gsi + 1, 0);
    ioapic_write(IOAPIC_REDIRECTION + 2 * gsi, u32::from(vector));
    true
}
