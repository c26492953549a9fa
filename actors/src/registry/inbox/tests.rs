//! The Inbox's unit tests: seen-id windows, the recent sender's window, history.

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
        cut: false,
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
    // Wider windows, senders in runs: the recent sender's window kept beside the map is
    // put back on each change of sender.
    against_the_model(16, 40, 7, 12);
    against_the_model(8, 1000, 3, 30);
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
    // A delivered chat's text takes the oldest entry's room the same way.
    assert_eq!(inbox.text_for_entry("delivered"), "delivered");
    assert_eq!(inbox.recent(usize::MAX).len(), HISTORY_IN_MEMORY - 1);
    assert_eq!(first_id(&inbox), 2);
    // A room far bigger than the value is not reused.
    let big = String::with_capacity(10_000);
    assert!(reuse(big, "x").capacity() < 10_000);
    let fits = String::with_capacity(100);
    assert_eq!(reuse(fits, "short text").capacity(), 100);
}
