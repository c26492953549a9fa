//! A thread's spare buffer: one emptied buffer of a kind kept per thread, in a thread-local,
//! for the next user on that thread. Plain data at the bottom layer: no actor, no messages;
//! the writer, a Session's reader and the Noise transport each keep their own kind here.
//!
//! Why: a busy node would otherwise allocate and free a buffer per message (every poll of a
//! reader, every batch sealed), while keeping the buffer in each user instead would make a
//! quiet session hold memory for nothing; thousands of them wait at once (issue 17). One
//! buffer per thread serves them all, since its users on a thread never need it at the same
//! time: each lets go of it before it returns.
//!
//! A slot is declared by its user, so that every kind has its own:
//!
//! ```ignore
//! thread_local! {
//!     static SPARE: Spare<BytesMut> = const { Spare::new() };
//! }
//! let buffer = spare::take(&SPARE).unwrap_or_default();
//! spare::keep(&SPARE, buffer, |buffer| buffer.capacity() <= 4096);
//! ```

use std::cell::Cell;
use std::thread::LocalKey;

/// One thread's spare buffer of one kind, if one is kept (the content of a `thread_local!`).
pub(crate) struct Spare<T>(Cell<Option<T>>);

impl<T> Spare<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Spare(Cell::new(None))
    }
}

/// Takes the thread's spare out of `slot`, if one is kept. None too while the thread is
/// being torn down (its thread-locals may be gone already).
pub(crate) fn take<T: 'static>(slot: &'static LocalKey<Spare<T>>) -> Option<T> {
    slot.try_with(|spare| spare.0.take()).ok().flatten()
}

/// Keeps `buffer` in `slot` as the thread's spare, in place of the one kept before (which is
/// let go of), if `fits` says so. `fits` is the caller's size limit, and may ready the buffer
/// for its next user first (empty it, reclaim its room): a buffer grown for one big message
/// is let go of, so the spare a thread keeps stays small.
pub(crate) fn keep<T: 'static>(
    slot: &'static LocalKey<Spare<T>>,
    mut buffer: T,
    fits: impl FnOnce(&mut T) -> bool,
) {
    if fits(&mut buffer) {
        // While the thread is torn down there is nobody to keep it for.
        let _ = slot.try_with(|spare| spare.0.set(Some(buffer)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static SLOT: Spare<Vec<u8>> = const { Spare::new() };
    }

    fn at_most(max: usize) -> impl FnOnce(&mut Vec<u8>) -> bool {
        move |buffer| {
            buffer.clear();
            buffer.capacity() <= max
        }
    }

    #[test]
    fn take_after_keep_returns_the_buffer_kept_emptied_and_only_once() {
        assert_eq!(take(&SLOT), None);
        let mut buffer = Vec::with_capacity(100);
        buffer.extend_from_slice(b"hello");
        let allocation = buffer.as_ptr();
        keep(&SLOT, buffer, at_most(1024));
        let taken = take(&SLOT).expect("the buffer kept");
        assert_eq!(taken.as_ptr(), allocation);
        assert!(taken.is_empty());
        assert!(taken.capacity() >= 100);
        assert_eq!(take(&SLOT), None);
    }

    #[test]
    fn a_buffer_the_predicate_refuses_is_not_kept_and_the_one_kept_before_stays() {
        keep(&SLOT, Vec::with_capacity(10), at_most(1024));
        keep(&SLOT, Vec::with_capacity(4096), at_most(1024));
        assert!(take(&SLOT).is_some_and(|kept| kept.capacity() < 4096));
        keep(&SLOT, Vec::with_capacity(4096), at_most(1024));
        assert_eq!(take(&SLOT), None);
    }

    #[test]
    fn a_buffer_kept_replaces_the_one_kept_before() {
        keep(&SLOT, Vec::with_capacity(10), |_| true);
        let second = Vec::with_capacity(20);
        let allocation = second.as_ptr();
        keep(&SLOT, second, |_| true);
        assert!(take(&SLOT).is_some_and(|kept| kept.as_ptr() == allocation));
        assert_eq!(take(&SLOT), None);
    }

    #[test]
    fn each_thread_has_a_slot_of_its_own() {
        keep(&SLOT, Vec::with_capacity(64), |_| true);
        let other = std::thread::spawn(|| {
            let seen = take(&SLOT);
            keep(&SLOT, Vec::with_capacity(32), |_| true);
            (seen, take(&SLOT).map(|kept| kept.capacity()))
        })
        .join()
        .expect("the other thread");
        assert_eq!(other.0, None);
        assert!(other.1.is_some_and(|room| room >= 32));
        // This thread's spare is still its own.
        assert!(take(&SLOT).is_some_and(|kept| kept.capacity() >= 64));
    }
}
