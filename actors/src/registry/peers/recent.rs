//! The peer heard from last, kept beside the table (`Recent`): its `last_seen` and a copy of
//! its name, so that its next batch of chats reads neither the `peers` tree nor its record.
//! Part of the plain `PeerTable`; every other change to a record `settle`s it first.

use std::time::SystemTime;

use super::{LiveSession, PeerRecord, PeerTable};
use crate::helpers::ms_since_epoch;
use crate::key::PeerKey;
use crate::limits::MAX_NAME_BYTES;
use crate::peer::SessionId;

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

    /// The peer of Session `id` (of `key`) acked at `now`: noted in the Session's entry, a
    /// lookup by id, not in the `peers` tree (a fan-out's sender hears acks from a thousand
    /// peers in turn, and each search of the tree compared about a dozen 32-byte keys:
    /// docs/performance.md, fan-out eighth round). A Session not in the table, or of another
    /// key, falls back to `touch`.
    pub(crate) fn touch_session(&mut self, id: SessionId, key: &PeerKey, now: SystemTime) {
        match self.sessions.get_mut(&id) {
            Some(live) if live.key == *key => live.acked_at_ms = ms_since_epoch(now).max(1),
            _ => self.touch(key, now),
        }
    }

    /// When `key` (with this record) was last heard from.
    pub(super) fn last_seen(&self, key: &PeerKey, record: &PeerRecord) -> Option<SystemTime> {
        let acked = record
            .session
            .and_then(|id| self.sessions.get(&id))
            .and_then(LiveSession::acked_at);
        let recorded = match &self.recent {
            Some(recent) if recent.key == *key => Some(recent.seen),
            _ => record.last_seen,
        };
        recorded.max(acked)
    }

    /// `key` was heard from at `at` (a Session's last ack, as it leaves the table), unless
    /// it was heard from later.
    pub(super) fn note_seen(&mut self, key: &PeerKey, at: Option<SystemTime>) {
        match &mut self.recent {
            Some(recent) if recent.key == *key => {
                recent.seen = recent.seen.max(at.unwrap_or(recent.seen))
            }
            _ => {
                if let Some(record) = self.peers.get_mut(key) {
                    record.seen_at(at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
