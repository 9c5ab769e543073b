//! Tiny built-in guests for tests, benchmarks and `vnetbed doctor`.
//!
//! The code is assembled by rustc (`global_asm!`) into a read-only section of the vnetbed
//! binary and never runs on the host: [`elf_image`] copies it into a minimal ELF64 with one
//! `PT_LOAD` segment at 1 MiB, which then boots through the same ELF loader and 64-bit entry
//! path as any kernel. Each guest is one entry point in the blob. The code is
//! position-independent, integer-only (guest ring 0 may run in KVM's instruction emulator),
//! and enters with the boot state of [`crate::boot::cpu`].

use std::arch::global_asm;

/// Where the blob is loaded (and where the ELF's PT_LOAD segment says it goes).
pub const LOAD_ADDR: u64 = 0x10_0000;

/// Iterations of the ring-0 loop of [`TestGuest::SpeedTest`] (2 instructions each).
pub const SPEED_RING0_ITERATIONS: u64 = 100_000;
/// Iterations of the ring-3 loop of [`TestGuest::SpeedTest`] (2 instructions each).
pub const SPEED_RING3_ITERATIONS: u64 = 400_000_000;

/// The line [`TestGuest::Hello`] prints.
pub const HELLO_LINE: &str = "vnetbed test guest: hello from ring 0";

global_asm!(
    r#"
    .pushsection .rodata.vnetbed_testguest, "a"
    .p2align 12
    .globl vnetbed_tg_start
vnetbed_tg_start:

// Hello: print HELLO_LINE + '\n' on COM1, then write the 32-bit status word to debug-exit
// (or reset through the i8042 when the word is 0xffffffff).
vnetbed_tg_hello:
    lea rsi, [rip + 2f]
    lea rcx, [rip + 3f]
    sub rcx, rsi
    mov dx, 0x3f8
1:  mov al, byte ptr [rsi]
    out dx, al
    inc rsi
    dec ecx
    jnz 1b
    mov eax, dword ptr [rip + vnetbed_tg_status]
    cmp eax, 0xffffffff
    je vnetbed_tg_reset
    mov dx, 0xf4
    out dx, eax
    jmp vnetbed_tg_park
2:  .ascii "vnetbed test guest: hello from ring 0\n"
3:
    .p2align 2
vnetbed_tg_status:
    .long 0

// TripleFault: an exception with an empty IDT.
vnetbed_tg_triple:
    lidt [rip + vnetbed_tg_null_idtr]
    ud2

// Reset: pulse the i8042 reset line.
vnetbed_tg_reset:
    mov al, 0xfe
    out 0x64, al
    jmp vnetbed_tg_park

// Hang: say so, then halt with interrupts off forever (only a signal to the VMM ends it).
vnetbed_tg_hang:
    mov dx, 0x3f8
    mov al, 'z'
    out dx, al
    mov al, 10
    out dx, al
vnetbed_tg_park:
    cli
    hlt
    jmp vnetbed_tg_park

// SseInRing0: enable SSE (CR4.OSFXSR | OSXMMEXCPT), run one SSE instruction in ring 0, then
// write 0 to debug-exit. Where guest ring 0 is emulated (nested without VMX/SVM), KVM's
// instruction emulator cannot execute SSE and the VM ends with an internal error instead.
vnetbed_tg_sse:
    mov rax, cr0
    and rax, ~4
    or rax, 2
    mov cr0, rax
    mov rax, cr4
    or rax, 0x600
    mov cr4, rax
    psllq xmm0, 1
    xor eax, eax
    mov dx, 0xf4
    out dx, eax
    jmp vnetbed_tg_park

// SpeedTest: 'a', ring-0 loop, 'b', then iretq to ring 3 for a ring-3 loop that ends in a
// triple fault (ud2 with no IDT). The VMM timestamps the two serial bytes and the fault.
vnetbed_tg_speed:
    mov dx, 0x3f8
    mov al, 'a'
    out dx, al
    mov ecx, {r0}
1:  dec ecx
    jnz 1b
    mov al, 'b'
    out dx, al
    // User access (U bit) on the path to the first 2 MiB page: PML4[0], PDPT[0], PD[0].
    or qword ptr [0x9000], 4
    or qword ptr [0xa000], 4
    or qword ptr [0xb000], 4
    mov rax, cr3
    mov cr3, rax
    lidt [rip + vnetbed_tg_null_idtr]
    lea rax, [rip + vnetbed_tg_gdt]
    mov qword ptr [rip + vnetbed_tg_gdtr + 2], rax
    lgdt [rip + vnetbed_tg_gdtr]
    push 0x23
    push 0x80000
    push 0x2
    push 0x1b
    lea rax, [rip + 2f]
    push rax
    iretq
2:  mov rcx, {r3}
3:  dec rcx
    jnz 3b
    ud2

    .p2align 3
vnetbed_tg_gdt:
    .quad 0
    .quad 0x00af9b000000ffff
    .quad 0x00cf93000000ffff
    .quad 0x00affb000000ffff
    .quad 0x00cff3000000ffff
vnetbed_tg_gdtr:
    .word 5 * 8 - 1
    .quad 0
vnetbed_tg_null_idtr:
    .word 0
    .quad 0

    .globl vnetbed_tg_end
vnetbed_tg_end:

    .globl vnetbed_tg_off_hello
    .set vnetbed_tg_off_hello, vnetbed_tg_hello - vnetbed_tg_start
    .globl vnetbed_tg_off_status
    .set vnetbed_tg_off_status, vnetbed_tg_status - vnetbed_tg_start
    .globl vnetbed_tg_off_triple
    .set vnetbed_tg_off_triple, vnetbed_tg_triple - vnetbed_tg_start
    .globl vnetbed_tg_off_reset
    .set vnetbed_tg_off_reset, vnetbed_tg_reset - vnetbed_tg_start
    .globl vnetbed_tg_off_hang
    .set vnetbed_tg_off_hang, vnetbed_tg_hang - vnetbed_tg_start
    .globl vnetbed_tg_off_sse
    .set vnetbed_tg_off_sse, vnetbed_tg_sse - vnetbed_tg_start
    .globl vnetbed_tg_off_speed
    .set vnetbed_tg_off_speed, vnetbed_tg_speed - vnetbed_tg_start
    .popsection
"#,
    r0 = const SPEED_RING0_ITERATIONS,
    r3 = const SPEED_RING3_ITERATIONS,
);

unsafe extern "C" {
    static vnetbed_tg_start: u8;
    static vnetbed_tg_end: u8;
    static vnetbed_tg_off_hello: u8;
    static vnetbed_tg_off_status: u8;
    static vnetbed_tg_off_triple: u8;
    static vnetbed_tg_off_reset: u8;
    static vnetbed_tg_off_hang: u8;
    static vnetbed_tg_off_speed: u8;
    static vnetbed_tg_off_sse: u8;
}

/// Which built-in guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestGuest {
    /// Prints [`HELLO_LINE`] and ends through the debug-exit port with the given value
    /// (process exit status `(v << 1) | 1`).
    Hello(u32),
    /// Prints [`HELLO_LINE`] and resets through the i8042 (exit status 0).
    HelloReset,
    /// Triple-faults at once.
    TripleFault,
    /// Resets through the i8042.
    Reset,
    /// Prints "z" and halts forever with interrupts off.
    Hang,
    /// Prints 'a', loops in ring 0, prints 'b', loops in ring 3, triple-faults.
    SpeedTest,
    /// Runs one SSE instruction in ring 0, then writes 0 to debug-exit: an internal error
    /// where KVM emulates guest ring 0, a normal debug exit elsewhere.
    SseInRing0,
}

fn blob() -> &'static [u8] {
    // SAFETY: both symbols are labels in the same section emitted by the global_asm! above,
    // start before end, and the bytes between them are initialised read-only data that lives
    // for the whole program.
    unsafe {
        let start = &raw const vnetbed_tg_start;
        let end = &raw const vnetbed_tg_end;
        std::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

fn offset(sym: *const u8) -> usize {
    // Absolute symbols: their "address" is the offset value itself.
    sym as usize
}

impl TestGuest {
    fn entry_offset(self) -> usize {
        offset(match self {
            TestGuest::Hello(_) | TestGuest::HelloReset => &raw const vnetbed_tg_off_hello,
            TestGuest::TripleFault => &raw const vnetbed_tg_off_triple,
            TestGuest::Reset => &raw const vnetbed_tg_off_reset,
            TestGuest::Hang => &raw const vnetbed_tg_off_hang,
            TestGuest::SpeedTest => &raw const vnetbed_tg_off_speed,
            TestGuest::SseInRing0 => &raw const vnetbed_tg_off_sse,
        })
    }
}

/// The guest as an ELF64 executable image (bytes of a file).
pub fn elf_image(guest: TestGuest) -> Vec<u8> {
    let mut code = blob().to_vec();
    let status = match guest {
        TestGuest::Hello(status) => Some(status),
        TestGuest::HelloReset => Some(u32::MAX),
        _ => None,
    };
    if let Some(status) = status {
        let at = offset(&raw const vnetbed_tg_off_status);
        code[at..at + 4].copy_from_slice(&status.to_le_bytes());
    }
    build_elf(&code, LOAD_ADDR, LOAD_ADDR + guest.entry_offset() as u64)
}

/// A minimal ELF64 executable: one `PT_LOAD` segment (RWX) of `code` at physical and virtual
/// address `addr`, entered at `entry`.
pub fn build_elf(code: &[u8], addr: u64, entry: u64) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    const CODE_OFFSET: usize = 0x1000;
    let mut f = vec![0u8; CODE_OFFSET];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little endian
    f[6] = 1; // EV_CURRENT
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&(EHDR as u16).to_le_bytes());
    f[54..56].copy_from_slice(&(PHDR as u16).to_le_bytes());
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    f[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    let p = &mut f[EHDR..EHDR + PHDR];
    p[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    p[4..8].copy_from_slice(&7u32.to_le_bytes()); // RWX
    p[8..16].copy_from_slice(&(CODE_OFFSET as u64).to_le_bytes());
    p[16..24].copy_from_slice(&addr.to_le_bytes());
    p[24..32].copy_from_slice(&addr.to_le_bytes());
    p[32..40].copy_from_slice(&(code.len() as u64).to_le_bytes());
    p[40..48].copy_from_slice(&(code.len() as u64).to_le_bytes());
    p[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
    f.extend_from_slice(code);
    f
}

/// Write the guest's ELF to `path`.
pub fn write_elf(guest: TestGuest, path: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(path, elf_image(guest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_is_an_elf_with_the_blob_and_patched_status() {
        let img = elf_image(TestGuest::Hello(0x2a));
        assert_eq!(&img[0..4], b"\x7fELF");
        let entry = u64::from_le_bytes(img[24..32].try_into().unwrap());
        assert_eq!(entry, LOAD_ADDR + TestGuest::Hello(0).entry_offset() as u64);
        let code = &img[0x1000..];
        assert_eq!(code.len(), blob().len());
        let at = offset(&raw const vnetbed_tg_off_status);
        assert_eq!(
            u32::from_le_bytes(code[at..at + 4].try_into().unwrap()),
            0x2a
        );
        let text = String::from_utf8_lossy(code);
        assert!(text.contains(HELLO_LINE));
        let offs = [
            TestGuest::TripleFault,
            TestGuest::Reset,
            TestGuest::Hang,
            TestGuest::SpeedTest,
        ]
        .map(|g| g.entry_offset());
        assert!(offs.iter().all(|&o| o > 0 && o < code.len()));
    }
}
