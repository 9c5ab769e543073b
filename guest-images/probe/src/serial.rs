//! The 16550 UART at COM1 (0x3f8), driven from ring 3 (the TSS I/O bitmap allows it).

use crate::port::{inb, outb};

const COM1: u16 = 0x3f8;
const LINE_STATUS: u16 = COM1 + 5;
const TRANSMIT_EMPTY: u8 = 0x20;
/// Transmit FIFO depth of a 16550A with FIFOs enabled (init sets FCR).
const FIFO_DEPTH: usize = 16;
/// Poll this many times for room in the transmitter before writing anyway.
const MAX_POLLS: u32 = 100_000;

/// Program COM1 for 115200 8N1 with FIFOs.
pub fn init() {
    outb(COM1 + 1, 0x00); // no UART interrupts
    outb(COM1 + 3, 0x80); // DLAB
    outb(COM1, 0x01); // divisor 1: 115200 baud
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); // 8N1
    outb(COM1 + 2, 0xc7); // FIFO on, cleared
    outb(COM1 + 4, 0x03); // DTR, RTS
}

/// Write bytes, waiting (boundedly) for the transmitter. Every port access is a VM exit
/// (tens of microseconds on nested hosts), so the line status is read once per FIFO-full:
/// when THR-empty is set, the 16-byte transmit FIFO is empty and takes 16 bytes.
pub fn write_bytes(bytes: &[u8]) {
    for chunk in bytes.chunks(FIFO_DEPTH) {
        let mut polls = 0;
        while inb(LINE_STATUS) & TRANSMIT_EMPTY == 0 && polls < MAX_POLLS {
            polls += 1;
        }
        for &b in chunk {
            outb(COM1, b);
        }
    }
}
