//! Ring 3 from the first instruction: `probe_main` is where boot.s `iretq`s to.

use crate::agent::Event;
use crate::exit::{exit, ExitCode};
use crate::{apic, bootinfo, idle, net, serial, time};
use probe::cmdline::{self, SelfTest};

/// The probe's version, reported in the first agent line.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// First Rust code, in ring 3 with SSE enabled and interrupts on.
#[no_mangle]
pub extern "C" fn probe_main() -> ! {
    let ring3_tsc = time::rdtsc();
    serial::init();
    let boot = match bootinfo::read() {
        Ok(boot) => boot,
        Err(error) => fatal(ExitCode::BadBootInfo, "boot_info", format_args!("{error}")),
    };
    let options = match cmdline::parse(boot.cmdline) {
        Ok(options) => options,
        Err(error) => fatal(ExitCode::BadBootInfo, "cmdline", format_args!("{error}")),
    };
    // Calibrate first, so that every timestamp (also of the stages before) is right.
    let (tsc_khz, source) = time::init(options.tsc_khz);
    Event::at("boot", ring3_tsc)
        .str("stage", "ring3")
        .str("version", VERSION)
        .emit();
    Event::new("boot")
        .str("stage", "boot_info")
        .str("protocol", boot.protocol.name())
        .str("cmdline", boot.cmdline)
        .u64("ram_bytes", boot.ram_bytes)
        .u64("memory_map_entries", boot.memory_map_entries)
        .emit();
    Event::new("boot")
        .str("stage", "tsc")
        .u64("tsc_khz", tsc_khz)
        .str("source", source.name())
        .emit();
    let timer_ticks_per_ms = apic::init();
    Event::new("boot")
        .str("stage", "apic")
        .u64("lapic_timer_ticks_per_ms", timer_ticks_per_ms)
        .u64("ioapic_inputs", u64::from(apic::ioapic_inputs()))
        .emit();
    for (index, device) in options.devices().enumerate() {
        // One vector per NIC, after the timer's: 0x21, 0x22, ...
        let vector = apic::TIMER_VECTOR + 1 + index as u8;
        let routed = apic::route_irq(device.irq, vector);
        Event::new("virtio_mmio_device")
            .hex("base", device.base)
            .u64("size", device.size)
            .u64("irq", u64::from(device.irq))
            .u64("vector", u64::from(vector))
            .str(
                "routed",
                if routed {
                    "yes"
                } else {
                    "no_such_ioapic_input"
                },
            )
            .emit();
    }
    if let Some(test) = options.selftest {
        run_selftest(test);
    }
    Event::new("boot").str("stage", "ready").emit();
    if options.exit_after_boot {
        Event::new("exit").str("reason", "exit_after_boot").emit();
        exit(ExitCode::Success);
    }
    match options.devices().next() {
        Some(device) => net::run(&options, device, apic::TIMER_VECTOR + 1),
        None => {
            Event::new("idle")
                .str("reason", "no virtio_mmio.device on the command line")
                .emit();
            idle_forever()
        }
    }
}

/// Nothing else to do yet: sleep through the idle gate.
fn idle_forever() -> ! {
    loop {
        idle::take_pending();
        idle::wait_for_interrupt();
    }
}

/// Exercise a fatal path or the timer (for the tests of the boot code).
fn run_selftest(test: SelfTest) {
    Event::new("selftest")
        .str("name", selftest_name(test))
        .emit();
    match test {
        SelfTest::Panic => panic!("selftest panic"),
        SelfTest::Exception => {
            // SAFETY: ud2 raises #UD on purpose; the ring-0 stub reports it and ends the VM.
            unsafe { core::arch::asm!("ud2") };
        }
        SelfTest::Timer => {
            const TICKS: u64 = 10;
            const PERIOD_US: u64 = 10_000;
            let start = time::rdtsc();
            let interrupts_before = idle::interrupt_count();
            let mut wakeups = 0u64;
            for _ in 0..TICKS {
                apic::arm_timer(PERIOD_US);
                loop {
                    idle::wait_for_interrupt();
                    wakeups += 1;
                    if idle::take_pending() & idle::vector_bit(apic::TIMER_VECTOR) != 0 {
                        break;
                    }
                }
            }
            let elapsed_us = time::ticks_to_micros(time::rdtsc() - start);
            Event::new("selftest_result")
                .str("name", "timer")
                .u64("ticks", TICKS)
                .u64("period_us", PERIOD_US)
                .u64("elapsed_us", elapsed_us)
                .u64("wakeups", wakeups)
                .u64("interrupts", idle::interrupt_count() - interrupts_before)
                .emit();
            exit(ExitCode::Success);
        }
    }
}

fn selftest_name(test: SelfTest) -> &'static str {
    match test {
        SelfTest::Panic => "panic",
        SelfTest::Exception => "exception",
        SelfTest::Timer => "timer",
    }
}

/// Report a fatal error as an agent line and end the VM.
pub fn fatal(code: ExitCode, reason: &str, message: core::fmt::Arguments<'_>) -> ! {
    Event::new("fatal")
        .str("reason", reason)
        .fmt("message", message)
        .u64("exit_code", code as u64)
        .emit();
    exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let message = info.message();
    match info.location() {
        Some(location) => fatal(
            ExitCode::Panic,
            "panic",
            format_args!("{message} at {}:{}", location.file(), location.line()),
        ),
        None => fatal(ExitCode::Panic, "panic", format_args!("{message}")),
    }
}
