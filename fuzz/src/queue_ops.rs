//! The operations the queue targets run against a queue backend over fuzzed guest memory.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm::devices::virtio::queue::{Chain, Direction, QueueConfig, MAX_QUEUE_SIZE};

use crate::Input;

/// A queue configuration as a driver might program it: a size (usually a power of two) and
/// three ring addresses.
pub fn queue_config(input: &mut Input<'_>) -> QueueConfig {
    let b = input.u8();
    let size = if b & 0x80 != 0 {
        input.u16()
    } else {
        1u16 << (b % 10)
    };
    QueueConfig {
        size,
        ready: true,
        desc_table: input.addr(),
        avail_ring: input.addr(),
        used_ring: input.addr(),
    }
}

/// A step of the device, or of a driver racing it.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Pop a chain the device writes (rx).
    PopRx,
    /// Pop a chain the device reads (tx).
    PopTx,
    /// Return a used element for `head` (the last popped one, or any index).
    AddUsed {
        /// Use the last popped head rather than `head`.
        last: bool,
        /// Descriptor index.
        head: u16,
        /// Bytes written.
        len: u32,
    },
    /// Give back the last popped chain.
    Unpop,
    /// Backend specific: available count / enable notification.
    Check,
    /// Suppress notifications (crate backend).
    Disable,
    /// Interrupt decision (crate backend).
    NeedsNotification,
    /// The driver writes a 16-bit value into guest memory (index, flags, ring entry).
    Poke {
        /// Where.
        addr: u64,
        /// What.
        value: u16,
    },
}

impl Op {
    /// Decode one operation.
    pub fn decode(input: &mut Input<'_>) -> Op {
        match input.u8() % 8 {
            0 => Op::PopRx,
            1 => Op::PopTx,
            2 => Op::AddUsed {
                last: input.u8() & 1 == 0,
                head: input.u16(),
                len: input.u32(),
            },
            3 => Op::Unpop,
            4 => Op::Check,
            5 => Op::Disable,
            6 => Op::NeedsNotification,
            _ => Op::Poke {
                addr: input.addr(),
                value: input.u16(),
            },
        }
    }
}

/// The ops (up to 64, from a length byte) and the guest memory contents (the rest).
pub fn ops_and_memory(input: &mut Input<'_>) -> Vec<Op> {
    let n = input.u8() % 65;
    let mut ops = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        ops.push(Op::decode(input));
    }
    ops
}

/// Direction of a pop op.
pub fn direction(op: Op) -> Direction {
    match op {
        Op::PopRx => Direction::DeviceWrites,
        _ => Direction::DeviceReads,
    }
}

/// What every accepted chain must satisfy, whichever backend produced it.
pub fn check_chain(mem: &GuestMemoryMmap<()>, chain: &Chain, size: u16, dir: Direction) {
    assert!(size <= MAX_QUEUE_SIZE);
    assert!(chain.head < size, "head {} >= size {size}", chain.head);
    assert!(!chain.buffers.is_empty());
    assert!(chain.buffers.len() <= usize::from(size));
    for b in &chain.buffers {
        assert!(b.len > 0);
        assert!(
            mem.check_range(b.addr, b.len as usize),
            "{b:?} outside memory"
        );
    }
    let _ = chain.total_len();
    let _ = dir;
}

/// Apply a driver's poke (ignored outside memory).
pub fn poke(mem: &GuestMemoryMmap<()>, addr: u64, value: u16) {
    let _ = mem.write_slice(&value.to_le_bytes(), GuestAddress(addr));
}
