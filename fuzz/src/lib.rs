//! Helpers shared by the fuzz targets: a reader that turns the fuzzer's bytes into
//! operations, and guest memory for the queue and transport targets.

pub mod queue_ops;

use std::os::fd::{AsRawFd, BorrowedFd};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm::devices::virtio::net::backend::{socketpair_backend, FdBackend};

/// Zeros to clear a reused guest memory with.
static ZEROS: [u8; GUEST_MEM as usize] = [0; GUEST_MEM as usize];

/// Size of the fuzzed guest memory: small, so that random addresses often land inside it.
pub const GUEST_MEM: u64 = 0x1_0000;

/// Consumes the fuzzer's input front to back; reads past the end yield zeros.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Read `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    /// A guest address: mostly inside [`GUEST_MEM`] (aligned as the byte says), sometimes
    /// anywhere.
    pub fn addr(&mut self) -> u64 {
        match self.u8() {
            0 => self.u64(),
            1 => GUEST_MEM - u64::from(self.u8()),
            _ => u64::from(self.u16()),
        }
    }
}

/// Fresh guest memory of [`GUEST_MEM`] bytes, filled with `contents` (the rest zero).
pub fn guest_memory(contents: &[u8]) -> GuestMemoryMmap<()> {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), GUEST_MEM as usize)])
        .expect("mmap guest memory");
    let n = contents.len().min(GUEST_MEM as usize);
    mem.write_slice(&contents[..n], GuestAddress(0))
        .expect("write guest memory");
    mem
}

/// Guest memory with the same bytes as [`guest_memory`] returns (`contents`, the rest zero),
/// but one mapping reused by every execution on this thread, rewritten in full each time:
/// a fresh 64 KiB mapping costs an mmap, a page fault per page and an munmap per input.
///
/// The caller must have dropped every user of the previous execution's memory first (the
/// virtio-net device joins its device thread when it is reset or dropped).
pub fn reused_guest_memory(contents: &[u8]) -> GuestMemoryMmap<()> {
    thread_local! {
        static MEM: GuestMemoryMmap<()> =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), GUEST_MEM as usize)])
                .expect("mmap guest memory");
    }
    let mem = MEM.with(GuestMemoryMmap::clone);
    let n = contents.len().min(GUEST_MEM as usize);
    mem.write_slice(&contents[..n], GuestAddress(0))
        .expect("write guest memory");
    mem.write_slice(&ZEROS[n..], GuestAddress(n as u64))
        .expect("clear guest memory");
    mem
}

/// The transport targets' backend: one end of a seqpacket pair whose peer is closed (every
/// read returns 0 bytes, every write fails with EPIPE, epoll reports HUP), made once. Each
/// execution's backend is a duplicate of it; nothing a device does to its fd (reads,
/// writes, non-blocking mode, epoll registration in its own epoll set) persists into the
/// next execution, so this is the same backend as a fresh pair with its peer dropped,
/// without a socket pair's creation and teardown per input.
pub fn closed_backend() -> Option<FdBackend> {
    thread_local! {
        static SOCKET: Option<FdBackend> = socketpair_backend(1 << 16).ok().map(|(b, _peer)| b);
    }
    let fd = SOCKET.with(|s| {
        // SAFETY: the fd stays open (owned by SOCKET) for this call, which duplicates it.
        s.as_ref()
            .map(|b| unsafe { BorrowedFd::borrow_raw(b.as_raw_fd()) }.try_clone_to_owned())
    })?;
    FdBackend::new(fd.ok()?).ok()
}
