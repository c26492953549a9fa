//! Inbox: what this node has shown. Per sender, a window of chat ids already shown (so that a
//! chat sent again after a lost ack is shown once), and the recent history for `/history`.
//! The windows are bounded per sender and in total: past the total, the window of the sender
//! heard from longest ago is dropped first (its resent chats could show twice; nobody else's).
//! A plain struct owned by the Registry; the Registry writes the same entries to the Store.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::key::PeerKey;
use crate::peer::MessageId;
use crate::store::HistoryEntry;

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

    /// Ids remembered.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

/// One sender's window, and when it was last used (for dropping the stalest first).
struct Seen {
    window: SeenWindow,
    used: u64,
}

/// The seen windows of every sender and the recent history.
pub(crate) struct Inbox {
    seen: HashMap<PeerKey, Seen>,
    /// Senders by their window's last use, oldest first: who goes when the total is over.
    by_use: BTreeMap<u64, PeerKey>,
    /// Counts uses; each use of a window gets the next value.
    clock: u64,
    /// Ids in all windows together.
    total: usize,
    per_sender: usize,
    max_total: usize,
    history: VecDeque<HistoryEntry>,
}

impl Inbox {
    /// Windows of `per_sender` ids, at most `max_total` ids in all.
    pub(crate) fn new(per_sender: usize, max_total: usize) -> Self {
        Inbox {
            seen: HashMap::new(),
            by_use: BTreeMap::new(),
            clock: 0,
            total: 0,
            per_sender: per_sender.max(1),
            max_total: max_total.max(1),
            history: VecDeque::new(),
        }
    }

    /// True the first time chat `id` of `sender` is offered: show it. False: a repeat.
    pub(crate) fn first_time(&mut self, sender: PeerKey, id: MessageId) -> bool {
        let mut first = false;
        self.first_times(sender, [id], |_, new| first = new);
        first
    }

    /// [`Inbox::first_time`] for each of `ids` of one sender, in order: `each(index, first)`.
    /// The sender is looked up and its use recorded once for them all, not once per chat
    /// (a batch of chats from one Session is always from one sender).
    pub(crate) fn first_times(
        &mut self,
        sender: PeerKey,
        ids: impl IntoIterator<Item = MessageId>,
        mut each: impl FnMut(usize, bool),
    ) {
        self.clock += 1;
        let per_sender = self.per_sender;
        let seen = self.seen.entry(sender).or_insert_with(|| Seen {
            window: SeenWindow::new(per_sender),
            used: 0,
        });
        self.by_use.remove(&seen.used);
        seen.used = self.clock;
        self.by_use.insert(self.clock, sender);
        let before = seen.window.len();
        for (index, id) in ids.into_iter().enumerate() {
            each(index, seen.window.first_time(id));
        }
        self.total = self.total + seen.window.len() - before;
        while self.total > self.max_total {
            // The stalest sender's window; never the one just used while another is left.
            let Some((&used, &stalest)) = self.by_use.iter().next() else {
                break;
            };
            if stalest == sender {
                // It alone holds more than the total: trim it instead (cannot happen while
                // per_sender <= max_total, kept for a node set up otherwise).
                break;
            }
            self.by_use.remove(&used);
            if let Some(dropped) = self.seen.remove(&stalest) {
                self.total -= dropped.window.len();
            }
        }
    }

    /// Ids remembered in all windows, and the senders they belong to.
    #[cfg(test)]
    pub(crate) fn seen_counts(&self) -> (usize, usize) {
        (self.total, self.seen.len())
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
        let mut inbox = Inbox::new(65_536, 1_000_000);
        let (a, b) = (PeerKey::from_bytes([1; 32]), PeerKey::from_bytes([2; 32]));
        assert!(inbox.first_time(a, 100));
        assert!(inbox.first_time(b, 100));
        assert!(!inbox.first_time(a, 100));
    }

    /// Issue 13: each new sender identity added a window of its own, without any total.
    #[test]
    fn many_senders_never_hold_more_ids_than_the_total() {
        let (per_sender, total) = (100, 1000);
        let mut inbox = Inbox::new(per_sender, total);
        for sender in 0..500u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&sender.to_be_bytes());
            let key = PeerKey::from_bytes(key);
            for id in 0..(per_sender as u64 * 2) {
                inbox.first_time(key, id);
            }
            let (ids, senders) = inbox.seen_counts();
            assert!(ids <= total, "{ids} ids after sender {sender}");
            assert!(senders <= total / per_sender + 1, "{senders} windows kept");
        }
        assert_eq!(inbox.seen_counts().0, total);
    }

    /// A batch (one `IncomingChats`) is judged as its chats one by one would be: repeats
    /// within the batch and from before it, and the total kept over all senders.
    #[test]
    fn a_batch_is_judged_like_its_chats_one_by_one() {
        let keys: Vec<PeerKey> = (1..=3u8).map(|k| PeerKey::from_bytes([k; 32])).collect();
        let batches: Vec<(usize, Vec<MessageId>)> = vec![
            (0, vec![1, 2, 3, 2]),
            (1, vec![1, 1, 5]),
            (0, vec![3, 4, 5, 6, 7, 8]),
            (2, (0..12).collect()),
            (1, vec![5, 6]),
            (0, vec![1, 9]),
        ];
        let (mut batched, mut single) = (Inbox::new(8, 20), Inbox::new(8, 20));
        for (sender, ids) in batches {
            let mut got = vec![false; ids.len()];
            batched.first_times(keys[sender], ids.iter().copied(), |at, new| got[at] = new);
            let want: Vec<bool> = ids
                .iter()
                .map(|id| single.first_time(keys[sender], *id))
                .collect();
            assert_eq!(got, want, "sender {sender}, ids {ids:?}");
            assert_eq!(batched.seen_counts(), single.seen_counts());
        }
    }

    #[test]
    fn the_sender_heard_from_longest_ago_is_forgotten_first() {
        let mut inbox = Inbox::new(10, 20);
        let (a, b, c) = (
            PeerKey::from_bytes([1; 32]),
            PeerKey::from_bytes([2; 32]),
            PeerKey::from_bytes([3; 32]),
        );
        for id in 0..10 {
            inbox.first_time(a, id);
            inbox.first_time(b, id);
        }
        // a is used again, so b is now the stalest.
        assert!(!inbox.first_time(a, 9));
        for id in 0..10 {
            inbox.first_time(c, id);
        }
        assert!(!inbox.first_time(a, 0), "a's window is kept");
        assert!(!inbox.first_time(c, 0), "c's window is kept");
        assert!(inbox.first_time(b, 0), "b's window was dropped");
    }

    #[test]
    fn recovered_history_counts_as_shown_and_is_listed() {
        let mut inbox = Inbox::new(65_536, 1_000_000);
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
        let mut inbox = Inbox::new(65_536, 1_000_000);
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
