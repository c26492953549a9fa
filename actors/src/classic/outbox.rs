//! Our messages to classic peers, until each is acked or given up. A plain struct owned by
//! the Registry: per peer, a queue of chats, each already split into the pieces that fit a
//! classic receiver's read. One piece per peer is on its way at a time, so that the pieces
//! (and the chats) arrive in order.

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::peer::{MessageId, PeerAddr};

/// One of our chats to a classic peer.
#[derive(Debug)]
struct Chat {
    id: MessageId,
    text: String,
    /// The pieces not yet acked, in order.
    pieces: VecDeque<String>,
    /// Failed attempts at the first piece.
    failures: u32,
}

/// A piece to send now: one connection carrying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The peer.
    pub to: PeerAddr,
    /// The chat the piece belongs to.
    pub id: MessageId,
    /// The piece's text.
    pub piece: String,
    /// How many attempts at this piece failed before this one.
    pub failures: u32,
}

/// What an attempt's end means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every piece of chat `id` was acked.
    Delivered {
        /// The chat.
        id: MessageId,
        /// Its whole text.
        text: String,
    },
    /// A piece was acked; more of the chat is to go.
    Acked,
    /// The attempt failed and will be made again.
    Retry {
        /// Why it failed.
        reason: String,
        /// Attempts failed so far.
        failures: u32,
    },
    /// The attempt failed for the last time: the chat is given up (its other pieces too).
    Failed {
        /// The chat.
        id: MessageId,
        /// Its whole text.
        text: String,
        /// Why.
        reason: String,
    },
    /// Not the attempt we were waiting for (the chat is gone): nothing to do.
    Stale,
}

/// Every unacked chat to every classic peer (see the module docs).
#[derive(Debug, Default)]
pub struct ClassicOutbox {
    queues: BTreeMap<PeerAddr, VecDeque<Chat>>,
    in_flight: HashSet<PeerAddr>,
}

impl ClassicOutbox {
    /// Nothing to send.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues chat `id` to `to`, already split into `pieces`.
    pub fn push(&mut self, id: MessageId, to: PeerAddr, text: String, pieces: Vec<String>) {
        self.queues.entry(to).or_default().push_back(Chat {
            id,
            text,
            pieces: pieces.into(),
            failures: 0,
        });
    }

    /// The next piece for `to`, unless one is on its way already or nothing waits.
    pub fn next(&mut self, to: PeerAddr) -> Option<Attempt> {
        if self.in_flight.contains(&to) {
            return None;
        }
        let chat = self.queues.get(&to)?.front()?;
        let piece = chat.pieces.front()?.clone();
        self.in_flight.insert(to);
        Some(Attempt {
            to,
            id: chat.id,
            piece,
            failures: chat.failures,
        })
    }

    /// The attempt at chat `id`'s first piece to `to` ended with `result`; after
    /// `max_attempts` failures the chat is given up.
    pub fn done(
        &mut self,
        to: PeerAddr,
        id: MessageId,
        result: Result<(), String>,
        max_attempts: u32,
    ) -> Progress {
        let Some(queue) = self.queues.get_mut(&to) else {
            return Progress::Stale;
        };
        let Some(chat) = queue.front_mut().filter(|chat| chat.id == id) else {
            return Progress::Stale;
        };
        self.in_flight.remove(&to);
        let progress = match result {
            Ok(()) => {
                chat.pieces.pop_front();
                chat.failures = 0;
                if !chat.pieces.is_empty() {
                    return Progress::Acked;
                }
                Progress::Delivered {
                    id,
                    text: String::new(),
                }
            }
            Err(reason) => {
                chat.failures += 1;
                if chat.failures < max_attempts {
                    return Progress::Retry {
                        reason,
                        failures: chat.failures,
                    };
                }
                Progress::Failed {
                    id,
                    text: String::new(),
                    reason,
                }
            }
        };
        // Delivered or failed: the chat leaves the queue with its text.
        let Some(chat) = queue.pop_front() else {
            return Progress::Stale;
        };
        if queue.is_empty() {
            self.queues.remove(&to);
        }
        match progress {
            Progress::Delivered { id, .. } => Progress::Delivered {
                id,
                text: chat.text,
            },
            Progress::Failed { id, reason, .. } => Progress::Failed {
                id,
                text: chat.text,
                reason,
            },
            other => other,
        }
    }

    /// Chats to `to` not yet acked.
    pub fn waiting(&self, to: &PeerAddr) -> usize {
        self.queues.get(to).map_or(0, VecDeque::len)
    }

    /// Chats to anyone not yet acked.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> PeerAddr {
        format!("10.0.0.1:{port}").parse().unwrap()
    }

    fn pieces(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn pieces_go_one_at_a_time_in_order() {
        let mut outbox = ClassicOutbox::new();
        outbox.push(1, addr(1), "ab".into(), pieces(&["a", "b"]));
        outbox.push(2, addr(1), "c".into(), pieces(&["c"]));
        assert_eq!(outbox.waiting(&addr(1)), 2);
        let first = outbox.next(addr(1)).unwrap();
        assert_eq!((first.id, first.piece.as_str()), (1, "a"));
        // One at a time per peer.
        assert_eq!(outbox.next(addr(1)), None);
        assert_eq!(outbox.done(addr(1), 1, Ok(()), 3), Progress::Acked);
        assert_eq!(outbox.next(addr(1)).unwrap().piece, "b");
        assert_eq!(
            outbox.done(addr(1), 1, Ok(()), 3),
            Progress::Delivered {
                id: 1,
                text: "ab".into()
            }
        );
        assert_eq!(outbox.next(addr(1)).unwrap().id, 2);
        assert_eq!(outbox.len(), 1);
    }

    #[test]
    fn a_failed_piece_is_retried_then_its_chat_given_up() {
        let mut outbox = ClassicOutbox::new();
        outbox.push(1, addr(1), "ab".into(), pieces(&["a", "b"]));
        outbox.push(2, addr(1), "c".into(), pieces(&["c"]));
        let attempt = outbox.next(addr(1)).unwrap();
        assert_eq!(attempt.failures, 0);
        assert_eq!(
            outbox.done(addr(1), 1, Err("no reply".into()), 2),
            Progress::Retry {
                reason: "no reply".into(),
                failures: 1
            }
        );
        let again = outbox.next(addr(1)).unwrap();
        assert_eq!((again.piece.as_str(), again.failures), ("a", 1));
        assert_eq!(
            outbox.done(addr(1), 1, Err("refused".into()), 2),
            Progress::Failed {
                id: 1,
                text: "ab".into(),
                reason: "refused".into()
            }
        );
        // The next chat goes on.
        assert_eq!(outbox.next(addr(1)).unwrap().id, 2);
        assert_eq!(outbox.done(addr(9), 2, Ok(()), 2), Progress::Stale);
        assert_eq!(outbox.done(addr(1), 7, Ok(()), 2), Progress::Stale);
        assert!(!outbox.is_empty());
    }
}
