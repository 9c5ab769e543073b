/*
 * Ring 0 of the probe guest: entry points, descriptor tables, interrupt stubs and the
 * idle gate (`hlt` from ring 3, completed by the #GP handler). Integer instructions only: on nested hosts KVM runs guest ring 0 through its
 * instruction emulator (about 1 M instructions/s), which fails on SSE. Keep it short.
 *
 * Two entries converge on `common64`:
 *  - `_start64`: Linux x86-64 64-bit boot protocol (ELF e_entry), long mode, rsi = boot_params;
 *  - `pvh_entry`: PVH (XEN_ELFNOTE_PHYS32_ENTRY), 32-bit protected mode, ebx = hvm_start_info.
 * `common64` loads our GDT/IDT/TSS and page tables, masks the legacy PIC, enables SSE and
 * `iretq`s to ring 3 at `probe_main` (Rust).
 */

.set KCODE, 0x08
.set KDATA, 0x10
.set UDATA, 0x1b
.set UCODE, 0x23
.set TSS_SELECTOR, 0x28
.set FIRST_IRQ_VECTOR, 0x20
.set LAST_IRQ_VECTOR, 0x5f
.set SPURIOUS_VECTOR, 0xff
.set COM1, 0x3f8
.set DEBUG_EXIT_PORT, 0xf4
.set EXIT_CPU_EXCEPTION, 2
.set LAPIC_EOI, 0xfee000b0
.set TSS_SIZE, 104 + 8192 + 1    /* header, bitmap for ports 0-0xffff, terminator */

/* ---- PVH entry note ------------------------------------------------------------------ */
.section .note.Xen, "a", @note
.p2align 2
.long 4                     /* namesz: "Xen\0" */
.long 8                     /* descsz */
.long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
.asciz "Xen"
.p2align 2
.quad pvh_entry

/* ---- entry points -------------------------------------------------------------------- */
.section .text.boot, "ax"

.code64
.global _start64
_start64:
    cli
    mov r8, rsi
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov [rip + PROBE_TSC_AT_ENTRY], rax
    mov [rip + PROBE_BOOT_INFO], r8
    mov qword ptr [rip + PROBE_BOOT_PROTOCOL], 1
    lgdt [rip + gdt_pointer]
    jmp common64

.code32
.global pvh_entry
pvh_entry:
    cli
    mov esi, ebx
    rdtsc
    mov dword ptr [PROBE_TSC_AT_ENTRY], eax
    mov dword ptr [PROBE_TSC_AT_ENTRY + 4], edx
    mov dword ptr [PROBE_BOOT_INFO], esi
    mov dword ptr [PROBE_BOOT_INFO + 4], 0
    mov dword ptr [PROBE_BOOT_PROTOCOL], 2
    mov dword ptr [PROBE_BOOT_PROTOCOL + 4], 0
    lgdt [gdt_pointer]
    mov eax, KDATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    /* Long mode: PAE, our page tables, EFER.LME, then paging. */
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, offset pml4
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    mov cr0, eax
    /* ljmp KCODE:common64 (ptr16:32) */
    .byte 0xea
    .long common64
    .word KCODE

.code64
common64:
    mov eax, KDATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + kernel_stack_top]
    lea rax, [rip + pml4]
    mov cr3, rax
    /* Reload CS with our 64-bit code selector: far return to the next label. */
    lea rax, [rip + .Lcs_reloaded]
    push KCODE
    push rax
    .byte 0x48, 0xcb            /* retfq */
.Lcs_reloaded:
    /* TSS descriptor: base split over the 16-byte system descriptor. */
    lea rdx, [rip + tss]
    mov rax, rdx
    shl rax, 16
    mov rcx, 0x000000ffffff0000
    and rax, rcx
    mov rcx, rdx
    shr rcx, 24
    and ecx, 0xff
    shl rcx, 56
    or rax, rcx
    mov rcx, 0x0000890000000000 + TSS_SIZE - 1
    or rax, rcx
    mov [rip + gdt_tss], rax
    shr rdx, 32
    mov [rip + gdt_tss + 8], rdx
    mov eax, TSS_SELECTOR
    ltr ax
    /* IDT: 256 interrupt gates to 16-byte stubs. */
    lea rdi, [rip + idt]
    lea rsi, [rip + isr_stubs]
    mov r9, 0x00008e0000000000
    xor ecx, ecx
.Lidt_fill:
    mov eax, esi
    and eax, 0xffff
    or eax, KCODE << 16
    mov rdx, rsi
    shr rdx, 16
    shl rdx, 48
    or rax, rdx
    or rax, r9
    mov [rdi], rax
    mov rax, rsi
    shr rax, 32
    mov [rdi + 8], rax
    add rdi, 16
    add rsi, 16
    inc ecx
    cmp ecx, 256
    jb .Lidt_fill
    lidt [rip + idt_pointer]
    /* Mask the legacy PIC: KVM's LVT0 is ExtINT, and an unprogrammed PIC would deliver
       GSI 0-15 as vectors 0-15 (exceptions). */
    mov al, 0xff
    out 0x21, al
    out 0xa1, al
    /* SSE for ring 3: CR0.EM = 0, CR0.MP = 1, CR0.TS = 0; CR4.OSFXSR | CR4.OSXMMEXCPT. */
    mov rax, cr0
    and rax, ~0x0c
    or rax, 0x02
    mov cr0, rax
    mov rax, cr4
    or rax, 0x600
    mov cr4, rax
    /* Drop to ring 3 with interrupts enabled. The SysV ABI wants rsp = 8 (mod 16) at
       function entry, as if `call` had pushed a return address. */
    lea rax, [rip + user_stack_top - 8]
    lea rcx, [rip + probe_main]
    push UDATA
    push rax
    push 0x202
    push UCODE
    push rcx
    iretq

/* ---- interrupt stubs: 256 x 16 bytes ------------------------------------------------- */
.p2align 4
isr_stubs:
.set vector, 0
.rept 256
    .p2align 4
    .if (vector == 8) || ((vector >= 10) && (vector <= 14)) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    .byte 0x6a, 0x00            /* push 0: no error code */
    .endif
    .byte 0x68                  /* push imm32: the vector */
    .long vector
    .if vector == 13
    jmp general_protection
    .elseif vector < 32
    jmp exception_common
    .elseif (vector >= FIRST_IRQ_VECTOR) && (vector <= LAST_IRQ_VECTOR)
    jmp irq_common
    .elseif vector == SPURIOUS_VECTOR
    jmp spurious
    .else
    jmp exception_common
    .endif
    .set vector, vector + 1
.endr

/* An external interrupt (vectors 0x20-0x5f): set bit (vector - 0x20) of
   PROBE_IRQ_PENDING for ring 3, count it, EOI the LAPIC. */
.p2align 4
irq_common:
    push rax
    mov eax, [rsp + 8]
    sub eax, FIRST_IRQ_VECTOR
    lock bts [rip + PROBE_IRQ_PENDING], rax
    lock inc qword ptr [rip + PROBE_IRQ_COUNT]
    mov eax, LAPIC_EOI
    mov dword ptr [rax], 0
    pop rax
    add rsp, 16
    iretq

/* #GP. The idle gate is `hlt` at probe_idle_hlt executed in ring 3: it faults here, and
   we perform it in ring 0 unless an interrupt is already pending. (`int N` DPL-3 gates
   raise #UD and `syscall` lands in CPL 3 under the nested PVM hypervisor; faults are
   delivered faithfully.) Interrupt gate, so IF = 0: the check and `sti; hlt` cannot miss
   a wake-up (sti's one-instruction shadow covers hlt). Any other #GP is fatal. */
general_protection:
    push rax
    push rcx
    mov rax, [rsp + 32]         /* faulting rip (after rcx, rax, vector, error code) */
    lea rcx, [rip + probe_idle_hlt]
    cmp rax, rcx
    pop rcx
    pop rax
    jne exception_common
    add qword ptr [rsp + 16], 1 /* resume after the 1-byte hlt */
    add rsp, 16
    cmp qword ptr [rip + PROBE_IRQ_PENDING], 0
    jne .Lidle_return
    sti
    hlt
.Lidle_return:
    iretq

/* Ring 3 calls this to sleep until an interrupt (see general_protection). */
.global probe_idle
probe_idle:
.global probe_idle_hlt
probe_idle_hlt:
    hlt
    ret

/* The LAPIC's spurious vector: no EOI. */
spurious:
    add rsp, 16
    iretq

/* A CPU exception (or an unexpected vector): report it on COM1 and end the VM. */
exception_common:
    lea rsi, [rip + msg_exception]
    call serial_puts
    mov rax, [rsp]
    call serial_puthex
    lea rsi, [rip + msg_error_code]
    call serial_puts
    mov rax, [rsp + 8]
    call serial_puthex
    lea rsi, [rip + msg_rip]
    call serial_puts
    mov rax, [rsp + 16]
    call serial_puthex
    lea rsi, [rip + msg_cs]
    call serial_puts
    mov rax, [rsp + 24]
    call serial_puthex
    lea rsi, [rip + msg_cr2]
    call serial_puts
    mov rax, cr2
    call serial_puthex
    lea rsi, [rip + msg_end]
    call serial_puts
    mov eax, EXIT_CPU_EXCEPTION
    out DEBUG_EXIT_PORT, eax
.Lexception_halt:
    cli
    hlt
    jmp .Lexception_halt

/* Write the NUL-terminated string at rsi to COM1. Clobbers rax, rdx, rsi. */
serial_puts:
    mov edx, COM1
.Lputs_next:
    mov al, [rsi]
    test al, al
    jz .Lputs_done
    out dx, al
    inc rsi
    jmp .Lputs_next
.Lputs_done:
    ret

/* Write rax as 16 hex digits to COM1. Clobbers rax, rcx, rdx, r8, r9. */
serial_puthex:
    mov ecx, 16
    lea r8, [rip + hex_digits]
    mov edx, COM1
.Lhex_next:
    rol rax, 4
    mov r9, rax
    and r9d, 0xf
    push rax
    mov al, [r8 + r9]
    out dx, al
    pop rax
    dec ecx
    jnz .Lhex_next
    ret

.section .rodata.boot, "a"
hex_digits:
    .ascii "0123456789abcdef"
msg_exception:
    .asciz "\r\n@probe {\"event\":\"fatal\",\"reason\":\"cpu_exception\",\"vector\":\"0x"
msg_error_code:
    .asciz "\",\"error_code\":\"0x"
msg_rip:
    .asciz "\",\"rip\":\"0x"
msg_cs:
    .asciz "\",\"cs\":\"0x"
msg_cr2:
    .asciz "\",\"cr2\":\"0x"
msg_end:
    .asciz "\"}\r\n"

/* ---- descriptor tables --------------------------------------------------------------- */
.section .data.boot, "aw"
.p2align 4
gdt:
    .quad 0                     /* null */
    .quad 0x00af9a000000ffff    /* 0x08 kernel code, 64-bit */
    .quad 0x00cf92000000ffff    /* 0x10 kernel data */
    .quad 0x00cff2000000ffff    /* 0x18 user data (DPL 3) */
    .quad 0x00affa000000ffff    /* 0x20 user code, 64-bit (DPL 3) */
gdt_tss:
    .quad 0                     /* 0x28 TSS, filled in at boot */
    .quad 0
gdt_end:

.p2align 3
    .word 0, 0, 0
gdt_pointer:
    .word gdt_end - gdt - 1
    .quad gdt
.p2align 3
    .word 0, 0, 0
idt_pointer:
    .word 256 * 16 - 1
    .quad idt

/* 64-bit TSS: rsp0 for interrupts from ring 3, and the I/O permission bitmap (IOPL 3 is
   not honoured on nested hosts, so ring 3 port I/O needs bitmap bits cleared). */
.p2align 4
tss:
    .long 0
    .quad kernel_stack_top      /* rsp0 */
    .quad 0, 0                  /* rsp1, rsp2 */
    .quad 0                     /* reserved */
    .quad 0, 0, 0, 0, 0, 0, 0   /* ist1..ist7 */
    .quad 0                     /* reserved */
    .word 0                     /* reserved */
    .word iomap - tss           /* I/O map base */
iomap:                          /* one bit per port 0x0000-0xffff, 0 = allowed */
    .fill 8, 1, 0xff            /* 0x000-0x03f */
    .byte 0xf0                  /* 0x040-0x047: PIT 0x40-0x43 */
    .fill 3, 1, 0xff            /* 0x048-0x05f */
    .byte 0xfd                  /* 0x060-0x067: 0x61 (PIT gate/speaker) */
    .fill 17, 1, 0xff           /* 0x068-0x0ef */
    .byte 0x0f                  /* 0x0f0-0x0f7: debug exit 0xf4-0xf7 */
    .fill 96, 1, 0xff           /* 0x0f8-0x3f7 */
    .byte 0x00                  /* 0x3f8-0x3ff: COM1 */
    .fill 287, 1, 0xff          /* 0x400-0xcf7 */
    .byte 0x00                  /* 0xcf8-0xcff: PCI configuration address/data */
    .fill 96, 1, 0xff           /* 0xd00-0xfff */
    .fill 7680, 1, 0x00         /* 0x1000-0xffff: PCI I/O BARs (legacy virtio-pci) */
    .byte 0xff                  /* terminator */
tss_end:
.if (tss_end - tss) != TSS_SIZE
.error "TSS_SIZE does not match the TSS layout"
.endif

/* Identity map of the first 4 GiB with 2 MiB pages, user-accessible (ring 3 drives the
   devices: virtio-mmio, IOAPIC, LAPIC). The top GiB (MMIO windows) is uncached. */
.section .data.pagetables, "aw"
.p2align 12
pml4:
    .quad pdpt + 0x7
    .fill 511, 8, 0
pdpt:
    .quad pd + 0x0000 + 0x7
    .quad pd + 0x1000 + 0x7
    .quad pd + 0x2000 + 0x7
    .quad pd + 0x3000 + 0x7
    .fill 508, 8, 0
pd:
.set page, 0
.rept 2048
    .if page >= 1536
    .quad (page << 21) | 0x9f   /* P RW US PWT PCD PS */
    .else
    .quad (page << 21) | 0x87   /* P RW US PS */
    .endif
    .set page, page + 1
.endr

.section .bss.boot, "aw", @nobits
.p2align 12
idt:
    .skip 256 * 16
kernel_stack:
    .skip 16384
kernel_stack_top:
.p2align 12
user_stack:
    .skip 512 * 1024
user_stack_top:
