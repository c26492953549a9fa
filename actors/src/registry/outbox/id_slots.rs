//! `IdSlots`: values by message id, kept in id order in a queue with holes instead of a
//! B-tree, for the outbox's chats and each peer's ids (why, in the outbox's module docs).
//! A plain data structure; talks to no one.

use std::collections::VecDeque;

use crate::peer::MessageId;

/// An `IdSlots` with room for this many more slots than four times those it uses gives the
/// rest back: after a burst (chats queued for a peer that was away, then acked or given up)
/// the outbox would otherwise keep the burst's memory, about 130 bytes a slot. Large enough
/// (about half a megabyte) that a window of chats filling and emptying, as a stream or a
/// fan-out to a thousand peers does, never shrinks and regrows it.
const SLACK_SLOTS: usize = 4096;

/// Values by id, in id order, for ids that mostly come in rising order and mostly leave
/// oldest first (see the module docs). Lookups are a binary search.
#[derive(Debug)]
pub(crate) struct IdSlots<T> {
    /// Sorted by id; `None` is a hole left by a removal. Never a hole at either end.
    slots: VecDeque<(MessageId, Option<T>)>,
    /// The slots that are not holes.
    live: usize,
}

impl<T> Default for IdSlots<T> {
    fn default() -> Self {
        IdSlots {
            slots: VecDeque::new(),
            live: 0,
        }
    }
}

impl<T> IdSlots<T> {
    /// Empty, keeping its room.
    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.live = 0;
    }

    /// Slots it has room for without allocating.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn position(&self, id: MessageId) -> Result<usize, usize> {
        let Some(&(first, _)) = self.slots.front() else {
            return Err(0);
        };
        if id < first {
            return Err(0);
        }
        // Ids are usually consecutive and acked in order: then an id's place is its offset
        // from the first, and the search is only for gaps and holes left inside.
        let guess = usize::try_from(id - first).unwrap_or(usize::MAX);
        match self.slots.get(guess) {
            Some((at_guess, _)) if *at_guess == id => Ok(guess),
            None if self.slots.back().is_some_and(|(last, _)| id > *last) => Err(self.slots.len()),
            _ => self.slots.binary_search_by_key(&id, |(slot, _)| *slot),
        }
    }

    /// Adds `value` under `id`; answers the value it replaces.
    pub(crate) fn insert(&mut self, id: MessageId, value: T) -> Option<T> {
        match self.position(id) {
            Ok(at) => {
                let old = self.slots[at].1.replace(value);
                if old.is_none() {
                    self.live += 1;
                }
                old
            }
            Err(at) if at == self.slots.len() => {
                self.slots.push_back((id, Some(value)));
                self.live += 1;
                None
            }
            Err(at) => {
                // An id that comes out of order.
                self.slots.insert(at, (id, Some(value)));
                self.live += 1;
                None
            }
        }
    }

    pub(crate) fn get(&self, id: MessageId) -> Option<&T> {
        let at = self.position(id).ok()?;
        self.slots[at].1.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: MessageId) -> Option<&mut T> {
        let at = self.position(id).ok()?;
        self.slots[at].1.as_mut()
    }

    pub(crate) fn remove(&mut self, id: MessageId) -> Option<T> {
        let at = self.position(id).ok()?;
        let old = self.slots[at].1.take()?;
        self.live -= 1;
        while self.slots.front().is_some_and(|(_, slot)| slot.is_none()) {
            self.slots.pop_front();
        }
        while self.slots.back().is_some_and(|(_, slot)| slot.is_none()) {
            self.slots.pop_back();
        }
        // Acks out of order leave holes inside; they go once they outnumber the values, so
        // the queue stays within about twice its values and each removal costs O(1) on
        // average.
        if self.slots.len() > 2 * self.live + 64 {
            self.slots.retain(|(_, slot)| slot.is_some());
        }
        if self.slots.capacity() > 4 * self.slots.len() + SLACK_SLOTS {
            self.slots.shrink_to(2 * self.slots.len() + 64);
        }
        Some(old)
    }

    /// The value with the lowest id.
    pub(crate) fn first(&self) -> Option<(MessageId, &T)> {
        self.iter().next()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (MessageId, &T)> {
        self.slots
            .iter()
            .filter_map(|(id, slot)| Some((*id, slot.as_ref()?)))
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = MessageId> + '_ {
        self.iter().map(|(id, _)| id)
    }

    /// Every value, lowest id first.
    pub(crate) fn into_vec(self) -> Vec<(MessageId, T)> {
        self.slots
            .into_iter()
            .filter_map(|(id, slot)| Some((id, slot?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_slots_keep_id_order_whatever_order_ids_come_and_go() {
        let mut slots = IdSlots::default();
        for id in [5, 7, 9] {
            assert_eq!(slots.insert(id, id * 10), None);
        }
        // Out of order: before the first and between two.
        assert_eq!(slots.insert(1, 10), None);
        assert_eq!(slots.insert(8, 80), None);
        assert_eq!(slots.insert(8, 81), Some(80), "a repeated id replaces");
        assert_eq!(slots.ids().collect::<Vec<_>>(), [1, 5, 7, 8, 9]);
        assert_eq!(slots.remove(7), Some(70));
        assert_eq!(slots.remove(7), None);
        assert_eq!(slots.get(7), None);
        assert_eq!(slots.insert(7, 71), None, "a hole is filled again");
        assert_eq!(slots.remove(1), Some(10));
        assert_eq!(slots.first(), Some((5, &50)));
        assert_eq!(slots.remove(9), Some(90));
        assert_eq!(slots.len(), 3);
        assert_eq!(slots.get(6), None);
        assert_eq!(slots.get(100), None);
        assert_eq!(slots.into_vec(), [(5, 50), (7, 71), (8, 81)]);
    }

    #[test]
    fn id_slots_drop_holes_once_they_outnumber_the_values() {
        let mut slots = IdSlots::default();
        for id in 0..10_000 {
            slots.insert(id, ());
        }
        // The first and the last stay: every removal in between leaves a hole.
        for id in (1..9_999).rev() {
            assert_eq!(slots.remove(id), Some(()));
            assert!(slots.slots.len() <= 2 * slots.len() + 65, "{id}");
        }
        assert_eq!(slots.ids().collect::<Vec<_>>(), [0, 9_999]);
        assert_eq!(slots.remove(0), Some(()));
        assert_eq!(slots.slots.len(), 1, "no hole at the front");
    }

    #[test]
    fn id_slots_give_back_a_bursts_memory() {
        let mut slots = IdSlots::default();
        for id in 0..100_000 {
            slots.insert(id, ());
        }
        assert!(slots.capacity() >= 100_000);
        for id in 0..99_990 {
            assert_eq!(slots.remove(id), Some(()));
        }
        // Ten left: room for a few thousand, not for the burst.
        assert_eq!(slots.len(), 10);
        assert!(
            slots.capacity() <= 4 * 10 + SLACK_SLOTS,
            "{}",
            slots.capacity()
        );
        assert_eq!(
            slots.ids().collect::<Vec<_>>(),
            (99_990..100_000).collect::<Vec<_>>()
        );
    }
}
