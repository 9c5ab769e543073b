//! Ring 3 from the first instruction: `probe_main` is where boot.s `iretq`s to.

use crate::agent::Event;
use crate::exit::{exit, ExitCode};
use crate::net::{Location, NicIrq, NicSetup};
use crate::pci::ConfigAccess;
use crate::transport::{Mmio, Transport};
use crate::virtio_pci::{self, IrqChoice, IrqMode};
use crate::{acpi, apic, bootinfo, idle, net, serial, time};
use probe::cmdline::{self, Options, SelfTest};

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
    let setup = match options.devices().next() {
        Some(device) => match Mmio::probe(device.base) {
            Ok(mmio) => Some(NicSetup {
                transport: Transport::Mmio(mmio),
                irq: NicIrq::Line {
                    vector: apic::TIMER_VECTOR + 1,
                    mode: "line",
                },
                location: Location::Mmio(device.base),
            }),
            Err(error) => fatal(ExitCode::DeviceError, "nic", format_args!("{error}")),
        },
        None => find_pci_nic(&boot, &options),
    };
    match setup {
        Some(setup) => net::run(&options, setup),
        None => {
            Event::new("idle")
                .str(
                    "reason",
                    "no virtio_mmio.device on the command line and no virtio-net PCI function",
                )
                .emit();
            idle_forever()
        }
    }
}

/// QEMU microvm's ECAM (hw/i386/microvm.c: PCIE_ECAM_BASE).
const MICROVM_ECAM: u64 = 0xe000_0000;

/// MSI-X vectors: config, rx, tx.
const MSIX_VECTORS: [u8; 3] = [0x30, 0x31, 0x32];

/// Look for a virtio-net function on PCI bus 0 (ECAM from ACPI MCFG, else ports
/// 0xCF8/0xCFC) and set it up. A virtio function that is not a NIC, or a NIC that cannot
/// be used, is reported and ends the VM (exit status 9); no PCI NIC at all returns None.
fn find_pci_nic(boot: &bootinfo::BootInfo, options: &Options) -> Option<NicSetup> {
    let acpi = acpi::find(boot.rsdp);
    let (access, source) = match acpi.and_then(|a| a.ecam) {
        Some(ecam) => (ConfigAccess::Ecam { base: ecam.base }, "mcfg"),
        // QEMU microvm (pcie=on) has no MCFG: its ECAM is at a fixed address, where its
        // host bridge answers.
        None if virtio_pci::is_microvm_ecam(MICROVM_ECAM) => {
            (ConfigAccess::Ecam { base: MICROVM_ECAM }, "microvm_layout")
        }
        None => (ConfigAccess::Ports, "ports"),
    };
    let mut event = Event::new("pci")
        .str("config_access", access.name())
        .str("found_by", source);
    if let ConfigAccess::Ecam { base } = access {
        event = event.hex("ecam", base);
    }
    if let Some(acpi) = acpi {
        let mut names = [0u8; 16 * 5];
        let mut len = 0;
        for name in acpi.table_names() {
            for byte in name.bytes().chain(core::iter::once(b' ')) {
                names[len] = byte;
                len += 1;
            }
        }
        let names = core::str::from_utf8(&names[..len]).unwrap_or("").trim_end();
        event = event
            .hex("rsdp", acpi.rsdp)
            .str("rsdp_found_by", acpi.found_by)
            .str("acpi_tables", names);
        if let Some(ecam) = acpi.ecam {
            event = event
                .u64("ecam_start_bus", u64::from(ecam.start_bus))
                .u64("ecam_end_bus", u64::from(ecam.end_bus));
        }
    }
    let (found, count) = virtio_pci::find_virtio(&access);
    event.u64("virtio_functions", count as u64).emit();
    for function in found.iter().flatten() {
        Event::new("pci_device")
            .fmt("pci", format_args!("{}", function.function))
            .hex("vendor", u64::from(virtio_pci::VIRTIO_VENDOR))
            .hex("device", u64::from(function.device_id))
            .u64("virtio_type", u64::from(function.virtio_type))
            .bool("net", function.is_net())
            .emit();
    }
    let Some(nic) = found.iter().flatten().find(|f| f.is_net()) else {
        if let Some(other) = found.iter().flatten().next() {
            fatal(
                ExitCode::DeviceError,
                "nic",
                format_args!(
                    "{}: virtio device type {} is not a network card (1); no virtio-net function on bus 0",
                    other.function, other.virtio_type
                ),
            );
        }
        return None;
    };
    let choice = IrqChoice {
        msix: options.msix,
        msix_vectors: MSIX_VECTORS,
        intx_vector: apic::TIMER_VECTOR + 1,
    };
    let pci_nic = match virtio_pci::setup(
        &access,
        nic,
        &boot.ram,
        options.virtio_pci,
        choice,
        apic::route_irq,
    ) {
        Ok(pci_nic) => pci_nic,
        Err(error) => fatal(ExitCode::DeviceError, "nic", format_args!("{error}")),
    };
    let mut event = Event::new("pci_nic")
        .fmt("pci", format_args!("{}", pci_nic.function))
        .str("transport", pci_nic.transport.name())
        .str(
            "bars",
            if pci_nic.bars_assigned > 0 {
                "assigned_by_probe"
            } else {
                "as_firmware_left_them"
            },
        );
    let irq = match pci_nic.irq {
        IrqMode::MsiX { config, rx, tx } => {
            event = event.str("interrupts", "msix");
            NicIrq::MsiX { config, rx, tx }
        }
        IrqMode::Intx { vector, gsi } => {
            event = event.str("interrupts", "intx").u64("gsi", u64::from(gsi));
            NicIrq::Line {
                vector,
                mode: "intx",
            }
        }
    };
    event.emit();
    Some(NicSetup {
        transport: pci_nic.transport,
        irq,
        location: Location::Pci(pci_nic.function),
    })
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
