//! Timekeeping with the TSC. The frequency comes from `probe.tsc_khz`, or a calibration
//! against PIT channel 0 (ports 0x40/0x43), or CPUID as a last resort.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::port::{inb, outb};

/// TSC value at the first instruction of the entry code (written by boot.s).
#[no_mangle]
pub static PROBE_TSC_AT_ENTRY: AtomicU64 = AtomicU64::new(0);
/// TSC frequency in kHz; 0 until [`init`] ran.
static TSC_KHZ: AtomicU64 = AtomicU64::new(0);

/// PIT input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 20 ms of PIT ticks.
const CALIBRATION_MS: u64 = 20;
/// Give up on the PIT after this many reads (no PIT: the count never moves).
const MAX_PIT_POLLS: u64 = 1_000_000;
/// PIT ports.
const PIT_CHANNEL0: u16 = 0x40;
const PIT_COMMAND: u16 = 0x43;
/// Plausible TSC frequencies: 100 MHz to 20 GHz.
const MIN_PLAUSIBLE_KHZ: u64 = 100_000;
const MAX_PLAUSIBLE_KHZ: u64 = 20_000_000;

/// Where the TSC frequency came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscSource {
    /// `probe.tsc_khz=`.
    CommandLine,
    /// Measured against PIT channel 2.
    Pit,
    /// CPUID leaf 0x40000010 (hypervisor timing leaf) or 0x15/0x16.
    Cpuid,
    /// Nothing worked; assumed 1 GHz.
    Assumed,
}

impl TscSource {
    /// Name used in agent lines.
    pub fn name(self) -> &'static str {
        match self {
            TscSource::CommandLine => "cmdline",
            TscSource::Pit => "pit",
            TscSource::Cpuid => "cpuid",
            TscSource::Assumed => "assumed",
        }
    }
}

/// Read the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc is allowed in ring 3 (CR4.TSD is clear) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Set the TSC frequency; returns it in kHz and where it came from.
pub fn init(cmdline_khz: Option<u64>) -> (u64, TscSource) {
    let (khz, source) = if let Some(khz) = cmdline_khz {
        (khz, TscSource::CommandLine)
    } else if let Some(khz) = calibrate_with_pit() {
        (khz, TscSource::Pit)
    } else if let Some(khz) = cpuid_khz() {
        (khz, TscSource::Cpuid)
    } else {
        (1_000_000, TscSource::Assumed)
    };
    TSC_KHZ.store(khz, Ordering::Relaxed);
    (khz, source)
}

/// Count TSC ticks while PIT channel 0 counts down CALIBRATION_MS worth of its 1.193182 MHz
/// clock. Channel 0 (not 2) because its gate is always on: QEMU leaves port 0x61 to a
/// speaker device that microvm does not have. Channel 0's output (IRQ 0) goes nowhere:
/// the PIC is masked and the IOAPIC pin is not routed. None when there is no PIT or the
/// result is implausible.
fn calibrate_with_pit() -> Option<u64> {
    let target = PIT_HZ * CALIBRATION_MS / 1000;
    // Channel 0, lobyte/hibyte, mode 0 (interrupt on terminal count), binary, count 0xffff.
    outb(PIT_COMMAND, 0x30);
    outb(PIT_CHANNEL0, 0xff);
    outb(PIT_CHANNEL0, 0xff);
    let first = read_pit_channel0();
    let start = rdtsc();
    let mut polls = 0u64;
    let (elapsed_counts, end) = loop {
        let now = read_pit_channel0();
        let tsc = rdtsc();
        let elapsed = u64::from(first.wrapping_sub(now));
        if elapsed >= target {
            break (elapsed, tsc);
        }
        polls += 1;
        if polls > MAX_PIT_POLLS {
            return None;
        }
    };
    let khz =
        (u128::from(end - start) * u128::from(PIT_HZ) / u128::from(elapsed_counts) / 1000) as u64;
    (MIN_PLAUSIBLE_KHZ..=MAX_PLAUSIBLE_KHZ)
        .contains(&khz)
        .then_some(khz)
}

/// Latch and read PIT channel 0's current count.
fn read_pit_channel0() -> u16 {
    outb(PIT_COMMAND, 0x00); // counter latch, channel 0
    let low = inb(PIT_CHANNEL0);
    let high = inb(PIT_CHANNEL0);
    u16::from_le_bytes([low, high])
}

/// The TSC frequency from CPUID, when the hypervisor or CPU reports it.
fn cpuid_khz() -> Option<u64> {
    use core::arch::x86_64::__cpuid;
    let hypervisor_max = __cpuid(0x4000_0000).eax;
    if hypervisor_max >= 0x4000_0010 {
        let khz = __cpuid(0x4000_0010).eax;
        if khz != 0 {
            return Some(u64::from(khz));
        }
    }
    let max = __cpuid(0).eax;
    if max >= 0x15 {
        let leaf = __cpuid(0x15);
        if leaf.eax != 0 && leaf.ebx != 0 && leaf.ecx != 0 {
            return Some(u64::from(leaf.ecx) * u64::from(leaf.ebx) / u64::from(leaf.eax) / 1000);
        }
    }
    None
}

/// The TSC frequency in kHz (1 GHz before [`init`]).
pub fn tsc_khz() -> u64 {
    match TSC_KHZ.load(Ordering::Relaxed) {
        0 => 1_000_000,
        khz => khz,
    }
}

/// Microseconds since the first entry instruction.
pub fn micros_since_entry() -> u64 {
    tsc_to_micros_since_entry(rdtsc())
}

/// Microseconds from the first entry instruction to TSC value `tsc`.
pub fn tsc_to_micros_since_entry(tsc: u64) -> u64 {
    ticks_to_micros(tsc.saturating_sub(PROBE_TSC_AT_ENTRY.load(Ordering::Relaxed)))
}

/// Convert TSC ticks to microseconds.
pub fn ticks_to_micros(ticks: u64) -> u64 {
    (u128::from(ticks) * 1000 / u128::from(tsc_khz())) as u64
}

/// Convert microseconds to TSC ticks.
pub fn micros_to_ticks(micros: u64) -> u64 {
    (u128::from(micros) * u128::from(tsc_khz()) / 1000) as u64
}
