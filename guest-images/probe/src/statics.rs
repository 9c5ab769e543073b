//! Statically allocated storage handed out exactly once (there is no allocator).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A static value that can be borrowed mutably once, for the life of the program.
pub struct Once<T> {
    value: UnsafeCell<T>,
    taken: AtomicBool,
}

// SAFETY: the value is only reachable through `take`, which hands out one reference ever.
unsafe impl<T> Sync for Once<T> {}

impl<T> Once<T> {
    /// Wrap an initial value.
    pub const fn new(value: T) -> Self {
        Once {
            value: UnsafeCell::new(value),
            taken: AtomicBool::new(false),
        }
    }

    /// The one mutable reference. A second call is a programming error and panics.
    // The `taken` flag makes this sound: the reference is unique for the program's life.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> &'static mut T {
        assert!(
            !self.taken.swap(true, Ordering::AcqRel),
            "static storage taken twice"
        );
        // SAFETY: the flag guarantees this is the only reference ever created.
        unsafe { &mut *self.value.get() }
    }
}
