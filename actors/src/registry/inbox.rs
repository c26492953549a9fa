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

/// Newest ids of the `recent` sender's window while they came rising, not yet in its
/// queue: written there [`NEWEST_HELD`] at a time (or before the window is used any other
/// way), so that most chats do not touch the queue's buffer, a cold line and page per chat in
/// the fan-out's 1000-node process (docs/performance.md, fan-out).
#[derive(Default)]
struct Newest {
    ids: [MessageId; NEWEST_HELD],
    len: usize,
}

/// Ids held in [`Newest`].
const NEWEST_HELD: usize = 8;

impl Newest {
    fn held(&self) -> &[MessageId] {
        self.ids.get(..self.len).unwrap_or_default()
    }

    /// Moves the held ids to the back of `window`'s queue (they came above all of it).
    fn write_to(&mut self, window: &mut SeenIds) {
        if self.len == 0 {
            return;
        }
        if let SeenIds::Rising(ids) = window {
            let spare = ids.capacity() - ids.len();
            if spare < self.len {
                ids.reserve_exact((ids.len() / 2).max(4).max(self.len));
            }
            ids.extend(self.held());
        }
        self.len = 0;
    }

    /// [`SeenIds::first_time`] of the window these are the newest ids of.
    fn first_time(&mut self, window: &mut SeenIds, id: MessageId, capacity: usize) -> bool {
        if let SeenIds::Rising(ids) = window {
            let highest = self.held().last().or(ids.back());
            if highest.is_none_or(|&highest| id > highest) && capacity >= NEWEST_HELD {
                if self.len == NEWEST_HELD {
                    self.write_to(window);
                }
                if let SeenIds::Rising(ids) = window {
                    if let Some(slot) = self.ids.get_mut(self.len) {
                        *slot = id;
                        self.len += 1;
                        if ids.len() + self.len > capacity {
                            ids.pop_front();
                        }
                        return true;
                    }
                }
            }
        }
        self.write_to(window);
        window.first_time(id, capacity)
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
    /// The newest ids of `recent`'s window.
    newest: Newest,
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
            newest: Newest::default(),
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
        let (newest, Some((_, seen))) = (&mut self.newest, &mut self.recent) else {
            return;
        };
        seen.used = clock;
        let before = seen.ids.len() + newest.len;
        for (index, id) in ids.into_iter().enumerate() {
            each(index, newest.first_time(&mut seen.ids, id, per_sender));
        }
        let after = seen.ids.len() + newest.len;
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
            if let Some((key, mut seen)) = self.recent.take() {
                self.newest.write_to(&mut seen.ids);
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
        let (old_name, old_text) = if self.history.len() >= HISTORY_IN_MEMORY {
            match self.history.pop_front() {
                Some(HistoryEntry::In { name, text, .. }) => (name, text),
                Some(HistoryEntry::Out { text, .. }) => (String::new(), text),
                None => (String::new(), String::new()),
            }
        } else {
            (String::new(), String::new())
        };
        (reuse(old_name, name), reuse(old_text, text))
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
            classic: false,
        }
    }

    /// A window with its capacity, as the Inbox keeps one per sender.
    struct SeenWindow {
        ids: SeenIds,
        capacity: usize,
    }

    impl SeenWindow {
        fn new(capacity: usize) -> Self {
            SeenWindow {
                ids: SeenIds::new(),
                capacity,
            }
        }

        fn first_time(&mut self, id: MessageId) -> bool {
            self.ids.first_time(id, self.capacity)
        }
    }

    /// A small pseudo-random sequence (xorshift), the same on every run.
    fn numbers(seed: u64) -> impl Iterator<Item = u64> {
        let mut state = seed.max(1);
        std::iter::repeat_with(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })
    }

    /// Rising ids with gaps, repeats, and now and then an id from before (new or not): the
    /// window answers as the plain B-tree and arrival queue (`AnyOrder`) would.
    #[test]
    fn a_window_answers_like_a_set_with_an_arrival_queue_in_any_order() {
        for (seed, capacity) in [(1, 1), (2, 3), (3, 8), (4, 64), (5, 5)] {
            let mut window = SeenIds::new();
            let mut model = AnyOrder {
                ids: BTreeSet::new(),
                order: VecDeque::new(),
            };
            let mut highest = 1000u64;
            for (step, roll) in numbers(seed).take(5000).enumerate() {
                let id = match roll % 10 {
                    0..=5 => {
                        highest += 1 + roll % 3;
                        highest
                    }
                    6 | 7 => highest.saturating_sub(roll % 4),
                    8 => highest.saturating_sub(roll % 40),
                    _ => highest + 2,
                };
                assert_eq!(
                    window.first_time(id, capacity),
                    model.first_time(id, capacity),
                    "seed {seed}, capacity {capacity}, step {step}, id {id}"
                );
                assert_eq!(window.len(), model.order.len());
            }
        }
    }

    #[test]
    fn rising_ids_keep_one_queue_and_an_id_from_before_turns_it_into_a_tree() {
        let mut window = SeenWindow::new(3);
        for id in [5, 7, 9, 12] {
            assert!(window.first_time(id));
        }
        assert!(!window.first_time(9));
        assert!(
            matches!(window.ids, SeenIds::Rising(_)),
            "repeats keep it rising"
        );
        assert!(window.first_time(5), "5 fell out of the window");
        assert!(matches!(window.ids, SeenIds::Any(_)));
        assert!(!window.first_time(12));
        assert!(window.first_time(7), "7 left as 5 came back");
        assert_eq!(window.ids.len(), 3);
    }

    /// The drops past the total, over many senders used in a shuffled order, are those of a
    /// plain list that drops the sender with the oldest use (what `by_use` was).
    #[test]
    fn a_sender_set_aside_for_another_keeps_its_window() {
        let mut inbox = Inbox::new(8, 100);
        let (alice, bob) = (PeerKey::from_bytes([1; 32]), PeerKey::from_bytes([2; 32]));
        assert!(inbox.first_time(alice, 1));
        assert!(inbox.first_time(bob, 1), "another sender's id 1 is its own");
        assert!(
            !inbox.first_time(alice, 1),
            "alice's window came back from the map"
        );
        assert!(!inbox.first_time(bob, 1));
        assert!(inbox.first_time(alice, 2));
        assert_eq!(inbox.seen_counts(), (3, 2));
    }

    #[test]
    fn the_total_drops_senders_as_a_list_by_last_use_would() {
        against_the_model(4, 30, 23, 1);
    }

    #[test]
    fn runs_from_one_sender_answer_as_the_window_would() {
        // Windows wider than the newest ids held beside the queue, senders in runs: the
        // held ids are written to the queue when full, on a repeat, and on a change of sender.
        against_the_model(NEWEST_HELD * 2, NEWEST_HELD * 5, 7, 12);
        against_the_model(NEWEST_HELD, 1000, 3, 30);
    }

    /// Offers 20,000 ids, a fifth of them from before, from `senders` senders in runs of up to
    /// `run` ids, to an Inbox and to a model (a window per sender, dropped by last use).
    fn against_the_model(per_sender: usize, total: usize, senders: u64, run: u64) {
        let mut inbox = Inbox::new(per_sender, total);
        // The model: per sender its window (a model window) and its last use.
        let mut model: Vec<(PeerKey, SeenWindow, u64)> = Vec::new();
        let mut model_total = 0;
        let mut next_id = 0u64;
        let mut sender = PeerKey::from_bytes([0; 32]);
        for (step, roll) in numbers(9).take(20_000).enumerate() {
            if (roll >> 8) % run == 0 {
                sender = PeerKey::from_bytes([(roll % senders) as u8; 32]);
            }
            next_id += 1;
            let id = if roll % 5 == 0 { next_id / 2 } else { next_id };
            let at = match model.iter().position(|(key, ..)| *key == sender) {
                Some(at) => at,
                None => {
                    model.push((sender, SeenWindow::new(per_sender), 0));
                    model.len() - 1
                }
            };
            let before = model[at].1.ids.len();
            let want = model[at].1.first_time(id);
            model[at].2 = step as u64;
            model_total += model[at].1.ids.len() - before;
            while model_total > total {
                let stalest = (0..model.len())
                    .filter(|&i| model[i].0 != sender)
                    .min_by_key(|&i| model[i].2)
                    .expect("another sender");
                model_total -= model.remove(stalest).1.ids.len();
            }
            assert_eq!(inbox.first_time(sender, id), want, "step {step}");
            assert_eq!(
                inbox.seen_counts(),
                (model_total, model.len()),
                "step {step}"
            );
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

    #[test]
    fn a_full_history_gives_its_oldest_entrys_strings_to_the_next_one() {
        let mut inbox = Inbox::new(65_536, 1_000_000);
        // Not full: new strings, nothing dropped.
        assert_eq!(
            inbox.strings_for_entry("bob", "hi"),
            ("bob".to_string(), "hi".to_string())
        );
        for id in 0..HISTORY_IN_MEMORY as u64 {
            inbox.remember(shown(id));
        }
        let first_id = |inbox: &Inbox| match inbox.recent(usize::MAX).first() {
            Some(HistoryEntry::In { id, .. }) => *id,
            other => panic!("{other:?}"),
        };
        assert_eq!(first_id(&inbox), 0);
        // Full: the oldest entry goes now, and the next one is remembered without a drop.
        let (name, text) = inbox.strings_for_entry("carol", "a new text");
        assert_eq!((name.as_str(), text.as_str()), ("carol", "a new text"));
        assert_eq!(inbox.recent(usize::MAX).len(), HISTORY_IN_MEMORY - 1);
        assert_eq!(first_id(&inbox), 1);
        inbox.remember(shown(HISTORY_IN_MEMORY as u64));
        assert_eq!(inbox.recent(usize::MAX).len(), HISTORY_IN_MEMORY);
        // A room far bigger than the value is not reused.
        let big = String::with_capacity(10_000);
        assert!(reuse(big, "x").capacity() < 10_000);
        let fits = String::with_capacity(100);
        assert_eq!(reuse(fits, "short text").capacity(), 100);
    }
}
