//! The peer heard from last, kept beside the table (`Recent`): its `last_seen` and a copy of
//! its name, so that its next batch of chats reads neither the `peers` tree nor its record.
//! Part of the plain `PeerTable`; every other change to a record `settle`s it first.

use std::time::SystemTime;

use super::{PeerRecord, PeerTable};
use crate::key::PeerKey;
use crate::limits::MAX_NAME_BYTES;

/// The peer chats came from last: when (not yet written to its record) and its name. A node
/// hears from the same peer again and again; the next batch from it then reads neither the
/// `peers` tree nor the record's name, cold lines in the fan-out's 1000-node process, where
/// each distinct line touched per chat is a cache miss (docs/performance.md, fan-out).
/// Written back (`settle`) before anything else changes a record or another peer is heard.
/// The name is held here, not in a `String`: its buffer would be one more cold line (and
/// page) per chat.
pub(super) struct Recent {
    pub(super) key: PeerKey,
    pub(super) seen: SystemTime,
    name_len: u8,
    name: [u8; MAX_NAME_BYTES],
}

impl Recent {
    /// None if the name is too long to hold (no `hello` or `peers` entry carries one).
    pub(super) fn new(key: PeerKey, seen: SystemTime, name: &str) -> Option<Recent> {
        let name_len = u8::try_from(name.len()).ok()?;
        let mut held = [0; MAX_NAME_BYTES];
        held.get_mut(..name.len())?.copy_from_slice(name.as_bytes());
        Some(Recent {
            key,
            seen,
            name_len,
            name: held,
        })
    }

    pub(super) fn name(&self) -> &str {
        let held = self
            .name
            .get(..usize::from(self.name_len))
            .unwrap_or_default();
        std::str::from_utf8(held).unwrap_or_default()
    }
}

impl<S> PeerTable<S> {
    /// Something came from `key` at `now`.
    pub(crate) fn touch(&mut self, key: &PeerKey, now: SystemTime) {
        match &mut self.recent {
            Some(recent) if recent.key == *key => recent.seen = now,
            // Another peer stays the recent one: acks are not worth a name's copy.
            _ => {
                if let Some(record) = self.peers.get_mut(key) {
                    record.last_seen = Some(now);
                }
            }
        }
    }

    /// `touch` (at `at`) and `name_of`: every batch of chats received does both. The peer
    /// becomes the recent one, so that its next batch does neither in the tree.
    pub(crate) fn touch_and_name(&mut self, key: &PeerKey, at: SystemTime) -> String {
        if let Some(recent) = self.recent.as_mut().filter(|recent| recent.key == *key) {
            recent.seen = at;
            return recent.name().to_string();
        }
        self.settle();
        let Some(record) = self.peers.get_mut(key) else {
            return String::new();
        };
        let name = record.name.as_deref().unwrap_or_default();
        match Recent::new(*key, at, name) {
            Some(recent) => self.recent = Some(recent),
            None => record.last_seen = Some(at),
        }
        name.to_string()
    }

    /// Writes the recent peer's `last_seen` to its record; no peer is the recent one after.
    pub(super) fn settle(&mut self) {
        if let Some(recent) = self.recent.take() {
            if let Some(record) = self.peers.get_mut(&recent.key) {
                record.last_seen = Some(recent.seen);
            }
        }
    }

    /// When `key` (with this record) was last heard from.
    pub(super) fn last_seen(&self, key: &PeerKey, record: &PeerRecord) -> Option<SystemTime> {
        match &self.recent {
            Some(recent) if recent.key == *key => Some(recent.seen),
            _ => record.last_seen,
        }
    }
}
