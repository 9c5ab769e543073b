//! The probe guest boots on two VMMs through two entry points and reports over serial:
//! QEMU microvm (PVH note) and `vnetbed run` (Linux 64-bit boot protocol). The image is
//! built by the test itself (`vnetbed image build probe`).

mod common;
mod probe_support;

use std::time::Duration;

use common::{require, Capability};
use probe_support::*;

const LIMIT: Duration = Duration::from_secs(60);

/// The boot sequence every successful boot must report, in order.
const STAGES: [&str; 5] = ["ring3", "boot_info", "tsc", "apic", "ready"];

fn check_clean_boot(run: &GuestRun, protocol: &str) {
    assert_eq!(run.code(), debug_exit_status(0), "console:\n{}", run.serial);
    let stages: Vec<&str> = run
        .events_named("boot")
        .iter()
        .filter_map(|e| e["stage"].as_str())
        .collect();
    assert_eq!(stages, STAGES, "console:\n{}", run.serial);
    let info = run.boot_stage("boot_info");
    assert_eq!(info["protocol"], protocol);
    assert!(info["cmdline"]
        .as_str()
        .unwrap_or("")
        .contains("probe.exit_after_boot=1"));
    assert!(info["ram_bytes"].as_u64().unwrap_or(0) > 32 << 20, "{info}");
    let tsc = run.boot_stage("tsc");
    assert!(tsc["tsc_khz"].as_u64().unwrap_or(0) > 100_000, "{tsc}");
    let times: Vec<u64> = run
        .events
        .iter()
        .filter_map(|e| e["t_us"].as_u64())
        .collect();
    assert_eq!(times.len(), run.events.len(), "every event has t_us");
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "timestamps go forward: {times:?}"
    );
    assert_eq!(
        run.events.last().map(|e| e["event"].clone()),
        Some("exit".into())
    );
}

#[test]
fn probe_image_is_a_small_elf_with_pvh_note() {
    if !require(
        "probe_image_is_a_small_elf_with_pvh_note",
        &[Capability::Program("cc")],
    ) {
        return;
    }
    let image = probe_image();
    let bytes = std::fs::read(&image).expect("read image");
    assert!(bytes.len() < 2 << 20, "image is {} bytes", bytes.len());
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(bytes[4], 2, "ELF64");
    let entry = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
    assert_eq!(entry, 0x20_0000, "e_entry is the 64-bit entry at 2 MiB");
    // The PVH note: namesz 4, descsz 8, type 18, "Xen\0".
    let note = [4u32.to_le_bytes(), 8u32.to_le_bytes(), 18u32.to_le_bytes()].concat();
    let at = bytes
        .windows(12)
        .position(|w| w == note.as_slice())
        .expect("PVH note header");
    assert_eq!(&bytes[at + 12..at + 16], b"Xen\0");
}

#[test]
fn probe_boots_on_qemu_microvm_via_pvh() {
    let caps = [Capability::Kvm, Capability::Program("qemu-system-x86_64")];
    if !require("probe_boots_on_qemu_microvm_via_pvh", &caps) {
        return;
    }
    let run = run_bounded(
        qemu_microvm(&probe_image(), "probe.exit_after_boot=1", None),
        LIMIT,
    );
    check_clean_boot(&run, "pvh");
}

#[test]
fn probe_boots_on_vnetbed_via_linux_64bit_protocol() {
    if !require(
        "probe_boots_on_vnetbed_via_linux_64bit_protocol",
        &[Capability::Kvm],
    ) {
        return;
    }
    let run = run_bounded(
        vnetbed_run(&probe_image(), "probe.exit_after_boot=1"),
        LIMIT,
    );
    check_clean_boot(&run, "linux64");
}

#[test]
fn probe_fatal_paths_end_the_vm_with_their_status() {
    let caps = [Capability::Kvm, Capability::Program("qemu-system-x86_64")];
    if !require("probe_fatal_paths_end_the_vm_with_their_status", &caps) {
        return;
    }
    let image = probe_image();
    // Rust panic in ring 3 -> panic handler -> debug exit 1.
    let run = run_bounded(qemu_microvm(&image, "probe.selftest=panic", None), LIMIT);
    assert_eq!(run.code(), debug_exit_status(1), "console:\n{}", run.serial);
    let fatal = run.events_named("fatal");
    assert_eq!(fatal.len(), 1, "console:\n{}", run.serial);
    assert_eq!(fatal[0]["reason"], "panic");
    assert!(fatal[0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("selftest panic"));
    // ud2 in ring 3 -> #UD -> ring-0 stub -> debug exit 2, reported with vector 6.
    let run = run_bounded(
        qemu_microvm(&image, "probe.selftest=exception", None),
        LIMIT,
    );
    assert_eq!(run.code(), debug_exit_status(2), "console:\n{}", run.serial);
    let fatal = run.events_named("fatal");
    assert_eq!(fatal.len(), 1, "console:\n{}", run.serial);
    assert_eq!(fatal[0]["reason"], "cpu_exception");
    assert_eq!(fatal[0]["vector"], "0x0000000000000006");
    assert_eq!(fatal[0]["cs"], "0x0000000000000023", "raised in ring 3");
    // A typo in a probe option is refused with a clear message -> debug exit 3.
    let run = run_bounded(qemu_microvm(&image, "probe.evnt_idx=0", None), LIMIT);
    assert_eq!(run.code(), debug_exit_status(3), "console:\n{}", run.serial);
    let fatal = run.events_named("fatal");
    assert!(fatal[0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("probe.evnt_idx=0"));
}

#[test]
fn probe_sleeps_through_the_idle_gate_on_lapic_timer_interrupts() {
    let caps = [Capability::Kvm, Capability::Program("qemu-system-x86_64")];
    if !require(
        "probe_sleeps_through_the_idle_gate_on_lapic_timer_interrupts",
        &caps,
    ) {
        return;
    }
    let image = probe_image();
    for (vmm, command) in [
        ("qemu", qemu_microvm(&image, "probe.selftest=timer", None)),
        ("vnetbed", vnetbed_run(&image, "probe.selftest=timer")),
    ] {
        let run = run_bounded(command, LIMIT);
        assert_eq!(
            run.code(),
            debug_exit_status(0),
            "{vmm} console:\n{}",
            run.serial
        );
        let result = run.events_named("selftest_result");
        assert_eq!(result.len(), 1, "{vmm} console:\n{}", run.serial);
        let r = result[0];
        let ticks = r["ticks"].as_u64().unwrap();
        // Each tick is one timer interrupt; the guest woke from the idle gate for it.
        assert!(r["interrupts"].as_u64().unwrap() >= ticks, "{vmm}: {r}");
        assert!(r["wakeups"].as_u64().unwrap() >= ticks, "{vmm}: {r}");
        // One-shot timers never fire early: the ticks span at least their nominal time
        // (with 5% for TSC/LAPIC calibration error).
        let nominal = ticks * r["period_us"].as_u64().unwrap();
        assert!(
            r["elapsed_us"].as_u64().unwrap() * 100 >= nominal * 95,
            "{vmm}: {r}"
        );
    }
}
