//! The C memory functions `core` calls. Written with volatile accesses so that LLVM cannot
//! recognise the loops and turn them back into calls to themselves.

use core::ptr::{read_volatile, write_volatile};

const WORD: usize = core::mem::size_of::<u64>();

/// Copy `n` bytes from `src` to `dest` (regions must not overlap).
///
/// # Safety
/// The C contract: both regions valid for `n` bytes, not overlapping.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    if (dest as usize | src as usize).is_multiple_of(WORD) {
        while i + WORD <= n {
            // SAFETY: in bounds (i + 8 <= n) and 8-byte aligned (checked above).
            unsafe {
                write_volatile(
                    dest.add(i).cast::<u64>(),
                    read_volatile(src.add(i).cast::<u64>()),
                )
            };
            i += WORD;
        }
    }
    while i < n {
        // SAFETY: i < n, within both regions by the caller's contract.
        unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
        i += 1;
    }
    dest
}

/// Copy `n` bytes from `src` to `dest`; the regions may overlap.
///
/// # Safety
/// The C contract: both regions valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize) <= (src as usize) || (dest as usize) >= (src as usize).wrapping_add(n) {
        // Forward copy is safe: dest is below src, or the regions do not overlap.
        // SAFETY: forwarded contract; a forward byte/word copy reads each byte before
        // any write could reach it when dest <= src.
        return unsafe { memcpy(dest, src, n) };
    }
    let mut i = n;
    while i > 0 {
        i -= 1;
        // SAFETY: i < n, within both regions by the caller's contract.
        unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
    }
    dest
}

/// Fill `n` bytes at `dest` with the byte `c`.
///
/// # Safety
/// The C contract: the region is valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    let byte = c as u8;
    let mut i = 0;
    if (dest as usize).is_multiple_of(WORD) {
        let word = u64::from_ne_bytes([byte; WORD]);
        while i + WORD <= n {
            // SAFETY: in bounds (i + 8 <= n) and aligned (checked above).
            unsafe { write_volatile(dest.add(i).cast::<u64>(), word) };
            i += WORD;
        }
    }
    while i < n {
        // SAFETY: i < n, within the region by the caller's contract.
        unsafe { write_volatile(dest.add(i), byte) };
        i += 1;
    }
    dest
}

/// Compare `n` bytes; returns <0, 0, >0 like C's memcmp.
///
/// # Safety
/// The C contract: both regions valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n, within both regions by the caller's contract.
        let (x, y) = unsafe { (read_volatile(a.add(i)), read_volatile(b.add(i))) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// `bcmp` is memcmp where only zero/non-zero matters; LLVM emits calls to it.
///
/// # Safety
/// The C contract: both regions valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}
