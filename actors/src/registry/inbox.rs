//! Inbox: what this node has shown. Per sender, a window of chat ids already shown (so that a
//! chat sent again after a lost ack is shown once), and the recent history for `/history`.
//! The windows are bounded per sender and in total: past the total, the window of the sender
//! heard from longest ago is dropped first (its resent chats could show twice; nobody else's).
//! A plain struct owned by the Registry; the Registry writes the same entries to the Store.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::key::PeerKey;
use crate::peer::MessageId;
use crate::store::HistoryEntry;

/// Chats kept in memory for `/history`.
pub(crate) const HISTORY_IN_MEMORY: usize = 1000;

/// Chat ids already shown from one sender, to show a resent chat once. Bounded: the last
/// `capacity` (given with each id) are remembered.
///
/// A sender numbers its chats upwards, so ids usually arrive rising: then the window is one
/// sorted queue (one allocation per sender; the oldest id is the lowest, looked up by binary
/// search). The first new id below the highest (an id skipped and sent later) turns it for
/// good into a B-tree and a queue in arrival order. Not a hash set: a sender's ids grow one
/// by one, so the new id and the oldest one stay in the CPU cache, where a hash set scattered
/// them and paid a cache miss for each (docs/performance.md).
pub(crate) enum SeenIds {
    /// Every id so far came above the ones before it: arrival order is rising order.
    Rising(VecDeque<MessageId>),
    /// Any order.
    Any(Box<AnyOrder>),
}

/// A window whose ids did not all arrive rising: looked up in `ids`, forgotten by `order`.
pub(crate) struct AnyOrder {
    ids: BTreeSet<MessageId>,
    order: VecDeque<MessageId>,
}

impl AnyOrder {
    fn first_time(&mut self, id: MessageId, capacity: usize) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

impl SeenIds {
    pub(crate) fn new() -> Self {
        SeenIds::Rising(VecDeque::new())
    }

    /// True the first time an id is offered (while it is among the last `capacity`).
    pub(crate) fn first_time(&mut self, id: MessageId, capacity: usize) -> bool {
        match self {
            SeenIds::Rising(ids) => {
                if ids.back().is_none_or(|&highest| id > highest) {
                    if ids.len() == ids.capacity() {
                        // Half again, not double: most windows stay a few ids long.
                        ids.reserve_exact((ids.len() / 2).max(4));
                    }
                    ids.push_back(id);
                    if ids.len() > capacity {
                        ids.pop_front();
                    }
                    return true;
                }
                if ids.binary_search(&id).is_ok() {
                    return false;
                }
                let order = std::mem::take(ids);
                let mut any = AnyOrder {
                    ids: order.iter().copied().collect(),
                    order,
                };
                let first = any.first_time(id, capacity);
                *self = SeenIds::Any(Box::new(any));
                first
            }
            SeenIds::Any(any) => any.first_time(id, capacity),
        }
    }

    /// Ids remembered.
    pub(crate) fn len(&self) -> usize {
        match self {
            SeenIds::Rising(ids) => ids.len(),
            SeenIds::Any(any) => any.order.len(),
        }
    }
}

/// One sender's window, and when it was last used (for dropping the stalest first).
struct Seen {
    ids: SeenIds,
    used: u64,
}

/// The seen windows of every sender and the recent history.
pub(crate) struct Inbox {
    /// Every sender's window but `recent`'s.
    seen: HashMap<PeerKey, Seen>,
    /// The window of the sender heard from last, out of `seen` and in this struct, whose
    /// line a batch touches anyway: the next batch from the same sender (every batch, for a
    /// node with one peer) needs no hashing of its key and no cold line of the map. In the
    /// fan-out's 1000-node process every node's Inbox is cold per chat, and each distinct line
    /// touched costs a cache miss (docs/performance.md, fan-out). A batch from another sender
    /// puts it back in `seen` first.
    recent: Option<(PeerKey, Seen)>,
    /// The stalest senders when last looked for, stalest last, each with its use then: taken
    /// from the back while the total is over, skipping any used since (no longer stale).
    /// Looked for again (one pass over `seen`, keeping the staler half) when used up: nothing
    /// per sender is kept for this while the total is not reached.
    stalest: Vec<(u64, PeerKey)>,
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
            recent: None,
            stalest: Vec::new(),
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
        let clock = self.clock;
        self.window_of(sender);
        let Some((_, seen)) = &mut self.recent else {
            return;
        };
        seen.used = clock;
        let before = seen.ids.len();
        for (index, id) in ids.into_iter().enumerate() {
            each(index, seen.ids.first_time(id, per_sender));
        }
        let after = seen.ids.len();
        self.total = self.total + after - before;
        while self.total > self.max_total {
            // The stalest sender's window; never the one just used. It alone holding more
            // than the total cannot happen while per_sender <= max_total; it is kept then.
            let Some(stalest) = self.stalest_other_than(sender) else {
                break;
            };
            if let Some(dropped) = self.seen.remove(&stalest) {
                self.total -= dropped.ids.len();
            }
        }
    }

    /// `sender`'s window, made the `recent` one.
    fn window_of(&mut self, sender: PeerKey) -> &mut Seen {
        if self.recent.as_ref().is_some_and(|(key, _)| *key != sender) {
            if let Some((key, seen)) = self.recent.take() {
                self.seen.insert(key, seen);
            }
        }
        let (_, seen) = self.recent.get_or_insert_with(|| {
            let seen = self.seen.remove(&sender).unwrap_or_else(|| Seen {
                ids: SeenIds::new(),
                used: 0,
            });
            (sender, seen)
        });
        seen
    }

    /// The sender heard from longest ago, other than `sender`: None if there is none.
    fn stalest_other_than(&mut self, sender: PeerKey) -> Option<PeerKey> {
        loop {
            match self.stalest.pop() {
                // A use since it was listed makes it the newest, not the stalest. Uses are
                // never repeated, so one unchanged since is as stale as it was then, and
                // every sender not listed was used after every one listed.
                Some((used, key)) => {
                    if key != sender && self.seen.get(&key).is_some_and(|s| s.used == used) {
                        return Some(key);
                    }
                }
                None => {
                    let mut others: Vec<(u64, PeerKey)> = self
                        .seen
                        .iter()
                        .filter(|(key, _)| **key != sender)
                        .map(|(key, seen)| (seen.used, *key))
                        .collect();
                    if others.is_empty() {
                        return None;
                    }
                    // The staler half: a pass per many drops, not per drop.
                    let keep = others.len().div_ceil(2);
                    if keep < others.len() {
                        others.select_nth_unstable_by_key(keep - 1, |(used, _)| *used);
                        others.truncate(keep);
                    }
                    others.sort_unstable_by_key(|(used, _)| std::cmp::Reverse(*used));
                    self.stalest = others;
                }
            }
        }
    }

    /// Ids remembered in all windows, and the senders they belong to.
    #[cfg(test)]
    pub(crate) fn seen_counts(&self) -> (usize, usize) {
        (
            self.total,
            self.seen.len() + usize::from(self.recent.is_some()),
        )
    }

    /// Adds a chat shown or delivered to the history (the oldest goes when it is full).
    /// `name` and `text` as strings for a new `HistoryEntry::In`: once the history is full,
    /// the oldest entry goes now (`remember` would drop it) and its strings are reused when
    /// their room fits, so a busy node does not allocate and free two strings per chat.
    pub(crate) fn strings_for_entry(&mut self, name: &str, text: &str) -> (String, String) {
        let (old_name, old_text) = self.take_oldest_strings();
        (reuse(old_name, name), reuse(old_text, text))
    }

    /// `text` as the string of a new `HistoryEntry::Out` (a chat of ours delivered), in the
    /// oldest entry's room once the history is full, as `strings_for_entry` does: a busy
    /// sender does not allocate and free a string per ack.
    pub(crate) fn text_for_entry(&mut self, text: &str) -> String {
        reuse(self.take_oldest_strings().1, text)
    }

    /// The oldest entry's name and text once the history is full (the next `remember`
    /// would drop it: it goes now); empty strings, which hold no room, before.
    fn take_oldest_strings(&mut self) -> (String, String) {
        if self.history.len() < HISTORY_IN_MEMORY {
            return (String::new(), String::new());
        }
        match self.history.pop_front() {
            Some(HistoryEntry::In { name, text, .. }) => (name, text),
            Some(HistoryEntry::Out { text, .. }) => (String::new(), text),
            None => (String::new(), String::new()),
        }
    }

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

/// `value` in `old`'s room if it fits and is not far bigger (a long text's room must not
/// go round the history for ever), else in a new string.
fn reuse(mut old: String, value: &str) -> String {
    if old.capacity() >= value.len() && old.capacity() <= value.len().max(64) * 2 {
        old.clear();
        old.push_str(value);
        old
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests;
