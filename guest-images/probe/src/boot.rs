//! The ring-0 part: entry points, descriptor tables, interrupt stubs (src/boot.s).

core::arch::global_asm!(include_str!("boot.s"), options(raw));

/// The personality routine the precompiled `core` references; never called with
/// panic = "abort".
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}
