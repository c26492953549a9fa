//! Inbox: what this node has shown. Per sender, a window of chat ids already shown (so that a
//! chat sent again after a lost ack is shown once), and the recent history for `/history`.
//! A plain struct owned by the Registry; the Registry writes the same entries to the Store.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::key::PeerKey;
use crate::peer::MessageId;
use crate::store::HistoryEntry;

/// Chat ids remembered per sender.
pub(crate) const SEEN_PER_SENDER: usize = 65536;

/// Chats kept in memory for `/history`.
pub(crate) const HISTORY_IN_MEMORY: usize = 1000;

/// Chat ids already shown from one sender, to show a resent chat once. Bounded: the last
/// `capacity` are remembered.
///
/// A B-tree, not a hash set: a sender's ids grow one by one, so the new id and the oldest
/// one are at the two ends of the tree, which stay in the CPU cache. A hash set scatters
/// consecutive ids over a megabyte and paid a cache miss for each (docs/performance.md).
pub(crate) struct SeenWindow {
    ids: BTreeSet<MessageId>,
    order: VecDeque<MessageId>,
    capacity: usize,
}

impl SeenWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        SeenWindow {
            ids: BTreeSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// True the first time an id is offered (while it is in the window).
    pub(crate) fn first_time(&mut self, id: MessageId) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// The seen windows of every sender and the recent history.
pub(crate) struct Inbox {
    seen: HashMap<PeerKey, SeenWindow>,
    history: VecDeque<HistoryEntry>,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Inbox {
            seen: HashMap::new(),
            history: VecDeque::new(),
        }
    }

    /// True the first time chat `id` of `sender` is offered: show it. False: a repeat.
    pub(crate) fn first_time(&mut self, sender: PeerKey, id: MessageId) -> bool {
        self.seen
            .entry(sender)
            .or_insert_with(|| SeenWindow::new(SEEN_PER_SENDER))
            .first_time(id)
    }

    /// Adds a chat shown or delivered to the history (the oldest goes when it is full).
    pub(crate) fn remember(&mut self, entry: HistoryEntry) {
        if self.history.len() == HISTORY_IN_MEMORY {
            self.history.pop_front();
        }
        self.history.push_back(entry);
    }

    /// History read back from the data directory: remembered, and its chats count as shown.
    pub(crate) fn recover(&mut self, history: Vec<HistoryEntry>) {
        for entry in history {
            if let HistoryEntry::In {
                key: Some(key), id, ..
            } = &entry
            {
                self.first_time(*key, *id);
            }
            self.remember(entry);
        }
    }

    /// The last `limit` entries, oldest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<HistoryEntry> {
        let skip = self.history.len().saturating_sub(limit);
        self.history.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::PeerAddr;

    fn shown(id: MessageId) -> HistoryEntry {
        HistoryEntry::In {
            at_ms: 0,
            from: "127.0.0.1:9000".parse::<PeerAddr>().unwrap(),
            name: "bob".into(),
            key: Some(PeerKey::from_bytes([7; 32])),
            id,
            text: format!("chat {id}"),
        }
    }

    #[test]
    fn a_chat_is_new_once() {
        let mut window = SeenWindow::new(4);
        assert!(window.first_time(1));
        assert!(!window.first_time(1));
        assert!(window.first_time(2));
        assert!(!window.first_time(1));
    }

    #[test]
    fn the_window_forgets_the_oldest_id_first() {
        let mut window = SeenWindow::new(3);
        for id in 1..=3 {
            assert!(window.first_time(id));
        }
        assert!(window.first_time(4)); // 1 leaves the window
        assert!(!window.first_time(2));
        assert!(!window.first_time(4));
        assert!(window.first_time(1), "1 fell out of the window");
    }

    #[test]
    fn repeats_do_not_push_ids_out_of_the_window() {
        let mut window = SeenWindow::new(2);
        assert!(window.first_time(1));
        assert!(window.first_time(2));
        for _ in 0..10 {
            assert!(!window.first_time(2));
        }
        assert!(!window.first_time(1));
    }

    #[test]
    fn senders_have_windows_of_their_own() {
        let mut inbox = Inbox::new();
        let (a, b) = (PeerKey::from_bytes([1; 32]), PeerKey::from_bytes([2; 32]));
        assert!(inbox.first_time(a, 100));
        assert!(inbox.first_time(b, 100));
        assert!(!inbox.first_time(a, 100));
    }

    #[test]
    fn recovered_history_counts_as_shown_and_is_listed() {
        let mut inbox = Inbox::new();
        inbox.recover(vec![shown(5), shown(6)]);
        let seven = PeerKey::from_bytes([7; 32]);
        assert!(!inbox.first_time(seven, 5));
        assert!(inbox.first_time(seven, 8));
        // A line from before keys (no key) marks nothing.
        let mut old = shown(9);
        if let HistoryEntry::In { key, .. } = &mut old {
            *key = None;
        }
        inbox.recover(vec![old]);
        assert!(inbox.first_time(seven, 9));
        assert_eq!(inbox.recent(10).len(), 3);
    }

    #[test]
    fn history_keeps_the_latest_entries_oldest_first() {
        let mut inbox = Inbox::new();
        for id in 0..(HISTORY_IN_MEMORY as u64 + 5) {
            inbox.remember(shown(id));
        }
        let recent = inbox.recent(3);
        let ids: Vec<MessageId> = recent
            .iter()
            .map(|entry| match entry {
                HistoryEntry::In { id, .. } | HistoryEntry::Out { id, .. } => *id,
            })
            .collect();
        let last = HISTORY_IN_MEMORY as u64 + 4;
        assert_eq!(ids, vec![last - 2, last - 1, last]);
        assert_eq!(inbox.recent(usize::MAX).len(), HISTORY_IN_MEMORY);
    }
}
