//! A cheap hash for maps keyed by what this node picks itself (Session ids it numbers,
//! addresses the user wrote to): the outbox's `by_peer`, the peer table's Sessions and
//! `sending`. An address written to may be a connected peer's, whose port that peer chose:
//! such maps must stay bounded by what the limits bound (Sessions, the outbox's room), so
//! that keys picked to collide cost a bounded probe. Plain data, used by the Registry's
//! structs; talks to no one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hashed by [`LocalKeyHasher`]: only for keys no remote peer chooses.
pub(crate) type LocalMap<K, V> = HashMap<K, V, BuildHasherDefault<LocalKeyHasher>>;

/// A multiply-rotate hash (FxHash's) for keys this node picks itself: a few instructions
/// per word where SipHash takes a couple of hundred per address. Not for keys a remote peer
/// chooses, which could be picked to collide.
#[derive(Default, Clone, Copy)]
pub(crate) struct LocalKeyHasher(u64);

impl LocalKeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for LocalKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // The table takes its bucket from the low bits and a tag from the top ones; the
        // multiply leaves the low bits of the last word weakest, so both get mixed ones.
        self.0.rotate_left(26)
    }
}
